package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
)

// Ledger reads an account's windows; *clickhouse.Store is one.
type Ledger interface {
	Windows(ctx context.Context, account string, from, to time.Time) ([]chstore.WindowRecord, error)
}

// States lists the ledger states in order, for stable output.
func States() []string {
	return []string{pipeline.StatePlanned, pipeline.StateRequested, pipeline.StateReady,
		pipeline.StateFetched, pipeline.StateLoaded, pipeline.StateDone, pipeline.StateFailed}
}

// ledgerCollector reads the ledger at every scrape: the window counts and the
// lag then hold across restarts and for windows other processes ran.
type ledgerCollector struct {
	ledger  Ledger
	account string
	now     func() time.Time

	windows *prometheus.Desc
	lag     *prometheus.Desc
	covered *prometheus.Desc
	up      *prometheus.Desc
}

// RegisterLedger exports, from the ledger at scrape time, the windows by
// state, the lag and whether the ledger could be read.
func RegisterLedger(reg prometheus.Registerer, l Ledger, account string) {
	c := prometheus.Labels{"account": account}
	reg.MustRegister(&ledgerCollector{
		ledger: l, account: account, now: time.Now,
		windows: prometheus.NewDesc("emarsys_etl_windows", "Windows in the ledger by their latest state.", []string{"state"}, c),
		lag: prometheus.NewDesc("emarsys_etl_lag_seconds",
			"Seconds between now and the end of the newest window loaded with no gap before it.", nil, c),
		covered: prometheus.NewDesc("emarsys_etl_covered_until_timestamp_seconds",
			"End of the gap-free run of done windows (Unix time).", nil, c),
		up: prometheus.NewDesc("emarsys_etl_ledger_up", "1 when the ledger could be read for this scrape.", nil, c),
	})
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.windows
	ch <- c.lag
	ch <- c.covered
	ch <- c.up
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), CheckTimeout)
	defer cancel()
	now := c.now()
	recs, err := c.ledger.Windows(ctx, c.account, time.Unix(0, 0).UTC(), now.Add(24*time.Hour))
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	counts := map[string]int{}
	var done []pipeline.Window
	for _, r := range recs {
		counts[r.State]++
		// A file loaded by hand may hold part of its span only: like the
		// scheduler, the lag does not count it as covered.
		if r.State == pipeline.StateDone && !r.Manual {
			done = append(done, pipeline.Window{Start: r.Start, End: r.End})
		}
	}
	for _, s := range States() {
		ch <- prometheus.MustNewConstMetric(c.windows, prometheus.GaugeValue, float64(counts[s]), s)
	}
	if end, ok := pipeline.CoveredUntil(done); ok {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, now.Sub(end).Seconds())
		ch <- prometheus.MustNewConstMetric(c.covered, prometheus.GaugeValue, float64(end.Unix()))
	}
}

// Pinger is what the ClickHouse check needs; *clickhouse.Store is one.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ClickHouseCheck holds when ClickHouse answers a ping.
func ClickHouseCheck(p Pinger) Check { return p.Ping }

// LedgerCheck holds when the account's ledger can be read.
func LedgerCheck(l Ledger, account string) Check {
	return func(ctx context.Context) error {
		now := time.Now()
		_, err := l.Windows(ctx, account, now.Add(-24*time.Hour), now)
		return err
	}
}

// SchedulerCheck holds when the scheduler ticked within two intervals of
// the cron schedule: a tick was due after the last one (or after start, if
// none yet) and the next after that has not passed. lastTick is Unix seconds,
// 0 for none.
func SchedulerCheck(schedule string, started time.Time, lastTick func() int64, now func() time.Time) (Check, error) {
	sched, err := cron.ParseStandard(schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule.cron: %w", err)
	}
	return func(context.Context) error {
		ref, what := started, "since start"
		if t := lastTick(); t > 0 {
			ref, what = time.Unix(t, 0), "since "+time.Unix(t, 0).UTC().Format(time.RFC3339)
		}
		deadline := sched.Next(sched.Next(ref.UTC()))
		if n := now(); n.After(deadline) {
			return fmt.Errorf("no scheduler tick %s (two intervals ended %s)", what, deadline.Format(time.RFC3339))
		}
		return nil
	}, nil
}
