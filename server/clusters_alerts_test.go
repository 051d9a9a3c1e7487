package server

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// watchingEveryCluster is h's two clusters served anew on h's store with
// WatchEveryCluster, as when a watcher runs on each (watch.NewClusters).
func watchingEveryCluster(t *testing.T, h *harness) *harness {
	t.Helper()
	opts := h.srv.opts
	opts.WatchEveryCluster = true
	opts.Clusters = nil
	for _, c := range h.srv.clusters {
		opts.Clusters = append(opts.Clusters, Cluster{Name: c.Name, Env: &tools.Env{PVE: c.Env.PVE}, Policy: c.Policy})
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, store: h.store, sim: h.sim}
}

// raiseOn publishes an open crash alert for vmid as the watcher of cluster
// does with several clusters (its name in the event, key and subject), or,
// cluster "", as one did before several clusters.
func raiseOn(t *testing.T, h *harness, cluster string, vmid int64) uint64 {
	t.Helper()
	key, subject, summary := "guest-crashed:"+strconv.FormatInt(vmid, 10), store.GuestSubject(vmid), "guest stopped unexpectedly"
	if cluster != "" {
		key, subject, summary = cluster+"/"+key, cluster+"/"+subject, "[cluster "+cluster+"] "+summary
	}
	ev := &store.Event{Type: store.EventAlert, Severity: store.SeverityCritical, Source: watcherSource, Cluster: cluster, Node: "pve",
		Summary: summary, Details: store.EncodeDetails(store.AlertDetails{Key: key, State: store.AlertRaised,
			AlertKind: store.AlertGuestStoppedUnexpectedly, Subject: subject, VMID: vmid})}
	if err := h.store.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

// With a watcher on every cluster, list_alerts answers every cluster's
// alerts wherever it is called, each subject after its cluster (an alert
// from before several clusters is the default's), and a rule's trigger
// lets a call through on the cluster whose alert is open, only there.
func TestEveryClusterWatchedAlertsAndTriggersPerCluster(t *testing.T) {
	two, _ := newTwoClusters(t)
	h := watchingEveryCluster(t, two)
	ctx := context.Background()
	agent := ruleAgent(t, h)
	labAlert := raiseOn(t, h, "lab", 101)
	oldAlert := raiseOn(t, h, "", 102) // home's, from before several clusters
	if _, err := h.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "stop_vm", Trigger: store.AlertGuestStoppedUnexpectedly,
		Args:             map[string][]string{"vmid": {"101", "102"}, "cluster": {"*"}},
		PerTargetPerHour: 5, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator"); err != nil {
		t.Fatal(err)
	}

	for _, cluster := range []string{"home", "lab"} {
		list := structured[tools.AlertList](t, h.call(agent, "list_alerts", map[string]any{"cluster": cluster}))
		subjects := map[uint64]string{}
		for _, a := range list.Alerts {
			subjects[a.ID] = a.Subject
			if len(a.Rules) != 1 {
				t.Errorf("list_alerts on %s: alert %d has rules %+v, want the trigger's rule", cluster, a.ID, a.Rules)
			}
		}
		if list.Note != "" || len(list.Alerts) != 2 || subjects[labAlert] != "lab/guest/101" || subjects[oldAlert] != "home/guest/102" {
			t.Errorf("list_alerts on %s = %+v, want both clusters' alerts, subjects after their cluster", cluster, list)
		}
	}

	for _, tc := range []struct {
		cluster string
		vmid    int
		runs    bool
	}{
		{"home", 101, false}, // lab's alert is not home's
		{"lab", 101, true},
		{"lab", 102, false},
		{"home", 102, true}, // the old alert is the default cluster's
	} {
		res := h.call(agent, "stop_vm", map[string]any{"vmid": tc.vmid, "cluster": tc.cluster})
		if !tc.runs {
			r := refusalOf(t, res)
			want := "open for " + tc.cluster + "/guest/" + strconv.Itoa(tc.vmid) + ", and none is"
			if r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, want) {
				t.Errorf("stop_vm %d on %s: %+v, want needs_approval saying %q", tc.vmid, tc.cluster, r, want)
			}
			continue
		}
		if res.IsError {
			t.Errorf("stop_vm %d on %s under the trigger: %s", tc.vmid, tc.cluster, textOf(res))
		}
	}

	// remediate_alert tells the model the alert's own cluster.
	cs := h.connect(agent, nil)
	for id, cluster := range map[uint64]string{labAlert: "lab", oldAlert: "home"} {
		got, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "remediate_alert", Arguments: map[string]string{"alert_id": strconv.FormatUint(id, 10)}})
		if err != nil {
			t.Fatal(err)
		}
		if text := got.Messages[0].Content.(*mcp.TextContent).Text; !strings.Contains(text, `pass cluster "`+cluster+`"`) {
			t.Errorf("remediate_alert %d does not name cluster %s: %s", id, cluster, text)
		}
	}
}

// Without WatchEveryCluster only the default cluster is watched: what
// TestSeveralClustersWhatIsNotPerClusterYet pins stays so, and the default
// cluster's alerts are listed under its name.
func TestDefaultClusterWatchedAloneNamesItsAlerts(t *testing.T) {
	h, _ := newTwoClusters(t)
	id := raiseOn(t, h, "", 101)
	list := structured[tools.AlertList](t, h.call(agentRed, "list_alerts", map[string]any{"cluster": "home"}))
	if len(list.Alerts) != 1 || list.Alerts[0].ID != id || list.Alerts[0].Subject != "home/guest/101" {
		t.Errorf("list_alerts on home = %+v", list)
	}
}
