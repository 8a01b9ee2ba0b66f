package main

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// The short run of `make chaos` inside `make test`: fixed seed, fewer windows
// and kills, one FTP drop and, when clickhouse-server is installed, one
// restart of a private ClickHouse (never the shared one). The warehouse must
// equal the simulator's rows exactly.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	pipelinetest.RequireClickHouse(t)
	dir := t.TempDir()
	etl := filepath.Join(dir, "emarsys-etl")
	build := exec.Command("go", "build", "-o", etl, "github.com/emarsys-etl/emarsys-etl/cmd/emarsys-etl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build emarsys-etl: %v\n%s", err, out)
	}
	o := Options{
		Seed: 20261203, ETL: etl, Workdir: dir, Windows: 8, Window: time.Hour,
		Kills: 6, FTPDrops: 1, API5xx: 1, EventsPerHour: 300, MaxKillDelay: 1200 * time.Millisecond,
		Deadline: 3 * time.Minute, ClickHouseAddr: pipelinetest.Addr(),
		Database: "chaostest_" + randomHex(5),
	}
	if _, err := exec.LookPath("clickhouse-server"); err == nil {
		o.Private = &Ports{TCP: freePort(t), HTTP: freePort(t), Interserver: freePort(t)}
		o.CHRestarts = 1
	} else {
		t.Log("clickhouse-server not installed: no ClickHouse restart in this run")
	}
	var log strings.Builder
	o.Log = &log
	sum, err := Run(t.Context(), o)
	t.Log("\n" + log.String())
	t.Log(sum.Line())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Expected == 0 || sum.Loaded != sum.Expected || sum.Lost != 0 || sum.Duplicate != 0 {
		t.Errorf("warehouse differs from the simulator: %s", sum.Line())
	}
	if sum.AggregatesDiffer != 0 {
		t.Errorf("%d BI aggregate rows differ from the same query over email_responses", sum.AggregatesDiffer)
	}
	if sum.Kills != o.Kills || sum.FTPDrops != o.FTPDrops || sum.Restart != o.CHRestarts || sum.API5xx != o.API5xx {
		t.Errorf("planned faults did not all happen: %s", sum.Line())
	}
	if o.Private == nil {
		cleanupDB(t, o)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cleanupDB drops the run's database on the shared server.
func cleanupDB(t *testing.T, o Options) {
	conn, err := ch.Open(&ch.Options{Addr: []string{o.ClickHouseAddr}})
	if err != nil {
		t.Logf("drop %s: %v", o.Database, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+o.Database+"`"); err != nil {
		t.Logf("drop %s: %v", o.Database, err)
	}
}
