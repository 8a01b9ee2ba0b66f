package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// ResponseKeySQL recomputes email_responses.response_key from a row of the
// table. It is the identity of one response: who, what, when, which
// campaign and link. Contact columns are left out on purpose (they change
// over time), and so is everything about the load (loaded_at, export_id,
// window). A campaign is its id when the export has one, else its title; the
// 'i:'/'t:' tags keep an id from ever equalling a title.
const ResponseKeySQL = "cityHash64(account, user_id, source_raw, event_time, " +
	"if(isNull(campaign_id), concat('t:', campaign_title), concat('i:', toString(assumeNotNull(campaign_id)))), " +
	"url, link_title)"

// RejectKeySQL recomputes email_responses_rejected.raw_key from a row of that table.
const RejectKeySQL = "cityHash64(account, window_start, raw)"

// LoadSpec says which window of which account a file fills, and how its
// columns are typed.
type LoadSpec struct {
	Account                string
	WindowStart, WindowEnd time.Time
	ExportID               int64
	Plan                   csvrows.Plan
}

// Load stages the rows of one window and then moves the new ones into
// email_responses in one INSERT SELECT. See the package documentation for
// why this is exactly once. A Load is not safe for concurrent use.
type Load struct {
	s    *Store
	ctx  context.Context // of BeginLoad: it bounds every block sent by Append
	spec LoadSpec

	stage, rejects, fresh string // quoted, qualified names of the staging tables

	insertStage string    // INSERT ... (columns) of the row stage
	encs        []encoder // one per Plan field, aligned with Row.Values
	lines       []uint32
	utf8        []uint8
	sources     []int8
	sourceIdx   int
	rows        int          // rows in the buffers
	appended    uint64       // rows sent to the stage
	spare       *blockBuf    // the second block buffer, filled while the first is sent
	stream      *stageStream // the stage's INSERT, started by the first block

	rejLine          []uint32
	rejRaw, rejWhy   []string
	rejectsAppended  uint64
	insertRejectsSQL string

	plan planSQL
	err  error // sticky: after a failed Append the Load can only be aborted
	done bool

	// The direct path (direct.go); off when the window takes the stage only.
	direct       bool
	shadow       string // quoted, qualified name of the shadow table
	shadowCols   string // its column list, as INSERTed
	insertShadow string
	factTypes    map[string]string // email_responses column -> type
	directFields []int             // Plan fields in the shadow besides user_id, source, event_time
	idx          directIdx
	consts       directConsts
	streams      [directShards]*stageStream // the shadow's INSERTs, started by the first block
	dsent        uint64                     // rows handed to them
	dcur         *directBuf                 // the direct block being filled
	dfree        chan block                 // the pool of emptied direct blocks, shared by the streams
	loadedAt     time.Time

	stagedFrom, stagedTo time.Time // event times of the staged rows, set by Commit
}

// StagedSpan is the first and last event time among the rows that went
// through the stage, known after Commit; ok is false when there were none.
// Such rows may lie outside the window (the vendor's autumn overlap, a file
// loaded by hand), and the days they fall on need their aggregates too.
func (l *Load) StagedSpan() (from, to time.Time, ok bool) {
	return l.stagedFrom, l.stagedTo, !l.stagedFrom.IsZero()
}

// planSQL holds the stage-to-table expressions that depend on the Plan.
type planSQL struct {
	targets []string // email_responses columns filled from the stage, in order
	exprs   []string // the SELECT expression of each target
	key     string   // response_key over stage columns
	// eventTime is the stage's event_time column, or the window start when
	// the file has no Time field.
	eventTime string
}

// BeginLoad prepares an empty staging table for the window, dropping what
// a previous, interrupted attempt may have left. Contact columns of the Plan
// that email_responses lacks are added first. ctx bounds the whole load,
// including the blocks that Append sends.
func (s *Store) BeginLoad(ctx context.Context, spec LoadSpec) (*Load, error) {
	what := fmt.Sprintf("begin load of %s %s..%s", spec.Account, spec.WindowStart.UTC().Format(time.RFC3339), spec.WindowEnd.UTC().Format(time.RFC3339))
	if spec.Account == "" {
		return nil, fmt.Errorf("begin load: account is empty")
	}
	if !spec.WindowEnd.After(spec.WindowStart) {
		return nil, fmt.Errorf("%s: window end is not after its start", what)
	}
	if spec.ExportID < 0 {
		return nil, fmt.Errorf("%s: negative export id %d", what, spec.ExportID)
	}
	var contact []schema.Field
	seen := map[string]bool{}
	idx := map[string]int{}
	for i, f := range spec.Plan.Fields {
		if seen[f.Column] {
			return nil, fmt.Errorf("%s: plan has column %s twice", what, f.Column)
		}
		seen[f.Column], idx[f.Column] = true, i
		if !isFixedColumn(f.Column) {
			if err := validContactColumn(f.Column); err != nil {
				return nil, fmt.Errorf("%s: plan field %d (%s): %w", what, f.ID, f.Name, err)
			}
			contact = append(contact, f)
		}
	}
	// event_time may be missing (a file exported by hand without the Time
	// field): such rows are placed at the window start, see buildPlanSQL.
	for _, col := range []string{"user_id", "source"} {
		if !seen[col] {
			return nil, fmt.Errorf("%s: plan lacks %s: a response cannot be stored or deduplicated without it", what, col)
		}
	}
	if err := s.EnsureContactColumns(ctx, contact); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cols, err := s.tableColumns(ctx, factTable)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	actual := map[string]string{}
	for _, c := range cols {
		actual[c.name] = c.typ
	}

	l := &Load{s: s, ctx: ctx, spec: spec, sourceIdx: idx["source"], spare: &blockBuf{}}
	name := stageName(spec)
	l.stage, l.rejects, l.fresh = s.table(name), s.table(name+"_rej"), s.table(name+"_new")

	n := s.batch
	l.lines, l.utf8, l.sources = make([]uint32, 0, n), make([]uint8, 0, n), make([]int8, 0, n)
	l.spare.lines, l.spare.utf8, l.spare.sources = make([]uint32, 0, n), make([]uint8, 0, n), make([]int8, 0, n)
	ddl := []string{"`_line` UInt32", "`_invalid_utf8` UInt8", "`_source_code` Int8"}
	names := []string{"`_line`", "`_invalid_utf8`", "`_source_code`"}
	for _, f := range spec.Plan.Fields {
		typ, ok := actual[f.Column]
		switch {
		case f.Column == "user_id":
			typ = "UInt64" // the parser rejects an empty user_id
		case f.Column == "source":
			typ = "String" // the raw text; the Enum8 code travels in _source_code
		case !ok:
			return nil, fmt.Errorf("%s: email_responses has no column %s: run Migrate", what, f.Column)
		}
		enc, err := newEncoder(f, typ, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		l.encs = append(l.encs, enc)
		spare, err := newEncoder(f, typ, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		l.spare.encs = append(l.spare.encs, spare)
		ddl = append(ddl, quoteIdent(f.Column)+" "+normType(typ))
		names = append(names, quoteIdent(f.Column))
	}
	l.insertStage = "INSERT INTO " + l.stage + " (" + strings.Join(names, ", ") + ")"
	l.insertRejectsSQL = "INSERT INTO " + l.rejects + " (`_line`, raw, reason)"
	l.rejLine, l.rejRaw, l.rejWhy = make([]uint32, 0, n), make([]string, 0, n), make([]string, 0, n)
	l.plan = buildPlanSQL(spec, seen)

	for _, t := range []string{l.stage, l.rejects, l.fresh} {
		if err := s.exec(ctx, what+": drop old staging table "+t, "DROP TABLE IF EXISTS "+t); err != nil {
			return nil, err
		}
	}
	// Log: staging is written once, read once and dropped; it needs no
	// sorting, merging or parts, and 18.16 has it.
	if err := s.exec(ctx, what+": create staging table", "CREATE TABLE "+l.stage+" ("+strings.Join(ddl, ", ")+") ENGINE = Log"); err != nil {
		return nil, err
	}
	if err := s.exec(ctx, what+": create reject staging table", "CREATE TABLE "+l.rejects+" (`_line` UInt32, raw String, reason String) ENGINE = Log"); err != nil {
		return nil, err
	}
	if err := l.setupDirect(ctx, what, actual, seen); err != nil {
		l.drop(ctx, what)
		return nil, err
	}
	return l, nil
}

// stageName derives the staging table's name from the window alone, so a
// re-run of a window (after a crash) finds and replaces what the earlier
// attempt left, and no text of the account ever reaches an identifier.
func stageName(spec LoadSpec) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", spec.Account, spec.WindowStart.Unix(), spec.WindowEnd.Unix())))
	return "_stage_" + hex.EncodeToString(h[:8])
}

func buildPlanSQL(spec LoadSpec, has map[string]bool) planSQL {
	or := func(col, def string) string {
		if has[col] {
			return quoteIdent(col)
		}
		return def
	}
	// Without a Time column the response's moment is unknown; the window
	// start is the only honest stand-in, and the README says so.
	eventTime := or("event_time", dateTimeLit(spec.WindowStart))
	campaign := "concat('t:', " + or("campaign_title", "''") + ")"
	if has["campaign_id"] {
		campaign = "if(isNull(`campaign_id`), " + campaign + ", concat('i:', toString(assumeNotNull(`campaign_id`))))"
	}
	p := planSQL{
		eventTime: eventTime,
		key: "cityHash64(" + quoteString(spec.Account) + ", `user_id`, `source`, " + eventTime + ", " + campaign + ", " +
			or("url", "''") + ", " + or("link_title", "''") + ")",
	}
	add := func(target, expr string) {
		p.targets = append(p.targets, quoteIdent(target))
		p.exprs = append(p.exprs, expr)
	}
	add("account", quoteString(spec.Account))
	add("event_time", eventTime)
	add("event_date", "toDate("+eventTime+")")
	add("user_id", "`user_id`")
	add("source", "CAST(`_source_code` AS "+sourceEnum+")")
	add("source_raw", "`source`")
	for _, f := range spec.Plan.Fields {
		switch f.Column {
		case "user_id", "source", "event_time":
			continue
		}
		add(f.Column, quoteIdent(f.Column))
	}
	add("invalid_utf8", "`_invalid_utf8`")
	add("response_key", "`_key`")
	add("export_id", fmt.Sprintf("toUInt64(%d)", spec.ExportID))
	add("window_start", dateTimeLit(spec.WindowStart))
	add("window_end", dateTimeLit(spec.WindowEnd))
	return p
}

// Append adds one typed row. Rows are buffered column by column and sent
// as a block every BatchRows rows. Nothing of r is kept after the call:
// the parser reuses its strings' bytes for the next row (csvrows.Parse),
// so the encoders copy them (textArena). After an error the Load can only
// be aborted.
func (l *Load) Append(r *csvrows.Row) error {
	if l.done {
		return errClosed
	}
	if l.err != nil {
		return l.err
	}
	if len(r.Values) != len(l.encs) {
		l.err = fmt.Errorf("load %s: line %d has %d values, the plan %d", l.spec.Account, r.Line, len(r.Values), len(l.encs))
		return l.err
	}
	if l.direct {
		sent, err := l.appendDirect(r)
		if err != nil {
			l.err = err
			return err
		}
		if sent {
			return nil
		}
	}
	for i, enc := range l.encs {
		if err := enc.add(r.Values[i]); err != nil {
			// Earlier columns of this row are buffered already; the block
			// is out of step, so the Load is finished.
			l.err = fmt.Errorf("load %s: line %d, column %s: %w", l.spec.Account, r.Line, l.spec.Plan.Fields[i].Column, err)
			return l.err
		}
	}
	utf8 := uint8(0)
	if r.InvalidUTF8 {
		utf8 = 1
	}
	l.lines = append(l.lines, uint32(r.Line))
	l.utf8 = append(l.utf8, utf8)
	l.sources = append(l.sources, sourceCode(r.Values[l.sourceIdx].S))
	l.rows++
	if l.rows >= l.s.batch {
		return l.flushRows()
	}
	return nil
}

// Reject records a line that could not be typed; it is stored at Commit.
func (l *Load) Reject(rj csvrows.Reject) error {
	if l.done {
		return errClosed
	}
	if l.err != nil {
		return l.err
	}
	l.rejLine = append(l.rejLine, uint32(rj.Line))
	l.rejRaw = append(l.rejRaw, rj.Raw)
	l.rejWhy = append(l.rejWhy, rj.Reason)
	if len(l.rejLine) >= l.s.batch {
		return l.flushRejects()
	}
	return nil
}

// flushRows hands the filled block to the stage stream and continues with
// the other buffer; the block is sent while the next one fills.
func (l *Load) flushRows() error {
	if l.rows == 0 {
		return nil
	}
	fail := func(err error) error {
		l.err = l.s.scrub(fmt.Errorf("load %s %s: stage rows: %w", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), err))
		return l.err
	}
	if l.stream == nil {
		st, err := startStageStream(l.ctx, l.s, l.insertStage, l.spare)
		if err != nil {
			return fail(err)
		}
		l.stream, l.spare = st, nil
	}
	n := l.rows
	next, err := l.stream.ship(&blockBuf{encs: l.encs, lines: l.lines, utf8: l.utf8, sources: l.sources, rows: n})
	if err != nil {
		return fail(err)
	}
	nb := next.(*blockBuf)
	l.encs, l.lines, l.utf8, l.sources, l.rows = nb.encs, nb.lines, nb.utf8, nb.sources, 0
	l.appended += uint64(n)
	return nil
}

// endStream ends the stage's INSERT: keep waits for the server to confirm
// every block, otherwise the INSERT is abandoned.
func (l *Load) endStream(keep bool) error {
	if l.stream == nil {
		return nil
	}
	st := l.stream
	l.stream = nil
	if err := st.finish(keep); err != nil && keep {
		l.err = l.s.scrub(fmt.Errorf("load %s %s: stage rows: %w", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), err))
		return l.err
	}
	return nil
}

func (l *Load) flushRejects() error {
	n := len(l.rejLine)
	if n == 0 {
		return nil
	}
	if err := l.send(l.insertRejectsSQL, []any{l.rejLine, l.rejRaw, l.rejWhy}, fmt.Sprintf("stage %d rejects", n)); err != nil {
		return err
	}
	l.rejectsAppended += uint64(n)
	l.rejLine, l.rejRaw, l.rejWhy = l.rejLine[:0], l.rejRaw[:0], l.rejWhy[:0]
	return nil
}

// send ships one columnar block: each column goes in as one typed slice,
// which is far cheaper than boxing every value into an Append(any...) row.
func (l *Load) send(insert string, cols []any, what string) error {
	fail := func(err error) error {
		l.err = l.s.scrub(fmt.Errorf("load %s %s: %s: %w", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), what, err))
		return l.err
	}
	batch, err := l.s.conn.PrepareBatch(l.ctx, insert)
	if err != nil {
		return fail(err)
	}
	defer batch.Abort()
	for i, c := range cols {
		if err := batch.Column(i).Append(c); err != nil {
			return fail(err)
		}
	}
	if err := batch.Send(); err != nil {
		return fail(err)
	}
	return nil
}

// Commit sends what is buffered, checks that the stage holds every row,
// adds to email_responses the rows it does not have yet, stores the
// rejects the same way and drops the staging tables. It returns the number
// of rows added: fewer than appended when an overlapping window or an
// earlier attempt already stored some.
func (l *Load) Commit(ctx context.Context) (rowsNew uint64, err error) {
	if l.done {
		return 0, errClosed
	}
	if l.err != nil {
		return 0, l.err
	}
	s := l.s
	what := fmt.Sprintf("commit load of %s %s..%s", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), l.spec.WindowEnd.UTC().Format(time.RFC3339))
	if err := l.endDirect(true); err != nil {
		l.err = err
		return 0, err
	}
	if err := l.flushRows(); err != nil {
		return 0, err
	}
	if err := l.endStream(true); err != nil {
		return 0, err
	}
	if err := l.flushRejects(); err != nil {
		return 0, err
	}

	var (
		staged   uint64
		min, max time.Time
	)
	et := l.plan.eventTime
	if err := s.conn.QueryRow(ctx, "SELECT count(), min("+et+"), max("+et+") FROM "+l.stage).Scan(&staged, &min, &max); err != nil {
		return 0, s.scrub(fmt.Errorf("%s: count staged rows: %w", what, err))
	}
	if staged > 0 {
		l.stagedFrom, l.stagedTo = min, max
	}
	if staged != l.appended {
		return 0, fmt.Errorf("%s: staging holds %d rows but %d were sent: rows were lost on the way; load the window again", what, staged, l.appended)
	}
	var stagedRejects uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+l.rejects).Scan(&stagedRejects); err != nil {
		return 0, s.scrub(fmt.Errorf("%s: count staged rejects: %w", what, err))
	}
	if stagedRejects != l.rejectsAppended {
		return 0, fmt.Errorf("%s: staging holds %d rejects but %d were sent: load the window again", what, stagedRejects, l.rejectsAppended)
	}

	mu := s.commitLock(l.spec.Account)
	mu.Lock()
	defer mu.Unlock()
	// Cluster mode: every replica the anti-join may read must hold every
	// stored row, and the insert returns once the shards have it (cluster.go).
	if err := s.waitFactReplicas(ctx); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	ctx = s.clusterCtx(ctx)
	loadedAt := dateTimeLit(time.Now())
	if l.direct {
		// The direct rows go first, so that the stage's anti-join below
		// sees them: a staged row may repeat one of them.
		n, err := l.commitDirect(ctx, what)
		if err != nil {
			return 0, err
		}
		rowsNew += n
	}
	if staged > 0 {
		// The rows email_responses lacks, deduplicated within the file, go
		// straight from the stage in one INSERT SELECT. Existing keys are
		// looked up only in the stage's time range, which partition and
		// primary-key pruning keep cheap. rows_new, which an INSERT SELECT
		// does not report on 18.16, is counted first by the same anti-join
		// over the key columns alone: with one loader per account nothing
		// changes the answer in between, and reading keys costs far less
		// than writing and re-reading a copy of the new rows.
		targets := append(append([]string{}, l.plan.targets...), "`loaded_at`")
		exprs := append(append([]string{}, l.plan.exprs...), loadedAt)
		existing := fmt.Sprintf("SELECT response_key FROM %s WHERE account = %s AND event_date BETWEEN %s AND %s AND event_time BETWEEN %s AND %s",
			s.table(factTable), quoteString(l.spec.Account), dateLit(min), dateLit(max), dateTimeLit(min), dateTimeLit(max))
		count := fmt.Sprintf("SELECT uniqExact(`_key`) FROM (SELECT %s AS `_key` FROM %s) WHERE `_key` NOT IN (%s)", l.plan.key, l.stage, existing)
		var stagedNew uint64
		if err := s.conn.QueryRow(ctx, count).Scan(&stagedNew); err != nil {
			return 0, s.scrub(fmt.Errorf("%s: count new rows: %w", what, err))
		}
		rowsNew += stagedNew
		// If this insert is cut short, running the window again finds the
		// rows that made it and adds only the rest.
		if stagedNew > 0 {
			if err := s.insertShards(ctx, what+": insert new rows", shardsFor(stagedNew), "`_key`", func(shard string) string {
				return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (SELECT *, %s AS `_key` FROM %s) WHERE %s`_key` NOT IN (%s) LIMIT 1 BY `_key`",
					s.table(factTable), strings.Join(targets, ", "), strings.Join(exprs, ", "), l.plan.key, l.stage, shard, existing)
			}); err != nil {
				return 0, err
			}
			if err := l.sourceUnchanged(ctx, what, l.stage, staged); err != nil {
				return 0, err
			}
		}
	}
	if stagedRejects > 0 {
		q := fmt.Sprintf(`INSERT INTO %s (account, window_start, window_end, export_id, line, raw, reason, raw_key, rejected_at)
SELECT %s, %s, %s, toUInt64(%d), _line, raw, reason, _key, %s
FROM (SELECT *, cityHash64(%s, %s, raw) AS _key FROM %s)
WHERE _key NOT IN (SELECT raw_key FROM %s WHERE account = %s AND window_start = %s)
LIMIT 1 BY _key`,
			s.table(rejectTable), quoteString(l.spec.Account), dateTimeLit(l.spec.WindowStart), dateTimeLit(l.spec.WindowEnd), l.spec.ExportID, loadedAt,
			quoteString(l.spec.Account), dateTimeLit(l.spec.WindowStart), l.rejects,
			s.table(rejectTable), quoteString(l.spec.Account), dateTimeLit(l.spec.WindowStart))
		if err := s.exec(ctx, what+": insert rejects", q); err != nil {
			return 0, err
		}
	}
	if err := l.drop(ctx, what); err != nil {
		return 0, err
	}
	l.done = true
	return rowsNew, nil
}

// Abort drops the staging tables; email_responses is not touched. Aborting
// a committed or aborted Load does nothing.
func (l *Load) Abort(ctx context.Context) error {
	if l.done {
		return nil
	}
	l.done = true
	l.endDirect(false)
	l.endStream(false)
	return l.drop(ctx, fmt.Sprintf("abort load of %s %s..%s", l.spec.Account, l.spec.WindowStart.UTC().Format(time.RFC3339), l.spec.WindowEnd.UTC().Format(time.RFC3339)))
}

func (l *Load) drop(ctx context.Context, what string) error {
	tables := []string{l.stage, l.rejects, l.fresh}
	if l.shadow != "" {
		tables = append(tables, l.shadow)
	}
	for _, t := range tables {
		if err := l.s.exec(ctx, what+": drop staging table "+t, "DROP TABLE IF EXISTS "+t); err != nil {
			return err
		}
	}
	return nil
}

// Rows returns how many rows and rejects were appended so far.
func (l *Load) Rows() (rows, rejects uint64) {
	rows = l.appended + uint64(l.rows) + l.dsent
	if l.dcur != nil {
		rows += uint64(l.dcur.rows)
	}
	return rows, l.rejectsAppended + uint64(len(l.rejLine))
}
