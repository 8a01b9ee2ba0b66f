// Package ftpd runs an embedded FTP server over a local directory. The
// simulator delivers export files through it, and tests use it as the
// customer's FTP server that the product pulls from.
package ftpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	ftpserver "goftp.io/server/v2"
	"goftp.io/server/v2/driver/file"
)

// Options configures Start.
type Options struct {
	// Root is the directory served as "/". It must exist.
	Root string
	// User and Password are the only credentials accepted.
	User, Password string
	// Addr is the control connection address; default 127.0.0.1:0 (a free port).
	Addr string
	// PassivePorts is an optional "min-max" range for data connections;
	// empty lets the OS pick a free port for each transfer.
	PassivePorts string
	// Logger receives the FTP dialogue at debug level (passwords masked);
	// nil keeps the server silent.
	Logger *slog.Logger
	// WrapRead, when set, wraps the reader of every file a client
	// downloads (RETR): fault injection, e.g. a connection dropped mid-file.
	WrapRead func(path string, r io.ReadCloser) io.ReadCloser
	// TLSConfig, when set, offers explicit FTPS (AUTH TLS, RFC 4217) with
	// this certificate. Plain clients are still served (goftp/server v2.0.3
	// drops its ForceTLS option), which lets the simulator upload plainly.
	TLSConfig *tls.Config
}

// Server is a running FTP server. Close stops it.
type Server struct {
	srv  *ftpserver.Server
	ln   *trackingListener
	host string
	port int
	done chan struct{}
	once sync.Once
	err  error
}

// Start listens on o.Addr and serves o.Root until Close.
func Start(o Options) (*Server, error) {
	if o.Root == "" {
		return nil, errors.New("ftpd: Root is required")
	}
	if fi, err := os.Stat(o.Root); err != nil {
		return nil, fmt.Errorf("ftpd: root directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("ftpd: root %s is not a directory", o.Root)
	}
	if o.User == "" {
		return nil, errors.New("ftpd: User is required")
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	drv, err := file.NewDriver(o.Root)
	if err != nil {
		return nil, fmt.Errorf("ftpd: file driver for %s: %w", o.Root, err)
	}
	var fdrv ftpserver.Driver = drv
	if o.WrapRead != nil {
		fdrv = wrapDriver{Driver: drv, wrap: o.WrapRead}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ftpd: listen on %s: %w", addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		// Listening on all interfaces: hand clients an address they can dial.
		host = "127.0.0.1"
	}
	var logger ftpserver.Logger = &ftpserver.DiscardLogger{}
	if o.Logger != nil {
		logger = slogLogger{o.Logger}
	}
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Driver:       fdrv,
		Auth:         &ftpserver.SimpleAuth{Name: o.User, Password: o.Password},
		Perm:         ftpserver.NewSimplePerm("ftp", "ftp"),
		Name:         "emarsys-sim ftpd",
		Hostname:     tcp.IP.String(),
		Port:         tcp.Port,
		PassivePorts: o.PassivePorts,
		Logger:       logger,
		Commands:     commands(),
		TLS:          o.TLSConfig != nil,
		TLSConfig:    o.TLSConfig,
		ExplicitFTPS: o.TLSConfig != nil,
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("ftpd: new server: %w", err)
	}
	s := &Server{
		srv:  srv,
		ln:   &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}},
		host: host,
		port: tcp.Port,
		done: make(chan struct{}),
	}
	serve := func() error { return srv.Serve(s.ln) }
	if o.TLSConfig != nil {
		// The library arms its TLS settings only in ListenAndServe: give
		// the port over to it. Close then cannot drop open sessions.
		ln.Close()
		s.ln = nil
		serve = srv.ListenAndServe
	}
	go func() {
		defer close(s.done)
		err := serve()
		if err != nil && !errors.Is(err, ftpserver.ErrServerClosed) && o.Logger != nil {
			o.Logger.Debug("ftpd: serve ended", "err", err)
		}
	}()
	if o.TLSConfig != nil {
		// ListenAndServe binds in its goroutine: return only once it listens,
		// or a client dials too early and a Close before the bind never ends.
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.done:
				return nil, fmt.Errorf("ftpd: TLS server on %s stopped at start", s.Addr())
			default:
			}
			if time.Now().After(deadline) {
				srv.Shutdown()
				return nil, fmt.Errorf("ftpd: TLS server on %s not listening after 5 s: %w", s.Addr(), err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return s, nil
}

// Host is the IP address clients should dial (127.0.0.1 when listening on
// all interfaces).
func (s *Server) Host() string { return s.host }

// Port is the TCP port of the control connection.
func (s *Server) Port() int { return s.port }

// Addr is host:port of the control connection.
func (s *Server) Addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// Close stops accepting and drops open sessions: the library's Shutdown leaves
// sessions running, which would leak goroutines across tests.
func (s *Server) Close() error {
	s.once.Do(func() {
		if s.ln != nil {
			// Closing our own listener ends Serve whether or not it has begun:
			// the library's Shutdown finds no listener before Serve has set
			// it, leaves Serve running and Close would wait for ever.
			s.ln.Listener.Close()
			s.ln.closeConns()
			<-s.done
			return
		}
		s.err = s.srv.Shutdown()
		<-s.done
	})
	return s.err
}

// trackingListener remembers accepted connections so Close can end them.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeConns() {
	l.mu.Lock()
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	// Closed outside the lock: trackedConn.Close takes it to forget itself.
	for _, c := range conns {
		c.Close()
	}
}

// trackedConn forgets itself on Close so long-running servers do not grow
// the set. LocalAddr is passed through untouched: the library type-asserts
// it to *net.TCPAddr for PASV replies.
type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// commands is the library's command set with SIZE replaced: the library's
// SIZE writes to the global log package on a missing file (which cannot be
// silenced without touching global state) and answers 450 where real
// servers say 550.
func commands() map[string]ftpserver.Command {
	cmds := make(map[string]ftpserver.Command, len(ftpserver.DefaultCommands()))
	for k, v := range ftpserver.DefaultCommands() {
		cmds[k] = v // copied: the library's map is shared by all servers
	}
	cmds["SIZE"] = sizeCommand{}
	return cmds
}

type sizeCommand struct{}

func (sizeCommand) IsExtend() bool     { return false }
func (sizeCommand) RequireParam() bool { return true }
func (sizeCommand) RequireAuth() bool  { return true }

func (sizeCommand) Execute(sess *ftpserver.Session, param string) {
	p := sess.BuildPath(param)
	fi, err := sess.Server().Driver.Stat(&ftpserver.Context{Sess: sess, Cmd: "SIZE", Param: param}, p)
	switch {
	case err != nil:
		sess.WriteMessage(550, "Could not get file size: no such file")
	case !fi.Mode().IsRegular():
		sess.WriteMessage(550, "Could not get file size: not a regular file")
	default:
		sess.WriteMessage(213, strconv.FormatInt(fi.Size(), 10))
	}
}

// slogLogger routes the library's log lines to slog at debug level.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Print(sessionID string, message any) {
	s.l.Debug("ftpd", "session", sessionID, "msg", fmt.Sprint(message))
}

func (s slogLogger) Printf(sessionID string, format string, v ...any) {
	s.l.Debug("ftpd", "session", sessionID, "msg", fmt.Sprintf(format, v...))
}

func (s slogLogger) PrintCommand(sessionID string, command string, params string) {
	if command == "PASS" {
		params = "***"
	}
	s.l.Debug("ftpd command", "session", sessionID, "cmd", command, "params", params)
}

func (s slogLogger) PrintResponse(sessionID string, code int, message string) {
	s.l.Debug("ftpd response", "session", sessionID, "code", code, "msg", message)
}

// wrapDriver passes downloads through Options.WrapRead.
type wrapDriver struct {
	ftpserver.Driver
	wrap func(string, io.ReadCloser) io.ReadCloser
}

func (d wrapDriver) GetFile(ctx *ftpserver.Context, path string, offset int64) (int64, io.ReadCloser, error) {
	n, r, err := d.Driver.GetFile(ctx, path, offset)
	if err != nil {
		return n, r, err
	}
	return n, d.wrap(path, r), nil
}
