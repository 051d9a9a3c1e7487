package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// One lease through its life: taken, renewed, refused to others, taken over
// once it expired (a new epoch), released.
func TestLeaseTakeRenewStealRelease(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	const ttl = 300 * time.Millisecond
	steps := []struct {
		name      string
		do        string // take, release or wait
		holder    string
		wantHeld  bool
		wantEpoch int64
	}{
		{"a takes a new lease", "take", "a", true, 1},
		{"b is refused while a holds it", "take", "b", false, 0},
		{"a renews it", "take", "a", true, 1},
		{"a lets it expire", "wait", "", false, 0},
		{"b takes it over", "take", "b", true, 2},
		{"a is refused now", "take", "a", false, 0},
		{"a cannot release b's lease", "release", "a", false, 0},
		{"so b still holds it", "take", "b", true, 2},
		{"b releases it", "release", "b", false, 0},
		{"a takes it at once", "take", "a", true, 3},
	}
	for _, st := range steps {
		switch st.do {
		case "wait":
			time.Sleep(ttl + 50*time.Millisecond)
		case "release":
			if err := s.ReleaseLease(ctx, "watcher", st.holder); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		case "take":
			epoch, held, err := s.TakeLease(ctx, "watcher", st.holder, ttl)
			if err != nil || held != st.wantHeld || epoch != st.wantEpoch {
				t.Fatalf("%s: TakeLease = %d, %v, %v; want %d, %v", st.name, epoch, held, err, st.wantEpoch, st.wantHeld)
			}
		}
	}
	l, err := s.GetLease(ctx, "watcher")
	if err != nil || l.Holder != "a" || l.Epoch != 3 || !l.Held || l.Expires.IsZero() {
		t.Errorf("GetLease = %+v, %v; want held by a in epoch 3", l, err)
	}
	if _, err := s.GetLease(ctx, "notifier"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetLease of a lease never taken = %v, want ErrNotFound", err)
	}
	for _, bad := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", ttl}, {"watcher", "", ttl}, {"watcher", "a", 0}} {
		if _, _, err := s.TakeLease(ctx, bad.name, bad.holder, bad.ttl); err == nil {
			t.Errorf("TakeLease(%q, %q, %v) succeeded", bad.name, bad.holder, bad.ttl)
		}
	}
}

// Replicas taking one lease at the same moment through two handles: exactly
// one holds it, whether it is new or taken over after it expired.
func TestLeaseConcurrentTakers(t *testing.T) {
	ctx := context.Background()
	a, target := openTemp(t)
	b := openAt(t, target, testKey)
	const takers, rounds = 8, 10
	race := func(name string, ttl time.Duration) (winners []string, epochs []int64) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range takers {
			h := []*Store{a, b}[i%2]
			holder := fmt.Sprintf("r%d", i)
			wg.Go(func() {
				<-start
				epoch, held, err := h.TakeLease(ctx, name, holder, ttl)
				if err != nil {
					t.Error(err)
					return
				}
				if held {
					mu.Lock()
					winners, epochs = append(winners, holder), append(epochs, epoch)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		return winners, epochs
	}
	for round := range rounds {
		name := fmt.Sprintf("lease-%d", round)
		if winners, epochs := race(name, time.Minute); len(winners) != 1 || epochs[0] != 1 {
			t.Fatalf("round %d, a new lease: held by %v in epochs %v, want one holder in epoch 1", round, winners, epochs)
		}
		if _, held, err := a.TakeLease(ctx, name, "old", time.Millisecond); err != nil || held {
			t.Fatalf("round %d: a stranger took a held lease: %v, %v", round, held, err)
		}
	}
	// Taken over at once after it expired.
	if _, held, err := a.TakeLease(ctx, "watcher", "old", 50*time.Millisecond); err != nil || !held {
		t.Fatal(held, err)
	}
	time.Sleep(100 * time.Millisecond)
	if winners, epochs := race("watcher", time.Minute); len(winners) != 1 || epochs[0] != 2 {
		t.Fatalf("an expired lease: taken over by %v in epochs %v, want one holder in epoch 2", winners, epochs)
	}
}

// How long the lease takes to pass to the follower when its holder crashes
// (stops renewing) and when it stops cleanly (releases), with the timings
// of the plan scaled down. Logged, not asserted: it depends on the timings.
func TestLeaseFailover(t *testing.T) {
	ctx := context.Background()
	a, target := openTemp(t)
	b := openAt(t, target, testKey)
	const ttl, renew, try = time.Second, time.Second / 3, 100 * time.Millisecond

	// run keeps taking or renewing the lease until stop. It reports when it
	// first holds it, and keeps in renewed when it last did.
	run := func(s *Store, holder string, renewed *atomic.Int64, stop <-chan struct{}) <-chan time.Time {
		got := make(chan time.Time, 1)
		go func() {
			holding := false
			for {
				_, held, err := s.TakeLease(ctx, "watcher", holder, ttl)
				if err == nil && held {
					renewed.Store(time.Now().UnixNano())
					if !holding {
						got <- time.Now()
					}
				}
				holding = err == nil && held
				every := try
				if holding {
					every = renew
				}
				select {
				case <-stop:
					return
				case <-time.After(every):
				}
			}
		}()
		return got
	}
	waitFor := func(c <-chan time.Time, who string) time.Time {
		select {
		case at := <-c:
			return at
		case <-time.After(10 * ttl):
			t.Fatalf("%s never got the lease", who)
			return time.Time{}
		}
	}

	var renewedA, renewedB atomic.Int64
	stopA := make(chan struct{})
	waitFor(run(a, "a", &renewedA, stopA), "a")
	stopB := make(chan struct{})
	followerB := run(b, "b", &renewedB, stopB)
	time.Sleep(ttl / 2)
	close(stopA) // a crashes: no more renewals, no release
	crashed := time.Now()
	tookOver := waitFor(followerB, "b")
	t.Logf("failover after a crash: %v after it, %v after the last renewal (ttl %v, renewed every %v, tried every %v)",
		tookOver.Sub(crashed).Round(time.Millisecond), tookOver.Sub(time.Unix(0, renewedA.Load())).Round(time.Millisecond), ttl, renew, try)

	stopA2 := make(chan struct{})
	defer close(stopA2)
	followerA := run(a, "a", &renewedA, stopA2)
	time.Sleep(ttl/2 + try/2) // between two of a's tries
	close(stopB)              // b stops cleanly: no more renewals, then a release
	if err := b.ReleaseLease(ctx, "watcher", "b"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	tookBack := waitFor(followerA, "a")
	t.Logf("failover after a clean stop: %v (tried every %v)", tookBack.Sub(released).Round(time.Millisecond), try)
}

func TestHeartbeatsAndFreshReplicas(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	a := openWith(t, target, Options{Replica: "a"})
	plain := openWith(t, target, Options{})
	if a.Replica() != "a" || plain.Replica() != "" {
		t.Fatalf("Replica() = %q and %q", a.Replica(), plain.Replica())
	}
	if err := plain.Heartbeat(ctx, Replica{}); err == nil {
		t.Error("a heartbeat without a replica id was taken")
	}
	if err := a.Heartbeat(ctx, Replica{Addr: "10.0.0.1:8080", Listeners: 2}); err != nil {
		t.Fatal(err)
	}
	if err := plain.Heartbeat(ctx, Replica{ID: "b", Unattended: true, StartedAt: time.Unix(1000, 0)}); err != nil {
		t.Fatal(err)
	}
	fresh, err := plain.FreshReplicas(ctx, time.Minute)
	if err != nil || len(fresh) != 2 {
		t.Fatalf("FreshReplicas = %+v, %v", fresh, err)
	}
	if r := fresh[0]; r.ID != "a" || r.Addr != "10.0.0.1:8080" || r.Listeners != 2 || r.Unattended || r.StartedAt.IsZero() || r.HeartbeatAt.IsZero() {
		t.Errorf("replica a: %+v", r)
	}
	if r := fresh[1]; r.ID != "b" || !r.Unattended || !r.StartedAt.Equal(time.Unix(1000, 0)) {
		t.Errorf("replica b: %+v", r)
	}

	// b falls silent and keeps a running call; a keeps sending heartbeats.
	exec(t, a, "INSERT INTO running_calls (audit_id, replica) VALUES (99, 'b')")
	time.Sleep(300 * time.Millisecond)
	if err := a.Heartbeat(ctx, Replica{}); err != nil {
		t.Fatal(err)
	}
	if fresh, err := a.FreshReplicas(ctx, 200*time.Millisecond); err != nil || len(fresh) != 1 || fresh[0].ID != "a" {
		t.Errorf("fresh within 200ms: %+v, %v; want a alone", fresh, err)
	}
	if n, err := a.PruneReplicas(ctx, 200*time.Millisecond); err != nil || n != 0 {
		t.Errorf("PruneReplicas pruned %d (%v); b has a running call and must stay", n, err)
	}
	exec(t, a, "DELETE FROM running_calls")
	if n, err := a.PruneReplicas(ctx, 200*time.Millisecond); err != nil || n != 1 {
		t.Errorf("PruneReplicas pruned %d (%v), want b", n, err)
	}
}

// A replica that stops sending heartbeats leaves its running calls behind:
// another replica marks them interrupted at once, not only once they are
// older than any call may run. Calls of live replicas, of this one, of a
// replica that never sent a heartbeat and of processes that are none are left
// to their age.
func TestInterruptedCallsOfAStoppedReplica(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	const silence = 250 * time.Millisecond
	handles := map[string]*Store{}
	for _, r := range []string{"a", "b", "c", "never", ""} {
		handles[r] = openWith(t, target, Options{Replica: r})
	}
	beat := func(replicas ...string) {
		t.Helper()
		for _, r := range replicas {
			if err := handles[r].Heartbeat(ctx, Replica{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	calls := map[string]uint64{}
	for r, h := range handles {
		id, err := h.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "migrate_vm", Args: fmt.Sprintf(`{"vmid":%d}`, 100+len(calls))})
		if err != nil {
			t.Fatal(err)
		}
		calls[r] = id
	}
	var listed int64
	if err := handles["a"].db.Model(&runningCallRecord{}).Count(&listed).Error; err != nil || listed != 4 {
		t.Fatalf("%d running calls listed (%v), want those of the 4 replicas", listed, err)
	}
	beat("a", "b", "c")
	time.Sleep(silence + 100*time.Millisecond)
	beat("b", "c") // a stopped

	anHour := time.Hour
	marked, err := handles["b"].MarkInterruptedCalls(ctx, anHour, silence)
	if err != nil {
		t.Fatal(err)
	}
	if len(marked) != 1 || marked[0].ID != calls["a"] {
		t.Fatalf("marked %+v, want a's call %d alone", marked, calls["a"])
	}
	rows, _ := handles["b"].AuditRecent(ctx, 1)
	if r := rows[0]; r.BeginID != calls["a"] || r.Status != OutcomeInterrupted || !strings.Contains(r.Error, "replica a stopped") {
		t.Errorf("end row %+v, want a's call interrupted, naming replica a", r)
	}
	if err := handles["a"].AuditEnd(ctx, calls["a"], AuditOutcome{Status: OutcomeOK}); !errors.Is(err, ErrAlreadyEnded) {
		t.Errorf("a's late AuditEnd = %v, want ErrAlreadyEnded", err)
	}

	// b falls silent too: c marks b's call, while b never marks its own.
	time.Sleep(silence + 100*time.Millisecond)
	beat("c")
	if marked, err := handles["b"].MarkInterruptedCalls(ctx, anHour, silence); err != nil || len(marked) != 0 {
		t.Errorf("b marked %+v (%v); a replica's own calls run", marked, err)
	}
	if marked, err := handles["c"].MarkInterruptedCalls(ctx, anHour, silence); err != nil || len(marked) != 1 || marked[0].ID != calls["b"] {
		t.Errorf("c marked %+v (%v), want b's call %d", marked, err, calls["b"])
	}

	// Zero silence, as MarkInterrupted: only age counts.
	if marked, err := handles[""].MarkInterruptedCalls(ctx, anHour, 0); err != nil || len(marked) != 0 {
		t.Errorf("with no silence given: marked %+v, %v", marked, err)
	}
	if err := handles["c"].AuditEnd(ctx, calls["c"], AuditOutcome{Status: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	var left []runningCallRecord
	if err := handles["c"].db.Order("audit_id").Find(&left).Error; err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Replica != "never" {
		t.Errorf("running calls left: %+v, want only the call of the replica that never sent a heartbeat", left)
	}
	// Age still closes every call left.
	if marked, err := handles["c"].MarkInterrupted(ctx, -time.Second); err != nil || len(marked) != 2 {
		t.Errorf("by age: marked %+v, %v; want the calls of never and of the plain process", marked, err)
	}
	if err := handles["c"].db.Find(&left).Error; err != nil || len(left) != 0 {
		t.Errorf("running calls left after every call was closed: %+v, %v", left, err)
	}
	if rep := mustVerify(t, handles["c"]); !rep.OK {
		t.Errorf("AuditVerify = %+v", rep)
	}
}

// Two processes under one replica id: the second is refused while the first
// sends heartbeats, takes the id over once the first is silent for
// TakeOverAfter, and at once after the first stopped cleanly (EndHeartbeats).
func TestReplicaIDInUse(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	first := openWith(t, target, Options{Replica: "a"})
	time.Sleep(time.Millisecond) // another start time, as another process has
	second := openWith(t, target, Options{Replica: "a"})
	const takeOver = 300 * time.Millisecond
	beat := func(s *Store) error { return s.Heartbeat(ctx, Replica{TakeOverAfter: takeOver}) }

	if err := beat(first); err != nil {
		t.Fatal(err)
	}
	if err := beat(second); !errors.Is(err, ErrReplicaIDInUse) {
		t.Fatalf("a second process under id a while the first beats: %v, want ErrReplicaIDInUse", err)
	}
	if err := beat(first); err != nil {
		t.Fatalf("the first process's next heartbeat: %v", err)
	}
	// The first falls silent: after TakeOverAfter the second takes the id.
	time.Sleep(takeOver + 100*time.Millisecond)
	if err := beat(second); err != nil {
		t.Fatalf("taking over the id of a process silent for %s: %v", takeOver, err)
	}
	if err := beat(first); !errors.Is(err, ErrReplicaIDInUse) {
		t.Fatalf("the first process back after the id was taken over: %v, want ErrReplicaIDInUse", err)
	}
	// A clean stop hands the id over at once.
	if err := second.EndHeartbeats(ctx); err != nil {
		t.Fatal(err)
	}
	if err := beat(first); err != nil {
		t.Fatalf("the id after its process stopped cleanly: %v", err)
	}
	if fresh, err := first.FreshReplicas(ctx, time.Minute); err != nil || len(fresh) != 1 || !fresh[0].StartedAt.Equal(first.opened) {
		t.Errorf("fresh replicas: %+v, %v; want the first process's", fresh, err)
	}
}
