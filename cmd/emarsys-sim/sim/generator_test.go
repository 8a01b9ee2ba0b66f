package sim

import (
	"reflect"
	"testing"
	"time"
)

func TestResponsesDeterministicAndUnion(t *testing.T) {
	g := Generator{Seed: 7, EventsPerHour: 120, Tricky: true}
	a := time.Date(2026, 3, 28, 22, 17, 3, 0, time.UTC)
	b := a.Add(3*time.Hour + 41*time.Minute + 7*time.Second)
	c := b.Add(5*time.Hour + 1*time.Second)

	ac := g.Responses(a, c)
	if len(ac) == 0 {
		t.Fatal("no responses")
	}
	if again := g.Responses(a, c); !reflect.DeepEqual(ac, again) {
		t.Fatal("same range, different responses")
	}
	union := append(g.Responses(a, b), g.Responses(b, c)...)
	if !reflect.DeepEqual(ac, union) {
		t.Fatalf("responses(a,c) has %d rows, responses(a,b)+responses(b,c) %d", len(ac), len(union))
	}
	// An overlapping range agrees on the overlap.
	mid := g.Responses(a.Add(time.Hour), c.Add(time.Hour))
	var want []Response
	for _, r := range ac {
		if !r.Time.Before(a.Add(time.Hour)) {
			want = append(want, r)
		}
	}
	if !reflect.DeepEqual(want, mid[:len(want)]) {
		t.Fatal("overlapping ranges disagree")
	}
	if other := (Generator{Seed: 8, EventsPerHour: 120}).Responses(a, c); reflect.DeepEqual(ac, other) {
		t.Fatal("seed has no effect")
	}

	seen := map[Key]bool{}
	for i, r := range ac {
		if r.Time.Before(a) || !r.Time.Before(c) || r.Time.Location() != time.UTC || r.Time.Nanosecond() != 0 {
			t.Fatalf("row %d time %v out of range or not whole UTC seconds", i, r.Time)
		}
		if i > 0 && compareResponses(ac[i-1], r) >= 0 {
			t.Fatalf("rows %d and %d not in order", i-1, i)
		}
		if seen[r.Key()] {
			t.Fatalf("duplicate key %+v", r.Key())
		}
		seen[r.Key()] = true
		if (r.Source == SourceClick) != (r.URL != "") {
			t.Fatalf("row %d: source %s with URL %q", i, r.Source, r.URL)
		}
	}
}

func TestResponsesMix(t *testing.T) {
	g := Generator{Seed: 1}
	from := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	bySource, n := g.Count(from, from.Add(7*24*time.Hour))
	if n < 7*24*200*8/10 || n > 7*24*200*12/10 {
		t.Fatalf("a week holds %d responses, want about %d", n, 7*24*200)
	}
	if p := bySource[SourceOpen] * 100 / n; p < 60 || p > 70 {
		t.Errorf("opens %d%%, want about 65%%", p)
	}
	if p := bySource[SourceClick] * 100 / n; p < 25 || p > 35 {
		t.Errorf("clicks %d%%, want about 30%%", p)
	}
	for _, s := range []string{SourceUnsubscribe, SourceComplaint, SourceRegistrationForm, SourceTellAFriend, SourceContactUs, SourceChangeProfile} {
		if bySource[s] == 0 {
			t.Errorf("no %s in a week", s)
		}
	}
	// Hourly counts vary with the time of day.
	lo, hi := 1<<30, 0
	for h := range 24 {
		_, c := g.Count(from.Add(time.Duration(h)*time.Hour), from.Add(time.Duration(h+1)*time.Hour))
		lo, hi = min(lo, c), max(hi, c)
	}
	if lo > 150 || hi < 250 {
		t.Errorf("hourly counts %d..%d do not vary enough", lo, hi)
	}
}

func TestFilter(t *testing.T) {
	g := Generator{Seed: 3}
	from := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	rs := g.Responses(from, from.Add(6*time.Hour))
	if got := g.Filter(rs, nil); len(got) != len(rs) {
		t.Error("empty sources must keep all")
	}
	if got := g.Filter(rs, []string{"mail_open", "all"}); len(got) != len(rs) {
		t.Error("all must keep all")
	}
	got := g.Filter(rs, []string{"trackable_links", "unsubscribe"})
	if len(got) == 0 {
		t.Fatal("no clicks")
	}
	for _, r := range got {
		if r.Source != SourceClick && r.Source != SourceUnsubscribe {
			t.Fatalf("kept %s", r.Source)
		}
	}
}

func TestContactValue(t *testing.T) {
	r := Response{UserID: userID(42)}
	if r.ContactValue(1) != r.ContactValue(1) || r.ContactValue(3) == "" {
		t.Fatal("contact values not deterministic or empty")
	}
	if got := r.ContactValue(27); got != "" {
		t.Errorf("field 27 = %q, want empty", got)
	}
	if got := r.ContactValue(123); len(got) < 6 || got[:6] != "cf123-" {
		t.Errorf("custom field = %q", got)
	}
	empty := 0
	for k := range 1000 {
		v := Response{UserID: userID(k)}.ContactValue(4)
		if v == "" {
			empty++
		} else if _, err := time.Parse("2006-01-02", v); err != nil {
			t.Fatalf("date of birth %q", v)
		}
	}
	if empty < 120 || empty > 280 {
		t.Errorf("%d of 1000 dates of birth empty, want about 200", empty)
	}
}

func TestParseLocalDST(t *testing.T) {
	loc := Generator{}.Location()
	tests := []struct{ in, want string }{
		{"2026-06-01 12:00:00", "2026-06-01T10:00:00Z"},
		{"2026-01-01 12:00", "2026-01-01T11:00:00Z"},
		{"2026-01-01", "2025-12-31T23:00:00Z"},
		// Autumn: 02:30 happens twice; the first (summer time) wins.
		{"2026-10-25 02:30:00", "2026-10-25T00:30:00Z"},
		{"2026-10-25 03:00:00", "2026-10-25T02:00:00Z"},
		// Spring gap: 02:30 does not exist; read with the winter offset.
		{"2026-03-29 02:30:00", "2026-03-29T01:30:00Z"},
	}
	for _, tc := range tests {
		got, err := parseLocal(tc.in, loc)
		if err != nil || got.Format(time.RFC3339) != tc.want {
			t.Errorf("parseLocal(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
