package pipeline

import (
	"context"
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSplit(t *testing.T) {
	ws := Split(ts("2026-11-01T00:00:00Z"), ts("2026-11-02T03:00:00Z"), 6*time.Hour)
	want := []string{
		"2026-11-01T00:00:00Z/2026-11-01T06:00:00Z", "2026-11-01T06:00:00Z/2026-11-01T12:00:00Z",
		"2026-11-01T12:00:00Z/2026-11-01T18:00:00Z", "2026-11-01T18:00:00Z/2026-11-02T00:00:00Z",
		"2026-11-02T00:00:00Z/2026-11-02T03:00:00Z",
	}
	if len(ws) != len(want) {
		t.Fatalf("got %d windows: %v", len(ws), ws)
	}
	for i := range ws {
		if ws[i].String() != want[i] {
			t.Errorf("window %d = %s, want %s", i, ws[i], want[i])
		}
	}
}

func TestGapsAndCoverage(t *testing.T) {
	done := []Window{
		{ts("2026-11-01T06:00:00Z"), ts("2026-11-01T12:00:00Z")},
		{ts("2026-11-01T00:00:00Z"), ts("2026-11-01T06:00:00Z")},
		{ts("2026-11-01T18:00:00Z"), ts("2026-11-02T00:00:00Z")},
	}
	end, ok := CoveredUntil(done)
	if !ok || !end.Equal(ts("2026-11-01T12:00:00Z")) {
		t.Fatalf("covered until %s", end)
	}
	gaps := Gaps(done, ts("2026-11-01T00:00:00Z"), ts("2026-11-02T06:00:00Z"))
	if len(gaps) != 2 || gaps[0].String() != "2026-11-01T12:00:00Z/2026-11-01T18:00:00Z" ||
		gaps[1].String() != "2026-11-02T00:00:00Z/2026-11-02T06:00:00Z" {
		t.Fatalf("gaps %v", gaps)
	}
}

func TestTickPlan(t *testing.T) {
	now := ts("2026-12-03T14:37:12Z")
	// Loaded up to 06:00; lag 2h -> up to 12:37:12; overlap 1h -> from 05:00.
	ws := TickPlan(ts("2026-12-03T06:00:00Z"), time.Time{}, now, 6*time.Hour, 2*time.Hour, time.Hour)
	if len(ws) != 2 || ws[0].String() != "2026-12-03T05:00:00Z/2026-12-03T11:00:00Z" ||
		ws[1].String() != "2026-12-03T11:00:00Z/2026-12-03T12:37:12Z" {
		t.Fatalf("plan %v", ws)
	}
	// Nothing new since the loaded end: no window.
	if ws := TickPlan(ts("2026-12-03T13:00:00Z"), time.Time{}, now, 6*time.Hour, 2*time.Hour, time.Hour); len(ws) != 0 {
		t.Fatalf("plan %v, want none", ws)
	}
	// The overlap never reaches before the floor.
	ws = TickPlan(ts("2026-12-03T06:00:00Z"), ts("2026-12-03T05:30:00Z"), now, 6*time.Hour, 2*time.Hour, time.Hour)
	if len(ws) != 2 || !ws[0].Start.Equal(ts("2026-12-03T05:30:00Z")) {
		t.Fatalf("floored plan %v", ws)
	}
	// Empty ledger with a start: catch up window by window.
	ws = TickPlan(time.Time{}, ts("2026-12-01T00:00:00Z"), now, 24*time.Hour, 2*time.Hour, time.Hour)
	if len(ws) != 3 || !ws[0].Start.Equal(ts("2026-12-01T00:00:00Z")) || !ws[2].End.Equal(ts("2026-12-03T12:37:12Z")) {
		t.Fatalf("catch-up plan %v", ws)
	}
}

func TestLocalRangeAcrossClockChanges(t *testing.T) {
	vie, _ := time.LoadLocation("Europe/Vienna")
	cases := []struct {
		w    Window
		want [2]string
	}{
		// Winter: UTC+1.
		{Window{ts("2026-11-01T00:00:00Z"), ts("2026-11-01T06:00:00Z")}, [2]string{"2026-11-01 01:00:00", "2026-11-01 06:59:59"}},
		// Summer: UTC+2.
		{Window{ts("2026-07-01T00:00:00Z"), ts("2026-07-02T00:00:00Z")}, [2]string{"2026-07-01 02:00:00", "2026-07-02 01:59:59"}},
		// Spring forward (2026-03-29 01:00Z): 02:00-03:00 local does not exist.
		{Window{ts("2026-03-29T00:00:00Z"), ts("2026-03-29T02:00:00Z")}, [2]string{"2026-03-29 01:00:00", "2026-03-29 03:59:59"}},
		// Autumn (2026-10-25 01:00Z): the window ends in the second 02:xx hour,
		// which the vendor would read as the first: the end moves past the repeated hour.
		{Window{ts("2026-10-24T18:00:00Z"), ts("2026-10-25T02:00:00Z")}, [2]string{"2026-10-24 20:00:00", "2026-10-25 03:00:59"}},
		// Ending in the first 02:xx hour is read correctly and stays.
		{Window{ts("2026-10-24T18:00:00Z"), ts("2026-10-25T00:30:00Z")}, [2]string{"2026-10-24 20:00:00", "2026-10-25 02:29:59"}},
	}
	for _, c := range cases {
		if got := LocalRange(c.w, vie); got != c.want {
			t.Errorf("LocalRange(%s) = %v, want %v", c.w, got, c.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	f, to, err := ParseRange("2026-11-01", "2026-11-08")
	if err != nil || !f.Equal(ts("2026-11-01T00:00:00Z")) || !to.Equal(ts("2026-11-08T00:00:00Z")) {
		t.Fatalf("%s %s %v", f, to, err)
	}
	if _, _, err := ParseRange("2026-11-08", "2026-11-01"); err == nil {
		t.Fatal("reversed range accepted")
	}
	if _, _, err := ParseRange("yesterday", "2026-11-01"); err == nil {
		t.Fatal("bad day accepted")
	}
}

// A tick a second after the last one plans nothing rather than a window of
// one second, whose export the API would refuse.
func TestTickPlanNoTinyTail(t *testing.T) {
	now := ts("2026-12-03T14:37:12Z")
	if ws := TickPlan(ts("2026-12-03T14:37:11Z"), time.Time{}, now, 6*time.Hour, 0, 0); len(ws) != 0 {
		t.Fatalf("plan %v, want none", ws)
	}
	if ws := TickPlan(ts("2026-12-03T14:37:11Z"), time.Time{}, now, 6*time.Hour, 0, time.Hour); len(ws) != 0 {
		t.Fatalf("plan with overlap %v, want none", ws)
	}
	// 12h 5s from the floor: two whole windows, the 5 s wait.
	ws := TickPlan(time.Time{}, ts("2026-12-03T02:37:07Z"), now, 6*time.Hour, 0, 0)
	if len(ws) != 2 || !ws[1].End.Equal(ts("2026-12-03T14:37:07Z")) {
		t.Fatalf("plan %v", ws)
	}
}

// The aggregates cover every row the load stored: the days of rows that a
// file held outside its window (they took the stage) are recomputed too.
func TestAfterLoadCoversStagedRows(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	var got []Window
	r := &Runner{Cfg: &config.Config{Loc: loc}}
	r.AfterLoad = append(r.AfterLoad, func(_ context.Context, w Window, _ chstore.WindowRecord) error {
		got = append(got, w)
		return nil
	})
	w := Window{Start: time.Date(2026, 11, 4, 6, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 4, 12, 0, 0, 0, time.UTC)}
	staged := Window{Start: time.Date(2026, 11, 2, 23, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 4, 8, 0, 0, 0, time.UTC)}
	for _, c := range []struct {
		staged Window
		want   Window
	}{
		{Window{}, w},
		{staged, Window{Start: staged.Start, End: w.End}},
	} {
		got = nil
		if err := r.afterLoad(context.Background(), w, chstore.WindowRecord{}, c.staged); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got[0].Start.Equal(c.want.Start) || !got[0].End.Equal(c.want.End) {
			t.Errorf("staged %v: hook saw %v, want %v", c.staged, got, c.want)
		}
	}
}
