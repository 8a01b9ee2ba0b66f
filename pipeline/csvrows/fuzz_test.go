package csvrows

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParse feeds random bytes to Parse with a fixed plan: it must not panic,
// must keep Read = Loaded + Rejected, every reject must be bytes of the
// input, unchanged, and a row is flagged InvalidUTF8 exactly when one of
// its values is.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.csv")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	plan := mustPlan(f, []int{1, 4}, []int{8, 12})
	loc, err := time.LoadLocation("Europe/Vienna")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, header := range []bool{false, true} {
			lastLine := 0
			st, err := Parse(bytes.NewReader(data), Options{Plan: plan, Header: header, Loc: loc},
				func(r *Row) error {
					if r.Line <= lastLine || len(r.Values) != len(plan.Fields) {
						t.Fatalf("row line %d after %d, %d values", r.Line, lastLine, len(r.Values))
					}
					lastLine = r.Line
					invalid := false
					for _, v := range r.Values {
						invalid = invalid || !utf8.ValidString(v.S)
					}
					if r.InvalidUTF8 != invalid {
						t.Fatalf("line %d: InvalidUTF8 %v, but a value's validity says %v", r.Line, r.InvalidUTF8, invalid)
					}
					return nil
				},
				func(r Reject) error {
					if r.Line <= lastLine || r.Reason == "" {
						t.Fatalf("reject line %d after %d, reason %q", r.Line, lastLine, r.Reason)
					}
					lastLine = r.Line
					if !bytes.Contains(data, []byte(r.Raw)) {
						t.Fatalf("reject Raw %q is not in the input", r.Raw)
					}
					return nil
				})
			if err == nil && st.Read != st.Loaded+st.Rejected {
				t.Fatalf("stats %+v", st)
			}
		}
	})
}
