package csvrows

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"
)

// readAllSteps reads every record of rr and describes each step: the
// fields, the line of field 0, the offset after it, and any error.
func readAllSteps(rr recordReader) []string {
	var steps []string
	for i := 0; i < 10000; i++ {
		rec, err := rr.Read()
		if err == io.EOF {
			return append(steps, "EOF")
		}
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			steps = append(steps, fmt.Sprintf("parse error start=%d line=%d col=%d %v off=%d", pe.StartLine, pe.Line, pe.Column, pe.Err, rr.InputOffset()))
		case err != nil:
			steps = append(steps, "error "+err.Error())
			return steps
		default:
			line, _ := rr.FieldPos(0)
			steps = append(steps, fmt.Sprintf("%q line=%d off=%d", rec, line, rr.InputOffset()))
		}
	}
	return steps
}

func stdReader(data []byte, comma rune) *csv.Reader {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = comma
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

func checkSameAsCSV(t *testing.T, data []byte, comma rune) {
	t.Helper()
	want := readAllSteps(stdReader(data, comma))
	got := readAllSteps(newFastReader(bytes.NewReader(data), comma))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q (comma %q):\n got %q\nwant %q", data, comma, got, want)
	}
}

func TestFastReaderMatchesEncodingCSV(t *testing.T) {
	long := strings.Repeat("x", 70<<10) // longer than the reader's buffer
	for _, in := range []string{
		"", "\n", "\r\n", "\r", "a", "a\n", "a;b\nc;d", "a;b\r\nc;d\r\n", "a\r\r\n", "a\rb;c\n",
		"\n\na;b\n\n", ";;\n;\n", "a;\"b;c\";d\nx\n", "\"a\nb\";c\nd;e\n", "a;b\"c\nd\n", "\"a\"b;c\nd\n",
		"\"unterminated;x\ny\n", "a;\"\"\n", "\"\"\"\";x\n", long + ";y\n" + long, "\"" + long + "\"\nz\n",
		"h1;h2\n1;\"x\r\ny\"\r\n2;z\r\n", "a;b\n\r\n\"c\"\n", "\xff;\xfe\n",
		// Quoted records on one line (splitQuoted) and the ones it leaves
		// to encoding/csv.
		"\"\"\n", "\"\";\"\"\n", "\"a\";\n", "\"a;b\";\"c\"\"d\";e\r\n", "\"a\"\"\"\n", "\"a\"\"\";x\n",
		"\"a\" ;b\n", " \"a\";b\n", "\"a\"\r", "\"a\"\rb\n", "\"a\rb\";c\n", "x;\"y\"", "\"\"\"\n\"\n",
		"\"a\"\"b\"\"c\";\"\xff\"\n", "a;b\";c\n", "\"a\"\"\n", "\"" + long + "\"\"x\";y\n",
	} {
		for _, comma := range []rune{';', ','} {
			checkSameAsCSV(t, []byte(in), comma)
		}
	}
}

// FuzzFastReader holds the product's CSV splitter to encoding/csv's
// behaviour on any input: records, line numbers, offsets and errors.
func FuzzFastReader(f *testing.F) {
	for _, s := range []string{"a;b\nc", "\"a\nb\";c\r\n", "x\"y;z\n\n\"", ";\r\r\n\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsCSV(t, data, ';')
		checkSameAsCSV(t, data, ',')
	})
}

// ReadAll keeps every record, so its strings must not be views of the
// read buffer: over a file many buffers long, through gocsv as the
// CSVReader seam would use it, the records equal encoding/csv's.
func TestFastReaderReadAllKeepsRecords(t *testing.T) {
	var b strings.Builder
	b.WriteString("a;b\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "k%d;%s\n", i, strings.Repeat(string(rune('a'+i%26)), 5))
	}
	data := b.String()
	want, err := stdReader([]byte(data), ';').ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got, err := newFastReader(strings.NewReader(data), ';').ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadAll differs from encoding/csv (first record %q, want %q)", got[0], want[0])
	}
	type rec struct {
		A string `csv:"a"`
		B string `csv:"b"`
	}
	var out []rec
	if err := gocsv.UnmarshalCSV(newFastReader(strings.NewReader(data), ';'), &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 20000 || out[0] != (rec{"k0", "aaaaa"}) || out[19999] != (rec{"k19999", strings.Repeat(string(rune('a'+19999%26)), 5)}) {
		t.Fatalf("gocsv over the reader: %d records, first %+v, last %+v", len(out), out[0], out[len(out)-1])
	}
}
