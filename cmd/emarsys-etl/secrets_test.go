package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// Known secrets go through every path that logs or returns an error: a
// wrong API secret (OAuth token fetch refused, WSSE login refused), a wrong
// FTP password, a ClickHouse password the server refuses, and a normal run
// at debug level. None of them may appear in stdout or stderr.
func TestSecretsNeverPrinted(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	if err := os.MkdirAll(filepath.Join(h.FTPDir, h.Cfg.FTP.Folder), 0o755); err != nil {
		t.Fatal(err)
	}
	const (
		wrongAPI = "wrong-api-Sx5522"
		wrongFTP = "wrong-ftp-Pw9911"
		chPass   = "ch-pass-Ab1278"
	)
	secrets := []string{pipelinetest.APISecret, pipelinetest.FTPPassword, wrongAPI, wrongFTP, chPass}
	wsse := func(y string) string {
		y = strings.Replace(y, "auth: oauth2", "auth: wsse", 1)
		return strings.Replace(y, "/api/v3/", "/api/v2/", 1)
	}
	oneWindow := []string{"--backfill", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-02T06:00:00Z", "--log-level", "debug"}
	for _, tc := range []struct {
		name      string
		apiSecret string
		ftpPass   string
		chPass    string
		edit      func(string) string
		args      []string
		wantCode  int
		wantIn    string // proves the path was taken
	}{
		{"token fetch refused", wrongAPI, pipelinetest.FTPPassword, "", nil, oneWindow, exitFailed, "invalid_client"},
		{"WSSE login refused", wrongAPI, pipelinetest.FTPPassword, "", wsse, oneWindow, exitFailed, "401"},
		{"check-config, wrong API secret", wrongAPI, pipelinetest.FTPPassword, "", nil, []string{"--check-config"}, exitFailed, "FAIL Emarsys"},
		{"check-config, wrong FTP password", pipelinetest.APISecret, wrongFTP, "", nil, []string{"--check-config"}, exitFailed, "530"},
		{"ClickHouse password refused, backfill", pipelinetest.APISecret, pipelinetest.FTPPassword, chPass, nil, oneWindow, exitStartup, "open ClickHouse"},
		{"ClickHouse password refused, status", pipelinetest.APISecret, pipelinetest.FTPPassword, chPass, nil, []string{"--status"}, exitStartup, "clickhouse"},
		{"ClickHouse password refused, check-config", pipelinetest.APISecret, pipelinetest.FTPPassword, chPass, nil, []string{"--check-config"}, exitFailed, "FAIL ClickHouse login"},
		{"dry run", pipelinetest.APISecret, pipelinetest.FTPPassword, "", nil, append(oneWindow, "--dry-run"), exitOK, `"password": "***"`},
		{"normal run at debug level", pipelinetest.APISecret, pipelinetest.FTPPassword, "", nil, oneWindow, exitOK, "export requested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ETL_TEST_CH_PASSWORD", tc.chPass)
			var edits []func(string) string
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			cfg := writeHarnessConfig(t, h, tc.apiSecret, tc.ftpPass, edits...)
			code, out, errOut := runCLI(append([]string{"--config", cfg}, tc.args...)...)
			all := out + errOut
			if code != tc.wantCode || !strings.Contains(all, tc.wantIn) {
				t.Fatalf("exit %d (want %d), output should contain %q:\n%s", code, tc.wantCode, tc.wantIn, all)
			}
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Errorf("output carries the secret %q:\n%s", s, all)
				}
			}
		})
	}
}

// The log scrubber finds a secret also where JSON escaping changed it.
func TestLoggerScrubsEscapedSecrets(t *testing.T) {
	const secret = `p"w<&>\x-Qz81`
	var buf strings.Builder
	log := newLogger(&buf, "debug", []string{secret})
	log.Error("login failed", "err", errors.New("dial: password "+secret+" refused"), "dsn", "clickhouse://u:"+secret+"@h:9000")
	out := buf.String()
	if !strings.Contains(out, "login failed") || !strings.Contains(out, "***") {
		t.Fatalf("unexpected log: %s", out)
	}
	for _, part := range []string{secret, `p\"w`, `\u003c\u0026`, "Qz81"} {
		if strings.Contains(out, part) {
			t.Errorf("log carries %q: %s", part, out)
		}
	}
}
