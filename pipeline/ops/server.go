// Package ops is the daemon's HTTP side: Prometheus metrics, liveness and
// readiness, and a mux other parts of the program mount their handlers on
// (the notification receiver, the dashboard).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition; a nil error means it holds.
type Check func(ctx context.Context) error

// Server serves /metrics, /healthz and /readyz and whatever is mounted with Handle.
type Server struct {
	mux *http.ServeMux
	reg *prometheus.Registry
	log *slog.Logger

	mu     sync.Mutex
	checks []namedCheck
	srv    *http.Server
}

type namedCheck struct {
	name string
	fn   Check
}

// CheckTimeout bounds each readiness check, so a hung ClickHouse makes
// /readyz answer "unready" instead of hanging the prober.
const CheckTimeout = 3 * time.Second

// NewServer returns a server exposing reg at /metrics; log (nil: silent)
// hears about a listener that breaks.
func NewServer(reg *prometheus.Registry, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{mux: http.NewServeMux(), reg: reg, log: log}
	s.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("/readyz", s.readyz)
	return s
}

// Registry is where metrics are registered.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle mounts h at pattern (http.ServeMux patterns, e.g. "/notify/",
// "GET /api/windows"). Mount before Start.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReadyCheck adds a condition /readyz requires.
func (s *Server) AddReadyCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, namedCheck{name, c})
}

// ServeHTTP makes the server usable with httptest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// readyz answers 200 when every check holds and 503 otherwise, with one line
// (or a JSON object with ?format=json) per check.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := append([]namedCheck(nil), s.checks...)
	s.mu.Unlock()
	type result struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	out := make([]result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
			defer cancel()
			out[i] = result{Name: c.name, OK: true}
			if err := c.fn(ctx); err != nil {
				out[i] = result{Name: c.name, Error: err.Error()}
			}
		}()
	}
	wg.Wait()
	code := http.StatusOK
	for _, x := range out {
		if !x.OK {
			code = http.StatusServiceUnavailable
		}
	}
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"ready": code == http.StatusOK, "checks": out})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	for _, x := range out {
		if x.OK {
			fmt.Fprintf(w, "ok   %s\n", x.Name)
		} else {
			fmt.Fprintf(w, "FAIL %s: %s\n", x.Name, x.Error)
		}
	}
}

// Start listens on addr and serves in the background; the bound address is
// returned (useful with port 0). Stop it with Shutdown.
func (s *Server) Start(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// Serve fails only on a broken listener; the daemon keeps loading without it.
			s.log.Error("HTTP listener stopped", "addr", addr, "err", err)
		}
	}()
	return ln.Addr(), nil
}

// Shutdown stops a started server, letting requests in flight finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}
