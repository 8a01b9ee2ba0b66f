package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// export starts and waits for the export of w, as a run that crashed right
// after would have: the file is on the FTP server.
func export(t *testing.T, h *pipelinetest.Harness, w pipeline.Window) (int64, string) {
	t.Helper()
	ctx := t.Context()
	id, err := h.Runner.API.StartResponsesExport(ctx, h.Runner.ExportRequest(w))
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Runner.API.WaitDone(ctx, id, emarsys.WaitOptions{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, Deadline: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return id, st.FileName
}

func save(t *testing.T, h *pipelinetest.Harness, w pipeline.Window, state string, id int64, file string) {
	t.Helper()
	if err := h.Store.SaveWindow(t.Context(), chstore.WindowRecord{Account: h.Cfg.Account, Start: w.Start, End: w.End,
		State: state, ExportID: id, FileName: file, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
}

// After a crash in any state, a run resumes the window from its recorded
// state: no new export while the recorded one can still be fetched, and the
// warehouse ends with exactly the simulator's rows, even when a commit was
// cut short halfway.
func TestResumeFromEachState(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Window: 6 * time.Hour})
	day := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)
	win := func(i int) pipeline.Window {
		return pipeline.Window{Start: day.Add(time.Duration(i) * 6 * time.Hour), End: day.Add(time.Duration(i+1) * 6 * time.Hour)}
	}
	type tc struct {
		name      string
		setup     func(w pipeline.Window) int64 // returns the export id the run must use (0: a new one)
		newExport bool
		wantNew   func(w pipeline.Window) int // rows the resumed run adds
	}
	all := func(w pipeline.Window) int { return len(h.Expected(w.Start, w.End)) }
	cases := []tc{
		{name: "requested", setup: func(w pipeline.Window) int64 {
			// Killed right after the export was started: only its id is known.
			id, err := h.Runner.API.StartResponsesExport(t.Context(), h.Runner.ExportRequest(w))
			if err != nil {
				t.Fatal(err)
			}
			save(t, h, w, pipeline.StateRequested, id, "")
			return id
		}, wantNew: all},
		{name: "requested, export gone at the vendor", setup: func(w pipeline.Window) int64 {
			save(t, h, w, pipeline.StateRequested, 987654, "")
			return 0
		}, newExport: true, wantNew: all},
		{name: "ready", setup: func(w pipeline.Window) int64 {
			id, file := export(t, h, w)
			save(t, h, w, pipeline.StateReady, id, file)
			return id
		}, wantNew: all},
		{name: "fetched, commit cut short halfway", setup: func(w pipeline.Window) int64 {
			// The first two hours of the window are already in the table,
			// as if the final INSERT SELECT had died halfway.
			part := pipeline.Window{Start: w.Start, End: w.Start.Add(2 * time.Hour)}
			if r := h.Runner.Run(t.Context(), part); r.Err != nil {
				t.Fatal(r.Err)
			}
			id, file := export(t, h, w)
			save(t, h, w, pipeline.StateFetched, id, file)
			return id
		}, wantNew: func(w pipeline.Window) int { return len(h.Expected(w.Start.Add(2*time.Hour), w.End)) }},
		{name: "loaded", setup: func(w pipeline.Window) int64 {
			r := h.Runner.Run(t.Context(), w)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			save(t, h, w, pipeline.StateLoaded, r.ExportID, "")
			return r.ExportID
		}, wantNew: func(pipeline.Window) int { return 0 }},
	}
	for i, c := range cases {
		w := win(i)
		t.Run(c.name, func(t *testing.T) {
			id := c.setup(w)
			exports := len(h.Sim.Exports())
			before := h.Count(fmt.Sprintf("SELECT count() FROM {db}.email_responses WHERE event_time >= %d AND event_time < %d", w.Start.Unix(), w.End.Unix()))
			r := h.Runner.Run(t.Context(), w)
			if r.Err != nil || r.State != pipeline.StateDone {
				t.Fatalf("resumed run ended %s: %v", r.State, r.Err)
			}
			if got := len(h.Sim.Exports()) - exports; c.newExport != (got == 1) || got > 1 {
				t.Errorf("the resumed run started %d exports, want new export: %v", got, c.newExport)
			}
			if !c.newExport && r.ExportID != id {
				t.Errorf("resumed with export %d, the ledger recorded %d", r.ExportID, id)
			}
			after := h.Count(fmt.Sprintf("SELECT count() FROM {db}.email_responses WHERE event_time >= %d AND event_time < %d", w.Start.Unix(), w.End.Unix()))
			if int(after-before) != c.wantNew(w) || int(after) != all(w) {
				t.Errorf("rows in the window: %d before, %d after; want %d added, %d in all", before, after, c.wantNew(w), all(w))
			}
		})
	}
	h.AssertWarehouse(day, win(len(cases)-1).End)
}

// Overlapping windows running at the same time in one process (the daemon
// resumes old windows next to new ones) never store a row twice: commits
// take turns, and each adds only what is missing.
func TestOverlappingWindowsConcurrently(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Concurrency: 4})
	from := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	ws := []pipeline.Window{
		{Start: from, End: from.Add(6 * time.Hour)},
		{Start: from.Add(2 * time.Hour), End: from.Add(8 * time.Hour)},
		{Start: from.Add(4 * time.Hour), End: from.Add(10 * time.Hour)},
		{Start: from, End: from.Add(10 * time.Hour)},
	}
	var added uint64
	for _, r := range h.Runner.RunAll(t.Context(), ws, 4) {
		if r.Err != nil || r.State != pipeline.StateDone {
			t.Fatalf("window %s ended %s: %v", r.Window, r.State, r.Err)
		}
		added += r.New
	}
	n := h.AssertWarehouse(from, from.Add(10*time.Hour))
	if added != uint64(n) {
		t.Errorf("windows report %d rows added, the table holds %d", added, n)
	}
}

// A second instance against the same account and database is refused with
// the holder's name and the expiry; once the first releases, it may run.
func TestSecondInstanceRefused(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	ctx := t.Context()
	_, first, err := h.Runner.HoldLease(ctx, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	second, err := pipeline.NewRunner(h.Cfg, h.Runner.API, h.Runner.Source, h.Store, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = second.HoldLease(ctx, "", 10*time.Second)
	var held *chstore.LeaseHeldError
	if !errors.As(err, &held) || held.Lease.Holder != first.Holder {
		t.Fatalf("second instance: %v, want the lease held by %q", err, first.Holder)
	}
	host, _ := os.Hostname()
	if !strings.Contains(err.Error(), first.Holder) || !strings.Contains(first.Holder, host) ||
		!strings.Contains(first.Holder, fmt.Sprintf("pid=%d", os.Getpid())) || !strings.Contains(err.Error(), "lease until") {
		t.Errorf("error must name host, pid and expiry: %v", err)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	_, l2, err := second.HoldLease(ctx, "", 10*time.Second)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release(ctx)
}

// An instance whose lease was taken over stops: its context ends with the reason.
func TestLeaseLostStopsTheRun(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	ctx := t.Context()
	run, l, err := h.Runner.HoldLease(ctx, "", 3*time.Second) // renewed every second
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	if err := l.Confirm(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.AcquireLease(ctx, h.Cfg.Account, "intruder pid=1", chstore.LeaseOptions{TTL: time.Minute,
		Stale: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the run went on after its lease was taken over")
	}
	if cause := context.Cause(run); !errors.Is(cause, chstore.ErrLeaseLost) {
		t.Fatalf("cause %v, want ErrLeaseLost", cause)
	}
}

// holdOvertaken holds the harness account's lease and lets an intruder's
// claim land within its settle time (taking the lease as stale, as if its
// read had come before our write), so that the claim is lost at its
// confirmation. The lease is released at the end of the test.
func holdOvertaken(t *testing.T, h *pipelinetest.Harness) (context.Context, *pipeline.HeldLease) {
	t.Helper()
	ctx := t.Context()
	run, l, err := h.Runner.HoldLease(ctx, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	if _, err := h.Store.AcquireLease(ctx, h.Cfg.Account, "intruder pid=1", chstore.LeaseOptions{TTL: time.Minute,
		Stale: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	return run, l
}

// A claim overtaken before it is confirmed (a race lost during the settle
// time, which overlaps the start of the work): the run's context ends with
// the holder named, and the Runner writes nothing to the ledger.
func TestLeaseRaceLostBeforeConfirm(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	ctx := t.Context()
	run, l := holdOvertaken(t, h)
	var held *chstore.LeaseHeldError
	if err := l.Confirm(); !errors.As(err, &held) || held.Lease.Holder != "intruder pid=1" {
		t.Fatalf("confirm: %v, want the lease held by the intruder", err)
	}
	<-run.Done()
	if !errors.As(context.Cause(run), &held) {
		t.Fatalf("cause %v, want a LeaseHeldError", context.Cause(run))
	}
	w := pipeline.Window{Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)}
	res := h.Runner.Run(ctx, w) // not run: the lease check itself must stop it
	if res.Err == nil {
		t.Fatal("a window ran under a lease lost before its confirmation")
	}
	recs, err := h.Store.Windows(ctx, h.Cfg.Account, w.Start, w.End)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("the ledger was written under a lost lease: %+v", recs)
	}
}

// A killed process's lease is taken over at once on the same host; a live
// one, or one on another host, is not.
func TestDeadLocalHolder(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	// As this process would name a holder, with the dead pid.
	me := fmt.Sprintf("pid=%d", os.Getpid())
	dead := strings.Replace(pipeline.HolderID(), me, fmt.Sprintf("pid=%d", cmd.Process.Pid), 1)
	for _, c := range []struct {
		holder string
		want   bool
	}{
		{dead, true},
		// The same host name in another pid namespace (containers sharing a
		// hostname): its pid means nothing here, so it is not known dead.
		{dead + "x", false},
		{fmt.Sprintf("%s pid=%d run=x", host, os.Getpid()), false},
		{fmt.Sprintf("%s pid=1 run=x", host), false},
		{fmt.Sprintf("other-host pid=%d run=x", cmd.Process.Pid), false},
		{"garbage", false},
	} {
		if got := pipeline.DeadLocalHolder(c.holder); got != c.want {
			t.Errorf("DeadLocalHolder(%q) = %v, want %v", c.holder, got, c.want)
		}
	}
}

// SIGTERM during a load: with grace the running window finishes and no new
// one starts; without grace the window is cancelled in a state the next
// start resumes. Either way nothing is half-committed for good.
func TestStopDuringLoad(t *testing.T) {
	for _, c := range []struct {
		name  string
		grace time.Duration
	}{{"within grace", 30 * time.Second}, {"grace over", 0}} {
		t.Run(c.name, func(t *testing.T) {
			h := pipelinetest.New(t, pipelinetest.Options{Concurrency: 1})
			from := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
			to := from.Add(24 * time.Hour)
			stop, signal := context.WithCancel(t.Context())
			run, cancel := pipeline.Graceful(stop, c.grace)
			defer cancel()
			h.Runner.Stop = stop.Done()
			var signalled atomic.Bool
			h.Runner.OnSave = func(rec chstore.WindowRecord) {
				// The signal comes while the first window's rows are staged,
				// before they are committed.
				if rec.State == pipeline.StateFetched && signalled.CompareAndSwap(false, true) {
					signal()
				}
			}
			res := h.Runner.Backfill(run, from, to)
			if !signalled.Load() {
				t.Fatal("no window reached fetched")
			}
			first := res[0]
			if c.grace > 0 {
				if first.Err != nil || first.State != pipeline.StateDone {
					t.Errorf("the running window did not finish within grace: %s %v", first.State, first.Err)
				}
			} else if first.Err == nil || first.State == pipeline.StateDone {
				t.Errorf("with no grace the window should have been cancelled: %s %v", first.State, first.Err)
			}
			for _, r := range res[1:] {
				if r.State != pipeline.StateDone && r.ExportID != 0 {
					t.Errorf("window %s started after the stop (export %d)", r.Window, r.ExportID)
				}
			}
			got := h.Count(fmt.Sprintf("SELECT count() FROM {db}.email_responses WHERE event_time >= %d", first.Window.End.Unix()))
			if got != 0 {
				t.Errorf("%d rows of windows after the stop are in the table", got)
			}
			if c.grace > 0 {
				h.AssertWarehouse(first.Window.Start, first.Window.End)
			}
			// The next start resumes and ends with exactly the simulator's rows.
			h.Runner.Stop, h.Runner.OnSave = nil, nil
			h.Backfill(from, to)
			h.AssertWarehouse(from, to)
		})
	}
}

// nameless answers "done" without a file name to the first blank polls.
type nameless struct {
	pipeline.API
	blank int32
	polls atomic.Int32
}

func (a *nameless) WaitDone(ctx context.Context, id int64, o emarsys.WaitOptions) (emarsys.ExportStatus, error) {
	st, err := a.API.WaitDone(ctx, id, o)
	if a.polls.Add(1) <= a.blank {
		st.FileName = ""
	}
	return st, err
}

// An export "done" without a file name is polled again, not failed at once;
// if it never names a file the window fails after its attempts.
func TestDoneWithoutFileName(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Window: time.Hour})
	from := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	api := &nameless{API: h.Runner.API, blank: 1}
	h.Runner.API = api
	h.Backfill(from, from.Add(time.Hour))
	h.AssertWarehouse(from, from.Add(time.Hour))
	if n := api.polls.Load(); n != 2 {
		t.Errorf("%d waits, want 2 (the nameless reply, then the named one)", n)
	}

	api = &nameless{API: api.API, blank: 100}
	h.Runner.API = api
	res := h.Runner.Run(t.Context(), pipeline.Window{Start: from.Add(time.Hour), End: from.Add(2 * time.Hour)})
	if res.State != pipeline.StateFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "names no file") ||
		api.polls.Load() != int32(h.Cfg.Schedule.Attempts) {
		t.Errorf("never named: %+v after %d waits", res, api.polls.Load())
	}
}
