package clickhouse

import (
	"context"
	"fmt"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// blockBuf is one stage block being filled or sent: the encoders of the
// Plan's fields and the three bookkeeping columns.
type blockBuf struct {
	encs    []encoder
	lines   []uint32
	utf8    []uint8
	sources []int8
	rows    int
}

func (b *blockBuf) columns(dst []any) []any {
	dst = append(dst, b.lines, b.utf8, b.sources)
	for _, e := range b.encs {
		dst = append(dst, e.column())
	}
	return dst
}

func (b *blockBuf) reset() {
	for _, e := range b.encs {
		e.reset()
	}
	b.lines, b.utf8, b.sources, b.rows = b.lines[:0], b.utf8[:0], b.sources[:0], 0
}

// block is a buffer of rows that a stageStream sends: its columns, in the
// order of the INSERT's column list, and a way to empty it for refilling.
type block interface {
	columns(dst []any) []any
	reset()
}

// stageStream sends the stage's (or the shadow's) blocks from a goroutine of its own over one
// INSERT, so that the parser fills block k+1 while block k is encoded, LZ4
// compressed, sent and written by ClickHouse. Two buffers circulate (the
// one being filled, the one being sent), which bounds memory to two blocks
// whatever the file's size. One INSERT per window also spares a round trip
// per block and lets clickhouse-go keep its column buffers between blocks.
// Unlike Send, clickhouse-go's Flush does not watch the context: a cancel
// ends the load at the parser (the FTP read fails) and Abort then drops the
// INSERT once the block in flight is written.
type stageStream struct {
	full chan block    // filled buffers, to the sender
	free chan block    // emptied buffers, back to the filler
	done chan struct{} // closed when the sender has finished
	keep bool          // set before full is closed: end the INSERT (else abort it)

	mu  sync.Mutex
	err error // the sender's first error; later blocks are dropped
}

func startStageStream(ctx context.Context, s *Store, insert string, spare block) (*stageStream, error) {
	free := make(chan block, 2)
	free <- spare
	return startStream(ctx, s, insert, free)
}

// startStream starts a stream that hands its emptied buffers to free,
// which several streams may share (the direct path's pool).
func startStream(ctx context.Context, s *Store, insert string, free chan block) (*stageStream, error) {
	batch, err := s.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return nil, err
	}
	st := &stageStream{full: make(chan block, 1), free: free, done: make(chan struct{})}
	go st.run(batch)
	return st, nil
}

func (st *stageStream) run(batch driver.Batch) {
	defer close(st.done)
	cols := make([]any, 0, 32)
	for b := range st.full {
		if st.failed() == nil {
			if p, ok := b.(interface{ prepare() }); ok {
				p.prepare() // work on the sender's goroutine, off the parser's path
			}
			cols = b.columns(cols[:0])
			var err error
			for i, c := range cols {
				if err = batch.Column(i).Append(c); err != nil {
					break
				}
			}
			// The block holds its own copy now: the buffer can be refilled
			// while the copy is compressed and sent.
			b.reset()
			st.free <- b
			if err == nil {
				err = batch.Flush()
			}
			st.fail(err)
			continue
		}
		b.reset()
		st.free <- b
	}
	if st.keep && st.failed() == nil {
		// Send ends the INSERT and waits for the server's answer: an error
		// writing any block surfaces here at the latest.
		st.fail(batch.Send())
		return
	}
	batch.Abort()
}

func (st *stageStream) fail(err error) {
	if err == nil {
		return
	}
	st.mu.Lock()
	if st.err == nil {
		st.err = err
	}
	st.mu.Unlock()
}

func (st *stageStream) failed() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// ship hands a filled buffer to the sender and returns an empty one.
func (st *stageStream) ship(b block) (block, error) {
	if err := st.failed(); err != nil {
		return b, err
	}
	st.full <- b
	next := <-st.free
	return next, st.failed()
}

// finish ends the stream: keep sends the INSERT's end and waits for the
// server to confirm every block; otherwise the INSERT is abandoned.
func (st *stageStream) finish(keep bool) error {
	st.end(keep)
	return st.wait()
}

// end starts finishing the stream (see finish) without waiting for it.
func (st *stageStream) end(keep bool) {
	st.keep = keep
	close(st.full)
}

// wait waits for a stream that end started finishing.
func (st *stageStream) wait() error {
	<-st.done
	return st.failed()
}

// insertShardRows is the number of new rows from which the final INSERT
// SELECT is split by response_key into insertShards statements that run at
// once. On 18.16 one INSERT SELECT sorts and writes on a single thread;
// two use both cores of a small server (README, Performance). Below it the
// single statement is as fast and makes fewer parts.
const (
	insertShardRows = 500_000
	insertShards    = 2
)

func shardsFor(rows uint64) int {
	if rows < insertShardRows {
		return 1
	}
	return insertShards
}

// insertShards runs query(filter) for n disjoint shards of the key column
// key (response_key, or its name in the stage's SELECT) at the same time. Each shard is idempotent on its own (its anti-join and
// LIMIT 1 BY see every row of its keys), so a failure in one leaves a state
// that running the window again completes.
func (s *Store) insertShards(ctx context.Context, what string, n int, key string, query func(filter string) string) error {
	if n <= 1 {
		return s.exec(ctx, what, query(""))
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.exec(ctx, fmt.Sprintf("%s (shard %d of %d)", what, i+1, n), query(fmt.Sprintf("%s %% %d = %d AND ", key, n, i)))
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
