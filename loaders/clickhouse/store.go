package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Config says where the warehouse is and how to talk to it.
type Config struct {
	Addr        string        // host:port of the native protocol; default 127.0.0.1:9000
	Database    string        // default schema.DefaultDatabase
	User        string        // default "default"
	Password    string        // never printed: errors are scrubbed of it
	DialTimeout time.Duration // default 10s
	BatchRows   int           // rows per block sent (stage and direct); default 2500
	// Cluster, when set, is the name of a cluster in the servers'
	// remote_servers: the schema is made ON CLUSTER with Replicated engines
	// and the facts go through a Distributed table (cluster.go).
	Cluster string
	// Compression of the native protocol: "auto" (or empty) is LZ4 unless
	// Addr is a loopback address, "lz4" or "none" force it.
	Compression string
	// ReplicaWait bounds how long a commit in cluster mode waits for the
	// fact table's replicas to catch up; default 60s.
	ReplicaWait time.Duration
}

const (
	defaultAddr        = "127.0.0.1:9000"
	defaultDialTimeout = 10 * time.Second
	defaultBatchRows   = 2_500
)

// Store is a connection pool to one ClickHouse database plus what the
// product needs to know about the server. It is safe for concurrent use.
type Store struct {
	conn     driver.Conn
	db       string
	password string
	batch    int
	version  string

	cluster     string // "" on one server
	user        string
	dialTimeout time.Duration
	replicaWait time.Duration
	major       int
	minor       int

	// mu guards lastVersion, which keeps ledger versions strictly increasing
	// per Store even when the wall clock steps back or two saves share a ns.
	mu          sync.Mutex
	lastVersion uint64

	// keysAgree: the server's cityHash64 gives the Go response keys, so
	// the direct path may be used (key.go).
	keysAgree bool

	// commitMu holds one mutex per account, which makes the commits of an
	// account take turns: two overlapping windows committing at once could
	// both find the same rows missing (the anti-join is not atomic with the
	// insert). Accounts never share a response (the key and every check
	// name the account), so one account's commit, or its wait for replicas
	// in cluster mode, never holds up another's. Across processes the
	// account lease (lease.go) gives the same guarantee.
	commitMuMu sync.Mutex
	commitMu   map[string]*sync.Mutex
}

// commitLock is the mutex of account's commits.
func (s *Store) commitLock(account string) *sync.Mutex {
	s.commitMuMu.Lock()
	defer s.commitMuMu.Unlock()
	if s.commitMu == nil {
		s.commitMu = map[string]*sync.Mutex{}
	}
	m := s.commitMu[account]
	if m == nil {
		m = &sync.Mutex{}
		s.commitMu[account] = m
	}
	return m
}

// Open connects (native protocol, LZ4), pings and reads the server version.
// The database need not exist yet: Migrate creates it, and every statement
// names it explicitly, so the session's default database is left alone.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Addr == "" {
		cfg.Addr = defaultAddr
	}
	if cfg.Database == "" {
		cfg.Database = schema.DefaultDatabase
	}
	if cfg.User == "" {
		cfg.User = "default"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = defaultBatchRows
	}
	if cfg.Cluster != "" && !schema.ValidClusterName(cfg.Cluster) {
		return nil, fmt.Errorf("open clickhouse: cluster name %q must be letters, digits and _", cfg.Cluster)
	}
	if cfg.ReplicaWait <= 0 {
		cfg.ReplicaWait = time.Minute
	}
	if !schema.ValidIdentifier(cfg.Database) {
		return nil, fmt.Errorf("open clickhouse: database name %q must be lowercase letters, digits and _, starting with a letter", cfg.Database)
	}
	comp, err := compression(cfg.Compression, cfg.Addr)
	if err != nil {
		return nil, err
	}
	conn, err := ch.Open(&ch.Options{
		Addr:        []string{cfg.Addr},
		Auth:        ch.Auth{Username: cfg.User, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		Compression: comp,
		// A load holds up to three INSERT streams at once (two direct
		// shards and the stage) plus one statement at a time, and up to
		// 16 windows may load at once (schedule.loads); the ledger, the
		// lease and the aggregates (three at once) need more. The pool
		// opens only what is used; idle ones are few.
		MaxOpenConns: 72,
		MaxIdleConns: 4,
	})
	if err != nil {
		return nil, scrub(fmt.Errorf("open clickhouse at %s as %s: %w", cfg.Addr, cfg.User, err), cfg.Password)
	}
	s := &Store{conn: conn, db: cfg.Database, password: cfg.Password, batch: cfg.BatchRows,
		cluster: cfg.Cluster, user: cfg.User, dialTimeout: cfg.DialTimeout, replicaWait: cfg.ReplicaWait}
	if err := s.Ping(ctx); err != nil {
		conn.Close()
		return nil, scrub(fmt.Errorf("connect to clickhouse at %s as %s: %w", cfg.Addr, cfg.User, err), cfg.Password)
	}
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s.version); err != nil {
		conn.Close()
		return nil, s.scrub(fmt.Errorf("read clickhouse server version: %w", err))
	}
	s.major, s.minor = parseVersion(s.version)
	if s.keysAgree, err = s.checkKeys(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	if s.cluster != "" {
		if _, err := s.clusterServers(ctx); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return s, nil
}

// compression picks the native protocol's compression (Config.Compression).
// auto follows clickhouse-client: none when the server is on this host,
// where LZ4 costs CPU on both ends (~15% of the product's in a load) and saves
// nothing, LZ4 otherwise.
func compression(mode, addr string) (*ch.Compression, error) {
	switch mode {
	case "lz4":
		return &ch.Compression{Method: ch.CompressionLZ4}, nil
	case "none":
		return nil, nil
	case "", "auto":
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		if host == "localhost" {
			return nil, nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil, nil
		}
		return &ch.Compression{Method: ch.CompressionLZ4}, nil
	}
	return nil, fmt.Errorf("open clickhouse: compression %q must be auto, lz4 or none", mode)
}

// Close releases the connections.
func (s *Store) Close() error {
	if err := s.conn.Close(); err != nil {
		return s.scrub(fmt.Errorf("close clickhouse connection: %w", err))
	}
	return nil
}

// DirectLoads reports whether loads may take the direct path (direct.go):
// one server, and its cityHash64 gives the Go response keys.
func (s *Store) DirectLoads() bool { return s.cluster == "" && s.keysAgree }

// ServerVersion is what SELECT version() said at Open, e.g. "18.16.1".
func (s *Store) ServerVersion() string { return s.version }

// Database is the database the Store works in.
func (s *Store) Database() string { return s.db }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return s.scrub(fmt.Errorf("ping clickhouse: %w", err))
	}
	return nil
}

// atLeast reports whether the server is version major.minor or newer.
func (s *Store) atLeast(major, minor int) bool {
	return s.major > major || (s.major == major && s.minor >= minor)
}

// nextVersion returns a ledger row version: wall-clock ns, forced to grow.
func (s *Store) nextVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := uint64(time.Now().UnixNano())
	if v <= s.lastVersion {
		v = s.lastVersion + 1
	}
	s.lastVersion = v
	return v
}

func parseVersion(v string) (major, minor int) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 1 {
		major, _ = strconv.Atoi(parts[0])
	}
	if len(parts) >= 2 {
		minor, _ = strconv.Atoi(parts[1])
	}
	return major, minor
}

// table returns the quoted, database-qualified name of a table.
func (s *Store) table(name string) string { return quoteIdent(s.db) + "." + quoteIdent(name) }

// exec runs one statement; errors carry what was being done, never the password.
func (s *Store) exec(ctx context.Context, what, query string) error {
	if err := s.conn.Exec(ctx, query); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

func (s *Store) scrub(err error) error { return scrub(err, s.password) }

// scrub replaces the password in an error's text. Drivers have echoed DSNs
// and options in errors before; this makes "never in an error" independent
// of what any driver version does.
func scrub(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &scrubbedError{msg: strings.ReplaceAll(err.Error(), password, "***"), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Unwrap keeps errors.Is/As working (e.g. for context.DeadlineExceeded).
func (e *scrubbedError) Unwrap() error { return e.err }

// quoteIdent backtick-quotes an identifier. Every identifier passed here is
// already validated (catalogue, ValidIdentifier); the escaping is a second wall.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

// quoteString makes a ClickHouse string literal. Backslash and quote are the
// only characters with meaning inside '...', so escaping both is complete.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

// dateTimeLit is a DateTime literal from a Unix time: a number leaves no room
// for the server's time zone to reinterpret a wall-clock text.
func dateTimeLit(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }

// dateLit is the UTC calendar date of t as a Date literal.
func dateLit(t time.Time) string { return "toDate('" + t.UTC().Format("2006-01-02") + "')" }

var errClosed = errors.New("load already committed or aborted")
