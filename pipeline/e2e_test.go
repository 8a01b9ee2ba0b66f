package pipeline_test

import (
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// A multi-window backfill through simulator, FTP and ClickHouse leaves in
// email_responses exactly the rows the simulator generated, value for value;
// running it again adds nothing.
func TestBackfillEndToEnd(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(36 * time.Hour)

	res := h.Backfill(from, to)
	if len(res) != 6 {
		t.Fatalf("%d windows, want 6", len(res))
	}
	// Per window: the rows loaded are the rows the simulator generated for it.
	for _, r := range res {
		want := len(h.Expected(r.Window.Start, r.Window.End))
		if r.Loaded != uint64(want) || r.New != uint64(want) || r.Read != r.Loaded+r.Rejected || r.Rejected != 0 {
			t.Errorf("window %s: read=%d loaded=%d new=%d rejected=%d, simulator generated %d",
				r.Window, r.Read, r.Loaded, r.New, r.Rejected, want)
		}
		got := h.Count("SELECT count() FROM {db}.email_responses WHERE export_id = ?", uint64(r.ExportID))
		if got != uint64(want) {
			t.Errorf("window %s: %d rows carry its export id, want %d", r.Window, got, want)
		}
	}
	n := h.AssertWarehouse(from, to)
	total := h.Count("SELECT count() FROM {db}.email_responses")
	if total != uint64(n) {
		t.Fatalf("%d rows in the table, %d in the range", total, n)
	}
	// The ledger shows every window done with its counts.
	recs, err := h.Store.Windows(t.Context(), "acme", from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 {
		t.Fatalf("ledger has %d windows", len(recs))
	}
	for _, rec := range recs {
		if rec.State != pipeline.StateDone || rec.ExportID == 0 || rec.RowsRead == 0 {
			t.Errorf("ledger: %+v", rec)
		}
	}

	// Again: every window is skipped, nothing is requested or added.
	before := h.Sim.Requests()
	res = h.Backfill(from, to)
	for _, r := range res {
		if !r.Skipped {
			t.Errorf("window %s ran again", r.Window)
		}
	}
	if got := h.Sim.Requests(); got != before {
		t.Errorf("second backfill made %d API requests", got-before)
	}
	if got := h.Count("SELECT count() FROM {db}.email_responses"); got != total {
		t.Fatalf("second backfill changed the row count: %d -> %d", total, got)
	}
}

// Overlapping windows (as the daemon's sliding windows make them) never
// double-count: a re-read overlap adds no row.
func TestOverlappingWindowsAddNoDuplicates(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Window: 4 * time.Hour})
	from := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	h.Backfill(from, from.Add(8*time.Hour))
	// A window that overlaps both earlier ones by 3 hours on each side.
	ctx := t.Context()
	r := h.Runner.Run(ctx, pipeline.Window{Start: from.Add(1 * time.Hour), End: from.Add(10 * time.Hour)})
	if r.Err != nil || r.State != pipeline.StateDone {
		t.Fatalf("overlap window: %s %v", r.State, r.Err)
	}
	wantNew := len(h.Expected(from.Add(8*time.Hour), from.Add(10*time.Hour)))
	if r.New != uint64(wantNew) || r.Loaded != uint64(len(h.Expected(from.Add(time.Hour), from.Add(10*time.Hour)))) {
		t.Errorf("overlap window loaded %d, added %d; want %d new", r.Loaded, r.New, wantNew)
	}
	h.AssertWarehouse(from, from.Add(10*time.Hour))
}

// The daemon's tick plans from the ledger: the first tick from schedule.start,
// a later one from the loaded end minus the overlap, without duplicates.
func TestTickCatchesUpAndSlides(t *testing.T) {
	start := time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	h := pipelinetest.New(t, pipelinetest.Options{Window: 6 * time.Hour, Overlap: time.Hour})
	h.Cfg.Schedule.StartTime = start
	h.Cfg.Schedule.Lag = 30 * time.Minute
	h.Rebuild()

	now := start.Add(12*time.Hour + 30*time.Minute) // lagged end: 12:00
	res, err := h.Runner.Tick(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("first tick ran %d windows, want 2", len(res))
	}
	now = now.Add(3 * time.Hour) // lagged end 15:00: one window 11:00-15:00
	res, err = h.Runner.Tick(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].Window.Start.Equal(start.Add(11*time.Hour)) || !res[0].Window.End.Equal(start.Add(15*time.Hour)) {
		t.Fatalf("second tick: %+v", res)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	h.AssertWarehouse(start, start.Add(15*time.Hour))
}
