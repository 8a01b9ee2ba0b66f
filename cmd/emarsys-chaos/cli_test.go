package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// The real binary: a second instance on the same account and database is
// refused (exit 4, naming the holder's pid and the expiry); SIGTERM lets the
// running windows finish within schedule.grace, starts no new one, releases
// the lease, and the next start completes the range exactly.
func TestBinarySecondInstanceAndSIGTERM(t *testing.T) {
	pipelinetest.RequireClickHouse(t)
	dir := t.TempDir()
	etl := filepath.Join(dir, "emarsys-etl")
	if out, err := exec.Command("go", "build", "-o", etl, "github.com/emarsys-etl/emarsys-etl/cmd/emarsys-etl").CombinedOutput(); err != nil {
		t.Fatalf("build emarsys-etl: %v\n%s", err, out)
	}
	ftpRoot := filepath.Join(dir, "ftp")
	if err := os.MkdirAll(filepath.Join(ftpRoot, "exports"), 0o755); err != nil {
		t.Fatal(err)
	}
	fs, err := ftpd.Start(ftpd.Options{Root: ftpRoot, User: ftpUser, Password: "ftp-pass-Q1"})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	loc, _ := time.LoadLocation("Europe/Vienna")
	gen := sim.Generator{Seed: 11, Loc: loc, EventsPerHour: 200}
	// Exports take a while, so the first instance is busy when the second comes.
	api := sim.New(sim.Config{User: apiUser, Secret: "api-secret-Q2", Generator: gen,
		ScheduledDelay: 50 * time.Millisecond, InProgressDelay: 1500 * time.Millisecond, ReadyDelay: 50 * time.Millisecond,
		FTPRetryInterval: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	defer api.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	db := "clitest_" + randomHex(5)
	o := Options{ClickHouseAddr: pipelinetest.Addr(), Database: db}
	defer cleanupDB(t, o)
	cfg := filepath.Join(dir, "etl.yaml")
	if err := writeConfig(cfg, ln.Addr().String(), fs.Host(), fs.Port(), o.ClickHouseAddr, db, time.Hour); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 10, 7, 0, 0, 0, 0, time.UTC)
	to := from.Add(6 * time.Hour) // 6 windows, 2 at a time
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(etl, "--config", cfg, "--backfill", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
		cmd.Env = append(os.Environ(), "EMARSYS_SECRET=api-secret-Q2", "FTP_PASSWORD=ftp-pass-Q1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	wait := func(cmd *exec.Cmd, d time.Duration) int {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			if err != nil {
				t.Fatal(err)
			}
			return 0
		case <-time.After(d):
			cmd.Process.Kill()
			t.Fatalf("emarsys-etl still running after %s", d)
			return -1
		}
	}

	conn, err := ch.Open(&ch.Options{Addr: []string{o.ClickHouseAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := t.Context()
	states := func() map[string]int {
		m := map[string]int{}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT toString(argMax(state, version)) FROM `%s`.etl_windows GROUP BY window_start, window_end", db))
		if err != nil {
			return m // not migrated yet
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			rows.Scan(&s)
			m[s]++
		}
		return m
	}

	first, firstOut := start()
	deadline := time.Now().Add(30 * time.Second)
	for states()["requested"] == 0 {
		if time.Now().After(deadline) {
			first.Process.Kill()
			t.Fatalf("no window was requested within 30s:\n%s", firstOut)
		}
		time.Sleep(20 * time.Millisecond)
	}

	second, secondOut := start()
	if code := wait(second, 30*time.Second); code != 4 {
		t.Errorf("second instance exited %d, want 4:\n%s", code, secondOut)
	}
	msg := secondOut.String()
	if !strings.Contains(msg, fmt.Sprintf("pid=%d", first.Process.Pid)) || !strings.Contains(msg, "lease until") {
		t.Errorf("the refusal must name the holder's pid %d and the expiry:\n%s", first.Process.Pid, msg)
	}

	// SIGTERM while two windows wait for their exports: they finish
	// (grace is 5s), the other four never start.
	first.Process.Signal(syscall.SIGTERM)
	if code := wait(first, 30*time.Second); code != 1 {
		t.Errorf("stopped backfill exited %d, want 1 (not every window done):\n%s", code, firstOut)
	}
	st := states()
	if st["done"] != 2 || len(st) != 1 {
		t.Errorf("after SIGTERM the ledger shows %v, want the 2 running windows done and nothing else started:\n%s", st, firstOut)
	}

	// The next start is not refused (the lease was released) and completes the range.
	third, thirdOut := start()
	if code := wait(third, 60*time.Second); code != 0 {
		t.Fatalf("resumed backfill exited %d:\n%s", code, thirdOut)
	}
	var n uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM `%s`.email_responses", db)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	want := len(gen.Filter(gen.Responses(from, to), sources))
	if want == 0 || n != uint64(want) {
		t.Errorf("warehouse holds %d rows, the simulator produced %d", n, want)
	}
}
