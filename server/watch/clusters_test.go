package watch

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// labCluster is a second simulated cluster beside a harness's, and its client.
func labCluster(t *testing.T) (*pvesim.Sim, *pve.Client) {
	t.Helper()
	sim := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!t", TokenSecret: "s", TaskDuration: 50 * time.Millisecond})
	ts := httptest.NewTLSServer(sim)
	t.Cleanup(ts.Close)
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: ts.URL}}, TokenID: "jarvis@pve!t", TokenSecret: "s",
		Fingerprint: pve.FingerprintOf(ts.Certificate())})
	if err != nil {
		t.Fatal(err)
	}
	return sim, client
}

// Each cluster is polled on its own: its snapshots and alerts name it, and
// an alert's key and subject start with it, so the same node on two
// clusters is two alerts. The default cluster's watcher takes over the
// alerts from before several clusters (naming none); another cluster's
// never touches them. After a restart each picks up its own open alerts.
func TestNewClustersWatchesEachClusterOnItsOwn(t *testing.T) {
	h := newSimHarness(t, pvesim.Options{})
	labSim, labClient := labCluster(t)
	ctx := context.Background()
	// Open from before several clusters: home's node agent, online now.
	old := &store.Event{Type: store.EventAlert, Severity: store.SeverityCritical, Source: source, Node: "agent", Summary: "node agent is offline",
		Details: json.RawMessage(`{"key":"node-offline:agent","state":"raised","alert_kind":"node_unreachable","subject":"node/agent"}`)}
	if err := h.store.Publish(ctx, old); err != nil {
		t.Fatal(err)
	}
	labSim.SetNodeOffline("agent", true)
	f := follow(t, h.store)
	start := func() (*Watcher, func()) {
		w := NewClusters([]Cluster{{Name: "home", PVE: h.pve}, {Name: "lab", PVE: labClient}}, h.store, h.log)
		w.SetIntervals(fast)
		stop := run(t, w)
		w.Acquire()
		return w, stop
	}
	w, stop := start()
	if w.Cluster("lab") == nil || w.Cluster("home") != w || w.Cluster("x") != nil {
		t.Fatal("Cluster does not find each cluster's watcher")
	}

	labRaised := f.seen("lab's offline node", raised("lab/node-offline:agent"))
	d, _ := alertOf(labRaised)
	if labRaised.Cluster != "lab" || d.Subject != "lab/node/agent" || labRaised.Summary != "[cluster lab] node agent is offline" {
		t.Errorf("lab's alert %+v, details %s", labRaised, labRaised.Details)
	}
	// The old alert is home's: resolved by home's watcher once, as the node is online.
	oldResolved := f.seen("the old alert resolved", resolved("home/node-offline:agent"))
	if d, _ := alertOf(oldResolved); oldResolved.Cluster != "home" || d.AlertID != old.ID {
		t.Errorf("the old alert's resolution %+v, details %s", oldResolved, oldResolved.Details)
	}
	for _, cluster := range []string{"home", "lab"} {
		f.seen(cluster+"'s guests snapshot", func(ev store.Event) bool {
			return ev.Type == store.EventCluster && ev.Cluster == cluster && strings.Contains(string(ev.Details), `"what":"guests"`)
		})
	}
	f.guestPolls(4)
	if keys := openAlertKeys(t, h.store); !slices.Equal(keys, []string{"lab/node-offline:agent"}) {
		t.Fatalf("open alerts %v, want lab's alone", keys)
	}

	// A restart picks up lab's alert again (home's watcher leaves it be).
	stop()
	start()
	f.guestPolls(4)
	if n := len(alertEvents(t, h.store, "lab/node-offline:agent")); n != 1 {
		t.Errorf("lab's alert raised %d times over a restart, want once", n)
	}
	labSim.SetNodeOffline("agent", false)
	if ev := f.next("lab's node back", resolved("lab/node-offline:agent")); ev.Cluster != "lab" || ev.Summary != "[cluster lab] node agent is online again" {
		t.Errorf("lab's resolution %+v", ev)
	}
	if keys := openAlertKeys(t, h.store); len(keys) != 0 {
		t.Errorf("open alerts %v after lab's node came back", keys)
	}
}

// With one cluster NewClusters is New: nothing names a cluster.
func TestNewClustersWithOneNamesNone(t *testing.T) {
	h := newSimHarness(t, pvesim.Options{})
	h.sim.SetNodeOffline("agent", true)
	f := follow(t, h.store)
	w := NewClusters([]Cluster{{Name: "pve", PVE: h.pve}}, h.store, h.log)
	w.SetIntervals(fast)
	run(t, w)
	w.Acquire()
	ev := f.seen("offline node", raised("node-offline:agent"))
	if d, _ := alertOf(ev); ev.Cluster != "" || d.Subject != "node/agent" || ev.Summary != "node agent is offline" || w.Cluster("pve") != w {
		t.Errorf("alert %+v, details %s", ev, ev.Details)
	}
}

// A cluster that cannot be read says so under its name: its problem in
// Problems and its system event; the other cluster's polls go on.
func TestNewClustersReportEachClustersProblems(t *testing.T) {
	h := newSimHarness(t, pvesim.Options{})
	bad := newHarness(t, newFlakyPVE("unauthorized"))
	f := follow(t, h.store)
	w := NewClusters([]Cluster{{Name: "home", PVE: h.pve}, {Name: "lab", PVE: bad.pve}}, h.store, h.log)
	w.SetIntervals(fast)
	run(t, w)
	w.Acquire()
	ev := f.seen("lab's failing event", func(ev store.Event) bool { return ev.Type == store.EventSystem })
	if ev.Cluster != "lab" || !strings.HasPrefix(ev.Summary, "[cluster lab] cannot read the Proxmox cluster") {
		t.Errorf("system event %+v", ev)
	}
	f.seen("home's guests snapshot", func(ev store.Event) bool { return ev.Type == store.EventCluster && ev.Cluster == "home" })
	ps := w.Problems()
	if len(ps) != 1 || !strings.HasPrefix(ps[0].Error, "cluster lab: ") {
		t.Errorf("Problems() = %+v, want lab's alone, named", ps)
	}
}

// With several clusters a problem's fix names the cluster's own settings.
func TestProblemForCluster(t *testing.T) {
	p := Problem{Fix: "check PVE_TOKEN_ID and PVE_TOKEN_SECRET (or PVE_TOKEN_SECRET_FILE), JARVIS_NODES, PVE_TLS_FINGERPRINT=ab:cd"}
	for _, tc := range []struct{ cluster, want string }{
		{"", p.Fix},
		{"lab", "check JARVIS_CLUSTER_LAB_PVE_TOKEN_ID and JARVIS_CLUSTER_LAB_PVE_TOKEN_SECRET (or JARVIS_CLUSTER_LAB_PVE_TOKEN_SECRET_FILE), JARVIS_CLUSTER_LAB_NODES, JARVIS_CLUSTER_LAB_PVE_TLS_FINGERPRINT=ab:cd"},
		{"home-2", "check JARVIS_CLUSTER_HOME_2_PVE_TOKEN_ID and JARVIS_CLUSTER_HOME_2_PVE_TOKEN_SECRET (or JARVIS_CLUSTER_HOME_2_PVE_TOKEN_SECRET_FILE), JARVIS_CLUSTER_HOME_2_NODES, JARVIS_CLUSTER_HOME_2_PVE_TLS_FINGERPRINT=ab:cd"},
	} {
		if got := p.ForCluster(tc.cluster).Fix; got != tc.want {
			t.Errorf("ForCluster(%q).Fix = %q\nwant %q", tc.cluster, got, tc.want)
		}
	}
}
