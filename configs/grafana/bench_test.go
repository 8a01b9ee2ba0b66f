package grafana

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestBenchBI is `make bench-bi`: it loads BENCH_BI_DAYS days of
// BENCH_BI_PER_DAY responses made by the simulator's generator through the
// product (simulator API, FTP, parser, exactly-once load, aggregate hook),
// then times every dashboard query, median of 5 runs, and fails if one
// takes a second or more. Skipped unless BENCH_BI=1: it takes minutes.
func TestBenchBI(t *testing.T) {
	if os.Getenv("BENCH_BI") != "1" {
		t.Skip("set BENCH_BI=1 (make bench-bi)")
	}
	days, perDay := envInt(t, "BENCH_BI_DAYS", 30), envInt(t, "BENCH_BI_PER_DAY", 300_000)
	h := pipelinetest.New(t, pipelinetest.Options{
		Generator:   sim.Generator{Seed: 11, EventsPerHour: perDay / 24},
		Window:      24 * time.Hour,
		Concurrency: 2,
		// One failed export and a malformed row per file, as in
		// TestDashboardQueries, so the pipeline panels have rows to show.
		SimConfig: func(c *sim.Config) { c.BrokenRowsPerExport = 1; c.ErrorNextExports = 1 },
	})
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, days)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	for _, r := range h.Runner.Backfill(ctx, from, to) {
		if r.Err != nil || r.State != "done" {
			t.Fatalf("window %s ended %s: %v", r.Window, r.State, r.Err)
		}
	}
	load := time.Since(t0)
	rows := h.Count("SELECT count() FROM {db}.email_responses")
	fmt.Printf("bench-bi: loaded %d responses (%d days) through the pipeline in %s (%.0f rows/s, aggregates included)\n",
		rows, days, load.Round(time.Second), float64(rows)/load.Seconds())

	// The aggregate recomputation of one day, as one window's hook runs it.
	t1 := time.Now()
	if err := h.Store.RefreshAggregates(ctx, "acme", from.AddDate(0, 0, days/2), from.AddDate(0, 0, days/2+1)); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("bench-bi: recomputing the aggregates of one day took %d ms\n", time.Since(t1).Milliseconds())

	var medians []float64
	for _, file := range files(t) {
		titles := panelTitles(t, file)
		for _, q := range extractSQL(t, file) {
			sql := expand(t, q, h.DB, "acme", from, to.Add(-time.Second))
			var runs []float64
			for range 5 {
				s := time.Now()
				rs, err := h.Conn.Query(ctx, sql)
				if err != nil {
					t.Fatalf("%s %s: %v", file, q.where, err)
				}
				n := 0
				for rs.Next() {
					n++
				}
				rs.Close()
				if n == 0 {
					t.Fatalf("%s %s: no rows", file, q.where)
				}
				runs = append(runs, float64(time.Since(s).Microseconds())/1000)
			}
			slices.Sort(runs)
			m := runs[2]
			medians = append(medians, m)
			name := titles[q.where]
			if name == "" {
				name = q.where
			}
			fmt.Printf("bench-bi: %8.1f ms  %s: %s\n", m, file, name)
			if m >= 1000 {
				t.Errorf("%s %q: median %.0f ms, want under 1 s", file, name, m)
			}
		}
	}
	slices.Sort(medians)
	fmt.Printf("bench-bi: rows=%d queries=%d slowest_ms=%.1f median_ms=%.1f\n",
		rows, len(medians), medians[len(medians)-1], medians[len(medians)/2])
}
