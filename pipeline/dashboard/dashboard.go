// Package dashboard is the small built-in BI page the daemon serves at / on
// its HTTP listener, for users without Grafana: one embedded HTML page and
// the JSON endpoints it draws from, read from the BI views.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
)

//go:embed assets
var assets embed.FS

// Store is the part of the ClickHouse store the page reads.
type Store interface {
	DailyTotals(ctx context.Context, account string, from, to time.Time) ([]chstore.DayTotals, error)
	TopCampaigns(ctx context.Context, account string, from, to time.Time, limit int) ([]chstore.CampaignTotals, error)
	TopLinks(ctx context.Context, account string, from, to time.Time, limit int) ([]chstore.LinkTotals, error)
	Pipeline(ctx context.Context, account string) (chstore.PipelineStatus, error)
}

// APIPrefix is where the JSON endpoints live.
const APIPrefix = "/api/bi/"

// Mux is what the page mounts on (the daemon's ops server).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Mount serves the page at exactly / and the JSON under APIPrefix.
// now gives "today" for the default range (the last 30 UTC days).
func Mount(m Mux, store Store, account string, now func() time.Time) {
	h := &handler{store: store, account: account, now: now}
	m.Handle("GET /{$}", http.HandlerFunc(h.page))
	m.Handle("GET "+APIPrefix+"daily", http.HandlerFunc(h.daily))
	m.Handle("GET "+APIPrefix+"campaigns", http.HandlerFunc(h.campaigns))
	m.Handle("GET "+APIPrefix+"links", http.HandlerFunc(h.links))
	m.Handle("GET "+APIPrefix+"pipeline", http.HandlerFunc(h.pipeline))
}

type handler struct {
	store   Store
	account string
	now     func() time.Time
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("assets/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}

// rangeOf reads from/to (YYYY-MM-DD, to exclusive); the default is the 30
// UTC days up to and including today.
func (h *handler) rangeOf(r *http.Request) (from, to time.Time, err error) {
	to = h.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	from = to.AddDate(0, 0, -30)
	if v := r.URL.Query().Get("from"); v != "" {
		if from, err = time.Parse(time.DateOnly, v); err != nil {
			return from, to, fmt.Errorf("from: want YYYY-MM-DD, got %q", v)
		}
	}
	if v := r.URL.Query().Get("to"); v != "" {
		if to, err = time.Parse(time.DateOnly, v); err != nil {
			return from, to, fmt.Errorf("to: want YYYY-MM-DD, got %q", v)
		}
	}
	if !to.After(from) {
		return from, to, fmt.Errorf("to (%s) must be after from (%s)", to.Format(time.DateOnly), from.Format(time.DateOnly))
	}
	return from, to, nil
}

func limitOf(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || n <= 0 || n > 1000 {
		return 10
	}
	return n
}

func (h *handler) daily(w http.ResponseWriter, r *http.Request) {
	from, to, err := h.rangeOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, err := h.store.DailyTotals(r.Context(), h.account, from, to)
	reply(w, v, err)
}

func (h *handler) campaigns(w http.ResponseWriter, r *http.Request) {
	from, to, err := h.rangeOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, err := h.store.TopCampaigns(r.Context(), h.account, from, to, limitOf(r))
	reply(w, v, err)
}

func (h *handler) links(w http.ResponseWriter, r *http.Request) {
	from, to, err := h.rangeOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, err := h.store.TopLinks(r.Context(), h.account, from, to, limitOf(r))
	reply(w, v, err)
}

func (h *handler) pipeline(w http.ResponseWriter, r *http.Request) {
	v, err := h.store.Pipeline(r.Context(), h.account)
	reply(w, v, err)
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		// The store's errors are already scrubbed of secrets.
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
