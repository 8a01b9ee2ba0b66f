package emarsys

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter paces requests by the X-RateLimit-Remaining and X-RateLimit-Reset
// headers of earlier replies, so the account's budget is not spent before the
// reset. The budget is per API user: share one Limiter between every client
// of the same account. Missing headers leave it open. Safe for concurrent use.
type Limiter struct {
	maxWait time.Duration

	mu        sync.Mutex
	remaining int       // requests left in the current period, as last told
	reset     time.Time // when the period ends; zero = unknown
	blocked   time.Time // after a 429: nobody sends before this

	waits atomic.Int64
}

// NewLimiter returns a limiter that never waits longer than maxWait at once
// (default DefaultRateLimitMaxWait).
func NewLimiter(maxWait time.Duration) *Limiter {
	if maxWait <= 0 {
		maxWait = DefaultRateLimitMaxWait
	}
	return &Limiter{maxWait: maxWait}
}

// Waits is how many requests had to wait for a reset.
func (l *Limiter) Waits() int64 { return l.waits.Load() }

// wait holds a request back while the budget is spent, and takes one unit
// of it. It runs on the real clock: resets are stored as real instants.
func (l *Limiter) wait(ctx context.Context) error {
	now := time.Now
	for {
		l.mu.Lock()
		t := now()
		var until time.Time
		switch {
		case t.Before(l.blocked):
			until = l.blocked
		case !l.reset.IsZero() && t.Before(l.reset) && l.remaining <= 0:
			until = l.reset
		}
		if until.IsZero() {
			if !l.reset.IsZero() && t.Before(l.reset) {
				// Count our own request so parallel callers do not overdraw.
				l.remaining--
			}
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		l.waits.Add(1)
		// Jitter so that waiters do not all fire in the same instant.
		d := min(until.Sub(t), l.maxWait) + time.Duration(rand.Int64N(int64(50*time.Millisecond)))
		if err := sleep(ctx, d); err != nil {
			return err
		}
		l.mu.Lock()
		if !now().Before(l.reset) {
			l.reset = time.Time{} // the period is over: open until told again
		}
		l.mu.Unlock()
	}
}

// observe records the budget a reply reports. Header names are matched in
// any case (http.Header canonicalises); missing or bad values are ignored.
// now is the clock the API's reset time is compared with (Config.Now).
func (l *Limiter) observe(h http.Header, now func() time.Time) {
	rem, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining")))
	if err != nil {
		return
	}
	t := now()
	at, ok := parseReset(h.Get("X-RateLimit-Reset"), t)
	if !ok {
		return
	}
	reset := time.Now().Add(min(at.Sub(t), l.maxWait))
	l.mu.Lock()
	defer l.mu.Unlock()
	// Replies arrive out of order under concurrency: keep the lower count
	// within one period (same reset, give or take the conversion).
	if (reset.Sub(l.reset)).Abs() < 500*time.Millisecond && rem > l.remaining {
		return
	}
	l.remaining, l.reset = rem, reset
}

// block stops every request for d (after a 429).
func (l *Limiter) block(d time.Duration) {
	t := time.Now().Add(d)
	l.mu.Lock()
	if t.After(l.blocked) {
		l.blocked = t
	}
	l.mu.Unlock()
}

// parseReset reads X-RateLimit-Reset: Unix seconds, Unix milliseconds, or
// (small values) seconds from now.
func parseReset(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	switch {
	case n > 1e12:
		return time.UnixMilli(int64(n)), true
	case n > 1e9:
		return time.Unix(int64(n), 0), true
	default:
		return now.Add(time.Duration(n * float64(time.Second))), true
	}
}

// Limiter returns the client's rate limiter (shared with whoever passed it in).
func (c *Client) Limiter() *Limiter { return c.limit }
