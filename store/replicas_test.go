package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// Several handles on one database stand for several Jarvis processes on one
// SQLite file or replicas on one PostgreSQL database. Each test here races
// them where one process alone could not go wrong; on PostgreSQL each fails
// without its lock (dialect.go). TestAuditConcurrentWriters is the audit
// chain's.

// Events published at once through four handles, by Publish and by reads,
// reach a follower on a fifth each once and in id order: ids commit in id
// order, so the follower reading "id > last" never passes one. Inserts on
// one handle take turns on publishMu, so the race is between handles; with
// either events lock removed (Publish's, the reads'), the follower missed
// events in 5 runs of 5.
func TestFeedAcrossHandles(t *testing.T) {
	a, target := openTemp(t)
	writers := []*Store{a, openAt(t, target, testKey), openAt(t, target, testKey), openAt(t, target, testKey)}
	follower := openAt(t, target, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := follower.Subscribe(100000)
	defer sub.Close()
	go follower.FollowOtherWriters(ctx, time.Millisecond)

	// Per handle one writer publishing and one reading (a read's event is
	// stored in the audit transaction), so both paths race the others.
	// Reads are slower: with as many of them, inserts by Publish hardly
	// overlapped across handles and a missing lock was caught half the time.
	const published, read = 400, 100
	var wg sync.WaitGroup
	for w := range 2 * len(writers) {
		h, reader := writers[w%len(writers)], w >= len(writers)
		n := published
		if reader {
			n = read
		}
		wg.Go(func() {
			for i := range n {
				ev := &Event{Type: EventTool, Source: "test", Summary: fmt.Sprintf("w%d e%d", w, i)}
				var err error
				if reader {
					_, err = h.AuditRead(ctx, AuditEntry{Principal: "agent:x", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, ev)
				} else {
					err = h.Publish(ctx, ev)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var prev uint64
	want := (published + read) * len(writers)
	deadline := time.After(20 * time.Second)
	for got := 0; got < want; got++ {
		select {
		case ev := <-sub.C():
			if ev.ID <= prev {
				t.Fatalf("event %d after %d: out of order or twice", ev.ID, prev)
			}
			prev = ev.ID
		case <-deadline:
			t.Fatalf("the follower got %d of %d events", got, want)
		}
	}
}

// Claims of one rule through two handles at once: the rule lets one call run
// at a time, so at most one claim wins each round.
func TestRuleClaimsAcrossHandles(t *testing.T) {
	a, target := openTemp(t)
	raceRuleClaims(t, a, openAt(t, target, testKey))
}

// raceRuleClaims claims one rule from six goroutines on handles a and b, 20
// rounds, and fails if more than one claim wins a round.
func raceRuleClaims(t *testing.T, a, b *Store) {
	t.Helper()
	ctx := context.Background()
	r := Rule{Principal: "agent:x/t1", Tool: "start_vm", Args: map[string][]string{"vmid": {"101"}},
		PerTargetPerHour: 1000, MaxFailures: 2, ExpiresAt: time.Now().Add(time.Hour), CreatedBy: "operator"}
	if err := a.CreateRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	const rounds, claimers = 20, 6
	for round := range rounds {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			uses  []uint64 // claims won, ended once the round is over
			start = make(chan struct{})
		)
		for i := range claimers {
			h := []*Store{a, b}[i%2]
			wg.Go(func() {
				<-start
				id, _, err := h.ClaimRuleUse(ctx, RuleClaim{Rule: r, Principal: r.Principal, Target: "guest/101", Now: time.Now(), StaleAfter: time.Minute})
				switch {
				case err == nil:
					mu.Lock()
					uses = append(uses, id)
					mu.Unlock()
				case !errors.Is(err, ErrRuleBusy):
					t.Errorf("claim refused with %v, want ErrRuleBusy", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(uses) > 1 {
			t.Fatalf("round %d: %d claims won at once; the rule allows one call at a time", round, len(uses))
		}
		for _, id := range uses {
			if _, err := a.EndRuleUse(ctx, r, id, OutcomeOK, 1, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A rule changed while claims of it race: a claim either wins under the
// version it matched or is refused because that version stopped applying,
// never because the rule seemed not to exist.
func TestRuleClaimsRaceAChange(t *testing.T) {
	ctx := context.Background()
	a, target := openTemp(t)
	b := openAt(t, target, testKey)
	r := Rule{Principal: "agent:x/t1", Tool: "start_vm", Args: map[string][]string{"vmid": {"101"}},
		PerTargetPerHour: 1000, MaxFailures: 2, ExpiresAt: time.Now().Add(time.Hour), CreatedBy: "operator"}
	if err := a.CreateRule(ctx, &r); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		next := r
		wg.Go(func() {
			<-start
			changed, err := b.UpdateRule(ctx, r.ID, r)
			if err != nil {
				t.Errorf("UpdateRule: %v", err)
				return
			}
			next = *changed
		})
		for i := range 4 {
			h := []*Store{a, b}[i%2]
			wg.Go(func() {
				<-start
				id, _, err := h.ClaimRuleUse(ctx, RuleClaim{Rule: r, Principal: r.Principal, Target: "guest/101", Now: time.Now(), StaleAfter: time.Minute})
				switch {
				case err == nil:
					_, err = h.EndRuleUse(ctx, r, id, OutcomeOK, 1, time.Minute)
				case errors.Is(err, ErrRuleInactive) || errors.Is(err, ErrRuleBusy):
					err = nil
				}
				if err != nil {
					t.Errorf("claim during a change: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		r = next
	}
}

// One call closed at once by its own end rows (a retry, a second replica)
// and by the sweep of calls without one: exactly one end row, whoever wins.
// AuditEnd and MarkInterrupted look for an end row before they append one,
// so the audit lock must be taken before that look, not just before the
// chain's tip is read.
func TestOneEndPerBeginAcrossHandles(t *testing.T) {
	tests := []struct {
		name         string
		ends, sweeps int
		rounds       int
	}{
		{name: "two ends and a sweep", ends: 2, sweeps: 1, rounds: 20},
		{name: "three ends", ends: 3, rounds: 10},
		{name: "three sweeps", sweeps: 3, rounds: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, target := openTemp(t)
			handles := []*Store{a, openAt(t, target, testKey), openAt(t, target, testKey)}
			raceEnds(t, handles, tt.ends, tt.sweeps, tt.rounds)
			if rep := mustVerify(t, a); !rep.OK || rep.Rows != 2*tt.rounds {
				t.Errorf("AuditVerify = %+v, want OK with %d rows", rep, 2*tt.rounds)
			}
		})
	}
}

// raceEnds begins one call per round and closes it from ends AuditEnd and
// sweeps MarkInterrupted calls at once, spread over handles; it fails unless
// exactly one end row closes it and every loser heard why.
func raceEnds(t *testing.T, handles []*Store, ends, sweeps, rounds int) {
	t.Helper()
	ctx := context.Background()
	for round := range rounds {
		id, err := handles[0].AuditBegin(ctx, AuditEntry{Principal: "agent:x", Tool: "stop_vm", Args: `{"vmid":101}`})
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range ends + sweeps {
			h := handles[i%len(handles)]
			wg.Go(func() {
				<-start
				if i < ends {
					if err := h.AuditEnd(ctx, id, AuditOutcome{Status: OutcomeOK}); err != nil && !errors.Is(err, ErrAlreadyEnded) {
						t.Errorf("AuditEnd: %v, want nil or ErrAlreadyEnded", err)
					}
					return
				}
				if _, err := h.MarkInterrupted(ctx, -time.Hour); err != nil {
					t.Errorf("MarkInterrupted: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		var n int64
		if err := handles[0].db.Model(&auditRecord{}).Where("kind = ? AND begin_id = ?", "end", id).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("round %d: call %d has %d end rows, want 1", round, id, n)
		}
	}
}

// Processes opening a fresh database together: each Open succeeds and the
// audit log is founded once.
func TestConcurrentOpensOfAFreshDatabase(t *testing.T) {
	raceOpens(t, tempDB(t))
}

// raceOpens opens the fresh database at target from four goroutines and
// checks that each succeeds on one audit log.
func raceOpens(t *testing.T, target string) {
	t.Helper()
	ctx := context.Background()
	const opens = 4
	stores := make([]*Store, opens)
	var wg sync.WaitGroup
	for i := range opens {
		wg.Go(func() {
			s, err := openStore(target, Options{AuditKey: testKey})
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	if t.Failed() {
		return
	}
	var genesis int64
	if err := stores[0].db.Model(&auditGenesisRecord{}).Count(&genesis).Error; err != nil {
		t.Fatal(err)
	}
	if genesis != 1 {
		t.Fatalf("%d genesis records, want 1", genesis)
	}
	a := anchorAt(t, target)
	for i, s := range stores {
		if rep := mustVerify(t, s); !rep.OK || rep.Installation != a.Installation {
			t.Errorf("handle %d verifies %+v, want OK as the anchor's installation %s", i, rep, a.Installation)
		}
	}
	seedCalls(t, stores[1], 1)
	if rep, err := stores[2].AuditVerify(ctx); err != nil || !rep.OK || rep.Rows != 2 {
		t.Errorf("after a call through another handle: %+v, %v", rep, err)
	}
}

// The locks are written for READ COMMITTED: after waiting for a lock, the
// next statement sees what the holder committed. Under REPEATABLE READ it
// would see the snapshot from before the wait. A database, a role or the URL
// may make another isolation the default; Jarvis asks for its own at every
// connection, and the races that need it still come out right.
func TestLocksHoldWhateverTheDefaultIsolation(t *testing.T) {
	storetest.SkipOnSQLite(t, "transaction isolation")
	const other = "repeatable read"
	tests := []struct {
		name string
		// isolate makes other the default on the fresh database at target
		// and returns the URL to open it by.
		isolate func(t *testing.T, target string) string
	}{
		{"set on the database", func(t *testing.T, target string) string {
			onDatabase(t, target, "ALTER DATABASE %s SET default_transaction_isolation = '"+other+"'")
			return target
		}},
		{"set on the role in the database", func(t *testing.T, target string) string {
			onDatabase(t, target, "ALTER ROLE CURRENT_USER IN DATABASE %s SET default_transaction_isolation = '"+other+"'")
			return target
		}},
		{"set in the URL", func(t *testing.T, target string) string {
			return withParam(t, target, "default_transaction_isolation", other)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a database each
			target := tt.isolate(t, tempDB(t))
			raceOpens(t, target)
			a, b := openAt(t, target, testKey), openAt(t, target, testKey)
			for _, q := range []string{"SHOW default_transaction_isolation", "SHOW transaction_isolation"} {
				var got string
				if err := a.db.Transaction(func(tx *gorm.DB) error { return tx.Raw(q).Scan(&got).Error }); err != nil {
					t.Fatal(err)
				}
				if got != "read committed" {
					t.Errorf("%s in a transaction = %q, want read committed", q, got)
				}
			}
			raceRuleClaims(t, a, b)
			raceEnds(t, []*Store{a, b}, 2, 1, 10)
			if rep := mustVerify(t, a); !rep.OK {
				t.Errorf("AuditVerify = %+v, want OK", rep)
			}
		})
	}
}

// onDatabase runs statement on the PostgreSQL database at target, with %s
// standing for the database's quoted name.
func onDatabase(t *testing.T, target, statement string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal("the test database URL does not parse") // url's error would show the password
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(statement, name)); err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(statement, name), err)
	}
}
