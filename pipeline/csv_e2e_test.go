package pipeline_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// One window whose values hold the delimiter, quotes, line breaks and
// non-ASCII text (Generator.Tricky), with deliberately broken rows among
// them: the warehouse holds every good row exactly, the quarantine every
// broken one whole, with the line it starts on, and the ledger
// read = loaded + rejected.
func TestTrickyCSVAndQuarantine(t *testing.T) {
	const broken = 3
	h := pipelinetest.New(t, pipelinetest.Options{
		Generator: sim.Generator{Tricky: true},
		SimConfig: func(c *sim.Config) { c.BrokenRowsPerExport = broken },
	})
	from := time.Date(2026, 11, 3, 6, 0, 0, 0, time.UTC)
	to := from.Add(6 * time.Hour)
	res := h.Backfill(from, to)
	if len(res) != 1 {
		t.Fatalf("%d windows, want 1", len(res))
	}
	r := res[0]
	want := h.AssertWarehouse(from, to)
	if r.Read != uint64(want+broken) || r.Loaded != uint64(want) || r.Rejected != broken || r.New != uint64(want) {
		t.Errorf("read=%d loaded=%d rejected=%d new=%d; want %d read, %d loaded, %d rejected", r.Read, r.Loaded, r.Rejected, r.New, want+broken, want, broken)
	}
	if n := h.Count("SELECT count() FROM {db}.email_responses WHERE campaign_title LIKE '%;%\n%' OR link_title LIKE '%\"%'"); n == 0 {
		t.Fatal("no row holds a delimiter, line break or quote: the test proves nothing")
	}
	if n := h.Count("SELECT count() FROM {db}.email_responses WHERE campaign_title LIKE '%Über%'"); n == 0 {
		t.Fatal("no row holds non-ASCII text")
	}

	// The quarantine holds exactly the simulator's broken records, as the
	// vendor's writer put them in the file, at the line each starts on.
	info, ok := h.Sim.Export(r.ExportID)
	if !ok || len(info.Broken) != broken {
		t.Fatalf("simulator export %d: %v, %d broken rows", r.ExportID, ok, len(info.Broken))
	}
	file, err := os.ReadFile(filepath.Join(h.FTPDir, "exports", "archive", info.FileName))
	if err != nil {
		t.Fatalf("the archived export file: %v", err)
	}
	var wantQ []string
	for _, b := range info.Broken {
		var buf bytes.Buffer
		cw := csv.NewWriter(&buf)
		cw.Comma = ';'
		cw.Write(b.Fields)
		cw.Flush()
		raw := strings.TrimSuffix(buf.String(), "\n")
		at := bytes.Index(file, []byte("\n"+raw+"\n"))
		if at < 0 {
			t.Fatalf("broken record %d (%s) not found in the file", b.Record, b.Kind)
		}
		line := bytes.Count(file[:at+1], []byte("\n")) + 1
		wantQ = append(wantQ, strconv.Itoa(line)+"\t"+raw)
	}
	sort.Strings(wantQ)
	rows, err := h.Conn.Query(context.Background(), "SELECT toString(line), raw, reason, export_id, window_start FROM `"+h.DB+"`.email_responses_rejected ORDER BY line")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var gotQ []string
	for rows.Next() {
		var line, raw, reason string
		var export uint64
		var ws time.Time
		if err := rows.Scan(&line, &raw, &reason, &export, &ws); err != nil {
			t.Fatal(err)
		}
		if reason == "" || export != uint64(r.ExportID) || !ws.Equal(from) {
			t.Errorf("reject at line %s: reason %q, export %d, window %s", line, reason, export, ws)
		}
		gotQ = append(gotQ, line+"\t"+raw)
	}
	sort.Strings(gotQ)
	pipelinetest.Diff(t, wantQ, gotQ)

	recs, err := h.Store.Windows(context.Background(), "acme", from, to)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ledger: %v %+v", err, recs)
	}
	if rec := recs[0]; rec.RowsRead != rec.RowsLoaded+rec.RowsRejected || rec.RowsRejected != broken || rec.RowsLoaded != uint64(want) {
		t.Errorf("ledger counts: read=%d loaded=%d rejected=%d", rec.RowsRead, rec.RowsLoaded, rec.RowsRejected)
	}
}

// A window whose rejects pass export.max_reject_share is marked failed and
// loads nothing; raising the limit loads it, rejects included.
func TestRejectShareFailsWindow(t *testing.T) {
	const broken = 12 // about 2% of a 6-hour window at 120 responses per hour
	h := pipelinetest.New(t, pipelinetest.Options{
		SimConfig: func(c *sim.Config) { c.BrokenRowsPerExport = broken },
	})
	from := time.Date(2026, 11, 4, 12, 0, 0, 0, time.UTC)
	to := from.Add(6 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := h.Runner.Backfill(ctx, from, to)
	if len(res) != 1 || res[0].State != pipeline.StateFailed || res[0].Err == nil ||
		!strings.Contains(res[0].Err.Error(), "max_reject_share") {
		t.Fatalf("want one failed window naming max_reject_share, got %+v", res)
	}
	if r := res[0]; r.Rejected != broken || r.Read != r.Loaded+r.Rejected {
		t.Errorf("failed window counts: read=%d loaded=%d rejected=%d", r.Read, r.Loaded, r.Rejected)
	}
	if n := h.Count("SELECT count() FROM {db}.email_responses"); n != 0 {
		t.Errorf("a failed window loaded %d rows", n)
	}
	recs, err := h.Store.Windows(ctx, "acme", from, to)
	if err != nil || len(recs) != 1 || recs[0].State != pipeline.StateFailed || recs[0].RowsRejected != broken {
		t.Fatalf("ledger: %v %+v", err, recs)
	}

	h.Cfg.Export.MaxRejectShare = 0.05
	h.Rebuild()
	r := h.Backfill(from, to)[0]
	want := h.AssertWarehouse(from, to)
	if r.Loaded != uint64(want) || r.Rejected != broken {
		t.Errorf("after raising the limit: loaded=%d rejected=%d, want %d and %d", r.Loaded, r.Rejected, want, broken)
	}
	if n := h.Count("SELECT count() FROM {db}.email_responses_rejected"); n != broken {
		t.Errorf("quarantine holds %d rows, want %d", n, broken)
	}
}

// A small window with a few broken rows (well over 1% of it, within
// export.reject_allowance) loads its good rows instead of failing for ever.
func TestRejectAllowanceKeepsSmallWindows(t *testing.T) {
	const broken = 3
	h := pipelinetest.New(t, pipelinetest.Options{
		SimConfig: func(c *sim.Config) { c.BrokenRowsPerExport = broken },
	})
	from := time.Date(2026, 11, 4, 3, 0, 0, 0, time.UTC)
	to := from.Add(30 * time.Minute) // about 60 rows: 3 rejects are 5%
	r := h.Backfill(from, to)[0]
	want := h.AssertWarehouse(from, to)
	if r.Rejected != broken || r.Loaded != uint64(want) || float64(r.Rejected) <= 0.01*float64(r.Read) {
		t.Fatalf("read=%d loaded=%d rejected=%d, want %d rejected over 1%% and %d loaded", r.Read, r.Loaded, r.Rejected, broken, want)
	}
}

// A contact field added to the config gets its column at start-up; rows
// loaded before keep every value, rows loaded after fill the new column.
func TestContactFieldAdded(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{ContactFields: []int{1, 3}})
	w1 := time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
	w2 := w1.Add(6 * time.Hour)
	h.Backfill(w1, w2)
	before := h.Warehouse(w1, w2)
	if len(before) == 0 {
		t.Fatal("nothing loaded")
	}
	if n := h.Count("SELECT count() FROM system.columns WHERE database = '" + h.DB + "' AND table = 'email_responses' AND name = 'city'"); n != 0 {
		t.Fatal("email_responses has a city column before the field was configured")
	}

	h.Cfg.Export.ContactFields = []int{1, 3, 11}
	h.Rebuild()
	if n := h.Count("SELECT count() FROM system.columns WHERE database = '" + h.DB + "' AND table = 'email_responses' AND name = 'city'"); n != 1 {
		t.Fatal("start-up did not add the city column")
	}
	h.Backfill(w2, w2.Add(6*time.Hour))
	h.AssertWarehouse(w2, w2.Add(6*time.Hour)) // the new column is filled

	h.Cfg.Export.ContactFields = []int{1, 3}
	pipelinetest.Diff(t, before, h.Warehouse(w1, w2)) // the old rows are untouched
	if n := h.Count("SELECT count() FROM {db}.email_responses WHERE event_time < ? AND ifNull(toString(city), '') != ''", w2); n != 0 {
		t.Errorf("%d old rows got a city", n)
	}
}

// An export with no responses (a header line only) is a loaded, empty
// window, not an error.
func TestHeaderOnlyExport(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Config: func(c *config.Config) {
		c.Export.EmailID = 1 // no simulated campaign has this id
	}})
	from := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)
	r := h.Backfill(from, from.Add(6*time.Hour))[0]
	if r.Read != 0 || r.Loaded != 0 || r.Rejected != 0 || r.New != 0 {
		t.Errorf("empty export: read=%d loaded=%d rejected=%d new=%d", r.Read, r.Loaded, r.Rejected, r.New)
	}
	info, ok := h.Sim.Export(r.ExportID)
	if !ok || info.Rows != 0 || !info.Params.Header {
		t.Fatalf("the simulator's export %d: %v, %d rows, header %v", r.ExportID, ok, info.Rows, info.Params.Header)
	}
}
