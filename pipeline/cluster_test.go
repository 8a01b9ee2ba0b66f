package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// Cluster mode (issue 9) runs against the local cluster of
// configs/cluster/cluster.sh: `make test-cluster` starts it and sets
// EMARSYS_CLUSTER_ADDRS (ch1..ch4, shard 1 = the first two) and
// EMARSYS_CLUSTER_DIR. Without them these tests are skipped.

type testCluster struct {
	name  string
	addrs []string // shard 1: addrs[0], addrs[1]; shard 2: addrs[2], addrs[3]
	dir   string   // cluster.sh's DIR, to kill and restart a replica
	conns []driver.Conn
}

func needCluster(t *testing.T) *testCluster {
	t.Helper()
	env := os.Getenv("EMARSYS_CLUSTER_ADDRS")
	if env == "" {
		t.Skip("EMARSYS_CLUSTER_ADDRS is not set: run make test-cluster")
	}
	c := &testCluster{name: "emarsys_cluster", addrs: strings.Split(env, ","), dir: os.Getenv("EMARSYS_CLUSTER_DIR")}
	if n := os.Getenv("EMARSYS_CLUSTER_NAME"); n != "" {
		c.name = n
	}
	if len(c.addrs) != 4 {
		t.Fatalf("EMARSYS_CLUSTER_ADDRS: want the 4 servers of a 2x2 cluster, got %q", env)
	}
	for _, a := range c.addrs {
		conn, err := ch.Open(&ch.Options{Addr: []string{a}, DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, conn)
	}
	t.Cleanup(func() {
		for _, conn := range c.conns {
			conn.Close()
		}
	})
	return c
}

func (c *testCluster) harness(t *testing.T, o pipelinetest.Options) *pipelinetest.Harness {
	o.ClickHouseAddr, o.Cluster = c.addrs[0], c.name
	return pipelinetest.New(t, o)
}

// runnerFor wires a runner for another account on the harness's store, as
// main.go does for each account of a multi-account config.
func runnerFor(t *testing.T, h *pipelinetest.Harness, account string, window ...time.Duration) *pipeline.Runner {
	t.Helper()
	cfg := *h.Cfg
	cfg.Account = account
	if len(window) > 0 {
		cfg.Schedule.Window = window[0]
	}
	src, err := pipeline.NewSource(&cfg, h.API)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.NewRunner(&cfg, h.API, src, h.Store, slog.New(slog.NewJSONHandler(h.Log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.RetryBase = 20 * time.Millisecond
	r.AfterLoad = append(r.AfterLoad, pipeline.RefreshAggregates(h.Store, account))
	return r
}

func (c *testCluster) query(t *testing.T, i int, q string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out string
	if err := c.conns[i].QueryRow(ctx, "SELECT toString(("+q+"))").Scan(&out); err != nil {
		t.Fatalf("%s on %s: %v", q, c.addrs[i], err)
	}
	return out
}

func (c *testCluster) exec(t *testing.T, i int, q string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.conns[i].Exec(ctx, q); err != nil {
		t.Fatalf("%s on %s: %v", q, c.addrs[i], err)
	}
}

// assertReplicasAgree syncs every replica and compares the two replicas of
// each shard (rows and a hash of their keys) and the whole-table copies of
// the ledger on all four servers. A replica restarted moments ago may not
// have pulled the newest log entries yet even after SYNC REPLICA (18.16 waits
// only for its current queue), so the comparison is retried for a while
// before it counts as a disagreement.
func (c *testCluster) assertReplicasAgree(t *testing.T, db string) {
	t.Helper()
	var problems []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		problems = c.replicaProblems(t, db)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func (c *testCluster) replicaProblems(t *testing.T, db string) []string {
	t.Helper()
	for i := range c.addrs {
		for _, tb := range []string{"email_responses_local", "etl_windows", "email_responses_rejected", "agg_campaign_daily"} {
			c.exec(t, i, fmt.Sprintf("SYSTEM SYNC REPLICA `%s`.%s", db, tb))
		}
	}
	var problems []string
	state := func(i int) string {
		return c.query(t, i, fmt.Sprintf("SELECT concat(toString(count()), '/', toString(uniqExact(response_key)), '/', toString(groupBitXor(response_key))) FROM `%s`.email_responses_local", db))
	}
	for _, pair := range [][2]int{{0, 1}, {2, 3}} {
		a, b := state(pair[0]), state(pair[1])
		if a != b {
			problems = append(problems, fmt.Sprintf("replicas %s and %s of one shard differ: %s vs %s (rows/keys/xor)", c.addrs[pair[0]], c.addrs[pair[1]], a, b))
		}
		if f := strings.Split(a, "/"); f[0] != f[1] || f[0] == "0" {
			problems = append(problems, fmt.Sprintf("shard of %s: %s rows/keys: empty or a key stored twice", c.addrs[pair[0]], a))
		}
	}
	ledger := c.query(t, 0, fmt.Sprintf("SELECT count() FROM `%s`.etl_windows", db))
	for i := 1; i < 4; i++ {
		if got := c.query(t, i, fmt.Sprintf("SELECT count() FROM `%s`.etl_windows", db)); got != ledger {
			problems = append(problems, fmt.Sprintf("ledger on %s has %s versions, on %s %s", c.addrs[i], got, c.addrs[0], ledger))
		}
	}
	return problems
}

// The cluster holds exactly the simulator's rows for each of three
// accounts, sharded over both shards, replicated on both replicas of each,
// every table Replicated; the migrations run twice more without error.
func TestClusterThreeAccounts(t *testing.T) {
	c := needCluster(t)
	h := c.harness(t, pipelinetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	contact, err := h.Cfg.Export.ContactSchema()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the harness migrated once already
		if err := h.Store.Migrate(ctx, contact); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
	}
	for i := range c.addrs {
		bad := c.query(t, i, fmt.Sprintf(`SELECT arrayStringConcat(groupArray(concat(name, ' ', engine)), ', ') FROM system.tables
			WHERE database = '%s' AND NOT (engine LIKE 'Replicated%%' OR engine IN ('Distributed', 'View'))`, h.DB))
		if bad != "" {
			t.Errorf("%s: tables that are not Replicated: %s", c.addrs[i], bad)
		}
	}

	from, to := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	accounts := []string{"alpha", "beta", "gamma"}
	for _, a := range accounts {
		res := runnerFor(t, h, a).Backfill(ctx, from, to)
		for _, r := range res {
			if r.Err != nil || r.State != pipeline.StateDone {
				t.Fatalf("%s: window %s ended %s: %v", a, r.Window, r.State, r.Err)
			}
		}
	}
	want := h.Expected(from, to)
	if len(want) < 1000 {
		t.Fatalf("the simulator produced %d rows: the test proves little", len(want))
	}
	for _, a := range accounts {
		got := h.WarehouseOf(a, from, to)
		t.Logf("%s: %d rows on the cluster, simulator %d", a, len(got), len(want))
		pipelinetest.Diff(t, want, got)
	}
	for i := range c.addrs {
		if n := c.query(t, i, fmt.Sprintf("SELECT count() FROM `%s`.email_responses_local", h.DB)); n == "0" {
			t.Errorf("%s holds no rows: not sharded over both shards", c.addrs[i])
		}
	}
	c.assertReplicasAgree(t, h.DB)
	// A second backfill of the same range adds nothing: in the same windows
	// (done in the ledger) and in other, overlapping ones (4 h instead of
	// 6 h: new windows, loaded in full, where only the anti-join over the
	// Distributed table keeps every row out).
	before := h.Count("SELECT count() FROM {db}.email_responses")
	for _, a := range accounts {
		runnerFor(t, h, a).Backfill(ctx, from, to)
	}
	for _, r := range runnerFor(t, h, "beta", 4*time.Hour).Backfill(ctx, from, to) {
		if r.Err != nil || r.State != pipeline.StateDone || r.Loaded == 0 || r.New != 0 {
			t.Errorf("beta again in window %s: %s, loaded %d, new %d (want done, >0, 0): %v", r.Window, r.State, r.Loaded, r.New, r.Err)
		}
	}
	if after := h.Count("SELECT count() FROM {db}.email_responses"); after != before {
		t.Errorf("a second backfill changed the row count from %d to %d", before, after)
	}
}

// A replica dies in the middle of a load and is started again: after the
// backfill is re-run, no row is lost or duplicated and the replicas agree.
func TestClusterReplicaDiesMidLoad(t *testing.T) {
	c := needCluster(t)
	if c.dir == "" {
		t.Skip("EMARSYS_CLUSTER_DIR is not set: the test must kill and restart a replica")
	}
	h := c.harness(t, pipelinetest.Options{
		Generator: sim.Generator{Seed: 11, EventsPerHour: 4000},
		Window:    2 * time.Hour,
	})
	from, to := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	// The victim: a replica of shard 2, which the loader (connected to the
	// first server) reaches over the network for reads and inserts.
	victim := 4
	pidFile := filepath.Join(c.dir, fmt.Sprintf("ch%d", victim), "clickhouse.pid")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan []pipeline.Result, 1)
	go func() { done <- h.Runner.Backfill(ctx, from, to) }()
	// Kill once the first window committed and others are in flight.
	deadline := time.Now().Add(2 * time.Minute)
	for h.Count("SELECT count() FROM {db}.etl_windows WHERE state = 'done'") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no window finished within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pidText, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := os.FindProcess(pid)
	if err := proc.Kill(); err != nil {
		t.Fatalf("kill ch%d (pid %d): %v", victim, pid, err)
	}
	killTime := time.Now()
	killedAt := h.Count("SELECT count() FROM {db}.etl_windows WHERE state = 'done'")
	t.Logf("killed ch%d (pid %d) with %d windows done", victim, pid, killedAt)
	time.Sleep(3 * time.Second)
	script, _ := filepath.Abs("../configs/cluster/cluster.sh")
	if out, err := exec.Command(script, "up", c.dir).CombinedOutput(); err != nil {
		t.Fatalf("restart the cluster: %v\n%s", err, out)
	}
	t.Logf("ch%d restarted %s after the kill", victim, time.Since(killTime).Round(time.Millisecond))
	res := <-done
	t.Logf("the backfill ended %s after the kill", time.Since(killTime).Round(time.Millisecond))
	if n := strings.Count(h.Log.String(), "replicas not caught up"); n > 0 {
		t.Logf("%d log lines: a commit waited for the replicas", n)
	}
	failed := 0
	for _, r := range res {
		if r.State != pipeline.StateDone {
			failed++
			t.Logf("window %s ended %s while a replica was down: %v", r.Window, r.State, r.Err)
		}
	}
	t.Logf("%d of %d windows ended done in the run with the replica killed", len(res)-failed, len(res))
	// Re-run the range (the windows still missing, and every done one again).
	h.Backfill(from, to)
	pipelinetest.Diff(t, h.Expected(from, to), h.Warehouse(from, to))
	if n, k := h.Count("SELECT count() FROM {db}.email_responses"), h.Count("SELECT uniqExact(response_key) FROM {db}.email_responses"); n != k {
		t.Errorf("%d rows but %d distinct response keys: duplicates", n, k)
	}
	c.assertReplicasAgree(t, h.DB)
}

// Sizing figures for the README (EMARSYS_CLUSTER_SIZING=1): the same
// backfill into the cluster and into the single server at CLICKHOUSE_ADDR.
func TestClusterSizing(t *testing.T) {
	c := needCluster(t)
	if os.Getenv("EMARSYS_CLUSTER_SIZING") == "" {
		t.Skip("set EMARSYS_CLUSTER_SIZING=1 to measure")
	}
	perHour, _ := strconv.Atoi(os.Getenv("EMARSYS_CLUSTER_SIZING_PER_HOUR"))
	if perHour == 0 {
		perHour = 20000
	}
	from, to := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	o := pipelinetest.Options{Generator: sim.Generator{Seed: 3, EventsPerHour: perHour}, Window: 6 * time.Hour}
	for _, mode := range []string{"single", "cluster"} {
		var h *pipelinetest.Harness
		if mode == "cluster" {
			h = c.harness(t, o)
		} else {
			h = pipelinetest.New(t, o)
		}
		t0 := time.Now()
		h.Backfill(from, to)
		d := time.Since(t0)
		n := h.Count("SELECT count() FROM {db}.email_responses")
		t.Logf("sizing %s: %d rows in %s = %.0f rows/s (windows of 6h, concurrency 2, through simulator and FTP)", mode, n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	}
}
