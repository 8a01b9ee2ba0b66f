package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/fetch"
	"github.com/emarsys-etl/emarsys-etl/pipeline/notify"
)

// States of a window in the ledger, in the order a window passes them.
const (
	StatePlanned   = "planned"
	StateRequested = "requested" // export started, its id recorded
	StateReady     = "ready"     // the export's file is on the FTP server
	StateFetched   = "fetched"   // the file was read whole and staged
	StateLoaded    = "loaded"    // rows are in email_responses
	StateDone      = "done"      // the file was archived/deleted as configured
	StateFailed    = "failed"
)

// API is the part of the Emarsys client a window needs.
type API interface {
	StartResponsesExport(ctx context.Context, r emarsys.ExportRequest) (int64, error)
	WaitDone(ctx context.Context, id int64, o emarsys.WaitOptions) (emarsys.ExportStatus, error)
}

// Source opens an export's file for reading; FTP by default.
type Source interface {
	Open(ctx context.Context, fileName string) (io.ReadCloser, error)
	Finish(ctx context.Context, fileName string) error
}

// Runner runs windows of one account.
type Runner struct {
	Cfg    *config.Config
	API    API
	Source Source
	Store  *chstore.Store
	Log    *slog.Logger
	Plan   csvrows.Plan
	// OnWindow, when set, is told about each finished window (progress output).
	OnWindow func(Result)
	// RetryBase is the first backoff between attempts of a window.
	RetryBase time.Duration
	// LastTick is the Unix time of the scheduler's last tick (for readiness).
	LastTick atomic.Int64
	// OnSave, when set, sees every ledger write (metrics).
	OnSave func(rec chstore.WindowRecord)
	// AfterLoad hooks run once a window's rows are in email_responses, before
	// it is marked loaded (aggregates); an error retries the window, which is
	// harmless: the load itself is idempotent.
	AfterLoad []func(ctx context.Context, w Window, rec chstore.WindowRecord) error
	// Loads bounds the windows that stream a file into ClickHouse at the
	// same time (schedule.loads); nil means no bound.
	Loads chan struct{}
	// Stop, when closed, keeps RunAll from starting more windows while the
	// running ones go on under their own context (graceful stop, see Graceful).
	Stop <-chan struct{}
	// Notify, when set with notify.public_url, gives each export request a
	// notification_url whose call wakes the waiting window.
	Notify *notify.Registry

	// confirmLease is the held lease's Confirm, set by HoldLease.
	confirmLease func() error
}

// Result is the outcome of one window.
type Result struct {
	Window   Window
	State    string
	ExportID int64
	Read     uint64
	Loaded   uint64
	New      uint64
	Rejected uint64
	Skipped  bool // already done in the ledger
	Err      error
	Took     time.Duration
}

// NewRunner wires a runner from a config: Emarsys client, FTP source, store.
func NewRunner(cfg *config.Config, api API, src Source, store *chstore.Store, log *slog.Logger) (*Runner, error) {
	custom, err := cfg.Export.Custom()
	if err != nil {
		return nil, err
	}
	plan, err := csvrows.NewPlan(cfg.Export.ContactFields, cfg.Export.AnalysisFields, custom)
	if err != nil {
		return nil, err
	}
	return &Runner{Cfg: cfg, API: api, Source: src, Store: store, Log: log, Plan: plan, RetryBase: 2 * time.Second,
		Loads: make(chan struct{}, max(1, cfg.Schedule.Loads))}, nil
}

// ExportRequest is the request sent for window w.
func (r *Runner) ExportRequest(w Window) emarsys.ExportRequest {
	e := r.Cfg.Export
	header := 0
	if *e.Header {
		header = 1
	}
	req := emarsys.ExportRequest{
		DistributionMethod:  e.DistributionMethod,
		TimeRange:           LocalRange(w, r.Cfg.Loc),
		ContactFields:       e.ContactFields,
		Sources:             e.Sources,
		AnalysisFields:      e.AnalysisFields,
		Delimiter:           e.Delimiter,
		AddFieldNamesHeader: &header,
		Language:            e.Language,
		FTPSettings: &emarsys.FTPSettings{
			Host:     r.Cfg.FTP.DeliverHost,
			Port:     r.Cfg.FTP.DeliverPort,
			Username: r.Cfg.FTP.User,
			Password: r.Cfg.FTP.Password,
			Folder:   r.Cfg.FTP.Folder,
		},
	}
	if e.DistributionMethod == "local" {
		req.FTPSettings = nil
	}
	if e.EmailID > 0 {
		id := e.EmailID
		req.EmailID = &id
	}
	if e.ContactList > 0 {
		id := e.ContactList
		req.ContactList = &id
	}
	return req
}

// errPermanent marks a failure no retry of the same window can fix (a header
// that does not match the request, too many rejected rows).
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// Run brings one window to done, resuming from the state the ledger records.
func (r *Runner) Run(ctx context.Context, w Window) Result {
	t0 := time.Now()
	res := r.run(ctx, w)
	res.Window = w
	res.Took = time.Since(t0)
	if r.OnWindow != nil {
		r.OnWindow(res)
	}
	return res
}

func (r *Runner) run(ctx context.Context, w Window) Result {
	acct := r.Cfg.Account
	rec, err := r.latest(ctx, w)
	if err != nil {
		return Result{State: StatePlanned, Err: fmt.Errorf("read ledger for window %s: %w", w, err)}
	}
	if rec.State == StateDone {
		return Result{State: StateDone, ExportID: rec.ExportID, Read: rec.RowsRead, Loaded: rec.RowsLoaded,
			New: rec.RowsNew, Rejected: rec.RowsRejected, Skipped: true}
	}
	if rec.State == "" || rec.State == StateFailed {
		rec.State = StatePlanned
		rec.Attempts = 0
	}
	log := r.Log.With("account", acct, "window", w.String())
	failures := 0
	var lastErr error
	fail := func(err error) Result {
		rec.State = StateFailed
		rec.LastError = err.Error()
		if serr := r.save(ctx, &rec); serr != nil {
			log.Error("record failed window", "export_id", rec.ExportID, "err", serr)
		}
		log.Error("window failed", "export_id", rec.ExportID, "err", err)
		return result(rec, err)
	}
	// retry counts a failure and waits before the next attempt; false means give up.
	retry := func(err error) bool {
		lastErr = err
		failures++
		rec.LastError = err.Error()
		if failures >= r.Cfg.Schedule.Attempts {
			return false
		}
		d := r.RetryBase << (failures - 1)
		d += time.Duration(rand.Int64N(int64(d)/2 + 1))
		log.Warn("window attempt failed, retrying", "export_id", rec.ExportID, "attempt", failures, "backoff", d.Round(time.Millisecond).String(), "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}

	// The notification_url of the current request (none after a restart in
	// state requested: polling alone finishes that wait).
	var wake <-chan struct{}
	release := func() {}
	defer func() { release() }()
	adopted := false
	var conflictSince time.Time
	conflicts := 0

	for {
		if err := ctx.Err(); err != nil {
			// Stopping: the ledger already says where to resume.
			return result(rec, fmt.Errorf("window %s stopped in state %s: %w", w, rec.State, err))
		}
		switch rec.State {
		case StatePlanned:
			req := r.ExportRequest(w)
			release()
			wake, release = nil, func() {}
			if r.Notify != nil && r.Cfg.Notify.PublicURL != "" {
				var token string
				token, wake, release = r.Notify.Register(w.String())
				if token != "" {
					req.NotificationURL = notify.URL(r.Cfg.Notify.PublicURL, token)
				}
			}
			if err := r.leaseHeld(); err != nil {
				return result(rec, err)
			}
			id, err := r.API.StartResponsesExport(ctx, req)
			if errors.Is(err, emarsys.ErrAlreadyRunning) {
				// Never start a duplicate. If the ledger knows an export of this
				// window, it is most likely the running one: wait for that.
				if rec.ExportID != 0 && !adopted {
					adopted = true
					log.Info("an export with the same settings is running: picking up the one the ledger knows", "export_id", rec.ExportID)
					rec.State = StateRequested
					if err := r.save(ctx, &rec); err != nil {
						return result(rec, err)
					}
					continue
				}
				// Else wait for the twin to end, then ask again; bounded by export_timeout.
				if conflictSince.IsZero() {
					conflictSince = time.Now()
				}
				if time.Since(conflictSince) > r.Cfg.Emarsys.ExportTimeout {
					return fail(fmt.Errorf("start export for %s: %w; still so after %s (emarsys.export_timeout): find and cancel the twin export in Emarsys or wait for it",
						w, err, r.Cfg.Emarsys.ExportTimeout))
				}
				d := min(r.Cfg.Emarsys.PollInitial<<min(conflicts, 20), r.Cfg.Emarsys.PollMax)
				d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
				conflicts++
				log.Warn("an export with the same settings is running (replyCode 4001): waiting before asking again", "wait", d)
				select {
				case <-ctx.Done():
					return result(rec, fmt.Errorf("start export for %s: %w", w, ctx.Err()))
				case <-time.After(d):
				}
				continue
			}
			if err != nil {
				err = fmt.Errorf("start export for %s: %w", w, err)
				// A refused request (bad credentials, a field the account
				// lacks) is refused again: no retry.
				if ctx.Err() != nil || !emarsys.IsRetryable(err) || !retry(err) {
					return fail(orCtx(ctx, err, lastErr))
				}
				continue
			}
			rec.ExportID = id
			rec.FileName = ""
			rec.Attempts++
			rec.State = StateRequested
			if err := r.save(ctx, &rec); err != nil {
				return result(rec, err)
			}
			log.Info("export requested", "export_id", id)
		case StateRequested:
			st, err := r.API.WaitDone(ctx, rec.ExportID, emarsys.WaitOptions{
				Initial:    r.Cfg.Emarsys.PollInitial,
				Max:        r.Cfg.Emarsys.PollMax,
				Deadline:   r.Cfg.Emarsys.ExportTimeout,
				StuckAfter: r.Cfg.Emarsys.StuckAfter,
				Wake:       wake,
			})
			release()
			wake, release = nil, func() {}
			if err != nil {
				err = fmt.Errorf("wait for export %d of %s: %w", rec.ExportID, w, err)
				if ctx.Err() != nil {
					return result(rec, err)
				}
				if !emarsys.IsRetryable(err) {
					// The export itself failed, vanished or got stuck: ask for a new one.
					rec.State = StatePlanned
				}
				if !retry(err) {
					return fail(err)
				}
				continue
			}
			if st.FileName == "" && r.Cfg.Export.DistributionMethod == "local" {
				// A local export is read by id; the name only labels it.
				st.FileName = fmt.Sprintf("export_%d.csv", rec.ExportID)
			}
			if st.FileName == "" {
				// "done" without a file name is a reply not yet complete rather
				// than a bad one: ask the same export again after a backoff.
				err := fmt.Errorf("export %d of %s: the API says %q but names no file", rec.ExportID, w, st.Status)
				if !retry(err) {
					return fail(err)
				}
				continue
			}
			if err := fetch.ValidateFileName(st.FileName); err != nil {
				return fail(fmt.Errorf("export %d of %s: file name from the API: %w", rec.ExportID, w, err))
			}
			rec.FileName = st.FileName
			rec.State = StateReady
			if err := r.save(ctx, &rec); err != nil {
				return result(rec, err)
			}
			log.Info("export ready", "export_id", rec.ExportID, "file", st.FileName)
		case StateReady, StateFetched:
			// A window recorded as fetched is loaded again from its file: the
			// staging table may be gone, and the load is idempotent.
			t0 := time.Now()
			st, newRows, staged, err := r.load(ctx, log, &rec, w)
			loadTime := time.Since(t0)
			if err != nil {
				if ctx.Err() != nil {
					return result(rec, err)
				}
				if errors.Is(err, emarsys.ErrExportGone) || errors.Is(err, fetch.ErrNotFound) {
					// The vendor no longer holds the file, or it was removed from
					// the FTP server: only a new export helps.
					rec.State = StatePlanned
				}
				var perm errPermanent
				if errors.As(err, &perm) || !retry(err) {
					return fail(err)
				}
				continue
			}
			rec.RowsRead, rec.RowsLoaded, rec.RowsRejected, rec.RowsNew = uint64(st.Read), uint64(st.Loaded), uint64(st.Rejected), newRows
			t1 := time.Now()
			if err := r.afterLoad(ctx, w, rec, staged); err != nil {
				if ctx.Err() != nil {
					return result(rec, err)
				}
				if !retry(err) {
					return fail(err)
				}
				continue
			}
			rec.State = StateLoaded
			rec.LastError = ""
			if err := r.save(ctx, &rec); err != nil {
				return result(rec, err)
			}
			// The two durations show where a slow window spends its time:
			// fetching, parsing and storing the rows, or the aggregates after.
			log.Info("window loaded", "export_id", rec.ExportID, "read", st.Read, "loaded", st.Loaded,
				"new", newRows, "rejected", st.Rejected, "load_s", roundSec(loadTime), "after_load_s", roundSec(time.Since(t1)))
		case StateLoaded:
			if err := r.leaseHeld(); err != nil {
				return result(rec, err)
			}
			if err := r.Source.Finish(ctx, rec.FileName); err != nil {
				// The rows are safe; a file left behind is worth a warning, not a failed window.
				log.Warn("after-load action on the export file failed", "export_id", rec.ExportID, "file", rec.FileName, "err", err)
			}
			rec.State = StateDone
			if err := r.save(ctx, &rec); err != nil {
				return result(rec, err)
			}
			return result(rec, nil)
		default:
			return fail(fmt.Errorf("window %s: unknown ledger state %q", w, rec.State))
		}
	}
}

func roundSec(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

func orCtx(ctx context.Context, err, last error) error {
	if ctx.Err() != nil && last != nil {
		return last
	}
	return err
}

func result(rec chstore.WindowRecord, err error) Result {
	return Result{State: rec.State, ExportID: rec.ExportID, Read: rec.RowsRead, Loaded: rec.RowsLoaded,
		New: rec.RowsNew, Rejected: rec.RowsRejected, Err: err}
}

// load streams the export file through the parser into a staged load, then commits it.
// load also returns the span of the rows that took the stage (zero when
// none did), which the aggregates must cover as well.
func (r *Runner) load(ctx context.Context, log *slog.Logger, rec *chstore.WindowRecord, w Window) (csvrows.Stats, uint64, Window, error) {
	var st csvrows.Stats
	if r.Loads != nil {
		select {
		case r.Loads <- struct{}{}:
			defer func() { <-r.Loads }()
		case <-ctx.Done():
			return st, 0, Window{}, fmt.Errorf("wait for a load slot for %s: %w", w, ctx.Err())
		}
	}
	var f io.ReadCloser
	var err error
	if es, ok := r.Source.(ExportSource); ok {
		f, err = es.OpenExport(ctx, rec.ExportID, rec.FileName)
	} else {
		f, err = r.Source.Open(ctx, rec.FileName)
	}
	if err != nil {
		return st, 0, Window{}, fmt.Errorf("fetch %s for export %d of %s: %w", rec.FileName, rec.ExportID, w, err)
	}
	defer f.Close()
	ld, err := r.Store.BeginLoad(ctx, chstore.LoadSpec{
		Account: r.Cfg.Account, WindowStart: w.Start, WindowEnd: w.End, ExportID: rec.ExportID, Plan: r.Plan,
	})
	if err != nil {
		return st, 0, Window{}, fmt.Errorf("stage window %s: %w", w, err)
	}
	committed := false
	defer func() {
		if !committed {
			// A fresh context: the load's own may be the reason we are here.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := ld.Abort(actx); err != nil {
				log.Warn("drop staging table", "export_id", rec.ExportID, "err", err)
			}
		}
	}()
	st, err = csvrows.Parse(f, csvrows.Options{
		Plan:      r.Plan,
		Delimiter: rune(r.Cfg.Export.Delimiter[0]),
		Header:    *r.Cfg.Export.Header,
		Loc:       r.Cfg.Loc,
		// Settles readings of the autumn's repeated hour (csvrows doc).
		ExportRange: exportRange(w, r.Cfg.Loc),
	}, ld.Append, func(rj csvrows.Reject) error {
		log.Warn("row rejected", "export_id", rec.ExportID, "line", rj.Line, "reason", rj.Reason)
		return ld.Reject(rj)
	})
	if err != nil {
		var hm *csvrows.HeaderMismatchError
		err = fmt.Errorf("read %s of export %d: %w", rec.FileName, rec.ExportID, err)
		if errors.As(err, &hm) {
			return st, 0, Window{}, errPermanent{err}
		}
		return st, 0, Window{}, err
	}
	if st.Read > 0 && st.Rejected > int64(r.Cfg.Export.RejectAllowance) &&
		float64(st.Rejected) > r.Cfg.Export.MaxRejectShare*float64(st.Read) {
		rec.RowsRead, rec.RowsLoaded, rec.RowsRejected = uint64(st.Read), uint64(st.Loaded), uint64(st.Rejected)
		return st, 0, Window{}, errPermanent{fmt.Errorf("%s of export %d: %d of %d rows rejected, over the limit of %.2f%% (export.max_reject_share) and more than export.reject_allowance: has the export format changed?",
			rec.FileName, rec.ExportID, st.Rejected, st.Read, 100*r.Cfg.Export.MaxRejectShare)}
	}
	rec.State = StateFetched
	rec.RowsRead, rec.RowsLoaded, rec.RowsRejected = uint64(st.Read), uint64(st.Loaded), uint64(st.Rejected)
	if err := r.save(ctx, rec); err != nil {
		return st, 0, Window{}, err
	}
	// The save above waited for the lease already; the commit, which the
	// lease exists for, says so itself rather than rely on that order.
	if err := r.leaseHeld(); err != nil {
		return st, 0, Window{}, err
	}
	n, err := ld.Commit(ctx)
	if err != nil {
		return st, 0, Window{}, fmt.Errorf("commit window %s: %w", w, err)
	}
	committed = true
	var staged Window
	if from, to, ok := ld.StagedSpan(); ok {
		staged = Window{Start: from, End: to.Add(time.Second)}
	}
	return st, n, staged, nil
}

func (r *Runner) latest(ctx context.Context, w Window) (chstore.WindowRecord, error) {
	recs, err := r.Store.Windows(ctx, r.Cfg.Account, w.Start, w.End)
	if err != nil {
		return chstore.WindowRecord{}, err
	}
	for _, rec := range recs {
		if rec.Start.Equal(w.Start) && rec.End.Equal(w.End) {
			return rec, nil
		}
	}
	return chstore.WindowRecord{Account: r.Cfg.Account, Start: w.Start, End: w.End}, nil
}

func (r *Runner) afterLoad(ctx context.Context, w Window, rec chstore.WindowRecord, staged Window) error {
	// The export may reach past w (LocalRange widens it at the autumn clock
	// change), and its rows are stored: the hooks see the span that was read,
	// so the aggregates of a day the extension reaches are recomputed too.
	span := w
	if !rec.Manual {
		if er := exportRange(w, r.Cfg.Loc); !er[0].IsZero() {
			if er[0].Before(span.Start) {
				span.Start = er[0]
			}
			if end := er[1].Add(time.Second); end.After(span.End) {
				span.End = end
			}
		}
	}
	// Rows the file held outside even that (a vendor that sends more than
	// was asked, a file loaded by hand) are stored too: their days as well.
	if !staged.Start.IsZero() {
		if staged.Start.Before(span.Start) {
			span.Start = staged.Start
		}
		if staged.End.After(span.End) {
			span.End = staged.End
		}
	}
	for _, hook := range r.AfterLoad {
		if err := hook(ctx, span, rec); err != nil {
			return fmt.Errorf("after loading window %s: %w", w, err)
		}
	}
	return nil
}

func (r *Runner) save(ctx context.Context, rec *chstore.WindowRecord) error {
	if err := r.leaseHeld(); err != nil {
		return err
	}
	rec.Account = r.Cfg.Account
	// The ledger write must land even when a stop was requested, or the state is lost.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.Store.SaveWindow(sctx, *rec); err != nil {
		return fmt.Errorf("record window %s state %s: %w", Window{rec.Start, rec.End}, rec.State, err)
	}
	if r.OnSave != nil {
		r.OnSave(*rec)
	}
	return nil
}

// leaseHeld returns once the account's lease is confirmed (HoldLease), or
// why it is not held; nil when the Runner runs without a lease (tests).
func (r *Runner) leaseHeld() error {
	if r.confirmLease == nil {
		return nil
	}
	return r.confirmLease()
}

// RunAll runs windows with up to n at a time, in order of start. Once a
// window fails because the API refused the credentials, the windows not yet
// started are not tried: each would only be refused the same way.
func (r *Runner) RunAll(ctx context.Context, ws []Window, n int) []Result {
	out := make([]Result, len(ws))
	sem := make(chan struct{}, max(1, n))
	var wg sync.WaitGroup
	var authErr atomic.Pointer[emarsys.APIError]
	for i, w := range ws {
		select {
		case <-r.Stop:
			out[i] = Result{Window: w, State: StatePlanned, Err: errors.New("not started: stopping")}
			continue
		default:
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			out[i] = Result{Window: w, State: StatePlanned, Err: ctx.Err()}
			continue
		case <-r.Stop:
			out[i] = Result{Window: w, State: StatePlanned, Err: errors.New("not started: stopping")}
			continue
		}
		if e := authErr.Load(); e != nil {
			<-sem
			out[i] = Result{Window: w, State: StatePlanned, Err: fmt.Errorf("not started: the API refused the credentials: %w", e)}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = r.Run(ctx, w)
			if ae := authError(out[i].Err); ae != nil {
				authErr.CompareAndSwap(nil, ae)
			}
		}()
	}
	wg.Wait()
	return out
}

// authError returns the reply refusing the API credentials (HTTP 401, a
// clock-skew 401 included, which no retry fixes either), or nil.
func authError(err error) *emarsys.APIError {
	var ae *emarsys.APIError
	if errors.As(err, &ae) && ae.HTTPStatus == 401 {
		return ae
	}
	return nil
}

// Backfill loads [from, to) in windows of the configured size; windows the
// ledger shows as done are skipped, so running it again loads nothing twice.
func (r *Runner) Backfill(ctx context.Context, from, to time.Time) []Result {
	return r.RunAll(ctx, Split(from, to, r.Cfg.Schedule.Window), r.Cfg.Schedule.Concurrency)
}

// Tick runs what is due now: windows the ledger left unfinished (resumed from
// their state) or failed (run again), the holes between done windows, then
// new windows from the newest loaded end minus the overlap up to now minus the lag.
func (r *Runner) Tick(ctx context.Context, now time.Time) ([]Result, error) {
	recs, err := r.Store.Windows(ctx, r.Cfg.Account, time.Unix(0, 0).UTC(), now.Add(24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	var done, resume []Window
	var base time.Time
	for _, rec := range recs {
		if rec.Manual {
			// A file loaded by hand (--load-file) may hold only part of its
			// span (one campaign, some sources): it never counts as covered.
			continue
		}
		w := Window{rec.Start, rec.End}
		if base.IsZero() || w.Start.Before(base) {
			base = w.Start
		}
		switch rec.State {
		case StateDone:
			done = append(done, w)
		default:
			// Unfinished windows resume from their state; failed ones run
			// again with their own bounds, so their ledger entry ends done
			// rather than staying failed beside a replacement.
			resume = append(resume, w)
		}
	}
	if !r.Cfg.Schedule.StartTime.IsZero() && (base.IsZero() || r.Cfg.Schedule.StartTime.Before(base)) {
		base = r.Cfg.Schedule.StartTime
	}
	// Holes between done windows (a window that failed, a range a backfill
	// left out) are filled exactly, so one failed window does not make every
	// window after it run again on each tick; then the tail runs from the
	// newest loaded end minus the overlap up to now minus the lag. With nothing
	// done yet the tail starts at base.
	var loadedEnd time.Time
	for _, w := range done {
		if w.End.After(loadedEnd) {
			loadedEnd = w.End
		}
	}
	var plan []Window
	if len(done) > 0 {
		until := now.Add(-r.Cfg.Schedule.Lag).UTC().Truncate(time.Second)
		if loadedEnd.Before(until) {
			until = loadedEnd
		}
		for _, g := range Gaps(done, base, until) {
			plan = append(plan, Split(g.Start, g.End, r.Cfg.Schedule.Window)...)
		}
	}
	plan = append(plan, TickPlan(loadedEnd, base, now, r.Cfg.Schedule.Window, r.Cfg.Schedule.Lag, r.Cfg.Schedule.Overlap)...)
	// A planned window touching one being resumed would run the same time
	// range twice at once (two loads racing, one archiving the file the other
	// still reads): leave it to the next tick, which plans from the ledger again.
	ws := append([]Window(nil), resume...)
	for _, p := range plan {
		clash := false
		for _, q := range resume {
			if p.Start.Before(q.End) && q.Start.Before(p.End) {
				clash = true
				break
			}
		}
		if !clash {
			ws = append(ws, p)
		}
	}
	return r.RunAll(ctx, ws, r.Cfg.Schedule.Concurrency), nil
}

// FTPSource reads export files from the configured FTP server.
type FTPSource struct {
	Cfg       fetch.FTPConfig
	AfterLoad fetch.AfterLoad
	Archive   string
}

// Open streams a file.
func (s FTPSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return fetch.OpenFTP(ctx, s.Cfg, name)
}

// Finish archives, deletes or keeps a loaded file.
func (s FTPSource) Finish(ctx context.Context, name string) error {
	return fetch.Finish(ctx, s.Cfg, name, s.AfterLoad, s.Archive)
}
