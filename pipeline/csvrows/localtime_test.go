package csvrows

import (
	"fmt"
	"strings"
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
		if unix, _, ok := z.toUTC(c); ok {
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
			// By the rule: the earliest and latest instants whose local wall clock is w.
			var want, wantLate int64
			found := false
			for off := range offsets {
				u := wall - int64(off)
				if _, o := time.Unix(u, 0).In(loc).Zone(); o == off {
					if !found || u < want {
						want = u
					}
					if !found || u > wantLate {
						wantLate = u
					}
					found = true
				}
			}
			got, late, ok := z.toUTC(c)
			if ok != found || got != want || (ok && late != wantLate) {
				t.Fatalf("%s %s: got %d..%d %v, want %d..%d %v", zone, w.Format(time.DateTime), got, late, ok, want, wantLate, found)
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

// TestRepeatedHour checks the rule for the autumn's repeated hour (see
// resolveRepeated): the export range first, then the turn of the clock in
// a time-ordered file.
func TestRepeatedHour(t *testing.T) {
	vienna, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		u, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	plan, err := NewPlan(nil, []int{8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		rng   [2]string // RFC 3339, or empty: range unknown
		walls []string  // Time cells in file order
		want  []string  // RFC 3339 UTC
	}{
		{"both occurrences in order", [2]string{},
			[]string{"2026-10-25 01:59:59", "2026-10-25 02:10:00", "2026-10-25 02:50:00", "2026-10-25 02:05:00", "2026-10-25 02:55:00", "2026-10-25 03:10:00"},
			[]string{"2026-10-24T23:59:59Z", "2026-10-25T00:10:00Z", "2026-10-25T00:50:00Z", "2026-10-25T01:05:00Z", "2026-10-25T01:55:00Z", "2026-10-25T02:10:00Z"}},
		{"first occurrence only", [2]string{},
			[]string{"2026-10-25 02:10:00", "2026-10-25 02:50:00"},
			[]string{"2026-10-25T00:10:00Z", "2026-10-25T00:50:00Z"}},
		{"an equal reading is no evidence", [2]string{},
			[]string{"2026-10-25 02:30:00", "2026-10-25 02:30:00", "2026-10-25 02:31:00"},
			[]string{"2026-10-25T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T00:31:00Z"}},
		{"range starts in the first occurrence", [2]string{"2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"},
			[]string{"2026-10-25 02:40:00", "2026-10-25 02:10:00", "2026-10-25 02:20:00", "2026-10-25 02:45:00"},
			[]string{"2026-10-25T00:40:00Z", "2026-10-25T01:10:00Z", "2026-10-25T01:20:00Z", "2026-10-25T01:45:00Z"}},
		{"range holds the second occurrence only", [2]string{"2026-10-25T01:00:00Z", "2026-10-25T01:59:59Z"},
			[]string{"2026-10-25 02:10:00", "2026-10-25 02:40:00"},
			[]string{"2026-10-25T01:10:00Z", "2026-10-25T01:40:00Z"}},
		{"range ends in the first occurrence", [2]string{"2026-10-24T23:00:00Z", "2026-10-25T00:59:59Z"},
			[]string{"2026-10-25 02:10:00", "2026-10-25 02:40:00"},
			[]string{"2026-10-25T00:10:00Z", "2026-10-25T00:40:00Z"}},
		{"a file not in time order reads the first occurrence", [2]string{},
			[]string{"2026-10-25 05:00:00", "2026-10-25 01:00:00", "2026-10-25 02:30:00", "2026-10-25 02:10:00"},
			[]string{"2026-10-25T04:00:00Z", "2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T00:10:00Z"}},
		{"the range still settles what it can in a file not in time order", [2]string{"2026-10-25T00:30:00Z", "2026-10-25T05:00:00Z"},
			[]string{"2026-10-25 05:00:00", "2026-10-25 02:40:00", "2026-10-25 02:10:00", "2026-10-25 02:50:00"},
			[]string{"2026-10-25T04:00:00Z", "2026-10-25T00:40:00Z", "2026-10-25T01:10:00Z", "2026-10-25T00:50:00Z"}},
		{"each clock change has its own turn", [2]string{},
			[]string{"2025-10-26 02:30:00", "2025-10-26 02:10:00", "2026-10-25 02:20:00"},
			[]string{"2025-10-26T00:30:00Z", "2025-10-26T01:10:00Z", "2026-10-25T00:20:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			for i, w := range tc.walls {
				fmt.Fprintf(&b, "%d;%s;open\n", i+1, w)
			}
			o := Options{Plan: plan, Loc: vienna}
			if tc.rng[0] != "" {
				o.ExportRange = [2]time.Time{utc(tc.rng[0]), utc(tc.rng[1])}
			}
			var got []string
			st, err := Parse(strings.NewReader(b.String()), o, func(r *Row) error {
				got = append(got, r.Values[1].T.Format(time.RFC3339))
				return nil
			}, nil)
			if err != nil || st.Rejected != 0 {
				t.Fatalf("parse: %v, %+v", err, st)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestVendorInstant(t *testing.T) {
	vienna, _ := time.LoadLocation("Europe/Vienna")
	for in, want := range map[string]string{
		"2026-10-25 02:30:00": "2026-10-25T00:30:00Z", // repeated: the vendor reads the first
		"2026-10-25 03:00":    "2026-10-25T02:00:00Z",
		"2026-01-15":          "2026-01-14T23:00:00Z",
		"2026-03-29 02:30:00": "error",
		"yesterday":           "error",
	} {
		got := "error"
		if u, err := VendorInstant(in, vienna); err == nil {
			got = u.Format(time.RFC3339)
		}
		if got != want {
			t.Errorf("VendorInstant(%q) = %s, want %s", in, got, want)
		}
	}
}
