// Command emarsys-bench measures the load path against its physical
// references on the same machine and the same ClickHouse (`make bench`):
//
//   - etl: the real bin/emarsys-etl loading one export end to end (FTP ->
//     typed rows -> shadow table -> exactly-once commit -> archive), ledger work
//     included. The bench seeds the ledger with the window in state ready,
//     so the run is exactly the part of a window that moves data;
//   - clickhouse_client: clickhouse-client inserting the same file from
//     local disk (FORMAT CSVWithNames) into a table of the same columns and
//     engine;
//   - ftp_read: reading the file over FTP and discarding it.
//
// Each is run --runs times in alternation and the median is reported; the
// last line is the machine-readable summary.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/fetch"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// The export's shape: 8 contact fields (one a date) and all 10 analysis fields.
var (
	contactFields  = []int{1, 2, 3, 4, 11, 13, 14, 37}
	analysisFields = []int{1, 2, 3, 4, 5, 8, 12, 13, 14, 15}
)

const (
	account  = "bench"
	fileName = "bench_export.csv"
	ftpUser  = "bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	rows        int
	runs        int
	windows     int
	concurrency int
	loads       int
	loadsB      int
	etl         string
	ch          string
	client      string
	workdir     string
	batchRows   int
	cpuProfile  string
	keep        bool
	etlOnly     bool
	etlB        string
	batchRowsB  int
	serverPID   string
}

func run() error {
	o := options{}
	defRows := 2_000_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && v > 0 {
		defRows = v
	}
	flag.IntVar(&o.rows, "rows", defRows, "rows in the export (BENCH_ROWS)")
	flag.IntVar(&o.runs, "runs", 3, "runs of each measurement, in alternation; the median is reported")
	flag.IntVar(&o.windows, "windows", 1, "split the export into this many windows (files) for the etl run")
	flag.IntVar(&o.concurrency, "concurrency", 2, "schedule.concurrency of the etl run when --windows > 1")
	flag.IntVar(&o.loads, "loads", 0, "schedule.loads of the etl run (0: the product's default)")
	flag.IntVar(&o.loadsB, "loads-b", 0, "with --etl-b: schedule.loads of the B runs")
	flag.IntVar(&o.batchRows, "batch-rows", 0, "clickhouse.batch_rows of the etl run (0: the product's default)")
	flag.StringVar(&o.etl, "etl", "bin/emarsys-etl", "emarsys-etl binary")
	flag.StringVar(&o.ch, "clickhouse", envOr("CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native address")
	flag.StringVar(&o.client, "client", "clickhouse-client", "clickhouse-client binary")
	flag.BoolVar(&o.etlOnly, "etl-only", false, "measure the etl alone (for tuning; prints no bench: line)")
	flag.IntVar(&o.batchRowsB, "batch-rows-b", 0, "with --etl-b: clickhouse.batch_rows of the B runs")
	flag.StringVar(&o.etlB, "etl-b", "", "with --etl-only: a second emarsys-etl build, run in alternation with --etl (A/B tuning)")
	flag.BoolVar(&o.keep, "keep", false, "keep the etl runs' databases (bench_etl_*) for a look afterwards")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "pass --cpuprofile to the first etl run (a Go CPU profile of the product)")
	flag.StringVar(&o.serverPID, "server-pid-file", "", "pid file of the ClickHouse server on this host: each run also prints the server's CPU time")
	flag.StringVar(&o.workdir, "workdir", ".local/bench", "folder for the FTP root and configs")
	flag.Parse()
	if o.windows < 1 || o.runs < 1 || o.rows < 1 {
		return fmt.Errorf("--rows, --runs and --windows must be positive")
	}

	wd, err := filepath.Abs(o.workdir)
	if err != nil {
		return err
	}
	ftpRoot := filepath.Join(wd, "ftp")
	exports := filepath.Join(ftpRoot, "exports")
	if err := os.RemoveAll(ftpRoot); err != nil {
		return err
	}
	if err := os.MkdirAll(exports, 0o755); err != nil {
		return err
	}
	loc, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		return err
	}

	t0 := time.Now()
	files, err := generate(exports, o, loc)
	if err != nil {
		return err
	}
	fmt.Printf("generated %d rows in %d file(s) (%.0f MiB) in %s\n", o.rows, len(files), float64(totalSize(files))/(1<<20), time.Since(t0).Round(time.Millisecond))

	pass := randomHex(12)
	fs, err := ftpd.Start(ftpd.Options{Root: ftpRoot, User: ftpUser, Password: pass})
	if err != nil {
		return fmt.Errorf("start FTP server: %w", err)
	}
	defer fs.Close()

	whole := filepath.Join(wd, "whole.csv")
	if len(files) > 1 {
		// clickhouse-client and the FTP read get the same rows in one file.
		if err := concat(whole, files); err != nil {
			return err
		}
		defer os.Remove(whole)
	} else {
		whole = files[0].path
	}

	if o.serverPID != "" && serverCPU(o.serverPID) < 0 {
		fmt.Printf("server_cpu: not measured: no running server's pid in %s (a server started elsewhere)\n", o.serverPID)
	}
	var etlT, clientT, ftpT, etlBT []time.Duration
	var rss []int64
	// measureETL runs the etl once with options eo and prints the run.
	measureETL := func(eo options, label string, i int) (time.Duration, int64, error) {
		quiesce(o)
		s0 := serverCPU(o.serverPID)
		d, maxrss, cpu, err := runETL(eo, wd, fs, pass, files, i)
		if err != nil {
			return 0, 0, fmt.Errorf("%s run %d: %w", label, i+1, err)
		}
		fmt.Printf("run %d %-18s%8.2fs %10.0f rows/s  peak_rss=%.1f MiB  cpu=%.2fs%s\n", i+1, label, d.Seconds(), rate(o.rows, d), float64(maxrss)/(1<<20), cpu.Seconds(), serverCPUSince(o.serverPID, s0))
		return d, maxrss, nil
	}
	// The B side of --etl-b: another build, and the -b settings.
	ob := o
	ob.etl = o.etlB
	if o.batchRowsB > 0 {
		ob.batchRows = o.batchRowsB
	}
	if o.loadsB > 0 {
		ob.loads = o.loadsB
	}
	for i := range o.runs {
		d, maxrss, err := measureETL(o, "etl", i)
		if err != nil {
			return err
		}
		etlT, rss = append(etlT, d), append(rss, maxrss)
		if o.etlOnly {
			if o.etlB != "" {
				d, _, err := measureETL(ob, "etl-b", i)
				if err != nil {
					return err
				}
				etlBT = append(etlBT, d)
			}
			continue
		}

		quiesce(o)
		s0 := serverCPU(o.serverPID)
		d, cpu, err := runClient(o, whole, i)
		if err != nil {
			return fmt.Errorf("clickhouse-client run %d: %w", i+1, err)
		}
		clientT = append(clientT, d)
		fmt.Printf("run %d clickhouse_client %8.2fs %10.0f rows/s                    cpu=%.2fs%s\n", i+1, d.Seconds(), rate(o.rows, d), cpu.Seconds(), serverCPUSince(o.serverPID, s0))

		d, err = runFTPRead(fs, pass, files)
		if err != nil {
			return fmt.Errorf("ftp read run %d: %w", i+1, err)
		}
		ftpT = append(ftpT, d)
		fmt.Printf("run %d ftp_read          %8.2fs %10.0f rows/s\n", i+1, d.Seconds(), rate(o.rows, d))
	}
	if o.etlOnly {
		fmt.Printf("etl median %.2fs\n", median(etlT).Seconds())
		if len(etlBT) > 0 {
			fmt.Printf("etl-b median %.2fs\n", median(etlBT).Seconds())
		}
		return nil
	}
	e, c, f := median(etlT), median(clientT), median(ftpT)
	peak := slices.Max(rss)
	fmt.Printf("bench: rows=%d etl_rows_per_s=%.0f clickhouse_client_rows_per_s=%.0f ftp_read_rows_per_s=%.0f ratio_etl_vs_client=%.2f peak_rss_mib=%.1f\n",
		o.rows, rate(o.rows, e), rate(o.rows, c), rate(o.rows, f), e.Seconds()/c.Seconds(), float64(peak)/(1<<20))
	return nil
}

type exportFile struct {
	path     string
	from, to time.Time
	rows     int
}

// generate writes o.rows simulator responses as o.windows export files of
// consecutive whole hours, streaming hour by hour so that the bench itself
// stays small even at millions of rows.
func generate(dir string, o options, loc *time.Location) ([]exportFile, error) {
	// Dense enough for millions of rows in a few days, and enough contacts
	// that distinct responses rarely share a key.
	const perHour = 50_000
	gen := sim.Generator{Seed: 6, Loc: loc, EventsPerHour: perHour, Contacts: 500_000, Campaigns: 200}
	copt := sim.CSVOptions{ContactFields: contactFields, AnalysisFields: analysisFields, Delimiter: ';', Header: true, Loc: loc}
	hours := (o.rows+perHour-1)/perHour + 1
	perFile := max(1, (hours+o.windows-1)/o.windows)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

	var files []exportFile
	var cur *exportFile
	var w *os.File
	closeCur := func() error {
		if w == nil {
			return nil
		}
		err := w.Close()
		files = append(files, *cur)
		w = nil
		return err
	}
	left := o.rows
	for h := 0; left > 0; h++ {
		hs := start.Add(time.Duration(h) * time.Hour)
		if w == nil || (h%perFile == 0 && len(files) < o.windows-1) {
			if err := closeCur(); err != nil {
				return nil, err
			}
			name := fileName
			if o.windows > 1 {
				name = fmt.Sprintf("bench_export_%03d.csv", len(files)+1)
			}
			cur = &exportFile{path: filepath.Join(dir, name), from: hs}
			var err error
			if w, err = os.Create(cur.path); err != nil {
				return nil, err
			}
			copt.Header = true
		}
		rs := gen.Responses(hs, hs.Add(time.Hour))
		if len(rs) > left {
			rs = rs[:left]
		}
		if err := sim.WriteCSV(w, rs, copt); err != nil {
			return nil, err
		}
		copt.Header = false
		left -= len(rs)
		cur.rows += len(rs)
		cur.to = hs.Add(time.Hour)
	}
	return files, closeCur()
}

// runETL loads the files into a fresh database with the real binary and
// returns its wall time and peak RSS (the kernel's ru_maxrss).
func runETL(o options, wd string, fs *ftpd.Server, pass string, files []exportFile, run int) (time.Duration, int64, time.Duration, error) {
	db := fmt.Sprintf("bench_etl_%s_%d", randomHex(4), run)
	from, to := files[0].from, files[len(files)-1].to
	window := files[0].to.Sub(files[0].from)
	batch := ""
	if o.batchRows > 0 {
		batch = fmt.Sprintf("\n  batch_rows: %d", o.batchRows)
	}
	loads := ""
	if o.loads > 0 {
		loads = fmt.Sprintf("\n  loads: %d", o.loads)
	}
	yaml := fmt.Sprintf(`account: %s
timezone: Europe/Vienna
emarsys:
  base_url: http://127.0.0.1:1/api/v2/
  user: bench
  secret: unused
export:
  contact_fields: [%s]
  analysis_fields: [%s]
  delimiter: ";"
ftp:
  host: %s
  port: %d
  user: %s
  password: ${FTP_PASSWORD}
  folder: exports
  after_load: keep
clickhouse:
  addr: %s
  database: %s%s
http:
  listen: ""
schedule:
  window: %s
  concurrency: %d%s
`, account, joinInts(contactFields), joinInts(analysisFields), fs.Host(), fs.Port(), ftpUser, o.ch, db, batch, window, o.concurrency, loads)
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) {
		if k == "FTP_PASSWORD" {
			return pass, true
		}
		return "", false
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench config: %w", err)
	}
	cfgPath := filepath.Join(wd, "emarsys-etl.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		return 0, 0, 0, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	store, err := chstore.Open(ctx, chstore.Config{Addr: o.ch, Database: db})
	if err != nil {
		return 0, 0, 0, err
	}
	defer store.Close()
	if !o.keep {
		defer chQuery(o, "DROP DATABASE IF EXISTS "+db, nil)
	}
	contact, err := cfg.Export.ContactSchema()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := store.Migrate(ctx, contact); err != nil {
		return 0, 0, 0, err
	}
	for i, f := range files {
		if err := store.SaveWindow(ctx, chstore.WindowRecord{Account: account, Start: f.from, End: f.to,
			State: "ready", ExportID: int64(1000 + i), FileName: filepath.Base(f.path)}); err != nil {
			return 0, 0, 0, err
		}
	}

	logPath := filepath.Join(wd, "emarsys-etl.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return 0, 0, 0, err
	}
	defer logFile.Close()
	args := []string{o.etl, "--config", cfgPath, "--backfill", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}
	if o.cpuProfile != "" && run == 0 {
		args = append(args, "--cpuprofile", o.cpuProfile)
	}
	// The child's own ru_maxrss is not the etl's: Go starts children with
	// vfork, and the kernel folds the parent's peak RSS into the child's at
	// exec. GNU time forks a fresh process, so its %M is the etl's alone.
	rssFile := filepath.Join(wd, "maxrss")
	timeBin, timeErr := exec.LookPath("/usr/bin/time")
	if timeErr == nil {
		args = append([]string{timeBin, "-f", "%M", "-o", rssFile}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "FTP_PASSWORD="+pass)
	cmd.Stdout, cmd.Stderr = io.Discard, logFile
	t0 := time.Now()
	fmt.Fprintf(logFile, "bench: emarsys-etl started at %s\n", t0.UTC().Format(time.RFC3339Nano))
	err = cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %v (see %s)", o.etl, err, logPath)
	}
	var maxrss int64
	if timeErr == nil {
		b, err := os.ReadFile(rssFile)
		if err != nil {
			return 0, 0, 0, err
		}
		f := strings.Fields(string(b))
		kib, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("max RSS from %s: %q", timeBin, b)
		}
		maxrss = kib << 10
	} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxrss = ru.Maxrss << 10 // KiB; an upper bound, see above
	}
	// The load must be whole: every row of the files either in the table or
	// counted as a duplicate key the generator happened to repeat.
	var loaded uint64
	for _, rec := range mustWindows(ctx, store, from, to) {
		if rec.State != "done" {
			return 0, 0, 0, fmt.Errorf("window %s..%s ended in state %s: %s", rec.Start, rec.End, rec.State, rec.LastError)
		}
		loaded += rec.RowsLoaded
	}
	if loaded != uint64(o.rows) {
		return 0, 0, 0, fmt.Errorf("etl typed %d rows, the export has %d", loaded, o.rows)
	}
	// The CPU of the etl and its children, as the kernel counted it (GNU
	// time, when it wraps the etl, passes its child's on).
	return d, maxrss, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

func mustWindows(ctx context.Context, s *chstore.Store, from, to time.Time) []chstore.WindowRecord {
	recs, err := s.Windows(ctx, account, from, to)
	if err != nil {
		return []chstore.WindowRecord{{State: "unknown", LastError: err.Error()}}
	}
	return recs
}

// runClient inserts the file with clickhouse-client into a table of the same
// columns and engine as the etl's target, in a fresh database.
func runClient(o options, file string, run int) (time.Duration, time.Duration, error) {
	db := fmt.Sprintf("bench_client_%s_%d", randomHex(4), run)
	client := func(query string, stdin io.Reader, extra ...string) error { return chQuery(o, query, stdin, extra...) }
	cols := []string{"user_id UInt64"}
	for _, id := range contactFields {
		f, err := schema.ResolveContactField(id, nil)
		if err != nil {
			return 0, 0, err
		}
		typ := f.Kind.ClickHouseType()
		if f.Kind == schema.KindDate {
			typ = "Nullable(String)" // as the etl stores dates on 18.16
		}
		cols = append(cols, f.Column+" "+typ)
	}
	for _, id := range analysisFields {
		f, _ := schema.AnalysisField(id)
		typ := f.Kind.ClickHouseType()
		switch f.Kind {
		case schema.KindDateTime:
			typ = "DateTime('Europe/Vienna')" // the file's local times, read as such
		case schema.KindString:
			typ = "String"
		}
		cols = append(cols, f.Column+" "+typ)
	}
	cols = append(cols, "source String")
	if err := client("CREATE DATABASE "+db, nil); err != nil {
		return 0, 0, err
	}
	defer client("DROP DATABASE IF EXISTS "+db, nil)
	ddl := fmt.Sprintf("CREATE TABLE %s.t (%s) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(event_time) ORDER BY (user_id, event_time)",
		db, strings.Join(cols, ", "))
	if err := client(ddl, nil); err != nil {
		return 0, 0, err
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	t0 := time.Now()
	cpu, err := chQueryCPU(o, "INSERT INTO "+db+".t FORMAT CSVWithNames", f, "--format_csv_delimiter=;")
	if err != nil {
		return 0, 0, err
	}
	return time.Since(t0), cpu, nil
}

// runFTPRead reads every file over FTP with the product's reader and discards it.
func runFTPRead(fs *ftpd.Server, pass string, files []exportFile) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := fetch.FTPConfig{Host: fs.Host(), Port: fs.Port(), User: ftpUser, Password: pass, Folder: "exports"}
	t0 := time.Now()
	for _, f := range files {
		r, err := fetch.OpenFTP(ctx, cfg, filepath.Base(f.path))
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, r)
		r.Close()
		if err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

// chQueryCPU is chQuery that also returns the client's CPU time.
func chQueryCPU(o options, query string, stdin io.Reader, extra ...string) (time.Duration, error) {
	host, port, _ := strings.Cut(o.ch, ":")
	args := append([]string{"--host", host, "--port", port, "--query", query}, extra...)
	cmd := exec.Command(o.client, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("clickhouse-client %q: %v: %s", query, err, strings.TrimSpace(string(out)))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// serverCPU is the CPU time the ClickHouse server whose pid file is given
// has used so far (user + system, from /proc), or -1 when unknown.
func serverCPU(pidFile string) time.Duration {
	if pidFile == "" {
		return -1
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func serverCPUSince(pidFile string, s0 time.Duration) string {
	s1 := serverCPU(pidFile)
	if s0 < 0 || s1 < 0 {
		return ""
	}
	return fmt.Sprintf("  server_cpu=%.2fs", (s1 - s0).Seconds())
}

// quiesce waits (up to a minute) until the server runs no merge: the parts
// one measurement leaves behind are merged in the background, and that work
// would otherwise be charged to the next measurement, etl or client alike.
func quiesce(o options) {
	host, port, _ := strings.Cut(o.ch, ":")
	for range 600 {
		out, err := exec.Command(o.client, "--host", host, "--port", port, "--query", "SELECT count() FROM system.merges").Output()
		if err != nil || strings.TrimSpace(string(out)) == "0" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chQuery runs one query with clickhouse-client, stdin as its data.
func chQuery(o options, query string, stdin io.Reader, extra ...string) error {
	_, err := chQueryCPU(o, query, stdin, extra...)
	return err
}

func concat(dst string, files []exportFile) error {
	w, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer w.Close()
	for i, f := range files {
		r, err := os.Open(f.path)
		if err != nil {
			return err
		}
		var src io.Reader = r
		if i > 0 {
			// Later files' headers would be data rows to clickhouse-client.
			b := make([]byte, 1)
			for {
				if _, err := r.Read(b); err != nil || b[0] == '\n' {
					break
				}
			}
		}
		_, err = io.Copy(w, src)
		r.Close()
		if err != nil {
			return err
		}
	}
	return w.Close()
}

func totalSize(files []exportFile) int64 {
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f.path); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func rate(rows int, d time.Duration) float64 { return float64(rows) / d.Seconds() }

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
