package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// writeExport writes what the vendor's web interface would export for
// [from, to): the simulator's rows in its own CSV writer, with n broken rows.
func writeExport(t *testing.T, h *pipelinetest.Harness, name string, from, to time.Time, o sim.CSVOptions, broken int) (string, []sim.Response) {
	t.Helper()
	rs := h.Gen.Responses(from, to)
	o.Loc = h.Gen.Loc
	o.Broken = sim.MakeBroken(rs, o, broken)
	var buf bytes.Buffer
	if err := sim.WriteCSV(&buf, rs, o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, rs
}

// --load-file: a hand-made export with other fields, delimiter and no header
// than the config's goes through the same parse, quarantine and load; it is
// recorded as a manual window; loading it again adds nothing.
func TestLoadFile(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	from := time.Date(2026, 11, 6, 8, 0, 0, 0, time.UTC)
	to := from.Add(3 * time.Hour)
	path, rs := writeExport(t, h, "by hand.csv", from, to, sim.CSVOptions{
		ContactFields: []int{3, 1}, AnalysisFields: []int{12, 8, 1}, Delimiter: ','}, 2)
	m := pipeline.ManualLoad{Path: path, ContactFields: []int{3, 1}, AnalysisFields: []int{12, 8, 1}, Fields: true,
		Delimiter: ",", NoHeader: true}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	res, err := pipeline.LoadFile(ctx, h.Runner, m)
	if err != nil || res.Err != nil || res.State != pipeline.StateDone {
		t.Fatalf("load file: %v, %+v", err, res)
	}
	n := uint64(len(rs))
	if res.Read != n+2 || res.Loaded != n || res.Rejected != 2 || res.New != n {
		t.Errorf("read=%d loaded=%d rejected=%d new=%d, want %d+2, %d, 2, %d", res.Read, res.Loaded, res.Rejected, res.New, n, n, n)
	}
	// The window spans the file's rows: [first event, last event + 1 s).
	if !res.Window.Start.Equal(rs[0].Time) || !res.Window.End.Equal(rs[len(rs)-1].Time.Add(time.Second)) {
		t.Errorf("manual window %s, rows span %s..%s", res.Window, rs[0].Time, rs[len(rs)-1].Time)
	}

	var want []string
	for _, r := range rs {
		want = append(want, fmt.Sprintf("%d|%s|%s|%s|%s|%d|%s", r.UserID, r.Source, r.Time.UTC().Format(time.DateTime),
			r.ContactValue(3), r.ContactValue(1), r.CampaignID, r.CampaignTitle))
	}
	sort.Strings(want)
	pipelinetest.Diff(t, want, manualRows(t, h))

	recs, err := h.Store.Windows(ctx, "acme", res.Window.Start, res.Window.End)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ledger: %v %+v", err, recs)
	}
	if rec := recs[0]; !rec.Manual || rec.State != pipeline.StateDone || rec.RowsRead != rec.RowsLoaded+rec.RowsRejected ||
		rec.RowsRejected != 2 || !strings.HasPrefix(rec.FileName, "by hand.csv sha256:") || rec.ExportID != 0 {
		t.Errorf("ledger entry: %+v", rec)
	}
	if q := h.Count("SELECT count() FROM {db}.email_responses_rejected WHERE export_id = 0 AND window_start = ?", res.Window.Start); q != 2 {
		t.Errorf("quarantine holds %d rows of the file, want 2", q)
	}

	// The same file again: skipped. A copy under another name: read again, nothing added.
	again, err := pipeline.LoadFile(ctx, h.Runner, m)
	if err != nil || !again.Skipped || again.Err != nil {
		t.Errorf("second load: %v %+v", err, again)
	}
	data, _ := os.ReadFile(path)
	m.Path = filepath.Join(t.TempDir(), "copy.csv")
	os.WriteFile(m.Path, data, 0o600)
	copied, err := pipeline.LoadFile(ctx, h.Runner, m)
	if err != nil || copied.Err != nil || copied.Skipped || copied.New != 0 || copied.Loaded != n {
		t.Errorf("copy: %v %+v", err, copied)
	}
	if got := h.Count("SELECT count() FROM {db}.email_responses"); got != n {
		t.Errorf("%d rows after loading the file three times, want %d", got, n)
	}
	if q := h.Count("SELECT count() FROM {db}.email_responses_rejected"); q != 2 {
		t.Errorf("quarantine holds %d rows after three loads, want 2", q)
	}
}

// The ways a hand-made file is refused or found empty.
func TestLoadFileRefused(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	from := time.Date(2026, 11, 7, 8, 0, 0, 0, time.UTC)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfgFields := sim.CSVOptions{ContactFields: h.Cfg.Export.ContactFields, AnalysisFields: h.Cfg.Export.AnalysisFields,
		Delimiter: ';', Header: true}

	// Too many rejects: the manual window is marked failed, nothing loaded.
	path, _ := writeExport(t, h, "broken.csv", from, from.Add(time.Hour), cfgFields, 10)
	res, err := pipeline.LoadFile(ctx, h.Runner, pipeline.ManualLoad{Path: path})
	if err != nil || res.State != pipeline.StateFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "max_reject_share") || res.Rejected != 10 {
		t.Errorf("broken file: %v %+v", err, res)
	}
	if n := h.Count("SELECT count() FROM {db}.email_responses"); n != 0 {
		t.Errorf("a failed manual load added %d rows", n)
	}

	// A header naming other fields than asked for: stopped, both shown.
	other := cfgFields
	other.ContactFields = []int{3}
	path, _ = writeExport(t, h, "other.csv", from, from.Add(time.Hour), other, 0)
	res, err = pipeline.LoadFile(ctx, h.Runner, pipeline.ManualLoad{Path: path})
	if err != nil || res.Err == nil || !strings.Contains(res.Err.Error(), "header does not match") ||
		!strings.Contains(res.Err.Error(), "First Name") || !strings.Contains(res.Err.Error(), "E-Mail") {
		t.Errorf("mismatched header: %v %+v", err, res)
	}

	// A header-only file: nothing to load, not a failure.
	path, _ = writeExport(t, h, "empty.csv", from, from.Add(time.Second), cfgFields, 0)
	res, err = pipeline.LoadFile(ctx, h.Runner, pipeline.ManualLoad{Path: path})
	if err != nil || !pipeline.IsNoRows(res.Err) || res.Read != 0 {
		t.Errorf("header-only file: %v %+v", err, res)
	}

	// No Time field: no window to place the rows in.
	_, err = pipeline.LoadFile(ctx, h.Runner, pipeline.ManualLoad{Path: path, ContactFields: []int{1}, AnalysisFields: []int{1}, Fields: true})
	if err == nil || !strings.Contains(err.Error(), "Time analysis field (8)") {
		t.Errorf("without Time: %v", err)
	}
}

func TestParseFields(t *testing.T) {
	for in, want := range map[string]string{
		"1,2,3:1,8,12": "[1 2 3] [1 8 12]",
		":8":           "[] [8]",
		" 3 , 1 :8,":   "[3 1] [8]",
		"1,2,3":        "error",
		"1,x:8":        "error",
	} {
		c, a, err := pipeline.ParseFields(in)
		got := "error"
		if err == nil {
			got = fmt.Sprint(orEmpty(c), " ", orEmpty(a))
		}
		if got != want {
			t.Errorf("ParseFields(%q) = %s, want %s", in, got, want)
		}
	}
}

func orEmpty(xs []int) []int {
	if xs == nil {
		return []int{}
	}
	return xs
}

// manualRows reads the rows of TestLoadFile's field set.
func manualRows(t *testing.T, h *pipelinetest.Harness) []string {
	t.Helper()
	rows, err := h.Conn.Query(context.Background(), "SELECT user_id, source_raw, toString(event_time), ifNull(email, ''), ifNull(first_name, ''), "+
		"assumeNotNull(campaign_id), campaign_title FROM `"+h.DB+"`.email_responses")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var uid, cid uint64
		var src, et, email, first, title string
		if err := rows.Scan(&uid, &src, &et, &email, &first, &cid, &title); err != nil {
			t.Fatal(err)
		}
		out = append(out, strconv.FormatUint(uid, 10)+"|"+src+"|"+et+"|"+email+"|"+first+"|"+strconv.FormatUint(cid, 10)+"|"+title)
	}
	sort.Strings(out)
	return out
}

// A hand-made file lacking a field response_key is built from (campaign id,
// link title, url) would give exported responses other keys and store them
// twice: over exported rows it is refused; with the identifying fields of
// the export it adds nothing.
func TestLoadFileOtherKeyFields(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	from := time.Date(2026, 11, 6, 6, 0, 0, 0, time.UTC)
	to := from.Add(6 * time.Hour)
	h.Backfill(from, to)
	n := h.Count("SELECT count() FROM {db}.email_responses")
	for _, c := range []struct {
		fields []int
		refuse bool
	}{{[]int{8, 1, 4, 5}, true}, {[]int{12, 8, 1}, true}, {[]int{12, 8, 1, 4, 5}, false}} {
		path, _ := writeExport(t, h, "hand.csv", from, to, sim.CSVOptions{ContactFields: []int{3, 1}, AnalysisFields: c.fields, Delimiter: ','}, 0)
		m := pipeline.ManualLoad{Path: path, ContactFields: []int{3, 1}, AnalysisFields: c.fields, Fields: true, Delimiter: ",", NoHeader: true}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := pipeline.LoadFile(ctx, h.Runner, m)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if refused := res.Err != nil && strings.Contains(res.Err.Error(), "stored twice"); refused != c.refuse || !c.refuse && (res.Err != nil || res.New != 0) {
			t.Errorf("fields %v: %+v, want refused=%v", c.fields, res, c.refuse)
		}
		if got := h.Count("SELECT count() FROM {db}.email_responses"); got != n {
			t.Fatalf("fields %v: %d rows after the file, want %d", c.fields, got, n)
		}
	}
}

// A manual load waits for the lease like a window does: under a claim that
// lost the race before its confirmation it stores nothing and writes no
// ledger entry.
func TestLoadFileWaitsForTheLease(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	from := time.Date(2026, 11, 8, 8, 0, 0, 0, time.UTC)
	path, _ := writeExport(t, h, "by hand.csv", from, from.Add(time.Hour), sim.CSVOptions{ContactFields: h.Cfg.Export.ContactFields,
		AnalysisFields: h.Cfg.Export.AnalysisFields, Delimiter: ';', Header: true}, 0)
	ctx := t.Context()
	holdOvertaken(t, h)
	res, err := pipeline.LoadFile(ctx, h.Runner, pipeline.ManualLoad{Path: path})
	if err == nil {
		err = res.Err
	}
	var held *chstore.LeaseHeldError
	if !errors.As(err, &held) {
		t.Fatalf("a manual load under a lease lost before its confirmation: %v, %+v; want the lease held by the intruder", err, res)
	}
	if n := h.Count("SELECT count() FROM {db}.email_responses"); n != 0 {
		t.Errorf("%d rows stored under a lost lease", n)
	}
	if n := h.Count("SELECT count() FROM {db}.etl_windows"); n != 0 {
		t.Errorf("%d ledger rows written under a lost lease", n)
	}
}
