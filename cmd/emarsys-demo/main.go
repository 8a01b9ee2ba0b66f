// Command emarsys-demo runs the main job end to end on one machine: it starts
// the Emarsys simulator and an embedded FTP server, writes a configuration,
// runs the real emarsys-etl binary to backfill the seven whole days (UTC)
// before today, and compares what reached ClickHouse with what the simulator
// produced. `make demo` starts ClickHouse first when none answers.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	etl := flag.String("etl", "bin/emarsys-etl", "emarsys-etl binary to run")
	chAddr := flag.String("clickhouse", "127.0.0.1:9000", "ClickHouse native address")
	workdir := flag.String("workdir", ".local/demo", "folder for the FTP root, config and logs")
	days := flag.Int("days", 7, "whole UTC days before today to backfill")
	seed := flag.Int64("seed", 42, "simulator seed (same seed, same responses)")
	perHour := flag.Int("events-per-hour", 400, "mean responses per hour in the simulated account")
	flag.Parse()

	wd, err := filepath.Abs(*workdir)
	if err != nil {
		return err
	}
	ftpRoot := filepath.Join(wd, "ftp")
	if err := os.MkdirAll(filepath.Join(ftpRoot, "exports"), 0o755); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Fresh credentials each run: nothing secret is written into the config file.
	ftpPass, apiSecret := randomHex(12), randomHex(16)
	fs, err := ftpd.Start(ftpd.Options{Root: ftpRoot, User: "emarsys", Password: ftpPass})
	if err != nil {
		return fmt.Errorf("start FTP server: %w", err)
	}
	defer fs.Close()

	loc, _ := time.LoadLocation("Europe/Vienna")
	gen := sim.Generator{Seed: *seed, Loc: loc, EventsPerHour: *perHour}
	api := sim.New(sim.Config{
		User: "demo_api", Secret: apiSecret, Generator: gen,
		ScheduledDelay: 100 * time.Millisecond, InProgressDelay: 300 * time.Millisecond,
		ReadyDelay: 100 * time.Millisecond, Logger: quiet,
	})
	defer api.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	today := time.Now().UTC().Truncate(24 * time.Hour)
	from, to := today.AddDate(0, 0, -*days), today
	sources := []string{"trackable_links", "mail_open", "unsubscribe", "complaint",
		"registration_forms", "tell_a_friend", "contact_us", "change_profile"}

	cfgPath := filepath.Join(wd, "emarsys-etl.yaml")
	cfg := fmt.Sprintf(`# Written by emarsys-demo: the simulated account %q.
account: demo
timezone: Europe/Vienna
emarsys:
  auth: oauth2
  base_url: http://%s/api/v3/
  user: demo_api
  secret: ${EMARSYS_SECRET}
  poll_initial: 200ms
  poll_max: 1s
  export_timeout: 5m
  stuck_after: 2m
export:
  contact_fields: [1, 2, 3, 4, 11, 14]
  analysis_fields: [1, 4, 5, 8, 12, 13, 14, 15]
  sources: [%s]
  delimiter: ";"
  language: en
ftp:
  host: %s
  port: %d
  user: emarsys
  password: ${FTP_PASSWORD}
  folder: exports
  after_load: archive
clickhouse:
  addr: %s
  database: emarsys
schedule:
  cron: "*/15 * * * *"
  window: 6h
  lag: 2h
  overlap: 1h
  concurrency: 4
`, "demo", ln.Addr(), strings.Join(sources, ", "), fs.Host(), fs.Port(), *chAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(wd, "emarsys-etl.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	fmt.Printf("simulator: http://%s  FTP: %s  ClickHouse: %s\n", ln.Addr(), fs.Addr(), *chAddr)
	fmt.Printf("running: %s --config %s --backfill --from %s --to %s\n\n", *etl, cfgPath, from.Format("2006-01-02"), to.Format("2006-01-02"))
	cmd := exec.Command(*etl, "--config", cfgPath, "--backfill", "--from", from.Format("2006-01-02"), "--to", to.Format("2006-01-02"))
	cmd.Env = append(os.Environ(), "EMARSYS_SECRET="+apiSecret, "FTP_PASSWORD="+ftpPass)
	cmd.Stdout = os.Stdout
	cmd.Stderr = logFile
	runErr := cmd.Run()

	// The oracle: what the simulator generated for the range and the requested sources.
	want := gen.Filter(gen.Responses(from, to), sources)
	wantBy := map[string]uint64{}
	for _, r := range want {
		wantBy[r.Source]++
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := chstore.Open(ctx, chstore.Config{Addr: *chAddr, Database: "emarsys", User: "default"})
	if err != nil {
		return fmt.Errorf("open ClickHouse to check the result: %w", err)
	}
	defer store.Close()
	got, err := store.SourceCounts(ctx, "demo", from, to)
	if err != nil {
		return fmt.Errorf("count loaded rows: %w", err)
	}
	gotBy := map[string]uint64{}
	var gotTotal uint64
	for _, sc := range got {
		gotBy[sc.Source] = sc.Rows
		gotTotal += sc.Rows
	}
	var names []string
	for s := range wantBy {
		names = append(names, s)
	}
	sort.Strings(names)

	fmt.Printf("\nsource               simulator   warehouse\n")
	for _, s := range names {
		fmt.Printf("%-20s %9d   %9d\n", s, wantBy[s], gotBy[s])
	}
	fmt.Printf("%-20s %9d   %9d\n", "total", len(want), gotTotal)
	fmt.Printf("\nETL log (JSON): %s\n", logPath)
	client := "clickhouse-client"
	if host, port, err := net.SplitHostPort(*chAddr); err == nil && *chAddr != "127.0.0.1:9000" {
		client = fmt.Sprintf("clickhouse-client --host %s --port %s", host, port)
	}
	stopArgs := ""
	if *chAddr != "127.0.0.1:9000" {
		stopArgs = " CLICKHOUSE_ADDR=" + *chAddr
	}
	fmt.Printf("Try it:\n  %s --query \"SELECT toDate(event_time) AS day, source, count() FROM emarsys.email_responses WHERE account = 'demo' GROUP BY day, source ORDER BY day, source\"\n", client)
	fmt.Printf("ClickHouse keeps running with the data; stop a private one with: make demo-stop%s\n", stopArgs)
	if runErr != nil {
		return fmt.Errorf("emarsys-etl: %v (see %s)", runErr, logPath)
	}
	if gotTotal != uint64(len(want)) {
		return fmt.Errorf("the warehouse holds %d rows for the range, the simulator produced %d", gotTotal, len(want))
	}
	fmt.Println("OK: the warehouse holds exactly the rows the simulator produced.")
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
