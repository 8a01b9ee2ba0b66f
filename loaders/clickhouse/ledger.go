package clickhouse

import (
	"context"
	"fmt"
	"time"
)

// Window states, as in the Enum8 of etl_windows.state.
const (
	StatePlanned   = "planned"
	StateRequested = "requested"
	StateReady     = "ready"
	StateFetched   = "fetched"
	StateLoaded    = "loaded"
	StateDone      = "done"
	StateFailed    = "failed"
)

func validState(s string) bool {
	switch s {
	case StatePlanned, StateRequested, StateReady, StateFetched, StateLoaded, StateDone, StateFailed:
		return true
	}
	return false
}

// WindowRecord is one version of a window's ledger entry. A window is
// identified by (Account, Start, End).
type WindowRecord struct {
	Account      string
	Start, End   time.Time
	State        string // one of the State* constants
	ExportID     int64
	FileName     string
	Attempts     uint32
	RowsRead     uint64
	RowsLoaded   uint64 // rows of the file that were typed
	RowsNew      uint64 // rows actually added (fewer than loaded when an overlap had them)
	RowsRejected uint64
	LastError    string
	Manual       bool
	UpdatedAt    time.Time // set to now when zero
}

const windowColumns = "account, window_start, window_end, state, export_id, file_name, attempts, " +
	"rows_read, rows_loaded, rows_new, rows_rejected, last_error, manual, updated_at, version"

// SaveWindow appends a new version of the window's entry. Nothing is updated
// in place: the ledger is ReplacingMergeTree(version) and readers take the
// row with the highest version, so a save is one cheap insert and the last
// writer wins without any read-modify-write.
func (s *Store) SaveWindow(ctx context.Context, w WindowRecord) error {
	if w.Account == "" {
		return fmt.Errorf("save window: account is empty")
	}
	if !validState(w.State) {
		return fmt.Errorf("save window %s %s..%s: unknown state %q", w.Account, w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339), w.State)
	}
	if w.ExportID < 0 {
		return fmt.Errorf("save window %s %s: negative export id %d", w.Account, w.Start.UTC().Format(time.RFC3339), w.ExportID)
	}
	if !w.End.After(w.Start) {
		return fmt.Errorf("save window %s: end %s is not after start %s", w.Account, w.End.UTC().Format(time.RFC3339), w.Start.UTC().Format(time.RFC3339))
	}
	if w.UpdatedAt.IsZero() {
		w.UpdatedAt = time.Now()
	}
	what := fmt.Sprintf("save window %s %s..%s as %s", w.Account, w.Start.UTC().Format(time.RFC3339), w.End.UTC().Format(time.RFC3339), w.State)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(windowTable)+" ("+windowColumns+")")
	if err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	defer batch.Abort()
	manual := uint8(0)
	if w.Manual {
		manual = 1
	}
	if err := batch.Append(w.Account, w.Start.UTC(), w.End.UTC(), w.State, uint64(w.ExportID), w.FileName, w.Attempts,
		w.RowsRead, w.RowsLoaded, w.RowsNew, w.RowsRejected, w.LastError, manual, w.UpdatedAt.UTC(), s.nextVersion()); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	if err := batch.Send(); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// Windows returns the latest version of each window of account that
// overlaps [from, to), ordered by start (then end). It reads with
// argMax(..., version) so that the answer never depends on whether the
// server has merged the versions yet.
func (s *Store) Windows(ctx context.Context, account string, from, to time.Time) ([]WindowRecord, error) {
	q := fmt.Sprintf(`SELECT window_start, window_end,
	toString(argMax(state, version)), argMax(export_id, version), argMax(file_name, version),
	argMax(attempts, version), argMax(rows_read, version), argMax(rows_loaded, version),
	argMax(rows_new, version), argMax(rows_rejected, version), argMax(last_error, version),
	argMax(manual, version), argMax(updated_at, version)
FROM %s
WHERE account = %s AND window_start < %s AND window_end > %s
GROUP BY window_start, window_end
ORDER BY window_start, window_end`, s.table(windowTable), quoteString(account), dateTimeLit(to), dateTimeLit(from))
	what := fmt.Sprintf("read windows of %s in %s..%s", account, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	defer rows.Close()
	var out []WindowRecord
	for rows.Next() {
		var (
			w        = WindowRecord{Account: account}
			exportID uint64
			manual   uint8
		)
		if err := rows.Scan(&w.Start, &w.End, &w.State, &exportID, &w.FileName, &w.Attempts, &w.RowsRead,
			&w.RowsLoaded, &w.RowsNew, &w.RowsRejected, &w.LastError, &manual, &w.UpdatedAt); err != nil {
			return nil, s.scrub(fmt.Errorf("%s: %w", what, err))
		}
		w.ExportID, w.Manual = int64(exportID), manual != 0
		w.Start, w.End, w.UpdatedAt = w.Start.UTC(), w.End.UTC(), w.UpdatedAt.UTC()
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	return out, nil
}

// LastDoneEnd returns the latest end among account's windows whose latest
// state is done; ok is false when there is none.
func (s *Store) LastDoneEnd(ctx context.Context, account string) (end time.Time, ok bool, err error) {
	q := fmt.Sprintf(`SELECT count(), max(window_end) FROM (
	SELECT window_end, argMax(state, version) AS latest_state
	FROM %s WHERE account = %s
	GROUP BY window_start, window_end
) WHERE latest_state = 'done'`, s.table(windowTable), quoteString(account))
	var n uint64
	if err := s.conn.QueryRow(ctx, q).Scan(&n, &end); err != nil {
		return time.Time{}, false, s.scrub(fmt.Errorf("read last done window of %s: %w", account, err))
	}
	if n == 0 {
		return time.Time{}, false, nil
	}
	return end.UTC(), true, nil
}
