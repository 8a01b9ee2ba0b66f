package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
)

// The direct path: the fast way a window's rows reach email_responses on a
// single server. See the package documentation for why it is exactly once.
//
// Rows whose time lies inside the window go, as finished email_responses
// rows with response_key computed in Go, into a "shadow" table made AS
// email_responses (same columns, engine, partitioning and order). Commit
// checks that the shadow holds every row sent and each key once (a file
// that repeats a response gets its shadow deduplicated by OPTIMIZE FINAL
// first), then moves the shadow's parts into email_responses with ATTACH
// PARTITION ... FROM, which links files and costs milliseconds, provided the
// window's range of email_responses is still empty at that moment;
// otherwise it falls back to the anti-join from the shadow. Rows outside the
// window, and every row of a file without a Time field, take the staging
// path of load.go.

// directShards is the number of INSERT streams the direct rows are split
// over, a block at a time. One INSERT is written by one server thread; two
// let a two-core server sort and compress on both cores while the parser
// runs (README, Performance). A filled block goes to whichever stream takes
// it first: while the server sorts and writes a part of one INSERT it reads
// nothing of it, and the other keeps the parser going.
const directShards = 2

// flushDirect's select names the two streams.
var _ = [1]struct{}{}[directShards-2]

// directBufs is the number of direct blocks: one being filled, and per
// stream one being sent and one waiting.
const directBufs = 1 + 2*directShards

// directBuf is one block of direct rows being filled or sent, with its
// columns in the order of Load.insertShadow.
type directBuf struct {
	l         *Load
	eventTime []time.Time
	userID    []uint64
	source    []int8
	sourceRaw []string
	srcText   textArena // sourceRaw's bytes
	encs      []encoder // the Plan's other fields, aligned with Load.directFields
	utf8      []uint8
	key       []uint64
	rows      int

	hasher *keyHasher // of the sender goroutine: keys are hashed off the parser's path
	// Where the key's fields are in encs; -1 when the Plan lacks them.
	campaignID, campaignTitle, url, linkTitle int
}

func (l *Load) newDirectBuf() (*directBuf, error) {
	n := l.s.batch
	b := &directBuf{l: l, eventTime: make([]time.Time, 0, n), userID: make([]uint64, 0, n), source: make([]int8, 0, n),
		sourceRaw: make([]string, 0, n), utf8: make([]uint8, 0, n), key: make([]uint64, 0, n),
		hasher: newKeyHasher(l.spec.Account), campaignID: -1, campaignTitle: -1, url: -1, linkTitle: -1}
	for j, i := range l.directFields {
		f := l.spec.Plan.Fields[i]
		switch f.Column {
		case "campaign_id":
			b.campaignID = j
		case "campaign_title":
			b.campaignTitle = j
		case "url":
			b.url = j
		case "link_title":
			b.linkTitle = j
		}
		enc, err := newEncoder(f, l.factTypes[f.Column], n)
		if err != nil {
			return nil, err
		}
		b.encs = append(b.encs, enc)
	}
	// prepare reads the key's fields from these encoders' buffers.
	for _, j := range []int{b.campaignTitle, b.url, b.linkTitle} {
		if j < 0 {
			continue
		}
		if _, ok := b.encs[j].(*strEnc); !ok {
			return nil, fmt.Errorf("column %s is not stored as String", l.spec.Plan.Fields[l.directFields[j]].Column)
		}
	}
	if j := b.campaignID; j >= 0 {
		if _, ok := b.encs[j].(*nu64Enc); !ok {
			return nil, fmt.Errorf("column campaign_id is not stored as Nullable(UInt64)")
		}
	}
	return b, nil
}

// prepare computes the block's response keys; the stream's sender calls it.
func (b *directBuf) prepare() {
	strs := func(j int) []string {
		if j < 0 {
			return nil
		}
		return b.encs[j].(*strEnc).v
	}
	var ids []*uint64
	if b.campaignID >= 0 {
		ids = b.encs[b.campaignID].(*nu64Enc).p
	}
	titles, urls, links := strs(b.campaignTitle), strs(b.url), strs(b.linkTitle)
	at := func(v []string, i int) string {
		if v == nil {
			return ""
		}
		return v[i]
	}
	b.key = b.key[:0]
	for i := range b.rows {
		var id uint64
		hasID := ids != nil && ids[i] != nil
		if hasID {
			id = *ids[i]
		}
		b.key = append(b.key, b.hasher.key(b.userID[i], b.sourceRaw[i], uint32(b.eventTime[i].Unix()), hasID, id,
			at(titles, i), at(urls, i), at(links, i)))
	}
}

func (b *directBuf) columns(dst []any) []any {
	n := b.rows
	c := b.l.consts
	dst = append(dst, c.account[:n], b.eventTime, b.eventTime, b.userID, b.source, b.sourceRaw)
	for _, e := range b.encs {
		dst = append(dst, e.column())
	}
	return append(dst, b.utf8, b.key, c.exportID[:n], c.windowStart[:n], c.windowEnd[:n], c.loadedAt[:n])
}

func (b *directBuf) reset() {
	for _, e := range b.encs {
		e.reset()
	}
	b.eventTime, b.userID, b.source, b.sourceRaw = b.eventTime[:0], b.userID[:0], b.source[:0], b.sourceRaw[:0]
	b.srcText.reset()
	b.utf8, b.key, b.rows = b.utf8[:0], b.key[:0], 0
}

// directConsts are the columns that hold one value for the whole load,
// built once at the block size and sliced to each block's length.
type directConsts struct {
	account                          []string
	exportID                         []uint64
	windowStart, windowEnd, loadedAt []time.Time
}

// directIdx holds where in a Row the columns with a place of their own are.
type directIdx struct{ eventTime, userID, source int }

// setupDirect prepares the direct path of l, or leaves it off (l.direct
// false) when the window cannot take it: cluster mode, a file without a
// Time field, a server whose cityHash64 differs from the Go key, a window
// outside DateTime's range.
func (l *Load) setupDirect(ctx context.Context, what string, actual map[string]string, has map[string]bool) error {
	s := l.s
	ws, we := l.spec.WindowStart, l.spec.WindowEnd
	if s.cluster != "" || !s.keysAgree || !has["event_time"] || ws.Unix() < dateMin || we.Unix() > dtMax {
		return nil
	}
	p := l.spec.Plan
	l.idx = directIdx{eventTime: p.Index("event_time"), userID: p.Index("user_id"), source: p.Index("source")}
	l.factTypes = actual
	names := []string{"`account`", "`event_time`", "`event_date`", "`user_id`", "`source`", "`source_raw`"}
	for i, f := range p.Fields {
		switch f.Column {
		case "user_id", "source", "event_time":
			continue
		}
		l.directFields = append(l.directFields, i)
		names = append(names, quoteIdent(f.Column))
	}
	names = append(names, "`invalid_utf8`", "`response_key`", "`export_id`", "`window_start`", "`window_end`", "`loaded_at`")

	n := s.batch
	l.loadedAt = time.Unix(time.Now().Unix(), 0).UTC()
	c := directConsts{account: make([]string, n), exportID: make([]uint64, n), windowStart: make([]time.Time, n),
		windowEnd: make([]time.Time, n), loadedAt: make([]time.Time, n)}
	for i := range n {
		c.account[i], c.exportID[i] = l.spec.Account, uint64(l.spec.ExportID)
		c.windowStart[i], c.windowEnd[i], c.loadedAt[i] = ws, we, l.loadedAt
	}
	l.consts = c
	l.dfree = make(chan block, directBufs)
	for i := range directBufs {
		b, err := l.newDirectBuf()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if i == 0 {
			l.dcur = b
		} else {
			l.dfree <- b
		}
	}
	l.shadow = s.table(stageName(l.spec) + "_direct")
	l.shadowCols = strings.Join(names, ", ")
	l.insertShadow = "INSERT INTO " + l.shadow + " (" + l.shadowCols + ")"
	if err := s.exec(ctx, what+": drop old shadow table", "DROP TABLE IF EXISTS "+l.shadow); err != nil {
		return err
	}
	if err := s.exec(ctx, what+": create shadow table", "CREATE TABLE "+l.shadow+" AS "+s.table(factTable)); err != nil {
		return err
	}
	// The shadow is a ReplacingMergeTree: a background merge while the file
	// streams in would drop a repeated key and make the shadow's count
	// disagree with the rows sent, and would spend CPU the load needs. Where
	// the user may not stop merges, the window takes the stage instead.
	if err := s.exec(ctx, what+": stop merges of the shadow table", "SYSTEM STOP MERGES "+l.shadow); err != nil {
		if ctx.Err() != nil {
			return err
		}
		err := s.exec(ctx, what+": drop shadow table", "DROP TABLE IF EXISTS "+l.shadow)
		l.shadow = ""
		return err
	}
	l.direct = true
	return nil
}

// appendDirect sends r down the direct path when it may go there and
// reports whether it did. A false return leaves r to the stage.
func (l *Load) appendDirect(r *csvrows.Row) (bool, error) {
	x := &l.idx
	et := r.Values[x.eventTime]
	if et.Null || et.T.Before(l.spec.WindowStart) || !et.T.Before(l.spec.WindowEnd) {
		return false, nil
	}
	b := l.dcur
	for j, i := range l.directFields {
		if err := b.encs[j].add(r.Values[i]); err != nil {
			return true, fmt.Errorf("load %s: line %d, column %s: %w", l.spec.Account, r.Line, l.spec.Plan.Fields[i].Column, err)
		}
	}
	utf8 := uint8(0)
	if r.InvalidUTF8 {
		utf8 = 1
	}
	src := r.Values[x.source].S
	// UTC: the driver takes event_date's day in the value's own zone.
	b.eventTime = append(b.eventTime, et.T.UTC())
	b.userID = append(b.userID, r.Values[x.userID].U)
	b.source = append(b.source, sourceCode(src))
	b.sourceRaw = append(b.sourceRaw, b.srcText.keep(src))
	b.utf8 = append(b.utf8, utf8)
	b.rows++
	if b.rows >= l.s.batch {
		return true, l.flushDirect()
	}
	return true, nil
}

// shadowSquashRows is the min_insert_block_size_rows of the shadow's
// INSERTs. The server gathers the small blocks it receives up to this many
// rows before it sorts and writes a part; its default (1,048,576) would
// leave the last half million rows of each stream to be written after the
// file has ended, in series. An eighth of that spreads the writing over the
// stream, leaves a short tail and still makes few parts (about sixteen for
// 2M rows), which ATTACH takes as they are and the server merges in the
// background. With the streams' parts taking turns (flushDirect) it
// measured 7% faster than 262,144; 65,536 was no faster (README,
// Performance).
const shadowSquashRows = 131072

func shadowInsertCtx(ctx context.Context) context.Context {
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"min_insert_block_size_rows": shadowSquashRows}))
}

// flushDirect hands the filled block to whichever stream takes it first
// and continues with an emptied one from the pool.
func (l *Load) flushDirect() error {
	b := l.dcur
	if b.rows == 0 {
		return nil
	}
	fail := func(err error) error {
		return fmt.Errorf("load %s %s: direct rows: %w", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), l.s.scrub(err))
	}
	if l.streams[0] == nil {
		for i := range l.streams {
			st, err := startStream(shadowInsertCtx(l.ctx), l.s, l.insertShadow, l.dfree)
			if err != nil {
				return fail(err)
			}
			l.streams[i] = st
		}
	}
	for _, st := range l.streams {
		if err := st.failed(); err != nil {
			return fail(err)
		}
	}
	n := uint64(b.rows) // b belongs to a sender once handed over
	if l.dsent < shadowSquashRows/2 {
		// A head start of half a part for the first stream: the two
		// servers' part writes then take turns instead of coinciding,
		// which would stall the parser (README, Performance).
		l.streams[0].full <- b
	} else {
		select {
		case l.streams[0].full <- b:
		case l.streams[1].full <- b:
		}
	}
	l.dsent += n
	l.dcur = (<-l.dfree).(*directBuf)
	return nil
}

// endDirect sends the block being filled and ends the INSERTs; keep waits
// for the server to confirm every block, otherwise they are abandoned.
func (l *Load) endDirect(keep bool) error {
	var first error
	if keep && l.direct {
		first = l.flushDirect()
	}
	keep = keep && first == nil
	// Every INSERT is ended before any is waited for: the server writes an
	// INSERT's last part only once it ends, and so the streams' last parts
	// are written at once, one per core, not one after the other.
	var ending []*stageStream
	for i, st := range l.streams {
		if st == nil {
			continue
		}
		l.streams[i] = nil
		st.end(keep)
		ending = append(ending, st)
	}
	for _, st := range ending {
		if err := st.wait(); err != nil && keep && first == nil {
			first = fmt.Errorf("load %s %s: direct rows: %w", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), l.s.scrub(err))
		}
	}
	return first
}

// commitDirect moves the shadow's rows into email_responses and returns how
// many were new. The caller holds the account's commit lock.
func (l *Load) commitDirect(ctx context.Context, what string) (uint64, error) {
	s := l.s
	sent := l.dsent
	if sent == 0 {
		return 0, nil
	}
	var inShadow, keys uint64
	if err := s.conn.QueryRow(ctx, "SELECT count(), uniqExact(response_key) FROM "+l.shadow).Scan(&inShadow, &keys); err != nil {
		return 0, s.scrub(fmt.Errorf("%s: count shadow rows: %w", what, err))
	}
	if inShadow != sent {
		return 0, fmt.Errorf("%s: the shadow table holds %d rows but %d were sent: rows were lost on the way; load the window again", what, inShadow, sent)
	}
	parts, err := l.shadowPartitions(ctx, what)
	if err != nil {
		return 0, err
	}
	if keys != inShadow {
		// The file repeats responses. The shadow is a ReplacingMergeTree
		// ordered by the key: merging each partition whole keeps one row
		// per key. Rare, and the cost of one rewrite of this window only.
		if err := s.exec(ctx, what+": start merges of the shadow table", "SYSTEM START MERGES "+l.shadow); err != nil {
			return 0, err
		}
		for _, p := range parts {
			if err := s.exec(ctx, what+": deduplicate shadow partition "+p, fmt.Sprintf("OPTIMIZE TABLE %s PARTITION ID %s FINAL", l.shadow, quoteString(p))); err != nil {
				return 0, err
			}
		}
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+l.shadow).Scan(&inShadow); err != nil {
			return 0, s.scrub(fmt.Errorf("%s: count shadow rows: %w", what, err))
		}
	}
	ws, we := l.spec.WindowStart, l.spec.WindowEnd
	inRange := fmt.Sprintf("account = %s AND event_date BETWEEN %s AND %s AND event_time >= %s AND event_time < %s",
		quoteString(l.spec.Account), dateLit(ws), dateLit(we.Add(-time.Second)), dateTimeLit(ws), dateTimeLit(we))
	var existing uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.table(factTable)+" WHERE "+inRange).Scan(&existing); err != nil {
		return 0, s.scrub(fmt.Errorf("%s: look for stored rows in the window: %w", what, err))
	}
	if existing == 0 && inShadow == keys {
		// Nothing of the window is stored, the shadow holds each key once
		// and the account's commits take turns: the shadow's parts can go
		// in as they are.
		// A crash between two partitions leaves the first one stored:
		// the next attempt finds the range non-empty and takes the
		// anti-join below, which adds exactly the rest.
		attached := true
		if testBeforeAttach != nil {
			testBeforeAttach(l)
		}
		for _, p := range parts {
			if err := s.exec(ctx, what+": attach partition "+p, fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION ID %s FROM %s", s.table(factTable), quoteString(p), l.shadow)); err != nil {
				if ctx.Err() != nil {
					return 0, err
				}
				// E.g. a contact column added to email_responses since
				// the shadow was made ("different structure"): the
				// anti-join below names its columns and adds the rest.
				attached = false
				break
			}
		}
		if attached {
			// The outcome, not only the plan: the range must hold the
			// shadow's rows now. A shadow dropped and made again between
			// the checks above and the attach (by an instance that lost
			// the lease race, pipeline.HoldLease) would attach nothing.
			var got uint64
			if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.table(factTable)+" WHERE "+inRange).Scan(&got); err != nil {
				return 0, s.scrub(fmt.Errorf("%s: count attached rows: %w", what, err))
			}
			if got != keys {
				return 0, fmt.Errorf("%s: after the attach the window holds %d rows, not the shadow's %d: the shadow table changed during the commit; load the window again", what, got, keys)
			}
			return keys, nil
		}
	}
	// Part of the window is stored already (an earlier, interrupted attempt,
	// or an overlapping window that committed first), or OPTIMIZE did not
	// merge (the server may decline while it merges those parts itself):
	// add what is missing, one row per key.
	stored := fmt.Sprintf("SELECT response_key FROM %s WHERE %s", s.table(factTable), inRange)
	var fresh uint64
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT uniqExact(response_key) FROM %s WHERE response_key NOT IN (%s)", l.shadow, stored)).Scan(&fresh); err != nil {
		return 0, s.scrub(fmt.Errorf("%s: count new rows: %w", what, err))
	}
	if fresh > 0 {
		err := s.insertShards(ctx, what+": insert new rows", shardsFor(fresh), "response_key", func(shard string) string {
			return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %sresponse_key NOT IN (%s) LIMIT 1 BY response_key",
				s.table(factTable), l.shadowCols, l.shadowCols, l.shadow, shard, stored)
		})
		if err != nil {
			return 0, err
		}
		if err := l.sourceUnchanged(ctx, what, l.shadow, inShadow); err != nil {
			return 0, err
		}
	}
	return fresh, nil
}

// testBeforeAttach, set by tests only, runs between the commit's checks and
// its ATTACH: where another instance's DDL could land.
var testBeforeAttach func(*Load)

// sourceUnchanged checks, after rows were copied from table, that it still
// holds the rows counted before: a staging table dropped and made again
// meanwhile (by an instance that lost the lease race, pipeline.HoldLease)
// would have given fewer rows than were counted as new.
func (l *Load) sourceUnchanged(ctx context.Context, what, table string, want uint64) error {
	var n uint64
	if err := l.s.conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
		return l.s.scrub(fmt.Errorf("%s: count %s again: %w", what, table, err))
	}
	if n != want {
		return fmt.Errorf("%s: %s holds %d rows, %d when the new rows were counted: it changed during the commit; load the window again", what, table, n, want)
	}
	return nil
}

// shadowPartitions lists the partition ids the shadow table has rows in.
func (l *Load) shadowPartitions(ctx context.Context, what string) ([]string, error) {
	s := l.s
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = ? AND table = ? AND active",
		s.db, stageName(l.spec)+"_direct")
	if err != nil {
		return nil, s.scrub(fmt.Errorf("%s: list shadow partitions: %w", what, err))
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, s.scrub(fmt.Errorf("%s: list shadow partitions: %w", what, err))
		}
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.scrub(fmt.Errorf("%s: list shadow partitions: %w", what, err))
	}
	return parts, nil
}
