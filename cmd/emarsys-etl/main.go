// Command emarsys-etl moves Emarsys email-response exports into ClickHouse.
//
//	emarsys-etl --config FILE                                   the daemon
//	emarsys-etl --config FILE --backfill --from DAY --to DAY    load a past range and exit
//	emarsys-etl --config FILE --once                            one scheduler tick and exit
//
// With an accounts: list in the config every mode runs all accounts
// concurrently; --account NAME picks one.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // account time zones must resolve even in a scratch container

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/dashboard"
)

// Set at build time by the Makefile (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // some window did not load
	exitUsage   = 2 // bad flags or config
	exitStartup = 3 // could not reach ClickHouse or apply migrations
	exitBusy    = 4 // another instance holds the account's lease
)

// softMemoryLimit is the Go heap's soft limit unless GOMEMLIMIT is set: a
// window streams in a few blocks of clickhouse.batch_rows (two per INSERT
// stream), about 25 MiB live, and the limit makes the GC collect before the
// heap grows far past that, so the process stays under 64 MiB RSS whatever
// the file's size. 40 MiB made the GC run about a tenth of the time; 50
// gives it room (README, Performance).
const softMemoryLimit = 50 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("emarsys-etl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "configs/emarsys-etl.yaml", "configuration file (YAML)")
	backfill := fs.Bool("backfill", false, "load the range --from/--to and exit")
	from := fs.String("from", "", "backfill start: YYYY-MM-DD (UTC, inclusive) or RFC 3339")
	to := fs.String("to", "", "backfill end: YYYY-MM-DD (UTC, exclusive) or RFC 3339")
	once := fs.Bool("once", false, "run one scheduler tick and exit")
	dryRun := fs.Bool("dry-run", false, "with --backfill: print the windows and export requests, call nothing")
	showVersion := fs.Bool("version", false, "print the version and exit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	status := fs.Bool("status", false, "print the ledger: windows per day, gaps, lag, last errors; exit 1 on a gap or failed window")
	asJSON := fs.Bool("json", false, "with --status: print JSON")
	checkConfig := fs.Bool("check-config", false, "check credentials, FTP folder and ClickHouse for real; exit 1 if any check fails")
	accountName := fs.String("account", "", "only this account of the config's accounts: list (default: all)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file (for performance work)")
	manual := addLoadFileFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "emarsys-etl: --cpuprofile: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "emarsys-etl: --cpuprofile: %v\n", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	if *showVersion {
		fmt.Fprintf(stdout, "emarsys-etl %s (commit %s)\n", version, commit)
		return exitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "emarsys-etl: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if (*from != "" || *to != "") && !*backfill {
		fmt.Fprintln(stderr, "emarsys-etl: --from and --to need --backfill")
		return exitUsage
	}
	if *backfill && *once {
		fmt.Fprintln(stderr, "emarsys-etl: choose one of --backfill and --once")
		return exitUsage
	}
	if *dryRun && !*backfill {
		fmt.Fprintln(stderr, "emarsys-etl: --dry-run needs --backfill")
		return exitUsage
	}
	if *asJSON && !*status {
		fmt.Fprintln(stderr, "emarsys-etl: --json needs --status")
		return exitUsage
	}
	if (*status || *checkConfig) && (*backfill || *once) || *status && *checkConfig {
		fmt.Fprintln(stderr, "emarsys-etl: --status and --check-config run alone")
		return exitUsage
	}
	if msg := manual.check(*backfill || *once || *status || *checkConfig || *dryRun); msg != "" {
		fmt.Fprintln(stderr, "emarsys-etl: "+msg)
		return exitUsage
	}

	// One Config per account (one, or the accounts: list); clickhouse and
	// http are global, so cfg (the first) stands for them.
	all, err := config.LoadAccounts(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "emarsys-etl: %v\n", err)
		return exitUsage
	}
	cfgs, err := selectAccounts(all, *accountName)
	if err != nil {
		fmt.Fprintf(stderr, "emarsys-etl: %v\n", err)
		return exitUsage
	}
	if *manual.path != "" && len(cfgs) > 1 {
		fmt.Fprintln(stderr, "emarsys-etl: --load-file loads into one account: add --account NAME")
		return exitUsage
	}
	cfg := cfgs[0]
	secrets := config.AllSecrets(all)
	log := newLogger(stderr, *logLevel, secrets)
	if *status {
		// Ledger errors are scrubbed when stored; scrub again on the way out.
		return runStatus(cfgs, *asJSON, &scrubWriter{w: stdout, secrets: scrubForms(secrets)}, stderr)
	}
	if *checkConfig {
		return runCheckConfigs(cfgs, &scrubWriter{w: stdout, secrets: scrubForms(secrets)})
	}

	var start, end time.Time
	if *backfill {
		if *from == "" || *to == "" {
			fmt.Fprintln(stderr, "emarsys-etl: --backfill needs --from and --to")
			return exitUsage
		}
		start, end, err = pipeline.ParseRange(*from, *to)
		if err != nil {
			fmt.Fprintf(stderr, "emarsys-etl: %v\n", err)
			return exitUsage
		}
		// A window loaded before its responses exist would be done, empty,
		// and never read again: the future is the daemon's.
		if now := time.Now(); end.After(now) {
			fmt.Fprintf(stderr, "emarsys-etl: --to %s is in the future: a backfill loads the past (up to now at most); the daemon loads the rest as it comes\n", *to)
			return exitUsage
		} else if lagged := now.Add(-cfg.Schedule.Lag); end.After(lagged) && !*dryRun {
			fmt.Fprintf(stderr, "emarsys-etl: warning: --to %s is later than now minus schedule.lag (%s): responses that arrive late for that part will not be loaded (it is marked done)\n",
				*to, lagged.UTC().Format(time.RFC3339))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *dryRun {
		code := exitOK
		for _, c := range cfgs {
			if len(cfgs) > 1 {
				fmt.Fprintf(stdout, "account %s: ", c.Account)
			}
			code = max(code, dryRunBackfill(c, start, end, stdout))
		}
		return code
	}

	store, err := chstore.Open(ctx, chstore.Config{
		Addr: cfg.ClickHouse.Addr, Database: cfg.ClickHouse.Database,
		User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, BatchRows: cfg.ClickHouse.BatchRows,
		Cluster: cfg.ClickHouse.Cluster, Compression: cfg.ClickHouse.Compression,
	})
	if err != nil {
		log.Error("open ClickHouse", "addr", cfg.ClickHouse.Addr, "err", err)
		return exitStartup
	}
	if cfg.ClickHouse.Cluster == "" && !store.DirectLoads() {
		// Still exactly once, through the stage alone, at about half the speed.
		log.Warn("this server's cityHash64 differs from the product's response key: every row goes through the staging table", "server", store.ServerVersion())
	}
	defer store.Close()
	for _, c := range cfgs {
		// Each account adds its contact columns; the tables are shared.
		contact, err := c.Export.ContactSchema()
		if err != nil {
			log.Error("contact fields", "account", c.Account, "err", err)
			return exitUsage
		}
		if err := store.Migrate(ctx, contact); err != nil {
			log.Error("apply migrations", "database", cfg.ClickHouse.Database, "err", err)
			return exitStartup
		}
	}

	// The HTTP listener: /metrics, /healthz, /readyz. Mount further handlers
	// with opsSrv.Handle (before or after startOps).
	opsSrv, metrics := newOps(cfgs, store, log)
	// The built-in BI page at / and its JSON under /api/bi/, for users without Grafana.
	dashboard.Mount(opsSrv, store, cfg.Account, time.Now)

	// One runner per account, run concurrently (accounts.go).
	return runAccounts(ctx, cfgs, store, opsSrv, metrics, mode{backfill: *backfill, once: *once, start: start, end: end, manual: manual},
		stdout, stderr, log)
}

// summarize prints what a backfill or tick did and returns the exit status:
// 0 only if every window is done.
func summarize(ctx context.Context, w io.Writer, store *chstore.Store, cfg *config.Config, from, to time.Time, res []pipeline.Result) int {
	var done, skipped, failed int
	var read, loaded, added, rejected uint64
	var errs []string
	for _, r := range res {
		// A tick runs resumed windows first: the span is that of all windows.
		if r.Window.Start.Before(from) {
			from = r.Window.Start
		}
		if r.Window.End.After(to) {
			to = r.Window.End
		}
		switch {
		case r.Err != nil || r.State != pipeline.StateDone:
			failed++
			if r.Err != nil {
				errs = append(errs, fmt.Sprintf("  %s: %v", r.Window, r.Err))
			}
		case r.Skipped:
			skipped++
		default:
			done++
		}
		if !r.Skipped {
			read += r.Read
			loaded += r.Loaded
			added += r.New
			rejected += r.Rejected
		}
	}
	fmt.Fprintf(w, "windows: %d total, %d loaded now, %d already done, %d failed\n", len(res), done, skipped, failed)
	fmt.Fprintf(w, "rows this run: read=%d loaded=%d new=%d rejected=%d\n", read, loaded, added, rejected)
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if counts, err := store.SourceCounts(qctx, cfg.Account, from, to); err == nil {
		var parts []string
		var total uint64
		for _, sc := range counts {
			parts = append(parts, fmt.Sprintf("%s=%d", sc.Source, sc.Rows))
			total += sc.Rows
		}
		fmt.Fprintf(w, "in the warehouse for %s to %s: %d rows (%s)\n", from.Format(time.RFC3339), to.Format(time.RFC3339), total, strings.Join(parts, " "))
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "failed windows:")
		fmt.Fprintln(w, strings.Join(errs, "\n"))
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

type progress struct {
	mu     sync.Mutex // windows finish concurrently
	w      io.Writer
	prefix string // "[account] " when several accounts print
	total  int
	n      int
	bar    *progressBar // on a terminal; nil: plain lines
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total}
	if total > 0 && isTerminal(w) {
		p.bar = newProgressBar(w, total, time.Now)
	}
	return p
}

// window prints one plain line per finished window, or redraws the bar.
func (p *progress) window(r pipeline.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.bar != nil {
		p.bar.window(r)
		return
	}
	of := ""
	if p.total > 0 {
		of = fmt.Sprintf("/%d", p.total)
	}
	status := r.State
	if r.Skipped {
		status = "already done"
	}
	line := fmt.Sprintf("[%d%s] %s %s export=%d read=%d loaded=%d new=%d rejected=%d took=%s",
		p.n, of, r.Window, status, r.ExportID, r.Read, r.Loaded, r.New, r.Rejected, r.Took.Round(time.Millisecond))
	if r.Err != nil {
		line += " error: " + r.Err.Error()
	}
	fmt.Fprintln(p.w, p.prefix+line)
}

func dryRunBackfill(cfg *config.Config, start, end time.Time, w io.Writer) int {
	r, err := pipeline.NewRunner(cfg, nil, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(w, "emarsys-etl: %v\n", err)
		return exitUsage
	}
	ws := pipeline.Split(start, end, cfg.Schedule.Window)
	fmt.Fprintf(w, "dry run: %d windows, nothing is called\n", len(ws))
	for _, win := range ws {
		b, _ := json.MarshalIndent(r.ExportRequest(win).Masked(), "", "  ")
		fmt.Fprintf(w, "%s POST %semail/getresponses\n%s\n", win, cfg.Emarsys.BaseURL, b)
	}
	return exitOK
}

// newLogger logs JSON off a terminal and text on one, and scrubs secrets from
// every line as a last line of defence.
func newLogger(w io.Writer, level string, secrets []string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	out := io.Writer(&scrubWriter{w: w, secrets: scrubForms(secrets)})
	opts := &slog.HandlerOptions{Level: lv}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type scrubWriter struct {
	w       io.Writer
	secrets []string
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	line := string(p)
	for _, sec := range s.secrets {
		line = strings.ReplaceAll(line, sec, "***")
	}
	if _, err := io.WriteString(s.w, line); err != nil {
		return 0, err
	}
	return len(p), nil
}
