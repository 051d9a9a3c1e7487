package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
)

func TestPollerPublishesWhileSomeoneListensAndRaisesAlertsOnce(t *testing.T) {
	h := newWebHarness(t)
	client := h.srv.Env().PVE
	p := NewPoller(client, h.store, h.app.opts.Logger)
	p.SetIntervals(PollIntervals{Nodes: 30 * time.Millisecond, Guests: 30 * time.Millisecond, Storage: 30 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	sub := h.store.Subscribe(1000)
	defer sub.Close()
	// Nobody listens yet: no polling.
	select {
	case ev := <-sub.C():
		t.Fatalf("event without listeners: %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}

	p.Acquire()
	seen := map[string]bool{}
	waitFor := func(what string, match func(store.Event) bool) store.Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-sub.C():
				if ev.Type == "cluster" {
					var d struct{ What string }
					_ = json.Unmarshal(ev.Details, &d)
					seen[d.What] = true
				}
				if match(ev) {
					return ev
				}
			case <-deadline:
				t.Fatalf("no %s event", what)
			}
		}
	}
	waitFor("storage snapshot", func(ev store.Event) bool { return seen["nodes"] && seen["guests"] && seen["storage"] })

	h.sim.SetNodeOffline("agent", true)
	raised := waitFor("node offline alert", func(ev store.Event) bool {
		return ev.Type == "alert" && strings.Contains(ev.Summary, "node agent is offline")
	})
	// Several more polls: the alert is not raised again.
	time.Sleep(200 * time.Millisecond)
	alerts, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: "alert", UnresolvedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range alerts {
		if strings.Contains(a.Summary, "node agent is offline") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("offline alert raised %d times, want once", n)
	}
	h.sim.SetNodeOffline("agent", false)
	waitFor("resolution", func(ev store.Event) bool {
		return ev.Type == "alert" && strings.Contains(ev.Summary, "node agent is online again")
	})
	got, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: "alert", UnresolvedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if a.ID == raised.ID {
			t.Fatal("the offline alert was not resolved")
		}
	}

	// A running guest that stops is noticed.
	if err := h.sim.SetGuestStatus(101, "stopped"); err != nil {
		t.Fatal(err)
	}
	waitFor("guest stopped alert", func(ev store.Event) bool {
		return ev.Type == "alert" && strings.Contains(ev.Summary, "guest 101")
	})

	// Last listener gone: polling stops.
	p.Release()
	time.Sleep(100 * time.Millisecond)
	for len(sub.C()) > 0 {
		<-sub.C()
	}
	select {
	case ev := <-sub.C():
		if ev.Type == "cluster" {
			t.Fatalf("polling went on without listeners: %+v", ev.Summary)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func TestPollerLooksAtGuestsRightAfterAChange(t *testing.T) {
	h := newWebHarness(t)
	p := NewPoller(h.srv.Env().PVE, h.store, h.app.opts.Logger)
	// Guests every hour: only a nudge can make a second guest poll happen.
	p.SetIntervals(PollIntervals{Nodes: time.Hour, Guests: time.Hour, Storage: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := h.store.Subscribe(1000)
	defer sub.Close()
	go p.Run(ctx)
	p.Acquire()
	guestPolls := func(timeout time.Duration) int {
		n := 0
		deadline := time.After(timeout)
		for {
			select {
			case ev := <-sub.C():
				if ev.Type == "cluster" && strings.Contains(string(ev.Details), `"what":"guests"`) {
					n++
				}
			case <-deadline:
				return n
			}
		}
	}
	if n := guestPolls(2 * time.Second); n != 1 {
		t.Fatalf("first guest polls: %d, want 1", n)
	}
	ok := &store.Event{Type: "tool", Summary: "x ended", Details: json.RawMessage(`{"phase":"ended","tier":"red","outcome":"ok"}`)}
	if err := h.store.Publish(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	if n := guestPolls(3 * time.Second); n != 1 {
		t.Fatalf("guest polls after a change: %d, want 1", n)
	}
}

func TestPollerPicksUpOpenAlertsAfterARestart(t *testing.T) {
	h := newWebHarness(t)
	ctx := context.Background()
	// A previous run raised "node agent is offline"; the node is online now.
	prev := &store.Event{Type: "alert", Severity: "critical", Node: "agent", Summary: "node agent is offline",
		Details: json.RawMessage(`{"key":"node-offline:agent","state":"raised"}`)}
	gone := &store.Event{Type: "alert", Severity: "warning", Summary: "guest 4242 stopped",
		Details: json.RawMessage(`{"key":"guest-stopped:4242","state":"raised"}`)}
	for _, ev := range []*store.Event{prev, gone} {
		if err := h.store.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	p := NewPoller(h.srv.Env().PVE, h.store, h.app.opts.Logger)
	p.SetIntervals(PollIntervals{Nodes: 30 * time.Millisecond, Guests: 30 * time.Millisecond, Storage: time.Hour})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.Run(rctx)
	p.Acquire()
	deadline := time.Now().Add(10 * time.Second)
	for {
		open, err := h.store.ListEvents(ctx, store.EventFilter{Type: "alert", UnresolvedOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(open) == 0 {
			return // both resolved: the node is back, the guest is gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts left open after a restart: %+v", open)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
