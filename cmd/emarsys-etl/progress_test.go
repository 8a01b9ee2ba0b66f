package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
)

// The bar counts windows and rows and derives rate and time left from an
// injected clock.
func TestProgressBar(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	now := t0
	var out bytes.Buffer
	b := newProgressBar(&out, 4, func() time.Time { return now })
	w := pipeline.Window{Start: t0, End: t0.Add(6 * time.Hour)}

	now = t0.Add(10 * time.Second)
	b.window(pipeline.Result{Window: w, State: pipeline.StateDone, Loaded: 500})
	if got, want := b.line(), "[#######-----------------------] 1/4 windows  500 rows  50 rows/s  left 30s"; got != want {
		t.Errorf("after 1:\n got %q\nwant %q", got, want)
	}
	now = t0.Add(20 * time.Second)
	b.window(pipeline.Result{Window: w, State: pipeline.StateFailed, Err: errors.New("boom")})
	if !strings.Contains(out.String(), w.String()+" failed: boom\n") {
		t.Errorf("the failure is not on a line of its own: %q", out.String())
	}
	b.window(pipeline.Result{Window: w, State: pipeline.StateDone, Skipped: true, Loaded: 999})
	b.window(pipeline.Result{Window: w, State: pipeline.StateDone, Loaded: 300})
	if got, want := b.line(), "[##############################] 4/4 windows  800 rows  40 rows/s  left 0s  1 failed"; got != want {
		t.Errorf("at the end:\n got %q\nwant %q", got, want)
	}
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("the finished bar does not end its line")
	}
}

// Off a terminal every window is one plain line.
func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 2)
	if p.bar != nil {
		t.Fatal("a buffer is not a terminal")
	}
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	p.window(pipeline.Result{Window: pipeline.Window{Start: t0, End: t0.Add(6 * time.Hour)}, State: pipeline.StateDone, ExportID: 5, Read: 10, Loaded: 10, New: 10})
	p.window(pipeline.Result{Window: pipeline.Window{Start: t0.Add(6 * time.Hour), End: t0.Add(12 * time.Hour)}, State: pipeline.StateDone, Skipped: true})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "[1/2] 2026-11-02T00:00:00Z/2026-11-02T06:00:00Z done export=5 read=10 loaded=10") ||
		!strings.Contains(lines[1], "[2/2] 2026-11-02T06:00:00Z/2026-11-02T12:00:00Z already done") {
		t.Errorf("plain lines:\n%s", out.String())
	}
}
