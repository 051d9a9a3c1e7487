package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/notify"
	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// replicaHandles opens n stores on one fresh database, as n replicas do, and
// a replica on each with lease timings from ttl.
func replicaHandles(t *testing.T, n int, ttl time.Duration) []*replica {
	t.Helper()
	target := storetest.Target(t)
	var out []*replica
	for i := range n {
		out = append(out, replicaOn(t, target, string(rune('a'+i))+"-replica", ttl))
	}
	return out
}

// replicaOn opens a store on target as replica id, and the replica on it.
func replicaOn(t *testing.T, target, id string, ttl time.Duration) *replica {
	t.Helper()
	st, err := store.Open(target, store.Options{AuditKey: safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain"), Replica: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &replica{st: st, steady: &steadiness{ttl: ttl}, id: id, t: timingsFor(ttl), log: slog.New(slog.DiscardHandler),
		feedListeners: func() int { return 0 }, unattended: func() bool { return false },
		recover: func(context.Context) error { return nil }}
}

// leasedWork is work that says who runs it, and notes whether two ever ran
// at once.
type leasedWork struct {
	mu      sync.Mutex
	running map[string]bool
	overlap bool
}

func (w *leasedWork) as(id string) func(context.Context) {
	return func(ctx context.Context) {
		w.mu.Lock()
		if len(w.running) > 0 {
			w.overlap = true
		}
		w.running[id] = true
		w.mu.Unlock()
		<-ctx.Done()
		w.mu.Lock()
		delete(w.running, id)
		w.mu.Unlock()
	}
}

// runner is the one replica running the work, "" for none, or "several".
func (w *leasedWork) runner() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.running) > 1 {
		return "several"
	}
	for id := range w.running {
		return id
	}
	return ""
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// Leased work runs on one replica at a time: on a clean stop the lease is
// released and another replica takes it within its retry interval; when the
// holder cannot reach the database, it stops its work before the lease can
// expire, and another replica takes over once it has.
func TestReplicasLeaseRunsWorkOnOneReplica(t *testing.T) {
	const ttl = time.Second
	rs := replicaHandles(t, 3, ttl)
	w := &leasedWork{running: map[string]bool{}}
	stops := map[string]context.CancelFunc{}
	done := map[string]chan struct{}{}
	for _, r := range rs {
		ctx, cancel := context.WithCancel(context.Background())
		stops[r.id], done[r.id] = cancel, make(chan struct{})
		go func() { r.hold(ctx, leaseWatcher, w.as(r.id)); close(done[r.id]) }()
	}
	t.Cleanup(func() {
		for id, stop := range stops {
			stop()
			<-done[id]
		}
	})
	waitFor(t, 5*time.Second, "one replica runs the work", func() bool { return w.runner() != "" })
	first := w.runner()
	time.Sleep(ttl) // renewals keep it where it is
	if got := w.runner(); got != first {
		t.Fatalf("the work moved from %s to %s while %s renewed", first, got, first)
	}

	// A clean stop releases the lease: another takes it within its retry interval.
	stops[first]()
	<-done[first]
	took := waitFor(t, 5*time.Second, "another replica after a clean stop", func() bool { r := w.runner(); return r != "" && r != first })
	t.Logf("clean stop: the work moved in %s (retry interval %s)", took.Round(time.Millisecond), timingsFor(ttl).retry)
	second := w.runner()
	if l, err := rs[0].st.GetLease(context.Background(), leaseWatcher); err != nil || l.Holder != second || l.Epoch != 2 {
		t.Fatalf("lease after the clean stop: %+v %v, want %s's in epoch 2", l, err, second)
	}

	// The holder loses the database: it stops before the lease expires, and
	// the last replica takes it then.
	var h *replica
	for _, r := range rs {
		if r.id == second {
			h = r
		}
	}
	lost := time.Now()
	_ = h.st.Close()
	stopped := waitFor(t, 5*time.Second, "the holder without a database stops", func() bool { return w.runner() != second })
	took = waitFor(t, 5*time.Second, "the last replica takes over", func() bool { r := w.runner(); return r != "" && r != second })
	t.Logf("holder cut off: it stopped after %s, the work ran again elsewhere after %s (TTL %s)",
		stopped.Round(time.Millisecond), time.Since(lost).Round(time.Millisecond), ttl)
	if time.Since(lost) < ttl-timingsFor(ttl).margin {
		t.Errorf("taken over after %s, before the lease could have expired", time.Since(lost))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.overlap {
		t.Error("two replicas ran the leased work at once")
	}
}

// Heartbeats tell each replica what the others need watched, and a replica
// that falls silent has its calls closed by the others at once.
func TestReplicasHeartbeats(t *testing.T) {
	const ttl = time.Second
	rs := replicaHandles(t, 2, ttl)
	a, b := rs[0], rs[1]
	var listeners atomic.Int32
	b.feedListeners = func() int { return int(listeners.Load()) }
	var recovered atomic.Int32
	a.recover = func(context.Context) error { recovered.Add(1); return nil }

	actx, stopA := context.WithCancel(context.Background())
	defer stopA()
	go a.runHeartbeats(actx)
	bctx, stopB := context.WithCancel(context.Background())
	go b.runHeartbeats(bctx)

	time.Sleep(2 * timingsFor(ttl).renew)
	if a.needsWatching() {
		t.Fatal("a polls for b, which has nobody listening")
	}
	listeners.Store(1)
	waitFor(t, 5*time.Second, "a sees b's listener", a.needsWatching)
	listeners.Store(0)
	waitFor(t, 5*time.Second, "a sees b's listener gone", func() bool { return !a.needsWatching() })

	stopB()
	silent := time.Now()
	took := waitFor(t, 5*time.Second, "a closes b's calls", func() bool { return recovered.Load() > 0 })
	t.Logf("b silent: a closed its calls after %s (TTL %s)", took.Round(time.Millisecond), ttl)
	if time.Since(silent) < ttl-timingsFor(ttl).renew {
		t.Errorf("b's calls closed after %s, before b was silent for the TTL", time.Since(silent))
	}
}

// With notifications set up on two replicas, each message goes out once:
// only the notifier lease's holder sends, and when it stops, the other goes
// on from the shared cursor.
func TestReplicasNotifyOnce(t *testing.T) {
	ntfyURL, sent := ntfyTitles(t)

	rs := replicaHandles(t, 2, time.Second)
	stops := make([]func(), 2)
	for i, r := range rs {
		a := &app{cfg: &Config{Port: 4000, ListenAddr: "127.0.0.1"}, store: r.st, logger: slog.New(slog.DiscardHandler), replica: r}
		stops[i] = a.startNotifier(context.Background(), &NotifyEnv{NtfyURL: ntfyURL + "/jarvis", NotifyRatePerMin: 20})
		t.Cleanup(stops[i])
	}
	st := rs[0].st
	waitFor(t, 10*time.Second, "a notifier at the feed's head", func() bool {
		_, found, _ := st.GetPreference(context.Background(), notify.CursorKey)
		return found
	})
	publish := func(tool string) {
		t.Helper()
		ev := store.Event{Type: store.EventTool, Severity: store.SeverityWarning, Summary: "agent " + tool + " ended (unknown)",
			Details: store.EncodeDetails(store.ToolDetails{Phase: store.ToolEnded, Principal: "agent:a", Tool: tool,
				Outcome: store.OutcomeUnknown, Reason: "no answer"})}
		if err := st.Publish(context.Background(), &ev); err != nil {
			t.Fatal(err)
		}
	}
	publish("stop_vm")
	waitFor(t, 10*time.Second, "the first message", func() bool { return len(sent()) > 0 })

	l, err := st.GetLease(context.Background(), leaseNotifier)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.id == l.Holder {
			stops[i]() // a clean stop: the other replica takes over
		}
	}
	publish("start_vm")
	waitFor(t, 10*time.Second, "the second message, from the other replica", func() bool { return len(sent()) > 1 })
	time.Sleep(time.Second) // a duplicate would come now
	if m := sent(); len(m) != 2 || !strings.Contains(m[0], "stop_vm") || !strings.Contains(m[1], "start_vm") {
		t.Errorf("sent %q, want stop_vm then start_vm, once each", m)
	}
	if l2, err := st.GetLease(context.Background(), leaseNotifier); err != nil || l2.Holder == l.Holder || !l2.Held {
		t.Errorf("notifier lease after %s stopped: %+v %v", l.Holder, l2, err)
	}
}

// A replica judges others silent only after its own heartbeats have reached
// the database without a break for a TTL: the first to reconnect after the
// database restarted must not close the calls of replicas still reconnecting.
func TestReplicaJudgesOthersOnlyWhenHeardItself(t *testing.T) {
	const ttl = 10 * time.Second
	now := time.Now()
	type beat struct {
		ago time.Duration
		ok  bool
	}
	for _, tc := range []struct {
		name  string
		beats []beat
		want  time.Duration
	}{
		{"no heartbeat yet", nil, 0},
		{"heard for less than a TTL", []beat{{6 * time.Second, true}, {3 * time.Second, true}, {0, true}}, 0},
		{"heard steadily for a TTL", []beat{{12 * time.Second, true}, {9 * time.Second, true}, {6 * time.Second, true}, {3 * time.Second, true}, {0, true}}, ttl},
		{"the latest heartbeat failed", []beat{{12 * time.Second, true}, {9 * time.Second, true}, {6 * time.Second, true}, {3 * time.Second, true}, {0, false}}, 0},
		{"heard again after a failure, not yet for a TTL", []beat{{15 * time.Second, true}, {12 * time.Second, false}, {9 * time.Second, true}, {0, true}}, 0},
		{"a pause longer than a TTL between heartbeats", []beat{{30 * time.Second, true}, {5 * time.Second, true}, {0, true}}, 0},
		{"no heartbeat for longer than a TTL (paused now)", []beat{{40 * time.Second, true}, {35 * time.Second, true}, {30 * time.Second, true}, {25 * time.Second, true}, {20 * time.Second, true}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &steadiness{ttl: ttl}
			for _, b := range tc.beats {
				s.beat(now.Add(-b.ago), b.ok)
			}
			if got := s.silentFor(); got != tc.want {
				t.Errorf("silentFor() = %s, want %s", got, tc.want)
			}
		})
	}
	var none *steadiness // SQLite, or a process that sends no heartbeats
	if got := none.silentFor(); got != 0 {
		t.Errorf("without heartbeats silentFor() = %s, want 0", got)
	}
}

// Work that ends by itself (a notifier that could not start) gives its lease
// up: it runs again at the next try, here or on another replica, instead of
// the lease being renewed for work that no longer runs.
func TestReplicaLeaseOfWorkThatEnded(t *testing.T) {
	const ttl = time.Second
	r := replicaHandles(t, 1, ttl)[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs atomic.Int32
	held := make(chan struct{})
	go func() {
		defer close(held)
		r.hold(ctx, leaseWatcher, func(context.Context) { runs.Add(1) })
	}()
	waitFor(t, 5*time.Second, "the work run a second time", func() bool { return runs.Load() >= 2 })
	cancel()
	<-held
	if l, err := r.st.GetLease(context.Background(), leaseWatcher); err != nil || l.Held {
		t.Errorf("the lease after hold returned: %+v, %v", l, err)
	}
}

// Two processes under one replica id: the second is refused while the first
// sends heartbeats; when the first falls silent for a TTL the second takes
// the id over, and the first, back, is told to stop (serve then exits).
func TestReplicaIDTakenOver(t *testing.T) {
	const ttl = 500 * time.Millisecond
	target := storetest.Target(t)
	first := replicaOn(t, target, "a-replica", ttl)
	time.Sleep(time.Millisecond) // another start time, as another process has
	second := replicaOn(t, target, "a-replica", ttl)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := first.join(ctx); err != nil {
		t.Fatal(err)
	}
	beat, stopBeat := context.WithCancel(ctx)
	go first.runHeartbeats(beat)
	start := time.Now()
	if err := second.join(ctx); err == nil || !strings.Contains(err.Error(), "another Jarvis process is running as replica "+first.id) {
		t.Fatalf("the second process under %s joined: %v", first.id, err)
	}
	t.Logf("the second process was refused after %s (TTL %s)", time.Since(start).Round(time.Millisecond), ttl)

	// The first falls silent; the second takes the id over.
	stopBeat()
	if err := second.join(ctx); err != nil {
		t.Fatalf("taking over the id of a silent process: %v", err)
	}
	taken := make(chan error, 1)
	first.idTaken = func(err error) {
		select {
		case taken <- err:
		default:
		}
	}
	go second.runHeartbeats(ctx)
	go first.runHeartbeats(ctx)
	select {
	case err := <-taken:
		if !errors.Is(err, store.ErrReplicaIDInUse) {
			t.Fatalf("idTaken(%v)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first process, back, was not told that its id was taken")
	}
}
