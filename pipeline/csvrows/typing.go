package csvrows

import "strconv"

// The typing helpers below parse by hand rather than through strconv or
// time.Parse: they run once per cell on the hot path, must not allocate, and
// the formats are narrow enough to check byte by byte.

// parseUint reads decimal digits only (no sign, no spaces inside).
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		if n > (1<<64-1-uint64(c))/10 {
			return 0, false // overflow
		}
		n = n*10 + uint64(c)
	}
	return n, true
}

// digits returns the value of s[i:i+n] if it is all ASCII digits.
func digits(s string, i, n int) (int, bool) {
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// civil is a wall-clock time read from a cell, before any zone is applied.
type civil struct {
	y, mo, d, h, mi, s int
	hasTime            bool
}

func (c civil) zero() bool { return c.y == 0 && c.mo == 0 && c.d == 0 }

// wall counts the wall-clock seconds since 1970-01-01 00:00, like Unix time
// but with no zone applied: readings compare in the order the clock shows them.
func (c civil) wall() int64 {
	return daysFromCivil(c.y, c.mo, c.d)*86400 + int64(c.h*3600+c.mi*60+c.s)
}

// parseCivil reads "YYYY-MM-DD" optionally followed by ' ' or 'T' and
// "HH:MM", ":SS" and a fraction of a second (dropped). It checks ranges
// except for the vendor's zero date 0000-00-00, which callers decide on.
func parseCivil(s string) (civil, bool) {
	var c civil
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return c, false
	}
	var ok1, ok2, ok3 bool
	c.y, ok1 = digits(s, 0, 4)
	c.mo, ok2 = digits(s, 5, 2)
	c.d, ok3 = digits(s, 8, 2)
	if !ok1 || !ok2 || !ok3 {
		return c, false
	}
	if !c.zero() && (c.y < 1 || c.mo < 1 || c.mo > 12 || c.d < 1 || c.d > daysIn(c.y, c.mo)) {
		return c, false
	}
	rest := s[10:]
	if rest == "" {
		return c, true
	}
	if len(rest) < 6 || (rest[0] != ' ' && rest[0] != 'T') || rest[3] != ':' {
		return c, false
	}
	c.hasTime = true
	c.h, ok1 = digits(rest, 1, 2)
	c.mi, ok2 = digits(rest, 4, 2)
	if !ok1 || !ok2 || c.h > 23 || c.mi > 59 {
		return c, false
	}
	rest = rest[6:]
	if rest == "" {
		return c, true
	}
	if len(rest) < 3 || rest[0] != ':' {
		return c, false
	}
	c.s, ok1 = digits(rest, 1, 2)
	if !ok1 || c.s > 59 {
		return c, false
	}
	rest = rest[3:]
	if rest == "" {
		return c, true
	}
	// A fraction: '.' and 1 to 9 digits, truncated to whole seconds.
	if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
		return c, false
	}
	_, ok1 = digits(rest, 1, len(rest)-1)
	return c, ok1
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to y-m-d (proleptic Gregorian,
// y >= 1), after Howard Hinnant's days_from_civil.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// quoteShort quotes a cell for a reject reason, cut so one bad cell cannot
// blow up the quarantine record.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// trimSpace trims ASCII spaces and tabs, the padding seen around numbers.
func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
