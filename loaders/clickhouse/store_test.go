package clickhouse

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

func TestOpenWrongPasswordHidesIt(t *testing.T) {
	requireServer(t)
	const secret = "s3cr3t-Pa55word-xyzzy"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{Addr: testAddr(), User: "default", Password: secret, DialTimeout: 5 * time.Second})
	if err == nil {
		s.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error text contains the password: %v", err)
	}
	t.Logf("error as shown: %v", err)
}

func TestScrub(t *testing.T) {
	err := scrub(context.DeadlineExceeded, "")
	if err != context.DeadlineExceeded {
		t.Errorf("scrub without password changed the error")
	}
	wrapped := scrub(&scrubbedError{msg: "dial tcp user:hunter2@host", err: context.DeadlineExceeded}, "hunter2")
	if strings.Contains(wrapped.Error(), "hunter2") {
		t.Errorf("scrubbed text %q still holds the password", wrapped)
	}
}

func TestOpenRefusesBadDatabaseName(t *testing.T) {
	_, err := Open(context.Background(), Config{Database: "x; DROP TABLE y"})
	if err == nil {
		t.Fatal("Open accepted an invalid database name")
	}
}

func TestMigrateTwice(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if s.ServerVersion() == "" {
		t.Error("no server version")
	}
	for i := range 2 {
		if err := s.Migrate(ctx, nil); err != nil {
			t.Fatalf("migrate run %d: %v", i+1, err)
		}
	}
	for _, table := range []string{factTable, rejectTable, windowTable, "etl_leases", migrTable} {
		cols, err := s.tableColumns(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		if len(cols) == 0 {
			t.Errorf("table %s missing", table)
		}
	}
	all, err := schema.Migrations(s.db)
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, migrTable); n != uint64(len(all)) {
		t.Errorf("schema_migrations holds %d rows after two runs, want %d (one per migration)", n, len(all))
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != uint32(len(all)) {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, len(all))
	}
	// The Go mapping of sources must match the table's Enum8.
	cols, _ := s.tableColumns(ctx, factTable)
	for _, c := range cols {
		if c.name == "source" && normType(c.typ) != normType(sourceEnum) {
			t.Errorf("source column is %s, the code assumes %s", c.typ, sourceEnum)
		}
	}
	// Migrations for a name that could smuggle SQL are refused.
	if _, err := schema.Migrations("x`; DROP"); err == nil {
		t.Error("schema.Migrations accepted an invalid database name")
	}
}

func TestEnsureContactColumnsKeepsData(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	plan, err := csvrows.NewPlan(nil, []int{schema.AnalysisCampaignTitle, schema.AnalysisTime}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := LoadSpec{Account: "a", WindowStart: testBase, WindowEnd: testBase.Add(time.Hour), ExportID: 1, Plan: plan}
	if got := loadRange(t, s, spec, 0, 20); got != 20 {
		t.Fatalf("loaded %d rows, want 20", got)
	}
	before := readKeys(t, s)

	email, ok1 := schema.ContactField(3)
	dob, ok2 := schema.ContactField(4)
	if !ok1 || !ok2 {
		t.Fatal("contact fields 3 and 4 missing from the catalogue")
	}
	tier, err := schema.CustomField(101, "tier", "", schema.KindString)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second call finds everything in place
		if err := s.EnsureContactColumns(ctx, []schema.Field{email, dob, tier}); err != nil {
			t.Fatal(err)
		}
	}
	cols, err := s.tableColumns(ctx, factTable)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cols {
		names = append(names, c.name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "link_category,email,date_of_birth,cf_tier,invalid_utf8") {
		t.Errorf("columns in order %s; want the contact columns between link_category and invalid_utf8", got)
	}
	if after := readKeys(t, s); after != before {
		t.Errorf("data changed by ADD COLUMN:\n%s\n%s", before, after)
	}

	// A column that exists with another type is an error that names it.
	asNumber := tier
	asNumber.Kind = schema.KindUInt64
	err = s.EnsureContactColumns(ctx, []schema.Field{asNumber})
	if err == nil || !strings.Contains(err.Error(), "cf_tier") {
		t.Errorf("type clash: err = %v, want one naming cf_tier", err)
	}
	// Names that are not identifiers, or that are the table's own columns, never reach SQL.
	for _, col := range []string{"Bad-Name", "x`; DROP TABLE t; --", "response_key", "url", "cf_"} {
		err := s.EnsureContactColumns(ctx, []schema.Field{{ID: 200, Name: "h", Column: col}})
		if err == nil {
			t.Errorf("column %q accepted", col)
		}
	}
}

// readKeys renders the table's content so a before/after comparison is one string.
func readKeys(t *testing.T, s *Store) string {
	t.Helper()
	var out string
	q := "SELECT toString(groupArray((user_id, response_key, campaign_title, event_time))) FROM (SELECT * FROM " + s.table(factTable) + " ORDER BY user_id)"
	if err := s.conn.QueryRow(testCtx(t), q).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLedgerLatestVersion(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LastDoneEnd(ctx, "a"); err != nil || ok {
		t.Fatalf("LastDoneEnd on an empty ledger = %v, %v", ok, err)
	}
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	w1 := WindowRecord{Account: "a", Start: day, End: day.Add(24 * time.Hour), State: StatePlanned}
	w2 := WindowRecord{Account: "a", Start: day.Add(24 * time.Hour), End: day.Add(48 * time.Hour), State: StatePlanned}
	steps := []WindowRecord{w1, w2}
	w1.State, w1.ExportID, w1.Attempts = StateRequested, 42, 1
	steps = append(steps, w1)
	w1.State, w1.FileName = StateReady, "a_42.csv"
	steps = append(steps, w1)
	w1.State, w1.RowsRead, w1.RowsLoaded, w1.RowsNew, w1.RowsRejected = StateDone, 10, 9, 7, 1
	steps = append(steps, w1)
	w2.State, w2.LastError, w2.Manual, w2.Attempts = StateFailed, "export 43 failed: timeout", true, 3
	steps = append(steps, w2)
	for _, w := range steps {
		if err := s.SaveWindow(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// Another account's window never shows.
	if err := s.SaveWindow(ctx, WindowRecord{Account: "b", Start: day, End: day.Add(time.Hour), State: StateDone}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveWindow(ctx, WindowRecord{Account: "a", Start: day, End: day, State: StateDone}); err == nil {
		t.Error("an empty window was saved")
	}
	if err := s.SaveWindow(ctx, WindowRecord{Account: "a", Start: day, End: day.Add(time.Hour), State: "bogus"}); err == nil {
		t.Error("an unknown state was saved")
	}

	got, err := s.Windows(ctx, "a", day, day.Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Windows returned %d windows, want 2: %+v", len(got), got)
	}
	for i, want := range []WindowRecord{w1, w2} {
		g := got[i]
		if g.UpdatedAt.IsZero() {
			t.Errorf("window %d: no updated_at", i)
		}
		g.UpdatedAt = time.Time{}
		if g != want {
			t.Errorf("window %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
	// Overlap, half-open: [day+24h, ...) does not include w1, which ends there.
	got, err = s.Windows(ctx, "a", day.Add(24*time.Hour), day.Add(25*time.Hour))
	if err != nil || len(got) != 1 || !got[0].Start.Equal(w2.Start) {
		t.Errorf("Windows(second day) = %+v, %v; want only the second window", got, err)
	}
	end, ok, err := s.LastDoneEnd(ctx, "a")
	if err != nil || !ok || !end.Equal(w1.End) {
		t.Errorf("LastDoneEnd = %s, %v, %v; want %s", end, ok, err, w1.End)
	}
	// A later version moving the done window back to failed takes it out.
	w1.State = StateFailed
	if err := s.SaveWindow(ctx, w1); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LastDoneEnd(ctx, "a"); err != nil || ok {
		t.Errorf("LastDoneEnd after failing the only done window = %v, %v", ok, err)
	}
}

// TestLoadThroughput loads CLICKHOUSE_BENCH_ROWS rows (e.g. 1000000) of
// the full plan and reports rows per second for staging and for commit.
func TestLoadThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CLICKHOUSE_BENCH_ROWS"))
	if n <= 0 {
		t.Skip("set CLICKHOUSE_BENCH_ROWS=1000000 to measure load throughput")
	}
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	plan := fullPlan(t)
	rows := make([]csvrows.Row, 1000) // pregenerated, so the parser's cost is not measured
	for i := range rows {
		genRow(plan, i, &rows[i])
	}
	spec := LoadSpec{Account: "bench", WindowStart: testBase, WindowEnd: testBase.Add(24 * time.Hour), Plan: plan}
	for run := range 2 {
		start := time.Now()
		l, err := s.BeginLoad(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			r := &rows[i%len(rows)]
			r.Values[0].U = uint64(i + 1) // user_id: distinct responses
			if err := l.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		staged := time.Since(start)
		added, err := l.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total := time.Since(start)
		t.Logf("run %d (%s): %d rows, %d new; staging %s (%.0f rows/s), commit %s, total %.0f rows/s",
			run+1, s.ServerVersion(), n, added, staged.Round(time.Millisecond), float64(n)/staged.Seconds(),
			(total - staged).Round(time.Millisecond), float64(n)/total.Seconds())
	}
}
