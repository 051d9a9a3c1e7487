package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor fails the test if ch does not deliver within a generous bound; it
// guards against hangs, it does not measure speed.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func publishN(t *testing.T, s *Store, n int, typ string) []Event {
	t.Helper()
	out := make([]Event, 0, n)
	for i := 0; i < n; i++ {
		e := &Event{Type: typ, Source: "test", Summary: fmt.Sprintf("%s %d", typ, i)}
		if err := s.Publish(context.Background(), e); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		out = append(out, *e)
	}
	return out
}

func TestPublishStoresAndAssigns(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	before := time.Now()
	e := &Event{Type: "tool", Source: "dispatch", Node: "pve", Summary: "stop_vm 101 ended",
		Details: json.RawMessage(`{ "vmid": 101, "ok": true }`), Time: time.Unix(1, 0)}
	if err := s.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e.ID != 1 || e.Severity != "info" || e.Time.Before(before) || e.Time.Location() != time.UTC {
		t.Errorf("Publish left %+v; want ID 1, severity info, a fresh UTC time", e)
	}
	if string(e.Details) != `{"vmid":101,"ok":true}` {
		t.Errorf("Details = %s, want compact JSON", e.Details)
	}
	got, err := s.EventsAfter(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Time.Equal(e.Time) || got[0].Node != "pve" || string(got[0].Details) != string(e.Details) {
		t.Errorf("stored event = %+v, want %+v", got, e)
	}
	blob, _ := json.Marshal(got[0])
	if !strings.Contains(string(blob), `"details":{"vmid":101,"ok":true}`) {
		t.Errorf("event JSON %s does not carry details as an object", blob)
	}
}

func TestPublishRejectsBadEvents(t *testing.T) {
	s, _ := openTemp(t)
	tests := []struct {
		name string
		e    *Event
		want string
	}{
		{"nil", nil, "nil"},
		{"unknown type", &Event{Type: "gossip", Summary: "x"}, "unknown type"},
		{"unknown severity", &Event{Type: "alert", Severity: "meh", Summary: "x"}, "unknown severity"},
		{"no summary", &Event{Type: "alert"}, "summary is empty"},
		{"bad details", &Event{Type: "alert", Summary: "x", Details: json.RawMessage(`{nope`)}, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Publish(context.Background(), tt.e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Publish error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if id, _ := s.LastEventID(context.Background()); id != 0 {
		t.Errorf("rejected events were stored: last id %d", id)
	}
}

func TestSubscribeReceivesLiveEventsInOrder(t *testing.T) {
	s, _ := openTemp(t)
	sub := s.Subscribe(16)
	defer sub.Close()
	want := publishN(t, s, 5, "cluster")
	for i, w := range want {
		got := waitFor(t, sub.C(), "live event")
		if got.ID != w.ID || got.Summary != w.Summary {
			t.Fatalf("live event %d = %+v, want %+v", i, got, w)
		}
	}
}

// TestLiveAndReplayWithoutGapOrDuplicate follows the recipe documented on
// Subscribe while events keep arriving from another goroutine.
func TestLiveAndReplayWithoutGapOrDuplicate(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	publishN(t, s, 7, "system") // history the client missed

	const live = 30
	sub := s.Subscribe(live + 10)
	defer sub.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // publishes overlap the replay
		defer wg.Done()
		for i := 0; i < live; i++ {
			if err := s.Publish(ctx, &Event{Type: "alert", Summary: fmt.Sprintf("live %d", i)}); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	}()

	var seen []uint64
	last := uint64(2) // the client's Last-Event-ID
	for {
		page, err := s.EventsAfter(ctx, last, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.ID)
			last = e.ID
		}
		if len(page) < 3 {
			break
		}
	}
	wg.Wait()
	total := uint64(7 + live)
	for last < total {
		e := waitFor(t, sub.C(), "live event")
		if e.ID <= last {
			continue
		}
		seen = append(seen, e.ID)
		last = e.ID
	}
	for i, id := range seen {
		if id != uint64(i)+3 {
			t.Fatalf("client saw ids %v, want 3..%d each once in order", seen, total)
		}
	}
	if uint64(len(seen)) != total-2 {
		t.Fatalf("client saw %d events, want %d", len(seen), total-2)
	}
}

func TestSlowSubscriberIsDroppedWithoutBlockingPublish(t *testing.T) {
	s, _ := openTemp(t)
	slow := s.Subscribe(2) // never read
	fast := s.Subscribe(1) // read after every publish
	defer fast.Close()

	const n = 10
	finished := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := s.Publish(context.Background(), &Event{Type: "alert", Summary: fmt.Sprintf("e%d", i)}); err != nil {
				finished <- err
				return
			}
			select {
			case e := <-fast.C():
				if e.ID != uint64(i+1) {
					finished <- fmt.Errorf("fast subscriber got id %d, want %d", e.ID, i+1)
					return
				}
			default:
				finished <- fmt.Errorf("fast subscriber had nothing after publish %d", i+1)
				return
			}
		}
		finished <- nil
	}()
	if err := waitFor(t, finished, "publishing past a stuck subscriber"); err != nil {
		t.Fatal(err)
	}

	waitFor(t, slow.Done(), "slow subscriber to be dropped")
	if !slow.Dropped() {
		t.Error("Dropped() = false for a subscriber dropped for being slow")
	}
	var got []uint64
	for e := range slow.C() { // buffered events drain, then C is closed
		got = append(got, e.ID)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("slow subscriber kept %v, want [1 2]", got)
	}
	select {
	case <-fast.Done():
		t.Error("fast subscriber was dropped")
	default:
	}
}

func TestManySubscribersAllReceive(t *testing.T) {
	s, _ := openTemp(t)
	const subs, events = 200, 5
	list := make([]*Subscription, subs)
	for i := range list {
		list[i] = s.Subscribe(events)
	}
	publishN(t, s, events, "cluster")
	for i, sub := range list {
		for want := uint64(1); want <= events; want++ {
			e := waitFor(t, sub.C(), "event")
			if e.ID != want {
				t.Fatalf("subscriber %d got id %d, want %d", i, e.ID, want)
			}
		}
		sub.Close()
	}
}

func TestConcurrentPublishersDeliverInIDOrder(t *testing.T) {
	s, _ := openTemp(t)
	const writers, each = 8, 10
	sub := s.Subscribe(writers * each)
	defer sub.Close()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Publish(context.Background(), &Event{Type: "tool", Summary: "call"}); err != nil {
					t.Errorf("Publish: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for want := uint64(1); want <= writers*each; want++ {
		if e := waitFor(t, sub.C(), "event"); e.ID != want {
			t.Fatalf("live event id %d, want %d: fan-out out of order", e.ID, want)
		}
	}
}

func TestSubscriptionEnds(t *testing.T) {
	s, path := openTemp(t)
	sub := s.Subscribe(0)
	sub.Close()
	sub.Close() // twice is fine
	waitFor(t, sub.Done(), "Done after Close")
	if sub.Dropped() {
		t.Error("Dropped() = true after Close")
	}
	publishN(t, s, 1, "system") // must not send on the closed channel
	if _, ok := <-sub.C(); ok {
		t.Error("closed subscription received an event")
	}

	s2 := openAt(t, path, testKey)
	open := s2.Subscribe(1)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, open.Done(), "Done after store Close")
	late := s2.Subscribe(1)
	waitFor(t, late.Done(), "Done for a subscription on a closed store")
}

func TestListEventsFilters(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := base
	s.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	seed := []Event{
		{Type: "alert", Node: "pve", Summary: "disk 90%"},   // 1 @ +1m
		{Type: "cluster", Node: "pve", Summary: "snapshot"}, // 2 @ +2m
		{Type: "alert", Node: "home", Summary: "load high"}, // 3 @ +3m
		{Type: "alert", Node: "pve", Summary: "disk 95%"},   // 4 @ +4m
		{Type: "tool", Summary: "list_nodes ended"},         // 5 @ +5m
	}
	for i := range seed {
		if err := s.Publish(ctx, &seed[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ResolveEvent(ctx, 1, "op"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    EventFilter
		want []uint64
	}{
		{"all newest first", EventFilter{}, []uint64{5, 4, 3, 2, 1}},
		{"limit", EventFilter{Limit: 2}, []uint64{5, 4}},
		{"type", EventFilter{Type: "alert"}, []uint64{4, 3, 1}},
		{"node", EventFilter{Node: "pve"}, []uint64{4, 2, 1}},
		{"type and node", EventFilter{Type: "alert", Node: "pve"}, []uint64{4, 1}},
		{"since is inclusive", EventFilter{Since: base.Add(3 * time.Minute)}, []uint64{5, 4, 3}},
		{"unresolved", EventFilter{Type: "alert", UnresolvedOnly: true}, []uint64{4, 3}},
		{"nothing matches", EventFilter{Type: "safety"}, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListEvents(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if ids := idsOf(got); fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("ListEvents(%+v) ids = %v, want %v", tt.f, ids, tt.want)
			}
		})
	}
}

func TestEventsAfterAndLastEventID(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if id, err := s.LastEventID(ctx); err != nil || id != 0 {
		t.Fatalf("LastEventID on empty store = %d, %v", id, err)
	}
	publishN(t, s, 6, "system")
	tests := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 0, []uint64{1, 2, 3, 4, 5, 6}},
		{2, 3, []uint64{3, 4, 5}},
		{5, 10, []uint64{6}},
		{6, 10, []uint64{}},
		{99, 10, []uint64{}},
	}
	for _, tt := range tests {
		got, err := s.EventsAfter(ctx, tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if ids := idsOf(got); fmt.Sprint(ids) != fmt.Sprint(tt.want) {
			t.Errorf("EventsAfter(%d, %d) = %v, want %v", tt.after, tt.limit, ids, tt.want)
		}
	}
	if id, err := s.LastEventID(ctx); err != nil || id != 6 {
		t.Errorf("LastEventID = %d, %v; want 6", id, err)
	}
}

func TestResolveEvent(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	publishN(t, s, 1, "alert")
	first, err := s.ResolveEvent(ctx, 1, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Resolved || first.ResolvedBy != "alice" || first.ResolvedAt == nil {
		t.Fatalf("ResolveEvent = %+v, want resolved by alice with a time", first)
	}
	again, err := s.ResolveEvent(ctx, 1, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if again.ResolvedBy != "alice" || !again.ResolvedAt.Equal(*first.ResolvedAt) {
		t.Errorf("second resolve changed the resolver: %+v", again)
	}
	if _, err := s.ResolveEvent(ctx, 42, "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveEvent(42) error = %v, want ErrNotFound", err)
	}
}

func idsOf(events []Event) []uint64 {
	ids := make([]uint64, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

func BenchmarkPublish(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, _ string) {
		sub := s.Subscribe(64) // one live listener, drained, so fan-out is measured too
		go func() {
			for range sub.C() {
			}
		}()
		defer sub.Close()
		ctx := context.Background()
		for b.Loop() {
			if err := s.Publish(ctx, &Event{Type: "tool", Source: "bench", Summary: "call ended", Details: json.RawMessage(`{"n":1}`)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestEventsFromAnotherProcessAreDeliveredInOrder(t *testing.T) {
	path := tempDB(t)
	key := bytes.Repeat([]byte("k"), 32)
	a, err := openStore(path, Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := openStore(path, Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := a.Subscribe(100)
	defer sub.Close()
	ext := &Event{Type: "approval", Summary: "approved on the host"}
	if err := b.Publish(ctx, ext); err != nil {
		t.Fatal(err)
	}
	local := &Event{Type: "system", Summary: "local"}
	if err := a.Publish(ctx, local); err != nil {
		t.Fatal(err)
	}
	// The local publish delivers the other process's earlier event first.
	for _, want := range []uint64{ext.ID, local.ID} {
		select {
		case ev := <-sub.C():
			if ev.ID != want {
				t.Fatalf("got event %d, want %d", ev.ID, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered", want)
		}
	}
	// Without a local publish, the follower delivers it.
	go a.FollowOtherWriters(ctx, 20*time.Millisecond)
	ext2 := &Event{Type: "approval", Summary: "denied on the host"}
	if err := b.Publish(ctx, ext2); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.C():
		if ev.ID != ext2.ID {
			t.Fatalf("got event %d, want %d", ev.ID, ext2.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follower did not deliver the other process's event")
	}
}

func TestPruneEventsRemovesOnlyOldEventsOfOneType(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)
	s.now = func() time.Time { return old }
	for _, typ := range []string{"cluster", "cluster", "alert"} {
		if err := s.Publish(ctx, &Event{Type: typ, Summary: "old " + typ}); err != nil {
			t.Fatal(err)
		}
	}
	s.now = time.Now
	if err := s.Publish(ctx, &Event{Type: "cluster", Summary: "fresh"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneEvents(ctx, "cluster", time.Now().Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	left, _ := s.ListEvents(ctx, EventFilter{})
	if len(left) != 2 {
		t.Fatalf("left %d events, want the fresh snapshot and the alert", len(left))
	}
	if _, err := s.PruneEvents(ctx, "bogus", time.Now()); err == nil {
		t.Fatal("unknown type accepted")
	}
}

// Dropped reports whether the subscription ended because its buffer was full.
// Meaningful once Done is closed.
func (sub *Subscription) Dropped() bool {
	select {
	case <-sub.done:
		return sub.dropped
	default:
		return false
	}
}
