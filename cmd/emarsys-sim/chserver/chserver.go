// Package chserver runs a clickhouse-server of a test's or tool's own, on
// ports of its own and with a private data folder, so that stopping or
// killing it never touches the ClickHouse other tests share. The chaos suite
// and the readiness test use it.
package chserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Server is one private clickhouse-server on loopback.
type Server struct {
	Dir                    string // data, logs and tmp
	TCP, HTTP, Interserver int    // its ports
	ConfigFile             string // default /etc/clickhouse-server/config.xml

	cmd    *exec.Cmd
	exited chan struct{}
}

// Addr is the native protocol address.
func (p *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.TCP)) }

// Start launches the server and waits until it answers.
func (p *Server) Start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(p.Dir, "tmp"), 0o755); err != nil {
		return fmt.Errorf("private ClickHouse: data folder: %w", err)
	}
	cfg := p.ConfigFile
	if cfg == "" {
		cfg = "/etc/clickhouse-server/config.xml"
	}
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		return fmt.Errorf("private ClickHouse: clickhouse-server not found (apt-get install clickhouse-server, or run `make clickhouse-up` once): %w", err)
	}
	d := p.Dir + "/"
	cmd := exec.Command(bin, "--config-file="+cfg, "--",
		"--path="+d, "--tmp_path="+d+"tmp/", "--logger.log="+d+"log", "--logger.errorlog="+d+"err",
		"--listen_host=127.0.0.1", "--tcp_port="+strconv.Itoa(p.TCP), "--http_port="+strconv.Itoa(p.HTTP),
		"--interserver_http_port="+strconv.Itoa(p.Interserver))
	cmd.Dir = p.Dir
	// Its own process group: a ^C to the suite must not reach it before we stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("private ClickHouse: start %s: %w", bin, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("private ClickHouse exited at start; see %s", filepath.Join(p.Dir, "err"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	p.Kill()
	return fmt.Errorf("private ClickHouse did not answer on %s within 90s; see %s", p.Addr(), filepath.Join(p.Dir, "err"))
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (p *Server) Kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
	}
	p.cmd = nil
}

// Stop ends the server cleanly (SIGTERM, then SIGKILL after 30s).
func (p *Server) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		p.cmd = nil
	case <-time.After(30 * time.Second):
		p.Kill()
	}
}
