package csvrows

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gocarina/gocsv"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

func mustPlan(t testing.TB, contact, analysis []int) Plan {
	t.Helper()
	p, err := NewPlan(contact, analysis, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// render shows a row as "line|v1|v2|..." so a test can state every typed value.
func render(p Plan, r *Row) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Line))
	for i, v := range r.Values {
		b.WriteByte('|')
		switch {
		case v.Null:
			b.WriteString("NULL")
		case p.Fields[i].Kind == schema.KindUInt64:
			b.WriteString(strconv.FormatUint(v.U, 10))
		case p.Fields[i].Kind == schema.KindDate:
			b.WriteString(v.T.Format(time.DateOnly))
		case p.Fields[i].Kind == schema.KindDateTime:
			if v.T.Location() != time.UTC {
				b.WriteString("(not UTC)")
			}
			b.WriteString(v.T.Format(time.RFC3339))
		default:
			b.WriteString(v.S)
		}
	}
	if r.InvalidUTF8 {
		b.WriteString(" (invalid UTF-8)")
	}
	return b.String()
}

type result struct {
	rows    []string
	rejects []Reject
	stats   Stats
	err     error
}

func run(t testing.TB, in io.Reader, o Options) result {
	t.Helper()
	var res result
	res.stats, res.err = Parse(in, o,
		func(r *Row) error { res.rows = append(res.rows, render(o.Plan, r)); return nil },
		func(r Reject) error { res.rejects = append(res.rejects, r); return nil })
	if res.stats.Read != res.stats.Loaded+res.stats.Rejected {
		t.Errorf("stats %+v: Read != Loaded + Rejected", res.stats)
	}
	if int64(len(res.rows)) != res.stats.Loaded || int64(len(res.rejects)) != res.stats.Rejected {
		t.Errorf("stats %+v, got %d rows and %d rejects", res.stats, len(res.rows), len(res.rejects))
	}
	return res
}

func TestParse(t *testing.T) {
	types := mustPlan(t, []int{1, 4}, []int{8, 12})
	small := mustPlan(t, []int{1}, []int{1})
	tests := []struct {
		name    string
		file    string
		opts    Options
		rows    []string
		rejects []Reject
		err     string
	}{
		{
			name: "typing and DST", file: "types.csv", opts: Options{Plan: types, Header: true},
			rows: []string{
				"2|1|Anna|1980-02-29|2026-01-15T09:20:30Z|42|open",
				"3|2|Bo|NULL|2026-07-01T10:00:00Z|7|click", // 'T', fraction truncated, UInt64 trimmed
				"4|3|Cy|NULL|2026-07-01T10:00:00Z|NULL|open",
				"5|4|Di|1990-05-06|2026-06-30T22:00:00Z|0|click", // date only = local midnight
				"8|7|Gu|NULL|2026-10-25T00:30:00Z|1|open",        // repeated hour: first occurrence (CEST)
				"9|8|Ha|NULL|2026-10-25T02:30:00Z|1|open",
				"16|15|Ol\xff|NULL|2025-12-31T23:00:00Z|18446744073709551615|open (invalid UTF-8)",
				"20|19|Sa|NULL|2026-03-29T00:59:59Z|1|open",
				"21|20|Ti|NULL|2026-03-29T01:00:00Z|1|open",
				"23|22|Vi|NULL|2026-10-24T23:59:59Z|1|open",
				// Repeated hour, in a file that is not in time order: first occurrence (CEST).
				"24|23|Wu|NULL|2026-10-25T00:00:00Z|1|open",
			},
			rejects: []Reject{
				{6, "5;Ed;1990-02-30;2026-01-01 00:00:00;1;open", `date_of_birth: not a date (YYYY-MM-DD): "1990-02-30"`},
				{7, "6;Fa;;2026-03-29 02:30:00;1;open", "event_time: time 2026-03-29 02:30:00 does not exist in Europe/Vienna (DST gap)"},
				{10, "9;Io;;;1;open", "event_time: empty"},
				{11, ";Ju;;2026-01-01 00:00:00;1;open", "user_id: empty"},
				{12, "x1;Ka;;2026-01-01 00:00:00;1;open", `user_id: not an unsigned integer: "x1"`},
				{13, "12;Li;;2026-01-01 00:00:00;-1;open", `campaign_id: not an unsigned integer: "-1"`},
				{14, "13;Mo;;2026-01-01 00:00:00;1;", "source: empty"},
				{15, "14;Ni;;2026-01-01 00:00:00;1", "expected 6 fields, got 5"},
				{17, "16;Pe;;2026-01-01 00:00:00;18446744073709551616;open", `campaign_id: not an unsigned integer: "18446744073709551616"`},
				{18, "17;Qu;;2026-01-01 24:00:00;1;open", `event_time: not a time (YYYY-MM-DD HH:MM:SS): "2026-01-01 24:00:00"`},
				{19, "18;Ra;;0000-00-00 00:00:00;1;open", `event_time: zero time "0000-00-00 00:00:00"`},
				{22, "21;Ul;2000-01-01 12:00:00;2026-01-01 00:00:00;1;open", `date_of_birth: not a date (YYYY-MM-DD): "2000-01-01 12:00:00"`},
			},
		},
		{
			name: "RFC 4180 quoting, BOM, CRLF, blank line, no final newline", file: "quoting.csv",
			opts: Options{Plan: small, Delimiter: ';', Header: true},
			rows: []string{
				"2|1|Doe; Jane|Say \"hi\"|open",
				"3|2|multi\nline|plain|click", // encoding/csv turns a quoted CRLF into LF; line 5 is blank
				"10|7|Zed|Camp|open",
			},
			rejects: []Reject{
				{6, `4;bad"quote;x;open`, `csv: column 6: bare " in non-quoted-field`},
				{7, `5;"a"b;x;open`, `csv: column 5: extraneous or missing " in quoted-field`},
				{8, "6;\"two\r\nlines\";open", "expected 4 fields, got 3"},
			},
		},
		{
			name: "comma delimiter without header", file: "comma.csv", opts: Options{Plan: small, Delimiter: ',', Header: false},
			rows: []string{"1|1|a,b|c|open", "2|2|x|y\n|click"},
		},
		{
			name: "quote left open to the end of the file", file: "unterminated.csv", opts: Options{Plan: small},
			rows:    []string{"1|1|A|B|open"},
			rejects: []Reject{{2, "2;\"A;B;open\n3;A;B;open", `csv: line 3, column 12: extraneous or missing " in quoted-field`}},
		},
		{
			name: "BOM before the first row", file: "bom-no-header.csv", opts: Options{Plan: small},
			rows: []string{"1|1|A|B|open"},
		},
		{
			name: "header by alias, case and spaces", file: "header-aliases.csv", opts: Options{Plan: small, Header: true},
			rows: []string{"2|1|A|B|open"},
		},
		{name: "header only", file: "header-only.csv", opts: Options{Plan: small, Header: true}},
		{name: "empty without header", file: "empty.csv", opts: Options{Plan: small}},
		{name: "empty with header", file: "empty.csv", opts: Options{Plan: small, Header: true}, err: "empty file: expected a header line"},
		{
			name: "header names another field", file: "header-mismatch.csv", opts: Options{Plan: small, Header: true},
			err: `header does not match the export request at column 2: expected "user_id;First Name;Campaign title;source", got "user_id;Last Name;Campaign title;source"`,
		},
		{
			name: "header misses a column", file: "header-short.csv", opts: Options{Plan: small, Header: true},
			err: `header does not match the export request at column 4: expected "user_id;First Name;Campaign title;source", got "user_id;First Name;Campaign title"`,
		},
		{name: "bad delimiter", file: "empty.csv", opts: Options{Plan: small, Delimiter: '\t'}, err: `parse csv: delimiter '\t': the export offers ';' or ','`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			// One byte at a time so the recorder's buffer handling is exercised too.
			for _, in := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data))} {
				res := run(t, in, tc.opts)
				if tc.err != "" || res.err != nil {
					if res.err == nil || res.err.Error() != tc.err {
						t.Fatalf("err = %v, want %q", res.err, tc.err)
					}
					continue
				}
				if strings.Join(res.rows, "\n") != strings.Join(tc.rows, "\n") {
					t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(res.rows, "\n"), strings.Join(tc.rows, "\n"))
				}
				if len(res.rejects) != len(tc.rejects) {
					t.Errorf("rejects: got %d %+v, want %d", len(res.rejects), res.rejects, len(tc.rejects))
					continue
				}
				for i, got := range res.rejects {
					if got != tc.rejects[i] {
						t.Errorf("reject %d:\n got %+v\nwant %+v", i, got, tc.rejects[i])
					}
					if !bytes.Contains(data, []byte(got.Raw)) {
						t.Errorf("reject %d: Raw %q is not a part of the file", i, got.Raw)
					}
				}
			}
		})
	}
}

// TestVendorExample parses the vendor's documented example file.
func TestVendorExample(t *testing.T) {
	plan := mustPlan(t, []int{1, 2, 3}, []int{1, 4, 5})
	f, err := os.Open("testdata/vendor-example.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res := run(t, f, Options{Plan: plan, Delimiter: ';', Header: true})
	if res.err != nil {
		t.Fatal(res.err)
	}
	want := []string{
		"2|287705659|user3|test_import|test1@emarsys.com|VisualCMS_2015_04_09_10_05_03||www.emarsys.com|click",
		"3|287705659|user3|test_import|test1@emarsys.com|RSS_2015_04_09_10_05_03||www.google.com.com|click",
		"4|287705659|user3|test_import|test1@emarsys.com|AC_recurring_2015_04_09_10_05_03|||open",
	}
	if strings.Join(res.rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(res.rows, "\n"), strings.Join(want, "\n"))
	}
	if res.stats != (Stats{Read: 3, Loaded: 3}) {
		t.Errorf("stats %+v", res.stats)
	}
}

// gocsvRow is written by gocsv, an encoder independent of the parser, so the
// round trip checks quoting against someone else's writer.
type gocsvRow struct {
	UserID string `csv:"user_id"`
	First  string `csv:"First Name"`
	Title  string `csv:"Campaign title"`
	Source string `csv:"source"`
}

func TestRoundTripThroughGocsvWriter(t *testing.T) {
	in := []gocsvRow{
		{"1", `semi;colon`, `quote " inside`, "open"},
		{"2", "line\nbreak", `""`, "click"},
		{"3", " spaces kept ", "", "open"},
		{"4", "=1+2", "ümlaut", "click"},
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Comma = ';'
	w.UseCRLF = true
	if err := gocsv.MarshalCSV(in, gocsv.NewSafeCSVWriter(w)); err != nil {
		t.Fatal(err)
	}
	plan := mustPlan(t, []int{1}, []int{1})
	res := run(t, &buf, Options{Plan: plan, Header: true})
	if res.err != nil || len(res.rejects) != 0 {
		t.Fatalf("err %v, rejects %+v", res.err, res.rejects)
	}
	want := []string{
		"2|1|semi;colon|quote \" inside|open",
		"3|2|line\nbreak|\"\"|click",
		"5|3| spaces kept ||open",
		"6|4|=1+2|ümlaut|click",
	}
	if strings.Join(res.rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(res.rows, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseStops(t *testing.T) {
	plan := mustPlan(t, []int{1}, []int{1})
	data := "1;A;B;open\n2;A;B;open\nx;A;B;open\n3;A;B;open\n"
	boom := errors.New("boom")

	t.Run("emit error", func(t *testing.T) {
		n := 0
		st, err := Parse(strings.NewReader(data), Options{Plan: plan}, func(*Row) error {
			if n++; n == 2 {
				return boom
			}
			return nil
		}, nil)
		if err != boom || st != (Stats{Read: 1, Loaded: 1}) {
			t.Errorf("got %+v, %v", st, err)
		}
	})
	t.Run("reject error", func(t *testing.T) {
		st, err := Parse(strings.NewReader(data), Options{Plan: plan}, nil, func(Reject) error { return boom })
		if err != boom || st != (Stats{Read: 2, Loaded: 2}) {
			t.Errorf("got %+v, %v", st, err)
		}
	})
	t.Run("I/O error", func(t *testing.T) {
		in := io.MultiReader(strings.NewReader(data[:15]), iotest.ErrReader(boom))
		st, err := Parse(in, Options{Plan: plan}, nil, nil)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "after line 1") || st.Read != 1 {
			t.Errorf("got %+v, %v", st, err)
		}
	})
	t.Run("I/O error at once", func(t *testing.T) {
		_, err := Parse(iotest.ErrReader(boom), Options{Plan: plan, Header: true}, nil, nil)
		if !errors.Is(err, boom) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("header mismatch is typed", func(t *testing.T) {
		_, err := Parse(strings.NewReader("user_id;Vorname;x;source\n"), Options{Plan: plan, Header: true}, nil, nil)
		var he *HeaderMismatchError
		if !errors.As(err, &he) || he.Column != 3 || len(he.Got) != 4 || he.Got[1] != "Vorname" {
			t.Errorf("got %#v", err)
		}
	})
}

// TestRecorderMemoryBounded checks the recorder keeps the current record,
// not the file, when driven the way Parse drives it.
func TestRecorderMemoryBounded(t *testing.T) {
	line := "1;" + strings.Repeat("x", 100) + ";B;open\r\n"
	data := strings.Repeat(line, 50000) // 5 MB
	rec := &recorder{src: strings.NewReader(data)}
	cr := csv.NewReader(rec)
	cr.Comma = ';'
	var prev int64
	for {
		rec.keep = prev
		if _, err := cr.Read(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		end := cr.InputOffset()
		if got := string(rec.record(prev, end)); got != line[:len(line)-2] {
			t.Fatalf("record %q", got)
		}
		prev = end
	}
	if cap(rec.buf) > 4*recordChunk {
		t.Errorf("recorder holds %d bytes for %d-byte records", cap(rec.buf), len(line))
	}
}
