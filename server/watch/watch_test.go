package watch

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

type harness struct {
	store *store.Store
	pve   *pve.Client
	sim   *pvesim.Sim
	log   *slog.Logger
}

// newHarness serves the cluster from h (the simulator when nil).
func newHarness(t *testing.T, h http.Handler) *harness {
	t.Helper()
	var sim *pvesim.Sim
	if h == nil {
		sim = pvesim.New(pvesim.Options{TokenID: "jarvis@pve!t", TokenSecret: "s", TaskDuration: 50 * time.Millisecond})
		h = sim
	}
	pts := httptest.NewTLSServer(h)
	t.Cleanup(pts.Close)
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: pts.URL}}, TokenID: "jarvis@pve!t", TokenSecret: "s",
		Fingerprint: pve.FingerprintOf(pts.Certificate())})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "j.db"), store.Options{AuditKey: safety.DeriveKey("watch-test-secret", "audit-chain")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &harness{store: st, pve: client, sim: sim, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestWatcherPublishesWhileSomeoneListensAndRaisesAlertsOnce(t *testing.T) {
	h := newHarness(t, nil)
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(Intervals{Nodes: 30 * time.Millisecond, Guests: 30 * time.Millisecond, Storage: 30 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	sub := h.store.Subscribe(1000)
	defer sub.Close()
	// Nobody listens yet: no polling.
	select {
	case ev := <-sub.C():
		t.Fatalf("event without listeners: %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}

	w.Acquire()
	seen := map[string]bool{}
	waitFor := func(what string, match func(store.Event) bool) store.Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-sub.C():
				if ev.Type == store.EventCluster {
					var d store.ClusterDetails
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
	waitFor("storage snapshot", func(ev store.Event) bool {
		return seen[store.ClusterNodes] && seen[store.ClusterGuests] && seen[store.ClusterStorage]
	})

	h.sim.SetNodeOffline("agent", true)
	raised := waitFor("node offline alert", func(ev store.Event) bool {
		return ev.Type == store.EventAlert && strings.Contains(ev.Summary, "node agent is offline")
	})
	// Several more polls: the alert is not raised again.
	time.Sleep(200 * time.Millisecond)
	alerts, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true})
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
	resolved := waitFor("resolution", func(ev store.Event) bool {
		return ev.Type == store.EventAlert && strings.Contains(ev.Summary, "node agent is online again")
	})
	var d store.AlertDetails
	if err := json.Unmarshal(resolved.Details, &d); err != nil || d.State != store.AlertResolved || d.AlertID != raised.ID ||
		d.Key != "node-offline:agent" || !resolved.Resolved {
		t.Fatalf("resolution %+v, details %s", resolved, resolved.Details)
	}
	got, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true})
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
		return ev.Type == store.EventAlert && strings.Contains(ev.Summary, "guest 101")
	})

	// Last listener gone: polling stops.
	w.Release()
	time.Sleep(100 * time.Millisecond)
	for len(sub.C()) > 0 {
		<-sub.C()
	}
	select {
	case ev := <-sub.C():
		if ev.Type == store.EventCluster {
			t.Fatalf("polling went on without listeners: %+v", ev.Summary)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func TestWatcherLooksAtGuestsRightAfterAChange(t *testing.T) {
	h := newHarness(t, nil)
	w := New(h.pve, h.store, h.log)
	// Guests every hour: only a nudge can make a second guest poll happen.
	w.SetIntervals(Intervals{Nodes: time.Hour, Guests: time.Hour, Storage: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := h.store.Subscribe(1000)
	defer sub.Close()
	go w.Run(ctx)
	w.Acquire()
	guestPolls := func(timeout time.Duration) int {
		n := 0
		deadline := time.After(timeout)
		for {
			select {
			case ev := <-sub.C():
				if ev.Type == store.EventCluster && strings.Contains(string(ev.Details), `"what":"guests"`) {
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
	// A green call changes nothing: no nudge.
	for _, tier := range []string{"green", "red"} {
		ok := &store.Event{Type: store.EventTool, Summary: "x ended",
			Details: store.EncodeDetails(store.ToolDetails{Phase: store.ToolEnded, Tier: tier, Outcome: "ok"})}
		if err := h.store.Publish(context.Background(), ok); err != nil {
			t.Fatal(err)
		}
	}
	if n := guestPolls(3 * time.Second); n != 1 {
		t.Fatalf("guest polls after a change: %d, want 1", n)
	}
}

func TestWatcherPicksUpOpenAlertsAfterARestart(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	// A previous run raised "node agent is offline"; the node is online now.
	prev := &store.Event{Type: store.EventAlert, Severity: store.SeverityCritical, Node: "agent", Summary: "node agent is offline",
		Details: json.RawMessage(`{"key":"node-offline:agent","state":"raised"}`)}
	gone := &store.Event{Type: store.EventAlert, Severity: store.SeverityWarning, Summary: "guest 4242 stopped",
		Details: json.RawMessage(`{"key":"guest-stopped:4242","state":"raised"}`)}
	for _, ev := range []*store.Event{prev, gone} {
		if err := h.store.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(Intervals{Nodes: 30 * time.Millisecond, Guests: 30 * time.Millisecond, Storage: time.Hour})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(rctx)
	w.Acquire()
	deadline := time.Now().Add(10 * time.Second)
	for {
		open, err := h.store.ListEvents(ctx, store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true})
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

// The console must show the percentages the tools report. 0.2536 is where
// truncating (the watcher's old way, 25.3) and rounding (the tools', 25.4) differ.
func TestSnapshotsRoundAsTheToolsDo(t *testing.T) {
	const frac, used, total = 0.2536, 2536, 10000
	want := tools.FractionPercent(frac)
	if want != 25.4 || tools.Percent(used, total) != 25.4 {
		t.Fatalf("tools say %v and %v, want 25.4", want, tools.Percent(used, total))
	}
	n := nodeSnapshot(pve.NodeEntry{Node: "pve1", Status: "online", CPU: frac, Mem: used, MaxMem: total, Disk: used, MaxDisk: total})
	g := guestSnapshot(pve.Resource{VMID: 101, CPU: frac, Mem: used, MaxMem: total})
	s := storageSnapshot(pve.Resource{Storage: "local", Disk: used, MaxDisk: total})
	for name, got := range map[string]float64{"node cpu": n.CPUPercent, "node mem": n.MemPercent, "node disk": n.DiskPercent,
		"guest cpu": g.CPUPercent, "guest mem": g.MemPercent, "storage used": s.UsedPercent} {
		if got != want {
			t.Errorf("%s = %v, the tools say %v", name, got, want)
		}
	}
	if z := nodeSnapshot(pve.NodeEntry{Node: "pve2", Status: "offline"}); z.MemPercent != 0 || z.DiskPercent != 0 {
		t.Errorf("node without totals = %+v, want 0 %%", z)
	}
}

// fakePVE answers the three reads the watcher makes with fixed rows.
func fakePVE() http.Handler {
	rows := map[string]string{
		"/api2/json/nodes": `[{"node":"pve1","status":"online","cpu":0.2536,"mem":2536,"maxmem":10000,` +
			`"disk":2536,"maxdisk":10000,"uptime":42}]`,
		"/api2/json/cluster/resources?type=vm":      `[]`,
		"/api2/json/cluster/resources?type=storage": `[{"storage":"local","node":"pve1","plugintype":"dir","shared":0,"status":"available","disk":2536,"maxdisk":10000}]`,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := rows[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":`+data+`}`)
	})
}

// The snapshot events keep their wire shape: only the list What names, present
// even when empty, with the console's field names and the tools' rounding.
func TestSnapshotEventsOnTheWire(t *testing.T) {
	h := newHarness(t, fakePVE())
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(Intervals{Nodes: time.Hour, Guests: time.Hour, Storage: time.Hour})
	sub := h.store.Subscribe(100)
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	w.Acquire()
	want := map[string]string{
		"nodes": `{"what":"nodes","nodes":[{"node":"pve1","status":"online","cpu_percent":25.4,"mem_percent":25.4,` +
			`"disk_percent":25.4,"mem_bytes":2536,"maxmem_bytes":10000,"uptime_seconds":42}]}`,
		"guests": `{"what":"guests","guests":[]}`,
		"storage": `{"what":"storage","storage":[{"storage":"local","node":"pve1","type":"dir","shared":false,` +
			`"status":"available","used_percent":25.4,"used_bytes":2536,"total_bytes":10000}]}`,
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-sub.C():
			if ev.Type != store.EventCluster || ev.Source != "poller" || ev.Severity != store.SeverityInfo {
				t.Fatalf("unexpected event %+v", ev)
			}
			var d store.ClusterDetails
			_ = json.Unmarshal(ev.Details, &d)
			if ev.Summary != "cluster "+d.What+" snapshot" || string(ev.Details) != want[d.What] {
				t.Errorf("%s snapshot: %q %s\nwant %s", d.What, ev.Summary, ev.Details, want[d.What])
			}
			delete(want, d.What)
		case <-deadline:
			t.Fatalf("snapshots never published: %v", want)
		}
	}
}

// SetIntervals changes the poll intervals (tests use short ones). Call before Run.
func (w *Watcher) SetIntervals(every Intervals) {
	w.every = every
	w.tick = min(every.Nodes, every.Guests, every.Storage, time.Second)
}
