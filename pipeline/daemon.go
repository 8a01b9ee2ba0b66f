package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
)

// Daemon runs Tick on the configured cron schedule (UTC) until ctx ends. A tick
// that comes while the previous one is still running is skipped and logged.
func (r *Runner) Daemon(ctx context.Context) error {
	c := cron.New(cron.WithLocation(time.UTC))
	var running atomic.Bool
	var wg sync.WaitGroup
	tick := func() {
		if !running.CompareAndSwap(false, true) {
			r.Log.Warn("tick skipped: the previous run is still going", "account", r.Cfg.Account)
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer running.Store(false)
		r.LastTick.Store(time.Now().Unix())
		res, err := r.Tick(ctx, time.Now())
		if err != nil {
			r.Log.Error("tick failed", "account", r.Cfg.Account, "err", err)
			return
		}
		failed := 0
		for _, x := range res {
			if x.Err != nil {
				failed++
			}
		}
		r.Log.Info("tick finished", "account", r.Cfg.Account, "windows", len(res), "failed", failed)
	}
	if _, err := c.AddFunc(r.Cfg.Schedule.Cron, tick); err != nil {
		return err
	}
	r.Log.Info("daemon started", "account", r.Cfg.Account, "schedule", r.Cfg.Schedule.Cron,
		"window", r.Cfg.Schedule.Window.String(), "lag", r.Cfg.Schedule.Lag.String(), "overlap", r.Cfg.Schedule.Overlap.String())
	c.Start()
	select {
	case <-ctx.Done():
	case <-r.Stop: // graceful stop: no new tick; the running one finishes under ctx
	}
	<-c.Stop().Done()
	wg.Wait()
	r.Log.Info("daemon stopped", "account", r.Cfg.Account)
	return nil
}
