package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// recordOf is the creation record of vmid on cluster ("" for the default).
func recordOf(t *testing.T, h *harness, cluster string, vmid int) (store.CreatedGuest, bool) {
	t.Helper()
	list, err := h.store.ListCreatedGuests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range list {
		if g.Cluster == cluster && g.VMID == vmid {
			return g, true
		}
	}
	return store.CreatedGuest{}, false
}

// Each cluster keeps its own record of the guests Jarvis created there: a
// clone on lab is recorded under lab, the default cluster's under "" (as
// with one cluster). A record counts on its own cluster only, and deleting
// lab's guest forgets lab's record, not home's of the same VMID.
func TestSeveralClustersRecordCreatedGuestsPerCluster(t *testing.T) {
	h, lab := newTwoClusters(t)
	ctx := context.Background()
	for _, cluster := range []string{"home", "lab"} {
		if res := h.call(agentRed, "clone_guest", map[string]any{"vmid": 9000, "new_vmid": 150, "name": "web02", "full": true, "cluster": cluster}); res.IsError {
			t.Fatalf("clone on %s: %s", cluster, textOf(res))
		}
	}
	homeRec, onHome := recordOf(t, h, "", 150)
	labRec, onLab := recordOf(t, h, "lab", 150)
	if !onHome || !onLab || homeRec.Marker == labRec.Marker {
		t.Fatalf("records home %+v (%v), lab %+v (%v): want one each, with their own id tags", homeRec, onHome, labRec, onLab)
	}
	if _, wrong := recordOf(t, h, "home", 150); wrong {
		t.Error("the default cluster's clone is recorded under its name; want \"\", where records from before clusters are")
	}

	envOf := map[string]*tools.Env{"home": h.srv.clusters[0].Env, "lab": h.srv.clusters[1].Env}
	for _, tc := range []struct {
		env, marker string
		want        bool
	}{
		{"home", homeRec.Marker, true},
		{"home", labRec.Marker, false},
		{"lab", labRec.Marker, true},
		{"lab", homeRec.Marker, false},
	} {
		if got, err := envOf[tc.env].Created.CreatedByJarvis(ctx, 150, tc.marker); err != nil || got != tc.want {
			t.Errorf("CreatedByJarvis on %s with tag %s = %v, %v; want %v", tc.env, tc.marker, got, err, tc.want)
		}
	}

	// Deletable on lab (RED, a person approves); home's record stays.
	first := refusalOf(t, h.call(agentRed, "delete_guest", map[string]any{"vmid": 150, "cluster": "lab"}))
	if first.Decision != safety.NeedsApproval || !strings.Contains(first.Plan, "[cluster lab]") {
		t.Fatalf("delete_guest of lab's clone: %+v, want needs_approval on lab", first)
	}
	if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator"); err != nil {
		t.Fatal(err)
	}
	if res := h.call(agentRed, "delete_guest", map[string]any{"vmid": 150, "cluster": "lab", "approval_id": first.ApprovalID}); res.IsError {
		t.Fatalf("approved delete_guest on lab: %s", textOf(res))
	}
	if _, still := lab.Guest(150); still {
		t.Error("lab's VM 150 still exists")
	}
	if _, kept := recordOf(t, h, "lab", 150); kept {
		t.Error("lab's record outlived its guest")
	}
	if _, kept := recordOf(t, h, "", 150); !kept || h.guestStatus(150) == "" {
		t.Error("deleting lab's VM 150 took home's record or guest with it")
	}
	if r := refusalOf(t, h.call(agentRed, "delete_guest", map[string]any{"vmid": 150, "cluster": "home"})); r.Decision != safety.NeedsApproval {
		t.Errorf("delete_guest of home's clone after lab's went: %+v, want needs_approval", r)
	}
}

// A guest cloned on lab only: lab may delete it; on home the same VMID (a
// guest a person made there) is not Jarvis's, whatever lab's record says.
func TestSeveralClustersALabCloneIsNotHomes(t *testing.T) {
	h, _ := newTwoClusters(t)
	ctx := context.Background()
	if res := h.call(agentRed, "clone_guest", map[string]any{"vmid": 9000, "new_vmid": 150, "name": "web02", "full": true, "cluster": "lab"}); res.IsError {
		t.Fatalf("clone on lab: %s", textOf(res))
	}
	// A person clones on home into the same VMID.
	client := h.srv.defaultCluster().Env.PVE
	upid, err := client.CloneGuest(ctx, "home", "qemu", 9000, pve.CloneOptions{NewID: 150, Name: "humans", Full: true})
	if err == nil {
		_, err = client.WaitTask(ctx, upid, 10*time.Millisecond, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cluster, decision, tier string
	}{
		{"lab", string(safety.NeedsApproval), "red"},
		{"home", string(safety.Blocked), "black"},
	} {
		r := refusalOf(t, h.call(agentRed, "delete_guest", map[string]any{"vmid": 150, "cluster": tc.cluster}))
		if string(r.Decision) != tc.decision || r.Tier != tc.tier {
			t.Errorf("delete_guest 150 on %s: %+v, want %s at %s", tc.cluster, r, tc.decision, tc.tier)
		}
	}
}

// An installation that served one cluster recorded its clones under "".
// Once it serves several, with that cluster first (the default), those
// records still count there, and on no other cluster.
func TestAnOldRecordCountsForTheDefaultCluster(t *testing.T) {
	h, _ := newTwoClusters(t)
	ctx := context.Background()
	// The same store and cluster, served alone, as before clusters.
	opts := h.srv.opts
	opts.Clusters = nil
	opts.Env = &tools.Env{PVE: h.srv.clusters[0].Env.PVE}
	opts.Policy = h.srv.clusters[0].Policy
	single, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"vmid":9000,"new_vmid":150,"name":"web02","full":true}`)
	if res := single.Dispatch(ctx, Call{Principal: agentRed, Tool: "clone_guest", Args: raw}); res.IsError {
		t.Fatalf("clone with one cluster: %s", textOf(res))
	}
	rec, ok := recordOf(t, h, "", 150)
	if !ok {
		t.Fatal("one cluster's clone is not recorded under \"\"")
	}
	if r := refusalOf(t, h.call(agentRed, "delete_guest", map[string]any{"vmid": 150, "cluster": "home"})); r.Decision != safety.NeedsApproval {
		t.Errorf("delete_guest of the old clone on home after the move: %+v, want needs_approval", r)
	}
	for _, tc := range []struct {
		cluster int
		want    bool
	}{{0, true}, {1, false}} {
		c := h.srv.clusters[tc.cluster]
		if got, err := c.Env.Created.CreatedByJarvis(ctx, 150, rec.Marker); err != nil || got != tc.want {
			t.Errorf("the old record on %s: %v, %v; want %v", c.Name, got, err, tc.want)
		}
	}
}

// eventsOf lists the events of type typ stored so far, oldest first.
func eventsOf(t *testing.T, h *harness, typ string) []store.Event {
	t.Helper()
	evs, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// The events of a call, its approval and the rule that let it through name
// the call's cluster when there are several, the default's too; with one,
// none (as before clusters). The approval itself carries it.
func TestEventsAndApprovalsCarryTheCallsCluster(t *testing.T) {
	for _, tc := range []struct {
		name    string
		several bool
		cluster string // the cluster argument, "" for none
		want    string // Event.Cluster and Approval.Cluster
	}{
		{"one cluster", false, "", ""},
		{"one cluster, named", false, "pve", ""},
		{"several, the default", true, "home", "home"},
		{"several, another", true, "lab", "lab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			if tc.several {
				h, _ = newTwoClusters(t)
			}
			args := func(extra map[string]any) map[string]any {
				out := map[string]any{"vmid": 101}
				if tc.cluster != "" {
					out["cluster"] = tc.cluster
				}
				for k, v := range extra {
					out[k] = v
				}
				return out
			}
			if res := h.call(agentRed, "get_guest_status", args(nil)); res.IsError {
				t.Fatal(textOf(res))
			}
			first := refusalOf(t, h.call(agentRed, "stop_vm", args(nil)))
			if first.Decision != safety.NeedsApproval {
				t.Fatalf("stop_vm: %+v", first)
			}
			if a, err := h.store.GetApproval(ctx, first.ApprovalID); err != nil || a.Cluster != tc.want {
				t.Errorf("approval %+v, %v; want cluster %q", a, err, tc.want)
			}
			if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator"); err != nil {
				t.Fatal(err)
			}
			if res := h.call(agentRed, "stop_vm", args(map[string]any{"approval_id": first.ApprovalID})); res.IsError {
				t.Fatal(textOf(res))
			}
			// A rule lets the next call through (start_vm, for the same guest).
			ruleArgs := map[string][]string{"vmid": {"101"}}
			if tc.several {
				ruleArgs["cluster"] = []string{tc.cluster}
			}
			if _, err := h.srv.CreateRule(ctx, store.Rule{Principal: store.RuleOperators, Tool: "start_vm", Args: ruleArgs,
				PerTargetPerHour: 5, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator"); err != nil {
				t.Fatal(err)
			}
			if res := h.call(operator, "start_vm", args(nil)); res.IsError {
				t.Fatalf("start_vm under the rule: %s", textOf(res))
			}

			seen := map[string]int{}
			for _, typ := range []string{store.EventTool, store.EventApproval, store.EventRule} {
				for _, ev := range eventsOf(t, h, typ) {
					seen[typ]++
					if ev.Cluster != tc.want {
						t.Errorf("%s event %q has cluster %q, want %q", typ, ev.Summary, ev.Cluster, tc.want)
					}
				}
			}
			// read; refused, begun, ended; begun, ended | requested, approved, consumed | created, used
			if seen[store.EventTool] < 6 || seen[store.EventApproval] != 3 || seen[store.EventRule] != 2 {
				t.Errorf("events seen %v", seen)
			}
		})
	}
}

// A refusal before the cluster is known (none named, or an unknown one)
// names no cluster: the event is about no cluster Jarvis serves.
func TestARefusalBeforeTheClusterNamesNone(t *testing.T) {
	h, _ := newTwoClusters(t)
	for _, cluster := range []any{nil, "x"} {
		args := map[string]any{"vmid": 101}
		if cluster != nil {
			args["cluster"] = cluster
		}
		refusalOf(t, h.call(agentRed, "stop_vm", args))
	}
	for _, ev := range eventsOf(t, h, store.EventTool) {
		if ev.Cluster != "" {
			t.Errorf("refusal event %q names cluster %q", ev.Summary, ev.Cluster)
		}
	}
}

// Recover marks the calls of a replica that stopped sending heartbeats as
// interrupted once ReplicaSilentFor says so, however young they are; at
// zero, only calls older than any call may run, as before replicas. The
// alert names the call's cluster.
func TestRecoverMarksASilentReplicasCalls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		silent time.Duration
		marked bool
	}{
		{"by age only", 0, false},
		{"a silent replica", 50 * time.Millisecond, true},
		{"not silent long enough", time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			key := safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain")
			target := storetest.Target(t)
			st, err := store.Open(target, store.Options{AuditKey: key})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			other, err := store.Open(target, store.Options{AuditKey: key, Replica: "replica-2"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			h, _ := newTwoClustersWith(t, nil, nil)
			opts := h.srv.opts
			opts.Store, opts.ReplicaSilentFor = st, func() time.Duration { return tc.silent }
			opts.Clusters = []Cluster{*h.srv.clusters[0], *h.srv.clusters[1]}
			srv, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}

			// The other replica begins a call on lab, then stops.
			if err := other.Heartbeat(ctx, store.Replica{}); err != nil {
				t.Fatal(err)
			}
			id, err := other.AuditBegin(ctx, store.AuditEntry{Principal: "agent:bot", Tool: "stop_vm",
				Args: `{"cluster":"lab","vmid":101}`, Tier: "red", Decision: "approved", Plan: "[cluster lab] stop_vm: stop VM 101"})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if err := srv.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			page, err := st.AuditSearch(ctx, store.AuditFilter{Tool: "stop_vm"})
			if err != nil || len(page.Calls) != 1 || page.Calls[0].ID != id {
				t.Fatalf("search: %+v %v", page, err)
			}
			if got := page.Calls[0].Outcome == store.OutcomeInterrupted; got != tc.marked {
				t.Fatalf("call %+v: interrupted %v, want %v", page.Calls[0], got, tc.marked)
			}
			alerts, err := st.ListEvents(ctx, store.EventFilter{Type: store.EventAlert})
			if err != nil || len(alerts) != map[bool]int{true: 1}[tc.marked] {
				t.Fatalf("alerts %+v, %v", alerts, err)
			}
			if tc.marked && alerts[0].Cluster != "lab" {
				t.Errorf("the interrupted call's alert has cluster %q, want lab", alerts[0].Cluster)
			}
		})
	}
}
