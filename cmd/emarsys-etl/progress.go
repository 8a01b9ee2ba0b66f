package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
)

// progressBar redraws one terminal line per finished window: windows done of
// total, rows, rate and time left. Failed windows are printed above the bar
// so their errors stay on screen.
type progressBar struct {
	w      io.Writer
	total  int
	now    func() time.Time
	start  time.Time
	n      int
	failed int
	rows   uint64
}

const barWidth = 30

func newProgressBar(w io.Writer, total int, now func() time.Time) *progressBar {
	return &progressBar{w: w, total: total, now: now, start: now()}
}

func (b *progressBar) window(r pipeline.Result) {
	b.n++
	if !r.Skipped {
		b.rows += r.Loaded
	}
	if r.Err != nil {
		b.failed++
		// \r and clear-line, then the error on a line of its own.
		fmt.Fprintf(b.w, "\r\033[K%s failed: %v\n", r.Window, r.Err)
	}
	fmt.Fprint(b.w, "\r\033[K"+b.line())
	if b.n == b.total {
		fmt.Fprintln(b.w)
	}
}

// line is the bar's text, e.g.
// [###########-------------------] 11/28 windows  52340 rows  1200 rows/s  left 1m40s
func (b *progressBar) line() string {
	filled := barWidth * b.n / max(b.total, 1)
	elapsed := b.now().Sub(b.start)
	rate, left := "-", "-"
	if s := elapsed.Seconds(); s > 0 {
		rate = fmt.Sprintf("%.0f", float64(b.rows)/s)
		if b.n > 0 && b.n < b.total {
			left = (elapsed / time.Duration(b.n) * time.Duration(b.total-b.n)).Round(time.Second).String()
		}
	}
	if b.n >= b.total {
		left = "0s"
	}
	s := fmt.Sprintf("[%s%s] %d/%d windows  %d rows  %s rows/s  left %s",
		strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), b.n, b.total, b.rows, rate, left)
	if b.failed > 0 {
		s += fmt.Sprintf("  %d failed", b.failed)
	}
	return s
}
