package main

// Several `jarvis serve` replicas on one PostgreSQL database. Every replica
// serves calls, the feed, approvals and the sweeper; work that must run on one
// replica at a time runs under a lease in the database: the cluster watcher
// (two would poll the cluster twice and raise each alert twice) and the
// notifier (two would send each message twice). Each replica also sends
// heartbeats, which say it is alive, whether it needs the cluster watched,
// and, when they stop, that the calls it was running died with it. On SQLite
// (one serve per database) none of this runs: serve works as it always did.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jarvis-homelab/jarvis/server/watch"
	"github.com/jarvis-homelab/jarvis/store"
)

// The leases, by name.
const (
	leaseWatcher  = "watcher"
	leaseNotifier = "notifier"
)

// leaseTimings are a lease's timings, all derived from its TTL
// (JARVIS_LEASE_TTL, 10 s): the holder renews every 3/10 of it, so two
// renewals may fail before it matters; the others try to take it every 1/5;
// the holder stops its work when its last successful renewal was sent more
// than TTL − 1/5 ago, so it has stopped before the lease can pass to another
// replica, whatever the database or the network did meanwhile.
type leaseTimings struct {
	ttl, renew, retry, margin time.Duration
}

func timingsFor(ttl time.Duration) leaseTimings {
	return leaseTimings{ttl: ttl, renew: ttl * 3 / 10, retry: ttl / 5, margin: ttl / 5}
}

// pruneReplicasAfter is how long a silent replica's heartbeat row is kept:
// replica ids made anew at each start would otherwise pile up.
const pruneReplicasAfter = 24 * time.Hour

// replica is this serve among the replicas sharing the database.
type replica struct {
	st     *store.Store
	steady *steadiness
	id     string
	addr   string
	t      leaseTimings
	log    *slog.Logger
	// feedListeners counts the clients following this replica's feed;
	// unattended says whether it needs the cluster watched with nobody
	// listening (app.unattended); recover closes the calls of replicas that
	// went silent (server.Recover).
	feedListeners func() int
	unattended    func() bool
	recover       func(context.Context) error
	// recoverOwn closes the calls an earlier run under this id left
	// running (server.RecoverEarlierRun), once it has joined.
	recoverOwn func(context.Context) error
	// idTaken is told when another process took this replica's id over
	// while it was silent: two would both hold every lease, so serve stops.
	idTaken func(error)

	// othersNeed: a fresh replica other than this one needs the cluster
	// watched (listeners or unattended), as of the last heartbeat.
	othersNeed atomic.Bool
	// notifying counts the notifiers running here under the lease (at most
	// one): each follows the store's events with a subscription of its own.
	notifying atomic.Int32
	// mu orders the heartbeats sent from the loop and from a listener
	// arriving.
	mu sync.Mutex
}

// newReplica makes this serve a replica; nil on SQLite. watcher is serve's,
// whose own subscriptions are no feed client's.
func (a *app) newReplica(addr string, watcher *watch.Watcher) *replica {
	if !a.cfg.onPostgres() {
		return nil
	}
	if a.cfg.PublicURL != "" {
		addr = a.cfg.PublicURL
	} else {
		addr = "http://" + addr
	}
	r := &replica{st: a.store, steady: a.steady, id: a.cfg.ReplicaID, addr: addr, t: timingsFor(a.cfg.LeaseTTL), log: a.logger,
		recover: a.srv.Recover, recoverOwn: a.srv.RecoverEarlierRun}
	// The feed's streams are the store's subscribers other than Jarvis's own:
	// the alert updates of MCP subscriptions (server.RunAlertUpdates, always
	// running in serve), the watcher's (one per cluster while it runs here)
	// and the notifier's. Off by one at most for a moment while one of those
	// follows again.
	r.feedListeners = func() int {
		return max(0, a.store.SubscriberCount()-1-watcher.Listeners()-int(r.notifying.Load()))
	}
	return r
}

// needsWatching says whether the watcher polls for another replica: one of
// them has clients on its feed or someone away from the desk to tell. The
// watcher's holder ORs it into its own unattended check.
func (r *replica) needsWatching() bool { return r.othersNeed.Load() }

// heartbeat records that this replica is alive and what it needs watched.
func (r *replica) heartbeat(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.t.renew)
	defer cancel()
	sent := time.Now()
	err := r.st.Heartbeat(ctx, store.Replica{Addr: r.addr, Listeners: r.feedListeners(), Unattended: r.unattended(),
		TakeOverAfter: r.t.ttl})
	r.steady.beat(sent, err == nil)
	return err
}

// join sends this replica's first heartbeat. Under an id another process
// still sends heartbeats for, it tries again until that one has been silent
// for a TTL (a replica restarted after a crash), then refuses: two replicas
// under one id would both hold every lease. Other failures only warn: the
// heartbeats go on trying.
func (r *replica) join(ctx context.Context) error {
	deadline := time.Now().Add(r.t.ttl + r.t.renew)
	for {
		err := r.heartbeat(ctx)
		switch {
		case err == nil:
			if r.recoverOwn != nil {
				if err := r.recoverOwn(ctx); err != nil {
					r.log.Warn("closing the calls of this replica's earlier run failed; the sweep closes them by age", "replica", r.id, "err", err)
				}
			}
			return nil
		case !errors.Is(err, store.ErrReplicaIDInUse):
			r.log.Warn("replica heartbeat failed", "replica", r.id, "err", err)
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("another Jarvis process is running as replica %s (JARVIS_REPLICA_ID) on this database: "+
				"give each replica an id of its own, or leave JARVIS_REPLICA_ID unset for one made at each start", r.id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.t.retry):
		}
	}
}

// leave says this replica stopped cleanly (store.EndHeartbeats), so that
// the same id may start again at once.
func (r *replica) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.st.EndHeartbeats(ctx); err != nil {
		r.log.Warn("could not record this replica's clean stop: the same id may start again after JARVIS_LEASE_TTL", "replica", r.id, "err", err)
	}
}

// runHeartbeats sends a heartbeat every renew interval until ctx ends, and
// after each reads which replicas are alive: whether another needs the
// cluster watched, and whether one went silent, whose calls are then closed
// as interrupted at once rather than at the next sweep. A client opening
// this replica's feed is announced at once, so the watcher's holder starts
// polling for it within one renew interval.
func (r *replica) runHeartbeats(ctx context.Context) {
	beat := time.NewTicker(r.t.renew)
	defer beat.Stop()
	look := time.NewTicker(min(500*time.Millisecond, r.t.renew))
	defer look.Stop()
	var alive []string // the other replicas alive at the last look
	failing := false
	var pruned time.Time
	listened := r.feedListeners() > 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-look.C:
			now := r.feedListeners() > 0
			if now && !listened {
				_ = r.heartbeat(ctx) // the loop below says when heartbeats fail
			}
			listened = now
			continue
		case <-beat.C:
		}
		err := r.heartbeat(ctx)
		var fresh []store.Replica
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, r.t.renew)
			fresh, err = r.st.FreshReplicas(rctx, r.t.ttl)
			cancel()
		}
		if errors.Is(err, store.ErrReplicaIDInUse) && ctx.Err() == nil {
			r.log.Error("another Jarvis process took this replica's id over while it was silent: stopping; give each replica an id of its own",
				"replica", r.id, "err", err)
			if r.idTaken != nil {
				r.idTaken(err)
			}
		}
		if err != nil {
			if ctx.Err() == nil && !failing {
				r.log.Warn("replica heartbeat failed: if this lasts JARVIS_LEASE_TTL, the other replicas close this one's running calls as interrupted and take its leases",
					"replica", r.id, "lease_ttl", r.t.ttl, "err", err)
			}
			failing = true
			continue
		}
		if failing {
			r.log.Info("replica heartbeat works again", "replica", r.id)
			failing = false
		}
		need := false
		var now []string
		for _, o := range fresh {
			if o.ID == r.id {
				continue
			}
			now = append(now, o.ID)
			need = need || o.Listeners > 0 || o.Unattended
		}
		r.othersNeed.Store(need)
		if r.steady.silentFor() == 0 {
			// Not heard steadily itself, it cannot tell who went silent:
			// the replicas missing now are judged once it is.
			continue
		}
		var gone []string
		for _, id := range alive {
			if !slices.Contains(now, id) {
				gone = append(gone, id)
			}
		}
		alive = now
		if len(gone) > 0 {
			r.log.Info("replica silent: closing its calls as interrupted", "replicas", gone, "silent_for", r.t.ttl)
			if err := r.recover(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("closing the calls of a silent replica failed; the sweep tries again", "err", err)
			}
		}
		if time.Since(pruned) > time.Hour {
			pruned = time.Now()
			if _, err := r.st.PruneReplicas(ctx, pruneReplicasAfter); err != nil && ctx.Err() == nil {
				r.log.Warn("pruning old replicas failed", "err", err)
			}
		}
	}
}

// hold runs work while this replica holds lease name, until ctx ends: it
// takes the lease (trying every retry interval while another replica holds
// it), runs work with a context that ends when the lease is lost or cannot
// be renewed in time, and runs it again when the lease is taken again. work
// must return soon after its context ends; work that returns by itself
// gives the lease up, to be taken again (here or elsewhere) at the next try.
// When ctx ends, work is stopped and the lease released, so another replica
// takes it within its retry interval instead of the TTL.
func (r *replica) hold(ctx context.Context, name string, work func(context.Context)) {
	var (
		stop    context.CancelCauseFunc
		done    chan struct{}
		lastOK  time.Time // when the last renewal that succeeded was sent
		failing bool
	)
	running := func() bool { return done != nil }
	fenceAt := func() time.Time { return lastOK.Add(r.t.ttl - r.t.margin) }
	// stopWork stops the work with cause (store.ErrLeaseLost when another
	// replica may hold the lease; nil for a clean stop), and says msg.
	stopWork := func(cause error, msg string, args ...any) {
		if !running() {
			return
		}
		stop(cause)
		<-done
		stop, done = nil, nil
		if msg != "" {
			r.log.Warn(msg, append([]any{"lease", name, "replica", r.id}, args...)...)
		}
	}
	// release gives the lease up if this replica holds it: also when no
	// answer to a take came back, as the take may have committed.
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.st.ReleaseLease(rctx, name, r.id); err != nil {
			r.log.Warn("releasing a lease failed: another replica takes it when it expires", "lease", name, "err", err)
		}
	}
	defer func() {
		stopWork(nil, "")
		release()
	}()
	wait := time.Duration(0)
	for {
		// Between attempts, the work stops at fenceAt all the same.
		next := wait
		fenced := running() && time.Until(fenceAt()) < wait
		if fenced {
			next = time.Until(fenceAt())
		}
		timer := time.NewTimer(max(next, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if fenced {
			stopWork(store.ErrLeaseLost, "stopped: the lease could not be renewed in time, and another replica may take it", "ttl", r.t.ttl)
		}
		if running() && closed(done) {
			stopWork(nil, "the work ended by itself: giving the lease up")
			release()
		}
		// An attempt never outlasts the point where the work must stop.
		limit := r.t.renew
		if running() {
			limit = min(limit, max(time.Until(fenceAt()), time.Millisecond))
		}
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, limit)
		epoch, ok, err := r.st.TakeLease(actx, name, r.id, r.t.ttl)
		cancel()
		switch {
		case ctx.Err() != nil:
			continue
		case err != nil:
			if !failing {
				r.log.Warn("lease: cannot reach the database", "lease", name, "replica", r.id, "err", err)
			}
			failing = true
			if running() && time.Now().After(fenceAt()) {
				stopWork(store.ErrLeaseLost, "stopped: the lease could not be renewed in time, and another replica may take it", "ttl", r.t.ttl)
			}
		case !ok:
			failing = false
			stopWork(store.ErrLeaseLost, "stopped: another replica holds the lease")
		default:
			failing, lastOK = false, sent
			if !running() {
				r.log.Info("holding the lease: running here", "lease", name, "replica", r.id, "epoch", epoch)
				wctx, cancelWork := context.WithCancelCause(ctx)
				stop, done = cancelWork, make(chan struct{})
				go func(done chan struct{}) {
					defer close(done)
					work(wctx)
				}(done)
			}
		}
		wait = r.t.retry
		if running() {
			wait = r.t.renew
		}
	}
}

// steadiness says whether this replica's own heartbeats reach the database
// without a break. Only then may it judge another replica silent: one cut
// off from the database, or paused, or the first to reconnect after the
// database restarted, sees every other one silent when it was itself the
// one that could not be heard. nil on SQLite.
type steadiness struct {
	ttl time.Duration

	mu sync.Mutex
	// since and last are when the first and the latest heartbeat of an
	// unbroken run were sent; zero after one failed.
	since, last time.Time
}

// beat records a heartbeat sent at sent, and whether it reached the
// database. Two heartbeats further apart than the TTL break the run too: the
// process was paused, or its clock jumped.
func (s *steadiness) beat(sent time.Time, ok bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !ok:
		s.since, s.last = time.Time{}, time.Time{}
	case s.last.IsZero() || sent.Sub(s.last) > s.ttl:
		s.since, s.last = sent, sent
	default:
		s.last = sent
	}
}

// silentFor is server.Options.ReplicaSilentFor: a replica silent for a
// lease's TTL has stopped, and its calls with it (its leases expire then
// too), as long as this replica's own heartbeats have been reaching the
// database for that long; otherwise zero, and calls are closed by age only.
func (s *steadiness) silentFor() time.Duration {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() || time.Since(s.since) < s.ttl || time.Since(s.last) > s.ttl {
		return 0
	}
	return s.ttl
}

// closed reports whether done is closed, without waiting.
func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}
