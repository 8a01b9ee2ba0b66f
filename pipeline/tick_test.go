package pipeline_test

import (
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// A failed window between done ones is retried alone on the next tick: the
// windows after it are not exported again.
func TestTickRetriesOnlyTheFailedWindow(t *testing.T) {
	start := time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	h := pipelinetest.New(t, pipelinetest.Options{Window: 6 * time.Hour, Overlap: time.Hour})
	h.Cfg.Schedule.StartTime = start
	h.Cfg.Schedule.Lag = 0
	h.Rebuild()
	for _, r := range h.Backfill(start, start.Add(24*time.Hour)) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// The second window failed in some earlier run.
	failed := pipeline.Window{Start: start.Add(6 * time.Hour), End: start.Add(12 * time.Hour)}
	if err := h.Store.SaveWindow(t.Context(), chstore.WindowRecord{Account: h.Cfg.Account,
		Start: failed.Start, End: failed.End, State: pipeline.StateFailed, LastError: "test"}); err != nil {
		t.Fatal(err)
	}
	res, err := h.Runner.Tick(t.Context(), start.Add(24*time.Hour+30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		ran = append(ran, r.Window.String())
	}
	// The hole, then the tail from the loaded end minus the overlap.
	want := []string{failed.String(), "2026-11-04T23:00:00Z/2026-11-05T00:30:00Z"}
	if len(ran) != len(want) || ran[0] != want[0] || ran[1] != want[1] {
		t.Fatalf("tick ran %v, want %v", ran, want)
	}
	h.AssertWarehouse(start, start.Add(24*time.Hour+30*time.Minute))
}

// A window a crash left unfinished is resumed once, not also planned anew
// beside itself (two loads of one range at once).
func TestTickResumesWithoutPlanningTwice(t *testing.T) {
	start := time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	h := pipelinetest.New(t, pipelinetest.Options{Window: 6 * time.Hour})
	h.Cfg.Schedule.StartTime = start
	h.Cfg.Schedule.Lag = 0
	h.Rebuild()
	w := pipeline.Window{Start: start, End: start.Add(6 * time.Hour)}
	id, err := h.API.StartResponsesExport(t.Context(), h.Runner.ExportRequest(w))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.SaveWindow(t.Context(), chstore.WindowRecord{Account: h.Cfg.Account,
		Start: w.Start, End: w.End, State: pipeline.StateRequested, ExportID: id}); err != nil {
		t.Fatal(err)
	}
	res, err := h.Runner.Tick(t.Context(), start.Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Window, r.Err)
		}
		seen[r.Window.String()]++
	}
	if len(res) != 2 || seen[w.String()] != 1 {
		t.Fatalf("tick ran %v, want %s once and the next window", seen, w)
	}
	h.AssertWarehouse(start, start.Add(12*time.Hour))
}
