package csvrows

import (
	"bytes"
	"encoding/csv"
	"runtime"
	"testing"
)

// BenchmarkTyping measures the typing stage alone: records already split
// by the CSV reader are typed into a Row, as Parse does for each record.
func BenchmarkTyping(b *testing.B) {
	const rows = 100_000
	plan, data := benchFile(b, rows)
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = ';'
	recs, err := cr.ReadAll()
	if err != nil {
		b.Fatal(err)
	}
	recs = recs[1:] // the header
	p, err := newParser(Options{Plan: plan, Header: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for b.Loop() {
		for _, rec := range recs {
			if reason := p.typeRecord(rec); reason != "" {
				b.Fatal(reason)
			}
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	total := float64(b.N) * rows
	b.ReportMetric(total/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/row")
}
