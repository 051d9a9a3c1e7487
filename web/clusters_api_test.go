package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// newTwoClusterWeb is the web harness with its server serving two
// simulated clusters, home and lab, on the harness's store.
func newTwoClusterWeb(t *testing.T) *webHarness {
	t.Helper()
	env := func() *tools.Env {
		sim := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!t", TokenSecret: "s", TaskDuration: 50 * time.Millisecond})
		ts := httptest.NewTLSServer(sim)
		t.Cleanup(ts.Close)
		client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: ts.URL}}, TokenID: "jarvis@pve!t", TokenSecret: "s",
			Fingerprint: pve.FingerprintOf(ts.Certificate())})
		if err != nil {
			t.Fatal(err)
		}
		return &tools.Env{PVE: client}
	}
	var srv *server.Server
	h := newWebHarness(t, func(o *Options) {
		var err error
		srv, err = server.New(server.Options{
			Clusters:  []server.Cluster{{Name: "home", Env: env()}, {Name: "lab", Env: env()}},
			Store:     o.Store,
			Limiter:   safety.NewRateLimiter(safety.RateLimits{Yellow: rate.Inf, Red: rate.Inf, YellowBurst: 100, RedBurst: 100}),
			Confirmer: safety.NewConfirmer(safety.DeriveKey("web-test-secret-web-test-secret-000", "confirmation-state"), time.Minute),
			Logger:    o.Logger, Version: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Server = srv
	})
	h.srv = srv
	return h
}

// seedClusters stores, for each of "" (before clusters), home and lab, one
// audited call, one decided approval and one event.
func seedClusters(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for _, cluster := range []string{"", "home", "lab"} {
		args := `{"vmid":101}`
		if cluster != "" {
			args = fmt.Sprintf(`{"cluster":%q,"vmid":101}`, cluster)
		}
		id, err := st.AuditBegin(ctx, store.AuditEntry{Principal: "agent:bot", Tool: "stop_vm", Args: args, Tier: "red", Decision: "approved"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AuditEnd(ctx, id, store.AuditOutcome{Status: store.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
		a := &store.Approval{Principal: "agent:bot", Tool: "stop_vm", Cluster: cluster, Args: args + " sha256:00", Plan: "stop " + cluster,
			Tier: "RED", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.CreateApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := st.DecideApproval(ctx, a.ID, false, "operator", now); err != nil {
			t.Fatal(err)
		}
		if err := st.Publish(ctx, &store.Event{Type: store.EventSystem, Cluster: cluster, Summary: "about " + cluster}); err != nil {
			t.Fatal(err)
		}
	}
}

// clustersOf lists the cluster member of each item under key in out, sorted.
func clustersOf(out map[string]any, key string) []string {
	items, _ := out[key].([]any)
	got := []string{}
	for _, it := range items {
		c, _ := it.(map[string]any)["cluster"].(string)
		got = append(got, c)
	}
	slices.Sort(got) // approvals made at one instant have no order among them
	return got
}

// With several clusters the audit search, the approvals history and the
// events take cluster=, one of the clusters served; without it they list
// every cluster's, those from before clusters included.
func TestSeveralClustersAPIFilterByCluster(t *testing.T) {
	h := newTwoClusterWeb(t)
	seedClusters(t, h.store)
	op := h.login()
	for _, tc := range []struct {
		path, key string
		query     string
		status    int
		want      string // the items' clusters, sorted, or the error
	}{
		{"/api/audit/search", "calls", "", 200, ",home,lab"},
		{"/api/audit/search", "calls", "cluster=lab", 200, "lab"},
		{"/api/audit/search", "calls", "cluster=home&tool=stop_vm", 200, "home"},
		{"/api/audit/search", "calls", "cluster=x", 400, "no cluster x: one of home, lab"},
		{"/api/approvals/history", "approvals", "", 200, ",home,lab"},
		{"/api/approvals/history", "approvals", "cluster=home", 200, "home"},
		{"/api/approvals/history", "approvals", "cluster=Lab", 400, "no cluster Lab: one of home, lab"},
		{"/api/memory/events", "events", "", 200, ",home,lab"},
		{"/api/memory/events", "events", "cluster=lab&type=system", 200, "lab"},
		{"/api/memory/events/unresolved", "events", "cluster=home", 200, "home"},
		{"/api/memory/events", "events", "cluster=x", 400, "no cluster x: one of home, lab"},
	} {
		t.Run(tc.path+"?"+tc.query, func(t *testing.T) {
			resp, out := h.do("GET", tc.path+"?"+tc.query, op, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, out)
			}
			if tc.status != 200 {
				if !strings.Contains(fmt.Sprint(out), tc.want) {
					t.Errorf("answer %v, want it to say %q", out, tc.want)
				}
				return
			}
			if got := strings.Join(clustersOf(out, tc.key), ","); got != tc.want {
				t.Errorf("clusters %q, want %q", got, tc.want)
			}
		})
	}
}

// With one cluster nothing changes: the searches refuse cluster= as the
// unknown parameter it was, and the events ignore it, as any other.
func TestOneClusterAPITakesNoClusterFilter(t *testing.T) {
	h := newWebHarness(t)
	seedClusters(t, h.store)
	op := h.login()
	for _, tc := range []struct {
		path   string
		status int
		count  int
	}{
		{"/api/audit/search?cluster=lab", 400, 0},
		{"/api/approvals/history?cluster=lab", 400, 0},
		{"/api/memory/events?cluster=lab", 200, 3},
	} {
		resp, out := h.do("GET", tc.path, op, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %v", tc.path, resp.StatusCode, tc.status, out)
			continue
		}
		if tc.status == 400 && !strings.Contains(fmt.Sprint(out), `unknown parameter "cluster"`) {
			t.Errorf("%s: %v, want the unknown parameter named", tc.path, out)
		}
		if tc.status == 200 && len(clustersOf(out, "events")) != tc.count {
			t.Errorf("%s: %v, want %d events", tc.path, out, tc.count)
		}
	}
}

// The live feed takes cluster= too: only that cluster's events reach the
// stream; an unknown cluster is refused before it opens.
func TestSeveralClustersFeedFilterByCluster(t *testing.T) {
	h := newTwoClusterWeb(t)
	op := h.login()
	if resp, out := h.do("GET", "/api/events?cluster=x", op, nil); resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(out), "no cluster x") {
		t.Fatalf("feed with an unknown cluster: %d %v", resp.StatusCode, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := h.openFeed(ctx, op, "", "?cluster=lab&kind=system")
	for _, cluster := range []string{"", "home", "lab"} {
		if err := h.store.Publish(ctx, &store.Event{Type: store.EventSystem, Cluster: cluster, Summary: "live " + cluster}); err != nil {
			t.Fatal(err)
		}
	}
	if ev := next(t, events); ev.Data["summary"] != "live lab" || ev.Data["cluster"] != "lab" {
		t.Fatalf("first event on the lab feed: %+v", ev)
	}
	// Replayed with Last-Event-ID: the filter holds there too.
	replay, _ := h.openFeed(ctx, op, "0", "?"+url.Values{"cluster": {"home"}}.Encode())
	if ev := next(t, replay); ev.Data["cluster"] != "home" {
		t.Fatalf("first replayed event on the home feed: %+v", ev)
	}
}
