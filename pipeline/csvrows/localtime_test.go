package csvrows

import (
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the host's zoneinfo
)

func TestLocalClock(t *testing.T) {
	tests := []struct {
		zone, wall string
		want       string // RFC 3339 UTC, or "gap"
	}{
		{"Europe/Vienna", "2026-01-15 10:20:30", "2026-01-15T09:20:30Z"},
		{"Europe/Vienna", "2026-03-29 01:59:59", "2026-03-29T00:59:59Z"},
		{"Europe/Vienna", "2026-03-29 02:00:00", "gap"},
		{"Europe/Vienna", "2026-03-29 02:59:59", "gap"},
		{"Europe/Vienna", "2026-03-29 03:00:00", "2026-03-29T01:00:00Z"},
		{"Europe/Vienna", "2026-10-25 01:59:59", "2026-10-24T23:59:59Z"},
		{"Europe/Vienna", "2026-10-25 02:00:00", "2026-10-25T00:00:00Z"}, // twice: first (CEST)
		{"Europe/Vienna", "2026-10-25 02:59:59", "2026-10-25T00:59:59Z"},
		{"Europe/Vienna", "2026-10-25 03:00:00", "2026-10-25T02:00:00Z"},
		// Lord Howe Island shifts by 30 minutes at 02:00: hours with a change inside.
		{"Australia/Lord_Howe", "2026-10-04 01:59:00", "2026-10-03T15:29:00Z"},
		{"Australia/Lord_Howe", "2026-10-04 02:15:00", "gap"},
		{"Australia/Lord_Howe", "2026-10-04 02:45:00", "2026-10-03T15:45:00Z"},
		{"Australia/Lord_Howe", "2026-04-05 01:15:00", "2026-04-04T14:15:00Z"},
		{"Australia/Lord_Howe", "2026-04-05 01:45:00", "2026-04-04T14:45:00Z"}, // twice: first (+11:00)
		{"Australia/Lord_Howe", "2026-04-05 02:15:00", "2026-04-04T15:45:00Z"},
		{"UTC", "2026-03-29 02:30:00", "2026-03-29T02:30:00Z"},
	}
	for _, tc := range tests {
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Fatal(err)
		}
		z := localClock{loc: loc}
		c, ok := parseCivil(tc.wall)
		if !ok {
			t.Fatalf("parseCivil(%q) failed", tc.wall)
		}
		got := "gap"
		if unix, ok := z.toUTC(c); ok {
			got = time.Unix(unix, 0).UTC().Format(time.RFC3339)
		}
		if got != tc.want {
			t.Errorf("%s %s: got %s, want %s", tc.zone, tc.wall, got, tc.want)
		}
	}
}

// TestLocalClockRule checks the cached conversion against the rule itself,
// every 10 minutes over two years, in zones with hour, half-hour and
// midnight changes.
func TestLocalClockRule(t *testing.T) {
	for _, zone := range []string{"Europe/Vienna", "Australia/Lord_Howe", "America/Sao_Paulo", "America/Havana", "Asia/Kathmandu"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		z := localClock{loc: loc}
		offsets := map[int]bool{}
		start := time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)
		for u := start.Add(-48 * time.Hour); u.Before(start.AddDate(2, 2, 0)); u = u.Add(30 * time.Minute) {
			_, off := u.In(loc).Zone()
			offsets[off] = true
		}
		for w := start; w.Before(start.AddDate(2, 0, 0)); w = w.Add(10 * time.Minute) {
			c := civil{y: w.Year(), mo: int(w.Month()), d: w.Day(), h: w.Hour(), mi: w.Minute(), s: w.Second()}
			wall := w.Unix()
			// By the rule: the earliest instant whose local wall clock is w.
			var want int64
			found := false
			for off := range offsets {
				u := wall - int64(off)
				if _, o := time.Unix(u, 0).In(loc).Zone(); o == off && (!found || u < want) {
					want, found = u, true
				}
			}
			got, ok := z.toUTC(c)
			if ok != found || got != want {
				t.Fatalf("%s %s: got %d %v, want %d %v", zone, w.Format(time.DateTime), got, ok, want, found)
			}
		}
	}
}

func TestParseCivil(t *testing.T) {
	tests := []struct {
		in   string
		want civil
		ok   bool
	}{
		{"2026-01-02", civil{y: 2026, mo: 1, d: 2}, true},
		{"2026-01-02 03:04:05", civil{2026, 1, 2, 3, 4, 5, true}, true},
		{"2026-01-02T03:04:05", civil{2026, 1, 2, 3, 4, 5, true}, true},
		{"2026-01-02 03:04", civil{2026, 1, 2, 3, 4, 0, true}, true},
		{"2026-01-02 03:04:05.999999999", civil{2026, 1, 2, 3, 4, 5, true}, true},
		{"0000-00-00 00:00:00", civil{hasTime: true}, true},
		{"2024-02-29", civil{y: 2024, mo: 2, d: 29}, true},
		{"2025-02-29", civil{}, false},
		{"2026-13-01", civil{}, false},
		{"2026-1-02", civil{}, false},
		{"2026-01-02 3:04:05", civil{}, false},
		{"2026-01-02 03:04:05.", civil{}, false},
		{"2026-01-02 03:04:05.1234567890", civil{}, false},
		{"2026-01-02 03:04:05Z", civil{}, false},
		{"2026-01-02 03:04:05+01:00", civil{}, false},
		{"2026-01-02 03:60:00", civil{}, false},
		{"02.01.2026", civil{}, false},
	}
	for _, tc := range tests {
		got, ok := parseCivil(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseCivil(%q) = %+v %v, want %+v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
