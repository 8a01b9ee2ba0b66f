// Package grafana holds the provisioned Grafana dashboards; its test runs
// every SQL query they contain against ClickHouse.
package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// dashQuery is one SQL text found in a dashboard file.
type dashQuery struct {
	file, where, sql string
}

// extractSQL walks a dashboard's JSON and returns every ClickHouse query:
// panel targets (rawSql) and template variable queries. Any other string
// that looks like SQL is an error, so a query in a new place is not skipped.
func extractSQL(t *testing.T, file string) []dashQuery {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []dashQuery
	looksSQL := regexp.MustCompile(`(?i)\bSELECT\b`)
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				p := path + "." + k
				s, isStr := val.(string)
				switch {
				case isStr && k == "rawSql":
					out = append(out, dashQuery{file, p, s})
				case isStr && k == "query" && strings.Contains(path, "templating"):
					out = append(out, dashQuery{file, p, s})
				case isStr && k == "definition" && strings.Contains(path, "templating"):
					// Grafana's display copy of "query": the same text.
				case isStr && looksSQL.MatchString(s):
					t.Errorf("%s: SQL at %s is in no place this test knows: extend extractSQL", file, p)
				default:
					walk(val, p)
				}
			}
		case []any:
			for i, val := range x {
				walk(val, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(doc, "")
	return out
}

// expand substitutes the Grafana ClickHouse plugin's macros the dashboards
// use, as the plugin (v4, pkg/macros) expands them, plus the template variables and the
// database name. An unknown macro left over fails the test: it would have
// to be checked against ClickHouse 18.16 first ($__timeInterval, for one,
// expands to toStartOfInterval, which 18.16 lacks).
func expand(t *testing.T, q dashQuery, db, account string, from, to time.Time) string {
	t.Helper()
	f, tt := from.Unix(), to.Unix()
	s := q.sql
	s = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`).ReplaceAllString(s,
		fmt.Sprintf("$1 >= toDateTime(%d) AND $1 <= toDateTime(%d)", f, tt))
	s = regexp.MustCompile(`\$__dateFilter\(([^)]+)\)`).ReplaceAllString(s,
		fmt.Sprintf("$1 >= toDate('%s') AND $1 <= toDate('%s')", from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)))
	s = strings.ReplaceAll(s, "$__fromTime", fmt.Sprintf("toDateTime(%d)", f))
	s = strings.ReplaceAll(s, "$__toTime", fmt.Sprintf("toDateTime(%d)", tt))
	s = strings.ReplaceAll(s, "${account}", account)
	s = strings.ReplaceAll(s, "$account", account)
	if i := strings.Index(s, "$"); i >= 0 {
		t.Errorf("%s %s: macro or variable this test does not expand: %.40s", q.file, q.where, s[i:])
	}
	return strings.ReplaceAll(s, "emarsys.", "`"+db+"`.")
}

func files(t *testing.T) []string {
	fs, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(fs) < 2 {
		t.Fatalf("dashboards: %v %v", fs, err)
	}
	return fs
}

// Every SQL query of every dashboard runs on ClickHouse against data the
// simulator produced (with a failed export and malformed rows, so the
// pipeline panels have something to show) and returns rows; the totals
// panels show the simulator's numbers.
func TestDashboardQueries(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{
		Window:    6 * time.Hour,
		SimConfig: func(c *sim.Config) { c.BrokenRowsPerExport = 1; c.ErrorNextExports = 1 },
	})
	from := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)
	to := from.Add(48 * time.Hour)
	h.Backfill(from, to)
	bySource, _ := h.Gen.Count(from, to)
	wantStat := map[string]uint64{"Opens": uint64(bySource[sim.SourceOpen]), "Clicks": uint64(bySource[sim.SourceClick])}

	var n int
	for _, file := range files(t) {
		qs := extractSQL(t, file)
		if len(qs) < 4 {
			t.Fatalf("%s: only %d queries found", file, len(qs))
		}
		titles := panelTitles(t, file)
		for _, q := range qs {
			n++
			// Grafana's time range ends at "now"; the test's ends at the data's end.
			sql := expand(t, q, h.DB, "acme", from, to.Add(-time.Second))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			rows, err := h.Conn.Query(ctx, sql)
			if err != nil {
				cancel()
				t.Errorf("%s %s (%s): %v\n%s", file, q.where, titles[q.where], err, sql)
				continue
			}
			var got int
			var first []any
			for rows.Next() {
				got++
				if got == 1 {
					first = scanAny(t, rows.ColumnTypes(), rows.Scan)
				}
			}
			rows.Close()
			cancel()
			if got == 0 {
				t.Errorf("%s %s (%s): no rows\n%s", file, q.where, titles[q.where], sql)
				continue
			}
			if want, ok := wantStat[titles[q.where]]; ok && fmt.Sprint(first[0]) != fmt.Sprint(want) {
				t.Errorf("%s panel %q shows %v, the simulator generated %d", file, titles[q.where], first[0], want)
			}
		}
	}
	if n < 12 {
		t.Fatalf("only %d queries in the dashboards", n)
	}
}

// panelTitles maps each target's JSON path (as extractSQL names it) to its panel's title.
func panelTitles(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for i, p := range d.Panels {
		for j := range p.Targets {
			m[fmt.Sprintf(".panels[%d].targets[%d].rawSql", i, j)] = p.Title
		}
	}
	return m
}

// scanAny scans one row into values of the columns' own Go types.
func scanAny(t *testing.T, cols []driver.ColumnType, scan func(...any) error) []any {
	t.Helper()
	ptrs := make([]any, len(cols))
	for i, c := range cols {
		ptrs[i] = reflect.New(c.ScanType()).Interface()
	}
	if err := scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	out := make([]any, len(cols))
	for i, p := range ptrs {
		out[i] = reflect.ValueOf(p).Elem().Interface()
	}
	return out
}
