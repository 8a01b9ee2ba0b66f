package clickhouse

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

var testBase = time.Date(2024, 3, 30, 22, 0, 0, 0, time.UTC) // spans a month and partition boundary

// genRow fills r (reused, like the parser does) with the i-th test row.
func genRow(p csvrows.Plan, i int, r *csvrows.Row) {
	r.Line = i + 2
	r.InvalidUTF8 = i%11 == 0
	r.Values = r.Values[:0]
	sources := []string{"open", "click", "Click ", "weird", "unsubscribe", "tell_a_friend"}
	for _, f := range p.Fields {
		var v csvrows.Value
		switch f.Column {
		case "user_id":
			v.U = uint64(i + 1)
		case "source":
			v.S = sources[i%len(sources)]
		case "event_time":
			v.T = testBase.Add(time.Duration(i) * 7 * time.Second)
		case "campaign_id":
			if i%3 == 0 {
				v.Null = true
			} else {
				v.U = uint64(1000 + i%7)
			}
		case "date_of_birth":
			if i%5 == 0 {
				v.Null = true
			} else {
				v.T = time.Date(1950+i%60, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
			}
		case "email":
			v.S = fmt.Sprintf("u%d@example.com", i)
		case "section_header":
			v.S = fmt.Sprintf("O'Brien \\ \"quoted\" ; Grüße %d\n2nd line", i%4)
		default:
			if i%9 != 0 {
				v.S = fmt.Sprintf("%s-%d", f.Column, i%13)
			}
		}
		r.Values = append(r.Values, v)
	}
	shareText(r)
}

// rowText is the text buffer of each Row genRow fills.
var rowText = map[*csvrows.Row][]byte{}

// shareText moves the strings of r into r's one text buffer, overwriting
// the previous row's: the parser reuses its bytes the same way, so a Load
// that kept a string instead of copying it would store a later row's text
// and fail the row-by-row comparisons.
func shareText(r *csvrows.Row) {
	buf, ok := rowText[r]
	if !ok {
		buf = make([]byte, 0, 64<<10)
	}
	buf = buf[:0]
	for k := range r.Values {
		v := &r.Values[k]
		if v.S == "" {
			continue
		}
		if len(buf)+len(v.S) > cap(buf) {
			panic("shareText: row text over 64 KiB")
		}
		off := len(buf)
		buf = append(buf, v.S...)
		v.S = unsafe.String(&buf[off], len(v.S))
	}
	rowText[r] = buf
}

// stored is one email_responses row as the tests compare it.
type stored struct {
	Account                                               string
	EventTime                                             time.Time
	EventDate                                             string
	UserID                                                uint64
	Source, SourceRaw                                     string
	CampaignTitle, SectionHeader, SectionGroup, LinkTitle string
	URL                                                   string
	CampaignID                                            *uint64
	VersionName, CampaignCategory, LinkCategory           string
	Email                                                 string
	DateOfBirth                                           *string
	Tier                                                  string
	InvalidUTF8                                           uint8
	ExportID                                              uint64
	WindowStart, WindowEnd                                time.Time
}

func expected(p csvrows.Plan, account string, from, to int, ws, we time.Time, exportID uint64) []stored {
	var out []stored
	var r csvrows.Row
	for i := from; i < to; i++ {
		genRow(p, i, &r)
		for k := range r.Values { // kept beyond the next genRow
			r.Values[k].S = strings.Clone(r.Values[k].S)
		}
		e := stored{Account: account, ExportID: exportID, WindowStart: ws, WindowEnd: we}
		for k, f := range p.Fields {
			v := r.Values[k]
			switch f.Column {
			case "user_id":
				e.UserID = v.U
			case "source":
				e.SourceRaw = v.S
				e.Source = map[string]string{"open": "open", "click": "click", "Click ": "click", "unsubscribe": "unsubscribe", "tell_a_friend": "tell_a_friend"}[v.S]
				if e.Source == "" {
					e.Source = "other"
				}
			case "event_time":
				e.EventTime, e.EventDate = v.T, v.T.Format(time.DateOnly)
			case "campaign_id":
				if !v.Null {
					u := v.U
					e.CampaignID = &u
				}
			case "date_of_birth":
				if !v.Null {
					d := v.T.Format(time.DateOnly)
					e.DateOfBirth = &d
				}
			case "email":
				e.Email = v.S
			case "cf_tier":
				e.Tier = v.S
			case "campaign_title":
				e.CampaignTitle = v.S
			case "section_header":
				e.SectionHeader = v.S
			case "section_group":
				e.SectionGroup = v.S
			case "link_title":
				e.LinkTitle = v.S
			case "url":
				e.URL = v.S
			case "version_name":
				e.VersionName = v.S
			case "campaign_category":
				e.CampaignCategory = v.S
			case "link_category":
				e.LinkCategory = v.S
			}
		}
		if r.InvalidUTF8 {
			e.InvalidUTF8 = 1
		}
		out = append(out, e)
	}
	return out
}

func readStored(t *testing.T, s *Store, account string) []stored {
	t.Helper()
	q := `SELECT account, event_time, toString(event_date), user_id, toString(source), source_raw,
	campaign_title, section_header, section_group, link_title, url, campaign_id, version_name,
	campaign_category, link_category, email, toString(date_of_birth), cf_tier, invalid_utf8, export_id,
	window_start, window_end
FROM ` + s.table(factTable) + ` WHERE account = ` + quoteString(account) + ` ORDER BY user_id`
	rows, err := s.conn.Query(testCtx(t), q)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	defer rows.Close()
	var out []stored
	for rows.Next() {
		var e stored
		if err := rows.Scan(&e.Account, &e.EventTime, &e.EventDate, &e.UserID, &e.Source, &e.SourceRaw,
			&e.CampaignTitle, &e.SectionHeader, &e.SectionGroup, &e.LinkTitle, &e.URL, &e.CampaignID, &e.VersionName,
			&e.CampaignCategory, &e.LinkCategory, &e.Email, &e.DateOfBirth, &e.Tier, &e.InvalidUTF8, &e.ExportID,
			&e.WindowStart, &e.WindowEnd); err != nil {
			t.Fatalf("scan: %v", err)
		}
		e.EventTime, e.WindowStart, e.WindowEnd = e.EventTime.UTC(), e.WindowStart.UTC(), e.WindowEnd.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func compareStored(t *testing.T, got, want []stored) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("row %d differs:\n got %s\nwant %s", i, show(got[i]), show(want[i]))
		}
	}
}

func show(e stored) string {
	s := fmt.Sprintf("%+v", e)
	if e.CampaignID != nil {
		s += fmt.Sprintf(" campaign_id=%d", *e.CampaignID)
	}
	if e.DateOfBirth != nil {
		s += " dob=" + *e.DateOfBirth
	}
	return s
}

// loadRange loads rows [from, to) of the generator as one window.
func loadRange(t *testing.T, s *Store, spec LoadSpec, from, to int) uint64 {
	t.Helper()
	ctx := testCtx(t)
	l, err := s.BeginLoad(ctx, spec)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if want := s.keysAgree && s.cluster == "" && spec.Plan.Index("event_time") >= 0; l.direct != want {
		t.Fatalf("direct path %v, want %v", l.direct, want)
	}
	var r csvrows.Row
	for i := from; i < to; i++ {
		genRow(spec.Plan, i, &r)
		if err := l.Append(&r); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	n, err := l.Commit(ctx)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return n
}

// Both ways into email_responses must store the same rows once: the direct
// path (shadow table, Go keys) and the stage alone, which the product takes
// when the server's cityHash64 differs from the Go key.
func TestLoadExactlyOnce(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "direct", false: "staged"}[direct], func(t *testing.T) {
			testLoadExactlyOnce(t, direct)
		})
	}
}

func testLoadExactlyOnce(t *testing.T, direct bool) {
	s := newTestStore(t, 1000) // small blocks: several per load
	if !s.keysAgree {
		t.Fatal("the server's cityHash64 differs from the Go key: the direct path is off")
	}
	s.keysAgree = direct
	ctx := testCtx(t)
	plan := fullPlan(t)
	migrateFor(t, s, plan)
	const n = 4500
	ws, we := testBase, testBase.Add(24*time.Hour)
	spec := LoadSpec{Account: "acme's \\shop", WindowStart: ws, WindowEnd: we, ExportID: 77, Plan: plan}

	if got := loadRange(t, s, spec, 0, n); got != n {
		t.Fatalf("first load added %d rows, want %d", got, n)
	}
	compareStored(t, readStored(t, s, spec.Account), expected(plan, spec.Account, 0, n, ws, we, 77))

	// The stored key is the documented formula over the stored columns.
	var bad uint64
	if err := s.conn.QueryRow(ctx, "SELECT countIf(response_key != "+ResponseKeySQL+") FROM "+s.table(factTable)).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d rows whose response_key is not ResponseKeySQL", bad)
	}

	// The same window again (a re-run after a crash, or a duplicate file).
	spec.ExportID = 78
	if got := loadRange(t, s, spec, 0, n); got != 0 {
		t.Fatalf("second load of the same rows added %d, want 0", got)
	}
	if got := countRows(t, s, factTable); got != n {
		t.Fatalf("table holds %d rows after reload, want %d", got, n)
	}

	// A window overlapping the second half of the first one.
	spec2 := spec
	spec2.WindowStart, spec2.WindowEnd, spec2.ExportID = ws.Add(12*time.Hour), we.Add(12*time.Hour), 79
	if got := loadRange(t, s, spec2, n/2, n+n/2); got != n/2 {
		t.Fatalf("overlapping load added %d rows, want %d", got, n/2)
	}
	want := append(expected(plan, spec.Account, 0, n, ws, we, 77), expected(plan, spec.Account, n, n+n/2, spec2.WindowStart, spec2.WindowEnd, 79)...)
	compareStored(t, readStored(t, s, spec.Account), want)

	// Another account with the very same rows is another set of responses.
	other := spec
	other.Account = "other"
	if got := loadRange(t, s, other, 0, 10); got != 10 {
		t.Fatalf("other account added %d, want 10", got)
	}

	// No staging table survives a commit.
	assertNoStaging(t, s)
}

func TestLoadDedupsWithinFileAndDefaultsMissingFields(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// No campaign id, no contact fields: campaign_id must stay NULL.
	plan, err := csvrows.NewPlan(nil, []int{schema.AnalysisCampaignTitle, schema.AnalysisURL, schema.AnalysisTime}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), ExportID: 1, Plan: plan}
	l, err := s.BeginLoad(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	row := func(line int, user uint64, url string) *csvrows.Row {
		return &csvrows.Row{Line: line, Values: []csvrows.Value{{U: user}, {S: "C"}, {S: url}, {T: testBase}, {S: "click"}}}
	}
	for _, r := range []*csvrows.Row{row(2, 1, "u"), row(3, 1, "u"), row(4, 1, "v"), row(5, 2, "u")} {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3 {
		t.Fatalf("added %d rows, want 3 (one duplicate in the file)", got)
	}
	var nulls, defaults uint64
	if err := s.conn.QueryRow(ctx, "SELECT countIf(isNull(campaign_id)), countIf(link_title = '' AND version_name = '') FROM "+s.table(factTable)).Scan(&nulls, &defaults); err != nil {
		t.Fatal(err)
	}
	if nulls != 3 || defaults != 3 {
		t.Errorf("campaign_id NULL in %d rows, defaults in %d; want 3 and 3", nulls, defaults)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	s := newTestStore(t, 100)
	ctx := testCtx(t)
	plan := fullPlan(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	l, err := s.BeginLoad(ctx, LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	var r csvrows.Row
	for i := range 350 { // three blocks sent, some rows buffered
		genRow(plan, i, &r)
		if err := l.Append(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Reject(csvrows.Reject{Line: 9, Raw: "x", Reason: "y"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(&r); err == nil {
		t.Error("Append after Abort succeeded")
	}
	if _, err := l.Commit(ctx); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if n := countRows(t, s, factTable); n != 0 {
		t.Errorf("email_responses holds %d rows after Abort", n)
	}
	if n := countRows(t, s, rejectTable); n != 0 {
		t.Errorf("email_responses_rejected holds %d rows after Abort", n)
	}
	assertNoStaging(t, s)
}

func TestRejectsStoredOnce(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	plan := fullPlan(t)
	spec := LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), ExportID: 5, Plan: plan}
	rejects := []csvrows.Reject{
		{Line: 3, Raw: "1;x;'quoted' \\ raw", Reason: "user_id: not a number"},
		{Line: 7, Raw: "only;two", Reason: "2 fields, want 16"},
	}
	for range 2 { // the second run must add nothing
		l, err := s.BeginLoad(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, rj := range rejects {
			if err := l.Reject(rj); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := s.conn.Query(ctx, "SELECT line, raw, reason, export_id, window_start, raw_key = "+RejectKeySQL+" FROM "+s.table(rejectTable)+" ORDER BY line")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []csvrows.Reject
	for rows.Next() {
		var (
			line   uint32
			rj     csvrows.Reject
			export uint64
			start  time.Time
			keyOK  uint8
		)
		if err := rows.Scan(&line, &rj.Raw, &rj.Reason, &export, &start, &keyOK); err != nil {
			t.Fatal(err)
		}
		rj.Line = int(line)
		if export != 5 || !start.Equal(testBase) || keyOK != 1 {
			t.Errorf("reject line %d: export %d, window_start %s, key ok %d", line, export, start, keyOK)
		}
		got = append(got, rj)
	}
	if !reflect.DeepEqual(got, rejects) {
		t.Errorf("rejects = %+v, want %+v", got, rejects)
	}
}

func TestAppendRefusesBadRow(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	plan := fullPlan(t)
	l, err := s.BeginLoad(ctx, LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Abort(ctx)
	if err := l.Append(&csvrows.Row{Line: 2, Values: []csvrows.Value{{U: 1}}}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("short row: err = %v, want one naming line 2", err)
	}
	if _, err := l.Commit(ctx); err == nil {
		t.Error("Commit after a failed Append succeeded")
	}
}

// A file without the Time field (a hand-made export) still loads: its rows
// are placed at the window start, the only moment the file vouches for.
func TestLoadWithoutTimeUsesWindowStart(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	plan, err := csvrows.NewPlan(nil, []int{schema.AnalysisURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.BeginLoad(ctx, LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	row := &csvrows.Row{Line: 2, Values: []csvrows.Value{{U: 42}, {S: "https://x.example/"}, {S: "click"}}}
	if err := l.Append(row); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Commit(ctx); err != nil || n != 1 {
		t.Fatalf("commit: %d %v", n, err)
	}
	var got time.Time
	var url string
	if err := s.conn.QueryRow(ctx, "SELECT event_time, url FROM "+s.table("email_responses")).Scan(&got, &url); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(testBase) || url != "https://x.example/" {
		t.Fatalf("event_time %s url %q, want %s and the URL", got, url, testBase)
	}
}

func assertNoStaging(t *testing.T, s *Store) {
	t.Helper()
	var n uint64
	q := "SELECT count() FROM system.tables WHERE database = " + quoteString(s.db) + " AND startsWith(name, '_stage_')"
	if err := s.conn.QueryRow(testCtx(t), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}

// Two overlapping windows loading at once: each fills its own shadow, and
// whichever commits second finds its range no longer empty and adds only
// the rows the first did not store.
func TestOverlappingDirectLoads(t *testing.T) {
	s := newTestStore(t, 500)
	ctx := testCtx(t)
	plan := fullPlan(t)
	migrateFor(t, s, plan)
	// Row i is at testBase + 7i seconds.
	spec1 := LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(6 * time.Hour), ExportID: 1, Plan: plan}
	spec2 := LoadSpec{Account: "a", WindowStart: testBase.Add(3 * time.Hour), WindowEnd: testBase.Add(9 * time.Hour), ExportID: 2, Plan: plan}
	first := func(at time.Duration) int { return int((at + 6*time.Second) / (7 * time.Second)) }
	r1 := [2]int{0, first(6 * time.Hour)}
	r2 := [2]int{first(3 * time.Hour), first(9 * time.Hour)}
	begin := func(spec LoadSpec, rows [2]int) *Load {
		l, err := s.BeginLoad(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if !l.direct {
			t.Fatal("not on the direct path")
		}
		var r csvrows.Row
		for i := rows[0]; i < rows[1]; i++ {
			genRow(plan, i, &r)
			if err := l.Append(&r); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	l1, l2 := begin(spec1, r1), begin(spec2, r2)
	n2, err := l2.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := l1.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n2 != uint64(r2[1]-r2[0]) || n1 != uint64(r2[0]-r1[0]) {
		t.Fatalf("added %d then %d rows, want %d then %d", n2, n1, r2[1]-r2[0], r2[0]-r1[0])
	}
	want := append(expected(plan, "a", r1[0], r2[0], spec1.WindowStart, spec1.WindowEnd, 1),
		expected(plan, "a", r2[0], r2[1], spec2.WindowStart, spec2.WindowEnd, 2)...)
	compareStored(t, readStored(t, s, "a"), want)
	assertNoStaging(t, s)
}

func TestCompressionChoice(t *testing.T) {
	for _, c := range []struct {
		mode, addr string
		lz4        bool
	}{
		{"auto", "127.0.0.1:9000", false}, {"", "localhost:9000", false}, {"auto", "[::1]:9000", false},
		{"auto", "clickhouse:9000", true}, {"auto", "10.0.0.5:9000", true}, {"lz4", "127.0.0.1:9000", true}, {"none", "db:9000", false},
	} {
		got, err := compression(c.mode, c.addr)
		if err != nil || (got != nil) != c.lz4 {
			t.Errorf("compression(%q, %q) = %v, %v; want LZ4 %v", c.mode, c.addr, got, err, c.lz4)
		}
	}
	if _, err := compression("zstd", "db:9000"); err == nil {
		t.Error("compression zstd accepted")
	}
}

// LZ4 (what a remote server gets) loads the same rows as no compression.
func TestLoadWithLZ4(t *testing.T) {
	requireServer(t)
	s := newTestStore(t, 300)
	ctx := testCtx(t)
	lz, err := Open(ctx, Config{Addr: testAddr(), Database: s.db, BatchRows: 300, Compression: "lz4"})
	if err != nil {
		t.Fatal(err)
	}
	defer lz.Close()
	plan := fullPlan(t)
	migrateFor(t, lz, plan)
	spec := LoadSpec{Account: "z", WindowStart: testBase, WindowEnd: testBase.Add(24 * time.Hour), ExportID: 5, Plan: plan}
	if n := loadRange(t, lz, spec, 0, 1000); n != 1000 {
		t.Fatalf("added %d rows, want 1000", n)
	}
	compareStored(t, readStored(t, lz, "z"), expected(plan, "z", 0, 1000, spec.WindowStart, spec.WindowEnd, 5))
}

// Rows a file holds outside its window take the stage, are stored, and
// their span is reported so that their days' aggregates can follow.
func TestStagedSpanOfRowsOutsideTheWindow(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	plan, err := csvrows.NewPlan(nil, []int{schema.AnalysisCampaignTitle, schema.AnalysisTime}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := testBase
	spec := LoadSpec{Account: "a", WindowStart: ws, WindowEnd: ws.Add(time.Hour), ExportID: 1, Plan: plan}
	l, err := s.BeginLoad(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !l.direct {
		t.Fatal("not on the direct path")
	}
	at := []time.Time{ws.Add(-26 * time.Hour), ws.Add(10 * time.Minute), ws.Add(5 * time.Hour)}
	for i, tm := range at {
		r := &csvrows.Row{Line: i + 2, Values: []csvrows.Value{{U: uint64(i + 1)}, {S: "C"}, {T: tm}, {S: "open"}}}
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Commit(ctx); err != nil || n != 3 {
		t.Fatalf("added %d, %v; want 3", n, err)
	}
	from, to, ok := l.StagedSpan()
	if !ok || !from.Equal(at[0]) || !to.Equal(at[2]) {
		t.Fatalf("staged span %v..%v (%v), want %v..%v", from, to, ok, at[0], at[2])
	}
	if got := countRows(t, s, factTable); got != 3 {
		t.Fatalf("table holds %d rows, want 3", got)
	}
}
