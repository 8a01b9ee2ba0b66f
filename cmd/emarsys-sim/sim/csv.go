package sim

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// TimeLayout is how the Time column is written, in the account's zone.
const TimeLayout = "2006-01-02 15:04:05"

// CSVOptions says which columns an export has and how it is written.
type CSVOptions struct {
	ContactFields  []int
	AnalysisFields []int
	Delimiter      rune // ',' when zero
	Header         bool
	Language       string         // "en" (default) or "de" for header names
	Loc            *time.Location // zone of the Time column, Europe/Vienna when nil
	CustomNames    map[int]string // header names of custom contact fields (id > 100)
	// Broken rows to insert among the good ones (see BrokenRow).
	Broken []BrokenRow
}

// BrokenRow is a deliberately malformed record of an export.
type BrokenRow struct {
	// Record is the 1-based number of the data record in the file (header not counted).
	Record int
	// Kind is "column_count", "user_id" or "time".
	Kind   string
	Fields []string
}

// HeaderNames returns the header row of an export with these options.
func HeaderNames(o CSVOptions) []string {
	name := func(f schema.Field) string {
		if o.Language == "de" && len(f.Aliases) > 0 {
			return f.Aliases[0]
		}
		return f.Name
	}
	h := []string{schema.UserIDField.Name}
	for _, id := range o.ContactFields {
		if f, ok := schema.ContactField(id); ok {
			h = append(h, name(f))
		} else if n, ok := o.CustomNames[id]; ok {
			h = append(h, n)
		} else {
			h = append(h, fmt.Sprintf("Field %d", id))
		}
	}
	for _, id := range o.AnalysisFields {
		f, _ := schema.AnalysisField(id)
		h = append(h, name(f))
	}
	return append(h, schema.SourceField.Name)
}

// Record returns the CSV fields of one response.
func Record(r Response, o CSVOptions) []string {
	loc := o.Loc
	if loc == nil {
		loc = Generator{}.Location()
	}
	rec := make([]string, 0, 2+len(o.ContactFields)+len(o.AnalysisFields))
	rec = append(rec, strconv.FormatUint(r.UserID, 10))
	for _, id := range o.ContactFields {
		rec = append(rec, r.ContactValue(id))
	}
	for _, id := range o.AnalysisFields {
		rec = append(rec, analysisValue(r, id, loc))
	}
	return append(rec, r.Source)
}

func analysisValue(r Response, id int, loc *time.Location) string {
	switch id {
	case schema.AnalysisCampaignTitle:
		return r.CampaignTitle
	case schema.AnalysisSectionHeader:
		return r.SectionHeader
	case schema.AnalysisSectionGroup:
		return r.SectionGroup
	case schema.AnalysisLinkTitle:
		return r.LinkTitle
	case schema.AnalysisURL:
		return r.URL
	case schema.AnalysisTime:
		return r.Time.In(loc).Format(TimeLayout)
	case schema.AnalysisCampaignID:
		return strconv.FormatUint(r.CampaignID, 10)
	case schema.AnalysisVersionName:
		return r.VersionName
	case schema.AnalysisCampaignCategory:
		return r.CampaignCategory
	case schema.AnalysisLinkCategory:
		return r.LinkCategory
	}
	return ""
}

// WriteCSV writes rs as the vendor does: optional header, then user_id, the
// contact fields and the analysis fields in request order, then source.
// Quoting is RFC 4180 (encoding/csv), lines end in "\n". Broken rows in
// o.Broken are written at their record numbers.
func WriteCSV(w io.Writer, rs []Response, o CSVOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	cw.Comma = o.Delimiter
	if cw.Comma == 0 {
		cw.Comma = ','
	}
	if o.Header {
		if err := cw.Write(HeaderNames(o)); err != nil {
			return fmt.Errorf("write csv header: %w", err)
		}
	}
	broken := o.Broken
	rec := 0
	writeBroken := func() error {
		for len(broken) > 0 && broken[0].Record == rec+1 {
			if err := cw.Write(broken[0].Fields); err != nil {
				return fmt.Errorf("write broken row: %w", err)
			}
			broken = broken[1:]
			rec++
		}
		return nil
	}
	for _, r := range rs {
		if err := writeBroken(); err != nil {
			return err
		}
		if err := cw.Write(Record(r, o)); err != nil {
			return fmt.Errorf("write csv row %d: %w", rec+1, err)
		}
		rec++
	}
	if err := writeBroken(); err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return bw.Flush()
}

// MakeBroken plans n broken records spread evenly among good rows rs,
// cycling through wrong column count, non-numeric user_id and impossible
// time (the last only when the Time column is exported).
func MakeBroken(rs []Response, o CSVOptions, n int) []BrokenRow {
	if n <= 0 {
		return nil
	}
	timeCol := -1
	for i, id := range o.AnalysisFields {
		if id == schema.AnalysisTime {
			timeCol = 1 + len(o.ContactFields) + i
		}
	}
	kinds := []string{"column_count", "user_id", "time"}
	out := make([]BrokenRow, 0, n)
	for k := range n {
		// Good rows before this broken one; records count broken ones too.
		good := len(rs) * (k + 1) / (n + 1)
		var base []string
		if len(rs) > 0 {
			base = Record(rs[min(good, len(rs)-1)], o)
		} else {
			base = HeaderNames(o)
			base[0] = "1"
		}
		b := BrokenRow{Record: good + k + 1, Kind: kinds[k%len(kinds)]}
		if b.Kind == "time" && timeCol < 0 {
			b.Kind = "user_id"
		}
		switch b.Kind {
		case "column_count":
			b.Fields = append(base[:len(base)-1:len(base)-1], "extra", "columns")
		case "user_id":
			b.Fields = append([]string{"not-a-number"}, base[1:]...)
		case "time":
			b.Fields = slices.Clone(base)
			b.Fields[timeCol] = "2026-02-30 25:61:00"
		}
		out = append(out, b)
	}
	return out
}
