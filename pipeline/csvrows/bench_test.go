package csvrows

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// benchFile builds an export of n rows: user_id, 8 contact fields (one a
// date), all 10 analysis fields, source; 20 columns, time-ordered like a
// vendor file.
func benchFile(b *testing.B, n int) (Plan, []byte) {
	return benchFileLink(b, n, "\"Shop now; today\"")
}

// benchFileLink writes the bench rows with the given Link title, quoted or
// not.
func benchFileLink(b *testing.B, n int, link string) (Plan, []byte) {
	plan := mustPlan(b, []int{1, 2, 3, 4, 11, 13, 14, 37}, []int{1, 2, 3, 4, 5, 8, 12, 13, 14, 15})
	var buf bytes.Buffer
	buf.WriteString("user_id;First Name;Last Name;E-Mail;Date of Birth;City;ZIP Code;Country;Mobile;" +
		"Campaign title;Section header;Section group;Link title;Url;Time;Campaign ID;Version Name;Campaign category;Link category;source\n")
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sources := []string{"open", "click", "click", "open", "unsubscribe"}
	for i := range n {
		ts := t0.Add(time.Duration(i) * 3 * time.Second).Format(time.DateTime)
		fmt.Fprintf(&buf, "%d;Vorname%d;Nachname%d;user%d@example.com;19%02d-%02d-%02d;Wien;1%03d;Austria;+4366412%05d;"+
			"Spring sale 2026;Top offers;Hero;%s;https://shop.example.com/p/%d?utm=mail;%s;%d;A;Newsletter;Product;%s\n",
			287705659+i%5000, i%97, i%89, i, 50+i%50, 1+i%12, 1+i%28, i%1000, i%100000,
			link, i%500, ts, 89268+i%7, sources[i%len(sources)])
	}
	return plan, buf.Bytes()
}

// BenchmarkParse: every record has a quoted field holding the delimiter,
// on one line (the splitter's quoted path).
func BenchmarkParse(b *testing.B) { benchParse(b, "\"Shop now; today\"") }

// BenchmarkParseMultiline is the worst case: every record has a quoted
// field over two lines, which encoding/csv reads.
func BenchmarkParseMultiline(b *testing.B) { benchParse(b, "\"Shop now\ntoday\"") }

// BenchmarkParseUnquoted is the common case, as the simulator writes it.
func BenchmarkParseUnquoted(b *testing.B) { benchParse(b, "Shop now") }

func benchParse(b *testing.B, link string) {
	const rows = 100_000
	plan, data := benchFileLink(b, rows, link)
	o := Options{Plan: plan, Header: true}
	emit := func(*Row) error { return nil }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for b.Loop() {
		st, err := Parse(bytes.NewReader(data), o, emit, nil)
		if err != nil || st.Loaded != rows {
			b.Fatalf("%+v %v", st, err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	total := float64(b.N) * rows
	b.ReportMetric(total/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/row")
}
