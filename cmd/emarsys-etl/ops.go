package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/ops"
)

// newOps builds the HTTP side: a registry of its own (no global state), the
// pipeline metrics and the ledger collector of each account (told apart by
// their account label), and the ClickHouse and ledger readiness checks.
// Handlers can be mounted on the server at any time.
func newOps(cfgs []*config.Config, store *chstore.Store, log *slog.Logger) (*ops.Server, map[string]*ops.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "emarsys_etl_build_info",
		Help: "Always 1; the labels say which build runs.", ConstLabels: prometheus.Labels{"version": version, "commit": commit}},
		func() float64 { return 1 }))
	m := map[string]*ops.Metrics{}
	for _, cfg := range cfgs {
		m[cfg.Account] = ops.NewMetrics(reg, cfg.Account)
		ops.RegisterLedger(reg, store, cfg.Account)
	}
	srv := ops.NewServer(reg, log)
	srv.AddReadyCheck("clickhouse", ops.ClickHouseCheck(store))
	for _, cfg := range cfgs {
		srv.AddReadyCheck(checkName("ledger", cfg.Account, len(cfgs)), ops.LedgerCheck(store, cfg.Account))
	}
	return srv, m
}

// checkName is a readiness check's name: per account when there are several.
func checkName(what, account string, accounts int) string {
	if accounts > 1 {
		return what + " " + account
	}
	return what
}

// startOps starts the listener at http.listen (if set). In daemon mode the
// scheduler must tick for readiness and a listener that cannot bind stops
// start-up; a one-shot run only warns, so it can run beside a daemon.
func startOps(srv *ops.Server, cfg *config.Config, runners []*pipeline.Runner, daemon bool, log *slog.Logger) (stop func(), ok bool) {
	addr := cfg.HTTP.Addr()
	if addr == "" {
		return func() {}, true
	}
	if daemon {
		started := time.Now()
		for _, r := range runners {
			if c, err := ops.SchedulerCheck(r.Cfg.Schedule.Cron, started, r.LastTick.Load, time.Now); err == nil {
				srv.AddReadyCheck(checkName("scheduler", r.Cfg.Account, len(runners)), c)
			}
		}
	}
	bound, err := srv.Start(addr)
	if err != nil {
		if daemon {
			log.Error("start HTTP listener (set http.listen, or \"\" to disable it)", "err", err)
			return func() {}, false
		}
		log.Warn("HTTP listener not started", "err", err)
		return func() {}, true
	}
	log.Info("HTTP listener", "addr", bound.String(), "endpoints", "/metrics /healthz /readyz, dashboard / and /api/bi/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, true
}

// apiClient is the HTTP client of the Emarsys API, counted by m.
func apiClient(cfg *config.Config, m *ops.Metrics) *http.Client {
	return &http.Client{Timeout: cfg.Emarsys.RequestTimout, Transport: m.Transport(nil)}
}

// scrubForms adds to each secret the forms it takes once escaped in JSON
// (quotes, backslashes, <, >, &), so a scrubber of JSON text still finds it.
func scrubForms(secrets []string) []string {
	out := append([]string(nil), secrets...)
	for _, s := range secrets {
		for _, html := range []bool{true, false} {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(html)
			enc.Encode(s)
			if e := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b.String()), `"`), `"`); e != s && !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	return out
}
