package pipeline

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
)

// DefaultLeaseTTL is how long an instance's claim on an account lasts
// without renewal; it is renewed every third of that.
const DefaultLeaseTTL = 60 * time.Second

// ErrGraceOver is the cause of the run context's end when windows were
// still running once the grace time after a stop request had passed.
var ErrGraceOver = errors.New("grace time after the stop request is over")

// HolderID names this process in the lease: "host pid=N run=R pidns=X". The
// run part keeps two runners in one process apart (tests); pidns (Linux) says
// which pid namespace N belongs to, see DeadLocalHolder.
func HolderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = cryptoRead(b[:])
	id := fmt.Sprintf("%s pid=%d run=%s", strings.ReplaceAll(host, " ", "_"), os.Getpid(), hex.EncodeToString(b[:]))
	if ns := pidNamespace(); ns != "" {
		id += " pidns=" + ns
	}
	return id
}

// pidNamespace identifies this process's pid namespace ("4026531836"), or is
// empty where /proc does not tell.
func pidNamespace() string {
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	l = strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
	return strings.ReplaceAll(l, " ", "_")
}

// holderNamespace is the pidns field of a holder ("" when it has none).
func holderNamespace(h string) string {
	for _, f := range strings.Fields(h) {
		if v, ok := strings.CutPrefix(f, "pidns="); ok {
			return v
		}
	}
	return ""
}

func cryptoRead(b []byte) (int, error) { return crand.Read(b) }

// DeadLocalHolder reports whether holder names a process on this host that
// no longer exists (killed with SIGKILL, crashed): its lease can be taken
// over without waiting for the expiry. A pid reused by an unrelated process
// only means waiting for the expiry, never a double run. Containers may share
// a host name (host networking, a fixed hostname) while each has its own pid
// namespace, where the other's pid does not exist: a holder is local only if
// its pid namespace is ours too.
func DeadLocalHolder(holder string) bool {
	host, pid, ok := parseHolder(holder)
	if !ok || pid == os.Getpid() {
		return false
	}
	me, err := os.Hostname()
	if err != nil || strings.ReplaceAll(me, " ", "_") != host {
		return false
	}
	if holderNamespace(holder) != pidNamespace() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func parseHolder(h string) (host string, pid int, ok bool) {
	f := strings.Fields(h)
	if len(f) < 2 || !strings.HasPrefix(f[1], "pid=") {
		return "", 0, false
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(f[1], "pid="))
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return f[0], pid, true
}

// HeldLease is an account lease kept alive in the background.
type HeldLease struct {
	Holder string
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when renewing has ended, or will never start
	store  *chstore.Store
	acct   string

	once    sync.Once
	settled error // Confirm's answer, once known
	confirm func() error
}

// HoldLease claims the account's lease for holder (HolderID() when empty)
// and renews it every ttl/3 until Release. The returned context ends, with
// the reason as its cause, when the lease is lost or could not be renewed
// before it expired: everything running under it must stop, since another
// instance may take over. A lease held by someone else is a
// *chstore.LeaseHeldError naming the holder and the expiry.
//
// The claim is confirmed only when it is read back after the settle time
// (chstore.ClaimLease): HoldLease returns as soon as it is written and
// confirms it in the background, and the Runner waits for that (Confirm)
// before its first ledger write, export request or commit, so that
// fetching and streaming a file overlap the wait (0.3 s of every run).
// Losing a race ends the context with the *chstore.LeaseHeldError as its
// cause. Two instances that race may both create a window's staging
// tables meanwhile; the loser never commits, and the winner's commit
// checks catch any interference (rows sent against rows staged before,
// rows stored against rows staged after: Load.Commit), which a retry of
// the window repairs.
func (r *Runner) HoldLease(ctx context.Context, holder string, ttl time.Duration) (context.Context, *HeldLease, error) {
	if holder == "" {
		holder = HolderID()
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	acct := r.Cfg.Account
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, confirm, err := r.Store.ClaimLease(actx, acct, holder, chstore.LeaseOptions{TTL: ttl, Stale: DeadLocalHolder})
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("take the lease of account %s: %w", acct, err)
	}
	runCtx, stop := context.WithCancelCause(ctx)
	h := &HeldLease{Holder: holder, cancel: stop, done: make(chan struct{}), store: r.Store, acct: acct}
	h.confirm = func() error {
		cctx, cancel := context.WithTimeout(runCtx, 30*time.Second)
		l, err := confirm(cctx)
		cancel()
		if err != nil {
			err = fmt.Errorf("take the lease of account %s: %w", acct, err)
			r.Log.Error("lease not confirmed: stopping", "account", acct, "holder", holder, "err", err)
			stop(err)
			close(h.done)
			return err
		}
		r.Log.Info("lease taken", "account", acct, "holder", holder, "expires", l.ExpiresAt)
		go r.renew(runCtx, h, stop, l.ExpiresAt, ttl)
		return nil
	}
	r.confirmLease = h.Confirm
	// Confirmed in the background too, so that an idle daemon renews its
	// lease (and learns of a lost race) as before.
	go h.Confirm()
	return runCtx, h, nil
}

// Confirm waits until the claim is known to be held (see HoldLease); it
// answers the same to every call, at once after the first.
func (h *HeldLease) Confirm() error {
	h.once.Do(func() { h.settled = h.confirm() })
	return h.settled
}

// renew keeps h's lease alive until ctx ends, then closes h.done.
func (r *Runner) renew(runCtx context.Context, h *HeldLease, stop context.CancelCauseFunc, expires time.Time, ttl time.Duration) {
	defer close(h.done)
	acct, holder := h.acct, h.Holder
	every := ttl / 3
	for {
		select {
		case <-runCtx.Done():
			return
		case <-time.After(every):
		}
		// Renew with bounded retries; give up only when the lease is
		// lost or expiry comes first, so a short ClickHouse restart is
		// survived.
		for attempt := 0; ; attempt++ {
			rctx, cancel := context.WithDeadline(runCtx, expires)
			nl, err := r.Store.RenewLease(rctx, acct, holder, ttl)
			cancel()
			if err == nil {
				expires = nl.ExpiresAt
				break
			}
			if runCtx.Err() != nil {
				return
			}
			if errors.Is(err, chstore.ErrLeaseLost) || !time.Now().Before(expires) {
				r.Log.Error("lease lost: stopping", "account", acct, "holder", holder, "err", err)
				stop(fmt.Errorf("lease of account %s: %w", acct, err))
				return
			}
			d := min(time.Duration(200<<min(attempt, 5))*time.Millisecond, time.Until(expires))
			d += time.Duration(rand.Int64N(int64(d)/2 + 1))
			r.Log.Warn("renew lease failed, retrying", "account", acct, "backoff", d, "err", err)
			select {
			case <-runCtx.Done():
				return
			case <-time.After(d):
			}
		}
	}
}

// Release stops renewing and gives the lease up so the next instance can
// start at once (without waiting for the expiry).
func (h *HeldLease) Release(ctx context.Context) error {
	h.cancel(errors.New("lease released"))
	// A claim never confirmed has no renewal to wait for; it is withdrawn
	// all the same (ReleaseLease does nothing when it is not ours).
	h.once.Do(func() {
		h.settled = errors.New("lease released before it was confirmed")
		close(h.done)
	})
	<-h.done
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.store.ReleaseLease(rctx, h.acct, h.Holder); err != nil {
		return fmt.Errorf("release the lease of account %s: %w", h.acct, err)
	}
	return nil
}

// Graceful splits a stop request from cancellation: the returned context
// outlives stop by grace, so windows already running may finish; Runner.Stop
// set to stop.Done() keeps new windows from starting meanwhile. Call cancel
// once the work is over.
func Graceful(stop context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	run, cancel := context.WithCancelCause(context.WithoutCancel(stop))
	go func() {
		select {
		case <-run.Done():
			return
		case <-stop.Done():
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-run.Done():
		case <-t.C:
			cancel(ErrGraceOver)
		}
	}()
	return run, func() { cancel(context.Canceled) }
}
