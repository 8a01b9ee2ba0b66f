package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// Flags that describe a file make sense only with --load-file, and
// --load-file runs alone.
func TestLoadFileUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--fields", "1:8"}, "need --load-file"},
		{[]string{"--no-header"}, "need --load-file"},
		{[]string{"--load-file", "x.csv", "--backfill"}, "--load-file runs alone"},
		{[]string{"--load-file", "x.csv", "--delimiter", "|"}, `--delimiter "|": use ; or ,`},
		{[]string{"--load-file", "x.csv", "--fields", "1,2"}, "want CONTACT_IDS:ANALYSIS_IDS"},
	} {
		code, _, stderr := runCLI(tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.msg)
		}
	}
}

// --load-file through the binary's own wiring: it prints read, loaded and
// rejected, loads nothing twice, and exits 1 when the window fails.
func TestLoadFileCLI(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{ContactFields: []int{1, 3}, AnalysisFields: []int{1, 8, 12}})
	cfg := writeHarnessConfig(t, h, pipelinetest.APISecret, pipelinetest.FTPPassword)
	from := time.Date(2026, 11, 8, 9, 0, 0, 0, time.UTC)
	rs := h.Gen.Filter(h.Gen.Responses(from, from.Add(2*time.Hour)), h.Cfg.Export.Sources)
	write := func(name string, o sim.CSVOptions, broken int) string {
		o.Loc = h.Gen.Loc
		o.Broken = sim.MakeBroken(rs, o, broken)
		var buf bytes.Buffer
		if err := sim.WriteCSV(&buf, rs, o); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	n := strconv.Itoa(len(rs))

	// No header, comma, the fields in another order than the config's.
	p := write("a.csv", sim.CSVOptions{ContactFields: []int{3}, AnalysisFields: []int{8, 1}, Delimiter: ','}, 1)
	args := []string{"--config", cfg, "--log-level", "error", "--load-file", p, "--fields", "3:8,1", "--delimiter", ",", "--no-header"}
	code, out, stderr := runCLI(args...)
	if want := "done read=" + strconv.Itoa(len(rs)+1) + " loaded=" + n + " new=" + n + " rejected=1"; code != exitOK || !strings.Contains(out, want) {
		t.Fatalf("first load: exit %d, stdout %q, stderr %q; want %q", code, out, stderr, want)
	}
	code, out, _ = runCLI(args...)
	if code != exitOK || !strings.Contains(out, "already loaded") {
		t.Errorf("second load: exit %d, %q", code, out)
	}
	if got := h.Count("SELECT count() FROM {db}.email_responses"); got != uint64(len(rs)) {
		t.Errorf("%d rows, want %d", got, len(rs))
	}

	// The config's own request, German header; too many broken rows (over
	// 1% and over the allowance of 5): exit 1.
	p = write("b.csv", sim.CSVOptions{ContactFields: []int{1, 3}, AnalysisFields: []int{1, 8, 12}, Delimiter: ';', Header: true, Language: "de"}, 8)
	code, out, _ = runCLI("--config", cfg, "--log-level", "error", "--load-file", p, "--language", "de")
	if code != exitFailed || !strings.Contains(out, "rejected=8") || !strings.Contains(out, "max_reject_share") {
		t.Errorf("broken file: exit %d, %q", code, out)
	}
}
