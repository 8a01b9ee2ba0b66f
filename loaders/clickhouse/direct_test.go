package clickhouse

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Tests of the direct path (from an adversarial review). Rows of the simple plan:
// user_id, source, campaign_title, url, event_time (+ campaign_id, link_title).
func directPlan(t *testing.T) csvrows.Plan {
	t.Helper()
	p, err := csvrows.NewPlan(nil, []int{schema.AnalysisCampaignTitle, schema.AnalysisURL, schema.AnalysisTime,
		schema.AnalysisCampaignID, schema.AnalysisLinkTitle}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type rv struct {
	user               uint64
	source, title, url string
	link               string
	at                 time.Time
	cid                *uint64
}

func (v rv) row(p csvrows.Plan, line int) *csvrows.Row {
	r := &csvrows.Row{Line: line}
	for _, f := range p.Fields {
		var x csvrows.Value
		switch f.Column {
		case "user_id":
			x.U = v.user
		case "source":
			x.S = v.source
		case "campaign_title":
			x.S = v.title
		case "url":
			x.S = v.url
		case "link_title":
			x.S = v.link
		case "event_time":
			x.T = v.at
		case "campaign_id":
			if v.cid == nil {
				x.Null = true
			} else {
				x.U = *v.cid
			}
		default:
			panic(f.Column)
		}
		r.Values = append(r.Values, x)
	}
	return r
}

// slowOnly skips a test of about a minute unless EMARSYS_SLOW_TESTS=1.
func slowOnly(t *testing.T) {
	if os.Getenv("EMARSYS_SLOW_TESTS") != "1" {
		t.Skip("takes about a minute: run with EMARSYS_SLOW_TESTS=1")
	}
}

func directStore(t *testing.T, batch int) (*Store, context.Context) {
	s := newTestStore(t, batch)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !s.keysAgree {
		t.Fatal("keys disagree")
	}
	return s, ctx
}

func begin(t *testing.T, s *Store, ctx context.Context, spec LoadSpec, rows []rv) *Load {
	t.Helper()
	l, err := s.BeginLoad(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range rows {
		if err := l.Append(v.row(spec.Plan, i+2)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// Repeated rows without any forcing: a realistic 2M-row file whose first 600k rows
// hold 300k responses twice. Background merges of the shadow run while the
// file streams in (several 262144-row parts per partition).
var directPause = 3 * time.Second

func TestDirectShadowMergedNaturally(t *testing.T) {
	slowOnly(t)
	if testing.Short() {
		t.Skip()
	}
	s, ctx := directStore(t, 5000)
	plan := directPlan(t)
	ws := testBase
	spec := LoadSpec{Account: "a", WindowStart: ws, WindowEnd: ws.Add(24 * time.Hour), ExportID: 1, Plan: plan}
	l, err := s.BeginLoad(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	const n, dupUntil, distinctHead = 2_000_000, 600_000, 300_000
	at := ws.Add(time.Minute) // one partition
	for j := range n {
		u := uint64(j)
		if j < dupUntil {
			u = uint64(j % distinctHead)
		}
		r := rv{user: u, source: "open", title: "T", url: "u", at: at}
		if err := l.Append(r.row(plan, j+2)); err != nil {
			t.Fatal(err)
		}
		if j%100_000 == 0 {
			time.Sleep(directPause) // a file arriving over FTP at a realistic pace
		}
	}
	if err := l.endDirect(true); err != nil {
		t.Fatal(err)
	}
	var parts, cnt uint64
	s.conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND active", s.db, stageName(spec)+"_direct").Scan(&parts)
	s.conn.QueryRow(ctx, "SELECT count() FROM "+l.shadow).Scan(&cnt)
	t.Logf("right after the streams ended: %d active parts, %d rows in shadow, %d sent", parts, cnt, l.dsent)
	got, err := l.Commit(ctx)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if want := uint64(n - dupUntil + distinctHead); got != want {
		t.Fatalf("added %d, want %d", got, want)
	}
}

// Each load in its parse phase holds three pooled connections (two shard
// INSERTs and the stage INSERT), and schedule.loads may be up to 16: the
// pool must not make a load, a ledger save or the lease renewal wait.
func TestDirectPoolExhaustion(t *testing.T) {
	s, ctx := directStore(t, 2)
	plan := directPlan(t)
	var loads []*Load
	defer func() {
		for _, l := range loads {
			l.Abort(context.Background())
		}
	}()
	for k := range 6 {
		ws := testBase.Add(time.Duration(k) * time.Hour)
		spec := LoadSpec{Account: "a", WindowStart: ws, WindowEnd: ws.Add(time.Hour), ExportID: 1, Plan: plan}
		var rows []rv
		for i := range 4 { // two blocks in the window: both shard INSERTs start
			rows = append(rows, rv{user: uint64(i), source: "open", at: ws.Add(time.Minute)})
		}
		for i := range 2 { // a block outside it (e.g. the autumn extension): the stage INSERT starts
			rows = append(rows, rv{user: uint64(i), source: "open", at: ws.Add(-time.Minute)})
		}
		t0 := time.Now()
		l, err := s.BeginLoad(ctx, spec)
		if err != nil {
			t.Fatalf("load %d: begin after %v: %v", k+1, time.Since(t0), err)
		}
		loads = append(loads, l)
		for i, v := range rows {
			if err := l.Append(v.row(plan, i+2)); err != nil {
				t.Fatalf("load %d of 6 (config allows 16): append after %v: %v", k+1, time.Since(t0).Round(time.Second), err)
			}
		}
	}
}

func factCount(t *testing.T, s *Store, ctx context.Context) (rows, keys uint64) {
	t.Helper()
	if err := s.conn.QueryRow(ctx, "SELECT count(), uniqExact(response_key) FROM "+s.table(factTable)).Scan(&rows, &keys); err != nil {
		t.Fatal(err)
	}
	return
}

func monthRows(ws time.Time, n int) []rv {
	var rows []rv
	for i := range n {
		rows = append(rows, rv{user: uint64(i), source: "click", title: "T", url: fmt.Sprint("u", i%5), at: ws.Add(time.Duration(i) * time.Minute)})
	}
	return rows
}

// Crash after ATTACHing the first of two partitions (window over a month
// boundary), then after ATTACHing both but before the ledger/drop.
func TestDirectCrashBetweenAttaches(t *testing.T) {
	s, ctx := directStore(t, 50)
	plan := directPlan(t)
	ws := time.Date(2024, 3, 31, 12, 0, 0, 0, time.UTC) // a day over the March/April partition boundary
	spec := LoadSpec{Account: "a", WindowStart: ws, WindowEnd: ws.Add(24 * time.Hour), ExportID: 1, Plan: plan}
	rows := monthRows(ws, 1440)
	l := begin(t, s, ctx, spec, rows)
	if err := l.endDirect(true); err != nil {
		t.Fatal(err)
	}
	parts, err := l.shadowPartitions(ctx, "x")
	if err != nil || len(parts) != 2 {
		t.Fatalf("parts %v %v", parts, err)
	}
	if err := s.exec(ctx, "attach", fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION ID %s FROM %s", s.table(factTable), quoteString(parts[0]), l.shadow)); err != nil {
		t.Fatal(err)
	}
	// crash: l is abandoned, its shadow left behind
	l2 := begin(t, s, ctx, spec, rows)
	n, err := l2.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, keys := factCount(t, s, ctx)
	if got != 1440 || keys != 1440 {
		t.Fatalf("after crash+retry: %d rows %d keys, want 1440 (second commit added %d)", got, keys, n)
	}
	// crash after commit, before the ledger: the retry adds nothing
	l3 := begin(t, s, ctx, spec, rows)
	if n, err := l3.Commit(ctx); err != nil || n != 0 {
		t.Fatalf("re-run added %d, %v", n, err)
	}
	if got, _ := factCount(t, s, ctx); got != 1440 {
		t.Fatalf("%d rows", got)
	}
}

// Overlapping windows in one process, committing concurrently, where the
// first window's file reaches past its end (those rows take its stage) into
// the second window's shadow. Both commit orders.
func TestDirectOverlapStageVsShadow(t *testing.T) {
	for _, order := range []string{"AB", "BA", "concurrent"} {
		t.Run(order, func(t *testing.T) {
			s, ctx := directStore(t, 7)
			plan := directPlan(t)
			h := time.Hour
			base := testBase
			mk := func(from, to time.Duration) []rv {
				var rows []rv
				for d := from; d <= to; d += 30 * time.Second { // inclusive: rows exactly at both boundaries
					rows = append(rows, rv{user: uint64(d / time.Second), source: "open", title: "T", url: "u", at: base.Add(d)})
				}
				return rows
			}
			specA := LoadSpec{Account: "a", WindowStart: base, WindowEnd: base.Add(6 * h), ExportID: 1, Plan: plan}
			specB := LoadSpec{Account: "a", WindowStart: base.Add(3 * h), WindowEnd: base.Add(9 * h), ExportID: 2, Plan: plan}
			la := begin(t, s, ctx, specA, mk(-h, 9*h))   // before and after A: stage; B's range too
			lb := begin(t, s, ctx, specB, mk(2*h, 10*h)) // reaches into A, and past B
			var na, nb uint64
			var ea, eb error
			switch order {
			case "AB":
				na, ea = la.Commit(ctx)
				nb, eb = lb.Commit(ctx)
			case "BA":
				nb, eb = lb.Commit(ctx)
				na, ea = la.Commit(ctx)
			default:
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); na, ea = la.Commit(ctx) }()
				go func() { defer wg.Done(); nb, eb = lb.Commit(ctx) }()
				wg.Wait()
			}
			if ea != nil || eb != nil {
				t.Fatal(ea, eb)
			}
			want := uint64(len(mk(-h, 10*h)))
			got, keys := factCount(t, s, ctx)
			if got != want || keys != want || na+nb != want {
				t.Fatalf("rows %d keys %d new %d+%d, want %d", got, keys, na, nb, want)
			}
		})
	}
}

// Go key vs SQL key for awkward values; the rows stored by the direct path
// must satisfy ResponseKeySQL, and the same rows through the stage add none.
func TestDirectKeyEdgeValues(t *testing.T) {
	s, ctx := directStore(t, 3)
	plan := directPlan(t)
	ws := testBase
	spec := LoadSpec{Account: "acct_1", WindowStart: ws, WindowEnd: ws.Add(time.Hour), ExportID: 1, Plan: plan}
	u := func(x uint64) *uint64 { return &x }
	bin := string([]byte{0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80})
	long := strings.Repeat("x\xffé", 400_000) // 1.6 MB
	var rows []rv
	for _, v := range []rv{
		{user: 0, source: "", at: ws},
		{user: 1<<64 - 1, source: " Click ", at: ws.Add(time.Hour - time.Second), cid: u(0)},
		{user: 2, source: bin, title: bin, url: bin, link: bin, at: ws.Add(time.Second), cid: nil},
		{user: 2, source: bin, title: bin, url: bin, link: bin, at: ws.Add(time.Second), cid: u(1<<64 - 1)},
		{user: 3, source: "open", title: long, url: long[:65], link: long[:17], at: ws.Add(2 * time.Second)},
		{user: 3, source: "open", title: "i:5", at: ws.Add(3 * time.Second)},
		{user: 3, source: "open", title: "x", at: ws.Add(3 * time.Second), cid: u(5)},
		{user: 4, source: "open", title: "", url: "", link: "", at: ws.Add(4 * time.Second), cid: nil},
	} {
		rows = append(rows, v)
	}
	l := begin(t, s, ctx, spec, rows)
	if !l.direct {
		t.Fatal("not direct")
	}
	if _, err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var bad uint64
	if err := s.conn.QueryRow(ctx, "SELECT countIf(response_key != "+ResponseKeySQL+") FROM "+s.table(factTable)).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d direct rows whose key differs from ResponseKeySQL", bad)
	}
	s.keysAgree = false // the same file through the stage only
	l2 := begin(t, s, ctx, spec, rows)
	if n, err := l2.Commit(ctx); err != nil || n != 0 {
		t.Fatalf("staged re-run added %d (%v): Go and SQL keys differ", n, err)
	}
}

// Another process (another account's config) adds a contact column while a
// direct load is in flight: ATTACH needs identical structure, so the commit
// falls back to the anti-join, which names its columns.
func TestDirectAddColumnDuringLoad(t *testing.T) {
	s, ctx := directStore(t, 50)
	plan := directPlan(t)
	spec := LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), ExportID: 1, Plan: plan}
	l := begin(t, s, ctx, spec, monthRows(testBase, 60))
	f, err := schema.CustomField(102, "other", "Other", schema.KindString)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureContactColumns(ctx, []schema.Field{f}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit(ctx); err != nil {
		t.Fatalf("commit after a concurrent ADD COLUMN: %v", err)
	}
}

// The driver takes event_date's day in the time.Time's own zone: a Row
// whose time is not in UTC (the parser gives UTC today) must still get its
// UTC date, or the range check would miss it and a re-run store it again.
func TestDirectNonUTCEventDate(t *testing.T) {
	s, ctx := directStore(t, 10)
	plan := directPlan(t)
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Skip(err)
	}
	ws := time.Date(2024, 3, 20, 23, 0, 0, 0, time.UTC)
	spec := LoadSpec{Account: "a", WindowStart: ws, WindowEnd: ws.Add(time.Hour), ExportID: 1, Plan: plan}
	rows := []rv{{user: 1, source: "open", at: ws.Add(30 * time.Minute).In(vienna)}}
	for range 2 {
		l := begin(t, s, ctx, spec, rows)
		if _, err := l.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := factCount(t, s, ctx); got != 1 {
		t.Fatalf("the same response stored %d times", got)
	}
}

// Unique openers and clickers count contact ids exactly, also ids past
// 2^32 whose low 32 bits equal a smaller id's (distinctUsers).
func TestAggregatesCountLargeIDs(t *testing.T) {
	s, ctx := directStore(t, 10)
	plan := directPlan(t)
	ws := testBase
	spec := LoadSpec{Account: "a", WindowStart: ws, WindowEnd: ws.Add(time.Hour), ExportID: 1, Plan: plan}
	cid := uint64(9)
	var rows []rv
	for i, u := range []uint64{5, 5 + 1<<32, 7, 7, 1 << 40} {
		for _, src := range []string{"open", "click"} {
			rows = append(rows, rv{user: u, source: src, title: "T", url: "https://x/", link: "L", at: ws.Add(time.Duration(i) * time.Minute), cid: &cid})
		}
	}
	l := begin(t, s, ctx, spec, rows)
	if _, err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.RefreshAggregates(ctx, "a", spec.WindowStart, spec.WindowEnd); err != nil {
		t.Fatal(err)
	}
	var openers, clickers, linkClickers uint64
	if err := s.conn.QueryRow(ctx, "SELECT unique_openers, unique_clickers FROM "+s.table("campaign_daily")+" WHERE campaign_id = 9").Scan(&openers, &clickers); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.QueryRow(ctx, "SELECT unique_clickers FROM "+s.table("link_daily")+" WHERE url = 'https://x/'").Scan(&linkClickers); err != nil {
		t.Fatal(err)
	}
	if openers != 4 || clickers != 4 || linkClickers != 4 {
		t.Fatalf("unique openers %d, clickers %d, link clickers %d; want 4 each (5, 5+2^32, 7, 2^40)", openers, clickers, linkClickers)
	}
}

// A shadow dropped and made again between the commit's checks and its
// ATTACH (what an instance that lost the lease race could do while its
// read-back is slow) attaches nothing: the commit must fail, not report
// the rows as stored, and the next load of the window stores them all.
func TestDirectShadowReplacedBeforeAttach(t *testing.T) {
	s, ctx := directStore(t, 10)
	plan := directPlan(t)
	spec := LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), ExportID: 1, Plan: plan}
	rows := monthRows(testBase, 40)
	l := begin(t, s, ctx, spec, rows)
	testBeforeAttach = func(l *Load) {
		if err := s.exec(ctx, "replace shadow", "DROP TABLE "+l.shadow); err != nil {
			t.Error(err)
		}
		if err := s.exec(ctx, "replace shadow", "CREATE TABLE "+l.shadow+" AS "+s.table(factTable)); err != nil {
			t.Error(err)
		}
	}
	_, err := l.Commit(ctx)
	testBeforeAttach = nil
	if err == nil || !strings.Contains(err.Error(), "changed during the commit") {
		t.Fatalf("commit over a replaced shadow: %v", err)
	}
	l.Abort(ctx)
	l = begin(t, s, ctx, spec, rows)
	if _, err := l.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, keys := factCount(t, s, ctx); got != 40 || keys != 40 {
		t.Fatalf("after the retry %d rows, %d keys; want 40", got, keys)
	}
}
