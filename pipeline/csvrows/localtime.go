package csvrows

import (
	"fmt"
	"time"
)

// localClock converts wall-clock times of one zone to UTC. It returns every
// instant a wall time can mean: none in a spring-forward gap, two in the
// autumn's repeated hour; choosing between the two is the parser's job (see
// the package doc), because only the file around a reading tells them apart.
// time.Date alone cannot be used: for a gap or a repeated hour it picks an
// instant without saying so.
//
// Converting every cell through the zone database is slow, so it caches per
// wall-clock hour: if both ends of a local hour resolve to one instant each,
// with the same offset inside one zone period, every second of that hour does.
// An export is time-ordered, so the few hours in use stay in the small cache.
type localClock struct {
	loc   *time.Location
	hours [64]hourEntry
}

type hourState uint8

const (
	hourEmpty   hourState = iota
	hourUniform           // one offset for the whole hour
	hourGap               // the whole hour is skipped by a clock change
	hourMixed             // a clock change inside or around the hour: resolve each second
)

type hourEntry struct {
	key    int64 // wall-clock hours since 1970-01-01 00:00
	state  hourState
	offset int64 // seconds east of UTC when state is hourUniform
}

// toUTC returns the Unix times that wall-clock c may mean, early <= late;
// they differ only in a repeated hour. ok is false when c falls in a DST gap.
func (z *localClock) toUTC(c civil) (early, late int64, ok bool) {
	days := daysFromCivil(c.y, c.mo, c.d)
	key := days*24 + int64(c.h)
	wall := key*3600 + int64(c.mi*60+c.s)
	e := &z.hours[uint64(key)%uint64(len(z.hours))]
	if e.state == hourEmpty || e.key != key {
		*e = z.hour(key)
	}
	switch e.state {
	case hourUniform:
		return wall - e.offset, wall - e.offset, true
	case hourGap:
		return 0, 0, false
	}
	return z.exact(wall)
}

// hour classifies one wall-clock hour.
func (z *localClock) hour(key int64) hourEntry {
	w0 := key * 3600
	w1 := w0 + 3599
	e0, l0, ok0 := z.exact(w0)
	e1, l1, ok1 := z.exact(w1)
	switch {
	case !ok0 && !ok1:
		return hourEntry{key: key, state: hourGap}
	case ok0 && ok1 && e0 == l0 && e1 == l1 && w0-e0 == w1-e1:
		// Same offset at both ends; also require one zone period, so two
		// changes inside the hour cannot hide between the ends.
		if _, end := time.Unix(e0, 0).In(z.loc).ZoneBounds(); end.IsZero() || e1 < end.Unix() {
			return hourEntry{key: key, state: hourUniform, offset: w0 - e0}
		}
	}
	return hourEntry{key: key, state: hourMixed}
}

// exact resolves wall (seconds of a wall clock counted like Unix time) to the
// earliest and latest instants whose local time is wall. Candidates are the
// offsets in force a day before and a day after: real zones change at most
// once in that span.
func (z *localClock) exact(wall int64) (early, late int64, ok bool) {
	for _, probe := range [2]int64{wall - 86400, wall + 86400} {
		_, off := time.Unix(probe, 0).In(z.loc).Zone()
		t := wall - int64(off)
		if _, got := time.Unix(t, 0).In(z.loc).Zone(); got != off {
			continue // that offset is not in force at t: no such instant
		}
		if !ok {
			early, late, ok = t, t, true
			continue
		}
		early, late = min(early, t), max(late, t)
	}
	return early, late, ok
}

// transition identifies the clock change that makes a reading ambiguous: the
// start of the zone period its later instant belongs to.
func (z *localClock) transition(late int64) int64 {
	start, _ := time.Unix(late, 0).In(z.loc).ZoneBounds()
	return start.Unix()
}

// gapReason is the reject reason for a wall time in a DST gap.
func (z *localClock) gapReason(c civil) string {
	return fmt.Sprintf("time %04d-%02d-%02d %02d:%02d:%02d does not exist in %s (DST gap)",
		c.y, c.mo, c.d, c.h, c.mi, c.s, z.loc)
}

// VendorInstant reads a time_range value ("YYYY-MM-DD[ HH:MM[:SS]]", a wall
// time of loc) as the vendor does: a repeated wall time is its first
// occurrence. A time in a spring-forward gap is an error; LocalRange never
// sends one.
func VendorInstant(s string, loc *time.Location) (time.Time, error) {
	c, ok := parseCivil(s)
	if !ok || c.zero() {
		return time.Time{}, fmt.Errorf("time_range value %q: want YYYY-MM-DD[ HH:MM[:SS]]", s)
	}
	z := localClock{loc: loc}
	early, _, ok := z.toUTC(c)
	if !ok {
		return time.Time{}, fmt.Errorf("time_range value %q: %s", s, z.gapReason(c))
	}
	return time.Unix(early, 0).UTC(), nil
}
