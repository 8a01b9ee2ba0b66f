package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// SourceCount is the number of stored responses of one source.
type SourceCount struct {
	Source string
	Rows   uint64
}

// SourceCounts counts the responses of an account with event_time in [from, to), per source.
func (s *Store) SourceCounts(ctx context.Context, account string, from, to time.Time) ([]SourceCount, error) {
	q := fmt.Sprintf("SELECT toString(source) AS s, count() FROM `%s`.email_responses "+
		"WHERE account = ? AND event_time >= ? AND event_time < ? GROUP BY s ORDER BY s", s.db)
	rows, err := s.conn.Query(ctx, q, account, from.UTC(), to.UTC())
	if err != nil {
		return nil, fmt.Errorf("count responses per source: %w", s.scrub(err))
	}
	defer rows.Close()
	var out []SourceCount
	for rows.Next() {
		var sc SourceCount
		if err := rows.Scan(&sc.Source, &sc.Rows); err != nil {
			return nil, fmt.Errorf("count responses per source: %w", s.scrub(err))
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}
