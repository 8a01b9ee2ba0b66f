package csvrows

import (
	"time"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Plan binds the columns of one export file, in file order, to catalogue fields:
// user_id, the requested contact fields, the requested analysis fields, source.
// It is built from the export request, never from the header text.
type Plan struct {
	Fields []schema.Field
}

// NewPlan builds the plan of an export that asked for these contact and
// analysis fields (in request order). custom resolves contact ids above 100.
func NewPlan(contactIDs, analysisIDs []int, custom map[int]schema.Field) (Plan, error) {
	fields := []schema.Field{schema.UserIDField}
	for _, id := range contactIDs {
		f, err := schema.ResolveContactField(id, custom)
		if err != nil {
			return Plan{}, err
		}
		fields = append(fields, f)
	}
	for _, id := range analysisIDs {
		f, ok := schema.AnalysisField(id)
		if !ok {
			return Plan{}, errInvalidAnalysis(id)
		}
		fields = append(fields, f)
	}
	fields = append(fields, schema.SourceField)
	return Plan{Fields: fields}, nil
}

// Index returns the position of the field with this column name, or -1.
func (p Plan) Index(column string) int {
	for i, f := range p.Fields {
		if f.Column == column {
			return i
		}
	}
	return -1
}

// Value is one typed cell. Which member is set follows the field's Kind:
// KindString -> S; KindUInt64 -> U; KindDate and KindDateTime -> T (UTC).
// Null marks an empty UInt64 or Date cell (see the README for the rule per type).
type Value struct {
	S    string
	U    uint64
	T    time.Time
	Null bool
}

// Row is one typed record. Values is aligned with Plan.Fields. Parse reuses
// a Row and the bytes of its strings for the next record: copy what you keep.
// A Row passed to a callback is only valid during the call: the parser reuses it.
type Row struct {
	Line        int  // line of the file where the record starts, 1 = first line
	InvalidUTF8 bool // some value was not valid UTF-8; kept as it came
	Values      []Value
}

// Reject is a record that could not be typed, kept whole and unchanged.
type Reject struct {
	Line   int
	Raw    string // the record's bytes as in the file, without its line end
	Reason string
}

// Stats counts what one file held. Read = Loaded + Rejected always.
type Stats struct {
	Read     int64
	Loaded   int64
	Rejected int64
}
