package clickhouse

import (
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// sourceEnum is the Enum8 of email_responses.source, as in 0001_init.sql.
// A test compares it with the type the server reports for the column.
const sourceEnum = "Enum8('other' = 0, 'open' = 1, 'click' = 2, 'unsubscribe' = 3, 'complaint' = 4, " +
	"'registration_form' = 5, 'tell_a_friend' = 6, 'contact_us' = 7, 'change_profile' = 8)"

// sourceCode maps a CSV source value to its Enum8 code; anything unknown is
// 'other' (0) so that a new vendor source never fails a load. source_raw
// keeps the text as it came. The mapping is done here rather than in SQL
// because 18.16 lacks trimBoth and a switch costs nothing per row.
func sourceCode(raw string) int8 {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "open":
		return 1
	case "click":
		return 2
	case "unsubscribe":
		return 3
	case "complaint":
		return 4
	case "registration_form":
		return 5
	case "tell_a_friend":
		return 6
	case "contact_us":
		return 7
	case "change_profile":
		return 8
	}
	return 0
}

// contactType is the column type a new contact column of kind k gets.
// Dates differ from Kind.ClickHouseType(): ClickHouse's Date starts at
// 1970-01-01, and dates of birth do not. Servers from 22.8 have Date32
// over 1900-2299 (21.9-22.7 had it over 1925-2283 only); older ones, such
// as 18.16, get the ISO text 'YYYY-MM-DD', which sorts and compares like a
// date and loses nothing.
func (s *Store) contactType(k schema.Kind) string {
	if k == schema.KindDate {
		if s.atLeast(22, 8) {
			return "Nullable(Date32)"
		}
		return "Nullable(String)"
	}
	return k.ClickHouseType()
}

// compatibleType reports whether an existing column of type typ can hold
// values of kind k. For dates every type contactType may have chosen on any
// server version fits, so a database created on 18.16 keeps working after
// a server upgrade.
func compatibleType(k schema.Kind, typ string) bool {
	t := normType(typ)
	if k == schema.KindDate {
		switch t {
		case "Nullable(Date)", "Nullable(Date32)", "Nullable(String)":
			return true
		}
		return false
	}
	return t == normType(k.ClickHouseType())
}

// normType removes the spelling differences between server versions
// (spaces, the escaping of quotes in some outputs).
func normType(t string) string {
	return strings.NewReplacer(" ", "", `\'`, "'").Replace(t)
}

// Ranges of ClickHouse's time types in Unix seconds; outside them values
// would wrap silently instead of failing.
const (
	dateMin   = 0           // 1970-01-01, also DateTime's first second
	dateMax   = 5662224000  // 2149-06-06
	date32Min = -2208988800 // 1900-01-01
	date32Max = 10413705600 // 2299-12-31
	dtMax     = 1<<32 - 1   // 2106-02-07 06:28:15
)

func unixDay(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.DateOnly) }

// encoder buffers one stage column for a block. Buffers are preallocated to
// the block size and never grow past it, so the pointers of the nullable
// encoders (into their own value arrays) stay valid. Nothing of the Row is
// kept: its strings are copied (textArena), since the parser reuses them.
type encoder interface {
	add(v csvrows.Value) error
	column() any // the slice handed to batch.Column(i).Append
	reset()
}

type strEnc struct {
	v    []string
	text textArena
}

func (e *strEnc) add(v csvrows.Value) error { e.v = append(e.v, e.text.keep(v.S)); return nil }
func (e *strEnc) column() any               { return e.v }
func (e *strEnc) reset()                    { e.v = e.v[:0]; e.text.reset() }

// textArena holds copies of a block's strings. The parser's strings last
// only until the next row (csvrows.Parse), and a copy into an arena that
// the next block reuses costs no allocation and no GC work, where a string
// of its own per line made the GC the load's largest cost after parsing.
// reset may reuse the bytes only once the block's strings are gone:
// clickhouse-go copies a block's columns at Append, and the senders reset a
// block only after that (stream.go).
type textArena struct{ buf []byte }

func (a *textArena) keep(s string) string {
	if len(s) == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < len(s) {
		// The strings made so far keep the old bytes alive; they are
		// never written again.
		a.buf = make([]byte, 0, max(2*cap(a.buf), len(s), 4<<10))
	}
	off := len(a.buf)
	a.buf = append(a.buf, s...)
	return unsafe.String(&a.buf[off], len(s))
}

func (a *textArena) reset() { a.buf = a.buf[:0] }

// u64Enc is for UInt64 that may not be NULL (user_id: the parser rejects an empty one).
type u64Enc struct{ v []uint64 }

func (e *u64Enc) add(v csvrows.Value) error { e.v = append(e.v, v.U); return nil }
func (e *u64Enc) column() any               { return e.v }
func (e *u64Enc) reset()                    { e.v = e.v[:0] }

type nu64Enc struct {
	v []uint64
	p []*uint64
}

func (e *nu64Enc) add(v csvrows.Value) error {
	e.v = append(e.v, v.U)
	if v.Null {
		e.p = append(e.p, nil)
	} else {
		e.p = append(e.p, &e.v[len(e.v)-1])
	}
	return nil
}
func (e *nu64Enc) column() any { return e.p }
func (e *nu64Enc) reset()      { e.v, e.p = e.v[:0], e.p[:0] }

type dtEnc struct{ v []time.Time }

func (e *dtEnc) add(v csvrows.Value) error {
	t := v.T
	if v.Null || t.IsZero() {
		t = time.Unix(0, 0)
	}
	if u := t.Unix(); u < dateMin || u > dtMax {
		return fmt.Errorf("time %s is outside ClickHouse DateTime (1970-01-01 to 2106-02-07)", t.UTC().Format(time.RFC3339))
	}
	e.v = append(e.v, t)
	return nil
}
func (e *dtEnc) column() any { return e.v }
func (e *dtEnc) reset()      { e.v = e.v[:0] }

// ndayEnc is a Nullable(Date) or Nullable(Date32) column.
type ndayEnc struct {
	min, max int64 // Unix seconds
	v        []time.Time
	p        []*time.Time
}

func (e *ndayEnc) add(v csvrows.Value) error {
	e.v = append(e.v, v.T)
	if v.Null {
		e.p = append(e.p, nil)
		return nil
	}
	if u := v.T.Unix(); u < e.min || u > e.max {
		e.v = e.v[:len(e.v)-1]
		return fmt.Errorf("date %s is outside the column's range %s to %s",
			v.T.UTC().Format(time.DateOnly), unixDay(e.min), unixDay(e.max))
	}
	e.p = append(e.p, &e.v[len(e.v)-1])
	return nil
}
func (e *ndayEnc) column() any { return e.p }
func (e *ndayEnc) reset()      { e.v, e.p = e.v[:0], e.p[:0] }

// ndateTextEnc stores a date as 'YYYY-MM-DD' in a Nullable(String) column.
// The texts of a block are written into one byte arena, made fresh for
// each block (clickhouse-go copies the block, and the old arena goes when
// its strings do), which spares a format and an allocation per row.
type ndateTextEnc struct {
	v     []string
	p     []*string
	arena []byte
}

func (e *ndateTextEnc) add(v csvrows.Value) error {
	if v.Null {
		e.v = append(e.v, "")
		e.p = append(e.p, nil)
		return nil
	}
	if cap(e.arena)-len(e.arena) < 16 {
		e.arena = make([]byte, 0, 10*max(cap(e.v), 64))
	}
	y, m, d := v.T.UTC().Date()
	start := len(e.arena)
	if y < 0 || y > 9999 {
		e.arena = v.T.UTC().AppendFormat(e.arena, time.DateOnly)
	} else {
		e.arena = append(e.arena, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
			byte('0'+int(m)/10), byte('0'+int(m)%10), '-', byte('0'+d/10), byte('0'+d%10))
	}
	b := e.arena[start:]
	e.v = append(e.v, unsafe.String(&b[0], len(b)))
	e.p = append(e.p, &e.v[len(e.v)-1])
	return nil
}
func (e *ndateTextEnc) column() any { return e.p }

// reset leaves the arena to the strings of the block just sent: the next
// date starts a fresh one.
func (e *ndateTextEnc) reset() { e.v, e.p, e.arena = e.v[:0], e.p[:0], nil }

// newEncoder picks the encoder for a field staged as ClickHouse type typ.
func newEncoder(f schema.Field, typ string, size int) (encoder, error) {
	t := normType(typ)
	switch {
	case f.Kind == schema.KindString && t == "String":
		return &strEnc{v: make([]string, 0, size)}, nil
	case f.Kind == schema.KindUInt64 && t == "UInt64":
		return &u64Enc{v: make([]uint64, 0, size)}, nil
	case f.Kind == schema.KindUInt64 && t == "Nullable(UInt64)":
		return &nu64Enc{v: make([]uint64, 0, size), p: make([]*uint64, 0, size)}, nil
	case f.Kind == schema.KindDateTime && t == "DateTime('UTC')":
		return &dtEnc{v: make([]time.Time, 0, size)}, nil
	case f.Kind == schema.KindDate && t == "Nullable(Date)":
		return &ndayEnc{min: dateMin, max: dateMax, v: make([]time.Time, 0, size), p: make([]*time.Time, 0, size)}, nil
	case f.Kind == schema.KindDate && t == "Nullable(Date32)":
		return &ndayEnc{min: date32Min, max: date32Max, v: make([]time.Time, 0, size), p: make([]*time.Time, 0, size)}, nil
	case f.Kind == schema.KindDate && t == "Nullable(String)":
		return &ndateTextEnc{v: make([]string, 0, size), p: make([]*string, 0, size)}, nil
	}
	return nil, fmt.Errorf("column %s: no way to store a %s field in type %s", f.Column, f.Kind, typ)
}
