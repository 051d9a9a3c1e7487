package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// How soon an event published through one handle reaches a subscriber on
// another, with the follower as Jarvis runs it (every second): the poll on
// SQLite, the notification on PostgreSQL. Logged, not asserted.
func TestFollowerLatency(t *testing.T) {
	a, target := openTemp(t)
	c := openAt(t, target, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := c.Subscribe(100)
	defer sub.Close()
	go c.FollowOtherWriters(ctx, time.Second)
	samples := map[string]int{storetest.SQLite: 3, storetest.Postgres: 40}[storetest.Engine()]

	var lat []time.Duration
	for i := range samples {
		ev := &Event{Type: EventTool, Source: "test", Summary: "latency"}
		start := time.Now()
		if err := a.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		for got := waitFor(t, sub.C(), "the event on the other handle"); got.ID != ev.ID; {
			got = waitFor(t, sub.C(), "the event on the other handle")
		}
		lat = append(lat, time.Since(start))
		time.Sleep(time.Duration(i%7) * 3 * time.Millisecond) // not in step with a poll
	}
	slices.Sort(lat)
	t.Logf("%s: publish on one handle to a subscriber on another, %d events: p50 %v, p90 %v, max %v",
		storetest.Engine(), len(lat), lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
}

// The follower's connection is cut (a restart of PostgreSQL, a network
// blip): it connects again and delivers what was stored meanwhile, without
// waiting for a poll.
func TestFollowerListensAgainAfterItsConnectionIsCut(t *testing.T) {
	storetest.SkipOnSQLite(t, "LISTEN and NOTIFY")
	a, target := openTemp(t)
	c := openAt(t, target, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := c.Subscribe(100)
	defer sub.Close()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		c.FollowOtherWriters(ctx, time.Hour) // no poll within the test: only the listener delivers
	}()
	defer func() { cancel(); <-followed }()

	publish := func(summary string) uint64 {
		t.Helper()
		ev := &Event{Type: EventTool, Source: "test", Summary: summary}
		if err := a.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	listeners := func() (pids []int64) {
		t.Helper()
		err := a.db.Raw("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = ?",
			`listen "`+eventsChannel+`"`).Scan(&pids).Error
		if err != nil {
			t.Fatal(err)
		}
		return pids
	}
	waitListeners := func(want int) []int64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if pids := listeners(); len(pids) == want {
				return pids
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d listening connections, want %d", len(listeners()), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	pids := waitListeners(1)
	if id := publish("before"); waitFor(t, sub.C(), "an event while listening").ID != id {
		t.Fatal("the first event delivered is not the one published")
	}
	if err := a.db.Exec("SELECT pg_terminate_backend(?)", pids[0]).Error; err != nil {
		t.Fatal(err)
	}
	waitListeners(0)
	cut := time.Now()
	id := publish("while nobody listens") // its notification is lost
	if got := waitFor(t, sub.C(), "the event stored while the connection was cut"); got.ID != id {
		t.Fatalf("delivered event %d, want %d", got.ID, id)
	}
	t.Logf("delivered %v after the connection was cut (reconnect delay %v)", time.Since(cut).Round(time.Millisecond), listenerReconnectDelay)
	waitListeners(1)
	if id := publish("after"); waitFor(t, sub.C(), "an event after reconnecting").ID != id {
		t.Fatal("the event after reconnecting is not the one published")
	}
}
