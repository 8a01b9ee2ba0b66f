package ops_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/ops"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// privateClickHouse runs a clickhouse-server of the test's own on ports
// 9500/8500/9501, so stopping it never touches the shared one on 9000.
type privateClickHouse struct {
	t   *testing.T
	dir string
	cmd *exec.Cmd
}

const privateAddr = "127.0.0.1:9500"

func (p *privateClickHouse) start() {
	p.t.Helper()
	d := p.dir
	cmd := exec.Command("clickhouse-server", "--config-file=/etc/clickhouse-server/config.xml", "--",
		"--path="+d+"/", "--tmp_path="+d+"/tmp/", "--logger.log="+d+"/log", "--logger.errorlog="+d+"/err",
		"--listen_host=127.0.0.1", "--tcp_port=9500", "--http_port=8500", "--interserver_http_port=9501")
	cmd.Dir = d
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start clickhouse-server: %v", err)
	}
	p.cmd = cmd
	for i := 0; i < 300; i++ {
		if c, err := net.DialTimeout("tcp", privateAddr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	err, _ := os.ReadFile(filepath.Join(d, "err"))
	p.t.Fatalf("private clickhouse-server did not listen on %s within 30 s: %s", privateAddr, err)
}

// stop ends the server this test started (by its own pid) and waits for it.
func (p *privateClickHouse) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /readyz turns unready while ClickHouse is down and ready again once it is
// back; /healthz stays ok throughout.
func TestReadyzFollowsClickHouse(t *testing.T) {
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		if os.Getenv("CLICKHOUSE_REQUIRED") == "1" {
			t.Fatalf("clickhouse-server not installed and CLICKHOUSE_REQUIRED=1")
		}
		t.Skip("clickhouse-server is not installed")
	}
	if c, err := net.DialTimeout("tcp", privateAddr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Skipf("something already listens on %s", privateAddr)
	}
	p := &privateClickHouse{t: t, dir: t.TempDir()}
	os.MkdirAll(filepath.Join(p.dir, "tmp"), 0o755)
	p.start()
	t.Cleanup(p.stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := chstore.Open(ctx, chstore.Config{Addr: privateAddr, Database: "readyz", DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	email, err := schema.ResolveContactField(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, []schema.Field{email}); err != nil {
		t.Fatal(err)
	}

	srv := ops.NewServer(prometheus.NewRegistry(), nil)
	srv.AddReadyCheck("clickhouse", ops.ClickHouseCheck(store))
	srv.AddReadyCheck("ledger", ops.LedgerCheck(store, "acme"))
	hs := httptest.NewServer(srv)
	defer hs.Close()

	if code, body := readyz(t, hs.URL); code != 200 {
		t.Fatalf("ClickHouse up: /readyz %d\n%s", code, body)
	}
	p.stop()
	code, body := readyz(t, hs.URL)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "FAIL clickhouse") || !strings.Contains(body, "FAIL ledger") {
		t.Fatalf("ClickHouse stopped: /readyz %d\n%s", code, body)
	}
	if resp, err := http.Get(hs.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz while ClickHouse is down: %v %v", resp, err)
	}
	p.start()
	// The pool reconnects on the next use; a few tries cover a server still warming up.
	for i := 0; ; i++ {
		code, body = readyz(t, hs.URL)
		if code == 200 {
			break
		}
		if i == 50 {
			t.Fatalf("ClickHouse back: /readyz still %d\n%s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The scheduler check fails once two cron intervals pass without a tick.
func TestSchedulerCheck(t *testing.T) {
	start := time.Date(2026, 11, 2, 10, 1, 0, 0, time.UTC)
	var last int64
	now := start
	c, err := ops.SchedulerCheck("*/15 * * * *", start, func() int64 { return last }, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		last time.Time
		ok   bool
	}{
		{start.Add(10 * time.Minute), time.Time{}, true},  // 10:11, first tick due 10:15
		{start.Add(29 * time.Minute), time.Time{}, true},  // 10:30 not yet passed
		{start.Add(31 * time.Minute), time.Time{}, false}, // 10:32: ticks at 10:15 and 10:30 missed
		{start.Add(31 * time.Minute), start.Add(14 * time.Minute), true},
		{start.Add(50 * time.Minute), start.Add(14 * time.Minute), false},
	} {
		now, last = tc.now, 0
		if !tc.last.IsZero() {
			last = tc.last.Unix()
		}
		if err := c(context.Background()); (err == nil) != tc.ok {
			t.Errorf("now %s last tick %s: err %v, want ok=%v", tc.now.Format("15:04"), tc.last.Format("15:04"), err, tc.ok)
		}
	}
}
