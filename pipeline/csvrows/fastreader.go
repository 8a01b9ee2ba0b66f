package csvrows

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"io"
	"math/bits"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// fastReader is the recordReader Parse uses: gocsv's CSVReader interface
// over a splitter of its own for the common line, one without any quote,
// which it cuts at the delimiter itself, and for a record with quotes that
// is whole and well formed on its line (splitQuoted); any other record with
// a quote goes to encoding/csv, fed one line at a time so that it never
// reads past the record. It behaves exactly like a
// *csv.Reader with FieldsPerRecord -1 and ReuseRecord (a differential fuzz
// test holds it to that), at about twice the speed: encoding/csv examines
// every byte for quotes, and was the largest item of the load's CPU profile.
type fastReader struct {
	br    *bufio.Reader
	comma byte
	rec   []string
	long  []byte // a line longer than br's buffer, gathered
	// quoted holds the unescaped text of the last record's quoted fields
	// that had "" in them (splitQuoted).
	quoted []byte

	// validUTF8 says that the last record was cut by the splitter from one
	// line that is valid UTF-8 as a whole, hence every field of it is (the
	// delimiter and the quotes are ASCII and cannot sit inside a multi-byte
	// sequence).
	validUTF8 bool

	line      int   // physical lines consumed
	off       int64 // bytes consumed
	startLine int   // line of the last record's start

	inner      *csv.Reader // for records with a quote
	feed       lineFeeder
	innerDelta int // our line number minus inner's, for the current record
	innerPos   bool
}

var _ recordReader = (*fastReader)(nil)

func newFastReader(r io.Reader, comma rune) *fastReader {
	f := &fastReader{br: bufio.NewReaderSize(r, 64<<10), comma: byte(comma)}
	f.feed.f = f
	f.inner = csv.NewReader(&f.feed)
	f.inner.Comma = comma
	f.inner.FieldsPerRecord = -1
	f.inner.ReuseRecord = true
	return f
}

// readLine returns the next physical line with its line end, or an error
// (io.EOF at the end) when there is none. The bytes are valid until the
// next call.
func (f *fastReader) readLine() ([]byte, error) {
	line, err := f.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		f.long = append(f.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = f.br.ReadSlice('\n')
			f.long = append(f.long, line...)
		}
		line = f.long
	}
	if len(line) > 0 && err == io.EOF {
		err = nil
	}
	if len(line) == 0 {
		if err == nil {
			err = io.EOF
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	f.line++
	f.off += int64(len(line))
	return line, nil
}

// Read returns the next record, as (*csv.Reader).Read does, but for one
// thing: the strings of a record the splitter cut itself are valid only
// until the next call (Parse's contract with its callers).
func (f *fastReader) Read() ([]string, error) {
	for {
		line, err := f.readLine()
		if err != nil {
			return nil, err
		}
		quoted := bytes.IndexByte(line, '"') >= 0
		whole := line
		// Line ends as encoding/csv reads them: "\r\n" is "\n", and a lone
		// '\r' before the end of the input is dropped.
		n := len(line)
		switch {
		case n >= 2 && line[n-2] == '\r' && line[n-1] == '\n':
			line = line[:n-2]
		case line[n-1] == '\n':
			line = line[:n-1]
		case line[n-1] == '\r':
			line = line[:n-1]
		}
		// The fields share br's buffer: valid until the next Read, as
		// Parse promises its callers. A copy of every line was the
		// parser's largest cost after splitting, in mallocs and in GC work.
		var rec []string
		switch {
		case quoted:
			var ok bool
			if rec, ok = f.splitQuoted(line); !ok {
				return f.readQuoted(whole)
			}
		case len(line) == 0:
			continue // encoding/csv skips empty lines
		default:
			rec = splitLine(f.rec[:0], bytesString(line), f.comma)
		}
		f.startLine, f.innerPos = f.line, false
		f.validUTF8 = utf8.Valid(line)
		f.rec = rec
		return rec, nil
	}
}

// splitQuoted cuts a line with quotes into fields when the whole record is
// on the line and well formed: every field either holds no quote or is
// quoted, with "" for a quote, and ends at a delimiter or the line's end.
// Anything else (a field that goes on to the next line, a bare or
// extraneous quote) is left to encoding/csv (ok false), which reads it and
// reports its errors exactly. Unescaped fields go into f.quoted, like the
// others valid until the next Read. encoding/csv on every line with a quote
// ran at about a third of the speed of lines without.
func (f *fastReader) splitQuoted(line []byte) (rec []string, ok bool) {
	rec = f.rec[:0]
	f.quoted = f.quoted[:0]
	n := len(line)
	for i := 0; ; {
		if i < n && line[i] == '"' {
			start, j, escaped := i+1, i+1, false
			for {
				k := bytes.IndexByte(line[j:], '"')
				if k < 0 {
					return nil, false // the field goes on past the line
				}
				j += k
				if j+1 < n && line[j+1] == '"' {
					escaped, j = true, j+2
					continue
				}
				break
			}
			rec = append(rec, f.unquote(line[start:j], escaped))
			j++ // past the closing quote
			if j == n {
				return rec, true
			}
			if line[j] != f.comma {
				return nil, false // extraneous quote
			}
			i = j + 1
			continue
		}
		end := n
		if k := bytes.IndexByte(line[i:], f.comma); k >= 0 {
			end = i + k
		}
		field := line[i:end]
		if bytes.IndexByte(field, '"') >= 0 {
			return nil, false // bare quote
		}
		rec = append(rec, bytesString(field))
		if end == n {
			return rec, true
		}
		i = end + 1
	}
}

// unquote returns the text of a quoted field, with "" made ".
func (f *fastReader) unquote(b []byte, escaped bool) string {
	if !escaped {
		return bytesString(b)
	}
	// f.quoted may move as it grows: the strings made from it so far keep
	// the old bytes, which are never written again.
	start := len(f.quoted)
	for i := 0; i < len(b); i++ {
		f.quoted = append(f.quoted, b[i])
		if b[i] == '"' {
			i++ // the second quote of ""
		}
	}
	return bytesString(f.quoted[start:])
}

// bytesString is a view of b as a string (no copy); "" for no bytes.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// readQuoted hands a record that starts on line to encoding/csv.
func (f *fastReader) readQuoted(line []byte) ([]string, error) {
	start := f.line
	f.feed.pending = line // valid until the feeder reads the next line
	f.validUTF8 = false
	rec, err := f.inner.Read()
	if err == nil {
		innerLine, _ := f.inner.FieldPos(0)
		f.startLine, f.innerPos = start, true
		f.innerDelta = start - innerLine
		return rec, nil
	}
	if pe := asParseError(err); pe != nil {
		// Positions in encoding/csv's count of the lines it was fed.
		delta := start - pe.StartLine
		cp := *pe
		cp.StartLine += delta
		cp.Line += delta
		err = &cp
		f.startLine, f.innerPos = cp.StartLine, false
		return rec, err
	}
	return rec, err // io.EOF cannot follow a fed line; an I/O error stops the file
}

// FieldPos is (*csv.Reader).FieldPos for field 0, the only one Parse asks
// for, and the line of any field for records read by encoding/csv.
func (f *fastReader) FieldPos(field int) (line, column int) {
	if f.innerPos {
		l, c := f.inner.FieldPos(field)
		return l + f.innerDelta, c
	}
	return f.startLine, 1
}

// InputOffset is the byte offset of the end of the last record read.
func (f *fastReader) InputOffset() int64 { return f.off }

// ReadAll completes gocsv's CSVReader interface. Its records are kept, so
// their strings are copies, not views of the read buffer.
func (f *fastReader) ReadAll() ([][]string, error) {
	var out [][]string
	for {
		rec, err := f.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		kept := make([]string, len(rec))
		for i, v := range rec {
			kept[i] = strings.Clone(v)
		}
		out = append(out, kept)
	}
}

// lineFeeder gives encoding/csv one line per Read, so that its buffer
// never holds bytes beyond the record it is reading.
type lineFeeder struct {
	f       *fastReader
	pending []byte
}

func (l *lineFeeder) Read(p []byte) (int, error) {
	if len(l.pending) == 0 {
		line, err := l.f.readLine()
		if err != nil {
			return 0, err
		}
		l.pending = line
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// splitLine appends the fields of s, cut at every c, to rec. It looks at
// eight bytes at a time: a byte loop over the line (or a vectorised search
// per field, whose set-up dominates on fields of ten-odd bytes) was the
// parser's largest cost, about a fifth of it.
func splitLine(rec []string, s string, c byte) []string {
	const ones, low7 = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f
	pat := uint64(c) * ones
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	start, i := 0, 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:]) ^ pat // zero bytes where c is
		// 0x80 in exactly the bytes of w that are zero (no false positives,
		// unlike the shorter (w-ones)&^w form).
		m := ^((w&low7 + low7) | w | low7)
		for m != 0 {
			at := i + bits.TrailingZeros64(m)>>3
			rec = append(rec, s[start:at])
			start = at + 1
			m &= m - 1
		}
	}
	for ; i < len(b); i++ {
		if b[i] == c {
			rec = append(rec, s[start:i])
			start = i + 1
		}
	}
	return append(rec, s[start:])
}
