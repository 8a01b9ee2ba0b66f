package csvrows

import "io"

// recordChunk is how much the recorder asks its source for at a time.
const recordChunk = 64 << 10

// recorder sits between the source and encoding/csv and keeps the bytes from
// the start of the current record on. encoding/csv only reports offsets
// (InputOffset), never the bytes it consumed, and a reject must reach the
// quarantine exactly as it was in the file. Memory stays bounded by the current
// record plus encoding/csv's read-ahead: bytes before keep are dropped on the
// next fill.
type recorder struct {
	src  io.Reader
	err  error  // sticky error of src, returned once buffered bytes are handed out
	buf  []byte // buf[0] is the byte at stream offset base
	base int64
	pos  int   // next index of buf to hand to encoding/csv
	keep int64 // stream offset of the first byte still needed
}

func (r *recorder) Read(p []byte) (int, error) {
	if r.pos == len(r.buf) {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// fill drops the bytes before keep and reads more from src. It returns nil
// only once at least one new byte is buffered.
func (r *recorder) fill() error {
	if drop := int(r.keep - r.base); drop > 0 {
		n := copy(r.buf, r.buf[drop:])
		r.buf = r.buf[:n]
		r.pos -= drop
		r.base = r.keep
	}
	if cap(r.buf)-len(r.buf) < recordChunk/2 {
		nb := make([]byte, len(r.buf), 2*cap(r.buf)+recordChunk)
		copy(nb, r.buf)
		r.buf = nb
	}
	for r.err == nil {
		n, err := r.src.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		r.err = err
		if n > 0 {
			return nil
		}
	}
	return r.err
}

// record returns the bytes from stream offset start to end, without the
// record's line end and without the empty lines encoding/csv skips before a
// record. The slice is only valid until the next Read.
func (r *recorder) record(start, end int64) []byte {
	b := r.buf[start-r.base : end-r.base]
	for {
		switch {
		case len(b) > 0 && b[0] == '\n':
			b = b[1:]
			continue
		case len(b) > 1 && b[0] == '\r' && b[1] == '\n':
			b = b[2:]
			continue
		}
		break
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	// "\r\n" ends a line; a lone '\r' before EOF is dropped by encoding/csv too.
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
