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
	"path/filepath"
	"strings"
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// writeAccountsConfig writes a three-account config against the harness's
// simulator, FTP server and database: shared settings once at the top
// level, alpha (OAuth 2.0) and beta (WSSE) with the simulator's secret,
// gamma (OAuth 2.0) with a wrong one.
func writeAccountsConfig(t *testing.T, h *pipelinetest.Harness, edits ...func(string) string) string {
	t.Helper()
	t.Setenv("ETL_TEST_API_SECRET", pipelinetest.APISecret)
	t.Setenv("ETL_TEST_FTP_PASSWORD", pipelinetest.FTPPassword)
	t.Setenv("ETL_TEST_GAMMA_SECRET", "wrong-secret-Gm42")
	c := h.Cfg
	ints := func(xs []int) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, ", ")
	}
	yaml := fmt.Sprintf(`
timezone: %s
emarsys: {auth: %s, base_url: "%s", user: %s, secret: "${ETL_TEST_API_SECRET}", poll_initial: 10ms, poll_max: 100ms, export_timeout: 1m, stuck_after: 30s}
export:
  contact_fields: [%s]
  analysis_fields: [%s]
  sources: [%s]
ftp: {host: %s, port: %d, user: %s, password: "${ETL_TEST_FTP_PASSWORD}", folder: %s, timeout: 10s}
schedule: {window: %s, lag: 0s, concurrency: 2, attempts: 2}
clickhouse: {addr: "%s", database: %s}
http: {listen: ""}
accounts:
  - account: alpha
  - account: beta
    emarsys: {auth: wsse}
    schedule: {concurrency: 1}
  - account: gamma
    emarsys: {secret: "${ETL_TEST_GAMMA_SECRET}"}
`, c.TimeZone, c.Emarsys.Auth, c.Emarsys.BaseURL, c.Emarsys.User, ints(c.Export.ContactFields), ints(c.Export.AnalysisFields),
		strings.Join(c.Export.Sources, ", "), c.FTP.Host, c.FTP.Port, c.FTP.User, c.FTP.Folder, c.Schedule.Window,
		c.ClickHouse.Addr, c.ClickHouse.Database)
	for _, e := range edits {
		yaml = e(yaml)
	}
	p := filepath.Join(t.TempDir(), "etl.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 9, many accounts: three accounts in one process, one with a wrong
// password. The two good ones load exactly the simulator's rows; the third
// is reported failed with the reason, in the output, the ledger and
// --status; --account runs one account alone.
func TestThreeAccountsOneWrongPassword(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	cfg := writeAccountsConfig(t, h)
	from, to := day0, day0.Add(24*time.Hour)

	code, out, errOut := runCLI("--config", cfg, "--backfill", "--from", "2026-11-02", "--to", "2026-11-03")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1 (one account failed)\n%s\n%s", code, out, errOut)
	}
	// The two good accounts: every row the simulator produced, once.
	for _, acct := range []string{"alpha", "beta"} {
		want, got := h.Expected(from, to), h.WarehouseOf(acct, from, to)
		if len(want) < 1000 {
			t.Fatalf("the simulator produced %d rows: the test proves little", len(want))
		}
		t.Logf("%s: %d rows, simulator %d", acct, len(got), len(want))
		pipelinetest.Diff(t, want, got)
		if n := ledger(t, h, acct, pipeline.StateDone, ""); n != 4 {
			t.Errorf("%s: %d done windows in the ledger, want 4", acct, n)
		}
	}
	// The bad one: nothing loaded; the windows it tried are failed in the
	// ledger with the reason (once the credentials are refused the runner
	// starts no more of them: they would be refused the same way).
	if got := h.WarehouseOf("gamma", from, to); len(got) != 0 {
		t.Errorf("gamma loaded %d rows with a wrong secret", len(got))
	}
	gammaFailed := ledger(t, h, "gamma", pipeline.StateFailed, "HTTP 401: invalid_client (OAuth token refused)")
	if all := ledger(t, h, "gamma", "", ""); gammaFailed < 1 || gammaFailed != all {
		t.Errorf("gamma: %d of its %d ledger windows failed naming the refused credentials, want all and at least 1", gammaFailed, all)
	}
	for _, want := range []string{
		"account alpha:\nwindows: 4 total, 4 loaded now, 0 already done, 0 failed",
		"account beta:\nwindows: 4 total, 4 loaded now, 0 already done, 0 failed",
		"account gamma:\nwindows: 4 total, 0 loaded now, 0 already done, 4 failed",
		"2026-11-02T00:00:00Z/2026-11-02T06:00:00Z: ",
		"failed windows:\n  2026-11-02T00:00:00Z/2026-11-02T06:00:00Z: start export for 2026-11-02T00:00:00Z/2026-11-02T06:00:00Z: start responses export 2026-11-02 01:00:00..2026-11-02 06:59:59: emarsys API oauth2/token: HTTP 401: invalid_client (OAuth token refused)",
		"accounts: 3, 2 ok, 1 failed\n  alpha: ok\n  beta: ok\n  gamma: FAILED\n",
		"[gamma] [1/4] 2026-11-",
		"[alpha] [4/4] 2026-11-",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if i := strings.Index(out, "account gamma:"); i < 0 || strings.Contains(out[strings.Index(out, "account alpha:"):i], "401") {
		t.Errorf("the good accounts' summaries carry gamma's error:\n%s", out)
	}
	for _, secret := range []string{pipelinetest.APISecret, "wrong-secret-Gm42", pipelinetest.FTPPassword} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("a secret leaked into the output: %q", secret)
		}
	}

	// --status: per account; gamma NOT OK with its reason, exit 1.
	code, out, _ = runCLI("--config", cfg, "--status")
	if code != exitFailed {
		t.Errorf("--status exit %d, want 1", code)
	}
	for _, want := range []string{
		"account alpha, database " + h.DB + ": 4 windows in the ledger",
		"account beta, database " + h.DB + ": 4 windows in the ledger",
		fmt.Sprintf("account gamma, database %s: %d windows in the ledger", h.DB, gammaFailed),
		fmt.Sprintf("accounts: 3, NOT OK: gamma (0 gaps, %d failed windows)", gammaFailed),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("--config", cfg, "--status", "--json")
	var ms multiStatus
	if err := json.Unmarshal([]byte(out), &ms); err != nil || code != exitFailed {
		t.Fatalf("--status --json: exit %d, %v\n%s", code, err, out)
	}
	if ms.OK || len(ms.Accounts) != 3 || !ms.Accounts[0].OK || !ms.Accounts[1].OK || ms.Accounts[2].OK ||
		ms.Accounts[2].Account != "gamma" || len(ms.Accounts[2].Failed) != gammaFailed || !strings.Contains(ms.Accounts[2].Failed[0].Error, "OAuth token refused") {
		t.Errorf("--status --json: %+v", ms)
	}
	// One account alone: --status and --backfill --account.
	code, out, _ = runCLI("--config", cfg, "--status", "--account", "beta")
	if code != exitOK || !strings.Contains(out, "account beta,") || strings.Contains(out, "gamma") {
		t.Errorf("--status --account beta: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI("--config", cfg, "--backfill", "--from", "2026-11-02", "--to", "2026-11-03", "--account", "beta")
	if code != exitOK || !strings.Contains(out, "windows: 4 total, 0 loaded now, 4 already done, 0 failed") ||
		strings.Contains(out, "alpha") || strings.Contains(out, "gamma") || strings.Contains(out, "accounts:") {
		t.Errorf("--backfill --account beta: exit %d\n%s\n%s", code, out, errOut)
	}
	pipelinetest.Diff(t, h.Expected(from, to), h.WarehouseOf("beta", from, to))
	code, _, errOut = runCLI("--config", cfg, "--backfill", "--from", "2026-11-02", "--to", "2026-11-03", "--account", "delta")
	if code != exitUsage || !strings.Contains(errOut, "--account delta: the config has no such account (it has alpha, beta, gamma)") {
		t.Errorf("--account delta: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI("--config", cfg, "--load-file", "x.csv")
	if code != exitUsage || !strings.Contains(errOut, "add --account NAME") {
		t.Errorf("--load-file with three accounts: exit %d, %s", code, errOut)
	}
	// --check-config: every account checked, gamma's credentials named.
	code, out, _ = runCLI("--config", cfg, "--check-config")
	if code != exitFailed || !strings.Contains(out, "account alpha:\nconfiguration syntax and values: ok\nok   Emarsys API credentials") ||
		!strings.Contains(out, "account beta:\nconfiguration syntax and values: ok\nok   Emarsys API credentials (wsse") ||
		!strings.Contains(out, "account gamma:\nconfiguration syntax and values: ok\nFAIL Emarsys API credentials") ||
		!strings.HasSuffix(out, "\naccounts with failed checks: gamma\n") {
		t.Errorf("--check-config: exit %d\n%s", code, out)
	}
}

// ledger counts the account's windows of 2026-11-02 in state whose last
// error contains errPart.
func ledger(t *testing.T, h *pipelinetest.Harness, account, state, errPart string) int {
	t.Helper()
	recs, err := h.Store.Windows(t.Context(), account, day0, day0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if (state == "" || r.State == state) && strings.Contains(r.LastError, errPart) {
			n++
		}
	}
	return n
}

// The same three accounts in one daemon: each account's scheduler ticks on
// its own; the good ones load every window up to now while gamma's fail
// with the reason, tick after tick; readiness and metrics are per account;
// a stop ends all three.
func TestThreeAccountsOneDaemon(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	addr := freeAddr(t)
	start := time.Now().UTC().Truncate(6 * time.Hour).Add(-18 * time.Hour)
	path := writeAccountsConfig(t, h, func(y string) string {
		y = strings.Replace(y, `http: {listen: ""}`, `http: {listen: "`+addr+`"}`, 1)
		return strings.Replace(y, "schedule: {", `schedule: {cron: "@every 1s", grace: 5s, start: "`+start.Format(time.RFC3339)+`", `, 1)
	})
	cfgs, err := config.LoadAccounts(path)
	if err != nil {
		t.Fatal(err)
	}
	store := h.Store
	log := slog.New(slog.NewJSONHandler(h.Log, nil))
	srv, metrics := newOps(cfgs, store, log)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var out, errOut strings.Builder
	code := make(chan int, 1)
	go func() {
		code <- runAccounts(ctx, cfgs, store, srv, metrics, mode{manual: addLoadFileFlags(flag.NewFlagSet("x", flag.ContinueOnError))},
			&lockedWriter{w: &out}, &lockedWriter{w: &errOut}, log)
	}()

	// The daemon loads from start to now - schedule.lag for alpha and beta:
	// at least the first two windows (12 h of the 18 h since start), which
	// are compared row by row.
	end := start.Add(12 * time.Hour)
	deadline := time.Now().Add(90 * time.Second)
	for {
		a, b := coveredSince(t, h, "alpha", start), coveredSince(t, h, "beta", start)
		g := ledgerSince(t, h, "gamma", start, pipeline.StateFailed, "HTTP 401: invalid_client (OAuth token refused)")
		if !a.Before(end) && !b.Before(end) && g >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: alpha covered until %s, beta until %s, gamma %d failed windows; want %s, %s, 1\n%s", a, b, g, end, end, errOut.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, acct := range []string{"alpha", "beta"} {
		w, g := h.Expected(start, end), h.WarehouseOf(acct, start, end)
		if len(w) < 500 {
			t.Fatalf("the simulator produced %d rows: the test proves little", len(w))
		}
		pipelinetest.Diff(t, w, g)
	}
	if g := h.WarehouseOf("gamma", start, end); len(g) != 0 {
		t.Errorf("gamma loaded %d rows with a wrong secret", len(g))
	}
	get := func(p string) string {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ready := get("/readyz")
	// Each account has its own checks. Their scheduler checks may fail here:
	// a tick that loads windows outlasts two one-second intervals.
	for _, w := range []string{"ok   ledger alpha", "ok   ledger beta", "ok   ledger gamma", " scheduler alpha", " scheduler beta", " scheduler gamma"} {
		if !strings.Contains(ready, w) {
			t.Errorf("/readyz lacks %q:\n%s", w, ready)
		}
	}
	m := get("/metrics")
	for _, w := range []string{`emarsys_etl_windows{account="alpha",state="done"} `, `emarsys_etl_windows_finished_total{account="gamma",result="failed"} `,
		`emarsys_etl_windows{account="gamma",state="failed"} `} {
		if !strings.Contains(m, w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
	if strings.Contains(m, `emarsys_etl_windows_finished_total{account="alpha",result="failed"}`) {
		t.Error("alpha has failed windows")
	}

	stop()
	select {
	case c := <-code:
		if c != exitOK {
			t.Errorf("daemon exit %d after a stop, want 0\n%s", c, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	for _, w := range []string{`"msg":"daemon started","account":"alpha"`, `"msg":"daemon started","account":"beta"`, `"msg":"daemon started","account":"gamma"`,
		`"msg":"daemon stopped","account":"gamma"`, `"msg":"lease taken","account":"beta"`} {
		if !strings.Contains(h.Log.String(), w) {
			t.Errorf("log lacks %s", w)
		}
	}
	// The leases are given back: a second process takes all three at once.
	code2, out2, err2 := runCLI("--config", path, "--once")
	if code2 != exitFailed || !strings.Contains(out2, "gamma: FAILED") || !strings.Contains(out2, "alpha: ok") || strings.Contains(err2, "not starting") {
		t.Errorf("--once after the daemon: exit %d\n%s\n%s", code2, out2, err2)
	}
}

func ledgerSince(t *testing.T, h *pipelinetest.Harness, account string, from time.Time, state, errPart string) int {
	t.Helper()
	recs, err := h.Store.Windows(t.Context(), account, from, from.Add(48*time.Hour))
	if err != nil {
		return 0 // not created yet
	}
	n := 0
	for _, r := range recs {
		if r.State == state && strings.Contains(r.LastError, errPart) {
			n++
		}
	}
	return n
}

// coveredSince is the end of the account's gap-free done windows from start.
func coveredSince(t *testing.T, h *pipelinetest.Harness, account string, start time.Time) time.Time {
	t.Helper()
	recs, err := h.Store.Windows(t.Context(), account, start, start.Add(48*time.Hour))
	if err != nil {
		return start
	}
	var done []pipeline.Window
	for _, r := range recs {
		if r.State == pipeline.StateDone {
			done = append(done, pipeline.Window{Start: r.Start, End: r.End})
		}
	}
	if gaps := pipeline.Gaps(done, start, start.Add(48*time.Hour)); len(gaps) > 0 {
		return gaps[0].Start
	}
	return start.Add(48 * time.Hour)
}

// Each account has its own lease: one held by another instance keeps only
// that account from running; the others load, and the run says which did not
// start and why. --dry-run prints every account's requests.
func TestAccountsOwnLease(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	path := writeAccountsConfig(t, h, func(y string) string {
		return strings.Replace(y, "    emarsys: {secret: \"${ETL_TEST_GAMMA_SECRET}\"}\n", "", 1) // gamma's secret is right here
	})
	if _, err := h.Store.AcquireLease(t.Context(), "beta", "otherhost pid=1 run=x", chstore.LeaseOptions{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	from, to := day0, day0.Add(12*time.Hour)
	code, out, errOut := runCLI("--config", path, "--backfill", "--from", "2026-11-02", "--to", "2026-11-02T12:00:00Z")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, acct := range []string{"alpha", "gamma"} {
		pipelinetest.Diff(t, h.Expected(from, to), h.WarehouseOf(acct, from, to))
	}
	if got := h.WarehouseOf("beta", from, to); len(got) != 0 {
		t.Errorf("beta loaded %d rows while another instance held its lease", len(got))
	}
	for _, want := range []string{"accounts: 3, 2 ok, 1 failed\n  alpha: ok\n",
		"  beta: FAILED, not started: take the lease of account beta: account beta is being loaded by otherhost pid=1 run=x",
		"  gamma: ok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "[beta]") {
		t.Errorf("beta ran without its lease:\n%s", out)
	}

	code, out, _ = runCLI("--config", path, "--backfill", "--dry-run", "--from", "2026-11-02", "--to", "2026-11-02T12:00:00Z")
	if code != exitOK || strings.Count(out, "dry run: 2 windows, nothing is called") != 3 ||
		!strings.Contains(out, "account alpha: dry run") || !strings.Contains(out, "account gamma: dry run") {
		t.Errorf("--dry-run: exit %d\n%s", code, out)
	}
}

// An account whose FTP server is down (the vendor cannot deliver, the ETL
// cannot read) fails with the reason; the others load in full meanwhile.
func TestAccountsFTPDown(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	_, port, _ := strings.Cut(freeAddr(t), ":") // nothing listens there
	path := writeAccountsConfig(t, h, func(y string) string {
		return strings.Replace(y, `    emarsys: {secret: "${ETL_TEST_GAMMA_SECRET}"}`,
			`    emarsys: {stuck_after: 1s}
    ftp: {port: `+port+`}`, 1)
	})
	from, to := day0, day0.Add(12*time.Hour)
	code, out, errOut := runCLI("--config", path, "--backfill", "--from", "2026-11-02", "--to", "2026-11-02T12:00:00Z")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, acct := range []string{"alpha", "beta"} {
		pipelinetest.Diff(t, h.Expected(from, to), h.WarehouseOf(acct, from, to))
	}
	if n := ledger(t, h, "gamma", pipeline.StateFailed, ""); n != 2 {
		t.Errorf("gamma: %d failed windows, want 2", n)
	}
	recs, _ := h.Store.Windows(t.Context(), "gamma", from, to)
	for _, r := range recs {
		t.Logf("gamma %s %s: %s", r.Start.Format(time.RFC3339), r.State, r.LastError)
		if !strings.Contains(r.LastError, "FTP server 127.0.0.1") {
			t.Errorf("gamma's window %s fails without naming FTP: %s", r.Start, r.LastError)
		}
	}
	if !strings.Contains(out, "accounts: 3, 2 ok, 1 failed\n  alpha: ok\n  beta: ok\n  gamma: FAILED\n") {
		t.Errorf("output:\n%s", out)
	}
}
