// Package pipelinetest runs the real pipeline in tests: the Emarsys simulator
// over HTTP, an embedded FTP server, and a fresh database on the real
// ClickHouse at CLICKHOUSE_ADDR. The simulator is the oracle: Expected gives
// the rows it produced, Warehouse the rows that arrived, in the same form.
package pipelinetest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "time/tzdata" // tests must not depend on the machine's zoneinfo

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/notify"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Secrets the harness uses; tests assert none of them leaks.
const (
	APIUser     = "test_api"
	APISecret   = "api-secret-Zq81"
	FTPUser     = "emarsys"
	FTPPassword = "ftp-password-Kx72"
)

// Addr is where the tests find ClickHouse.
func Addr() string {
	if a := os.Getenv("CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:9000"
}

// RequireClickHouse skips when no server listens, unless CLICKHOUSE_REQUIRED=1 (make test, CI).
func RequireClickHouse(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", Addr(), 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CLICKHOUSE_REQUIRED") == "1" {
		t.Fatalf("ClickHouse at %s is unreachable and CLICKHOUSE_REQUIRED=1: %v", Addr(), err)
	}
	t.Skipf("ClickHouse at %s is unreachable (%v): set CLICKHOUSE_ADDR to run integration tests", Addr(), err)
}

// Options shape a harness; the zero value works.
type Options struct {
	Generator      sim.Generator // default: seed 7, 120 events per hour
	ContactFields  []int         // default 1, 2, 3, 4, 11
	AnalysisFields []int         // default all ten
	Sources        []string      // default all eight
	Window         time.Duration // default 6h
	Overlap        time.Duration
	Concurrency    int // default 2
	SimConfig      func(*sim.Config)
	Config         func(*config.Config) // last word on the config before the runner is built
	// FTPWrapRead wraps every download the embedded FTP server serves (faults).
	FTPWrapRead func(path string, r io.ReadCloser) io.ReadCloser
	// FTPTLS makes the embedded FTP server offer explicit FTPS (see TestCA).
	FTPTLS *tls.Config
	// ClickHouseAddr overrides CLICKHOUSE_ADDR (a server of a test cluster).
	ClickHouseAddr string
	// Cluster sets clickhouse.cluster (cluster mode) for the run.
	Cluster string
}

// Harness is one running pipeline.
type Harness struct {
	T      testing.TB
	Gen    sim.Generator
	Sim    *sim.Server
	HTTP   *httptest.Server
	FTP    *ftpd.Server
	FTPDir string
	DB     string
	Cfg    *config.Config
	Store  *chstore.Store
	Runner *pipeline.Runner
	API    *emarsys.Client
	// Notify and NotifyHTTP receive notification_url calls once EnableNotify ran.
	Notify     *notify.Registry
	NotifyHTTP *httptest.Server
	Conn       driver.Conn // a plain connection for assertions
	Log        *LogBuffer
}

// New starts everything and returns a harness whose runner is ready.
func New(t testing.TB, o Options) *Harness {
	t.Helper()
	addr := o.ClickHouseAddr
	if addr == "" {
		RequireClickHouse(t)
		addr = Addr()
	}
	h := &Harness{T: t, Log: &LogBuffer{}}
	if o.Generator.EventsPerHour == 0 {
		o.Generator.EventsPerHour = 120
	}
	if o.Generator.Seed == 0 {
		o.Generator.Seed = 7
	}
	if o.Generator.Loc == nil {
		o.Generator.Loc, _ = time.LoadLocation("Europe/Vienna")
	}
	h.Gen = o.Generator
	if o.ContactFields == nil {
		o.ContactFields = []int{1, 2, 3, 4, 11}
	}
	if o.AnalysisFields == nil {
		o.AnalysisFields = schema.AnalysisFieldIDs()
	}
	if o.Sources == nil {
		o.Sources = []string{"trackable_links", "mail_open", "unsubscribe", "complaint",
			"registration_forms", "tell_a_friend", "contact_us", "change_profile"}
	}
	if o.Window == 0 {
		o.Window = 6 * time.Hour
	}
	if o.Concurrency == 0 {
		o.Concurrency = 2
	}

	h.FTPDir = t.TempDir()
	fs, err := ftpd.Start(ftpd.Options{Root: h.FTPDir, User: FTPUser, Password: FTPPassword, WrapRead: o.FTPWrapRead, TLSConfig: o.FTPTLS})
	if err != nil {
		t.Fatalf("start FTP server: %v", err)
	}
	h.FTP = fs
	t.Cleanup(func() { fs.Close() })

	sc := sim.Config{User: APIUser, Secret: APISecret, Generator: h.Gen,
		ScheduledDelay: 5 * time.Millisecond, InProgressDelay: 10 * time.Millisecond, ReadyDelay: 5 * time.Millisecond,
		FTPRetryInterval: 100 * time.Millisecond, NotifyRetryInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)}
	if o.SimConfig != nil {
		o.SimConfig(&sc)
	}
	h.Sim = sim.New(sc)
	h.HTTP = httptest.NewServer(h.Sim.Handler())
	t.Cleanup(func() { h.HTTP.Close(); h.Sim.Close() })

	var b [5]byte
	rand.Read(b[:])
	h.DB = "etltest_" + hex.EncodeToString(b[:])

	yaml := fmt.Sprintf(`
account: acme
timezone: %s
emarsys: {base_url: "%s/api/v2/", user: %s, secret: "${API_SECRET}", poll_initial: 10ms, poll_max: 100ms, export_timeout: 1m, stuck_after: 30s}
export:
  contact_fields: [%s]
  analysis_fields: [%s]
  sources: [%s]
ftp: {host: %s, port: %d, user: %s, password: "${FTP_PASSWORD}", folder: exports, timeout: 10s}
clickhouse: {addr: "%s", database: %s}
schedule: {window: %s, overlap: %s, lag: 0s, concurrency: %d, attempts: 3}
`, h.Gen.Loc.String(), h.HTTP.URL, APIUser, ints(o.ContactFields), ints(o.AnalysisFields), strings.Join(o.Sources, ", "),
		fs.Host(), fs.Port(), FTPUser, addr, h.DB, o.Window, o.Overlap, o.Concurrency)
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) {
		return map[string]string{"API_SECRET": APISecret, "FTP_PASSWORD": FTPPassword}[k], true
	})
	if err != nil {
		t.Fatalf("harness config: %v", err)
	}
	cfg.ClickHouse.Cluster = o.Cluster
	if o.Config != nil {
		o.Config(cfg)
	}
	h.Cfg = cfg

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := chstore.Open(ctx, chstore.Config{Addr: addr, Database: h.DB, BatchRows: cfg.ClickHouse.BatchRows, Cluster: cfg.ClickHouse.Cluster})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h.Store = store
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	h.Conn = conn
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+h.DB+"`"+schema.OnCluster(cfg.ClickHouse.Cluster))
		conn.Close()
		store.Close()
	})
	h.Rebuild()
	return h
}

// Rebuild migrates and wires a fresh runner from h.Cfg (after a test changed it).
func (h *Harness) Rebuild() {
	t := h.T
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	contact, err := h.Cfg.Export.ContactSchema()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Migrate(ctx, contact); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// Wired as main.go wires it (pipeline.NewAPIClient, NewSource), with fast retries.
	api, err := pipeline.NewAPIClient(h.Cfg, nil, nil, func(c *emarsys.Config) {
		c.RetryBase, c.RetryMax = 10*time.Millisecond, 200*time.Millisecond
		c.RateLimitMaxWait = 5 * time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	h.API = api
	src, err := pipeline.NewSource(h.Cfg, api)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRunner(h.Cfg, api, src, h.Store, slog.New(slog.NewJSONHandler(h.Log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	r.RetryBase = 20 * time.Millisecond
	r.Notify = h.Notify
	r.AfterLoad = append(r.AfterLoad, pipeline.RefreshAggregates(h.Store, h.Cfg.Account)) // as main.go wires it
	h.Runner = r
}

// EnableNotify starts the notification_url receiver, points
// notify.public_url at it and rewires the runner.
func (h *Harness) EnableNotify() {
	h.T.Helper()
	h.Notify = notify.NewRegistry(nil)
	mux := http.NewServeMux()
	mux.Handle(notify.PathPrefix, h.Notify.Handler())
	h.NotifyHTTP = httptest.NewServer(mux)
	h.T.Cleanup(h.NotifyHTTP.Close)
	h.Cfg.Notify.PublicURL = h.NotifyHTTP.URL
	h.Rebuild()
}

// Backfill runs [from, to) and fails the test if a window did not end done.
func (h *Harness) Backfill(from, to time.Time) []pipeline.Result {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res := h.Runner.Backfill(ctx, from, to)
	for _, r := range res {
		if r.Err != nil || r.State != pipeline.StateDone {
			h.T.Fatalf("window %s ended %s: %v", r.Window, r.State, r.Err)
		}
	}
	return res
}

// Expected is what the simulator generated for [from, to) and the configured
// sources, in the canonical row form of Row.
func (h *Harness) Expected(from, to time.Time) []string {
	rs := h.Gen.Filter(h.Gen.Responses(from, to), h.Cfg.Export.Sources)
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, h.expectedRow(r))
	}
	sort.Strings(out)
	return out
}

func (h *Harness) expectedRow(r sim.Response) string {
	f := []string{strconv.FormatUint(r.UserID, 10), r.Source, r.Time.UTC().Format(time.DateTime)}
	for _, id := range h.Cfg.Export.ContactFields {
		f = append(f, r.ContactValue(id))
	}
	an := map[int]string{
		1: r.CampaignTitle, 2: r.SectionHeader, 3: r.SectionGroup, 4: r.LinkTitle, 5: r.URL,
		12: strconv.FormatUint(r.CampaignID, 10), 13: r.VersionName, 14: r.CampaignCategory, 15: r.LinkCategory,
	}
	for _, id := range h.Cfg.Export.AnalysisFields {
		if id != schema.AnalysisTime {
			f = append(f, an[id])
		}
	}
	// encoding/csv reads a quoted CRLF as LF, as any RFC 4180 reader may.
	return strings.ReplaceAll(strings.Join(f, "\t"), "\r\n", "\n")
}

// Warehouse reads the account's rows with event_time in [from, to) in the form of Expected.
func (h *Harness) Warehouse(from, to time.Time) []string {
	h.T.Helper()
	return h.WarehouseOf("acme", from, to)
}

// WarehouseOf is Warehouse for the rows of any account (several accounts
// may load into the harness's database), in the form of Expected.
func (h *Harness) WarehouseOf(account string, from, to time.Time) []string {
	h.T.Helper()
	cols := []string{"toString(user_id)", "source_raw", "toString(event_time)"}
	custom, _ := h.Cfg.Export.Custom()
	for _, id := range h.Cfg.Export.ContactFields {
		f, err := schema.ResolveContactField(id, custom)
		if err != nil {
			h.T.Fatal(err)
		}
		cols = append(cols, "ifNull(toString(`"+f.Column+"`), '')")
	}
	for _, id := range h.Cfg.Export.AnalysisFields {
		if id == schema.AnalysisTime {
			continue
		}
		f, _ := schema.AnalysisField(id)
		cols = append(cols, "ifNull(toString(`"+f.Column+"`), '')")
	}
	q := fmt.Sprintf("SELECT %s FROM `%s`.email_responses WHERE account = '%s' AND event_time >= %d AND event_time < %d",
		strings.Join(cols, ", "), h.DB, strings.ReplaceAll(account, "'", ""), from.Unix(), to.Unix())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := h.Conn.Query(ctx, q)
	if err != nil {
		h.T.Fatalf("read warehouse: %v", err)
	}
	defer rows.Close()
	var out []string
	vals := make([]string, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			h.T.Fatal(err)
		}
		out = append(out, strings.ReplaceAll(strings.Join(vals, "\t"), "\r\n", "\n"))
	}
	sort.Strings(out)
	return out
}

// AssertWarehouse fails unless the warehouse holds exactly the simulator's rows for [from, to).
func (h *Harness) AssertWarehouse(from, to time.Time) int {
	h.T.Helper()
	want, got := h.Expected(from, to), h.Warehouse(from, to)
	if len(want) == 0 {
		h.T.Fatalf("the simulator produced no rows for %s-%s: the test proves nothing", from, to)
	}
	Diff(h.T, want, got)
	return len(got)
}

// Diff reports the first differences between two sorted row lists.
func Diff(t testing.TB, want, got []string) {
	t.Helper()
	if len(want) == len(got) {
		same := true
		for i := range want {
			if want[i] != got[i] {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	missing, extra := setDiff(want, got), setDiff(got, want)
	t.Errorf("warehouse has %d rows, simulator produced %d; %d missing, %d unexpected (duplicates count)", len(got), len(want), len(missing), len(extra))
	for i := 0; i < len(missing) && i < 5; i++ {
		t.Errorf("missing:    %q", missing[i])
	}
	for i := 0; i < len(extra) && i < 5; i++ {
		t.Errorf("unexpected: %q", extra[i])
	}
}

// setDiff returns a - b as multisets.
func setDiff(a, b []string) []string {
	n := map[string]int{}
	for _, x := range b {
		n[x]++
	}
	var out []string
	for _, x := range a {
		if n[x] > 0 {
			n[x]--
			continue
		}
		out = append(out, x)
	}
	return out
}

// Count runs a query returning one number.
func (h *Harness) Count(query string, args ...any) uint64 {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n uint64
	if err := h.Conn.QueryRow(ctx, strings.ReplaceAll(query, "{db}", "`"+h.DB+"`"), args...).Scan(&n); err != nil {
		h.T.Fatalf("%s: %v", query, err)
	}
	return n
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// LogBuffer collects log output safely from many goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
