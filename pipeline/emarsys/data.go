package emarsys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPageRows is the limit of one GET export/{id}/data page: the older
// documents allow at most 1,000,000 rows.
const DefaultPageRows = 1_000_000

// OpenData streams the CSV of a local export (GET export/{id}/data), page
// by page with offset and limit until a short page, as one file: the header
// (if asked for) comes with the first page only. Opening a page retries 5xx,
// rate limits and 4005 (still in progress) with backoff; a page that breaks
// mid-stream fails the read, and the caller reads the file again.
func (c *Client) OpenData(ctx context.Context, id int64, pageRows int, header bool) io.ReadCloser {
	if pageRows <= 0 {
		pageRows = DefaultPageRows
	}
	return &dataReader{ctx: ctx, c: c, id: id, limit: pageRows, header: header}
}

type dataReader struct {
	ctx    context.Context
	c      *Client
	id     int64
	limit  int
	header bool

	offset    int
	page      io.ReadCloser
	counter   recordCounter
	last      bool // the current page is the last one
	pendingNL bool
	err       error
}

func (d *dataReader) Read(p []byte) (int, error) {
	for {
		if d.err != nil {
			return 0, d.err
		}
		if d.pendingNL {
			if len(p) == 0 {
				return 0, nil
			}
			d.pendingNL = false
			p[0] = '\n'
			return 1, nil
		}
		if d.page == nil {
			if d.last {
				return 0, io.EOF
			}
			page, err := d.c.dataPage(d.ctx, d.id, d.offset, d.limit)
			if err != nil {
				d.err = err
				return 0, err
			}
			d.page = page
			d.counter = recordCounter{}
		}
		n, err := d.page.Read(p)
		d.counter.feed(p[:n])
		if err == io.EOF {
			d.page.Close()
			d.page = nil
			recs := d.counter.records()
			if d.offset == 0 && d.header {
				recs-- // the header line is not a record
			}
			d.offset += recs
			d.last = recs < d.limit
			if !d.last && d.counter.open() {
				// Glue pages on a record boundary.
				d.pendingNL = true
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			d.err = fmt.Errorf("read page at offset %d of export %d: %w", d.offset, d.id, err)
			if n > 0 {
				return n, nil
			}
			return 0, d.err
		}
		return n, nil
	}
}

func (d *dataReader) Close() error {
	if d.page != nil {
		return d.page.Close()
	}
	return nil
}

// dataPage opens one page, retrying what waiting can fix.
func (c *Client) dataPage(ctx context.Context, id int64, offset, limit int) (io.ReadCloser, error) {
	endpoint := "export/" + strconv.FormatInt(id, 10) + "/data"
	q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	reauthed := false
	var lastErr error
	for attempt := 1; ; attempt++ {
		body, gen, err := c.dataOnce(ctx, endpoint, q)
		if err == nil {
			return body, nil
		}
		lastErr = err
		if !reauthed && c.reauth(err, gen) {
			reauthed = true
			attempt--
			continue
		}
		if ctx.Err() != nil || !IsRetryable(err) {
			return nil, fmt.Errorf("download export %d (offset %d): %w", id, offset, err)
		}
		if attempt >= c.maxAttempts {
			return nil, fmt.Errorf("download export %d (offset %d): giving up after %d attempts: %w", id, offset, attempt, lastErr)
		}
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("download export %d: %w (last error: %w)", id, err, lastErr)
		}
	}
}

func (c *Client) dataOnce(ctx context.Context, endpoint string, q url.Values) (io.ReadCloser, int, error) {
	resp, gen, err := c.send(ctx, "GET", endpoint, q, nil, "text/csv, application/json")
	if err != nil {
		return nil, gen, err
	}
	ct := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Type")))
	if resp.StatusCode == 200 && strings.HasPrefix(ct, "text/csv") {
		return resp.Body, gen, nil
	}
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if rerr != nil {
		return nil, gen, fmt.Errorf("GET %s: read reply (HTTP %d): %w", endpoint, resp.StatusCode, rerr)
	}
	if _, err := c.decode(endpoint, resp, raw, []string{c.secret}); err != nil {
		return nil, gen, err
	}
	// 200 with JSON or another type where CSV was due.
	return nil, gen, fmt.Errorf("GET %s: Content-Type %q, want text/csv: %w", endpoint, ct, errors.New("not a CSV reply"))
}

// recordCounter counts CSV records by line ends outside quotes, so a value
// holding a line break does not count twice.
type recordCounter struct {
	lines    int
	inQuote  bool
	lastByte byte
	any      bool
}

func (r *recordCounter) feed(p []byte) {
	for _, b := range p {
		switch b {
		case '"':
			r.inQuote = !r.inQuote
		case '\n':
			if !r.inQuote {
				r.lines++
			}
		}
		r.lastByte = b
		r.any = true
	}
}

// open reports a last record without a line end.
func (r *recordCounter) open() bool { return r.any && r.lastByte != '\n' }

func (r *recordCounter) records() int {
	if r.open() {
		return r.lines + 1
	}
	return r.lines
}
