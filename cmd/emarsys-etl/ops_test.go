package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The listener main wires: health, readiness with the scheduler check in
// daemon mode, metrics, a mounted handler; a taken port stops a daemon but
// not a one-shot run.
func TestOpsListener(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{})
	log := slog.New(slog.DiscardHandler)
	addr := freeAddr(t)
	h.Cfg.HTTP.Listen = &addr
	srv, m := newOps([]*config.Config{h.Cfg}, h.Store, log)
	m["acme"].Instrument(h.Runner)
	srv.Handle("/notify/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "mounted") }))
	stop, ok := startOps(srv, h.Cfg, []*pipeline.Runner{h.Runner}, true, log)
	if !ok {
		t.Fatal("listener did not start")
	}
	defer stop()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/healthz", []string{"ok"}},
		{"/readyz", []string{"ok   clickhouse", "ok   ledger", "ok   scheduler"}},
		{"/metrics", []string{`emarsys_etl_ledger_up{account="acme"} 1`, "emarsys_etl_build_info{", "go_goroutines"}},
		{"/notify/x", []string{"mounted"}},
	} {
		code, body := get(tc.path)
		for _, w := range tc.want {
			if code != 200 || !strings.Contains(body, w) {
				t.Errorf("GET %s: %d, want 200 and %q:\n%s", tc.path, code, w, body)
			}
		}
	}

	// The port is taken now: a second daemon refuses to start, a backfill goes on.
	srv2, _ := newOps([]*config.Config{h.Cfg}, h.Store, log)
	if _, ok := startOps(srv2, h.Cfg, []*pipeline.Runner{h.Runner}, true, log); ok {
		t.Error("a daemon started without its listener")
	}
	if stop2, ok := startOps(srv2, h.Cfg, []*pipeline.Runner{h.Runner}, false, log); !ok {
		t.Error("a one-shot run stopped for want of the listener")
	} else {
		stop2()
	}
}
