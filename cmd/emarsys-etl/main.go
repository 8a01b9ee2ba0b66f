// Command emarsys-etl moves Emarsys email-response exports into ClickHouse.
//
//	emarsys-etl --config FILE                                   the daemon
//	emarsys-etl --config FILE --backfill --from DAY --to DAY    load a past range and exit
//	emarsys-etl --config FILE --once                            one scheduler tick and exit
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/fetch"
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
)

func main() {
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
	if err := fs.Parse(args); err != nil {
		return exitUsage
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

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "emarsys-etl: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, *logLevel, cfg.Secrets())

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
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *dryRun {
		return dryRunBackfill(cfg, start, end, stdout)
	}

	store, err := chstore.Open(ctx, chstore.Config{
		Addr: cfg.ClickHouse.Addr, Database: cfg.ClickHouse.Database,
		User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, BatchRows: cfg.ClickHouse.BatchRows,
	})
	if err != nil {
		log.Error("open ClickHouse", "addr", cfg.ClickHouse.Addr, "err", err)
		return exitStartup
	}
	defer store.Close()
	contact, err := cfg.Export.ContactSchema()
	if err != nil {
		log.Error("contact fields", "err", err)
		return exitUsage
	}
	if err := store.Migrate(ctx, contact); err != nil {
		log.Error("apply migrations", "database", cfg.ClickHouse.Database, "err", err)
		return exitStartup
	}

	api, err := emarsys.New(emarsys.Config{
		BaseURL:    cfg.Emarsys.BaseURL,
		User:       cfg.Emarsys.User,
		Secret:     cfg.Emarsys.Secret,
		HTTPClient: &http.Client{Timeout: cfg.Emarsys.RequestTimout},
		Logger:     log,
	})
	if err != nil {
		log.Error("Emarsys client", "err", err)
		return exitUsage
	}
	src := pipeline.FTPSource{
		Cfg: fetch.FTPConfig{Host: cfg.FTP.Host, Port: cfg.FTP.Port, User: cfg.FTP.User,
			Password: cfg.FTP.Password, Folder: cfg.FTP.Folder, Timeout: cfg.FTP.Timeout},
		AfterLoad: fetch.AfterLoad(cfg.FTP.AfterLoad),
		Archive:   cfg.FTP.ArchiveFolder,
	}
	runner, err := pipeline.NewRunner(cfg, api, src, store, log)
	if err != nil {
		log.Error("build runner", "err", err)
		return exitUsage
	}

	switch {
	case *backfill:
		ws := pipeline.Split(start, end, cfg.Schedule.Window)
		p := newProgress(stdout, len(ws))
		runner.OnWindow = p.window
		fmt.Fprintf(stdout, "backfill %s: %s to %s in %d windows of %s (ClickHouse %s)\n",
			cfg.Account, start.Format(time.RFC3339), end.Format(time.RFC3339), len(ws), cfg.Schedule.Window, store.ServerVersion())
		res := runner.RunAll(ctx, ws, cfg.Schedule.Concurrency)
		return summarize(ctx, stdout, store, cfg, start, end, res)
	case *once:
		p := newProgress(stdout, 0)
		runner.OnWindow = p.window
		res, err := runner.Tick(ctx, time.Now())
		if err != nil {
			log.Error("tick", "err", err)
			return exitFailed
		}
		if len(res) == 0 {
			fmt.Fprintln(stdout, "nothing due")
			return exitOK
		}
		return summarize(ctx, stdout, store, cfg, res[0].Window.Start, res[len(res)-1].Window.End, res)
	default:
		if err := runner.Daemon(ctx); err != nil {
			log.Error("daemon", "err", err)
			return exitFailed
		}
		return exitOK
	}
}

// summarize prints what a backfill or tick did and returns the exit status:
// 0 only if every window is done.
func summarize(ctx context.Context, w io.Writer, store *chstore.Store, cfg *config.Config, from, to time.Time, res []pipeline.Result) int {
	var done, skipped, failed int
	var read, loaded, added, rejected uint64
	var errs []string
	for _, r := range res {
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
	w     io.Writer
	total int
	n     int
}

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total} }

// window prints one plain line per finished window.
func (p *progress) window(r pipeline.Result) {
	p.n++
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
	fmt.Fprintln(p.w, line)
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
	out := io.Writer(&scrubWriter{w: w, secrets: secrets})
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
