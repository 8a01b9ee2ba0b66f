package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/dashboard"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// facts runs a query over the fact table returning (key, a, b, c, d) rows.
func facts(t *testing.T, h *pipelinetest.Harness, q string) map[string][4]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := h.Conn.Query(ctx, strings.ReplaceAll(q, "{db}", "`"+h.DB+"`"))
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out := map[string][4]uint64{}
	for rows.Next() {
		var k string
		var v [4]uint64
		if err := rows.Scan(&k, &v[0], &v[1], &v[2], &v[3]); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// Each JSON endpoint's numbers equal the same numbers computed with SQL
// over email_responses (and the ledger and rejects for the pipeline).
func TestEndpointsMatchFacts(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{
		Window:    12 * time.Hour,
		SimConfig: func(c *sim.Config) { c.BrokenRowsPerExport = 1 },
	})
	from := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	to := from.Add(72 * time.Hour)
	h.Backfill(from, to)

	mux := http.NewServeMux()
	dashboard.Mount(mux, h.Store, "acme", func() time.Time { return to.Add(time.Hour) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "api/bi/") {
		t.Fatalf("GET /: %s, %d bytes", resp.Status, len(page))
	}
	if resp, _ := http.Get(srv.URL + "/nothing-here"); resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown path is not a 404")
	}
	if resp, _ := http.Get(srv.URL + dashboard.APIPrefix + "daily?from=yesterday"); resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad date is not a 400")
	}

	// The default range (the 30 days up to "now") and an explicit one-day range.
	for _, q := range []struct{ query, where string }{
		{"", "event_date >= '2026-10-14'"},
		{"?from=2026-11-11&to=2026-11-12", "event_date = '2026-11-11'"},
	} {
		var days []chstore.DayTotals
		getJSON(t, srv.URL+dashboard.APIPrefix+"daily"+q.query, &days)
		want := facts(t, h, `SELECT toString(event_date), sum(o), sum(c), sum(uo), sum(uc) FROM (
			SELECT event_date, countIf(source = 'open') AS o, countIf(source = 'click') AS c,
			       uniqExactIf(user_id, source = 'open') AS uo, uniqExactIf(user_id, source = 'click') AS uc
			FROM {db}.email_responses WHERE account = 'acme' AND `+q.where+` GROUP BY event_date, ifNull(campaign_id, 0))
			GROUP BY event_date`)
		if len(days) != len(want) || len(days) == 0 {
			t.Fatalf("daily%s: %d days, facts have %d", q.query, len(days), len(want))
		}
		for _, d := range days {
			got := [4]uint64{d.Opens, d.Clicks, d.UniqueOpeners, d.UniqueClickers}
			if got != want[d.Day] {
				t.Errorf("daily %s: %v, facts %v", d.Day, got, want[d.Day])
			}
			if r := float64(d.UniqueClickers) / float64(d.UniqueOpeners); fmt.Sprintf("%.9f", r) != fmt.Sprintf("%.9f", d.ClickToOpenRate) {
				t.Errorf("daily %s: click-to-open rate %v, want %v", d.Day, d.ClickToOpenRate, r)
			}
		}
	}

	var camps []chstore.CampaignTotals
	getJSON(t, srv.URL+dashboard.APIPrefix+"campaigns?limit=1000", &camps)
	wantC := facts(t, h, `SELECT toString(ifNull(campaign_id, 0)), countIf(source = 'open'), countIf(source = 'click'), toUInt64(0), toUInt64(0)
		FROM {db}.email_responses WHERE account = 'acme' GROUP BY ifNull(campaign_id, 0)`)
	if len(camps) != len(wantC) || len(camps) < 2 {
		t.Fatalf("campaigns: %d, facts have %d", len(camps), len(wantC))
	}
	for i, c := range camps {
		if w := wantC[fmt.Sprint(c.CampaignID)]; c.Opens != w[0] || c.Clicks != w[1] {
			t.Errorf("campaign %d: opens %d clicks %d, facts %d %d", c.CampaignID, c.Opens, c.Clicks, w[0], w[1])
		}
		if c.Title == "" || (i > 0 && c.Clicks > camps[i-1].Clicks) {
			t.Errorf("campaign %d: title %q, or not ordered by clicks", c.CampaignID, c.Title)
		}
	}
	var top []chstore.CampaignTotals
	getJSON(t, srv.URL+dashboard.APIPrefix+"campaigns", &top)
	if len(top) != 10 || top[0] != camps[0] {
		t.Errorf("default top campaigns: %d, first %+v want %+v", len(top), top[0], camps[0])
	}

	var links []chstore.LinkTotals
	getJSON(t, srv.URL+dashboard.APIPrefix+"links?limit=1000", &links)
	wantL := facts(t, h, `SELECT url, count(), toUInt64(0), toUInt64(0), toUInt64(0) FROM {db}.email_responses
		WHERE account = 'acme' AND source = 'click' AND url != '' GROUP BY url`)
	if len(links) != len(wantL) || len(links) < 2 {
		t.Fatalf("links: %d, facts have %d", len(links), len(wantL))
	}
	for _, l := range links {
		if l.Clicks != wantL[l.URL][0] {
			t.Errorf("link %s: %d clicks, facts %d", l.URL, l.Clicks, wantL[l.URL][0])
		}
	}

	var st chstore.PipelineStatus
	getJSON(t, srv.URL+dashboard.APIPrefix+"pipeline", &st)
	rejected := h.Count("SELECT count() FROM {db}.email_responses_rejected WHERE account = 'acme'")
	if len(st.WindowsByState) != 1 || st.WindowsByState["done"] != 6 || st.LoadedUntil != to.Format(time.RFC3339) ||
		st.RowsRejected != rejected || rejected != 6 {
		t.Errorf("pipeline: %+v; want 6 done windows until %s, %d rejected rows (one per export)", st, to.Format(time.RFC3339), rejected)
	}
}
