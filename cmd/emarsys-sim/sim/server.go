package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jlaffaye/ftp"
)

// Export statuses as the status call reports them.
const (
	StatusScheduled  = "scheduled"
	StatusInProgress = "in progress"
	StatusReady      = "ready"
	StatusDone       = "done"
	StatusError      = "error"
)

// Config sets up a Server. Zero durations make an export go straight through.
type Config struct {
	User, Secret string
	Generator    Generator

	// Life cycle: scheduled -> in progress -> ready (file made) -> done (delivered).
	ScheduledDelay, InProgressDelay, ReadyDelay time.Duration
	// FTPRetryInterval is how often a failed delivery is retried (hourly at
	// the vendor); default 1s.
	FTPRetryInterval time.Duration
	// NotifyRetryInterval spaces the 5 retries of a failed notification_url
	// call (a minute at the vendor); default 1s.
	NotifyRetryInterval time.Duration
	Now                 func() time.Time // default time.Now
	Logger              *slog.Logger     // default slog.Default()

	// Fault hooks; they can also be switched at run time with the setters.
	BrokenRowsPerExport int  // malformed records added to every export file
	FailNextStatus      int  // answer the next N status calls with an HTML 503
	ErrorExports        bool // exports end in "error" instead of "ready"
	ErrorNextExports    int  // the next N exports started end in "error"
	ConflictNextStarts  int  // answer the next N start calls with 4001, as if a twin ran
	// TokenTTL is the life of an OAuth access token; default 1h.
	TokenTTL time.Duration
	// RateLimit, when > 0, allows that many API calls per RateWindow
	// (default 1s), announced in X-RateLimit-* headers; beyond it 429/7003.
	RateLimit  int
	RateWindow time.Duration
	// RateHeadersOn429Only: the X-RateLimit-* headers come only with the
	// 429, so a client cannot pace itself and must honour the reset.
	RateHeadersOn429Only bool
	// DropNotifications: the notification_url is never called.
	DropNotifications bool
	// NotifyTwice: a successful notification call is made a second time.
	NotifyTwice bool
	// NotifyMethod is the method of the notification call; default POST.
	NotifyMethod string
}

// ExportInfo is what the server knows of one export.
type ExportInfo struct {
	ID       int64
	Params   Params
	Created  time.Time // UTC
	Status   string
	FileName string // empty until the file is made
	// Responses are exactly the good rows written, in file order.
	Responses []Response
	Rows      int // len(Responses)
	// Broken are the malformed records injected, by record number.
	Broken         []BrokenRow
	UploadAttempts int
	LastUploadErr  string
	Notified       bool // the notification_url call succeeded
	NotifyCalls    int  // successful notification calls
}

type export struct {
	ExportInfo
	key string // settings, for the "same export running" rule
	csv []byte // file contents, kept for local download and retries
}

// Server is the simulated Emarsys API. Create it with New; Close stops its
// delivery goroutines.
type Server struct {
	cfg      Config
	requests atomic.Int64
	nonces   nonces
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu             sync.Mutex
	nextID         int64
	exports        map[int64]*export
	tokens         map[string]time.Time
	failNextStatus int
	errorExports   bool
	errorNext      int
	conflictNext   int
	brokenRows     int

	// Rate limit period and use.
	ratePeriod time.Time
	rateUsed   int

	wsseCalls, bearerCalls, rateLimited, conflicts atomic.Int64
}

// New returns a server; it serves nothing until Handler is mounted.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FTPRetryInterval <= 0 {
		cfg.FTPRetryInterval = time.Second
	}
	if cfg.NotifyRetryInterval <= 0 {
		cfg.NotifyRetryInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Second
	}
	if cfg.NotifyMethod == "" {
		cfg.NotifyMethod = http.MethodPost
	}
	cfg.Generator = cfg.Generator.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, ctx: ctx, cancel: cancel,
		nextID:         2140,
		exports:        map[int64]*export{},
		tokens:         map[string]time.Time{},
		failNextStatus: cfg.FailNextStatus,
		errorExports:   cfg.ErrorExports,
		errorNext:      cfg.ErrorNextExports,
		conflictNext:   cfg.ConflictNextStarts,
		brokenRows:     cfg.BrokenRowsPerExport,
	}
}

// Close stops delivery and notification goroutines and waits for them.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// Requests is the number of HTTP requests served so far (all paths).
func (s *Server) Requests() int64 { return s.requests.Load() }

// SetFailNextStatus makes the next n status calls answer HTTP 503 with HTML.
func (s *Server) SetFailNextStatus(n int) {
	s.mu.Lock()
	s.failNextStatus = n
	s.mu.Unlock()
}

// SetErrorExports makes exports started from now on end in "error".
func (s *Server) SetErrorExports(on bool) {
	s.mu.Lock()
	s.errorExports = on
	s.mu.Unlock()
}

// SetErrorNextExports makes the next n exports started end in "error".
func (s *Server) SetErrorNextExports(n int) {
	s.mu.Lock()
	s.errorNext = n
	s.mu.Unlock()
}

// SetConflictNextStarts answers the next n start calls with 4001.
func (s *Server) SetConflictNextStarts(n int) {
	s.mu.Lock()
	s.conflictNext = n
	s.mu.Unlock()
}

// ExpireTokens ends the life of every OAuth token issued so far.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	for k := range s.tokens {
		s.tokens[k] = time.Time{}
	}
	s.mu.Unlock()
}

// AuthCalls counts API calls that carried an X-WSSE header and those that
// carried a bearer token.
func (s *Server) AuthCalls() (wsse, bearer int64) { return s.wsseCalls.Load(), s.bearerCalls.Load() }

// RateLimited is how many calls were refused with 429.
func (s *Server) RateLimited() int64 { return s.rateLimited.Load() }

// Conflicts is how many start calls were answered 4001.
func (s *Server) Conflicts() int64 { return s.conflicts.Load() }

// SetBrokenRowsPerExport sets how many malformed records later exports get.
func (s *Server) SetBrokenRowsPerExport(n int) {
	s.mu.Lock()
	s.brokenRows = n
	s.mu.Unlock()
}

// Export returns a copy of what the server knows of export id.
func (s *Server) Export(id int64) (ExportInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.exports[id]
	if !ok {
		return ExportInfo{}, false
	}
	return e.ExportInfo, true
}

// Exports lists the ids of all exports, oldest first.
func (s *Server) Exports() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []int64
	for id := int64(2140); id < s.nextID; id++ {
		ids = append(ids, id)
	}
	return ids
}

// Handler serves the API under /api/v2/ (WSSE) and /api/v3/ (bearer token
// from POST /oauth2/token), plus /sim/ helpers for demos.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, v := range []string{"v2", "v3"} {
		mux.Handle("POST /api/"+v+"/email/getresponses", s.auth(v, s.handleStart))
		mux.Handle("GET /api/"+v+"/export/{id}", s.auth(v, s.handleStatus))
		mux.Handle("GET /api/"+v+"/export/{id}/data", s.auth(v, s.handleData))
	}
	mux.HandleFunc("POST /oauth2/token", s.handleToken)
	mux.HandleFunc("GET /sim/responses", s.handleSimResponses)
	mux.HandleFunc("GET /sim/healthz", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, 0, "OK", nil)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		w.Header().Set("Date", s.cfg.Now().UTC().Format(http.TimeFormat))
		mux.ServeHTTP(w, r)
	})
}

func reply(w http.ResponseWriter, status, code int, text string, data any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		ReplyCode int    `json:"replyCode"`
		ReplyText string `json:"replyText"`
		Data      any    `json:"data"`
	}{code, text, data})
}

func (s *Server) auth(version string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.cfg.Now()
		if r.Header.Get("X-WSSE") != "" {
			s.wsseCalls.Add(1)
		}
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			s.bearerCalls.Add(1)
		}
		if !s.rateLimit(w, now) {
			return
		}
		if version == "v3" {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			s.mu.Lock()
			exp, known := s.tokens[tok]
			s.mu.Unlock()
			if !ok || !known || now.After(exp) {
				reply(w, http.StatusUnauthorized, 1, "Unauthorized: invalid or expired access token", nil)
				return
			}
		} else if err := checkWSSE(r.Header.Get("X-WSSE"), s.cfg.User, s.cfg.Secret, now, &s.nonces); err != nil {
			reply(w, http.StatusUnauthorized, 1, err.Error(), nil)
			return
		}
		h(w, r)
	})
}

// rateLimit counts the call against the period's budget and sets the
// X-RateLimit-* headers; false means it answered 429.
func (s *Server) rateLimit(w http.ResponseWriter, now time.Time) bool {
	if s.cfg.RateLimit <= 0 {
		return true
	}
	s.mu.Lock()
	if !now.Before(s.ratePeriod) {
		// Periods end on whole seconds, as the Unix-second reset header says.
		s.ratePeriod = now.Truncate(time.Second).Add(s.cfg.RateWindow)
		s.rateUsed = 0
	}
	s.rateUsed++
	left := s.cfg.RateLimit - s.rateUsed
	reset := s.ratePeriod
	s.mu.Unlock()
	if left >= 0 && s.cfg.RateHeadersOn429Only {
		return true
	}
	// Lower-case names on purpose: clients must match them in any case.
	w.Header()["x-ratelimit-limit"] = []string{strconv.Itoa(s.cfg.RateLimit)}
	w.Header()["x-ratelimit-remaining"] = []string{strconv.Itoa(max(left, 0))}
	w.Header()["x-ratelimit-reset"] = []string{strconv.FormatInt(reset.Unix(), 10)}
	if left < 0 {
		s.rateLimited.Add(1)
		reply(w, http.StatusTooManyRequests, 7003, "Too many requests", nil)
		return false
	}
	return true
}

// handleToken is the OAuth 2.0 client-credentials grant: client id and
// secret are the WSSE user and secret.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if r.PostFormValue("grant_type") != "client_credentials" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"unsupported_grant_type"}`)
		return
	}
	if id != s.cfg.User || secret != s.cfg.Secret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = s.cfg.Now().Add(s.cfg.TokenTTL)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(s.cfg.TokenTTL / time.Second)})
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		reply(w, http.StatusBadRequest, 10001, "Invalid JSON in request body", nil)
		return
	}
	p, rerr := parseParams(body, s.cfg.Generator.Loc)
	if rerr != nil {
		reply(w, rerr.status, rerr.code, rerr.text, nil)
		return
	}
	key := settingsKey(p)
	s.mu.Lock()
	if s.conflictNext > 0 {
		s.conflictNext--
		s.mu.Unlock()
		s.conflicts.Add(1)
		reply(w, http.StatusBadRequest, 4001, "An export with the same setting is currently running. It is not possible to run the same export more than once simultaneously.", nil)
		return
	}
	for _, e := range s.exports {
		if e.key == key && (e.Status == StatusScheduled || e.Status == StatusInProgress) {
			s.mu.Unlock()
			s.conflicts.Add(1)
			reply(w, http.StatusBadRequest, 4001, "An export with the same setting is currently running. It is not possible to run the same export more than once simultaneously.", nil)
			return
		}
	}
	id := s.nextID
	s.nextID++
	e := &export{key: key, ExportInfo: ExportInfo{ID: id, Params: p, Created: s.cfg.Now().UTC().Truncate(time.Second), Status: StatusScheduled}}
	s.exports[id] = e
	fail, broken := s.errorExports, s.brokenRows
	if s.errorNext > 0 {
		s.errorNext--
		fail = true
	}
	s.mu.Unlock()

	s.cfg.Logger.Info("export started", "id", id, "from", p.From, "to", p.To, "method", p.DistributionMethod)
	s.wg.Add(1)
	go s.run(id, fail, broken)
	reply(w, http.StatusOK, 0, "OK", map[string]int64{"id": id})
}

// settingsKey identifies an export's settings for the 4001 rule.
// The notification URL is left out: it differs per request.
func settingsKey(p Params) string {
	p.NotificationURL = ""
	b, _ := json.Marshal(p)
	return string(b)
}

// run drives one export through its life cycle.
func (s *Server) run(id int64, fail bool, broken int) {
	defer s.wg.Done()
	if !s.sleep(s.cfg.ScheduledDelay) {
		return
	}
	s.setStatus(id, StatusInProgress)
	if !s.sleep(s.cfg.InProgressDelay) {
		return
	}
	if fail {
		s.setStatus(id, StatusError)
		s.notify(id)
		return
	}

	s.mu.Lock()
	e := s.exports[id]
	p := e.Params
	s.mu.Unlock()
	g := s.cfg.Generator
	// Both ends are inclusive at second precision.
	rs := g.Filter(g.Responses(p.From, p.To.Add(time.Second)), p.Sources)
	if p.EmailID != 0 {
		kept := rs[:0:0]
		for _, r := range rs {
			if r.CampaignID == p.EmailID {
				kept = append(kept, r)
			}
		}
		rs = kept
	}
	o := s.csvOptions(p)
	o.Broken = MakeBroken(rs, o, broken)
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rs, o); err != nil {
		s.cfg.Logger.Error("export csv", "id", id, "err", err)
		s.setStatus(id, StatusError)
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	e.Responses, e.Rows, e.Broken, e.csv = rs, len(rs), o.Broken, buf.Bytes()
	e.FileName = fmt.Sprintf("responses_%d_%s.csv", id, now.In(g.Loc).Format("20060102150405"))
	e.Status = StatusReady
	s.mu.Unlock()
	s.cfg.Logger.Info("export file made", "id", id, "rows", len(rs), "broken", len(o.Broken))

	if !s.sleep(s.cfg.ReadyDelay) {
		return
	}
	if p.DistributionMethod == "local" {
		s.setStatus(id, StatusDone)
		s.notify(id)
		return
	}
	for {
		err := s.upload(p.FTP, e.FileName, buf.Bytes())
		s.mu.Lock()
		e.UploadAttempts++
		if err != nil {
			e.LastUploadErr = err.Error()
		} else {
			e.LastUploadErr = ""
			e.Status = StatusDone
		}
		s.mu.Unlock()
		if err == nil {
			s.cfg.Logger.Info("export delivered", "id", id, "host", p.FTP.Host, "file", path.Join(p.FTP.Folder, e.FileName))
			s.notify(id)
			return
		}
		// A failed delivery leaves the export in "ready": the documented stuck case.
		s.cfg.Logger.Warn("export delivery failed, will retry", "id", id, "host", p.FTP.Host, "err", err)
		if !s.sleep(s.cfg.FTPRetryInterval) {
			return
		}
	}
}

func (s *Server) csvOptions(p Params) CSVOptions {
	return CSVOptions{
		ContactFields:  p.ContactFields,
		AnalysisFields: p.AnalysisFields,
		Delimiter:      p.Delimiter,
		Header:         p.Header,
		Language:       p.Language,
		Loc:            s.cfg.Generator.Loc,
	}
}

// sleep waits d unless the server closes; it reports whether to go on.
func (s *Server) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Server) setStatus(id int64, st string) {
	s.mu.Lock()
	s.exports[id].Status = st
	s.mu.Unlock()
}

// upload stores the file into the customer's folder. Errors never carry the password.
func (s *Server) upload(f *FTPSettings, name string, data []byte) error {
	addr := net.JoinHostPort(f.Host, strconv.Itoa(f.Port))
	c, err := ftp.Dial(addr, ftp.DialWithTimeout(5*time.Second), ftp.DialWithContext(s.ctx))
	if err != nil {
		return fmt.Errorf("ftp connect %s: %w", addr, err)
	}
	defer func() { _ = c.Quit() }()
	if err := c.Login(f.Username, f.Password); err != nil {
		return fmt.Errorf("ftp login to %s as %s: %w", addr, f.Username, err)
	}
	if f.Folder != "" {
		// Friendlier than the vendor: make the folder if it is missing, so a
		// fresh demo FTP root works. Errors surface on STOR.
		dir := ""
		for _, part := range strings.Split(strings.Trim(f.Folder, "/"), "/") {
			dir = path.Join(dir, part)
			if strings.HasPrefix(f.Folder, "/") {
				_ = c.MakeDir("/" + dir)
			} else {
				_ = c.MakeDir(dir)
			}
		}
	}
	dst := path.Join(f.Folder, name)
	if err := c.Stor(dst, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("ftp store %s on %s: %w", dst, addr, err)
	}
	return nil
}

// statusData is the data of the status call and the notification payload.
func (s *Server) statusData(e *export) map[string]any {
	d := map[string]any{
		"id":        strconv.FormatInt(e.ID, 10),
		"created":   e.Created.In(s.cfg.Generator.Loc).Format(TimeLayout),
		"status":    e.Status,
		"type":      "responses",
		"file_name": nil,
		"ftp_host":  nil,
		"ftp_dir":   nil,
	}
	if e.FileName != "" {
		d["file_name"] = e.FileName
	}
	if f := e.Params.FTP; f != nil {
		d["ftp_host"] = f.Host
		d["ftp_dir"] = f.Folder
	}
	return d
}

func (s *Server) lookup(r *http.Request) (*export, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, false
	}
	e, ok := s.exports[id]
	return e, ok
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.failNextStatus > 0 {
		s.failNextStatus--
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>Service Temporarily Unavailable</h1></body></html>\n")
		return
	}
	e, ok := s.lookup(r)
	var d map[string]any
	if ok {
		d = s.statusData(e)
	}
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusBadRequest, 10001, "Invalid export ID", nil)
		return
	}
	reply(w, http.StatusOK, 0, "OK", d)
}

// handleData serves a local export's CSV by rows: offset and limit count data
// records; the header, when asked for, comes with offset 0 only.
func (s *Server) handleData(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	e, ok := s.lookup(r)
	var info ExportInfo
	if ok {
		info = e.ExportInfo
	}
	s.mu.Unlock()
	switch {
	case !ok:
		reply(w, http.StatusBadRequest, 10001, "Invalid export ID", nil)
		return
	case info.Params.DistributionMethod != "local":
		reply(w, http.StatusNotFound, 4004, "Export is not a local export", nil)
		return
	case info.Status != StatusDone:
		reply(w, http.StatusNotFound, 4005, "Export is still in progress", nil)
		return
	}
	q := r.URL.Query()
	offset, err1 := strconv.Atoi(q.Get("offset"))
	limit, err2 := strconv.Atoi(q.Get("limit"))
	if q.Get("offset") == "" {
		offset, err1 = 0, nil
	}
	if q.Get("limit") == "" {
		limit, err2 = 1_000_000, nil
	}
	if err1 != nil || err2 != nil || offset < 0 || limit <= 0 {
		reply(w, http.StatusBadRequest, 10001, "Invalid value for offset or limit", nil)
		return
	}
	o := s.csvOptions(info.Params)
	o.Header = o.Header && offset == 0
	// Records of the file, broken ones included, cut to the page.
	rs, broken := info.Responses, info.Broken
	var page []Response
	var pageBroken []BrokenRow
	rec, bi, ri := 0, 0, 0
	for rec < offset+limit && (ri < len(rs) || bi < len(broken)) {
		rec++
		if bi < len(broken) && broken[bi].Record == rec {
			if rec > offset {
				b := broken[bi]
				b.Record = len(page) + len(pageBroken) + 1 // renumbered within the page
				pageBroken = append(pageBroken, b)
			}
			bi++
			continue
		}
		if rec > offset {
			page = append(page, rs[ri])
		}
		ri++
	}
	o.Broken = pageBroken
	w.Header().Set("Content-Type", "text/csv;charset=UTF-8")
	_ = WriteCSV(w, page, o)
}

// notify calls the export's notification_url with the status payload,
// retrying 5 times; it runs in the export's goroutine.
func (s *Server) notify(id int64) {
	s.mu.Lock()
	e := s.exports[id]
	url := e.Params.NotificationURL
	payload := map[string]any{"replyCode": 0, "replyText": "OK", "data": s.statusData(e)}
	s.mu.Unlock()
	if url == "" || s.cfg.DropNotifications {
		return
	}
	body, _ := json.Marshal(payload)
	calls := 1
	if s.cfg.NotifyTwice {
		calls = 2
	}
	for attempt := 0; attempt < 6; attempt++ {
		if attempt > 0 && !s.sleep(s.cfg.NotifyRetryInterval) {
			return
		}
		var rd io.Reader
		if s.cfg.NotifyMethod != http.MethodGet {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(s.ctx, s.cfg.NotifyMethod, url, rd)
		if err != nil {
			return
		}
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode < 300 {
				s.mu.Lock()
				e.Notified = true
				e.NotifyCalls++
				s.mu.Unlock()
				if calls--; calls == 0 {
					return
				}
				attempt = -1 // the duplicate is a fresh call, with its own retries
			}
		}
	}
}

// handleSimResponses tells a demo what the generator holds for [from, to).
func (s *Server) handleSimResponses(w http.ResponseWriter, r *http.Request) {
	from, err1 := time.Parse(time.RFC3339, r.URL.Query().Get("from"))
	to, err2 := time.Parse(time.RFC3339, r.URL.Query().Get("to"))
	if err1 != nil || err2 != nil || to.Before(from) {
		reply(w, http.StatusBadRequest, 10001, "from and to must be RFC 3339 times, from <= to", nil)
		return
	}
	bySource, n := s.cfg.Generator.Count(from, to)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"from": from.UTC(), "to": to.UTC(), "count": n, "sources": bySource,
	})
}
