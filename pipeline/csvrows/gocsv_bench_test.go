package csvrows

import (
	"bytes"
	"encoding/csv"
	"runtime"
	"testing"

	"github.com/gocarina/gocsv"
)

// gocsvBenchRow is the bench export as a struct for gocsv's reflection decoder,
// by position. Times and dates stay text: gocsv cannot apply the account's
// zone, so this is a lower bound of what decoding through it would cost.
type gocsvBenchRow struct {
	UserID                                            uint64
	First, Last, Email, Birth, City, Zip, Country, Mb string
	Title, Header, Group, LinkTitle, URL, Time        string
	CampaignID                                        uint64
	Version, Category, LinkCategory, Source           string
}

// BenchmarkGocsvReflection measures gocsv's struct decoder over the same
// file as BenchmarkParse, through the same CSVReader seam; the README's
// Performance section compares the two.
func BenchmarkGocsvReflection(b *testing.B) {
	const rows = 100_000
	_, data := benchFile(b, rows)
	body := data[bytes.IndexByte(data, '\n')+1:]
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for b.Loop() {
		cr := csv.NewReader(bytes.NewReader(body))
		cr.Comma = ';'
		var out []gocsvBenchRow
		if err := gocsv.UnmarshalCSVWithoutHeaders(cr, &out); err != nil || len(out) != rows {
			b.Fatal(len(out), err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	total := float64(b.N) * rows
	b.ReportMetric(total/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/row")
}
