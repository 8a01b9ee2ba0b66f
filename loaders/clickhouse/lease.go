package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const leaseTable = "etl_leases"

// Lease is the latest claim on an account's lease.
type Lease struct {
	Account   string
	Holder    string    // empty when released
	ExpiresAt time.Time // UTC, whole seconds
}

// Free reports whether nobody holds the lease at now.
func (l Lease) Free(now time.Time) bool { return l.Holder == "" || !now.Before(l.ExpiresAt) }

// LeaseHeldError is returned when another holder owns an unexpired lease.
type LeaseHeldError struct {
	Lease Lease
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("account %s is being loaded by %s (lease until %s): stop that instance, or wait for its lease to expire",
		e.Lease.Account, e.Lease.Holder, e.Lease.ExpiresAt.UTC().Format(time.RFC3339))
}

// ErrLeaseLost is returned by RenewLease when a newer claim than ours won.
var ErrLeaseLost = errors.New("lease lost to another holder")

// LeaseOptions tune AcquireLease.
type LeaseOptions struct {
	TTL time.Duration // how long a claim lasts without renewal; at least 2s
	// Settle is how long to wait between writing a claim and reading it
	// back, and the longest the read-before-write may take; default 300ms.
	Settle time.Duration
	// Stale, when set, says that a holder is known to be gone (for
	// instance a dead process on this host), so its unexpired lease may
	// be taken over at once.
	Stale func(holder string) bool
}

// ReadLease returns the newest claim on account's lease (zero Lease when none).
func (s *Store) ReadLease(ctx context.Context, account string) (Lease, error) {
	q := fmt.Sprintf(`SELECT count(), argMax(holder, version), argMax(expires_at, version) FROM %s WHERE account = %s`,
		s.table(leaseTable), quoteString(account))
	var (
		n   uint64
		l   = Lease{Account: account}
		exp time.Time
	)
	if err := s.conn.QueryRow(ctx, q).Scan(&n, &l.Holder, &exp); err != nil {
		return Lease{}, s.scrub(fmt.Errorf("read lease of account %s: %w", account, err))
	}
	if n == 0 {
		return Lease{Account: account}, nil
	}
	l.ExpiresAt = exp.UTC()
	return l, nil
}

func (s *Store) writeLease(ctx context.Context, l Lease) error {
	what := fmt.Sprintf("write lease of account %s", l.Account)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(leaseTable)+" (account, holder, expires_at, version)")
	if err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	defer batch.Abort()
	if err := batch.Append(l.Account, l.Holder, l.ExpiresAt.UTC(), s.nextVersion()); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	if err := batch.Send(); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// AcquireLease claims account's lease for holder, or returns a
// *LeaseHeldError naming the current holder and its expiry.
//
// etl_leases is an append-only ReplacingMergeTree read with argMax by
// version, so a claim is: read (free, expired, stale or ours?), write our
// claim, wait Settle, read back; we hold it only if the newest claim is ours.
// Two instances racing both read back the same newest claim, so at most one
// wins, provided each one's read-to-write gap is shorter than Settle (a
// slower claim gives up and reports the lease as busy) and inserts are
// visible once acknowledged (true on a single server; in cluster mode the
// lease table is replicated and read on the connected server, so every
// instance of an account must connect to the same server: README, Cluster mode).
func (s *Store) AcquireLease(ctx context.Context, account, holder string, o LeaseOptions) (Lease, error) {
	cur, confirm, err := s.ClaimLease(ctx, account, holder, o)
	if err != nil {
		return cur, err
	}
	return confirm(ctx)
}

// ClaimLease is AcquireLease in two steps. It reads and writes the claim
// and returns at once with confirm, which waits out what is left of Settle
// since the write and reads the claim back: the lease is held only once
// confirm returns nil (else a *LeaseHeldError, or the reason it could not
// tell). Until then a racing instance may hold it, so the caller does
// nothing that another instance reads or that cannot be undone (ledger
// writes, commits, export requests); work on its own behalf, such as
// streaming a file, may overlap the wait.
func (s *Store) ClaimLease(ctx context.Context, account, holder string, o LeaseOptions) (Lease, func(context.Context) (Lease, error), error) {
	if holder == "" {
		return Lease{}, nil, fmt.Errorf("acquire lease of account %s: holder is empty", account)
	}
	if o.TTL < 2*time.Second {
		return Lease{}, nil, fmt.Errorf("acquire lease of account %s: ttl %s is shorter than 2s", account, o.TTL)
	}
	if o.Settle <= 0 {
		o.Settle = 300 * time.Millisecond
	}
	t0 := time.Now()
	cur, err := s.ReadLease(ctx, account)
	if err != nil {
		return Lease{}, nil, err
	}
	if !cur.Free(time.Now()) && cur.Holder != holder && (o.Stale == nil || !o.Stale(cur.Holder)) {
		return cur, nil, &LeaseHeldError{Lease: cur}
	}
	mine := Lease{Account: account, Holder: holder, ExpiresAt: leaseExpiry(time.Now(), o.TTL)}
	if err := s.writeLease(ctx, mine); err != nil {
		return Lease{}, nil, err
	}
	written := time.Now()
	if written.Sub(t0) > o.Settle {
		// Someone may have claimed between our read and our write, later
		// than their own read-back: withdraw and report busy.
		_ = s.ReleaseLease(context.WithoutCancel(ctx), account, holder)
		return Lease{}, nil, fmt.Errorf("acquire lease of account %s: the claim took %s, longer than %s: ClickHouse is slow, try again",
			account, written.Sub(t0).Round(time.Millisecond), o.Settle)
	}
	confirm := func(ctx context.Context) (Lease, error) {
		select {
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("acquire lease of account %s: %w", account, ctx.Err())
		case <-time.After(time.Until(written.Add(o.Settle))):
		}
		back, err := s.ReadLease(ctx, account)
		if err != nil {
			return Lease{}, err
		}
		if back.Holder != holder {
			return back, &LeaseHeldError{Lease: back}
		}
		return back, nil
	}
	return mine, confirm, nil
}

// RenewLease extends holder's lease by ttl from now. It returns ErrLeaseLost
// (wrapped) when the newest claim is not holder's or has expired, so an
// instance that was paused past its expiry never carries on unknowingly.
func (s *Store) RenewLease(ctx context.Context, account, holder string, ttl time.Duration) (Lease, error) {
	cur, err := s.ReadLease(ctx, account)
	if err != nil {
		return Lease{}, err
	}
	if cur.Holder != holder {
		return cur, fmt.Errorf("renew lease of account %s: now held by %q until %s: %w",
			account, cur.Holder, cur.ExpiresAt.Format(time.RFC3339), ErrLeaseLost)
	}
	if !time.Now().Before(cur.ExpiresAt) {
		return cur, fmt.Errorf("renew lease of account %s: it expired at %s: %w", account, cur.ExpiresAt.Format(time.RFC3339), ErrLeaseLost)
	}
	next := Lease{Account: account, Holder: holder, ExpiresAt: leaseExpiry(time.Now(), ttl)}
	if err := s.writeLease(ctx, next); err != nil {
		return cur, err
	}
	return next, nil
}

// ReleaseLease gives holder's lease up so the next instance can start at
// once; it does nothing when the lease is not holder's.
func (s *Store) ReleaseLease(ctx context.Context, account, holder string) error {
	cur, err := s.ReadLease(ctx, account)
	if err != nil {
		return err
	}
	if cur.Holder != holder {
		return nil
	}
	return s.writeLease(ctx, Lease{Account: account, Holder: "", ExpiresAt: time.Unix(0, 0)})
}

// leaseExpiry rounds up to whole seconds: DateTime has no fraction, and
// rounding down would shorten the lease.
func leaseExpiry(now time.Time, ttl time.Duration) time.Time {
	t := now.Add(ttl)
	if t2 := t.Truncate(time.Second); !t2.Equal(t) {
		t = t2.Add(time.Second)
	}
	return t.UTC()
}
