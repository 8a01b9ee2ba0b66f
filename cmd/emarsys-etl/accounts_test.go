package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// writeAccountsConfig writes a three-account config against the harness's
// simulator, FTP server and database: shared settings once at the top
// level, alpha and beta with the simulator's secret, gamma with a wrong one.
func writeAccountsConfig(t *testing.T, h *pipelinetest.Harness) string {
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
    schedule: {concurrency: 1}
  - account: gamma
    emarsys: {secret: "${ETL_TEST_GAMMA_SECRET}"}
`, c.TimeZone, c.Emarsys.Auth, c.Emarsys.BaseURL, c.Emarsys.User, ints(c.Export.ContactFields), ints(c.Export.AnalysisFields),
		strings.Join(c.Export.Sources, ", "), c.FTP.Host, c.FTP.Port, c.FTP.User, c.FTP.Folder, c.Schedule.Window,
		c.ClickHouse.Addr, c.ClickHouse.Database)
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
	// The bad one: nothing loaded, every window failed with the reason.
	if got := h.WarehouseOf("gamma", from, to); len(got) != 0 {
		t.Errorf("gamma loaded %d rows with a wrong secret", len(got))
	}
	if n := ledger(t, h, "gamma", pipeline.StateFailed, "authentication failed: check the API user name and secret"); n != 4 {
		t.Errorf("gamma: %d failed windows naming the refused credentials in the ledger, want 4", n)
	}
	for _, want := range []string{
		"account alpha:\nwindows: 4 total, 4 loaded now, 0 already done, 0 failed",
		"account beta:\nwindows: 4 total, 4 loaded now, 0 already done, 0 failed",
		"account gamma:\nwindows: 4 total, 0 loaded now, 0 already done, 4 failed",
		"2026-11-02T00:00:00Z/2026-11-02T06:00:00Z: ",
		"401",
		"authentication failed: check the API user name and secret",
		"accounts: 3, 2 ok, 1 failed\n  alpha: ok\n  beta: ok\n  gamma: FAILED\n",
		"[gamma] [1/4] 2026-11-",
		"[alpha] [4/4] 2026-11-",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if i := strings.Index(out, "account gamma:"); i < 0 || strings.Contains(out[strings.Index(out, "account alpha:"):i], "authentication failed") {
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
		"account gamma, database " + h.DB + ": 4 windows in the ledger",
		"accounts: 3, NOT OK: gamma (0 gaps, 4 failed windows)",
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
		ms.Accounts[2].Account != "gamma" || len(ms.Accounts[2].Failed) != 4 || !strings.Contains(ms.Accounts[2].Failed[0].Error, "authentication failed") {
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
		if r.State == state && strings.Contains(r.LastError, errPart) {
			n++
		}
	}
	return n
}
