// Package notify receives the Emarsys notification_url call and wakes the
// window waiting for that export, so it need not sit out its poll delay.
//
// Each export request gets its own URL, /notify/{token}, with a random
// token: the token is the secret that tells a real call from a guess. The
// call is a hint only: the waiter polls the status anyway, so a call that
// never comes, comes twice or comes late changes nothing but speed.
package notify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// PathPrefix is where Handler expects to be mounted.
const PathPrefix = "/notify/"

// Registry holds the tokens of the exports being waited for. The zero value
// is not usable; use NewRegistry. Safe for concurrent use.
type Registry struct {
	log *slog.Logger

	mu      sync.Mutex
	waiters map[string]*waiter

	calls, rejected atomic.Int64
}

type waiter struct {
	label string
	wake  chan struct{}
}

// NewRegistry returns an empty registry; log may be nil.
func NewRegistry(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{log: log, waiters: map[string]*waiter{}}
}

// Register makes a token for one export request. The export id is not known
// before the request is sent, so label (the window) names it in logs. Wake
// yields once per call received (a buffer of one: calls that come while the
// waiter is busy are merged). Release forgets the token; call it when the
// wait is over.
func (r *Registry) Register(label string) (token string, wake <-chan struct{}, release func()) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; without a token
		// there is no URL, and polling alone still finishes the job.
		return "", nil, func() {}
	}
	token = hex.EncodeToString(b[:])
	w := &waiter{label: label, wake: make(chan struct{}, 1)}
	r.mu.Lock()
	r.waiters[token] = w
	r.mu.Unlock()
	return token, w.wake, func() {
		r.mu.Lock()
		delete(r.waiters, token)
		r.mu.Unlock()
	}
}

// URL is the notification_url for token under the public base URL.
func URL(publicBase, token string) string {
	return strings.TrimSuffix(publicBase, "/") + PathPrefix + token
}

// Calls is how many calls carried a known token; Rejected how many did not.
func (r *Registry) Calls() int64    { return r.calls.Load() }
func (r *Registry) Rejected() int64 { return r.rejected.Load() }

// Handler accepts GET or POST /notify/{token} (the vendor does not document
// the method) with the status payload as body, if any.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		token, ok := strings.CutPrefix(req.URL.Path, PathPrefix)
		r.mu.Lock()
		wt := r.waiters[token]
		r.mu.Unlock()
		if !ok || token == "" || wt == nil {
			// Unknown, guessed or already finished: say nothing more. The
			// vendor retries a few times, which is harmless.
			r.rejected.Add(1)
			http.NotFound(w, req)
			return
		}
		r.calls.Add(1)
		// The payload is informative only: the poll that follows is the truth.
		var p struct {
			Data struct {
				ID     json.RawMessage `json:"id"`
				Status string          `json:"status"`
			} `json:"data"`
		}
		if req.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(req.Body, 64<<10))
			_ = json.Unmarshal(b, &p)
		}
		r.log.Info("notification_url call", "window", wt.label, "export_id", strings.Trim(string(p.Data.ID), `"`), "status", p.Data.Status, "method", req.Method)
		select {
		case wt.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
}
