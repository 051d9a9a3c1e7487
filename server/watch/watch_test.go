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
	"sync"
	"sync/atomic"
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
