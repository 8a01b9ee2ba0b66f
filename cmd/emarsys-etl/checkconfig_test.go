package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// --check-config against the real simulator, FTP server and ClickHouse:
// all pass with the right secrets; a wrong FTP password or API secret fails
// the run and is named on its own line, and no secret is printed.
func TestCheckConfig(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	// Emarsys creates the folder with its first upload; a deployment has it.
	if err := os.MkdirAll(filepath.Join(h.FTPDir, h.Cfg.FTP.Folder), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, apiSecret, ftpPassword string
		wantCode                     int
		wantFail                     string
	}{
		{"all good", pipelinetest.APISecret, pipelinetest.FTPPassword, exitOK, ""},
		{"wrong FTP password", pipelinetest.APISecret, "wrong-ftp-Pw9911", exitFailed, "FAIL FTP login as " + pipelinetest.FTPUser},
		{"wrong API secret", "wrong-api-Sx5522", pipelinetest.FTPPassword, exitFailed, "FAIL Emarsys API credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeHarnessConfig(t, h, tc.apiSecret, tc.ftpPassword)
			code, out, errOut := runCLI("--config", cfg, "--check-config")
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.wantCode, out, errOut)
			}
			fails := strings.Count(out, "FAIL ")
			if tc.wantFail == "" {
				for _, want := range []string{"ok   Emarsys API credentials", "ok   FTP login", "ok   FTP folder exports exists",
					"ok   FTP folder exports can be read", "ok   FTP folder exports can be written", "ok   ClickHouse login",
					"ok   ClickHouse database " + h.DB + " is writable", "all checks passed"} {
					if !strings.Contains(out, want) {
						t.Errorf("output lacks %q:\n%s", want, out)
					}
				}
			} else if !strings.Contains(out, tc.wantFail) || fails != 1 {
				t.Errorf("want exactly one failure, %q:\n%s", tc.wantFail, out)
			}
			for _, sec := range []string{tc.apiSecret, tc.ftpPassword} {
				if strings.Contains(out+errOut, sec) {
					t.Errorf("output carries the secret %q", sec)
				}
			}
		})
	}
}

// --backfill --dry-run prints every window with its export request, the
// FTP password masked, and calls nothing: the simulator counts no request.
func TestDryRunCallsNothing(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	cfg := writeHarnessConfig(t, h, pipelinetest.APISecret, pipelinetest.FTPPassword)
	before := h.Sim.Requests()
	code, out, errOut := runCLI("--config", cfg, "--backfill", "--from", "2026-11-02", "--to", "2026-11-03", "--dry-run")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := h.Sim.Requests() - before; n != 0 {
		t.Errorf("dry run made %d requests", n)
	}
	for _, want := range []string{"dry run: 4 windows", "2026-11-02T00:00:00Z/2026-11-02T06:00:00Z POST ", "2026-11-02T18:00:00Z/2026-11-03T00:00:00Z POST ",
		`"time_range"`, `"2026-11-02 01:00:00"`, "email/getresponses"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, pipelinetest.FTPPassword) || strings.Contains(out+errOut, pipelinetest.APISecret) {
		t.Errorf("dry run printed a secret:\n%s", out)
	}
	if h.Count("SELECT count() FROM {db}.etl_windows") != 0 {
		t.Error("dry run wrote to the ledger")
	}
}
