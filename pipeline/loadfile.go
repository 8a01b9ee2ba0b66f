package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// ManualLoad describes a CSV exported by hand from the Emarsys web interface
// (--load-file). Zero fields take the config's export request.
type ManualLoad struct {
	Path           string
	ContactFields  []int // --fields, before the colon
	AnalysisFields []int // --fields, after the colon
	Fields         bool  // ContactFields/AnalysisFields were given (either may be empty)
	Delimiter      string
	NoHeader       bool
	Language       string
}

// ParseFields reads --fields "1,2,3:1,8,12": contact field ids, a colon,
// analysis field ids, each list in file order and either one may be empty.
func ParseFields(s string) (contact, analysis []int, err error) {
	c, a, ok := strings.Cut(s, ":")
	if !ok {
		return nil, nil, fmt.Errorf("--fields %q: want CONTACT_IDS:ANALYSIS_IDS, e.g. 1,2,3:1,8,12", s)
	}
	list := func(part, what string) ([]int, error) {
		var ids []int
		for _, f := range strings.Split(part, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("--fields %q: %s field id %q is not a number", s, what, f)
			}
			ids = append(ids, n)
		}
		return ids, nil
	}
	if contact, err = list(c, "contact"); err != nil {
		return nil, nil, err
	}
	if analysis, err = list(a, "analysis"); err != nil {
		return nil, nil, err
	}
	return contact, analysis, nil
}

// LocalFile is the Source of a manual load: one file on local disk. Open
// ignores the ledger's file name (a label, see LoadFile) and Finish leaves
// the user's file where it is.
type LocalFile struct{ Path string }

// Open opens the file.
func (f LocalFile) Open(_ context.Context, _ string) (io.ReadCloser, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, err // it names the path already
	}
	return fh, nil
}

// Finish does nothing: a file given on the command line is not ours to move.
func (LocalFile) Finish(context.Context, string) error { return nil }

// LoadFile loads a CSV from disk through the same parse, quarantine and
// staged load as an export, and records it in the ledger as a manual window.
//
// The manual window is [earliest event time, latest event time + 1 s), found
// by a first pass over the file; its ledger entry carries the file's base name
// and SHA-256 as file_name. Loading a file whose window is already done with
// the same SHA-256 is skipped; any other repeat is still exactly once, because
// the load adds only rows email_responses lacks. The file must hold the Time
// analysis field (8): without it no row has a time and there is no window.
//
// base supplies config, store, log and hooks; m overrides the export request.
// The Result's Err is set when the window failed (a header that does not match,
// too many rejects); the returned error is for problems before any window.
func LoadFile(ctx context.Context, base *Runner, m ManualLoad) (Result, error) {
	cfg := *base.Cfg
	exp := cfg.Export
	if m.Fields {
		exp.ContactFields, exp.AnalysisFields = m.ContactFields, m.AnalysisFields
	}
	if m.Delimiter != "" {
		exp.Delimiter = m.Delimiter
	}
	if exp.Delimiter != ";" && exp.Delimiter != "," {
		return Result{}, fmt.Errorf("load %s: delimiter %q: use --delimiter ';' or ','", m.Path, exp.Delimiter)
	}
	if m.NoHeader {
		no := false
		exp.Header = &no
	}
	if m.Language != "" {
		// Header cells are checked against every known name of a field, in any
		// language; the flag is recorded for completeness of the request.
		exp.Language = m.Language
	}
	if !slices.Contains(exp.AnalysisFields, schema.AnalysisTime) {
		return Result{}, fmt.Errorf("load %s: the file must hold the Time analysis field (8): it places the rows in time; export it with Time or name it in --fields", m.Path)
	}
	if n := len(exp.ContactFields) + len(exp.AnalysisFields); n < 1 || n > 20 {
		return Result{}, fmt.Errorf("load %s: %d fields: an export has 1 to 20 contact and analysis fields; check --fields", m.Path, n)
	}
	cfg.Export = exp
	custom, err := exp.Custom()
	if err != nil {
		return Result{}, fmt.Errorf("load %s: %w", m.Path, err)
	}
	plan, err := csvrows.NewPlan(exp.ContactFields, exp.AnalysisFields, custom)
	if err != nil {
		return Result{}, fmt.Errorf("load %s: fields: %w (check --fields or export.contact_fields)", m.Path, err)
	}
	r := &Runner{Cfg: &cfg, Source: LocalFile{Path: m.Path}, Store: base.Store, Log: base.Log, Plan: plan,
		OnSave: base.OnSave, AfterLoad: base.AfterLoad, RetryBase: base.RetryBase, confirmLease: base.confirmLease}

	w, sum, first, err := r.scanFile(ctx, m.Path)
	if err != nil {
		return Result{Read: uint64(first.Read), Rejected: uint64(first.Rejected), Err: err}, nil
	}
	label := filepath.Base(m.Path) + " sha256:" + sum
	log := r.Log.With("account", cfg.Account, "window", w.String(), "file", label)

	rec, err := r.latest(ctx, w)
	if err != nil {
		return Result{Window: w}, fmt.Errorf("read ledger for manual window %s: %w", w, err)
	}
	if rec.State == StateDone && rec.FileName == label {
		return Result{Window: w, State: StateDone, Read: rec.RowsRead, Loaded: rec.RowsLoaded,
			New: rec.RowsNew, Rejected: rec.RowsRejected, Skipped: true}, nil
	}
	// A response's key is built from the fields its file has (campaign id or
	// title, link title, url): a file without one of those the configured
	// export has gives the same response another key, and the anti-join
	// would store it twice. Refuse when the warehouse already holds exported
	// rows of the account in the file's span; warn otherwise (a later export
	// of the span, or a file with other fields, would store them again).
	if missing, extra := keyFieldsDiff(exp.AnalysisFields, base.Cfg.Export.AnalysisFields); len(missing)+len(extra) > 0 {
		why := fmt.Sprintf("the file's identifying analysis fields differ from export.analysis_fields (missing %v, extra %v): its responses get other response_keys than the exported ones", missing, extra)
		stored, err := r.Store.ExportedRows(ctx, cfg.Account, w.Start, w.End)
		if err != nil {
			return Result{Window: w}, fmt.Errorf("load %s: %w", m.Path, err)
		}
		if stored > 0 {
			return Result{Window: w, Err: fmt.Errorf("load %s: %s, and the warehouse already holds %d exported responses of %s in %s, which would be stored twice: export the file with the identifying fields %v of export.analysis_fields",
				m.Path, why, stored, cfg.Account, w, keyFields(base.Cfg.Export.AnalysisFields))}, nil
		}
		log.Warn("manual file with other identifying fields than the export: a later export of this span will store its responses again", "detail", why)
	}
	rec = chstore.WindowRecord{Account: cfg.Account, Start: w.Start, End: w.End, State: StateReady,
		FileName: label, Manual: true, Attempts: rec.Attempts + 1}
	if err := r.save(ctx, &rec); err != nil {
		return Result{Window: w}, err
	}
	fail := func(err error) (Result, error) {
		rec.State, rec.LastError = StateFailed, err.Error()
		if serr := r.save(ctx, &rec); serr != nil {
			log.Error("record failed manual window", "err", serr)
		}
		res := result(rec, err)
		res.Window = w
		return res, nil
	}
	st, newRows, staged, err := r.load(ctx, log, &rec, w)
	if err != nil {
		return fail(err)
	}
	rec.RowsRead, rec.RowsLoaded, rec.RowsRejected, rec.RowsNew = uint64(st.Read), uint64(st.Loaded), uint64(st.Rejected), newRows
	if err := r.afterLoad(ctx, w, rec, staged); err != nil {
		return fail(err)
	}
	for _, state := range []string{StateLoaded, StateDone} {
		rec.State, rec.LastError = state, ""
		if err := r.save(ctx, &rec); err != nil {
			return Result{Window: w}, err
		}
	}
	log.Info("file loaded", "read", st.Read, "loaded", st.Loaded, "new", newRows, "rejected", st.Rejected)
	res := result(rec, nil)
	res.Window = w
	return res, nil
}

// scanFile is the first pass of a manual load: the file's SHA-256 and the
// window its rows span. A file without a typed row has no window; it is an
// error then only if something was rejected (an empty export is not).
func (r *Runner) scanFile(ctx context.Context, path string) (Window, string, csvrows.Stats, error) {
	f, err := r.Source.Open(ctx, path)
	if err != nil {
		return Window{}, "", csvrows.Stats{}, err
	}
	defer f.Close()
	h := sha256.New()
	ti := r.Plan.Index("event_time")
	var lo, hi time.Time
	var firstReject string
	st, err := csvrows.Parse(io.TeeReader(f, h), csvrows.Options{
		Plan:      r.Plan,
		Delimiter: rune(r.Cfg.Export.Delimiter[0]),
		Header:    *r.Cfg.Export.Header,
		Loc:       r.Cfg.Loc,
	}, func(row *csvrows.Row) error {
		t := row.Values[ti].T
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
		return nil
	}, func(rj csvrows.Reject) error {
		if firstReject == "" {
			firstReject = fmt.Sprintf("line %d: %s", rj.Line, rj.Reason)
		}
		return nil
	})
	if err != nil {
		var hm *csvrows.HeaderMismatchError
		if errors.As(err, &hm) {
			return Window{}, "", st, fmt.Errorf("read %s: %w (check --fields, --no-header and --delimiter against the file)", path, err)
		}
		return Window{}, "", st, fmt.Errorf("read %s: %w", path, err)
	}
	if _, err := io.Copy(h, f); err != nil { // the hash covers the whole file even if Parse stopped at its end
		return Window{}, "", st, fmt.Errorf("read %s: %w", path, err)
	}
	if st.Loaded == 0 {
		if st.Rejected > 0 {
			return Window{}, "", st, fmt.Errorf("%s: all %d rows rejected, nothing loaded (first: %s): check --fields and --delimiter", path, st.Rejected, firstReject)
		}
		return Window{}, "", st, errNoRows
	}
	return Window{lo, hi.Add(time.Second)}, hex.EncodeToString(h.Sum(nil)), st, nil
}

// keyFields are the analysis fields among ids that response_key depends on.
func keyFields(ids []int) []int {
	var out []int
	for _, id := range []int{schema.AnalysisCampaignTitle, schema.AnalysisLinkTitle, schema.AnalysisURL, schema.AnalysisCampaignID} {
		if slices.Contains(ids, id) {
			out = append(out, id)
		}
	}
	return out
}

// keyFieldsDiff lists the key fields of want that file lacks, and those file
// has beyond want.
func keyFieldsDiff(file, want []int) (missing, extra []int) {
	f, w := keyFields(file), keyFields(want)
	for _, id := range w {
		if !slices.Contains(f, id) {
			missing = append(missing, id)
		}
	}
	for _, id := range f {
		if !slices.Contains(w, id) {
			extra = append(extra, id)
		}
	}
	return missing, extra
}

// errNoRows is a manual file with no data rows: nothing to load, not a failure.
var errNoRows = errors.New("the file holds no data rows: nothing to load")

// IsNoRows reports whether a manual load found an empty file.
func IsNoRows(err error) bool { return errors.Is(err, errNoRows) }
