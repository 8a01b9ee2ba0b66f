package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// writeHarnessConfig writes a config file pointing at the harness's
// simulator, FTP server and database, with secrets from the environment as
// in production; edit changes the YAML text (e.g. a wrong password).
func writeHarnessConfig(t *testing.T, h *pipelinetest.Harness, apiSecret, ftpPassword string, edits ...func(string) string) string {
	t.Helper()
	t.Setenv("ETL_TEST_API_SECRET", apiSecret)
	t.Setenv("ETL_TEST_FTP_PASSWORD", ftpPassword)
	if _, ok := os.LookupEnv("ETL_TEST_CH_PASSWORD"); !ok {
		t.Setenv("ETL_TEST_CH_PASSWORD", "") // the test ClickHouse's default user has none
	}
	c := h.Cfg
	ints := func(xs []int) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = fmt.Sprint(x)
		}
		return strings.Join(s, ", ")
	}
	yaml := fmt.Sprintf(`
account: %s
timezone: %s
emarsys: {auth: %s, token_url: "%s", base_url: "%s", user: %s, secret: "${ETL_TEST_API_SECRET}", poll_initial: 10ms, poll_max: 100ms, export_timeout: 1m, stuck_after: 30s}
export:
  contact_fields: [%s]
  analysis_fields: [%s]
  sources: [%s]
ftp: {host: %s, port: %d, user: %s, password: "${ETL_TEST_FTP_PASSWORD}", folder: %s, timeout: 10s}
clickhouse: {addr: "%s", database: %s, password: "${ETL_TEST_CH_PASSWORD}"}
schedule: {window: %s, lag: 0s, concurrency: 2, attempts: 1}
http: {listen: ""}
`, c.Account, c.TimeZone, c.Emarsys.Auth, c.Emarsys.TokenURL, c.Emarsys.BaseURL, c.Emarsys.User, ints(c.Export.ContactFields), ints(c.Export.AnalysisFields),
		strings.Join(c.Export.Sources, ", "), c.FTP.Host, c.FTP.Port, c.FTP.User, c.FTP.Folder,
		c.ClickHouse.Addr, c.ClickHouse.Database, c.Schedule.Window)
	for _, e := range edits {
		yaml = e(yaml)
	}
	p := filepath.Join(t.TempDir(), "etl.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runCLI runs the command as main would and returns its exit status and output.
func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}
