// Package fetch reads export files where the vendor leaves them. Files are
// streamed: nothing here holds a whole file in memory.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"
)

// DefaultTimeout bounds each FTP step (dial, one command, one read) when
// FTPConfig.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ErrNotFound is wrapped when the server says the file does not exist.
var ErrNotFound = errors.New("file not found on the FTP server")

// ErrLoginRefused is wrapped when the server refuses the user and password:
// Emarsys, delivering with the same credentials, is refused too.
var ErrLoginRefused = errors.New("check ftp.user and ftp.password: Emarsys delivers with the same credentials and is refused too")

// FTPConfig says where the export files are. Password is never put in an
// error or a log line.
type FTPConfig struct {
	Host     string
	Port     int // default 21
	User     string
	Password string
	Folder   string        // directory of the files; empty = login directory
	Timeout  time.Duration // each step; default DefaultTimeout
	// MaxResumes bounds how often a broken download is resumed (REST);
	// 0 means DefaultMaxResumes, a negative value never resumes.
	MaxResumes int
	// TLS asks for explicit FTPS (AUTH TLS) and verifies the server's
	// certificate against RootCAs (nil: the system's roots) and Host.
	TLS     bool
	RootCAs *x509.CertPool
}

// LoadCAFile reads PEM certificates for FTPConfig.RootCAs.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("FTP CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("FTP CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// String hides the password from %v and %s.
func (c FTPConfig) String() string {
	return fmt.Sprintf("{Host:%s Port:%d User:%s Password:*** Folder:%s Timeout:%s}", c.Host, c.Port, c.User, c.Folder, c.Timeout)
}

// GoString hides the password from %#v.
func (c FTPConfig) GoString() string { return "fetch.FTPConfig" + c.String() }

func (c FTPConfig) addr() string {
	port := c.Port
	if port == 0 {
		port = 21
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

func (c FTPConfig) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// session is one logged-in FTP control connection. It tracks every TCP
// connection it dials (control and data) so that each step can get a
// deadline and a cancelled context can break any blocked read or write.
type session struct {
	cfg     FTPConfig
	ctx     context.Context
	conn    *ftp.ServerConn
	stop    func() bool // unregisters the context watcher
	mu      sync.Mutex
	tracked []net.Conn
}

// dial connects and logs in, and changes to cfg.Folder if set.
// Login logs in and out again: a cheap pre-flight check of the credentials.
func Login(ctx context.Context, cfg FTPConfig) error {
	cfg.Folder = ""
	s, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	return s.close()
}

func dial(ctx context.Context, cfg FTPConfig) (*session, error) {
	if cfg.Host == "" {
		return nil, errors.New("FTP host is empty")
	}
	if err := checkDir(cfg.Folder); err != nil {
		return nil, fmt.Errorf("FTP folder %q: %w", cfg.Folder, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect to FTP %s: %w", cfg.addr(), err)
	}
	s := &session{cfg: cfg, ctx: ctx}
	s.stop = context.AfterFunc(ctx, func() {
		// Unblock whatever is waiting on the network; the step then fails
		// and reports ctx.Err().
		s.setDeadline(time.Unix(1, 0))
	})
	d := net.Dialer{Timeout: cfg.timeout()}
	opts := []ftp.DialOption{}
	var tlsConf *tls.Config
	if cfg.TLS {
		tlsConf = &tls.Config{
			RootCAs:    cfg.RootCAs,
			ServerName: cfg.Host,
			MinVersion: tls.VersionTLS12,
			// Servers like vsftpd (require_ssl_reuse) want the data
			// connection to resume the control connection's session.
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
		}
		opts = append(opts, ftp.DialWithExplicitTLS(tlsConf))
	}
	dials := 0
	conn, err := ftp.Dial(cfg.addr(), append(opts,
		ftp.DialWithTimeout(cfg.timeout()),
		ftp.DialWithShutTimeout(cfg.timeout()),
		ftp.DialWithDialFunc(func(network, address string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			c.SetDeadline(time.Now().Add(cfg.timeout()))
			s.mu.Lock()
			s.tracked = append(s.tracked, c)
			dials++
			first := dials == 1
			s.mu.Unlock()
			if tlsConf != nil && !first {
				// The library upgrades the control connection (AUTH TLS)
				// itself, but leaves data connections made by a custom dial
				// function plain: PROT P wants them in TLS too.
				return tls.Client(c, tlsConf), nil
			}
			return c, nil
		}))...)
	if err != nil {
		s.stop()
		s.closeAll()
		if terr := untrusted(cfg, err); terr != nil {
			return nil, terr
		}
		return nil, fmt.Errorf("connect to FTP %s: %w", cfg.addr(), s.cause(err))
	}
	s.conn = conn

	s.step()
	if err := conn.Login(cfg.User, cfg.Password); err != nil {
		err = s.cause(err)
		s.close()
		// The TLS handshake happens with the first command after AUTH TLS.
		if terr := untrusted(cfg, err); terr != nil {
			return nil, terr
		}
		var te *textproto.Error
		if errors.As(err, &te) {
			if te.Code == 530 {
				return nil, fmt.Errorf("FTP login as %s at %s refused: %d %s: %w", cfg.User, cfg.addr(), te.Code, redact(te.Msg, cfg.Password), ErrLoginRefused)
			}
			return nil, fmt.Errorf("FTP login as %s at %s refused: %d %s", cfg.User, cfg.addr(), te.Code, redact(te.Msg, cfg.Password))
		}
		return nil, fmt.Errorf("FTP login as %s at %s failed: %s", cfg.User, cfg.addr(), redact(err.Error(), cfg.Password))
	}
	if cfg.Folder != "" {
		s.step()
		if err := conn.ChangeDir(cfg.Folder); err != nil {
			err = s.cause(err)
			s.close()
			return nil, fmt.Errorf("FTP %s: change to folder %q: %w", cfg.addr(), cfg.Folder, notFound(err))
		}
	}
	return s, nil
}

// untrusted explains a certificate the client refused; nil for other errors.
func untrusted(cfg FTPConfig, err error) error {
	var ce *tls.CertificateVerificationError
	var he x509.HostnameError
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ce) || errors.As(err, &he) || errors.As(err, &ua) {
		return fmt.Errorf("connect to FTP %s with TLS: the server's certificate is not trusted: %s (set ftp.ca_file to the CA that signed it, and use the name in the certificate as ftp.host)",
			cfg.addr(), redact(err.Error(), cfg.Password))
	}
	return nil
}

// step gives every live connection a fresh deadline for the next step,
// unless the context has ended: then it must not undo the forced deadline.
func (s *session) step() { s.setDeadline(time.Now().Add(s.cfg.timeout())) }

// setDeadline checks the context under the lock that the cancel watcher
// also takes, so a cancel racing with step is never overwritten.
func (s *session) setDeadline(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		t = time.Unix(1, 0)
	}
	for _, c := range s.tracked {
		c.SetDeadline(t)
	}
}

func (s *session) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.tracked {
		c.Close()
	}
	s.tracked = nil
}

// close sends QUIT (bounded by the step deadline) and drops the connections.
func (s *session) close() error {
	var err error
	if s.conn != nil {
		s.step()
		err = s.conn.Quit()
	}
	if s.stop != nil {
		s.stop()
	}
	s.closeAll()
	return err
}

// cause prefers the context's error: after a cancel the network error is
// just the forced deadline.
func (s *session) cause(err error) error {
	if cerr := s.ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// notFound marks 450/550 replies with ErrNotFound.
func notFound(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && (te.Code == ftp.StatusFileUnavailable || te.Code == ftp.StatusFileActionIgnored) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// notImplemented reports replies meaning the server lacks a command.
func notImplemented(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && (te.Code == ftp.StatusNotImplemented ||
		te.Code == ftp.StatusBadCommand || te.Code == ftp.StatusNotImplementedParameter)
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "***")
}
