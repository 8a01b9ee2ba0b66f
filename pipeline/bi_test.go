package pipeline_test

import (
	"context"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// biChecks pairs each BI view with the same numbers computed straight from
// the fact table. Both sides select one String per row so they compare whole.
var biChecks = []struct{ name, view, fact string }{
	{"campaign_daily",
		`SELECT concat(account, '|', toString(day), '|', toString(campaign_id), '|', toString(opens), '|', toString(unique_openers), '|',
			toString(clicks), '|', toString(unique_clickers), '|', toString(responses), '|', toString(round(click_to_open_rate, 9)))
		FROM {db}.campaign_daily`,
		`SELECT concat(account, '|', toString(event_date), '|', toString(ifNull(campaign_id, 0)), '|', toString(countIf(source = 'open')), '|',
			toString(uniqExactIf(user_id, source = 'open')), '|', toString(countIf(source = 'click')), '|', toString(uniqExactIf(user_id, source = 'click')), '|',
			toString(count()), '|', toString(round(if(uniqExactIf(user_id, source = 'open') = 0, 0, uniqExactIf(user_id, source = 'click') / uniqExactIf(user_id, source = 'open')), 9)))
		FROM {db}.email_responses GROUP BY account, event_date, ifNull(campaign_id, 0)`},
	{"link_daily",
		`SELECT concat(account, '|', toString(day), '|', url, '|', toString(clicks), '|', toString(unique_clickers)) FROM {db}.link_daily`,
		`SELECT concat(account, '|', toString(event_date), '|', url, '|', toString(count()), '|', toString(uniqExact(user_id)))
		FROM {db}.email_responses WHERE source = 'click' AND url != '' GROUP BY account, event_date, url`},
	{"hourly",
		`SELECT concat(account, '|', toString(hour), '|', toString(day), '|', toString(opens), '|', toString(clicks), '|', toString(responses)) FROM {db}.hourly`,
		`SELECT concat(account, '|', toString(toStartOfHour(event_time)), '|', toString(event_date), '|', toString(countIf(source = 'open')), '|',
			toString(countIf(source = 'click')), '|', toString(count()))
		FROM {db}.email_responses GROUP BY account, toStartOfHour(event_time), event_date`},
	{"campaigns",
		`SELECT concat(account, '|', toString(campaign_id), '|', title, '|', category, '|', version_name, '|', toString(first_day), '|', toString(last_day)) FROM {db}.campaigns`,
		`SELECT concat(account, '|', toString(ifNull(campaign_id, 0)), '|', argMax(campaign_title, event_time), '|', argMax(campaign_category, event_time), '|',
			argMax(version_name, event_time), '|', toString(min(event_date)), '|', toString(max(event_date)))
		FROM {db}.email_responses GROUP BY account, ifNull(campaign_id, 0)`},
	{"links",
		`SELECT concat(account, '|', url, '|', title, '|', category, '|', toString(first_day), '|', toString(last_day)) FROM {db}.links`,
		`SELECT concat(account, '|', url, '|', argMax(link_title, event_time), '|', argMax(link_category, event_time), '|', toString(min(event_date)), '|', toString(max(event_date)))
		FROM {db}.email_responses WHERE source = 'click' AND url != '' GROUP BY account, url`},
	{"contacts",
		`SELECT concat(account, '|', toString(user_id), '|', ifNull(toString(email), ''), '|', ifNull(toString(first_name), ''), '|',
			toString(first_response), '|', toString(last_response), '|', toString(responses)) FROM {db}.contacts`,
		`SELECT concat(account, '|', toString(user_id), '|', ifNull(toString(argMax(email, event_time)), ''), '|', ifNull(toString(argMax(first_name, event_time)), ''), '|',
			toString(min(event_time)), '|', toString(max(event_time)), '|', toString(count()))
		FROM {db}.email_responses GROUP BY account, user_id`},
}

func strRows(t *testing.T, h *pipelinetest.Harness, q string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := h.Conn.Query(ctx, strings.ReplaceAll(q, "{db}", "`"+h.DB+"`"))
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// assertBI fails unless every view equals its computation over the facts.
func assertBI(t *testing.T, h *pipelinetest.Harness, stage string) {
	t.Helper()
	for _, c := range biChecks {
		want, got := strRows(t, h, c.fact), strRows(t, h, c.view)
		if len(want) == 0 {
			t.Fatalf("%s: %s: the facts give no rows: the check proves nothing", stage, c.name)
		}
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			t.Errorf("%s: view %s differs from the fact table (%d rows, want %d)", stage, c.name, len(got), len(want))
			pipelinetest.Diff(t, want, got)
		}
	}
}

// The aggregates equal the same queries over the deduplicated fact table
// after a backfill across days, after overlapping windows re-read loaded
// rows, and after recomputations run again; their totals are the simulator's.
func TestAggregatesEqualFacts(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Window: 5 * time.Hour, Sources: []string{"trackable_links", "mail_open", "unsubscribe"}})
	from := time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
	to := from.Add(30 * time.Hour) // windows cross midnight: 25:00-30:00 is on day 2
	h.Backfill(from, to)
	assertBI(t, h, "after backfill")

	// Totals are what the simulator generated: the aggregates lose and add nothing.
	bySource, _ := h.Gen.Count(from, to)
	if got := h.Count("SELECT sum(opens) FROM {db}.campaign_daily"); got != uint64(bySource[sim.SourceOpen]) || got == 0 {
		t.Errorf("campaign_daily opens = %d, simulator %d", got, bySource[sim.SourceOpen])
	}
	if got := h.Count("SELECT sum(clicks) FROM {db}.hourly"); got != uint64(bySource[sim.SourceClick]) || got == 0 {
		t.Errorf("hourly clicks = %d, simulator %d", got, bySource[sim.SourceClick])
	}
	if got := h.Count("SELECT sum(clicks) FROM {db}.link_daily"); got != uint64(bySource[sim.SourceClick]) {
		t.Errorf("link_daily clicks = %d, simulator %d", got, bySource[sim.SourceClick])
	}
	// A stale recomputation (lower version, wrong numbers) left in the table,
	// as a merge that has not run yet leaves superseded rows: the views ignore it.
	if err := h.Conn.Exec(t.Context(), strings.ReplaceAll(`INSERT INTO {db}.agg_campaign_daily (account, day, campaign_id, opens, unique_openers, clicks, unique_clickers, responses, campaign_title, campaign_category, version_name, last_event_time, version)
		SELECT account, day, campaign_id, opens + 1000, unique_openers, clicks + 7, unique_clickers, responses, 'stale', campaign_category, version_name, last_event_time, 2
		FROM {db}.agg_campaign_daily`, "{db}", "`"+h.DB+"`")); err != nil {
		t.Fatal(err)
	}
	assertBI(t, h, "with stale versions present")

	// Overlapping windows re-read rows already loaded (a view fed on insert
	// would count them twice); a window reaching into a new day adds rows.
	for _, w := range []pipeline.Window{{Start: from.Add(3 * time.Hour), End: from.Add(26 * time.Hour)}, {Start: from.Add(28 * time.Hour), End: from.Add(50 * time.Hour)}} {
		if r := h.Runner.Run(t.Context(), w); r.Err != nil || r.State != pipeline.StateDone {
			t.Fatalf("window %s: %s %v", w, r.State, r.Err)
		}
	}
	h.AssertWarehouse(from, from.Add(50*time.Hour))
	assertBI(t, h, "after overlapping windows")
	bySource, _ = h.Gen.Count(from, from.Add(50*time.Hour))
	if got := h.Count("SELECT sum(opens) FROM {db}.campaign_daily"); got != uint64(bySource[sim.SourceOpen]) {
		t.Errorf("after overlaps: campaign_daily opens = %d, simulator %d", got, bySource[sim.SourceOpen])
	}

	// A recomputation run again (a retried window) changes nothing.
	for range 2 {
		if err := h.Store.RefreshAggregates(t.Context(), "acme", from, from.Add(50*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	assertBI(t, h, "after recomputing again")

	t.Run("TestSchemaReadmeExamples", func(t *testing.T) { schemaReadmeExamples(t, h) })
}

// Every SQL example in schema/README.md runs and returns rows.
func schemaReadmeExamples(t *testing.T, h *pipelinetest.Harness) {
	b, err := os.ReadFile("../schema/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) != 5 {
		t.Fatalf("schema/README.md has %d SQL examples, want 5", len(blocks))
	}
	for i, m := range blocks {
		// The examples are written for the demo's account; the harness's is acme.
		q := strings.ReplaceAll(strings.ReplaceAll(m[1], "emarsys.", "{db}."), "'demo'", "'acme'")
		// Example 1 looks back from today; the simulated days are fixed.
		q = strings.ReplaceAll(q, "today() - 30", "toDate('2026-11-01')")
		if countRows(t, h, q) == 0 {
			t.Errorf("example %d returns no rows:\n%s", i+1, m[1])
		}
	}
}

// Migration 0002 computes the aggregates of responses loaded before it.
func TestMigrationBackfillsAggregates(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Window: 12 * time.Hour})
	from := time.Date(2026, 11, 6, 0, 0, 0, 0, time.UTC)
	h.Runner.AfterLoad = nil // as a binary without the aggregates would load
	h.Backfill(from, from.Add(24*time.Hour))
	if n := h.Count("SELECT count() FROM {db}.agg_hourly"); n != 0 {
		t.Fatalf("%d aggregate rows without the hook", n)
	}
	ctx := t.Context()
	for _, q := range []string{
		"DROP TABLE {db}.agg_campaign_daily", "DROP TABLE {db}.agg_link_daily", "DROP TABLE {db}.agg_hourly",
		"DROP TABLE {db}.campaign_daily", "DROP TABLE {db}.link_daily", "DROP TABLE {db}.hourly",
		"DROP TABLE {db}.campaigns", "DROP TABLE {db}.links",
		// The record table is a ReplacingMergeTree keyed on version: re-create it without 0002.
		"RENAME TABLE {db}.schema_migrations TO {db}.schema_migrations_old",
		"CREATE TABLE {db}.schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version",
		"INSERT INTO {db}.schema_migrations (version, name, applied_at) SELECT version, name, applied_at FROM {db}.schema_migrations_old WHERE version = 1",
	} {
		if err := h.Conn.Exec(ctx, strings.ReplaceAll(q, "{db}", "`"+h.DB+"`")); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	contact, _ := h.Cfg.Export.ContactSchema()
	if err := h.Store.Migrate(ctx, contact); err != nil {
		t.Fatal(err)
	}
	assertBI(t, h, "after migration 0002 on loaded data")
	if got := h.Count("SELECT count() FROM {db}.agg_hourly"); got != 24 {
		t.Errorf("agg_hourly has %d rows for one day, want 24", got)
	}
}

// countRows runs q and counts the rows it returns.
func countRows(t *testing.T, h *pipelinetest.Harness, q string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := h.Conn.Query(ctx, strings.ReplaceAll(q, "{db}", "`"+h.DB+"`"))
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
