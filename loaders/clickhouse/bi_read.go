package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// The reads behind the built-in dashboard page. They go through the BI
// views (migration 0002), so they answer from the aggregates, and take UTC
// days [from, to).

// DayTotals is one UTC day of an account's engagement.
type DayTotals struct {
	Day             string  `json:"day"` // YYYY-MM-DD
	Opens           uint64  `json:"opens"`
	Clicks          uint64  `json:"clicks"`
	UniqueOpeners   uint64  `json:"unique_openers"`  // per campaign and day, summed
	UniqueClickers  uint64  `json:"unique_clickers"` // per campaign and day, summed
	ClickToOpenRate float64 `json:"click_to_open_rate"`
}

// CampaignTotals is one campaign's engagement over a range of days.
type CampaignTotals struct {
	CampaignID uint64 `json:"campaign_id"`
	Title      string `json:"title"`
	Category   string `json:"category"`
	Opens      uint64 `json:"opens"`
	Clicks     uint64 `json:"clicks"`
}

// LinkTotals is one link's clicks over a range of days.
type LinkTotals struct {
	URL    string `json:"url"`
	Title  string `json:"title"`
	Clicks uint64 `json:"clicks"`
}

// PipelineStatus is the ledger in numbers.
type PipelineStatus struct {
	WindowsByState map[string]uint64 `json:"windows_by_state"`
	LoadedUntil    string            `json:"loaded_until"` // end of the newest done window, RFC 3339; "" for none
	RowsRejected   uint64            `json:"rows_rejected"`
}

func dayRange(account string, from, to time.Time) string {
	return fmt.Sprintf("account = %s AND day >= %s AND day < %s", quoteString(account), dateLit(from), dateLit(to))
}

// DailyTotals returns opens, clicks and click-to-open rate per day.
func (s *Store) DailyTotals(ctx context.Context, account string, from, to time.Time) ([]DayTotals, error) {
	q := fmt.Sprintf(`SELECT toString(day), sum(opens), sum(clicks), sum(unique_openers), sum(unique_clickers),
       if(sum(unique_openers) = 0, 0, sum(unique_clickers) / sum(unique_openers))
FROM %s WHERE %s GROUP BY day ORDER BY day`, s.table("campaign_daily"), dayRange(account, from, to))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read daily totals: %w", err))
	}
	defer rows.Close()
	var out []DayTotals
	for rows.Next() {
		var d DayTotals
		if err := rows.Scan(&d.Day, &d.Opens, &d.Clicks, &d.UniqueOpeners, &d.UniqueClickers, &d.ClickToOpenRate); err != nil {
			return nil, s.scrub(fmt.Errorf("read daily totals: %w", err))
		}
		out = append(out, d)
	}
	return out, s.scrub(rows.Err())
}

// TopCampaigns returns the limit campaigns with the most clicks, then opens.
func (s *Store) TopCampaigns(ctx context.Context, account string, from, to time.Time, limit int) ([]CampaignTotals, error) {
	q := fmt.Sprintf(`SELECT campaign_id, title, category, opens, clicks
FROM (SELECT campaign_id, sum(opens) AS opens, sum(clicks) AS clicks FROM %s WHERE %s GROUP BY campaign_id)
ANY LEFT JOIN (SELECT campaign_id, title, category FROM %s WHERE account = %s) USING campaign_id
ORDER BY clicks DESC, opens DESC, campaign_id LIMIT %d`,
		s.table("campaign_daily"), dayRange(account, from, to), s.table("campaigns"), quoteString(account), limit)
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read top campaigns: %w", err))
	}
	defer rows.Close()
	var out []CampaignTotals
	for rows.Next() {
		var c CampaignTotals
		if err := rows.Scan(&c.CampaignID, &c.Title, &c.Category, &c.Opens, &c.Clicks); err != nil {
			return nil, s.scrub(fmt.Errorf("read top campaigns: %w", err))
		}
		out = append(out, c)
	}
	return out, s.scrub(rows.Err())
}

// TopLinks returns the limit links with the most clicks.
func (s *Store) TopLinks(ctx context.Context, account string, from, to time.Time, limit int) ([]LinkTotals, error) {
	q := fmt.Sprintf(`SELECT url, title, clicks
FROM (SELECT url, sum(clicks) AS clicks FROM %s WHERE %s GROUP BY url)
ANY LEFT JOIN (SELECT url, title FROM %s WHERE account = %s) USING url
ORDER BY clicks DESC, url LIMIT %d`,
		s.table("link_daily"), dayRange(account, from, to), s.table("links"), quoteString(account), limit)
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read top links: %w", err))
	}
	defer rows.Close()
	var out []LinkTotals
	for rows.Next() {
		var l LinkTotals
		if err := rows.Scan(&l.URL, &l.Title, &l.Clicks); err != nil {
			return nil, s.scrub(fmt.Errorf("read top links: %w", err))
		}
		out = append(out, l)
	}
	return out, s.scrub(rows.Err())
}

// Pipeline returns the windows per current state, the loaded end and the rejected rows.
func (s *Store) Pipeline(ctx context.Context, account string) (PipelineStatus, error) {
	st := PipelineStatus{WindowsByState: map[string]uint64{}}
	q := fmt.Sprintf(`SELECT toString(state), count(), toUInt32(maxIf(window_end, state = 'done'))
FROM (SELECT window_end, argMax(state, version) AS state FROM %s WHERE account = %s GROUP BY window_start, window_end)
GROUP BY state`, s.table(windowTable), quoteString(account))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return st, s.scrub(fmt.Errorf("read pipeline status: %w", err))
	}
	defer rows.Close()
	var until uint32
	for rows.Next() {
		var state string
		var n uint64
		var end uint32
		if err := rows.Scan(&state, &n, &end); err != nil {
			return st, s.scrub(fmt.Errorf("read pipeline status: %w", err))
		}
		st.WindowsByState[state] = n
		until = max(until, end)
	}
	if err := rows.Err(); err != nil {
		return st, s.scrub(fmt.Errorf("read pipeline status: %w", err))
	}
	if until > 0 {
		st.LoadedUntil = time.Unix(int64(until), 0).UTC().Format(time.RFC3339)
	}
	q = fmt.Sprintf("SELECT count() FROM %s WHERE account = %s", s.table(rejectTable), quoteString(account))
	if err := s.conn.QueryRow(ctx, q).Scan(&st.RowsRejected); err != nil {
		return st, s.scrub(fmt.Errorf("read rejected rows: %w", err))
	}
	return st, nil
}
