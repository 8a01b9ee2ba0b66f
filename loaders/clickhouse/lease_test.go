package clickhouse

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLeaseAcquireRenewRelease(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	o := LeaseOptions{TTL: time.Minute, Settle: 250 * time.Millisecond}

	l, err := s.AcquireLease(ctx, "acme", "host-a pid=1", o)
	if err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	if l.Holder != "host-a pid=1" || time.Until(l.ExpiresAt) < 58*time.Second {
		t.Fatalf("lease %+v", l)
	}

	// A second holder is refused with the holder and expiry in the error.
	_, err = s.AcquireLease(ctx, "acme", "host-b pid=2", o)
	var held *LeaseHeldError
	if !errors.As(err, &held) || held.Lease.Holder != "host-a pid=1" {
		t.Fatalf("second acquire: %v", err)
	}
	if !strings.Contains(err.Error(), "host-a pid=1") || !strings.Contains(err.Error(), held.Lease.ExpiresAt.Format(time.RFC3339)) {
		t.Errorf("error does not name holder and expiry: %v", err)
	}
	// Another account is independent.
	if _, err := s.AcquireLease(ctx, "other", "host-b pid=2", o); err != nil {
		t.Fatalf("other account: %v", err)
	}
	// The holder may acquire again (restart with the same identity) and renew.
	if _, err := s.AcquireLease(ctx, "acme", "host-a pid=1", o); err != nil {
		t.Fatalf("re-acquire by holder: %v", err)
	}
	if _, err := s.RenewLease(ctx, "acme", "host-a pid=1", time.Minute); err != nil {
		t.Fatalf("renew: %v", err)
	}
	// Someone who does not hold it cannot renew it.
	if _, err := s.RenewLease(ctx, "acme", "host-b pid=2", time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew by non-holder: %v", err)
	}
	// Stale holders (dead processes) are taken over before expiry.
	o2 := o
	o2.Stale = func(h string) bool { return h == "host-a pid=1" }
	if _, err := s.AcquireLease(ctx, "acme", "host-b pid=2", o2); err != nil {
		t.Fatalf("take over stale: %v", err)
	}
	if _, err := s.RenewLease(ctx, "acme", "host-a pid=1", time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old holder must see the lease lost: %v", err)
	}
	// Release frees it for the next instance at once; a release by a non-holder does nothing.
	if err := s.ReleaseLease(ctx, "acme", "host-a pid=1"); err != nil {
		t.Fatal(err)
	}
	if cur, _ := s.ReadLease(ctx, "acme"); cur.Holder != "host-b pid=2" {
		t.Fatalf("release by non-holder changed the lease: %+v", cur)
	}
	if err := s.ReleaseLease(ctx, "acme", "host-b pid=2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "acme", "host-c pid=3", o); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
}

func TestLeaseExpires(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// An expired claim, written directly: no waiting on the wall clock.
	if err := s.writeLease(ctx, Lease{Account: "acme", Holder: "gone pid=9", ExpiresAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RenewLease(ctx, "acme", "gone pid=9", time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewing an expired lease: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "acme", "new pid=10", LeaseOptions{TTL: time.Minute, Settle: 250 * time.Millisecond}); err != nil {
		t.Fatalf("acquire expired: %v", err)
	}
}

// Many instances racing for a free lease: exactly one wins.
func TestLeaseRaceOneWinner(t *testing.T) {
	s := newTestStore(t, 0)
	ctx := testCtx(t)
	if err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.AcquireLease(ctx, "acme", "racer pid="+string(rune('1'+i)), LeaseOptions{TTL: time.Minute, Settle: 300 * time.Millisecond})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d instances hold the lease, want exactly 1: %v", won, errs)
	}
}
