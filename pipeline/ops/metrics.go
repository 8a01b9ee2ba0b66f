package ops

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
)

// Metrics are the pipeline's Prometheus metrics. Labels are bounded: the
// account, a window state, an endpoint pattern, an HTTP status; never an
// export id, a file name, an address or anything secret.
type Metrics struct {
	account string

	windowsFinished *prometheus.CounterVec // result
	rowsRead        prometheus.Counter
	rowsLoaded      prometheus.Counter
	rowsNew         prometheus.Counter
	rowsRejected    prometheus.Counter
	exportWait      prometheus.Histogram
	apiRequests     *prometheus.CounterVec // endpoint, status
	apiSeconds      *prometheus.HistogramVec
	rateLimitWaits  prometheus.Counter
	ftpBytes        prometheus.Counter
	ftpSeconds      prometheus.Histogram
	chInsertSeconds prometheus.Histogram

	mu        sync.Mutex
	requested map[pipeline.Window]time.Time // export requested at, until ready
	fetched   map[pipeline.Window]time.Time // staged at, until loaded
	now       func() time.Time
}

// NewMetrics registers the pipeline metrics of account on reg.
func NewMetrics(reg prometheus.Registerer, account string) *Metrics {
	c := prometheus.Labels{"account": account}
	m := &Metrics{
		account:   account,
		requested: map[pipeline.Window]time.Time{},
		fetched:   map[pipeline.Window]time.Time{},
		now:       time.Now,
		windowsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emarsys_etl_windows_finished_total", ConstLabels: c,
			Help: "Windows this process brought to an end, by result (done or failed)."}, []string{"result"}),
		rowsRead: prometheus.NewCounter(prometheus.CounterOpts{Name: "emarsys_etl_rows_read_total", ConstLabels: c,
			Help: "Data rows read from export files."}),
		rowsLoaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "emarsys_etl_rows_loaded_total", ConstLabels: c,
			Help: "Rows typed and loaded (including rows an overlap had already stored)."}),
		rowsNew: prometheus.NewCounter(prometheus.CounterOpts{Name: "emarsys_etl_rows_new_total", ConstLabels: c,
			Help: "Rows actually added to email_responses."}),
		rowsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "emarsys_etl_rows_rejected_total", ConstLabels: c,
			Help: "Rows rejected by the parser (kept in the rejects table)."}),
		exportWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "emarsys_etl_export_wait_seconds", ConstLabels: c,
			Help:    "Time from starting an export to its file being ready on the FTP server.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 16)}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "emarsys_etl_api_requests_total", ConstLabels: c,
			Help: "Emarsys API requests, by endpoint pattern and HTTP status (\"error\" when no reply came)."}, []string{"endpoint", "status"}),
		apiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "emarsys_etl_api_request_seconds", ConstLabels: c,
			Help: "Emarsys API request duration, by endpoint pattern.", Buckets: prometheus.DefBuckets}, []string{"endpoint"}),
		rateLimitWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "emarsys_etl_api_rate_limit_waits_total", ConstLabels: c,
			Help: "Replies with HTTP 429 (rate limited): each makes the client wait before it retries."}),
		ftpBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "emarsys_etl_ftp_bytes_total", ConstLabels: c,
			Help: "Bytes of export files read from the FTP server."}),
		ftpSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "emarsys_etl_ftp_transfer_seconds", ConstLabels: c,
			Help:    "Time from opening an export file to closing it (transfer, streamed through parser and staging inserts).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}),
		chInsertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "emarsys_etl_clickhouse_insert_seconds", ConstLabels: c,
			Help:    "Time to move a window's staged rows into email_responses (INSERT ... SELECT, after-load hooks).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
	}
	reg.MustRegister(m.windowsFinished, m.rowsRead, m.rowsLoaded, m.rowsNew, m.rowsRejected, m.exportWait,
		m.apiRequests, m.apiSeconds, m.rateLimitWaits, m.ftpBytes, m.ftpSeconds, m.chInsertSeconds)
	return m
}

// Instrument hooks m into a runner: ledger writes and the file source. Call
// before the runner starts; an OnSave already set keeps being called.
func (m *Metrics) Instrument(r *pipeline.Runner) {
	prev := r.OnSave
	r.OnSave = func(rec chstore.WindowRecord) {
		m.observeSave(rec)
		if prev != nil {
			prev(rec)
		}
	}
	if r.Source != nil {
		r.Source = &meteredSource{Source: r.Source, m: m}
	}
}

// observeSave turns ledger transitions into counters and durations.
func (m *Metrics) observeSave(rec chstore.WindowRecord) {
	w := pipeline.Window{Start: rec.Start, End: rec.End}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch rec.State {
	case pipeline.StateRequested:
		m.requested[w] = now
	case pipeline.StateReady:
		if t, ok := m.requested[w]; ok {
			m.exportWait.Observe(now.Sub(t).Seconds())
			delete(m.requested, w)
		}
	case pipeline.StateFetched:
		m.fetched[w] = now
	case pipeline.StateLoaded:
		if t, ok := m.fetched[w]; ok {
			m.chInsertSeconds.Observe(now.Sub(t).Seconds())
			delete(m.fetched, w)
		}
		m.rowsRead.Add(float64(rec.RowsRead))
		m.rowsLoaded.Add(float64(rec.RowsLoaded))
		m.rowsNew.Add(float64(rec.RowsNew))
		m.rowsRejected.Add(float64(rec.RowsRejected))
	case pipeline.StateDone:
		m.windowsFinished.WithLabelValues("done").Inc()
	case pipeline.StateFailed:
		m.windowsFinished.WithLabelValues("failed").Inc()
		delete(m.requested, w)
		delete(m.fetched, w)
	}
}

type meteredSource struct {
	pipeline.Source
	m *Metrics
}

func (s *meteredSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	t0 := s.m.now()
	rc, err := s.Source.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &meteredReader{ReadCloser: rc, m: s.m, t0: t0}, nil
}

type meteredReader struct {
	io.ReadCloser
	m      *Metrics
	t0     time.Time
	closed bool
}

func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.m.ftpBytes.Add(float64(n))
	return n, err
}

func (r *meteredReader) Close() error {
	if !r.closed {
		r.closed = true
		r.m.ftpSeconds.Observe(r.m.now().Sub(r.t0).Seconds())
	}
	return r.ReadCloser.Close()
}

// Transport wraps next (nil: http.DefaultTransport) to count the Emarsys API
// requests by endpoint pattern and status.
func (m *Metrics) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		ep := Endpoint(req.Method, req.URL.Path)
		t0 := m.now()
		resp, err := next.RoundTrip(req)
		m.apiSeconds.WithLabelValues(ep).Observe(m.now().Sub(t0).Seconds())
		if err != nil {
			m.apiRequests.WithLabelValues(ep, "error").Inc()
			return nil, err
		}
		m.apiRequests.WithLabelValues(ep, strconv.Itoa(resp.StatusCode)).Inc()
		if resp.StatusCode == http.StatusTooManyRequests {
			m.rateLimitWaits.Inc()
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var (
	digitsRe  = regexp.MustCompile(`/[0-9]+(/|$)`)
	versionRe = regexp.MustCompile(`^.*?/api/v[0-9]+/`)
)

// Endpoint reduces a request to a bounded label: the method and the path
// after /api/vN/ with numeric ids replaced, e.g. "GET export/{id}".
func Endpoint(method, path string) string {
	p := versionRe.ReplaceAllString(path, "")
	for digitsRe.MatchString(p) {
		p = digitsRe.ReplaceAllString(p, "/{id}$1")
	}
	p = strings.Trim(p, "/")
	switch {
	case p == "email/getresponses", p == "export/{id}", p == "export/{id}/data", p == "settings", p == "oauth2/token":
	default:
		p = "other" // anything else stays one label value, whatever its path
	}
	return method + " " + p
}
