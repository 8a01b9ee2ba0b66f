package ops_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/chserver"
	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/ops"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// The readiness test stops and restarts a server of its own on these ports,
// never the shared one at CLICKHOUSE_ADDR.
const privateAddr = "127.0.0.1:9500"

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
	p := &chserver.Server{Dir: t.TempDir(), TCP: 9500, HTTP: 8500, Interserver: 9501}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)

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
	p.Stop()
	code, body := readyz(t, hs.URL)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "FAIL clickhouse") || !strings.Contains(body, "FAIL ledger") {
		t.Fatalf("ClickHouse stopped: /readyz %d\n%s", code, body)
	}
	if resp, err := http.Get(hs.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz while ClickHouse is down: %v %v", resp, err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
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
