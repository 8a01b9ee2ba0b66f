package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/notify"
	"github.com/emarsys-etl/emarsys-etl/pipeline/ops"
)

// selectAccounts keeps the account named by --account, or all when name is "".
func selectAccounts(cfgs []*config.Config, name string) ([]*config.Config, error) {
	if name == "" {
		return cfgs, nil
	}
	var names []string
	for _, c := range cfgs {
		if c.Account == name {
			return []*config.Config{c}, nil
		}
		names = append(names, c.Account)
	}
	return nil, fmt.Errorf("--account %s: the config has no such account (it has %s)", name, strings.Join(names, ", "))
}

// mode is what run was asked to do once everything is wired.
type mode struct {
	backfill, once bool
	start, end     time.Time
	manual         loadFileFlags
}

func (m mode) daemon() bool { return !m.backfill && !m.once && *m.manual.path == "" }

// account is one account's pipeline inside the process: its own API client
// (token cache and rate limiter), file source, runner and lease; the store
// and the HTTP listener are shared.
type account struct {
	cfg    *config.Config
	runner *pipeline.Runner
	log    *slog.Logger
	runCtx context.Context
	lease  *pipeline.HeldLease
	// startErr is why the account did not start (its lease is held elsewhere).
	startErr error
}

// runAccounts wires one runner per account and runs them concurrently. One
// account failing (credentials refused, FTP down, lease held elsewhere)
// never stops the others; the exit status is 1 when any account had a
// failed window or did not start. With one account the behaviour and the
// output are those of the single-account daemon.
func runAccounts(ctx context.Context, cfgs []*config.Config, store *chstore.Store, opsSrv *ops.Server, metrics map[string]*ops.Metrics,
	m mode, stdout, stderr io.Writer, log *slog.Logger) int {
	multi := len(cfgs) > 1
	var reg *notify.Registry // one receiver for all accounts: tokens are random
	accts := make([]*account, 0, len(cfgs))
	for _, cfg := range cfgs {
		// The runner names the account in its own log lines; the client's get it here.
		alog := log
		if multi {
			alog = log.With("account", cfg.Account)
		}
		// One client per account, so one token cache and one rate limiter each.
		api, err := pipeline.NewAPIClient(cfg, apiClient(cfg, metrics[cfg.Account]), alog, nil)
		if err != nil {
			alog.Error("Emarsys client", "err", err)
			return exitUsage
		}
		src, err := pipeline.NewSource(cfg, api)
		if err != nil {
			alog.Error("export file source", "err", err)
			return exitUsage
		}
		runner, err := pipeline.NewRunner(cfg, api, src, store, log)
		if err != nil {
			alog.Error("build runner", "err", err)
			return exitUsage
		}
		if cfg.Notify.PublicURL != "" {
			// The vendor's notification_url calls land on the same listener.
			if reg == nil {
				reg = notify.NewRegistry(log)
				opsSrv.Handle(notify.PathPrefix, reg.Handler())
			}
			runner.Notify = reg
		}
		metrics[cfg.Account].Instrument(runner)
		// BI aggregates are recomputed for the days each loaded window touches.
		runner.AfterLoad = append(runner.AfterLoad, pipeline.RefreshAggregates(store, cfg.Account))
		runner.Stop = ctx.Done()
		accts = append(accts, &account{cfg: cfg, runner: runner, log: log})
	}
	runners := make([]*pipeline.Runner, len(accts))
	for i, a := range accts {
		runners[i] = a.runner
	}
	stopOps, ok := startOps(opsSrv, cfgs[0], runners, m.daemon(), log)
	if !ok {
		return exitStartup
	}
	defer stopOps()

	// One instance per account and database: a second one refuses to run
	// that account. Each account's windows run under its own lease.
	started, busy := 0, 0
	for _, a := range accts {
		// A signal stops new windows at once; running ones get schedule.grace
		// to finish, then are cancelled where the ledger can resume them.
		graceCtx, cancelRun := pipeline.Graceful(ctx, a.cfg.Schedule.Grace)
		defer cancelRun()
		runCtx, lease, err := a.runner.HoldLease(graceCtx, "", pipeline.DefaultLeaseTTL)
		if err != nil {
			a.startErr = err
			a.log.Error("not starting", "account", a.cfg.Account, "err", err)
			fmt.Fprintf(stderr, "emarsys-etl: %v\n", err)
			var held *chstore.LeaseHeldError
			if errors.As(err, &held) {
				busy++
			}
			continue
		}
		started++
		a.runCtx, a.lease = runCtx, lease
		defer func() {
			if err := lease.Release(context.Background()); err != nil {
				a.log.Warn("release lease (it expires by itself)", "account", a.cfg.Account, "err", err)
			}
		}()
	}
	if started == 0 {
		if busy == len(accts) {
			return exitBusy
		}
		return exitStartup
	}

	if *m.manual.path != "" {
		code := runLoadFile(accts[0].runCtx, accts[0].runner, m.manual, stdout, log)
		if busy := leaseRaceLost(accts[0].runCtx, stderr); busy {
			return exitBusy
		}
		return code
	}
	out := stdout
	if multi {
		out = &lockedWriter{w: stdout} // accounts print progress concurrently
	}
	codes := make([]int, len(accts))
	reports := make([]*strings.Builder, len(accts))
	var wg sync.WaitGroup
	for i, a := range accts {
		if a.startErr != nil {
			codes[i] = exitFailed
			continue
		}
		reports[i] = &strings.Builder{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := io.Writer(reports[i])
			if !multi {
				rep = stdout // as before: the summary as soon as it is known
			}
			codes[i] = runAccount(ctx, a, store, m, out, rep, multi)
		}()
	}
	wg.Wait()
	for i, a := range accts {
		if a.runCtx != nil && leaseRaceLost(a.runCtx, stderr) {
			codes[i] = exitBusy
		}
	}
	if !multi {
		return codes[0]
	}
	// The summaries in config order, then one line per account.
	failed := 0
	for i, a := range accts {
		if reports[i] != nil && reports[i].Len() > 0 {
			fmt.Fprintf(stdout, "\naccount %s:\n%s", a.cfg.Account, reports[i].String())
		}
		if codes[i] != exitOK {
			failed++
		}
	}
	fmt.Fprintf(stdout, "\naccounts: %d, %d ok, %d failed\n", len(accts), len(accts)-failed, failed)
	for i, a := range accts {
		switch {
		case a.startErr != nil:
			fmt.Fprintf(stdout, "  %s: FAILED, not started: %v\n", a.cfg.Account, a.startErr)
		case codes[i] != exitOK:
			fmt.Fprintf(stdout, "  %s: FAILED\n", a.cfg.Account)
		default:
			fmt.Fprintf(stdout, "  %s: ok\n", a.cfg.Account)
		}
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

// runAccount runs one account's backfill, tick or daemon. Progress lines go
// to out (prefixed with the account when there are several), the summary
// to rep.
func runAccount(ctx context.Context, a *account, store *chstore.Store, m mode, out, rep io.Writer, multi bool) int {
	cfg, runner := a.cfg, a.runner
	prefix := ""
	if multi {
		prefix = "[" + cfg.Account + "] "
	}
	// A refused FTP login would leave every export waiting in "ready" until
	// stuck_after; say so at once instead.
	if src, err := pipeline.NewSource(cfg, nil); err == nil {
		pctx, cancel := context.WithTimeout(a.runCtx, 30*time.Second)
		perr := pipeline.Preflight(pctx, src)
		cancel()
		if perr != nil {
			a.log.Error("FTP login refused", "account", cfg.Account, "err", perr)
			if !m.daemon() {
				fmt.Fprintf(rep, "%snot started: %v\n", prefix, perr)
				return exitFailed
			}
		}
	}
	switch {
	case m.backfill:
		ws := pipeline.Split(m.start, m.end, cfg.Schedule.Window)
		p := newProgress(out, len(ws))
		p.prefix = prefix
		runner.OnWindow = p.window
		fmt.Fprintf(out, "%sbackfill %s: %s to %s in %d windows of %s (ClickHouse %s)\n", prefix,
			cfg.Account, m.start.Format(time.RFC3339), m.end.Format(time.RFC3339), len(ws), cfg.Schedule.Window, store.ServerVersion())
		res := runner.RunAll(a.runCtx, ws, cfg.Schedule.Concurrency)
		return summarize(ctx, rep, store, cfg, m.start, m.end, res)
	case m.once:
		p := newProgress(out, 0)
		p.prefix = prefix
		runner.OnWindow = p.window
		res, err := runner.Tick(a.runCtx, time.Now())
		if err != nil {
			a.log.Error("tick", "account", cfg.Account, "err", err)
			if multi {
				fmt.Fprintf(rep, "tick failed: %v\n", err)
			}
			return exitFailed
		}
		if len(res) == 0 {
			fmt.Fprintln(rep, "nothing due")
			return exitOK
		}
		return summarize(ctx, rep, store, cfg, res[0].Window.Start, res[len(res)-1].Window.End, res)
	default:
		if err := runner.Daemon(a.runCtx); err != nil {
			a.log.Error("daemon", "account", cfg.Account, "err", err)
			return exitFailed
		}
		return exitOK
	}
}

// leaseRaceLost reports, and tells stderr, that the account's claim lost a
// race to another instance, found out at its confirmation after the start
// (pipeline.HoldLease): the account is busy, as when the lease is held at
// the start, whatever the run did meanwhile (it wrote nothing).
func leaseRaceLost(runCtx context.Context, stderr io.Writer) bool {
	var held *chstore.LeaseHeldError
	if !errors.As(context.Cause(runCtx), &held) {
		return false
	}
	fmt.Fprintf(stderr, "emarsys-etl: %v\n", context.Cause(runCtx))
	return true
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
