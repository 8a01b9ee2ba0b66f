// Command emarsys-chaos proves exactly-once loading under faults: it hosts
// the Emarsys simulator and an FTP server, runs the real emarsys-etl binary
// as a child to backfill a range, and meanwhile kills it with SIGKILL at
// random moments, drops the FTP server mid-file, kills and restarts a
// private ClickHouse mid-load and has the API answer 503 for a while,
// starting the ETL again after each blow until the range is done. It then
// compares the warehouse with the simulator and prints one line:
//
//	chaos: seed=S windows=W kills=K ftp_drops=F clickhouse_restarts=R rows_expected=E rows_loaded=L lost=X duplicated=Y
//
// It exits 0 only if lost and duplicated are both 0 and every planned fault
// happened. The seed printed first replays the same choices (--seed).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var o Options
	var private bool
	var ports Ports
	flag.Int64Var(&o.Seed, "seed", 0, "random seed (0: pick one and print it)")
	flag.StringVar(&o.ETL, "etl", "bin/emarsys-etl", "emarsys-etl binary to run")
	flag.StringVar(&o.Workdir, "workdir", ".local/chaos", "folder for the FTP root, config, logs and the private ClickHouse")
	flag.IntVar(&o.Windows, "windows", 100, "windows in the backfill (enough that 30 kills land before the range is done: the 30th lands at about 60)")
	flag.DurationVar(&o.Window, "window", time.Hour, "size of one window")
	flag.IntVar(&o.Kills, "kills", 30, "SIGKILLs of emarsys-etl")
	flag.IntVar(&o.FTPDrops, "ftp-drops", 2, "FTP server drops mid-file")
	flag.IntVar(&o.CHRestarts, "clickhouse-restarts", 1, "ClickHouse kills and restarts mid-load (needs --private-clickhouse)")
	flag.IntVar(&o.API5xx, "api-5xx", 2, "bursts of HTTP 503 from the API's status call")
	flag.BoolVar(&private, "private-clickhouse", true, "run a clickhouse-server of our own that can be killed (never the shared one)")
	flag.IntVar(&ports.TCP, "clickhouse-tcp-port", 9400, "native port of the private ClickHouse")
	flag.IntVar(&ports.HTTP, "clickhouse-http-port", 8400, "HTTP port of the private ClickHouse")
	flag.IntVar(&ports.Interserver, "clickhouse-interserver-port", 9401, "interserver port of the private ClickHouse")
	flag.StringVar(&o.ClickHouseAddr, "clickhouse", "127.0.0.1:9000", "ClickHouse to use without --private-clickhouse")
	flag.StringVar(&o.Database, "database", "chaos", "database (dropped at start)")
	flag.IntVar(&o.EventsPerHour, "events-per-hour", 600, "mean simulated responses per hour")
	flag.DurationVar(&o.MaxKillDelay, "max-kill-delay", 1500*time.Millisecond, "kills come after a random delay up to this")
	flag.DurationVar(&o.Deadline, "deadline", 12*time.Minute, "give up after this long")
	flag.Parse()
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 1_000_000_007
	}
	if private {
		o.Private = &ports
	}
	o.Log = os.Stdout
	fmt.Printf("chaos: seed=%d (replay with --seed %d)\n", o.Seed, o.Seed)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := Run(ctx, o)
	if len(sum.KillStates) > 0 {
		var states []string
		for s := range sum.KillStates {
			states = append(states, s)
		}
		sort.Strings(states)
		fmt.Print("chaos: kills by state of the windows in flight:")
		for _, s := range states {
			fmt.Printf(" %s=%d", s, sum.KillStates[s])
		}
		fmt.Println()
	}
	fmt.Println(sum.Line())
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if sum.Lost != 0 || sum.Duplicate != 0 || sum.Expected == 0 {
		return 1
	}
	if sum.FTPDrops < o.FTPDrops || sum.Restart < o.CHRestarts || sum.Kills < o.Kills || sum.API5xx < o.API5xx {
		fmt.Fprintln(os.Stderr, "chaos: not every planned fault happened")
		return 1
	}
	return 0
}
