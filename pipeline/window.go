// Package pipeline plans time windows, keeps each window's state in the ledger
// and runs a window from export request to loaded rows.
package pipeline

import (
	"fmt"
	"sort"
	"time"
)

// Window is a half-open range of time [Start, End), in UTC.
type Window struct {
	Start, End time.Time
}

func (w Window) String() string {
	return w.Start.UTC().Format("2006-01-02T15:04:05Z") + "/" + w.End.UTC().Format("2006-01-02T15:04:05Z")
}

// Split cuts [from, to) into consecutive windows of at most size, starting at from.
func Split(from, to time.Time, size time.Duration) []Window {
	var out []Window
	for s := from.UTC(); s.Before(to); {
		e := s.Add(size)
		if e.After(to) {
			e = to.UTC()
		}
		out = append(out, Window{s, e})
		s = e
	}
	return out
}

// CoveredUntil returns the end of the gap-free run of windows that starts at
// the earliest one: the point up to which everything is loaded.
func CoveredUntil(done []Window) (time.Time, bool) {
	if len(done) == 0 {
		return time.Time{}, false
	}
	ws := append([]Window(nil), done...)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Start.Before(ws[j].Start) })
	end := ws[0].End
	for _, w := range ws[1:] {
		if w.Start.After(end) {
			break
		}
		if w.End.After(end) {
			end = w.End
		}
	}
	return end, true
}

// Gaps returns the parts of [from, to) that no window in done covers.
func Gaps(done []Window, from, to time.Time) []Window {
	ws := append([]Window(nil), done...)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Start.Before(ws[j].Start) })
	var gaps []Window
	cur := from
	for _, w := range ws {
		if !w.End.After(cur) {
			continue
		}
		if !w.Start.Before(to) {
			break
		}
		if w.Start.After(cur) {
			gaps = append(gaps, Window{cur, w.Start})
		}
		cur = w.End
	}
	if cur.Before(to) {
		gaps = append(gaps, Window{cur, to})
	}
	return gaps
}

// TickPlan is what one scheduler tick should run: from the end of the gap-free
// loaded range minus the overlap (never before floor, where loading starts)
// up to now minus the lag, in windows of at most size. With nothing loaded yet
// (coveredEnd zero) it starts at floor, or one window before the lagged now
// when floor is zero too.
func TickPlan(coveredEnd, floor, now time.Time, size, lag, overlap time.Duration) []Window {
	to := now.Add(-lag).UTC().Truncate(time.Second)
	var from time.Time
	switch {
	case !coveredEnd.IsZero():
		// Nothing (or seconds) new since the last window: running the overlap
		// again for it would be busy work.
		if to.Sub(coveredEnd) < minTail {
			return nil
		}
		from = coveredEnd.Add(-overlap)
		if from.Before(floor) {
			from = floor
		}
	case !floor.IsZero():
		from = floor
	default:
		from = to.Add(-size)
	}
	if !from.Before(to) {
		return nil
	}
	ws := Split(from, to, size)
	if n := len(ws); n > 0 && ws[n-1].End.Sub(ws[n-1].Start) < minTail {
		// A last piece of a few seconds waits for the next tick: its export
		// would ask for one second or none (time_range has second
		// precision, both ends inclusive), which the API refuses.
		ws = ws[:n-1]
	}
	return ws
}

// minTail is the shortest window a tick plans at the end of its range.
const minTail = 30 * time.Second

// LocalRange formats a window as the export's time_range: local times of the
// account, second precision, both ends inclusive (the vendor's convention), so
// the request asks for [Start, End-1s].
//
// Around the autumn clock change a local time happens twice and the vendor
// (like our simulator) takes the first. A start there only widens the export,
// which the load deduplicates; an end there would cut the window short, so it
// is moved to the first local time after the repeated hour. Windows never lose
// rows at a clock change; they may fetch a few more.
func LocalRange(w Window, loc *time.Location) [2]string {
	const f = "2006-01-02 15:04:05"
	start := w.Start.In(loc)
	last := w.End.Add(-time.Second).In(loc)
	if first := firstOccurrence(last, loc); !first.Equal(last) {
		// Step forward until the wall clock is unambiguous again.
		t := last
		for i := 0; i < 4*3600 && !firstOccurrence(t, loc).Equal(t); i += 60 {
			t = t.Add(time.Minute)
		}
		last = t
	}
	return [2]string{start.Format(f), last.Format(f)}
}

// firstOccurrence is the instant the vendor means by t's wall-clock reading.
func firstOccurrence(t time.Time, loc *time.Location) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	// time.Date picks one of two instants for an ambiguous reading; check an hour
	// earlier for another instant with the same reading.
	c := time.Date(y, mo, d, h, mi, s, 0, loc)
	for _, delta := range []time.Duration{-2 * time.Hour, -time.Hour, -30 * time.Minute} {
		e := c.Add(delta).In(loc)
		if e.Format("2006-01-02 15:04:05") == t.In(loc).Format("2006-01-02 15:04:05") {
			return e
		}
	}
	return c
}

// ParseRange reads the --from/--to flags: UTC days (the end day exclusive) or RFC 3339 instants.
func ParseRange(from, to string) (time.Time, time.Time, error) {
	parse := func(name, s string) (time.Time, error) {
		if t, err := time.Parse("2006-01-02", s); err == nil {
			return t, nil
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("--%s %q: want YYYY-MM-DD (UTC) or an RFC 3339 time", name, s)
	}
	f, err := parse("from", from)
	if err != nil {
		return f, f, err
	}
	t, err := parse("to", to)
	if err != nil {
		return f, t, err
	}
	if !f.Before(t) {
		return f, t, fmt.Errorf("--from %s must be before --to %s", from, to)
	}
	return f, t, nil
}
