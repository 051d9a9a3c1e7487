package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// newTwoClusters is a harness serving two clusters, home (h.sim, protecting
// node agent1, VM 103 and docker, as every harness does) and lab (returned,
// protecting nothing). Both simulate the same demo cluster, so the same
// arguments name a guest on each: only the cluster argument tells them apart.
func newTwoClusters(t *testing.T) (*harness, *pvesim.Sim) {
	t.Helper()
	return newTwoClustersWith(t, nil, nil)
}

// newTwoClustersWith is newTwoClusters with both API clients' configuration
// changed by pveTweak and the clusters by tweak (each when not nil).
func newTwoClustersWith(t *testing.T, pveTweak func(*pve.Config), tweak func(home, lab *Cluster)) (*harness, *pvesim.Sim) {
	t.Helper()
	lab := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!test", TokenSecret: "s3cret", TaskDuration: 50 * time.Millisecond})
	ts := httptest.NewTLSServer(lab)
	t.Cleanup(ts.Close)
	cfg := pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: ts.URL}},
		TokenID: "jarvis@pve!test", TokenSecret: "s3cret", Fingerprint: pve.FingerprintOf(ts.Certificate())}
	if pveTweak != nil {
		pveTweak(&cfg)
	}
	client, err := pve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessPVE(t, pveTweak, func(o *Options) {
		o.Clusters = []Cluster{{Name: "home", Env: o.Env, Policy: o.Policy}, {Name: "lab", Env: &tools.Env{PVE: client}}}
		o.Env, o.Policy = nil, safety.Policy{}
		if tweak != nil {
			tweak(&o.Clusters[0], &o.Clusters[1])
		}
	})
	return h, lab
}

// lastRow is the newest audit row of tool and kind (begin, end or read).
func lastRow(t *testing.T, h *harness, tool, kind string) store.AuditRow {
	t.Helper()
	rows, err := h.store.AuditRecent(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Tool == tool && r.Kind == kind {
			return r
		}
	}
	t.Fatalf("no %s row of %s", kind, tool)
	return store.AuditRow{}
}

// A read and a RED call land on the cluster they name, and the audit rows
// say which.
func TestSeveralClustersEachCallLandsOnItsCluster(t *testing.T) {
	h, lab := newTwoClusters(t)
	ctx := context.Background()

	h.sim.ResetRequests()
	lab.ResetRequests()
	st := structured[tools.GuestStatusOut](t, h.call(agentRed, "get_guest_status", map[string]any{"vmid": 101, "cluster": "lab"}))
	if st.VMID != 101 || lab.RequestCount("GET", "/") == 0 || h.sim.RequestCount("", "/") != 0 {
		t.Fatalf("a read of lab: %+v; lab saw %d requests, home %d", st, lab.RequestCount("GET", "/"), h.sim.RequestCount("", "/"))
	}
	if row := lastRow(t, h, "get_guest_status", "read"); row.Args != `{"cluster":"lab","vmid":101}` {
		t.Errorf("the read's audit row has args %s, want the cluster in them", row.Args)
	}

	args := map[string]any{"vmid": 101, "cluster": "lab"}
	first := refusalOf(t, h.call(agentRed, "stop_vm", args))
	if first.Decision != safety.NeedsApproval {
		t.Fatalf("first call: %+v", first)
	}
	if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	args["approval_id"] = first.ApprovalID
	out := structured[tools.TaskResult](t, h.call(agentRed, "stop_vm", args))
	lab101, _ := lab.Guest(101)
	if !out.OK || lab101.Status != "stopped" || h.guestStatus(101) != "running" {
		t.Fatalf("stop of VM 101 on lab: %+v; lab's 101 is %s, home's %s", out, lab101.Status, h.guestStatus(101))
	}
	if row := lastRow(t, h, "stop_vm", "begin"); row.Args != `{"cluster":"lab","vmid":101}` {
		t.Errorf("the stop's begin row has args %s, want the cluster in them", row.Args)
	}
	if a, err := h.store.GetApproval(ctx, first.ApprovalID); err != nil || !strings.Contains(a.Args, `"cluster":"lab"`) ||
		!strings.HasPrefix(a.Plan, "[cluster lab] stop_vm: Hard stop of running VM 101") {
		t.Errorf("the approval a person saw does not name the cluster: %+v %v", a, err)
	}
}

// With several clusters a call must name one of them; the refusal has the
// one shape and is audited like every refusal. A resource read names none
// and reads the default cluster.
func TestSeveralClustersRefuseAMissingOrUnknownCluster(t *testing.T) {
	h, lab := newTwoClusters(t)
	for _, tc := range []struct {
		name    string
		cluster any
		want    string
	}{
		{"missing", nil, "cluster is required: one of home, lab"},
		{"unknown", "x", "no cluster x: one of home, lab"},
		{"not a name", 5, "cluster must be a name: one of home, lab"},
		{"another case", "Lab", "no cluster Lab: one of home, lab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := map[string]any{"vmid": 101}
			if tc.cluster != nil {
				args["cluster"] = tc.cluster
			}
			r := refusalOf(t, h.call(agentRed, "stop_vm", args))
			if r.Decision != safety.Blocked || r.Reason != tc.want {
				t.Fatalf("refusal %+v, want blocked: %q", r, tc.want)
			}
			if row := lastRow(t, h, "stop_vm", "end"); row.Status != store.OutcomeRefused || row.Error != tc.want {
				t.Errorf("audit row %+v, want the refusal's end row", row)
			}
		})
	}
	if n, err := h.store.CountApprovals(context.Background(), store.ApprovalPending); err != nil || n != 0 {
		t.Errorf("approvals = %d, %v; a refused call asks nobody", n, err)
	}
	lab101, _ := lab.Guest(101)
	if h.guestStatus(101) != "running" || lab101.Status != "running" {
		t.Fatal("a refused call stopped a VM")
	}

	h.sim.ResetRequests()
	lab.ResetRequests()
	cs := h.connect(operator, nil)
	if _, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "jarvis://cluster/summary"}); err != nil {
		t.Fatalf("resource read: %v", err)
	}
	if h.sim.RequestCount("GET", "/") == 0 || lab.RequestCount("", "/") != 0 {
		t.Errorf("the resource read reached home %d times and lab %d times; resources read the default cluster",
			h.sim.RequestCount("GET", "/"), lab.RequestCount("", "/"))
	}
	if row := lastRow(t, h, "get_cluster_status", "read"); row.Args != `{"cluster":"home"}` {
		t.Errorf("the resource read's audit row has args %s, want the default cluster named", row.Args)
	}
}

// An approval is granted for a call on one cluster: the same call on the
// other cluster does not get to use it.
func TestSeveralClustersApprovalIsBoundToItsCluster(t *testing.T) {
	h, lab := newTwoClusters(t)
	ctx := context.Background()
	first := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "cluster": "home"}))
	if first.Decision != safety.NeedsApproval {
		t.Fatalf("first call: %+v", first)
	}
	// Either alone would keep the approval from lab's call below: check
	// both, so losing one of them fails here.
	a, err := h.store.GetApproval(ctx, first.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.Args, `"cluster":"home"`) {
		t.Errorf("the approval is bound to args %s, want the cluster in them", a.Args)
	}
	if !strings.HasPrefix(a.Plan, "[cluster home] stop_vm: ") {
		t.Errorf("the approval's plan %q does not start with its cluster", a.Plan)
	}
	if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "cluster": "lab", "approval_id": first.ApprovalID}))
	if r.Decision != safety.Denied {
		t.Fatalf("the home approval on lab: %+v", r)
	}
	if lab101, _ := lab.Guest(101); lab101.Status != "running" {
		t.Fatal("an approval for home stopped lab's VM 101")
	}
	out := structured[tools.TaskResult](t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "cluster": "home", "approval_id": first.ApprovalID}))
	if !out.OK || h.guestStatus(101) != "stopped" {
		t.Fatalf("the approved call on home: %+v", out)
	}
}

// Each cluster has its own protected resources: VM 103 is protected on
// home, not on lab.
func TestSeveralClustersProtectEachItsOwn(t *testing.T) {
	h, _ := newTwoClusters(t)
	if r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 103, "cluster": "home"})); r.Decision != safety.Protected {
		t.Errorf("VM 103 on home: %+v, want protected", r)
	}
	if r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 103, "cluster": "lab"})); r.Decision != safety.NeedsApproval {
		t.Errorf("VM 103 on lab: %+v, want needs_approval (nothing is protected there)", r)
	}
	// The console shows the default cluster's protection.
	if p := h.srv.Policy(); !slices.Contains(p.ProtectedVMIDs, 103) {
		t.Errorf("Policy() = %+v, want home's", p)
	}
}

// With one cluster the argument may be left out or name it; either way the
// audit row and the approval binding are what they were before clusters
// existed, so an approval asked without it is used with it.
func TestOneClusterTakesItsNameOrNone(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.call(agentRed, "get_guest_status", map[string]any{"vmid": 101})
	without := lastRow(t, h, "get_guest_status", "read").Args
	structured[tools.GuestStatusOut](t, h.call(agentRed, "get_guest_status", map[string]any{"vmid": 101, "cluster": "pve"}))
	if with := lastRow(t, h, "get_guest_status", "read").Args; with != without || without != `{"vmid":101}` {
		t.Errorf("audit args with the cluster named %s, without %s; want both as before clusters", with, without)
	}
	if r := refusalOf(t, h.call(agentRed, "get_guest_status", map[string]any{"vmid": 101, "cluster": "lab"})); r.Decision != safety.Blocked || r.Reason != "no cluster lab: one of pve" {
		t.Errorf("an unknown cluster: %+v", r)
	}

	first := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101}))
	if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	out := structured[tools.TaskResult](t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "cluster": "pve", "approval_id": first.ApprovalID}))
	if !out.OK || h.guestStatus(101) != "stopped" {
		t.Fatalf("the approved call naming the cluster: %+v", out)
	}
}

// A standing approval names the clusters it covers: with several clusters a
// call always carries one, and a rule allows only the arguments it names.
func TestSeveralClustersRulesNameTheirCluster(t *testing.T) {
	h, lab := newTwoClusters(t)
	ctx := context.Background()
	agent := ruleAgent(t, h)
	rule := func(args map[string][]string, trigger string) (*store.Rule, error) {
		return h.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "stop_vm", Args: args, Trigger: trigger,
			PerTargetPerHour: 5, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator")
	}
	if _, err := rule(map[string][]string{"vmid": {"101"}, "cluster": {"x"}}, ""); err == nil || !strings.Contains(err.Error(), "no cluster x: one of home, lab") {
		t.Fatalf("a rule for an unknown cluster: %v", err)
	}
	if _, err := rule(map[string][]string{"vmid": {"102"}}, ""); err == nil ||
		!strings.Contains(err.Error(), "a rule must name the clusters it covers: add the argument cluster with one or more of home, lab (or * for any)") {
		t.Fatalf("a rule that names no cluster: %v", err)
	}
	// One stored while there was one cluster never applies once there are
	// several, and the answer says why.
	if err := h.store.CreateRule(ctx, &store.Rule{Principal: agent.ID, Tool: "stop_vm", Args: map[string][]string{"vmid": {"102"}},
		PerTargetPerHour: 5, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour), CreatedBy: "operator"}); err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, h.call(agent, "stop_vm", map[string]any{"vmid": 102, "cluster": "lab"})); r.Decision != safety.NeedsApproval ||
		!strings.Contains(r.Reason, "does not allow the argument cluster") {
		t.Errorf("a rule that names no cluster let a call through, or did not say why not: %+v", r)
	}
	if _, err := rule(map[string][]string{"vmid": {"101"}, "cluster": {"lab"}}, ""); err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, h.call(agent, "stop_vm", map[string]any{"vmid": 101, "cluster": "home"})); r.Decision != safety.NeedsApproval {
		t.Errorf("a rule for lab let a call on home through: %+v", r)
	}
	out := structured[tools.TaskResult](t, h.call(agent, "stop_vm", map[string]any{"vmid": 101, "cluster": "lab"}))
	if lab101, _ := lab.Guest(101); !out.OK || lab101.Status != "stopped" || h.guestStatus(101) != "running" {
		t.Fatalf("the rule for lab: %+v", out)
	}
	// Alerts are raised for the default cluster only: a trigger never
	// lets a call on another cluster through.
	if _, err := rule(map[string][]string{"vmid": {"105"}, "cluster": {"lab"}}, store.AlertGuestStoppedUnexpectedly); err != nil {
		t.Fatal(err)
	}
	raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 105)
	if r := refusalOf(t, h.call(agent, "stop_vm", map[string]any{"vmid": 105, "cluster": "lab"})); r.Decision != safety.NeedsApproval ||
		!strings.Contains(r.Reason, "alerts are raised for cluster home only") {
		t.Errorf("home's alert let a call on lab through: %+v", r)
	}
}

// list_alerts on a cluster the watcher does not watch says so.
// (Created guests are per cluster: clusters_records_test.go.)
func TestSeveralClustersWhatIsNotPerClusterYet(t *testing.T) {
	h, _ := newTwoClusters(t)
	raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 101)
	home := structured[tools.AlertList](t, h.call(agentRed, "list_alerts", map[string]any{"cluster": "home"}))
	lab := structured[tools.AlertList](t, h.call(agentRed, "list_alerts", map[string]any{"cluster": "lab"}))
	if len(home.Alerts) != 1 || len(lab.Alerts) != 0 || !strings.Contains(lab.Note, "watches cluster home only") {
		t.Errorf("alerts on home %+v, on lab %+v", home, lab)
	}
}

// The tool list of a Jarvis serving several clusters: every tool takes a
// required cluster argument naming one of them. It is pinned like the
// single-cluster lists (go test ./server -run Golden -update), and its size
// is reported (go test ./server -run Clusters -v).
func TestSeveralClustersToolsListGolden(t *testing.T) {
	h, _ := newTwoClusters(t)
	p := operator
	p.Toolsets = strings.Join(tools.DefaultToolsets(), ",")
	list := listAs(t, h, p)
	for _, tl := range list {
		in := tl.InputSchema.(map[string]any)
		prop, _ := in["properties"].(map[string]any)["cluster"].(map[string]any)
		required, _ := in["required"].([]any)
		if prop == nil || !slices.Equal(prop["enum"].([]any), []any{"home", "lab"}) || !slices.Contains(required, any("cluster")) {
			t.Errorf("%s: cluster argument %v, required %v", tl.Name, prop, required)
		}
	}
	got, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	checkGolden(t, "testdata/clusters/default.golden.json", got)

	raw, err := json.Marshal(&mcp.ListToolsResult{Tools: list})
	if err != nil {
		t.Fatal(err)
	}
	one := newHarness(t)
	rawOne, err := json.Marshal(&mcp.ListToolsResult{Tools: listAs(t, one, p)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default tools/list: %d bytes with one cluster, %d with two (+%d for %d tools)", len(rawOne), len(raw), len(raw)-len(rawOne), len(list))
	// The cluster argument costs about 70 bytes a tool; with two clusters the
	// list keeps the one-cluster budget (TestToolsListSize).
	if len(raw) > 40_000 {
		t.Errorf("the default tools/list with two clusters is %d bytes; keep it within 40,000", len(raw))
	}
}

// New takes one cluster as Env and Policy, or several as Clusters: a Policy
// beside Clusters would protect nothing, so it is refused like an Env.
func TestNewTakesOneWayOfGivingClusters(t *testing.T) {
	protect := safety.Policy{ProtectedVMIDs: []int{103}}
	named := func(name string) Cluster { return Cluster{Name: name, Env: &tools.Env{}} }
	for _, tc := range []struct {
		name string
		set  func(o *Options)
		want string // "" when New accepts it
	}{
		{"Env and Policy", func(o *Options) { o.Env, o.Policy = &tools.Env{}, protect }, ""},
		{"Clusters", func(o *Options) { o.Clusters = []Cluster{named("home"), named("lab")}; o.Clusters[0].Policy = protect }, ""},
		{"neither", func(o *Options) {}, "Env (or Clusters) is required"},
		{"Clusters and Env", func(o *Options) { o.Clusters, o.Env = []Cluster{named("home")}, &tools.Env{} }, "not both"},
		{"Clusters and Policy", func(o *Options) { o.Clusters, o.Policy = []Cluster{named("home")}, protect }, "not both"},
		{"a name twice", func(o *Options) { o.Clusters = []Cluster{named("home"), named("home")} }, "cluster 2 needs a name of its own"},
		{"no Env", func(o *Options) { o.Clusters = []Cluster{{Name: "home"}} }, "cluster 1 needs a name of its own and an Env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t) // for its store
			o := Options{Store: h.store, Limiter: safety.NewRateLimiter(safety.RateLimits{}),
				Confirmer: safety.NewConfirmer(safety.DeriveKey("test-secret-test-secret-test-secret", "confirmation-state"), time.Minute)}
			tc.set(&o)
			_, err := New(o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// ruleTargets lists the targets of the rule events of phase, oldest first,
// and their summaries.
func ruleTargets(t *testing.T, h *harness, phase string) (targets, summaries []string) {
	t.Helper()
	evs, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: store.EventRule, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		var d store.RuleDetails
		if json.Unmarshal(evs[i].Details, &d) == nil && d.Phase == phase {
			targets, summaries = append(targets, d.Target), append(summaries, evs[i].Summary)
		}
	}
	return targets, summaries
}

// A rule's budget counts per target on each cluster: VM 101 on home and VM
// 101 on lab are two guests, each with its own calls per hour, and the
// answers, events and spend name the cluster. With one cluster the target
// stays guest/101.
func TestSeveralClustersRuleBudgetIsPerCluster(t *testing.T) {
	h, lab := newTwoClusters(t)
	ctx := context.Background()
	agent := ruleAgent(t, h)
	rule, err := h.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "stop_vm", Args: map[string][]string{"vmid": {"101"}, "cluster": {"*"}},
		PerTargetPerHour: 1, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator")
	if err != nil {
		t.Fatal(err)
	}
	for _, cluster := range []string{"home", "lab"} {
		if res := h.call(agent, "stop_vm", map[string]any{"vmid": 101, "cluster": cluster}); res.IsError {
			t.Fatalf("the first stop on %s, within its budget: %s", cluster, textOf(res))
		}
	}
	if lab101, _ := lab.Guest(101); h.guestStatus(101) != "stopped" || lab101.Status != "stopped" {
		t.Fatalf("VM 101 is %s on home and %s on lab, want both stopped", h.guestStatus(101), lab101.Status)
	}
	if err := lab.SetGuestStatus(101, "running"); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, h.call(agent, "stop_vm", map[string]any{"vmid": 101, "cluster": "lab"}))
	if r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, "allows 1 calls per hour for lab/guest/101 and they are spent") {
		t.Errorf("the second stop on lab: %+v, want needs_approval naming lab/guest/101", r)
	}

	if used, _ := ruleTargets(t, h, store.RuleUsed); !slices.Equal(used, []string{"home/guest/101", "lab/guest/101"}) {
		t.Errorf("used events for %q, want each cluster's guest", used)
	}
	if spent, summaries := ruleTargets(t, h, store.RuleExhausted); !slices.Equal(spent, []string{"lab/guest/101"}) ||
		!strings.Contains(summaries[0], "stop_vm lab/guest/101") {
		t.Errorf("exhausted events for %q (%q), want lab's guest named", spent, summaries)
	}
	views, err := h.srv.Rules(ctx, false)
	if err != nil || len(views) != 1 || len(views[0].Spend.UsesLastHour) != 2 ||
		views[0].Spend.UsesLastHour["home/guest/101"] != 1 || views[0].Spend.UsesLastHour["lab/guest/101"] != 1 {
		t.Errorf("spend %+v %v, want one use for each cluster's guest", views, err)
	}
	// list_alerts counts what is left for the alert's guest on the default
	// cluster, the one the watcher watches.
	raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 101)
	list := structured[tools.AlertList](t, h.call(agent, "list_alerts", map[string]any{"cluster": "home"}))
	if len(list.Alerts) != 1 || len(list.Alerts[0].Rules) != 1 || list.Alerts[0].Rules[0].Rule != rule.Ref() || list.Alerts[0].Rules[0].UsesLeft != 0 {
		t.Errorf("list_alerts on home = %+v, want the rule with home's one use spent", list)
	}

	one := newHarness(t)
	agent = ruleAgent(t, one)
	if _, err := one.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "stop_vm", Args: map[string][]string{"vmid": {"101"}},
		PerTargetPerHour: 1, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator"); err != nil {
		t.Fatal(err)
	}
	if res := one.call(agent, "stop_vm", map[string]any{"vmid": 101}); res.IsError {
		t.Fatalf("the stop with one cluster: %s", textOf(res))
	}
	if used, _ := ruleTargets(t, one, store.RuleUsed); !slices.Equal(used, []string{"guest/101"}) {
		t.Errorf("with one cluster the used event is for %q, want guest/101 as before clusters", used)
	}
}

// wolTo is a UDP socket standing in for a Wake-on-LAN broadcast address, and
// the Wake-on-LAN settings macs ("node=MAC") that send there.
func wolTo(t *testing.T, macs string) (net.PacketConn, *tools.WakeOnLAN) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	wol, err := tools.ParseWakeOnLAN(macs, conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return conn, wol
}

// received is the packet conn gets within wait, or nil.
func received(conn net.PacketConn, wait time.Duration) []byte {
	buf := make([]byte, 200)
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// wake_node on lab sends lab's MAC to lab's broadcast address, never home's,
// though both have a node pve with a MAC and both are offline.
func TestSeveralClustersWakeNodeUsesItsCluster(t *testing.T) {
	homeConn, homeWOL := wolTo(t, "pve=52:54:00:00:00:01")
	labConn, labWOL := wolTo(t, "pve=52:54:00:00:00:02")
	h, lab := newTwoClustersWith(t, nil, func(home, lab *Cluster) { home.Env.Wake, lab.Env.Wake = homeWOL, labWOL })
	h.sim.SetNodeOffline("pve", true)
	lab.SetNodeOffline("pve", true)

	out := structured[tools.WakeOut](t, h.call(agentRed, "wake_node", map[string]any{"node": "pve", "cluster": "lab"}))
	if out.MAC != "52:54:00:00:00:02" || out.Broadcast != labConn.LocalAddr().String() {
		t.Errorf("wake_node on lab sent MAC %s to %s, want lab's 52:54:00:00:00:02 to %s", out.MAC, out.Broadcast, labConn.LocalAddr())
	}
	labMAC, _ := net.ParseMAC("52:54:00:00:00:02")
	if got := received(labConn, 5*time.Second); string(got) != string(tools.MagicPacket(labMAC)) {
		t.Errorf("lab's broadcast address got % x, want lab's magic packet", got)
	}
	if got := received(homeConn, 200*time.Millisecond); got != nil {
		t.Errorf("home's broadcast address got a packet: % x", got)
	}
	if plan := lastRow(t, h, "wake_node", "begin").Plan; !strings.HasPrefix(plan, "[cluster lab] ") || !strings.Contains(plan, "MAC 52:54:00:00:00:02") {
		t.Errorf("the audit row's plan %q does not name lab and its MAC", plan)
	}
}

// A change on lab drops lab's cached reads: a read there right after it
// sees the cluster as it is now. Wake-on-LAN changes the cluster without its
// API client seeing it, so only the server's Env.Changed on the call's
// cluster (not the default one) can drop them.
func TestSeveralClustersAChangeRefreshesItsClustersReads(t *testing.T) {
	_, labWOL := wolTo(t, "pve=52:54:00:00:00:02")
	// A window far longer than the test: a fresh answer comes only from a
	// dropped cache, not from time passing.
	h, lab := newTwoClustersWith(t, cacheFor(time.Hour), func(_, lab *Cluster) { lab.Env.Wake = labWOL })
	online := func() bool {
		t.Helper()
		st := structured[tools.ClusterStatus](t, h.call(agentRed, "get_cluster_status", map[string]any{"cluster": "lab"}))
		for _, n := range st.Nodes {
			if n.Name == "pve" {
				return n.Online
			}
		}
		t.Fatalf("lab's status lists no node pve: %+v", st)
		return false
	}
	lab.SetNodeOffline("pve", true)
	if online() {
		t.Fatal("lab's pve is online before the test")
	}
	if res := h.call(agentRed, "wake_node", map[string]any{"node": "pve", "cluster": "lab"}); res.IsError {
		t.Fatalf("wake_node on lab: %s", textOf(res))
	}
	lab.SetNodeOffline("pve", false) // it woke up
	if !online() {
		t.Error("a read of lab after waking its node answered from before the change")
	}
}
