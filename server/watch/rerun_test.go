package watch

import (
	"context"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// A watcher run again (a replica that lost the watcher's lease and took it
// back) starts from the store, as at its first start: an alert resolved
// meanwhile is raised again while its condition holds, on every cluster.
// Listeners counts the subscriptions of the runs under way.
func TestRunAgainStartsFromTheStore(t *testing.T) {
	h := newSimHarness(t, pvesim.Options{})
	labSim, labClient := labCluster(t)
	h.sim.SetNodeOffline("agent", true)
	labSim.SetNodeOffline("agent", true)
	w := NewClusters([]Cluster{{Name: "home", PVE: h.pve}, {Name: "lab", PVE: labClient}}, h.store, h.log)
	w.SetIntervals(fast)
	w.Acquire()
	keys := []string{"home/node-offline:agent", "lab/node-offline:agent"}
	f := follow(t, h.store)

	stop := run(t, w)
	for _, key := range keys {
		f.seen(key, raised(key))
	}
	if n := w.Listeners(); n != 2 {
		t.Errorf("Listeners() = %d while both clusters' runs are under way, want 2", n)
	}
	stop()
	if n := w.Listeners(); n != 0 {
		t.Errorf("Listeners() = %d after Run returned, want 0", n)
	}
	// Meanwhile (another replica's watcher, a person) the alerts are resolved.
	ctx := context.Background()
	for _, key := range keys {
		evs := alertEvents(t, h.store, key)
		if len(evs) != 1 {
			t.Fatalf("%s: %d events, want 1", key, len(evs))
		}
		if _, err := h.store.ResolveEvent(ctx, evs[0].ID, "operator"); err != nil {
			t.Fatal(err)
		}
	}

	f = follow(t, h.store)
	run(t, w)
	for _, key := range keys {
		ev := f.seen(key+" again", raised(key))
		if evs := alertEvents(t, h.store, key); len(evs) != 2 || evs[1].ID != ev.ID {
			t.Errorf("%s: %d events after the second run, want the first and the one raised again", key, len(evs))
		}
	}
	f.guestPolls(4)
	if got := openAlertKeys(t, h.store); len(got) != 2 || got[0] != keys[0] || got[1] != keys[1] {
		t.Errorf("open alerts %v, want %v", got, keys)
	}
}

// Problems says nothing while Run is not running, listeners or not: what an
// ended run found is stale.
func TestProblemsOnlyWhileRunning(t *testing.T) {
	h := newHarness(t, newFlakyPVE("unauthorized"))
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(fast)
	w.Acquire()
	if ps := w.Problems(); ps != nil {
		t.Errorf("Problems() before Run = %+v", ps)
	}
	stop := run(t, w)
	deadline := time.Now().Add(10 * time.Second)
	for len(w.Problems()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Problems() stays empty while the cluster cannot be read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if ps := w.Problems(); ps != nil {
		t.Errorf("Problems() after Run returned = %+v, want nil", ps)
	}
	// A new run starts from nothing known, and finds the cause again.
	run(t, w)
	for len(w.Problems()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Problems() stays empty in the second run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if evs, _ := dependencyEvents(t, h.store); len(evs) != 1 {
		t.Errorf("%d failing events over two runs with the same cause, want 1 (the open one is picked up)", len(evs))
	}
}
