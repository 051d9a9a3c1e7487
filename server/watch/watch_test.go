package watch

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

type harness struct {
	store *store.Store
	pve   *pve.Client
	sim   *pvesim.Sim
	log   *slog.Logger
}

// newHarness serves the cluster from h (the simulator when nil).
func newHarness(t *testing.T, h http.Handler, tweak ...func(*pve.Config)) *harness {
	t.Helper()
	var sim *pvesim.Sim
	if h == nil {
		sim = pvesim.New(pvesim.Options{TokenID: "jarvis@pve!t", TokenSecret: "s", TaskDuration: 50 * time.Millisecond})
		h = sim
	}
	pts := httptest.NewTLSServer(h)
	t.Cleanup(pts.Close)
	cfg := pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: pts.URL}}, TokenID: "jarvis@pve!t", TokenSecret: "s",
		Fingerprint: pve.FingerprintOf(pts.Certificate())}
	for _, f := range tweak {
		f(&cfg)
	}
	client, err := pve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(storetest.Target(t), store.Options{AuditKey: safety.DeriveKey("watch-test-secret", "audit-chain")})
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
				if match(*ev) {
					return *ev
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

// A change another process made (jarvis stdio or approve, sharing the
// database) reaches the feed as an event only: the watcher drops its read
// cache before looking, so the console shows the change, not the cached past.
func TestWatcherSeesAnotherProcesssChangeThroughTheCache(t *testing.T) {
	h := newHarness(t, nil, func(c *pve.Config) { c.CacheFor = time.Hour })
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(Intervals{Nodes: time.Hour, Guests: time.Hour, Storage: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := h.store.Subscribe(1000)
	defer sub.Close()
	go w.Run(ctx)
	w.Acquire()
	status101 := func() string {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case ev := <-sub.C():
				var d store.ClusterDetails
				if ev.Type != store.EventCluster || json.Unmarshal(ev.Details, &d) != nil || d.What != "guests" {
					continue
				}
				for _, g := range d.Guests {
					if g.VMID == 101 {
						return g.Status
					}
				}
			case <-deadline:
				t.Fatal("no guest snapshot")
			}
		}
	}
	if s := status101(); s != "running" {
		t.Fatalf("101 is %s at first", s)
	}
	if err := h.sim.SetGuestStatus(101, "stopped"); err != nil { // the other process's stop_vm
		t.Fatal(err)
	}
	ended := &store.Event{Type: store.EventTool, Summary: "agent:x stop_vm ended",
		Details: store.EncodeDetails(store.ToolDetails{Phase: store.ToolEnded, Tool: "stop_vm", Tier: "red", Outcome: "ok"})}
	if err := h.store.Publish(context.Background(), ended); err != nil {
		t.Fatal(err)
	}
	if s := status101(); s != "stopped" {
		t.Fatalf("after another process stopped 101 the snapshot says %s (served from the cache)", s)
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

// fakePVE answers the reads the watcher makes (the ping at start and the
// three polls) with fixed rows.
func fakePVE() http.Handler {
	rows := map[string]string{
		"/api2/json/version": `{"version":"8.2.4","release":"8.2","repoid":"faa83925"}`,
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

// records keeps the log records a watcher writes.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count returns how many records at level have msg, and the "cause" of the last.
func (r *records) count(level slog.Level, msg string) (n int, cause string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			n++
			rec.Attrs(func(a slog.Attr) bool {
				if a.Key == "cause" {
					cause = a.Value.String()
				}
				return true
			})
		}
	}
	return n, cause
}

// flakyPVE answers like fakePVE, or fails the way mode says: "unauthorized"
// (every call, as a wrong token does), "gone" (every call, 595 as for an offline
// node), "no-storage" (403 on the storage list only).
type flakyPVE struct {
	mode     atomic.Value
	requests atomic.Int64
	ok       http.Handler
}

func newFlakyPVE(mode string) *flakyPVE {
	f := &flakyPVE{ok: fakePVE()}
	f.mode.Store(mode)
	return f
}

func (f *flakyPVE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	switch f.mode.Load().(string) {
	case "unauthorized":
		w.WriteHeader(http.StatusUnauthorized)
		return
	case "gone":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(595)
		_, _ = io.WriteString(w, `{"data":null,"message":"Proxmox node unreachable"}`)
		return
	case "no-storage":
		if r.URL.Query().Get("type") == "storage" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"data":null,"message":"Permission check failed (/storage/local, Datastore.Audit)"}`)
			return
		}
	}
	f.ok.ServeHTTP(w, r)
}

// waitPolls waits until the fake has answered n more requests. Polls run one
// after another, so every poll before the last one seen has been reported on.
func (f *flakyPVE) waitPolls(t *testing.T, n int64) {
	t.Helper()
	want := f.requests.Load() + n
	deadline := time.Now().Add(10 * time.Second)
	for f.requests.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher made %d requests, want %d", f.requests.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dependencyEvents returns the watcher's system events about the cluster, oldest first.
func dependencyEvents(t *testing.T, st *store.Store) ([]store.Event, []store.DependencyDetails) {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), store.EventFilter{Type: store.EventSystem, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var outE []store.Event
	var outD []store.DependencyDetails
	for i := len(evs) - 1; i >= 0; i-- {
		var d store.DependencyDetails
		if json.Unmarshal(evs[i].Details, &d) == nil && d.Dependency == store.DependencyPVE {
			outE, outD = append(outE, evs[i]), append(outD, d)
		}
	}
	return outE, outD
}

// A cluster that cannot be read is said once per cause, at WARN and on the feed,
// not once per poll; a new cause is said again; the recovery once, at INFO.
func TestWatcherReportsEachCauseOnce(t *testing.T) {
	fake := newFlakyPVE("unauthorized")
	h := newHarness(t, fake)
	logs := &records{}
	w := New(h.pve, h.store, slog.New(logs))
	w.SetIntervals(Intervals{Nodes: 20 * time.Millisecond, Guests: 20 * time.Millisecond, Storage: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	w.Acquire()
	defer w.Release()

	const warn, info = "cannot read the Proxmox cluster", "cluster reachable again"
	steps := []struct {
		mode                 string
		warns, infos, events int
		cause, fix, severity string
		state                string
	}{
		{"unauthorized", 1, 0, 1, "401 Unauthorized — check the API token id and secret", "PVE_TOKEN_SECRET", store.SeverityCritical, store.DependencyFailing},
		// Another cause for every call: said once more, the first one closed.
		{"gone", 2, 0, 2, "595 Proxmox node unreachable — the node cannot be reached from the API endpoint", "JARVIS_NODES", store.SeverityCritical, store.DependencyFailing},
		{"ok", 2, 1, 3, "", "", store.SeverityInfo, store.DependencyRecovered},
		// Nodes and guests are read, storage is not: a cause of its own.
		{"no-storage", 3, 1, 4, "GET /cluster/resources: 403 Permission check failed (/storage/local, Datastore.Audit)", "PVEAuditor", store.SeverityWarning, store.DependencyFailing},
		{"ok", 3, 2, 5, "", "", store.SeverityInfo, store.DependencyRecovered},
	}
	for _, s := range steps {
		fake.mode.Store(s.mode)
		// Many polls in this state: each is reported on before the next is sent.
		fake.waitPolls(t, 12)
		n, cause := logs.count(slog.LevelWarn, warn)
		if m, _ := logs.count(slog.LevelInfo, info); n != s.warns || m != s.infos {
			t.Fatalf("%s: %d WARN and %d INFO records, want %d and %d", s.mode, n, m, s.warns, s.infos)
		}
		if s.cause != "" && cause != s.cause {
			t.Errorf("%s: WARN cause %q, want %q", s.mode, cause, s.cause)
		}
		evs, ds := dependencyEvents(t, h.store)
		if len(evs) != s.events {
			t.Fatalf("%s: %d system events about the cluster, want %d: %+v", s.mode, len(evs), s.events, ds)
		}
		last, d := evs[len(evs)-1], ds[len(ds)-1]
		if d.State != s.state || d.Error != s.cause || !strings.Contains(d.Fix, s.fix) || last.Severity != s.severity ||
			last.Source != "poller" || d.Since.IsZero() {
			t.Errorf("%s: event %+v, details %+v", s.mode, last, d)
		}
		// Only the newest failing event stays open; a recovery leaves none.
		for i, ev := range evs {
			if open := !ev.Resolved; open != (i == len(evs)-1 && s.state == store.DependencyFailing) {
				t.Errorf("%s: event %d %q open=%t", s.mode, i, ev.Summary, open)
			}
		}
		// Health reads the same problems while the watcher polls.
		ps := w.Problems()
		if s.cause == "" && len(ps) != 0 || s.cause != "" && (len(ps) != 1 || ps[0].Error != s.cause || ps[0].Dependency != "pve_api") {
			t.Errorf("%s: Problems() = %+v", s.mode, ps)
		}
	}
}

// A failing event left open by a previous run is not said again for the same
// cause, and the first good poll resolves it.
func TestWatcherPicksUpAnOpenProblemAfterARestart(t *testing.T) {
	fake := newFlakyPVE("unauthorized")
	h := newHarness(t, fake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := h.pve.Nodes(ctx)
	prev := &store.Event{Type: store.EventSystem, Severity: store.SeverityCritical, Source: "poller", Summary: "cannot read",
		Details: store.EncodeDetails(store.DependencyDetails{Dependency: store.DependencyPVE, State: store.DependencyFailing, Error: Diagnose(err).Error})}
	if err := h.store.Publish(ctx, prev); err != nil {
		t.Fatal(err)
	}
	logs := &records{}
	w := New(h.pve, h.store, slog.New(logs))
	w.SetIntervals(Intervals{Nodes: 20 * time.Millisecond, Guests: 20 * time.Millisecond, Storage: 20 * time.Millisecond})
	go w.Run(ctx)
	w.Acquire()
	fake.waitPolls(t, 6)
	if evs, _ := dependencyEvents(t, h.store); len(evs) != 1 {
		t.Fatalf("the same cause was announced again after a restart: %d events", len(evs))
	}
	// This process logs it once all the same: its log is read on its own.
	if n, _ := logs.count(slog.LevelWarn, "cannot read the Proxmox cluster"); n != 1 {
		t.Errorf("%d WARN records, want 1", n)
	}
	fake.mode.Store("ok")
	fake.waitPolls(t, 6)
	evs, ds := dependencyEvents(t, h.store)
	if len(evs) != 2 || ds[1].State != store.DependencyRecovered || !evs[0].Resolved {
		t.Fatalf("after recovery: %+v %+v", evs, ds)
	}
}

// The same cause reads the same from every call, or each poll would be a change;
// each cause says what to set.
func TestDiagnose(t *testing.T) {
	selfSigned := httptest.NewTLSServer(fakePVE())
	t.Cleanup(selfSigned.Close)
	fp := pve.FingerprintOf(selfSigned.Certificate())
	closed := httptest.NewTLSServer(fakePVE())
	closed.Close()
	unauthorized := httptest.NewTLSServer(newFlakyPVE("unauthorized"))
	t.Cleanup(unauthorized.Close)
	gone := httptest.NewTLSServer(newFlakyPVE("gone"))
	t.Cleanup(gone.Close)
	const secret = "5e1d2c3b-never-in-a-problem"
	for _, c := range []struct {
		name, url, pin string
		whole          bool
		err, fix       []string
	}{
		{"no fingerprint", selfSigned.URL, "", true,
			[]string{"presented a certificate that is not trusted (self-signed)", "PVE_TLS_FINGERPRINT=" + fp}, []string{"set PVE_TLS_FINGERPRINT=" + fp}},
		{"wrong fingerprint", selfSigned.URL, strings.Repeat("AB:", 31) + "AB", true,
			[]string{"fingerprint mismatch", fp}, []string{"PVE_TLS_FINGERPRINT=" + fp}},
		{"nothing listens", closed.URL, "", true, []string{"no Proxmox API endpoint answered", "connection refused"}, []string{"JARVIS_NODES"}},
		{"wrong token", unauthorized.URL, "pin", true, []string{"401"}, []string{"PVE_TOKEN_ID", "PVE_TOKEN_SECRET"}},
		{"node offline", gone.URL, "pin", true, []string{"595"}, []string{"JARVIS_NODES"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pin := c.pin
			if pin == "pin" {
				pin = pve.FingerprintOf(map[string]*httptest.Server{unauthorized.URL: unauthorized, gone.URL: gone}[c.url].Certificate())
			}
			client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: c.url}}, TokenID: "jarvis@pve!t",
				TokenSecret: secret, Fingerprint: pin, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(client.CloseIdleConnections)
			ctx := context.Background()
			_, errNodes := client.Nodes(ctx)
			_, errGuests := client.ClusterResources(ctx, "vm")
			p, q := Diagnose(errNodes), Diagnose(errGuests)
			if p.Error != q.Error || p.Fix != q.Fix {
				t.Errorf("two calls, one cause, two texts:\n%q\n%q", p.Error, q.Error)
			}
			if p.Dependency != store.DependencyPVE || p.whole != c.whole {
				t.Errorf("problem %+v", p)
			}
			for _, want := range c.err {
				if !strings.Contains(p.Error, want) {
					t.Errorf("error %q lacks %q", p.Error, want)
				}
			}
			for _, want := range c.fix {
				if !strings.Contains(p.Fix, want) {
					t.Errorf("fix %q lacks %q", p.Fix, want)
				}
			}
			if strings.Contains(p.Error+p.Fix, secret) || strings.Contains(p.Error, "/nodes") {
				t.Errorf("problem %+v names the secret or the call", p)
			}
		})
	}
}

// At start the watcher says whether the cluster can be read, though nobody
// follows the feed yet: the terminal `jarvis serve` runs in is where a new user looks.
func TestWatcherSaysAtStartWhenTheClusterCannotBeRead(t *testing.T) {
	fake := newFlakyPVE("unauthorized")
	h := newHarness(t, fake)
	logs := &records{}
	w := New(h.pve, h.store, slog.New(logs))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if evs, ds := dependencyEvents(t, h.store); len(evs) > 0 {
			if len(evs) != 1 || ds[0].State != store.DependencyFailing || !strings.Contains(ds[0].Fix, "PVE_TOKEN_ID") {
				t.Fatalf("events at start: %+v", ds)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing was said at start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, cause := logs.count(slog.LevelWarn, "cannot read the Proxmox cluster"); n != 1 || !strings.Contains(cause, "401") {
		t.Errorf("%d WARN records at start (cause %q), want 1 with the 401", n, cause)
	}
	if ps := w.Problems(); ps != nil {
		t.Errorf("Problems() without listeners = %+v: the watcher is not looking, health must ping itself", ps)
	}
}

// ---- alert kinds and subjects, guests that stop, unattended polling, failed services ----

// newSimHarness is newHarness over a simulator built with opts (its token
// and task timing are the harness's).
func newSimHarness(t *testing.T, opts pvesim.Options) *harness {
	t.Helper()
	opts.TokenID, opts.TokenSecret, opts.TaskDuration = "jarvis@pve!t", "s", 50*time.Millisecond
	sim := pvesim.New(opts)
	h := newHarness(t, sim)
	h.sim = sim
	return h
}

// fast are intervals short enough for a test to see many polls.
var fast = Intervals{Nodes: 30 * time.Millisecond, Guests: 30 * time.Millisecond, Storage: 30 * time.Millisecond}

// run starts w and returns a stop that waits until Run has returned.
func run(t *testing.T, w *Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// feed follows the store's events for a test, keeping those it has read.
type feed struct {
	t    *testing.T
	sub  *store.Subscription
	past []store.Event
}

func follow(t *testing.T, st *store.Store) *feed {
	sub := st.Subscribe(10000)
	t.Cleanup(sub.Close)
	return &feed{t: t, sub: sub}
}

// next returns the next event match accepts, failing the test after 10 s.
func (f *feed) next(what string, match func(store.Event) bool) store.Event {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-f.sub.C():
			f.past = append(f.past, *ev)
			if match(*ev) {
				return *ev
			}
		case <-deadline:
			f.t.Fatalf("no %s event", what)
		}
	}
}

// seen returns the first event since follow that match accepts, waiting for
// it if it has not come yet: for events whose order the test does not fix.
func (f *feed) seen(what string, match func(store.Event) bool) store.Event {
	f.t.Helper()
	for _, ev := range f.past {
		if match(ev) {
			return ev
		}
	}
	return f.next(what, match)
}

// alertOf decodes an alert event's details; ok is false for other events.
func alertOf(ev store.Event) (store.AlertDetails, bool) {
	var d store.AlertDetails
	if ev.Type != store.EventAlert || json.Unmarshal(ev.Details, &d) != nil {
		return d, false
	}
	return d, true
}

// raised matches the raising of the alert key; resolved the notice that it cleared.
func raised(key string) func(store.Event) bool {
	return func(ev store.Event) bool {
		d, ok := alertOf(ev)
		return ok && d.Key == key && d.State == store.AlertRaised
	}
}
func resolved(key string) func(store.Event) bool {
	return func(ev store.Event) bool {
		d, ok := alertOf(ev)
		return ok && d.Key == key && d.State == store.AlertResolved
	}
}

// guestPolls waits for n guests snapshots: every guest in them has been looked at.
func (f *feed) guestPolls(n int) {
	f.t.Helper()
	for range n {
		f.next("guests snapshot", func(ev store.Event) bool {
			return ev.Type == store.EventCluster && strings.Contains(string(ev.Details), `"what":"guests"`)
		})
	}
}

// alertEvents lists the stored alert events about key (raised and resolved), oldest first.
func alertEvents(t *testing.T, st *store.Store, key string) []store.Event {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), store.EventFilter{Type: store.EventAlert, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for i := len(evs) - 1; i >= 0; i-- {
		if d, ok := alertOf(evs[i]); ok && d.Key == key {
			out = append(out, evs[i])
		}
	}
	return out
}

// openAlertKeys lists the keys of the unresolved alerts.
func openAlertKeys(t *testing.T, st *store.Store) []string {
	t.Helper()
	evs, err := st.ListEvents(context.Background(), store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, ev := range evs {
		if d, ok := alertOf(ev); ok {
			keys = append(keys, d.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

// A guest that was running and stopped is told apart by the tasks: no task
// means it crashed; a task means someone stopped it; tasks that cannot be
// read, or a token that may not see everyone's, mean it cannot be told, and
// that is never reported as a crash. Running again resolves either alert.
func TestGuestStopsAreToldApartByTheirTasks(t *testing.T) {
	noSysAudit := []pvesim.ACL{{Path: "/", Privileges: []string{"VM.Audit", "VM.PowerMgmt", "Datastore.Audit"}, Propagate: true}}
	for _, c := range []struct {
		name     string
		acl      []pvesim.ACL
		stop     func(h *harness) error
		key      string
		kind     string
		severity string
		summary  string
	}{
		{"crash", nil, func(h *harness) error { return h.sim.CrashGuest(101) },
			"guest-crashed:101", store.AlertGuestStoppedUnexpectedly, store.SeverityCritical,
			"guest 101 'web01' on pve stopped unexpectedly (no task stopped it)"},
		{"stopped through the API", nil, func(h *harness) error {
			_, err := h.pve.GuestAction(context.Background(), "pve", "qemu", 101, "stop", nil)
			return err
		}, "guest-stopped:101", store.AlertGuestStopped, store.SeverityWarning,
			"guest 101 'web01' on pve stopped (task qmstop by jarvis@pve!t)"},
		{"shut down from the node's own shell, by root", nil, func(h *harness) error {
			_, err := h.sim.ShutdownGuestAsRoot(101)
			return err
		}, "guest-stopped:101", store.AlertGuestStopped, store.SeverityWarning,
			"guest 101 'web01' on pve stopped (task qmshutdown by root@pam)"},
		{"tasks cannot be read", nil, func(h *harness) error {
			h.sim.FailNext("/cluster/tasks", 500, "pmxcfs is not ready")
			return h.sim.CrashGuest(101)
		}, "guest-stopped:101", store.AlertGuestStopped, store.SeverityWarning,
			"it could not be told whether a task stopped it (the cluster's tasks could not be read"},
		{"the token sees only its own tasks", noSysAudit, func(h *harness) error { return h.sim.CrashGuest(101) },
			"guest-stopped:101", store.AlertGuestStopped, store.SeverityWarning,
			"it could not be told whether a task stopped it (the API token lacks Sys.Audit on /, so it sees only the tasks it started itself)"},
		{"its own stop, though it sees only its own tasks", noSysAudit, func(h *harness) error {
			_, err := h.pve.GuestAction(context.Background(), "pve", "qemu", 101, "shutdown", nil)
			return err
		}, "guest-stopped:101", store.AlertGuestStopped, store.SeverityWarning,
			"guest 101 'web01' on pve stopped (task qmshutdown by jarvis@pve!t)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newSimHarness(t, pvesim.Options{ACL: c.acl})
			f := follow(t, h.store)
			w := New(h.pve, h.store, h.log)
			w.SetIntervals(fast)
			run(t, w)
			w.Acquire()
			f.guestPolls(1) // 101 is known to run
			if err := c.stop(h); err != nil {
				t.Fatal(err)
			}
			ev := f.next("guest alert", func(ev store.Event) bool {
				d, ok := alertOf(ev)
				return ok && d.VMID == 101 && d.State == store.AlertRaised
			})
			d, _ := alertOf(ev)
			if d.Key != c.key || d.AlertKind != c.kind || d.Subject != "guest/101" || ev.Severity != c.severity ||
				ev.Node != "pve" || !strings.Contains(ev.Summary, c.summary) {
				t.Fatalf("alert %q (%s, node %s), details %s\nwant key %s, kind %s, %s, summary with %q",
					ev.Summary, ev.Severity, ev.Node, ev.Details, c.key, c.kind, c.severity, c.summary)
			}
			f.guestPolls(3) // more polls of the stopped guest raise nothing more
			if keys := openAlertKeys(t, h.store); !slices.Equal(keys, []string{c.key}) {
				t.Fatalf("open alerts %v, want only %s", keys, c.key)
			}
			if err := h.sim.SetGuestStatus(101, "running"); err != nil {
				t.Fatal(err)
			}
			notice := f.next("resolution", resolved(c.key))
			nd, _ := alertOf(notice)
			if nd.AlertID != ev.ID || nd.AlertKind != c.kind || nd.Subject != "guest/101" || nd.VMID != 101 || !notice.Resolved ||
				notice.Summary != "guest 101 'web01' is running again" {
				t.Errorf("resolution %+v, details %s", notice, notice.Details)
			}
			if keys := openAlertKeys(t, h.store); len(keys) != 0 {
				t.Errorf("open alerts after it runs again: %v", keys)
			}
		})
	}
}

// A guest that was stopped when the watcher started raises nothing: the
// first poll only learns. A guest that is deleted while stopped resolves its alert.
func TestGuestAlertsLearnFirstAndGoWithTheGuest(t *testing.T) {
	h := newHarness(t, nil)
	f := follow(t, h.store)
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(fast)
	run(t, w)
	w.Acquire()
	f.guestPolls(3)
	if keys := openAlertKeys(t, h.store); len(keys) != 0 {
		t.Fatalf("alerts for guests that were stopped before the watcher started: %v", keys)
	}
	if err := h.sim.CrashGuest(105); err != nil {
		t.Fatal(err)
	}
	f.next("crash alert", raised("guest-crashed:105"))
	upid, err := h.pve.DestroyGuest(context.Background(), "agent", "qemu", 105, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.pve.WaitTask(context.Background(), upid, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(openAlertKeys(t, h.store)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the alert of a deleted guest stays open: %v", openAlertKeys(t, h.store))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every watcher alert names its kind and subject.
func TestNodeAndStorageAlertsCarryKindAndSubject(t *testing.T) {
	rows := map[string]string{
		"/api2/json/version": `{"version":"8.2.4","release":"8.2","repoid":"faa83925"}`,
		"/api2/json/nodes": `[{"node":"pve1","status":"online","cpu":0.1,"mem":99,"maxmem":100,"disk":1,"maxdisk":10,"uptime":42},` +
			`{"node":"pve2","status":"offline"}]`,
		"/api2/json/cluster/resources?type=vm": `[]`,
		"/api2/json/cluster/resources?type=storage": `[{"storage":"local","node":"pve1","plugintype":"dir","shared":0,"status":"available","disk":95,"maxdisk":100},` +
			`{"storage":"nfs","node":"pve1","plugintype":"nfs","shared":1,"status":"available","disk":97,"maxdisk":100},` +
			`{"storage":"nfs","node":"pve2","plugintype":"nfs","shared":1,"status":"available","disk":97,"maxdisk":100}]`,
	}
	h := newHarness(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := rows[r.URL.RequestURI()]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":`+data+`}`)
	}))
	f := follow(t, h.store)
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(fast)
	run(t, w)
	w.Acquire()
	for _, c := range []struct {
		key, kind, subject, severity, node string
	}{
		{"node-offline:pve2", store.AlertNodeUnreachable, "node/pve2", store.SeverityCritical, "pve2"},
		{"node-memory:pve1", store.AlertNodeMemory, "node/pve1", store.SeverityWarning, "pve1"},
		{"storage-full:pve1/local", store.AlertStorageFull, "storage/pve1/local", store.SeverityWarning, "pve1"},
		{"storage-full:/nfs", store.AlertStorageFull, "storage//nfs", store.SeverityWarning, ""},
	} {
		ev := f.seen(c.key, raised(c.key))
		d, _ := alertOf(ev)
		if d.AlertKind != c.kind || d.Subject != c.subject || ev.Severity != c.severity || ev.Node != c.node || d.VMID != 0 || d.Service != "" {
			t.Errorf("%s: %+v, details %s", c.key, ev, ev.Details)
		}
	}
	f.guestPolls(3)
	if keys := openAlertKeys(t, h.store); len(keys) != 4 {
		t.Errorf("open alerts %v, want the four once each", keys)
	}
}

// With nobody following the feed the watcher polls, and raises alerts, while
// the unattended check says someone away must be told; it asks at every tick.
func TestUnattendedPollingWithoutListeners(t *testing.T) {
	h := newHarness(t, nil)
	f := follow(t, h.store)
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(fast)
	var away atomic.Bool
	var asked atomic.Int64
	w.SetUnattended(func() bool { asked.Add(1); return away.Load() })
	run(t, w)
	quiet := func(what string) {
		t.Helper()
		for len(f.sub.C()) > 0 {
			<-f.sub.C()
		}
		select {
		case ev := <-f.sub.C():
			t.Fatalf("%s: %s event %q", what, ev.Type, ev.Summary)
		case <-time.After(300 * time.Millisecond):
		}
	}
	quiet("nobody listens, nobody away")
	if asked.Load() == 0 {
		t.Fatal("the unattended check was never asked")
	}
	if ps := w.Problems(); ps != nil {
		t.Errorf("Problems() while not polling = %+v", ps)
	}
	away.Store(true)
	f.guestPolls(1)
	if err := h.sim.CrashGuest(102); err != nil {
		t.Fatal(err)
	}
	f.next("crash alert without a listener", raised("guest-crashed:102"))
	away.Store(false)
	time.Sleep(100 * time.Millisecond) // a poll under way ends
	quiet("the operator is back at the desk, and closed the console")
}

// sshNodes runs the demo's node shells with an executor for them.
func sshNodes(t *testing.T) (*sshsim.Sim, *sshexec.Executor) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, sim.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{}
	for _, n := range sim.Nodes() {
		nodes[n] = sim.Addr(n)
	}
	e, err := sshexec.New(sshexec.Config{Nodes: nodes, Signer: signer, KnownHostsPath: kh})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return sim, e
}

// cutRunner is a ServiceRunner whose SSH to some nodes can be cut; it counts
// the commands each node was sent.
type cutRunner struct {
	inner ServiceRunner
	mu    sync.Mutex
	cut   map[string]bool
	asked map[string]int
}

func (r *cutRunner) Run(ctx context.Context, node, command string, timeout time.Duration) (*sshexec.Result, error) {
	r.mu.Lock()
	r.asked[node]++
	cut := r.cut[node]
	r.mu.Unlock()
	if cut {
		return nil, errors.New("connecting to node " + node + ": connection refused")
	}
	return r.inner.Run(ctx, node, command, timeout)
}

func (r *cutRunner) setCut(node string, cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut[node] = cut
}

func (r *cutRunner) count(node string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[node]
}

// waitAsked waits until node has been asked n more times.
func (r *cutRunner) waitAsked(t *testing.T, node string, n int) {
	t.Helper()
	want := r.count(node) + n
	deadline := time.Now().Add(10 * time.Second)
	for r.count(node) < want {
		if time.Now().After(deadline) {
			t.Fatalf("node %s asked %d times, want %d", node, r.count(node), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Failed units are read over SSH on each online node: one alert per node and
// unit, with kind and subject, resolved when the unit runs again. A node that
// cannot be asked keeps its alerts and is logged once; an offline node is not asked.
func TestFailedServicesRaisedAndResolved(t *testing.T) {
	h := newHarness(t, nil)
	nodes, exec := sshNodes(t)
	runner := &cutRunner{inner: exec, cut: map[string]bool{}, asked: map[string]int{}}
	logs := &records{}
	f := follow(t, h.store)
	w := New(h.pve, h.store, slog.New(logs))
	w.SetIntervals(fast)
	w.SetServiceCheck(runner, nodes.Nodes(), 40*time.Millisecond)
	run(t, w)
	w.Acquire()

	// The demo's agent has smartd failed from the start.
	smartd := f.seen("smartd alert", raised("service-failed:agent/smartd.service"))
	d, _ := alertOf(smartd)
	if d.AlertKind != store.AlertServiceFailed || d.Subject != "service/agent/smartd" || d.Service != "smartd" ||
		smartd.Node != "agent" || smartd.Severity != store.SeverityWarning || smartd.Summary != "service smartd.service on agent has failed" {
		t.Fatalf("smartd alert %+v, details %s", smartd, smartd.Details)
	}
	if got := nodes.Ran("agent"); len(got) == 0 || got[0] != "timeout -k 5 15 sh -c 'systemctl list-units --state=failed --type=service --plain --no-legend --no-pager --full'" {
		t.Errorf("agent ran %q", got)
	}

	if err := nodes.FailService("pve", "pveproxy"); err != nil {
		t.Fatal(err)
	}
	proxy := f.next("pveproxy alert", raised("service-failed:pve/pveproxy.service"))
	if d, _ := alertOf(proxy); d.Subject != "service/pve/pveproxy" || d.Service != "pveproxy" || proxy.Node != "pve" {
		t.Errorf("pveproxy alert %+v, details %s", proxy, proxy.Details)
	}
	runner.waitAsked(t, "pve", 3) // more rounds raise nothing more
	if keys := openAlertKeys(t, h.store); !slices.Equal(keys, []string{"service-failed:agent/smartd.service", "service-failed:pve/pveproxy.service"}) {
		t.Fatalf("open alerts %v", keys)
	}
	if err := nodes.RecoverService("pve", "pveproxy"); err != nil {
		t.Fatal(err)
	}
	notice := f.next("pveproxy resolution", resolved("service-failed:pve/pveproxy.service"))
	if d, _ := alertOf(notice); d.AlertID != proxy.ID || d.Subject != "service/pve/pveproxy" || !notice.Resolved {
		t.Errorf("resolution %+v, details %s", notice, notice.Details)
	}

	// SSH to agent fails: nothing is known, so smartd's alert stays, though it
	// was restarted meanwhile; the failure is logged once, however many rounds.
	runner.setCut("agent", true)
	if err := nodes.RecoverService("agent", "smartd"); err != nil {
		t.Fatal(err)
	}
	runner.waitAsked(t, "agent", 4)
	if keys := openAlertKeys(t, h.store); !slices.Equal(keys, []string{"service-failed:agent/smartd.service"}) {
		t.Fatalf("open alerts while agent cannot be asked: %v", keys)
	}
	const warn, info = "cannot read the failed services of a node over SSH; its service alerts stay as they are",
		"the failed services of a node can be read over SSH again"
	if n, _ := logs.count(slog.LevelWarn, warn); n != 1 {
		t.Errorf("%d WARN records for agent's SSH, want 1", n)
	}
	runner.setCut("agent", false)
	f.next("smartd resolution", resolved("service-failed:agent/smartd.service"))
	if n, _ := logs.count(slog.LevelInfo, info); n != 1 {
		t.Errorf("%d INFO records for agent's SSH again, want 1", n)
	}

	// An offline node is not asked, and its alerts stay: its units are unknown, not fixed.
	if err := nodes.FailService("home", "docker"); err != nil {
		t.Fatal(err)
	}
	f.seen("docker alert", raised("service-failed:home/docker.service"))
	h.sim.SetNodeOffline("home", true)
	f.seen("home offline", raised("node-offline:home"))
	runner.waitAsked(t, "pve", 2) // a round that began before the nodes poll has ended
	before := runner.count("home")
	runner.waitAsked(t, "pve", 3)
	if n := runner.count("home"); n != before {
		t.Errorf("offline home was asked %d more times", n-before)
	}
	if keys := openAlertKeys(t, h.store); !slices.Contains(keys, "service-failed:home/docker.service") {
		t.Errorf("docker's alert was resolved while home is offline: %v", keys)
	}
}

// A restart loads the open alerts by key: the guest still down and the unit
// still failed raise nothing again, and the new run resolves them when they clear.
func TestRestartDoesNotRaiseOpenAlertsTwice(t *testing.T) {
	h := newHarness(t, nil)
	nodes, exec := sshNodes(t)
	start := func() (*Watcher, func()) {
		w := New(h.pve, h.store, h.log)
		w.SetIntervals(fast)
		w.SetServiceCheck(exec, nodes.Nodes(), 40*time.Millisecond)
		stop := run(t, w)
		w.Acquire()
		return w, stop
	}
	f := follow(t, h.store)
	_, stop := start()
	f.guestPolls(1)
	if err := h.sim.CrashGuest(101); err != nil {
		t.Fatal(err)
	}
	crash := f.seen("crash alert", raised("guest-crashed:101"))
	smartd := f.seen("smartd alert", raised("service-failed:agent/smartd.service"))
	stop()

	_, _ = start()
	f.guestPolls(4)
	n := len(nodes.Ran("agent"))
	deadline := time.Now().Add(10 * time.Second)
	for len(nodes.Ran("agent")) < n+3 { // three more rounds of the new run
		if time.Now().After(deadline) {
			t.Fatal("the new run does not check agent's services")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, key := range []string{"guest-crashed:101", "service-failed:agent/smartd.service"} {
		if evs := alertEvents(t, h.store, key); len(evs) != 1 {
			t.Errorf("%s: %d events after the restart, want the one raised before", key, len(evs))
		}
	}
	if err := h.sim.SetGuestStatus(101, "running"); err != nil {
		t.Fatal(err)
	}
	if err := nodes.RecoverService("agent", "smartd"); err != nil {
		t.Fatal(err)
	}
	for key, id := range map[string]uint64{"guest-crashed:101": crash.ID, "service-failed:agent/smartd.service": smartd.ID} {
		notice := f.seen(key+" resolution", resolved(key))
		if d, _ := alertOf(notice); d.AlertID != id {
			t.Errorf("%s resolved alert %d, want the one raised before the restart (%d)", key, d.AlertID, id)
		}
	}
	if keys := openAlertKeys(t, h.store); len(keys) != 0 {
		t.Errorf("open alerts: %v", keys)
	}
}

// Service alerts of a node that will not be asked again (not configured for
// the check, or no check at all) are resolved: nothing else would clear them.
func TestServiceAlertsOfNodesNotAskedAreResolved(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	for _, key := range []string{"service-failed:agent/smartd.service", "service-failed:gone/x.service"} {
		prev := &store.Event{Type: store.EventAlert, Severity: store.SeverityWarning, Summary: key,
			Details: store.EncodeDetails(store.AlertDetails{Key: key, State: store.AlertRaised, AlertKind: store.AlertServiceFailed})}
		if err := h.store.Publish(ctx, prev); err != nil {
			t.Fatal(err)
		}
	}
	f := follow(t, h.store)
	w := New(h.pve, h.store, h.log)
	w.SetIntervals(fast)
	run(t, w)
	w.Acquire()
	f.guestPolls(2)
	if keys := openAlertKeys(t, h.store); len(keys) != 0 {
		t.Errorf("service alerts left open without a service check: %v", keys)
	}
}

func TestParseFailedUnits(t *testing.T) {
	for _, c := range []struct {
		name, out string
		want      []string
	}{
		{"none", "", nil},
		{"plain", "smartd.service loaded failed failed Self Monitoring and Reporting Technology (SMART) Daemon\n", []string{"smartd.service"}},
		{"aligned", "nginx.service    loaded failed failed nginx.service\npveproxy.service loaded failed failed PVE API Proxy Server\n",
			[]string{"nginx.service", "pveproxy.service"}},
		{"with the glyph", "● pve-container@101.service loaded failed failed PVE LXC Container: 101", []string{"pve-container@101.service"}},
		{"not failed, not a service, not a row", "cron.service loaded active running Cron\nfoo.timer loaded failed failed x\n0 loaded units listed.\n", nil},
	} {
		if got := parseFailedUnits(c.out); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestFindStopTask(t *testing.T) {
	seen := time.Unix(1_800_000_000, 0)
	ended := func(typ, id, node string, end time.Time) pve.Task {
		return pve.Task{Type: typ, ID: id, Node: node, Status: "OK", StartTime: pve.Int(end.Unix() - 5), EndTime: pve.Int(end.Unix())}
	}
	for _, c := range []struct {
		name string
		task pve.Task
		want bool
	}{
		{"stop after it was seen running", ended("qmstop", "101", "pve", seen.Add(10*time.Second)), true},
		{"shutdown that began before and ended after", ended("vzshutdown", "101", "pve", seen.Add(time.Second)), true},
		{"within the slack", ended("qmstop", "101", "pve", seen.Add(-taskSlack+time.Second)), true},
		{"ended long before", ended("qmstop", "101", "pve", seen.Add(-time.Hour)), false},
		{"another guest", ended("qmstop", "102", "pve", seen.Add(10*time.Second)), false},
		{"a task that stops nothing", ended("qmsnapshot", "101", "pve", seen.Add(10*time.Second)), false},
		{"still running", pve.Task{Type: "hastop", ID: "101", Node: "home", StartTime: pve.Int(seen.Unix() - 3600)}, true},
		{"the node shutting down", ended("stopall", "", "pve", seen.Add(10*time.Second)), true},
		{"another node shutting down", ended("stopall", "", "home", seen.Add(10*time.Second)), false},
		{"a backup of many", ended("vzdump", "", "pve", seen.Add(10*time.Second)), true},
		{"a migration that moved it", ended("qmigrate", "101", "agent", seen.Add(10*time.Second)), true},
	} {
		got := findStopTask([]pve.Task{c.task}, 101, []string{"pve"}, seen) != nil
		if got != c.want {
			t.Errorf("%s: found %t, want %t", c.name, got, c.want)
		}
	}
}

// A crash alert left open across a restart, or across a pause in polling, is
// re-checked the first time the guest is seen again stopped: a task that acted
// on the guest since (a person started it and shut it down) means the alert no
// longer describes it, and tasks that cannot be read mean it cannot be
// re-confirmed; either way it is resolved, so a standing approval triggered by
// it does not start a guest a person stopped on purpose. Only when no task
// touched the guest since does it stay open: still the same stop.
func TestCrashAlertIsReconfirmedAfterARestartOrAPause(t *testing.T) {
	startAndShutDownAsRoot := func(t *testing.T, h *harness) {
		t.Helper()
		ctx := context.Background()
		upid, err := h.pve.GuestAction(ctx, "pve", "qemu", 101, "start", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.pve.WaitTask(ctx, upid, 10*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		// Later, as root in the node's shell: a real qmshutdown task.
		if upid, err = h.sim.ShutdownGuestAsRoot(101); err != nil {
			t.Fatal(err)
		}
		if _, err := h.pve.WaitTask(ctx, upid, 10*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name     string
		pause    bool // a pause in polling within one run; else a restart
		meantime func(t *testing.T, h *harness)
		open     bool   // the crash alert stays open
		notice   string // what the notice that it was resolved says
	}{
		{"restart, started and shut down by a person meanwhile", false, startAndShutDownAsRoot, false,
			"guest 101 'web01' was acted on by a task since the alert (task qmshutdown by root@pam); the crash alert no longer describes it"},
		{"pause, started and shut down by a person meanwhile", true, startAndShutDownAsRoot, false,
			"guest 101 'web01' was acted on by a task since the alert (task qmshutdown by root@pam); the crash alert no longer describes it"},
		{"restart, nothing done meanwhile", false, func(*testing.T, *harness) {}, true, ""},
		{"pause, nothing done meanwhile", true, func(*testing.T, *harness) {}, true, ""},
		{"restart, the tasks cannot be read", false, func(_ *testing.T, h *harness) {
			h.sim.FailNext("/cluster/tasks", 500, "pmxcfs is not ready")
		}, false, "whether a task acted on guest 101 'web01' since the alert could not be told (the cluster's tasks could not be read"},
		{"pause, the tasks cannot be read", true, func(_ *testing.T, h *harness) {
			h.sim.FailNext("/cluster/tasks", 500, "pmxcfs is not ready")
		}, false, "whether a task acted on guest 101 'web01' since the alert could not be told (the cluster's tasks could not be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			f := follow(t, h.store)
			var away atomic.Bool
			away.Store(true)
			start := func() func() {
				w := New(h.pve, h.store, h.log)
				w.SetIntervals(fast)
				w.SetUnattended(away.Load)
				return run(t, w)
			}
			stop := start()
			f.guestPolls(1) // 101 is known to run
			if err := h.sim.CrashGuest(101); err != nil {
				t.Fatal(err)
			}
			crash := f.next("crash alert", raised("guest-crashed:101"))
			f.guestPolls(2)
			if c.pause {
				away.Store(false)
				time.Sleep(150 * time.Millisecond) // a poll under way ends
			} else {
				stop()
			}
			for len(f.sub.C()) > 0 {
				f.past = append(f.past, *<-f.sub.C())
			}
			c.meantime(t, h)
			if c.pause {
				select {
				case ev := <-f.sub.C():
					t.Fatalf("the watcher polled during the pause: %s %q", ev.Type, ev.Summary)
				default:
				}
				away.Store(true)
			} else {
				start()
			}
			f.guestPolls(4)
			keys := openAlertKeys(t, h.store)
			if c.open {
				if !slices.Equal(keys, []string{"guest-crashed:101"}) {
					t.Fatalf("open alerts %v, want the crash alert still open", keys)
				}
				if evs := alertEvents(t, h.store, "guest-crashed:101"); len(evs) != 1 {
					t.Errorf("%d guest-crashed:101 events, want the one raised", len(evs))
				}
				return
			}
			if len(keys) != 0 {
				t.Fatalf("open alerts %v, want none: the crash alert no longer describes guest 101", keys)
			}
			notice := f.seen("resolution", resolved("guest-crashed:101"))
			d, _ := alertOf(notice)
			if d.AlertID != crash.ID || d.AlertKind != store.AlertGuestStoppedUnexpectedly || d.VMID != 101 || !notice.Resolved ||
				!strings.Contains(notice.Summary, c.notice) {
				t.Errorf("resolution %q, details %s\nwant a summary with %q", notice.Summary, notice.Details, c.notice)
			}
			// Nothing is raised again while it stays stopped.
			f.guestPolls(3)
			if evs := alertEvents(t, h.store, "guest-crashed:101"); len(evs) != 2 {
				t.Errorf("%d guest-crashed:101 events, want the alert and its resolution", len(evs))
			}
		})
	}
}

// An open stop alert a previous run raised is re-checked by what it says: a
// guest now on another node was moved since; a token that may not see
// everyone's tasks cannot re-confirm it; an ordinary stop alert goes like a
// crash alert when a task acted on the guest since, and stays when none did.
func TestOpenGuestAlertsOfAPreviousRunAreReconfirmed(t *testing.T) {
	noSysAudit := []pvesim.ACL{{Path: "/", Privileges: []string{"VM.Audit", "VM.PowerMgmt", "Datastore.Audit"}, Propagate: true}}
	for _, c := range []struct {
		name     string
		acl      []pvesim.ACL
		key      string
		kind     string
		node     string // where the previous run saw the guest
		meantime func(t *testing.T, h *harness)
		notice   string // "" when it stays open
	}{
		{"moved to another node", nil, "guest-crashed:101", store.AlertGuestStoppedUnexpectedly, "home", nil,
			"guest 101 'web01' is on pve now, not on home; the crash alert no longer describes it"},
		{"the token sees only its own tasks", noSysAudit, "guest-crashed:101", store.AlertGuestStoppedUnexpectedly, "pve", nil,
			"whether a task acted on guest 101 'web01' since the alert could not be told (the API token lacks Sys.Audit on /"},
		{"a stop alert, a snapshot since", nil, "guest-stopped:101", store.AlertGuestStopped, "pve", func(t *testing.T, h *harness) {
			upid, err := h.pve.CreateSnapshot(context.Background(), "pve", "qemu", 101, "before-upgrade", "", false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.pve.WaitTask(context.Background(), upid, 10*time.Millisecond, nil); err != nil {
				t.Fatal(err)
			}
		}, "guest 101 'web01' was acted on by a task since the alert (task qmsnapshot by jarvis@pve!t); the stop alert no longer describes it"},
		{"a stop alert, nothing since", nil, "guest-stopped:101", store.AlertGuestStopped, "pve", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newSimHarness(t, pvesim.Options{ACL: c.acl})
			ctx := context.Background()
			if err := h.sim.SetGuestStatus(101, "stopped"); err != nil {
				t.Fatal(err)
			}
			prev := &store.Event{Type: store.EventAlert, Severity: store.SeverityCritical, Source: "poller", Node: c.node,
				Summary: "guest 101 stopped", Details: store.EncodeDetails(store.AlertDetails{Key: c.key, State: store.AlertRaised,
					AlertKind: c.kind, Subject: store.GuestSubject(101), VMID: 101})}
			if err := h.store.Publish(ctx, prev); err != nil {
				t.Fatal(err)
			}
			if c.meantime != nil {
				c.meantime(t, h)
			}
			f := follow(t, h.store)
			w := New(h.pve, h.store, h.log)
			w.SetIntervals(fast)
			run(t, w)
			w.Acquire()
			f.guestPolls(3)
			keys := openAlertKeys(t, h.store)
			if c.notice == "" {
				if !slices.Equal(keys, []string{c.key}) {
					t.Fatalf("open alerts %v, want %s still open", keys, c.key)
				}
				return
			}
			if len(keys) != 0 {
				t.Fatalf("open alerts %v, want none", keys)
			}
			notice := f.seen("resolution", resolved(c.key))
			if d, _ := alertOf(notice); d.AlertID != prev.ID || d.AlertKind != c.kind || !strings.Contains(notice.Summary, c.notice) {
				t.Errorf("resolution %q, details %s\nwant a summary with %q", notice.Summary, notice.Details, c.notice)
			}
		})
	}
}

func TestFindTouchTask(t *testing.T) {
	raised := time.Unix(1_800_000_000, 0).Add(400 * time.Millisecond)
	ended := func(typ, id, node string, end time.Time) pve.Task {
		return pve.Task{Type: typ, ID: id, Node: node, Status: "OK", StartTime: pve.Int(end.Unix() - 5), EndTime: pve.Int(end.Unix())}
	}
	for _, c := range []struct {
		name string
		task pve.Task
		want bool
	}{
		{"a start since", ended("qmstart", "101", "pve", raised.Add(time.Minute)), true},
		{"a shutdown since", ended("qmshutdown", "101", "pve", raised.Add(time.Hour)), true},
		{"a snapshot since", ended("qmsnapshot", "101", "pve", raised.Add(time.Minute)), true},
		{"a failed start since", pve.Task{Type: "qmstart", ID: "101", Node: "pve", Status: "command failed", EndTime: pve.Int(raised.Unix() + 60)}, true},
		{"ended in the second the alert was raised", ended("qmstop", "101", "pve", raised), true},
		{"the stop before the alert", ended("qmstop", "101", "pve", raised.Add(-2*time.Second)), false},
		{"still running", pve.Task{Type: "qmconfig", ID: "101", Node: "pve", StartTime: pve.Int(raised.Unix() - 3600)}, true},
		{"another guest", ended("qmstart", "102", "pve", raised.Add(time.Minute)), false},
		{"its node shut down", ended("stopall", "", "pve", raised.Add(time.Minute)), true},
		{"its node started its guests", ended("startall", "", "pve", raised.Add(time.Minute)), true},
		{"another node started its guests", ended("startall", "", "home", raised.Add(time.Minute)), false},
		{"a task of its node that touches no guest", ended("aptupdate", "", "pve", raised.Add(time.Minute)), false},
	} {
		got := findTouchTask([]pve.Task{c.task}, 101, []string{"pve"}, raised) != nil
		if got != c.want {
			t.Errorf("%s: found %t, want %t", c.name, got, c.want)
		}
	}
}
