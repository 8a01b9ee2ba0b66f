package main

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

// privateClickHouse is a clickhouse-server of our own, on ports of its own,
// so that killing it never touches the ClickHouse other tests use.
type privateClickHouse struct {
	dir                 string
	tcp, http, intersrv int
	cmd                 *exec.Cmd
	exited              chan struct{}
	configFile          string // default /etc/clickhouse-server/config.xml
}

func (p *privateClickHouse) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.tcp)) }

// start launches the server and waits until it answers.
func (p *privateClickHouse) start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(p.dir, "tmp"), 0o755); err != nil {
		return fmt.Errorf("private ClickHouse: data folder: %w", err)
	}
	cfg := p.configFile
	if cfg == "" {
		cfg = "/etc/clickhouse-server/config.xml"
	}
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		return fmt.Errorf("private ClickHouse: clickhouse-server not found (apt-get install clickhouse-server, or run `make clickhouse-up` once): %w", err)
	}
	d := p.dir + "/"
	cmd := exec.Command(bin, "--config-file="+cfg, "--",
		"--path="+d, "--tmp_path="+d+"tmp/", "--logger.log="+d+"log", "--logger.errorlog="+d+"err",
		"--listen_host=127.0.0.1", "--tcp_port="+strconv.Itoa(p.tcp), "--http_port="+strconv.Itoa(p.http),
		"--interserver_http_port="+strconv.Itoa(p.intersrv))
	cmd.Dir = p.dir
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
			return fmt.Errorf("private ClickHouse exited at start; see %s", filepath.Join(p.dir, "err"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", p.addr(), time.Second); err == nil {
			c.Close()
			return nil
		}
	}
	p.kill()
	return fmt.Errorf("private ClickHouse did not answer on %s within 90s; see %s", p.addr(), filepath.Join(p.dir, "err"))
}

// kill ends the server with SIGKILL, as a crash or an OOM kill would.
func (p *privateClickHouse) kill() {
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

// stop ends the server cleanly (SIGTERM, then SIGKILL after 30s).
func (p *privateClickHouse) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		p.cmd = nil
	case <-time.After(30 * time.Second):
		p.kill()
	}
}
