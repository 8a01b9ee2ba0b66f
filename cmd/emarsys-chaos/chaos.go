package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/chserver"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
)

// Options shape one chaos run.
type Options struct {
	Seed       int64
	ETL        string        // the emarsys-etl binary
	Workdir    string        // FTP root, configs, logs
	Windows    int           // windows in the backfill
	Window     time.Duration // size of one window
	Kills      int           // SIGKILLs of the ETL, at least
	FTPDrops   int           // FTP server drops mid-file
	CHRestarts int           // ClickHouse SIGKILL+restart mid-load (needs Private)
	API5xx     int           // bursts of HTML 503 answers from the API's status call (25 each)
	// Private runs a clickhouse-server of our own on these ports (data in
	// Workdir/clickhouse) so it can be killed; when nil, ClickHouseAddr is
	// used and CHRestarts must be 0.
	Private        *Ports
	ClickHouseAddr string
	Database       string
	EventsPerHour  int
	MaxKillDelay   time.Duration // kills come after a random delay up to this
	Deadline       time.Duration // the whole run
	Log            io.Writer     // progress lines
}

// Ports of the private ClickHouse.
type Ports struct{ TCP, HTTP, Interserver int }

// Summary is what the run found.
type Summary struct {
	Seed                              int64
	Windows, Kills, FTPDrops, Restart int
	API5xx                            int
	Expected, Loaded, Lost, Duplicate int
	KillStates                        map[string]int
	Runs                              int
	// AggregatesDiffer counts BI aggregate rows not equal to the same
	// query over email_responses (must be 0).
	AggregatesDiffer int
}

// Line is the summary line `make chaos` prints.
func (s Summary) Line() string {
	return fmt.Sprintf("chaos: seed=%d windows=%d kills=%d ftp_drops=%d clickhouse_restarts=%d rows_expected=%d rows_loaded=%d lost=%d duplicated=%d",
		s.Seed, s.Windows, s.Kills, s.FTPDrops, s.Restart, s.Expected, s.Loaded, s.Lost, s.Duplicate)
}

const (
	account = "chaos"
	ftpUser = "emarsys"
	apiUser = "chaos_api"
)

var sources = []string{"trackable_links", "mail_open", "unsubscribe", "complaint"}

// faults injects FTP drops and ClickHouse restarts from inside file reads,
// which is exactly when a load is streaming into ClickHouse.
type faults struct {
	log        io.Writer
	ftpPending atomic.Int32
	chPending  atomic.Int32
	ftpDone    atomic.Int32
	chDone     atomic.Int32
	reads      atomic.Int32
	mu         sync.Mutex
	ftp        *ftpd.Server
	ftpOpts    ftpd.Options
	ch         *chserver.Server
	wg         sync.WaitGroup
}

// wrap is ftpd's WrapRead: every file download passes through it.
func (f *faults) wrap(path string, r io.ReadCloser) io.ReadCloser {
	n := f.reads.Add(1)
	fr := &faultReader{ReadCloser: r}
	// Spread the faults out: not on the very first downloads.
	if n >= 3 && n%3 == 0 && f.ftpPending.Load() > 0 && f.ftpPending.Add(-1) >= 0 {
		fr.dropAfter = 8 << 10
		fr.drop = func() { f.dropFTP(path) }
	} else if n >= 4 && f.chPending.Load() > 0 && f.chPending.Add(-1) >= 0 {
		// Restart while the loader streams this file into staging.
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.restartClickHouse(path) }()
	}
	return fr
}

// dropFTP cuts the transfer and takes the whole server away for a moment,
// then brings it back on the same address.
func (f *faults) dropFTP(path string) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		fmt.Fprintf(f.log, "chaos: FTP server dropped mid-file (%s)\n", path)
		f.ftp.Close()
		time.Sleep(700 * time.Millisecond)
		for i := 0; ; i++ {
			s, err := ftpd.Start(f.ftpOpts)
			if err == nil {
				f.ftp = s
				break
			}
			if i == 50 {
				fmt.Fprintf(f.log, "chaos: FTP server could not restart: %v\n", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		f.ftpDone.Add(1)
	}()
}

func (f *faults) restartClickHouse(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // let the staging inserts begin
	fmt.Fprintf(f.log, "chaos: ClickHouse killed (SIGKILL) while %s was loading\n", path)
	f.ch.Kill()
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := f.ch.Start(ctx); err != nil {
		fmt.Fprintf(f.log, "chaos: ClickHouse restart failed: %v\n", err)
		return
	}
	f.chDone.Add(1)
	fmt.Fprintf(f.log, "chaos: ClickHouse is back\n")
}

type faultReader struct {
	io.ReadCloser
	n         int
	dropAfter int
	drop      func()
	dropped   bool
}

func (r *faultReader) Read(p []byte) (int, error) {
	if r.drop != nil && r.n >= r.dropAfter {
		if !r.dropped {
			r.dropped = true
			r.drop()
		}
		return 0, errors.New("chaos: connection dropped")
	}
	n, err := r.ReadCloser.Read(p)
	r.n += n
	return n, err
}

// Run backfills o.Windows windows with the real emarsys-etl binary, killing it
// and breaking FTP and ClickHouse along the way, until the range is done;
// then compares the warehouse with the simulator.
func Run(ctx context.Context, o Options) (sum Summary, err error) {
	sum = Summary{Seed: o.Seed, Windows: o.Windows, KillStates: map[string]int{}}
	if o.Deadline <= 0 {
		o.Deadline = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b9))
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	// Fault goroutines log too.
	logw = &lockedWriter{w: logw}
	wd, err := filepath.Abs(o.Workdir)
	if err != nil {
		return sum, err
	}
	ftpRoot := filepath.Join(wd, "ftp")
	os.RemoveAll(ftpRoot)
	if err := os.MkdirAll(filepath.Join(ftpRoot, "exports"), 0o755); err != nil {
		return sum, fmt.Errorf("FTP root: %w", err)
	}

	f := &faults{log: logw}
	f.ftpPending.Store(int32(o.FTPDrops))
	addr := o.ClickHouseAddr
	if o.Private != nil {
		f.ch = &chserver.Server{Dir: filepath.Join(wd, "clickhouse"), TCP: o.Private.TCP, HTTP: o.Private.HTTP, Interserver: o.Private.Interserver}
		if err := f.ch.Start(ctx); err != nil {
			return sum, err
		}
		defer f.ch.Stop()
		addr = f.ch.Addr()
		f.chPending.Store(int32(o.CHRestarts))
	} else if o.CHRestarts > 0 {
		return sum, errors.New("ClickHouse restarts need a private ClickHouse (--private-clickhouse)")
	}
	defer f.wg.Wait()

	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		return sum, fmt.Errorf("connect to ClickHouse at %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+o.Database+"`"); err != nil {
		return sum, fmt.Errorf("drop the chaos database %s for a fresh run: %w", o.Database, err)
	}

	ftpPass, apiSecret := randomHex(12), randomHex(16)
	f.ftpOpts = ftpd.Options{Root: ftpRoot, User: ftpUser, Password: ftpPass, WrapRead: f.wrap}
	fs, err := ftpd.Start(f.ftpOpts)
	if err != nil {
		return sum, fmt.Errorf("start FTP server: %w", err)
	}
	f.ftp = fs
	f.ftpOpts.Addr = fs.Addr() // restarts come back on the same address
	defer func() { f.mu.Lock(); f.ftp.Close(); f.mu.Unlock() }()

	loc, _ := time.LoadLocation("Europe/Vienna")
	gen := sim.Generator{Seed: o.Seed, Loc: loc, EventsPerHour: o.EventsPerHour}
	api := sim.New(sim.Config{
		User: apiUser, Secret: apiSecret, Generator: gen,
		ScheduledDelay: 20 * time.Millisecond, InProgressDelay: 60 * time.Millisecond, ReadyDelay: 20 * time.Millisecond,
		FTPRetryInterval: 200 * time.Millisecond, NotifyRetryInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	defer api.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return sum, err
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	// A fixed past range: whole hours, the same for the same seed.
	from := time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Duration(o.Windows) * o.Window)
	cfgPath := filepath.Join(wd, "emarsys-etl.yaml")
	if err := writeConfig(cfgPath, ln.Addr().String(), fs.Host(), fs.Port(), addr, o.Database, o.Window); err != nil {
		return sum, err
	}
	logPath := filepath.Join(wd, "emarsys-etl.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return sum, err
	}
	defer logFile.Close()
	args := []string{"--config", cfgPath, "--backfill", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}
	fmt.Fprintf(logw, "chaos: %s %s (log %s)\n", o.ETL, strings.Join(args, " "), logPath)

	// Runs of the ETL: killed after a random delay while kills remain, then
	// left to finish; a run that fails (a fault that outlasted its retries)
	// is simply started again, as an operator or systemd would.
	maxRuns := o.Kills + 60
	defer func() {
		f.wg.Wait()
		sum.FTPDrops = int(f.ftpDone.Load())
		sum.Restart = int(f.chDone.Load())
	}()
	for {
		if sum.Runs >= maxRuns {
			return sum, fmt.Errorf("the range was not done after %d runs of emarsys-etl; see %s", sum.Runs, logPath)
		}
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("chaos run deadline (%s) passed after %d runs: %w", o.Deadline, sum.Runs, err)
		}
		if f.ch != nil {
			// Not while our ClickHouse is restarting: that run could only fail to start.
			waitDial(ctx, f.ch.Addr())
		}
		sum.Runs++
		if sum.Runs%4 == 3 && sum.API5xx < o.API5xx {
			api.SetFailNextStatus(25)
			sum.API5xx++
			fmt.Fprintf(logw, "chaos: the API answers the next 25 status calls with HTTP 503\n")
		}
		cmd := exec.Command(o.ETL, args...)
		cmd.Env = append(os.Environ(), "EMARSYS_SECRET="+apiSecret, "FTP_PASSWORD="+ftpPass)
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		if err := cmd.Start(); err != nil {
			return sum, fmt.Errorf("start %s: %w", o.ETL, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var runErr error
		killed := false
		if sum.Kills < o.Kills {
			// Fewer windows left than kills: shorter delays, so the kills
			// still find the range unfinished.
			upper := o.MaxKillDelay
			done := doneWindows(ctx, conn, o.Database)
			// A run needs ~0.3s before its first window, then does a few
			// windows a second.
			switch left, killsLeft := o.Windows-done, o.Kills-sum.Kills; {
			case left <= killsLeft:
				upper = min(upper, 250*time.Millisecond)
			case left <= 3*killsLeft:
				upper = min(upper, 900*time.Millisecond)
			}
			delay := time.Duration(50+rng.Int64N(int64(upper/time.Millisecond))) * time.Millisecond
			select {
			case runErr = <-exited:
			case <-time.After(delay):
				cmd.Process.Kill() // SIGKILL: no chance to tidy up
				<-exited
				killed = true
				sum.Kills++
				st := inFlight(ctx, conn, o.Database)
				for _, s := range st {
					sum.KillStates[s]++
				}
				if len(st) == 0 {
					sum.KillStates["starting"]++
				}
				fmt.Fprintf(logw, "chaos: kill %d after %s (%d of %d windows were done), unfinished windows: %v\n", sum.Kills, delay, done, o.Windows, st)
			}
		} else {
			select {
			case runErr = <-exited:
			case <-ctx.Done():
				cmd.Process.Kill()
				<-exited
				return sum, fmt.Errorf("emarsys-etl did not finish before the deadline; see %s", logPath)
			}
		}
		if killed {
			continue
		}
		if runErr == nil && sum.Kills >= o.Kills && f.ftpPending.Load() <= 0 && f.chPending.Load() <= 0 {
			break
		}
		if runErr != nil {
			fmt.Fprintf(logw, "chaos: run %d ended: %v; starting again\n", sum.Runs, runErr)
			time.Sleep(300 * time.Millisecond)
		} else if sum.Kills < o.Kills {
			return sum, fmt.Errorf("the range was done after %d of %d kills: use more windows or a shorter --max-kill-delay", sum.Kills, o.Kills)
		} else {
			return sum, errors.New("the range was done before every FTP drop / ClickHouse restart happened: use more windows")
		}
	}
	f.wg.Wait()

	// The oracle: the simulator's rows against the warehouse's, as multisets.
	want := map[string]int{}
	for _, r := range gen.Filter(gen.Responses(from, to), sources) {
		want[key(r.UserID, r.Source, r.Time.UTC().Format(time.DateTime), r.CampaignID, r.LinkTitle, r.URL)]++
		sum.Expected++
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT user_id, source_raw, toString(event_time), ifNull(campaign_id, 0), link_title, url FROM `%s`.email_responses WHERE account = '%s' AND event_time >= %d AND event_time < %d",
		o.Database, account, from.Unix(), to.Unix()))
	if err != nil {
		return sum, fmt.Errorf("read the warehouse: %w", err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var (
			uid, cid            uint64
			src, t, link, url_s string
		)
		if err := rows.Scan(&uid, &src, &t, &cid, &link, &url_s); err != nil {
			return sum, fmt.Errorf("read the warehouse: %w", err)
		}
		got[key(uid, src, t, cid, link, url_s)]++
		sum.Loaded++
	}
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("read the warehouse: %w", err)
	}
	for k, n := range want {
		if g := got[k]; g < n {
			sum.Lost += n - g
		}
	}
	for k, g := range got {
		if n := want[k]; g > n {
			sum.Duplicate += g - n
		}
	}
	if sum.AggregatesDiffer, err = aggregatesDiffer(ctx, conn, o.Database); err != nil {
		return sum, err
	}
	return sum, nil
}

// inFlight lists the ledger states of windows that are neither done nor
// failed: where the kill caught the ETL.
func inFlight(ctx context.Context, conn ch.Conn, db string) []string {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT toString(argMax(state, version)) AS s FROM `%s`.etl_windows WHERE account = '%s' GROUP BY window_start, window_end HAVING s NOT IN ('done', 'failed')", db, account))
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if rows.Scan(&s) == nil {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// doneWindows counts the windows the ledger shows done.
func doneWindows(ctx context.Context, conn ch.Conn, db string) int {
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM (SELECT argMax(state, version) AS s FROM `%s`.etl_windows WHERE account = '%s' GROUP BY window_start, window_end) WHERE s = 'done'", db, account)
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0 // no ledger yet, or ClickHouse restarting
	}
	return int(n)
}

func key(uid uint64, source, t string, cid uint64, link, url string) string {
	return strings.Join([]string{strconv.FormatUint(uid, 10), source, t, strconv.FormatUint(cid, 10), link, url}, "\t")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// waitDial waits (up to 2 minutes) until addr accepts connections.
func waitDial(ctx context.Context, addr string) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeConfig writes the ETL's configuration; secrets stay in the environment
// (EMARSYS_SECRET, FTP_PASSWORD).
func writeConfig(path, simAddr, ftpHost string, ftpPort int, chAddr, db string, window time.Duration) error {
	cfg := fmt.Sprintf(`# Written by emarsys-chaos.
account: %s
timezone: Europe/Vienna
emarsys:
  base_url: http://%s/api/v2/
  auth: wsse
  user: %s
  secret: ${EMARSYS_SECRET}
  poll_initial: 50ms
  poll_max: 200ms
  export_timeout: 2m
  stuck_after: 1m
export:
  contact_fields: [1, 2, 3, 11]
  analysis_fields: [1, 4, 5, 8, 12, 13]
  sources: [%s]
ftp: {host: %s, port: %d, user: %s, password: "${FTP_PASSWORD}", folder: exports, timeout: 5s, after_load: archive}
clickhouse: {addr: "%s", database: %s}
http: {listen: ""}
schedule: {window: %s, lag: 0s, concurrency: 2, attempts: 3, grace: 5s}
`, account, simAddr, apiUser, strings.Join(sources, ", "), ftpHost, ftpPort, ftpUser, chAddr, db, window)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write the ETL configuration: %w", err)
	}
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
