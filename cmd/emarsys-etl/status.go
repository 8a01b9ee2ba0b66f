package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
)

// statusReport is the ledger as --status shows it; the JSON form is for machines.
type statusReport struct {
	Account      string        `json:"account"`
	Database     string        `json:"database"`
	OK           bool          `json:"ok"` // no gap and no failed window
	Windows      int           `json:"windows"`
	CoveredUntil *time.Time    `json:"covered_until,omitempty"`
	LagSeconds   *float64      `json:"lag_seconds,omitempty"`
	Days         []statusDay   `json:"days"`
	Gaps         []statusGap   `json:"gaps"`
	Failed       []statusError `json:"failed"`
	LastErrors   []statusError `json:"last_errors"`
}

type statusDay struct {
	Day          string  `json:"day"` // UTC
	Done         int     `json:"done"`
	Failed       int     `json:"failed"`
	Running      int     `json:"in_progress"`
	MissingHours float64 `json:"missing_hours"` // time of the day no ledger window covers
	RowsLoaded   uint64  `json:"rows_loaded"`
	RowsNew      uint64  `json:"rows_new"`
	RowsRejected uint64  `json:"rows_rejected"`
}

type statusGap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

type statusError struct {
	Window    string    `json:"window"`
	State     string    `json:"state"`
	Error     string    `json:"error"`
	UpdatedAt time.Time `json:"updated_at"`
}

// maxLastErrors bounds the errors shown: the newest are the ones to act on.
const maxLastErrors = 5

// buildStatus reads the ledger records of one account. Gaps are the parts
// between the first window (or start, if earlier) and the last window's end
// that no window covers in any state; failed windows are listed apart.
func buildStatus(recs []chstore.WindowRecord, start, now time.Time) statusReport {
	rep := statusReport{Windows: len(recs), Days: []statusDay{}, Gaps: []statusGap{}, Failed: []statusError{}, LastErrors: []statusError{}}
	if len(recs) == 0 {
		rep.OK = true
		return rep
	}
	days := map[string]*statusDay{}
	day := func(t time.Time) *statusDay {
		k := t.UTC().Format("2006-01-02")
		if days[k] == nil {
			days[k] = &statusDay{Day: k}
		}
		return days[k]
	}
	var all, done []pipeline.Window
	var from, to time.Time
	var withErr []statusError
	for _, r := range recs {
		w := pipeline.Window{Start: r.Start, End: r.End}
		// A file loaded by hand (--load-file) may hold part of its span only:
		// as for the scheduler, it covers nothing (no gap filled, no lag hidden).
		if !r.Manual {
			all = append(all, w)
			if from.IsZero() || r.Start.Before(from) {
				from = r.Start
			}
			if r.End.After(to) {
				to = r.End
			}
		}
		d := day(r.Start)
		switch r.State {
		case pipeline.StateDone:
			if !r.Manual {
				done = append(done, w)
			}
			d.Done++
			d.RowsLoaded += r.RowsLoaded
			d.RowsNew += r.RowsNew
			d.RowsRejected += r.RowsRejected
		case pipeline.StateFailed:
			d.Failed++
			rep.Failed = append(rep.Failed, statusError{Window: w.String(), State: r.State, Error: r.LastError, UpdatedAt: r.UpdatedAt})
		default:
			d.Running++
		}
		if r.LastError != "" {
			withErr = append(withErr, statusError{Window: w.String(), State: r.State, Error: r.LastError, UpdatedAt: r.UpdatedAt})
		}
	}
	if !start.IsZero() && start.Before(from) {
		from = start
	}
	if len(all) == 0 {
		from, to = time.Time{}, time.Time{} // only manual windows: nothing to cover yet
	}
	for _, g := range pipeline.Gaps(all, from, to) {
		rep.Gaps = append(rep.Gaps, statusGap{From: g.Start, To: g.End})
		// Spread the gap over the days it touches.
		for t := g.Start; t.Before(g.End); {
			next := t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
			if next.After(g.End) {
				next = g.End
			}
			day(t).MissingHours += next.Sub(t).Hours()
			t = next
		}
	}
	if end, ok := pipeline.CoveredUntil(done); ok {
		lag := now.Sub(end).Seconds()
		rep.CoveredUntil, rep.LagSeconds = &end, &lag
	}
	sort.SliceStable(withErr, func(i, j int) bool { return withErr[i].UpdatedAt.After(withErr[j].UpdatedAt) })
	if len(withErr) > maxLastErrors {
		withErr = withErr[:maxLastErrors]
	}
	rep.LastErrors = append(rep.LastErrors, withErr...)
	for _, d := range days {
		rep.Days = append(rep.Days, *d)
	}
	sort.Slice(rep.Days, func(i, j int) bool { return rep.Days[i].Day < rep.Days[j].Day })
	rep.OK = len(rep.Gaps) == 0 && len(rep.Failed) == 0
	return rep
}

// runStatus prints the ledger of each account; exit 0 when no account has
// a gap or a failed window, 1 otherwise, 3 when the ledger cannot be read.
// With several accounts the reports follow one another (JSON: an object
// with ok and the list of reports); with one, the output is that account's.
func runStatus(cfgs []*config.Config, asJSON bool, stdout, stderr io.Writer) int {
	cfg := cfgs[0] // clickhouse is global
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := chstore.Open(ctx, chstore.Config{Addr: cfg.ClickHouse.Addr, Database: cfg.ClickHouse.Database,
		User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, Cluster: cfg.ClickHouse.Cluster})
	if err != nil {
		fmt.Fprintf(stderr, "emarsys-etl: %v\n", err)
		return exitStartup
	}
	defer store.Close()
	now := time.Now().UTC()
	all := multiStatus{OK: true, Accounts: []statusReport{}}
	for _, c := range cfgs {
		recs, err := store.Windows(ctx, c.Account, time.Unix(0, 0).UTC(), now.Add(24*time.Hour))
		if err != nil {
			fmt.Fprintf(stderr, "emarsys-etl: %v (has the daemon or a backfill run against this database yet?)\n", err)
			return exitStartup
		}
		rep := buildStatus(recs, c.Schedule.StartTime, now)
		rep.Account, rep.Database = c.Account, c.ClickHouse.Database
		all.Accounts = append(all.Accounts, rep)
		all.OK = all.OK && rep.OK
	}
	switch {
	case asJSON && len(cfgs) == 1:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(all.Accounts[0])
	case asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(all)
	default:
		for i, rep := range all.Accounts {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			printStatus(stdout, rep)
		}
		if len(cfgs) > 1 {
			var bad []string
			for _, rep := range all.Accounts {
				if !rep.OK {
					bad = append(bad, fmt.Sprintf("%s (%d gaps, %d failed windows)", rep.Account, len(rep.Gaps), len(rep.Failed)))
				}
			}
			if len(bad) == 0 {
				fmt.Fprintf(stdout, "\naccounts: %d, all OK\n", len(cfgs))
			} else {
				fmt.Fprintf(stdout, "\naccounts: %d, NOT OK: %s\n", len(cfgs), strings.Join(bad, ", "))
			}
		}
	}
	if !all.OK {
		return exitFailed
	}
	return exitOK
}

// multiStatus is --status --json of a config with several accounts.
type multiStatus struct {
	OK       bool           `json:"ok"` // every account OK
	Accounts []statusReport `json:"accounts"`
}

func printStatus(w io.Writer, rep statusReport) {
	fmt.Fprintf(w, "account %s, database %s: %d windows in the ledger\n", rep.Account, rep.Database, rep.Windows)
	if rep.CoveredUntil != nil {
		fmt.Fprintf(w, "loaded without a gap until %s, lag %s\n", rep.CoveredUntil.Format(time.RFC3339),
			(time.Duration(*rep.LagSeconds) * time.Second).String())
	} else {
		fmt.Fprintln(w, "nothing loaded yet")
	}
	if len(rep.Days) > 0 {
		fmt.Fprintf(w, "\n%-10s %5s %6s %7s %8s %12s %12s %9s\n", "day (UTC)", "done", "failed", "running", "missing", "rows loaded", "rows new", "rejected")
		for _, d := range rep.Days {
			missing := "-"
			if d.MissingHours > 0 {
				missing = fmt.Sprintf("%gh", d.MissingHours)
			}
			fmt.Fprintf(w, "%-10s %5d %6d %7d %8s %12d %12d %9d\n", d.Day, d.Done, d.Failed, d.Running, missing, d.RowsLoaded, d.RowsNew, d.RowsRejected)
		}
	}
	if len(rep.Gaps) > 0 {
		fmt.Fprintf(w, "\ngaps (no window in the ledger; a backfill of these ranges fills them):\n")
		for _, g := range rep.Gaps {
			fmt.Fprintf(w, "  %s to %s (%s)\n", g.From.Format(time.RFC3339), g.To.Format(time.RFC3339), g.To.Sub(g.From))
		}
	}
	if len(rep.Failed) > 0 {
		fmt.Fprintf(w, "\nfailed windows (the next tick or a backfill retries them):\n")
		for _, f := range rep.Failed {
			fmt.Fprintf(w, "  %s: %s\n", f.Window, f.Error)
		}
	}
	if len(rep.LastErrors) > 0 {
		fmt.Fprintf(w, "\nlast errors:\n")
		for _, e := range rep.LastErrors {
			fmt.Fprintf(w, "  %s %s [%s]: %s\n", e.UpdatedAt.Format(time.RFC3339), e.Window, e.State, e.Error)
		}
	}
	if rep.OK {
		fmt.Fprintln(w, "\nstatus: OK (no gap, no failed window)")
	} else {
		fmt.Fprintf(w, "\nstatus: NOT OK (%d gaps, %d failed windows)\n", len(rep.Gaps), len(rep.Failed))
	}
}
