package pipeline_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// The behaviours of the Emarsys API "in the wild", each against the
// simulator over HTTP with FTP and ClickHouse real: the warehouse must end
// with exactly the simulator's rows, once.

var day = time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)

// exportsOf returns what the simulator knows of every export, oldest first.
func exportsOf(h *pipelinetest.Harness) []sim.ExportInfo {
	var out []sim.ExportInfo
	for _, id := range h.Sim.Exports() {
		e, _ := h.Sim.Export(id)
		out = append(out, e)
	}
	return out
}

func ledger(t *testing.T, h *pipelinetest.Harness, w pipeline.Window) chstore.WindowRecord {
	t.Helper()
	recs, err := h.Store.Windows(t.Context(), "acme", w.Start, w.End)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Start.Equal(w.Start) && r.End.Equal(w.End) {
			return r
		}
	}
	t.Fatalf("no ledger row for %s", w)
	return chstore.WindowRecord{}
}

// OAuth 2.0 (the default): no request carries X-WSSE, and a token that
// expires mid-run is fetched again once, without losing or doubling rows.
func TestOAuthTokenExpiresMidRun(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	if h.Cfg.Emarsys.Auth != "oauth2" || !strings.HasSuffix(h.Cfg.Emarsys.BaseURL, "/api/v3/") {
		t.Fatalf("default auth %q base %q, want oauth2 on v3", h.Cfg.Emarsys.Auth, h.Cfg.Emarsys.BaseURL)
	}
	var expired atomic.Bool
	h.Runner.OnSave = func(rec chstore.WindowRecord) {
		if rec.State == pipeline.StateRequested && expired.CompareAndSwap(false, true) {
			h.Sim.ExpireTokens()
		}
	}
	h.Backfill(day, day.Add(12*time.Hour))
	h.AssertWarehouse(day, day.Add(12*time.Hour))
	wsse, bearer := h.Sim.AuthCalls()
	if wsse != 0 || bearer == 0 {
		t.Errorf("API calls with X-WSSE: %d, with a bearer token: %d; want none and some", wsse, bearer)
	}
	if n := h.API.TokenFetches(); n != 2 {
		t.Errorf("%d tokens fetched, want 2 (the first, and one after the expiry)", n)
	}
	if n := len(h.Sim.Exports()); n != 2 {
		t.Errorf("%d exports for 2 windows", n)
	}
	if strings.Contains(h.Log.String(), pipelinetest.APISecret) {
		t.Error("the client secret is in the log")
	}
}

// auth: wsse speaks v2 with X-WSSE only.
func TestWSSENoBearer(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Config: func(c *config.Config) {
		c.Emarsys.Auth = "wsse"
		c.Emarsys.BaseURL = strings.Replace(c.Emarsys.BaseURL, "/api/v3/", "/api/v2/", 1)
	}})
	h.Backfill(day, day.Add(12*time.Hour))
	h.AssertWarehouse(day, day.Add(12*time.Hour))
	wsse, bearer := h.Sim.AuthCalls()
	if bearer != 0 || wsse == 0 {
		t.Errorf("API calls with a bearer token: %d, with X-WSSE: %d; want none and some", bearer, wsse)
	}
	if h.API.TokenFetches() != 0 {
		t.Error("a WSSE client fetched an OAuth token")
	}
}

// distribution_method local: the file comes from GET export/{id}/data in
// pages (37 rows each here), through the same parse and load as FTP.
func TestLocalDownloadPaged(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{Config: func(c *config.Config) {
		c.Export.DistributionMethod = "local"
		c.Emarsys.PageRows = 37
	}})
	res := h.Backfill(day, day.Add(12*time.Hour))
	h.AssertWarehouse(day, day.Add(12*time.Hour))
	for _, e := range exportsOf(h) {
		if e.Params.DistributionMethod != "local" || e.Params.FTP != nil {
			t.Errorf("export %d: method %q, ftp %v; want local without FTP settings", e.ID, e.Params.DistributionMethod, e.Params.FTP)
		}
		if e.Rows <= 37 {
			t.Fatalf("export %d has %d rows: paging is not exercised", e.ID, e.Rows)
		}
	}
	for _, r := range res {
		if r.Rejected != 0 || r.Loaded != r.Read {
			t.Errorf("window %s: read %d loaded %d rejected %d", r.Window, r.Read, r.Loaded, r.Rejected)
		}
	}
}

// An export that ends in "error" is replaced by a new one; the rows arrive once.
func TestErrorStatusRetriedWithNewExport(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.ErrorNextExports = 1 }})
	w := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
	h.Backfill(w.Start, w.End)
	h.AssertWarehouse(w.Start, w.End)
	ex := exportsOf(h)
	if len(ex) != 2 || ex[0].Status != sim.StatusError || ex[1].Status != sim.StatusDone {
		t.Fatalf("exports: %+v; want one in error, then one done", ex)
	}
	if rec := ledger(t, h, w); rec.State != pipeline.StateDone || rec.Attempts != 2 || rec.ExportID != ex[1].ID {
		t.Errorf("ledger: %+v; want done after 2 attempts with export %d", rec, ex[1].ID)
	}
}

// When every attempt ends in "error", the window is marked failed with the
// reason, the other windows still run, and a later run loads it.
func TestErrorStatusExhaustedMarksFailed(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.ErrorNextExports = 2 },
		Concurrency: 1, Config: func(c *config.Config) { c.Schedule.Attempts = 2 }})
	first := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
	res := h.Runner.Backfill(t.Context(), day, day.Add(12*time.Hour))
	if res[0].State != pipeline.StateFailed || !errors.As(res[0].Err, new(*emarsys.ExportFailedError)) {
		t.Fatalf("first window: %s %v; want failed with the export error", res[0].State, res[0].Err)
	}
	if res[1].State != pipeline.StateDone {
		t.Fatalf("second window: %s %v; want done: a failed window must not stop the others", res[1].State, res[1].Err)
	}
	if rec := ledger(t, h, first); rec.State != pipeline.StateFailed || !strings.Contains(rec.LastError, `ended with status "error"`) {
		t.Errorf("ledger: state %s, last error %q", rec.State, rec.LastError)
	}
	h.Backfill(day, day.Add(12*time.Hour)) // the failed window is tried again
	h.AssertWarehouse(day, day.Add(12*time.Hour))
}

// replyCode 4001: no duplicate is started; the window waits and asks again.
func TestAlreadyRunningWaits(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.ConflictNextStarts = 2 }})
	w := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
	h.Backfill(w.Start, w.End)
	h.AssertWarehouse(w.Start, w.End)
	if n := h.Sim.Conflicts(); n != 2 {
		t.Errorf("%d 4001 replies, want 2", n)
	}
	if n := len(h.Sim.Exports()); n != 1 {
		t.Errorf("%d exports started, want 1", n)
	}
	if rec := ledger(t, h, w); rec.Attempts != 1 {
		t.Errorf("ledger attempts %d: a 4001 must not count as a failed attempt", rec.Attempts)
	}
}

// replyCode 4001 while the ledger knows an export of the window: that
// export is picked up, not a second one started.
func TestAlreadyRunningPicksUpLedgerExport(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.ScheduledDelay = 500 * time.Millisecond }})
	w := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
	ctx := t.Context()
	// An earlier run started the export, then failed before it ended.
	id, err := h.API.StartResponsesExport(ctx, h.Runner.ExportRequest(w))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.SaveWindow(ctx, chstore.WindowRecord{Account: "acme", Start: w.Start, End: w.End,
		State: pipeline.StateFailed, ExportID: id, Attempts: 1, LastError: "crashed"}); err != nil {
		t.Fatal(err)
	}
	r := h.Runner.Run(ctx, w)
	if r.Err != nil || r.State != pipeline.StateDone || r.ExportID != id {
		t.Fatalf("window: %s export %d err %v; want done with export %d", r.State, r.ExportID, r.Err, id)
	}
	h.AssertWarehouse(w.Start, w.End)
	if n := len(h.Sim.Exports()); n != 1 || h.Sim.Conflicts() != 1 {
		t.Errorf("%d exports, %d conflicts; want 1 and 1", n, h.Sim.Conflicts())
	}
}

// An export left in "ready" because the vendor cannot deliver to the FTP
// server is reported as stuck with the likely cause.
func TestStuckInReady(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now: delivery fails
	h := pipelinetest.New(t, pipelinetest.Options{Config: func(c *config.Config) {
		c.FTP.DeliverPort = closed
		c.Emarsys.StuckAfter = 300 * time.Millisecond
		c.Schedule.Attempts = 1
	}})
	w := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
	r := h.Runner.Run(t.Context(), w)
	if r.State != pipeline.StateFailed || !errors.Is(r.Err, emarsys.ErrStuck) {
		t.Fatalf("window: %s %v; want failed, stuck", r.State, r.Err)
	}
	rec := ledger(t, h, w)
	if !strings.Contains(rec.LastError, "cannot reach or log in to the FTP server") {
		t.Errorf("ledger reason %q does not name the likely cause", rec.LastError)
	}
	if strings.Contains(rec.LastError, pipelinetest.FTPPassword) {
		t.Error("the FTP password is in the ledger")
	}
}

// The limiter reads X-RateLimit-* (sent in lower case by the simulator) and
// waits for the reset instead of running into 429.
func TestRateLimitWaitsBeforeItBites(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.RateLimit = 4 },
		Config: func(c *config.Config) { c.Emarsys.PollInitial = 20 * time.Millisecond }})
	h.Backfill(day, day.Add(12*time.Hour))
	h.AssertWarehouse(day, day.Add(12*time.Hour))
	// A slow machine may spread the run's calls thin; a burst surely is not.
	burst(t, h, 6)
	if h.API.Limiter().Waits() == 0 {
		t.Error("the limiter never waited: the test did not reach the limit")
	}
	if n := h.Sim.RateLimited(); n != 0 {
		t.Errorf("%d requests got 429: the limiter let them through", n)
	}
}

// notification_url: the call wakes the waiting window at once. Polling is
// set so slow (first poll delay 20 s) that without the call the window
// could not finish before the 8 s deadline.
func TestNotificationWakesWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		twice bool
		meth  string
	}{{"post once", false, http.MethodPost}, {"get twice", true, http.MethodGet}} {
		t.Run(tc.name, func(t *testing.T) {
			h := pipelinetest.New(t, pipelinetest.Options{
				SimConfig: func(c *sim.Config) { c.NotifyTwice, c.NotifyMethod = tc.twice, tc.meth },
				Config: func(c *config.Config) {
					c.Emarsys.PollInitial, c.Emarsys.PollMax = 20*time.Second, 20*time.Second
				}})
			h.EnableNotify()
			w := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
			ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
			defer cancel()
			r := h.Runner.Run(ctx, w)
			if r.Err != nil || r.State != pipeline.StateDone {
				t.Fatalf("window: %s %v", r.State, r.Err)
			}
			h.AssertWarehouse(w.Start, w.End)
			e, _ := h.Sim.Export(r.ExportID)
			if !strings.Contains(e.Params.NotificationURL, h.NotifyHTTP.URL+"/notify/") || !e.Notified {
				t.Errorf("notification_url %q, notified %v", e.Params.NotificationURL, e.Notified)
			}
			if h.Notify.Calls() < 1 {
				t.Error("the receiver counted no call")
			}
		})
	}
}

// A notification call that never comes only leaves the window to polling.
func TestNotificationDropped(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.DropNotifications = true }})
	h.EnableNotify()
	h.Backfill(day, day.Add(6*time.Hour))
	h.AssertWarehouse(day, day.Add(6*time.Hour))
	if h.Notify.Calls() != 0 {
		t.Errorf("%d calls arrived though the simulator dropped them", h.Notify.Calls())
	}
	for _, e := range exportsOf(h) {
		if e.Params.NotificationURL == "" {
			t.Errorf("export %d was requested without notification_url", e.ID)
		}
	}
}

// Without headers to pace by, the first 429 (replyCode 7003) carries the
// reset time: the client waits for it, then retries; nothing is lost.
func TestRateLimited429WaitsForReset(t *testing.T) {
	// 4 windows at once against 3 calls a second: the limit is reached.
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.RateLimit, c.RateHeadersOn429Only = 3, true },
		Concurrency: 4, Config: func(c *config.Config) { c.Emarsys.PollInitial = 20 * time.Millisecond }})
	h.Backfill(day, day.Add(24*time.Hour))
	h.AssertWarehouse(day, day.Add(24*time.Hour))
	burst(t, h, 5)
	if h.Sim.RateLimited() == 0 {
		t.Error("no request got 429: the test did not reach the limit")
	}
	if n := len(h.Sim.Exports()); n != 4 {
		t.Errorf("%d exports for 4 windows: a 429 on the start call must not start a second export", n)
	}
}

// burst makes n status calls in a row; each must succeed.
func burst(t *testing.T, h *pipelinetest.Harness, n int) {
	t.Helper()
	id := h.Sim.Exports()[0]
	for range n {
		if _, err := h.API.ExportStatus(t.Context(), id); err != nil {
			t.Fatalf("status call in a burst: %v", err)
		}
	}
}

// cutOnce breaks the first download of every file after n bytes.
type cutOnce struct {
	r io.ReadCloser
	n int
}

func (c *cutOnce) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	p = p[:min(len(p), c.n)]
	k, err := c.r.Read(p)
	c.n -= k
	return k, err
}

func (c *cutOnce) Close() error { return c.r.Close() }

// An FTP transfer that breaks mid-file is resumed where it stopped: the
// window needs no second attempt and the rows arrive once.
func TestFTPTransferBreaksHalfway(t *testing.T) {
	var mu sync.Mutex
	retr := map[string]int{}
	h := pipelinetest.New(t, pipelinetest.Options{FTPWrapRead: func(path string, r io.ReadCloser) io.ReadCloser {
		mu.Lock()
		defer mu.Unlock()
		retr[path]++
		if retr[path] == 1 {
			return &cutOnce{r: r, n: 20_000}
		}
		return r
	}})
	w := pipeline.Window{Start: day, End: day.Add(6 * time.Hour)}
	h.Backfill(w.Start, w.End)
	h.AssertWarehouse(w.Start, w.End)
	if rec := ledger(t, h, w); rec.Attempts != 1 || rec.LastError != "" {
		t.Errorf("ledger: attempts %d, last error %q; want the resume inside the first attempt", rec.Attempts, rec.LastError)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retr) != 1 {
		t.Fatalf("downloads: %v", retr)
	}
	for p, n := range retr {
		if n != 2 {
			t.Errorf("%s downloaded %d times, want 2 (the cut one and the resume)", p, n)
		}
	}
}

// WSSE with the local clock 10 minutes behind the API's: reported as clock
// skew with the size of it, not as a bad password.
func TestWSSEClockSkewReported(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{
		SimConfig: func(c *sim.Config) { c.Now = func() time.Time { return time.Now().Add(10 * time.Minute) } },
		Config: func(c *config.Config) {
			c.Emarsys.Auth = "wsse"
			c.Emarsys.BaseURL = strings.Replace(c.Emarsys.BaseURL, "/api/v3/", "/api/v2/", 1)
			c.Schedule.Attempts = 1
		}})
	r := h.Runner.Run(t.Context(), pipeline.Window{Start: day, End: day.Add(6 * time.Hour)})
	if r.State != pipeline.StateFailed || !errors.Is(r.Err, emarsys.ErrClockSkew) {
		t.Fatalf("window: %s %v; want failed with clock skew", r.State, r.Err)
	}
	msg := r.Err.Error()
	if !strings.Contains(msg, "local clock is 600 s behind the API") && !strings.Contains(msg, "local clock is 599 s behind the API") {
		t.Errorf("error %q does not say how far behind the clock is", msg)
	}
	if strings.Contains(msg, "check the API user name and secret") {
		t.Errorf("error %q blames the password", msg)
	}
}

// HTML 503 pages on the status call are retried and never surface as a JSON
// parse error.
func TestHTML5xxRetried(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{SimConfig: func(c *sim.Config) { c.FailNextStatus = 3 }})
	h.Backfill(day, day.Add(6*time.Hour))
	h.AssertWarehouse(day, day.Add(6*time.Hour))
	if strings.Contains(h.Log.String(), "invalid character '<'") {
		t.Error("an HTML page was parsed as JSON")
	}
}

// The ETL reads over explicit FTPS, the server's certificate checked
// against ftp.ca_file; the rows arrive once.
func TestFTPSRead(t *testing.T) {
	tlsConf, caFile := pipelinetest.TestCA(t)
	h := pipelinetest.New(t, pipelinetest.Options{FTPTLS: tlsConf, Config: func(c *config.Config) {
		c.FTP.TLS, c.FTP.CAFile = true, caFile
	}})
	h.Backfill(day, day.Add(6*time.Hour))
	h.AssertWarehouse(day, day.Add(6*time.Hour))
}
