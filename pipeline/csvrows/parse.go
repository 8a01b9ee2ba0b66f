package csvrows

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gocarina/gocsv"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// DefaultZone is the account time zone assumed when Options.Loc is nil.
const DefaultZone = "Europe/Vienna"

// Options describe one export file.
type Options struct {
	Plan      Plan           // columns in file order (from the export request)
	Delimiter rune           // ';' or ','; zero means ';', what the product requests
	Header    bool           // the file starts with a header line (add_field_names_header=1)
	Loc       *time.Location // account time zone for Time values; nil = Europe/Vienna
	// ExportRange is the first and last instant (both inclusive) the export
	// that made the file covers, as the vendor reads its time_range; zero
	// when unknown (a file exported by hand). It settles readings of the
	// autumn's repeated hour when only one of their two instants lies in it.
	ExportRange [2]time.Time
}

// recordReader is the per-call CSV reader. It is gocsv's CSVReader, the
// reader seam the user fixed as the CSV layer, plus the position methods of
// *csv.Reader that line numbers and byte-exact rejects need (fastReader is
// the one Parse uses). Rows are typed by
// hand instead of through gocsv's reflection decoder, which allocates per cell
// and would miss the 1M rows/s target; gocsv.SetCSVReader is global and is
// never called.
type recordReader interface {
	gocsv.CSVReader
	FieldPos(field int) (line, column int)
	InputOffset() int64
}

var _ recordReader = (*csv.Reader)(nil)

// colKind is how Parse types one column; special columns get their own kind.
type colKind uint8

const (
	colString colKind = iota
	colSource
	colUserID
	colUInt
	colDate
	colTime
)

var utf8BOM = []byte("\xef\xbb\xbf")

// Parse streams r, calling emit for each typed row and reject for each record
// that cannot be typed. It returns the stats and a non-nil error only for
// problems that stop the whole file: an I/O error, a header that does not
// match the plan (*HeaderMismatchError), or a header missing from an empty
// file (no records at all: 0 bytes, a lone BOM or blank lines). Callback
// errors stop parsing and are returned as is. A nil callback discards what it
// would get.
//
// Stats count records handed to a callback that returned nil, so Read =
// Loaded + Rejected holds even when Parse stops early. The header line is not
// counted. The Row passed to emit, its Values and the bytes of their
// strings are reused for the next record: a caller that keeps a string
// beyond emit copies it (strings.Clone, or bytes of its own). Rejects and
// errors are the caller's to keep.
func Parse(r io.Reader, o Options, emit func(*Row) error, reject func(Reject) error) (Stats, error) {
	var st Stats
	p, err := newParser(o)
	if err != nil {
		return st, err
	}

	// Skip a UTF-8 byte order mark before encoding/csv sees the first line.
	src := bufio.NewReaderSize(r, recordChunk)
	if head, err := src.Peek(len(utf8BOM)); bytes.Equal(head, utf8BOM) {
		_, _ = src.Discard(len(utf8BOM))
	} else if err != nil && err != io.EOF {
		return st, fmt.Errorf("read csv: %w", err)
	}
	rec := &recorder{src: src}
	// Behaves as encoding/csv with FieldsPerRecord -1 (a wrong count is a
	// reject, not a stop) and ReuseRecord, at about twice its speed.
	fr := newFastReader(rec, p.delim)
	p.fr = fr
	var rr recordReader = fr

	var prev int64   // stream offset where the next record starts
	var lastLine int // line of the last record read, for errors that stop the file
	if o.Header {
		fields, err := rr.Read()
		if err == io.EOF {
			return st, errors.New("empty file: expected a header line")
		}
		if err != nil {
			return st, fmt.Errorf("read csv header: %w", err)
		}
		if err := p.checkHeader(fields); err != nil {
			return st, err
		}
		prev = rr.InputOffset()
		lastLine, _ = rr.FieldPos(0)
	}

	for {
		rec.keep = prev
		fields, err := rr.Read()
		if err == io.EOF {
			return st, nil
		}
		end := rr.InputOffset()
		var pe *csv.ParseError
		if err != nil {
			if pe = asParseError(err); pe == nil {
				return st, fmt.Errorf("read csv after line %d: %w", lastLine, err)
			}
		}
		var line int
		reason := ""
		if pe != nil {
			if end == prev {
				// No progress: reading on would return the same error forever.
				return st, fmt.Errorf("csv line %d: %w", pe.StartLine, err)
			}
			line = pe.StartLine
			reason = fmt.Sprintf("csv: column %d: %v", pe.Column, pe.Err)
			if pe.Line != pe.StartLine {
				reason = fmt.Sprintf("csv: line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
			}
		} else {
			line, _ = rr.FieldPos(0)
			reason = p.typeRecord(fields)
		}

		if reason == "" {
			p.row.Line = line
			if emit != nil {
				if err := emit(&p.row); err != nil {
					return st, err
				}
			}
			st.Loaded++
		} else {
			if reject != nil {
				raw := string(rec.record(prev, end))
				if err := reject(Reject{Line: line, Raw: raw, Reason: reason}); err != nil {
					return st, err
				}
			}
			st.Rejected++
		}
		st.Read++
		prev, lastLine = end, line
	}
}

// asParseError is errors.As in a function of its own: the target escapes to
// the heap, and inline it would cost an allocation for every record.
func asParseError(err error) *csv.ParseError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// parser is the state of one Parse call.
type parser struct {
	fields []schema.Field
	kinds  []colKind
	delim  rune
	clock  localClock
	row    Row
	fr     *fastReader // the reader, for what it knows of the last line; nil in typing benchmarks

	// The export range in Unix seconds, when known (see Options.ExportRange).
	rangeFrom, rangeTo int64
	hasRange           bool
	// State of the order rule for repeated wall times (see resolveRepeated).
	repTransition int64 // the clock change of the last repeated reading
	repMaxWall    int64 // the latest wall time read in it so far
	repBack       bool  // the clock was seen going back: later readings are the second occurrence
	prevWall      int64 // wall time of the previous Time reading
	prevRepeated  bool  // it was a repeated wall time
	unordered     bool  // the file went back in time outside a repeated hour: the order rule is off
}

func newParser(o Options) (*parser, error) {
	if len(o.Plan.Fields) == 0 {
		return nil, errors.New("parse csv: empty plan")
	}
	p := &parser{fields: o.Plan.Fields, delim: o.Delimiter}
	switch p.delim {
	case 0:
		p.delim = ';'
	case ';', ',':
	default:
		return nil, fmt.Errorf("parse csv: delimiter %q: the export offers ';' or ','", p.delim)
	}
	p.clock.loc = o.Loc
	if p.clock.loc == nil {
		loc, err := time.LoadLocation(DefaultZone)
		if err != nil {
			return nil, fmt.Errorf("parse csv: load time zone %s (import time/tzdata if the host has no zoneinfo): %w", DefaultZone, err)
		}
		p.clock.loc = loc
	}
	if r := o.ExportRange; !r[0].IsZero() && !r[1].IsZero() {
		if r[1].Before(r[0]) {
			return nil, fmt.Errorf("parse csv: export range ends (%s) before it starts (%s)", r[1].UTC().Format(time.RFC3339), r[0].UTC().Format(time.RFC3339))
		}
		p.rangeFrom, p.rangeTo, p.hasRange = r[0].Unix(), r[1].Unix(), true
	}
	p.kinds = make([]colKind, len(p.fields))
	for i, f := range p.fields {
		switch {
		case f.Column == schema.UserIDField.Column:
			p.kinds[i] = colUserID
		case f.Column == schema.SourceField.Column:
			p.kinds[i] = colSource
		case f.Kind == schema.KindUInt64:
			p.kinds[i] = colUInt
		case f.Kind == schema.KindDate:
			p.kinds[i] = colDate
		case f.Kind == schema.KindDateTime:
			p.kinds[i] = colTime
		default:
			p.kinds[i] = colString
		}
	}
	p.row.Values = make([]Value, len(p.fields))
	return p, nil
}

// checkHeader matches header cells to the plan by position.
func (p *parser) checkHeader(got []string) error {
	col := 0
	for col < len(p.fields) && col < len(got) && p.fields[col].Matches(got[col]) {
		col++
	}
	if col == len(p.fields) && col == len(got) {
		return nil
	}
	exp := make([]string, len(p.fields))
	for i, f := range p.fields {
		exp[i] = f.Name
	}
	g := make([]string, len(got))
	for i, c := range got {
		g[i] = strings.Clone(c) // got shares the reader's buffer
	}
	return &HeaderMismatchError{Expected: exp, Got: g, Column: col + 1}
}

// lineValid says that the last record is known to be valid UTF-8.
func (p *parser) lineValid() bool { return p.fr != nil && p.fr.validUTF8 }

// typeRecord fills p.row from one record and returns "" or the reason it
// cannot be typed (the first problem found, naming the column).
func (p *parser) typeRecord(rec []string) string {
	if len(rec) != len(p.fields) {
		return fmt.Sprintf("expected %d fields, got %d", len(p.fields), len(rec))
	}
	p.row.InvalidUTF8 = false
	// The reader checked the whole line at once where it could; a check per
	// field cost more than splitting the line.
	check := !p.lineValid()
	vals := p.row.Values
	for i, s := range rec {
		v := &vals[i]
		switch p.kinds[i] {
		case colString:
			*v = Value{S: s}
			if check && !utf8.ValidString(s) {
				p.row.InvalidUTF8 = true
			}
		case colSource:
			t := trimSpace(s)
			if t == "" {
				return p.fields[i].Column + ": empty"
			}
			*v = Value{S: t}
			if check && !utf8.ValidString(t) {
				p.row.InvalidUTF8 = true
			}
		case colUserID, colUInt:
			t := trimSpace(s)
			if t == "" {
				if p.kinds[i] == colUserID {
					return p.fields[i].Column + ": empty"
				}
				*v = Value{Null: true}
				continue
			}
			n, ok := parseUint(t)
			if !ok {
				return fmt.Sprintf("%s: not an unsigned integer: %s", p.fields[i].Column, quoteShort(s))
			}
			*v = Value{U: n}
		case colDate:
			t := trimSpace(s)
			if t == "" {
				*v = Value{Null: true}
				continue
			}
			c, ok := parseCivil(t)
			if !ok || (c.hasTime && c.h|c.mi|c.s != 0) {
				return fmt.Sprintf("%s: not a date (YYYY-MM-DD): %s", p.fields[i].Column, quoteShort(s))
			}
			if c.zero() {
				*v = Value{Null: true}
				continue
			}
			*v = Value{T: time.Unix(daysFromCivil(c.y, c.mo, c.d)*86400, 0).UTC()}
		case colTime:
			t := trimSpace(s)
			if t == "" {
				return p.fields[i].Column + ": empty"
			}
			c, ok := parseCivil(t)
			if !ok {
				return fmt.Sprintf("%s: not a time (YYYY-MM-DD HH:MM:SS): %s", p.fields[i].Column, quoteShort(s))
			}
			if c.zero() {
				return fmt.Sprintf("%s: zero time %s", p.fields[i].Column, quoteShort(s))
			}
			unix, late, ok := p.clock.toUTC(c)
			if !ok {
				return p.fields[i].Column + ": " + p.clock.gapReason(c)
			}
			wall := c.wall()
			repeated := late != unix
			if wall < p.prevWall && !(repeated && p.prevRepeated) {
				// Backwards on the clock outside the repeated hour: the file is
				// not in time order, so order says nothing about that hour.
				p.unordered = true
			}
			p.prevWall, p.prevRepeated = wall, repeated
			if repeated {
				unix = p.resolveRepeated(wall, unix, late)
			}
			*v = Value{T: time.Unix(unix, 0).UTC()}
		}
	}
	return ""
}

// resolveRepeated picks the instant of a wall time that the autumn clock
// change makes occur twice (early is the summer-time reading, late the
// standard-time one). The rule, in order:
//
//  1. Range: when the export range is known and only one of the two instants
//     lies in it, that one. The vendor selects rows by instant, so the other
//     cannot be in the file.
//  2. Order: Emarsys writes rows in time order, so within the file the
//     repeated hour first runs through its summer-time readings, then starts
//     again. Once a reading of the repeated hour is earlier than one before
//     it (the clock went back), it and every later reading of that hour are
//     the second occurrence; until then, the first. An equal reading is no
//     evidence: two responses may share a second.
//
// Every repeated reading feeds the order rule, including those rule 1
// settles, so a file cut by its range mid-hour still finds the turn. A file
// seen going back in time anywhere else is not time-ordered: rule 2 is off
// for it and an unsettled reading is the first occurrence, as the vendor
// reads a time_range.
func (p *parser) resolveRepeated(wall, early, late int64) int64 {
	tr := p.clock.transition(late)
	if tr != p.repTransition {
		p.repTransition, p.repMaxWall, p.repBack = tr, wall, false
	}
	if wall < p.repMaxWall {
		p.repBack = true
	}
	p.repMaxWall = max(p.repMaxWall, wall)
	if p.hasRange {
		inEarly := early >= p.rangeFrom && early <= p.rangeTo
		inLate := late >= p.rangeFrom && late <= p.rangeTo
		switch {
		case inLate && !inEarly:
			p.repBack = true // the second occurrence has begun
			return late
		case inEarly && !inLate:
			return early
		}
	}
	if p.repBack && !p.unordered {
		return late
	}
	return early
}
