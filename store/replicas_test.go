package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Several handles on one database stand for several Jarvis processes on one
// SQLite file or replicas on one PostgreSQL database. Each test here races
// them where one process alone could not go wrong; on PostgreSQL each fails
// without its lock (dialect.go). TestAuditConcurrentWriters is the audit
// chain's.

// Events published at once through two handles, by Publish and by reads,
// reach a follower on a third handle each once and in id order: ids commit in
// id order, so the follower reading "id > last" never passes one.
func TestFeedAcrossHandles(t *testing.T) {
	a, target := openTemp(t)
	b := openAt(t, target, testKey)
	follower := openAt(t, target, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := follower.Subscribe(100000)
	defer sub.Close()
	go follower.FollowOtherWriters(ctx, time.Millisecond)

	const writers, each = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		h := []*Store{a, b}[w%2]
		wg.Go(func() {
			for i := range each {
				ev := &Event{Type: EventTool, Source: "test", Summary: fmt.Sprintf("w%d e%d", w, i)}
				var err error
				if w < 6 {
					err = h.Publish(ctx, ev)
				} else {
					_, err = h.AuditRead(ctx, AuditEntry{Principal: "agent:x", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, ev)
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
	deadline := time.After(20 * time.Second)
	for got := 0; got < writers*each; got++ {
		select {
		case ev := <-sub.C():
			if ev.ID <= prev {
				t.Fatalf("event %d after %d: out of order or twice", ev.ID, prev)
			}
			prev = ev.ID
		case <-deadline:
			t.Fatalf("the follower got %d of %d events", got, writers*each)
		}
	}
}

// Claims of one rule through two handles at once: the rule lets one call run
// at a time, so at most one claim wins each round.
func TestRuleClaimsAcrossHandles(t *testing.T) {
	ctx := context.Background()
	a, target := openTemp(t)
	b := openAt(t, target, testKey)
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

// Processes opening a fresh database together: each Open succeeds and the
// audit log is founded once.
func TestConcurrentOpensOfAFreshDatabase(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
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
