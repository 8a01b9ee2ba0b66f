package csvrows

import (
	"fmt"
	"time"
)

// localClock converts wall-clock times of one zone to UTC by the package's
// DST rule (see the package doc). time.Date alone cannot be used: for a gap
// or a repeated hour it picks an instant without saying so.
//
// Converting every cell through the zone database is slow, so it caches per
// wall-clock hour: if both ends of a local hour resolve with the same offset
// inside one zone period, every second of that hour does. An export is
// time-ordered, so the few hours in use stay in the small cache.
type localClock struct {
	loc   *time.Location
	hours [64]hourEntry
}

type hourState uint8

const (
	hourEmpty   hourState = iota
	hourUniform           // one offset for the whole hour
	hourGap               // the whole hour is skipped by a clock change
	hourMixed             // a clock change inside the hour: resolve each second
)

type hourEntry struct {
	key    int64 // wall-clock hours since 1970-01-01 00:00
	state  hourState
	offset int64 // seconds east of UTC when state is hourUniform
}

// toUTC returns the Unix time of wall-clock c; ok is false when c falls in a
// DST gap.
func (z *localClock) toUTC(c civil) (unix int64, ok bool) {
	days := daysFromCivil(c.y, c.mo, c.d)
	key := days*24 + int64(c.h)
	wall := key*3600 + int64(c.mi*60+c.s)
	e := &z.hours[uint64(key)%uint64(len(z.hours))]
	if e.state == hourEmpty || e.key != key {
		*e = z.hour(key)
	}
	switch e.state {
	case hourUniform:
		return wall - e.offset, true
	case hourGap:
		return 0, false
	}
	return z.exact(wall)
}

// hour classifies one wall-clock hour.
func (z *localClock) hour(key int64) hourEntry {
	w0 := key * 3600
	w1 := w0 + 3599
	t0, ok0 := z.exact(w0)
	t1, ok1 := z.exact(w1)
	switch {
	case !ok0 && !ok1:
		return hourEntry{key: key, state: hourGap}
	case ok0 && ok1 && w0-t0 == w1-t1:
		// Same offset at both ends; also require one zone period, so two
		// changes inside the hour cannot hide between the ends.
		if _, end := time.Unix(t0, 0).In(z.loc).ZoneBounds(); end.IsZero() || t1 < end.Unix() {
			return hourEntry{key: key, state: hourUniform, offset: w0 - t0}
		}
	}
	return hourEntry{key: key, state: hourMixed}
}

// exact resolves wall (seconds of a wall clock counted like Unix time) to the
// earliest instant whose local time is wall. Candidates are the offsets in
// force a day before and a day after: real zones change at most once in that
// span.
func (z *localClock) exact(wall int64) (int64, bool) {
	var best int64
	found := false
	for _, probe := range [2]int64{wall - 86400, wall + 86400} {
		_, off := time.Unix(probe, 0).In(z.loc).Zone()
		t := wall - int64(off)
		if _, got := time.Unix(t, 0).In(z.loc).Zone(); got != off {
			continue // that offset is not in force at t: no such instant
		}
		if !found || t < best {
			best, found = t, true
		}
	}
	return best, found
}

// gapReason is the reject reason for a wall time in a DST gap.
func (z *localClock) gapReason(c civil) string {
	return fmt.Sprintf("time %04d-%02d-%02d %02d:%02d:%02d does not exist in %s (DST gap)",
		c.y, c.mo, c.d, c.h, c.mi, c.s, z.loc)
}
