package pipeline_test

import (
	"context"
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// Backfills across both clock changes of 2026 in Europe/Vienna load exactly
// the rows the simulator generated. The simulator writes local wall-clock
// times, so in the autumn's repeated hour (02:00-03:00 twice) the file text
// alone is ambiguous; the parser's rule (csvrows: the export range, then the
// turn of the clock in the time-ordered file) must recover every true
// instant. Windows of other sizes and offsets over the same range, including
// one that ends and one that starts inside the repeated hour, must then add
// nothing: a row read differently by two files would show up as a duplicate.
func TestDSTBackfill(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})

	// Spring: 2026-03-29 02:00-03:00 local does not exist (01:00 UTC).
	springFrom := time.Date(2026, 3, 28, 18, 0, 0, 0, time.UTC)
	springTo := springFrom.Add(12 * time.Hour)
	h.Backfill(springFrom, springTo)
	h.AssertWarehouse(springFrom, springTo)

	// Autumn: 2026-10-25 02:00-03:00 local happens at 00:00-01:00 UTC (CEST)
	// and again at 01:00-02:00 UTC (CET).
	from := time.Date(2026, 10, 24, 18, 0, 0, 0, time.UTC)
	to := from.Add(12 * time.Hour)
	first := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)
	for _, occ := range []time.Time{first, first.Add(time.Hour)} {
		if n := len(h.Expected(occ, occ.Add(time.Hour))); n < 20 {
			t.Fatalf("the simulator made %d rows in the repeated hour from %s: the test proves too little", n, occ)
		}
	}
	res := h.Backfill(from, to)
	var added uint64
	for _, r := range res {
		added += r.New
	}
	want := h.AssertWarehouse(from, to)
	if added != uint64(want) {
		t.Errorf("6h windows added %d rows, the simulator made %d", added, want)
	}

	// The same hours again in windows that cut the repeated hour differently:
	// every row must already be there, resolved to the same instant.
	for _, again := range []struct {
		window   time.Duration
		from, to time.Time
	}{
		{time.Hour, first.Add(-time.Hour), first.Add(3 * time.Hour)},                   // ends/starts exactly at each occurrence
		{90 * time.Minute, first.Add(-30 * time.Minute), first.Add(150 * time.Minute)}, // ends and starts mid-hour
		{40 * time.Minute, first.Add(-20 * time.Minute), first.Add(100 * time.Minute)}, // several cuts inside
	} {
		h.Cfg.Schedule.Window = again.window
		h.Rebuild()
		for _, r := range h.Backfill(again.from, again.to) {
			if want := len(h.Expected(r.Window.Start, r.Window.End)); r.Loaded < uint64(want) {
				t.Errorf("%s window %s: loaded %d rows, the simulator made %d in it", again.window, r.Window, r.Loaded, want)
			}
			if r.New != 0 || r.Rejected != 0 {
				t.Errorf("%s window %s: %d new rows, %d rejected: a row was read at another instant than before", again.window, r.Window, r.New, r.Rejected)
			}
		}
	}
	h.AssertWarehouse(from, to)
	total := h.Count("SELECT count() FROM {db}.email_responses WHERE event_time >= ? AND event_time < ?", from, to)
	if total != uint64(want) {
		t.Errorf("%d rows in %s..%s, want %d", total, from, to, want)
	}
}

// A window ending inside the repeated hour is exported up to the first
// unambiguous minute after it, and those rows are stored: the after-load
// hooks (the aggregates) see that whole span, so a UTC day the extension
// reaches is recomputed too.
func TestDSTAfterLoadSpan(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Window: time.Hour})
	var spans []pipeline.Window
	h.Runner.AfterLoad = append(h.Runner.AfterLoad, func(_ context.Context, w pipeline.Window, _ chstore.WindowRecord) error {
		spans = append(spans, w)
		return nil
	})
	// 01:00-02:00 UTC is the second 02:00-03:00 of Vienna. The vendor reads
	// its start as the first 02:00 (00:00 UTC), and its last second would be
	// the first 02:59:59 too, so the request runs to 03:00:59 CET instead.
	from := time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC)
	h.Backfill(from, from.Add(time.Hour))
	want := pipeline.Window{Start: from.Add(-time.Hour), End: from.Add(time.Hour + time.Minute)}
	if len(spans) != 1 || spans[0] != want {
		t.Errorf("after-load span %v, want [%s]", spans, want)
	}
}
