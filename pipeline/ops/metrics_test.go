package ops_test

import (
	"bufio"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/ops"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// scrape reads /metrics into series ("name{labels}") -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// The counters on /metrics, scraped after each window and at the end of a
// backfill, equal what the simulator produced and the FTP server served.
func TestMetricsEndToEnd(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Concurrency: 1})
	reg := prometheus.NewRegistry()
	m := ops.NewMetrics(reg, "acme")
	ops.RegisterLedger(reg, h.Store, "acme")
	srv := ops.NewServer(reg, nil)
	hs := httptest.NewServer(srv)
	defer hs.Close()

	api, err := pipeline.NewAPIClient(h.Cfg, &http.Client{Transport: m.Transport(nil)}, nil, func(c *emarsys.Config) {
		c.RetryBase, c.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Runner.API = api
	m.Instrument(h.Runner)

	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	const acct = `{account="acme"}`
	// During the run (one window at a time): after window k, the counters
	// hold exactly the rows of windows 1..k.
	var wantSoFar float64
	finished := 0
	h.Runner.OnWindow = func(r pipeline.Result) {
		finished++
		wantSoFar += float64(len(h.Expected(r.Window.Start, r.Window.End)))
		got := scrape(t, hs.URL)
		if got["emarsys_etl_rows_loaded_total"+acct] != wantSoFar || got["emarsys_etl_rows_read_total"+acct] != wantSoFar {
			t.Errorf("after %d windows: rows loaded %v, read %v, want %v", finished,
				got["emarsys_etl_rows_loaded_total"+acct], got["emarsys_etl_rows_read_total"+acct], wantSoFar)
		}
		if v := got[`emarsys_etl_windows{account="acme",state="done"}`]; v != float64(finished) {
			t.Errorf("after %d windows: %v done in the ledger", finished, v)
		}
	}
	res := h.Backfill(from, to)
	if len(res) != 4 || finished != 4 {
		t.Fatalf("%d windows, %d reported", len(res), finished)
	}
	rows := float64(h.AssertWarehouse(from, to))
	if rows == 0 {
		t.Fatal("the simulator produced no rows")
	}

	got := scrape(t, hs.URL)
	var ftpBytes int64
	filepath.WalkDir(h.FTPDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				ftpBytes += fi.Size()
			}
		}
		return nil
	})
	var apiTotal float64
	for k, v := range got {
		if strings.HasPrefix(k, "emarsys_etl_api_requests_total{") {
			apiTotal += v
		}
	}
	want := map[string]float64{
		"emarsys_etl_rows_read_total" + acct:                                                             rows,
		"emarsys_etl_rows_loaded_total" + acct:                                                           rows,
		"emarsys_etl_rows_new_total" + acct:                                                              rows,
		"emarsys_etl_rows_rejected_total" + acct:                                                         0,
		`emarsys_etl_windows_finished_total{account="acme",result="done"}`:                               4,
		`emarsys_etl_windows{account="acme",state="done"}`:                                               4,
		`emarsys_etl_windows{account="acme",state="failed"}`:                                             0,
		"emarsys_etl_export_wait_seconds_count" + acct:                                                   4,
		"emarsys_etl_clickhouse_insert_seconds_count" + acct:                                             4,
		"emarsys_etl_ftp_transfer_seconds_count" + acct:                                                  4,
		"emarsys_etl_ftp_bytes_total" + acct:                                                             float64(ftpBytes),
		"emarsys_etl_covered_until_timestamp_seconds" + acct:                                             float64(to.Unix()),
		"emarsys_etl_ledger_up" + acct:                                                                   1,
		`emarsys_etl_api_requests_total{account="acme",endpoint="POST email/getresponses",status="200"}`: 4,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if apiTotal != float64(h.Sim.Requests()) {
		t.Errorf("API requests counted %v, the simulator served %d", apiTotal, h.Sim.Requests())
	}
	if got["emarsys_etl_lag_seconds"+acct] <= 0 {
		t.Errorf("lag %v, want the time since %s", got["emarsys_etl_lag_seconds"+acct], to)
	}
	// No label carries an export id, a file name or a secret.
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, bad := range []string{pipelinetest.APISecret, pipelinetest.FTPPassword, "export_id", ".csv"} {
		if strings.Contains(string(body), bad) {
			t.Errorf("/metrics contains %q", bad)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/api/v2/email/getresponses", "POST email/getresponses"},
		{"GET", "/api/v2/export/123456", "GET export/{id}"},
		{"GET", "/api/v2/export/98/data", "GET export/{id}/data"},
		{"GET", "/prefix/api/v3/settings", "GET settings"},
		{"GET", "/api/v2/contact/someone@example.com", "GET other"},
	} {
		if got := ops.Endpoint(tc.method, tc.path); got != tc.want {
			t.Errorf("Endpoint(%s %s) = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
