package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

var day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// saveWindows writes ledger entries as the runner would, through the real store.
func saveWindows(t *testing.T, h *pipelinetest.Harness, recs ...chstore.WindowRecord) {
	t.Helper()
	for _, r := range recs {
		r.Account = "acme"
		if err := h.Store.SaveWindow(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func doneWindow(start time.Time, rows uint64) chstore.WindowRecord {
	return chstore.WindowRecord{Start: start, End: start.Add(6 * time.Hour), State: pipeline.StateDone,
		ExportID: start.Unix(), RowsRead: rows, RowsLoaded: rows, RowsNew: rows, RowsRejected: 1}
}

// A ledger with a missing window and a failed one: exit 1, both named, the
// per-day counts right; --json carries the same.
func TestStatusGapAndFailed(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	saveWindows(t, h,
		doneWindow(day0, 100),
		doneWindow(day0.Add(6*time.Hour), 200),
		// 12:00-18:00 missing
		doneWindow(day0.Add(18*time.Hour), 300),
		chstore.WindowRecord{Start: day0.Add(24 * time.Hour), End: day0.Add(30 * time.Hour), State: pipeline.StateFailed,
			ExportID: 77, LastError: "wait for export 77: export failed on the vendor side"},
		doneWindow(day0.Add(30*time.Hour), 400),
	)
	cfg := writeHarnessConfig(t, h, pipelinetest.APISecret, pipelinetest.FTPPassword)

	code, out, errOut := runCLI("--config", cfg, "--status")
	if code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"2026-11-02T12:00:00Z to 2026-11-02T18:00:00Z (6h0m0s)",
		"2026-11-03T00:00:00Z/2026-11-03T06:00:00Z: wait for export 77: export failed on the vendor side",
		"loaded without a gap until 2026-11-02T12:00:00Z",
		"2026-11-02 3 0 0 6h 600 600 3", // day done failed running missing loaded new rejected
		"2026-11-03 1 1 0 - 400 400 1",
		"status: NOT OK (1 gaps, 1 failed windows)",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("--status output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runCLI("--config", cfg, "--status", "--json")
	if code != exitFailed {
		t.Fatalf("--json exit %d, want 1", code)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if rep.OK || len(rep.Gaps) != 1 || !rep.Gaps[0].From.Equal(day0.Add(12*time.Hour)) || !rep.Gaps[0].To.Equal(day0.Add(18*time.Hour)) ||
		len(rep.Failed) != 1 || rep.Failed[0].Window != "2026-11-03T00:00:00Z/2026-11-03T06:00:00Z" ||
		len(rep.Days) != 2 || rep.Days[0].RowsLoaded != 600 || rep.Days[0].MissingHours != 6 || rep.Days[1].Failed != 1 ||
		rep.CoveredUntil == nil || !rep.CoveredUntil.Equal(day0.Add(12*time.Hour)) || rep.Windows != 5 {
		t.Errorf("--json report: %+v", rep)
	}
}

// A clean ledger: exit 0.
func TestStatusClean(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	saveWindows(t, h, doneWindow(day0, 10), doneWindow(day0.Add(6*time.Hour), 20))
	cfg := writeHarnessConfig(t, h, pipelinetest.APISecret, pipelinetest.FTPPassword)
	code, out, errOut := runCLI("--config", cfg, "--status")
	if code != exitOK || !strings.Contains(out, "status: OK") || !strings.Contains(out, "loaded without a gap until 2026-11-02T12:00:00Z") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// A file loaded by hand covers nothing for the scheduler, so it neither fills
// a gap nor moves covered_until (the lag): the report says what the daemon
// will still load.
func TestStatusManualWindowCoversNothing(t *testing.T) {
	manual := chstore.WindowRecord{Start: day0.Add(6*time.Hour + 17*time.Second), End: day0.Add(18 * time.Hour), State: pipeline.StateDone,
		Manual: true, RowsLoaded: 5, RowsNew: 5}
	rep := buildStatus([]chstore.WindowRecord{manual, doneWindow(day0, 10), doneWindow(day0.Add(18*time.Hour), 30)}, time.Time{}, day0.Add(48*time.Hour))
	if rep.OK || len(rep.Gaps) != 1 || !rep.Gaps[0].From.Equal(day0.Add(6*time.Hour)) || !rep.Gaps[0].To.Equal(day0.Add(18*time.Hour)) ||
		rep.CoveredUntil == nil || !rep.CoveredUntil.Equal(day0.Add(6*time.Hour)) || rep.Windows != 3 ||
		len(rep.Days) != 1 || rep.Days[0].Done != 3 || rep.Days[0].RowsLoaded != 45 {
		t.Errorf("report: %+v", rep)
	}
	// Only manual windows: no gap to report, nothing covered.
	rep = buildStatus([]chstore.WindowRecord{manual}, time.Time{}, day0.Add(48*time.Hour))
	if !rep.OK || len(rep.Gaps) != 0 || rep.CoveredUntil != nil {
		t.Errorf("manual only: %+v", rep)
	}
}
