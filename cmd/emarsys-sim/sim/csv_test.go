package sim

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"
)

func TestWriteCSVRoundTrip(t *testing.T) {
	g := Generator{Seed: 5, Tricky: true, EventsPerHour: 300}
	from := time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC)
	rs := g.Responses(from, from.Add(6*time.Hour))
	for _, delim := range []rune{',', ';'} {
		o := CSVOptions{
			ContactFields:  []int{1, 2, 3, 4, 10, 18, 101, 102},
			AnalysisFields: []int{1, 2, 3, 4, 5, 8, 12, 13, 14, 15},
			Delimiter:      delim,
			Header:         true,
		}
		var buf bytes.Buffer
		if err := WriteCSV(&buf, rs, o); err != nil {
			t.Fatal(err)
		}
		if !bytes.ContainsAny(buf.Bytes(), "\"\r") {
			t.Fatal("tricky values produced no quoting")
		}
		cr := csv.NewReader(&buf)
		cr.Comma = delim
		recs, err := cr.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(recs[0], "|"); got != "user_id|First Name|Last Name|E-Mail|Date of Birth|Address|Company|Field 101|Field 102|Campaign title|Section header|Section group|Link title|Url|Time|Campaign ID|Version Name|Campaign category|Link category|source" {
			t.Fatalf("header %s", got)
		}
		if len(recs)-1 != len(rs) {
			t.Fatalf("%d records, want %d", len(recs)-1, len(rs))
		}
		for i, r := range rs {
			want := Record(r, o)
			for j := range want {
				// encoding/csv's reader turns "\r\n" inside quotes into "\n".
				if w := strings.ReplaceAll(want[j], "\r\n", "\n"); recs[i+1][j] != w {
					t.Fatalf("row %d col %d = %q, want %q", i, j, recs[i+1][j], w)
				}
			}
			tm, err := time.ParseInLocation(TimeLayout, recs[i+1][14], g.Location())
			if err != nil {
				t.Fatal(err)
			}
			// The autumn repeated hour cannot be told apart from the text alone.
			if d := tm.Sub(r.Time); d != 0 && d != time.Hour && d != -time.Hour {
				t.Fatalf("row %d time %s vs %v", i, recs[i+1][14], r.Time)
			}
		}
	}
}

func TestHeaderGerman(t *testing.T) {
	got := HeaderNames(CSVOptions{ContactFields: []int{1, 16, 150}, AnalysisFields: []int{5, 8}, Language: "de", CustomNames: map[int]string{150: "Treuepunkte"}})
	if s := strings.Join(got, "|"); s != "user_id|Vorname|Fax|Treuepunkte|URL|Zeit|source" {
		t.Fatalf("header %s", s)
	}
}

func TestBrokenRows(t *testing.T) {
	g := Generator{Seed: 9}
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	rs := g.Responses(from, from.Add(time.Hour))
	o := CSVOptions{ContactFields: []int{3}, AnalysisFields: []int{8, 12}, Delimiter: ';'}
	o.Broken = MakeBroken(rs, o, 3)
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rs, o); err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(&buf)
	cr.Comma, cr.FieldsPerRecord = ';', -1
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rs)+3 {
		t.Fatalf("%d records, want %d", len(recs), len(rs)+3)
	}
	for _, b := range o.Broken {
		got := recs[b.Record-1]
		switch b.Kind {
		case "column_count":
			if len(got) == 5 {
				t.Errorf("record %d has the right column count", b.Record)
			}
		case "user_id":
			if got[0] != "not-a-number" {
				t.Errorf("record %d user_id %q", b.Record, got[0])
			}
		case "time":
			if got[2] != "2026-02-30 25:61:00" {
				t.Errorf("record %d time %q", b.Record, got[2])
			}
		}
	}
	// The good records are the responses, in order.
	good := 0
	bi := 0
	for i, rec := range recs {
		if bi < len(o.Broken) && o.Broken[bi].Record == i+1 {
			bi++
			continue
		}
		if strings.Join(rec, ";") != strings.Join(Record(rs[good], o), ";") {
			t.Fatalf("record %d is not response %d", i+1, good)
		}
		good++
	}
}
