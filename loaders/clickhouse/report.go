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
// ExportedRows counts the responses of account in [from, to) that came from
// an API export (export_id != 0), not from a file loaded by hand.
func (s *Store) ExportedRows(ctx context.Context, account string, from, to time.Time) (uint64, error) {
	q := fmt.Sprintf("SELECT count() FROM `%s`.email_responses WHERE account = ? AND event_time >= ? AND event_time < ? AND export_id != 0", s.db)
	var n uint64
	if err := s.conn.QueryRow(ctx, q, account, from.UTC(), to.UTC()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count exported responses: %w", s.scrub(err))
	}
	return n, nil
}

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
