package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

func TestReadToolsAnswerWithStructuredContent(t *testing.T) {
	h := newHarness(t)
	recent := structured[tools.TaskList](t, h.call(operator, "get_recent_tasks", map[string]any{"limit": 5}))
	if len(recent.Tasks) == 0 {
		t.Fatal("the simulator has a task history; get_recent_tasks returned none")
	}
	cases := []struct {
		tool  string
		args  map[string]any
		check func(t *testing.T, res *mcp.CallToolResult)
	}{
		{"get_cluster_status", nil, func(t *testing.T, res *mcp.CallToolResult) {
			cs := structured[tools.ClusterStatus](t, res)
			if !cs.Quorate || cs.NodesTotal != 4 || cs.NodesOnline != 4 {
				t.Errorf("cluster status = %+v, want quorate with 4/4 nodes", cs)
			}
		}},
		{"get_node_status", map[string]any{"node": "pve"}, func(t *testing.T, res *mcp.CallToolResult) {
			ns := structured[tools.NodeStatusOut](t, res)
			if ns.Memory.TotalBytes != 64<<30 || ns.Memory.Total != "64.0 GiB" || ns.CPUCores == 0 || len(ns.LoadAverage) != 3 {
				t.Errorf("node status = %+v", ns)
			}
		}},
		{"get_vms", nil, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.GuestList](t, res)
			if l.Count < 6 || l.Running < 4 {
				t.Errorf("vms: %d (%d running), want >= 6 (>= 4 running)", l.Count, l.Running)
			}
			for _, g := range l.Guests {
				if g.Kind != "qemu" {
					t.Errorf("get_vms returned a %s", g.Kind)
				}
			}
		}},
		{"get_vms", map[string]any{"node": "pve", "status": "running"}, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.GuestList](t, res)
			for _, g := range l.Guests {
				if g.Node != "pve" || g.Status != "running" {
					t.Errorf("filter leaked %+v", g)
				}
			}
		}},
		{"get_containers", nil, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.GuestList](t, res)
			if l.Count < 4 {
				t.Errorf("containers: %d, want >= 4", l.Count)
			}
		}},
		{"get_storage", nil, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.StorageList](t, res)
			if len(l.Storages) < 3 {
				t.Errorf("storages: %d", len(l.Storages))
			}
		}},
		{"get_cluster_resources", map[string]any{"type": "node"}, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.ResourceList](t, res)
			if l.Count != 4 {
				t.Errorf("node resources: %d, want 4", l.Count)
			}
		}},
		{"get_backups", map[string]any{"vmid": 101}, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.BackupList](t, res)
			if l.Count == 0 {
				t.Fatal("no backups of 101")
			}
			for _, b := range l.Backups {
				if b.VMID != 101 || b.SizeBytes <= 0 || b.Created == "" {
					t.Errorf("backup %+v", b)
				}
			}
		}},
		{"get_guest_status", map[string]any{"vmid": 103}, func(t *testing.T, res *mcp.CallToolResult) {
			g := structured[tools.GuestStatusOut](t, res)
			if g.Node != "agent1" || g.Kind != "qemu" || g.Status != "running" {
				t.Errorf("103 = %+v, want the running management VM on agent1 (reads of protected guests are allowed)", g)
			}
		}},
		{"get_task_status", map[string]any{"upid": recent.Tasks[0].UPID}, func(t *testing.T, res *mcp.CallToolResult) {
			ts := structured[tools.TaskStatusOut](t, res)
			if ts.UPID != recent.Tasks[0].UPID {
				t.Errorf("task status for %s", ts.UPID)
			}
		}},
		{"list_snapshots", map[string]any{"vmid": 101}, func(t *testing.T, res *mcp.CallToolResult) {
			l := structured[tools.SnapshotList](t, res)
			if len(l.Snapshots) != 2 || l.Current != "before-php84" {
				t.Errorf("snapshots of 101 = %+v", l)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.tool, func(t *testing.T) { c.check(t, h.call(agentRed, c.tool, c.args)) })
	}
}

func TestBadInputIsAToolErrorThatSaysWhatToFix(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		tool string
		args map[string]any
		want string
	}{
		{"get_node_status", nil, "node"},
		{"get_node_status", map[string]any{"node": "bad name!"}, "node"},
		{"get_guest_status", map[string]any{"vmid": 99}, "vmid"},
		{"get_guest_status", map[string]any{"vmid": 4242}, "no guest with VMID 4242"},
		{"get_guest_status", map[string]any{"vmid": "101"}, "vmid"},
		{"stop_vm", map[string]any{"vmid": 101, "confirmed": true}, "confirmed"},
		{"stop_vm", map[string]any{"vmid": 200}, "container"},
		{"start_vm", map[string]any{"vmid": 101}, "already running"},
		{"stop_vm", map[string]any{"vmid": 104}, "already stopped"},
		{"get_task_status", map[string]any{"upid": "UPID:nope"}, "upid"},
	}
	for _, c := range cases {
		t.Run(c.tool, func(t *testing.T) {
			res := h.call(agentRed, c.tool, c.args)
			if !res.IsError {
				t.Fatalf("%s %v succeeded", c.tool, c.args)
			}
			if !strings.Contains(strings.ToLower(textOf(res)), strings.ToLower(c.want)) {
				t.Errorf("error %q does not mention %q", textOf(res), c.want)
			}
		})
	}
	if h.guestStatus(101) != "running" {
		t.Fatal("a rejected call changed the cluster")
	}
}

func TestBackendFailureIsAToolError(t *testing.T) {
	h := newHarness(t)
	h.sim.FailNext("/cluster/status", 500, "pmxcfs is not running")
	res := h.call(operator, "get_cluster_status", nil)
	if !res.IsError || !strings.Contains(textOf(res), "pmxcfs is not running") {
		t.Fatalf("want PVE's own message in a tool error, got %q", textOf(res))
	}
	h.sim.SetNodeOffline("pve", true)
	res = h.call(operator, "get_node_status", map[string]any{"node": "pve"})
	if !res.IsError || !strings.Contains(textOf(res), "offline or unreachable") {
		t.Fatalf("offline node: %q", textOf(res))
	}
}

func TestRefusals(t *testing.T) {
	h := newHarness(t)
	green := safety.Principal{ID: "agent:reader", Kind: safety.Agent, MaxTier: safety.Green}
	cases := []struct {
		name      string
		p         safety.Principal
		tool      string
		args      map[string]any
		decision  safety.Decision
		mentioned string
	}{
		{"black tool", agentRed, "reboot_node", map[string]any{"node": "pve"}, safety.Blocked, "never"},
		{"black tool delete_vm", operator, "delete_vm", map[string]any{"vmid": 101}, safety.Blocked, "never"},
		{"unknown tool", agentRed, "format_everything", nil, safety.Blocked, "no tool"},
		{"above ceiling", green, "stop_vm", map[string]any{"vmid": 101}, safety.Blocked, "GREEN"},
		{"protected vmid", agentRed, "stop_vm", map[string]any{"vmid": 103}, safety.Protected, "protected"},
		{"protected node", agentRed, "start_container", map[string]any{"vmid": 204}, safety.Protected, "agent1"},
		{"protected snapshot target", agentRed, "create_snapshot", map[string]any{"vmid": 202, "name": "x1"}, safety.Protected, "agent1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := refusalOf(t, h.call(c.p, c.tool, c.args))
			if r.Decision != c.decision {
				t.Fatalf("decision = %s, want %s (%s)", r.Decision, c.decision, r.Reason)
			}
			if !strings.Contains(r.Reason, c.mentioned) {
				t.Errorf("reason %q does not mention %q", r.Reason, c.mentioned)
			}
			if r.Tier == "" {
				t.Error("refusal has no tier")
			}
		})
	}
	if h.guestStatus(103) != "running" || h.guestStatus(204) != "stopped" {
		t.Fatal("a refused call changed a protected guest")
	}
	if n := h.executions("stop_vm") + h.executions("start_container"); n != 0 {
		t.Fatalf("%d refused calls executed", n)
	}
}

func TestKillSwitch(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.srv.SetSwitch(ctx, PrefKillSwitch, true, "operator"); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, h.call(agentRed, "create_snapshot", map[string]any{"vmid": 101, "name": "ks1"}))
	if r.Decision != safety.KillSwitch {
		t.Fatalf("decision = %s, want kill_switch", r.Decision)
	}
	r = refusalOf(t, h.call(operator, "stop_vm", map[string]any{"vmid": 101}))
	if r.Decision != safety.KillSwitch {
		t.Fatalf("stop_vm decision = %s, want kill_switch", r.Decision)
	}
	if res := h.call(agentRed, "get_cluster_status", nil); res.IsError {
		t.Fatalf("reads must work with the kill switch on: %s", textOf(res))
	}
	if err := h.srv.SetSwitch(ctx, PrefKillSwitch, false, "operator"); err != nil {
		t.Fatal(err)
	}
	out := structured[tools.TaskResult](t, h.call(agentRed, "create_snapshot", map[string]any{"vmid": 101, "name": "ks1"}))
	if !out.OK || !strings.HasPrefix(out.UPID, "UPID:pve:") {
		t.Fatalf("snapshot after kill switch off: %+v", out)
	}
}

func TestReadOnlyModeRegistersGreenOnly(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ReadOnly = true })
	for _, tl := range h.srv.AllTools() {
		if tl.Tier != safety.Green {
			t.Errorf("read-only mode registered %s (%s)", tl.Name, tl.Tier)
		}
	}
	r := refusalOf(t, h.call(operator, "stop_vm", map[string]any{"vmid": 101}))
	if r.Decision != safety.Blocked || !strings.Contains(r.Reason, "read-only") {
		t.Fatalf("stop_vm in read-only mode: %+v", r)
	}
}

func TestApprovalFlow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	args := map[string]any{"vmid": 101}

	first := refusalOf(t, h.call(agentRed, "stop_vm", args))
	if first.Decision != safety.NeedsApproval || first.ApprovalID == "" {
		t.Fatalf("first call: %+v", first)
	}
	if !strings.Contains(first.Plan, "101") || !strings.Contains(first.Plan, "web01") {
		t.Errorf("plan %q does not name the VM", first.Plan)
	}
	if h.guestStatus(101) != "running" {
		t.Fatal("VM stopped before anyone approved")
	}

	withID := map[string]any{"vmid": 101, "approval_id": first.ApprovalID}
	// Still pending: the retry does not run.
	if r := refusalOf(t, h.call(agentRed, "stop_vm", withID)); r.Decision != safety.NeedsApproval {
		t.Fatalf("retry while pending: %+v", r)
	}
	if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	// Another principal, or other arguments, cannot use it.
	other := safety.Principal{ID: "agent:other", Kind: safety.Agent, MaxTier: safety.Red}
	if r := refusalOf(t, h.call(other, "stop_vm", withID)); r.Decision != safety.Denied {
		t.Fatalf("other principal: %+v", r)
	}
	if r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 102, "approval_id": first.ApprovalID})); r.Decision != safety.Denied {
		t.Fatalf("changed arguments: %+v", r)
	}
	if r := refusalOf(t, h.call(agentRed, "shutdown_vm", withID)); r.Decision != safety.Denied {
		t.Fatalf("another tool: %+v", r)
	}
	if h.guestStatus(101) != "running" || h.guestStatus(102) != "running" {
		t.Fatal("a mismatched approval ran something")
	}

	out := structured[tools.TaskResult](t, h.call(agentRed, "stop_vm", withID))
	if !out.OK || out.GuestStatus != "stopped" || h.guestStatus(101) != "stopped" {
		t.Fatalf("approved stop: %+v (sim: %s)", out, h.guestStatus(101))
	}
	// Reuse is refused (the VM is stopped now, so start it to make reuse meaningful).
	if err := h.sim.SetGuestStatus(101, "running"); err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, h.call(agentRed, "stop_vm", withID)); r.Decision != safety.Denied || !strings.Contains(r.Reason, "already used") {
		t.Fatalf("reuse: %+v", r)
	}
	if n := h.executions("stop_vm"); n != 1 {
		t.Fatalf("stop_vm executed %d times, want 1", n)
	}
	rep, err := h.store.AuditVerify(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("audit chain after the flow: %+v %v", rep, err)
	}
}

func TestDeniedAndExpiredApprovals(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, func(o *Options) { o.Now = clock })
	ctx := context.Background()

	a := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101}))
	if _, err := h.srv.DecideApproval(ctx, a.ApprovalID, false, "operator"); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "approval_id": a.ApprovalID}))
	if r.Decision != safety.Denied || !strings.Contains(r.Reason, "refused") {
		t.Fatalf("denied approval: %+v", r)
	}

	b := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 102}))
	if _, err := h.srv.DecideApproval(ctx, b.ApprovalID, true, "operator"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	r = refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 102, "approval_id": b.ApprovalID}))
	if r.Decision != safety.Expired {
		t.Fatalf("expired approval: %+v", r)
	}
	if h.guestStatus(101) != "running" || h.guestStatus(102) != "running" {
		t.Fatal("a denied or expired approval ran")
	}

	// An id that names no approval is refused without handing the id back.
	r = refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "approval_id": "apr_ffffffffffffffff"}))
	if r.Decision != safety.Denied || r.ApprovalID != "" || !strings.Contains(r.Reason, "does not exist") {
		t.Fatalf("unknown approval id: %+v", r)
	}
}

func TestApprovalDecidedWhileTheCallWaits(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ApprovalWait = 10 * time.Second })
	go func() {
		for range 100 {
			list, _ := h.store.ListApprovals(context.Background(), "pending")
			if len(list) == 1 {
				_, _ = h.srv.DecideApproval(context.Background(), list[0].ID, true, "operator")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var notes []string
	var mu sync.Mutex
	res := h.srv.Dispatch(context.Background(), Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":105}`),
		Progress: func(msg string, _, _ float64) { mu.Lock(); notes = append(notes, msg); mu.Unlock() }})
	out := structured[tools.TaskResult](t, res)
	if !out.OK || h.guestStatus(105) != "stopped" {
		t.Fatalf("approved while waiting: %+v", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) == 0 || !strings.Contains(notes[0], "waiting for a person to approve apr_") {
		t.Fatalf("no progress while waiting for the approval: %q", notes)
	}
}

func TestConcurrentRetriesExecuteOnce(t *testing.T) {
	h := newHarness(t)
	first := refusalOf(t, h.call(agentRed, "delete_snapshot", map[string]any{"vmid": 101, "name": "pre-upgrade"}))
	if _, err := h.srv.DecideApproval(context.Background(), first.ApprovalID, true, "operator"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := h.call(agentRed, "delete_snapshot", map[string]any{"vmid": 101, "name": "pre-upgrade", "approval_id": first.ApprovalID})
			if !res.IsError {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || h.executions("delete_snapshot") != 1 {
		t.Fatalf("%d successes, %d executions; want exactly one", ok.Load(), h.executions("delete_snapshot"))
	}
}

func TestElicitation(t *testing.T) {
	accept := func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		if !strings.Contains(req.Params.Message, "web01") {
			return nil, nil
		}
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
	}
	decline := func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "decline"}, nil
	}
	ctx := context.Background()

	t.Run("an agent answering its own client still needs an operator", func(t *testing.T) {
		h := newHarness(t)
		cs := h.connect(agentRed, accept)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		if err != nil {
			t.Fatal(err)
		}
		if r := refusalOf(t, res); r.Decision != safety.NeedsApproval || h.guestStatus(101) != "running" {
			t.Fatalf("agent self-confirmation: %+v", r)
		}
	})
	t.Run("agents may elicit when configured", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.ElicitAgents = true })
		cs := h.connect(agentRed, accept)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		if err != nil {
			t.Fatal(err)
		}
		if out := structured[tools.TaskResult](t, res); !out.OK {
			t.Fatalf("configured agent elicitation: %+v", out)
		}
	})
	t.Run("accept stops the VM", func(t *testing.T) {
		h := newHarness(t)
		cs := h.connect(operator, accept)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		if err != nil {
			t.Fatal(err)
		}
		out := structured[tools.TaskResult](t, res)
		if !out.OK || h.guestStatus(101) != "stopped" {
			t.Fatalf("accepted: %+v", out)
		}
	})
	t.Run("decline is denied", func(t *testing.T) {
		h := newHarness(t)
		cs := h.connect(operator, decline)
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		if err != nil {
			t.Fatal(err)
		}
		if r := refusalOf(t, res); r.Decision != safety.Denied {
			t.Fatalf("declined: %+v", r)
		}
		if h.guestStatus(101) != "running" {
			t.Fatal("declined call stopped the VM")
		}
	})
}

func TestConfirmationStateCannotBeForged(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	accept := &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}
	args := json.RawMessage(`{"vmid":101}`)

	// A forged answer on the first call (no state) is ignored: the client is asked.
	res := h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "stop_vm", Args: args, Elicitation: true, Confirm: accept})
	if len(res.InputRequests) != 1 || res.RequestState == "" {
		t.Fatalf("forged first call was not asked: %+v", res)
	}
	state := res.RequestState

	cases := []struct {
		name  string
		state string
		p     safety.Principal
		args  string
	}{
		{"tampered", state[:len(state)-2] + "xx", operator, `{"vmid":101}`},
		{"garbage", "not-a-state", operator, `{"vmid":101}`},
		{"other principal", state, safety.Principal{ID: "operator:other", Kind: safety.Operator, MaxTier: safety.Red}, `{"vmid":101}`},
		{"other arguments", state, operator, `{"vmid":102}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := h.srv.Dispatch(ctx, Call{Principal: c.p, Tool: "stop_vm", Args: json.RawMessage(c.args), Elicitation: true, RequestState: c.state, Confirm: accept})
			if r := refusalOf(t, res); r.Decision != safety.Denied {
				t.Fatalf("%s: %+v", c.name, r)
			}
		})
	}
	// The genuine state works once; a replay is refused.
	res = h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "stop_vm", Args: args, Elicitation: true, RequestState: state, Confirm: accept})
	if res.IsError {
		t.Fatalf("genuine state refused: %s", textOf(res))
	}
	_ = h.sim.SetGuestStatus(101, "running")
	res = h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "stop_vm", Args: args, Elicitation: true, RequestState: state, Confirm: accept})
	if r := refusalOf(t, res); r.Decision != safety.Denied {
		t.Fatalf("replayed state: %+v", r)
	}
	// Another process with the same secret and database (a fresh Confirmer
	// remembers nothing) refuses the replay too.
	h.srv.opts.Confirmer = safety.NewConfirmer(safety.DeriveKey("test-secret-test-secret-test-secret", "confirmation-state"), time.Minute)
	res = h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "stop_vm", Args: args, Elicitation: true, RequestState: state, Confirm: accept})
	if r := refusalOf(t, res); r.Decision != safety.Denied {
		t.Fatalf("state replayed to another process: %+v", r)
	}
	if n := h.executions("stop_vm"); n != 1 {
		t.Fatalf("stop_vm executed %d times, want 1", n)
	}
}

func TestCeilingHidesTools(t *testing.T) {
	h := newHarness(t)
	green := safety.Principal{ID: "agent:reader", Kind: safety.Agent, MaxTier: safety.Green}
	cs := h.connect(green, nil)
	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if !tl.Annotations.ReadOnlyHint {
			t.Errorf("green caller sees %s", tl.Name)
		}
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
	if err != nil {
		t.Fatalf("calling a hidden tool must be a refusal, not a protocol error: %v", err)
	}
	if r := refusalOf(t, res); r.Decision != safety.Blocked {
		t.Fatalf("hidden tool: %+v", r)
	}
}

func TestInterruptedCallsAreMarkedAtStart(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id, err := h.store.AuditBegin(ctx, h.srv.auditEntry(Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)}, safety.Red, "approved", "plan", ""))
	if err != nil {
		t.Fatal(err)
	}
	sub := h.store.Subscribe(10)
	defer sub.Close()
	// A call that may still be running elsewhere is left alone…
	if err := h.srv.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, _ := h.store.AuditRecent(ctx, 1); rows[0].Kind != "begin" {
		t.Fatal("a call younger than the execution deadline was marked interrupted")
	}
	// …one older than any call may run is marked. Ages are by the store's
	// clock (the database's on PostgreSQL), so make the longest a call may
	// run shorter than its age instead of moving the server's clock.
	h.srv.opts.ExecTimeout = -2 * time.Minute
	if err := h.srv.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.C():
		if ev.Type != "alert" || !strings.Contains(ev.Summary, "interrupted") {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert for the interrupted call")
	}
	rows, _ := h.store.AuditRecent(ctx, 10)
	found := false
	for _, r := range rows {
		found = found || (r.Kind == "end" && r.BeginID == id && r.Status == "interrupted")
	}
	if !found {
		t.Fatal("begun call not marked interrupted")
	}
}

func TestSecretsNeverReachTheAuditLog(t *testing.T) {
	h := newHarness(t)
	h.call(agentRed, "get_cluster_status", map[string]any{"password": "hunter2-hunter2"})
	rows, _ := h.store.AuditRecent(context.Background(), 10)
	for _, r := range rows {
		if strings.Contains(r.Args, "hunter2") {
			t.Fatalf("secret in audit row: %s", r.Args)
		}
	}
}

func TestLongCallsReportProgress(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var got []string
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(operator, &operator).Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "progress", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			got = append(got, req.Params.Message)
			mu.Unlock()
		},
	}).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "create_snapshot", Arguments: map[string]any{"vmid": 102, "name": "progress1"}}
	params.SetProgressToken("p-1")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("create_snapshot: %v %s", err, textOf(res))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no progress notification for a task wait")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(got[0], "qmsnapshot") {
		t.Errorf("progress message %q", got[0])
	}
}

func TestNoAuditRowNoCall(t *testing.T) {
	h := newHarness(t)
	h.store.Close()
	res := h.call(operator, "get_cluster_status", nil)
	if !res.IsError || !strings.Contains(textOf(res), "audit log could not be written") {
		t.Fatalf("a call ran without an audit row: %s", textOf(res))
	}
	res = h.call(operator, "stop_vm", map[string]any{"vmid": 101})
	if !res.IsError || h.guestStatus(101) != "running" {
		t.Fatal("a RED call ran without the store")
	}
}

// A GREEN read is recorded in one audit row, committed before the caller gets
// the answer, and announced by one event; a changing call keeps its begin row
// before it runs and its end row after.
func TestReadIsOneRowAndOneEvent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sub := h.store.Subscribe(16)
	defer sub.Close()
	if res := h.call(agentRed, "get_vms", nil); res.IsError {
		t.Fatal(textOf(res))
	}
	rows, err := h.store.AuditRecent(ctx, 10)
	if err != nil || len(rows) != 1 || rows[0].Kind != "read" || rows[0].Tool != "get_vms" || rows[0].Status != store.OutcomeOK || rows[0].Principal != agentRed.ID {
		t.Fatalf("audit after one read: %+v %v", rows, err)
	}
	ev := <-sub.C()
	var d store.ToolDetails
	if err := json.Unmarshal(ev.Details, &d); err != nil || d.Phase != store.ToolEnded || d.Tool != "get_vms" || d.Outcome != store.OutcomeOK {
		t.Fatalf("event %+v: %v", d, err)
	}
	select {
	case ev := <-sub.C():
		t.Fatalf("a second event for one read: %s", ev.Summary)
	default:
	}

	if res := h.call(agentRed, "create_snapshot", map[string]any{"vmid": 102, "name": "one"}); res.IsError {
		t.Fatal(textOf(res))
	}
	rows, _ = h.store.AuditRecent(ctx, 10)
	if len(rows) != 3 || rows[0].Kind != "end" || rows[1].Kind != "begin" || rows[0].BeginID != rows[1].ID {
		t.Fatalf("a changing call is not a begin and an end row: %+v", rows)
	}
}

func TestApprovalIsRefusedWhenItsTargetChanged(t *testing.T) {
	h := newHarness(t)
	first := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 102}))
	if _, err := h.srv.DecideApproval(context.Background(), first.ApprovalID, true, "operator"); err != nil {
		t.Fatal(err)
	}
	// VMID 102 now names another guest than the one the person approved stopping.
	if err := h.sim.RenameGuest(102, "restored-db"); err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 102, "approval_id": first.ApprovalID}))
	if r.Decision != safety.Denied || !strings.Contains(r.Reason, "changed") {
		t.Fatalf("changed target: %+v", r)
	}
	if h.guestStatus(102) != "running" {
		t.Fatal("the changed guest was stopped")
	}
}

func TestALoopingAgentIsRateLimited(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Limiter = safety.NewRateLimiter(safety.RateLimits{Yellow: 1.0 / 60, YellowBurst: 2, Red: 1.0 / 60, RedBurst: 1})
	})
	for i, want := range []bool{true, true, false} {
		res := h.call(agentRed, "create_snapshot", map[string]any{"vmid": 101, "name": fmt.Sprintf("loop%d", i)})
		if ok := !res.IsError; ok != want {
			t.Fatalf("call %d: ok=%t, want %t (%s)", i, ok, want, textOf(res))
		}
		if !want {
			if r := refusalOf(t, res); r.Decision != safety.RateLimited || !strings.Contains(r.Reason, "try again in") {
				t.Fatalf("refusal: %+v", r)
			}
		}
	}
	// Another principal has its own bucket; reads are never limited.
	other := safety.Principal{ID: "agent:other", Kind: safety.Agent, MaxTier: safety.Red}
	if res := h.call(other, "create_snapshot", map[string]any{"vmid": 101, "name": "other1"}); res.IsError {
		t.Fatalf("other principal: %s", textOf(res))
	}
	for range 20 {
		if res := h.call(agentRed, "get_cluster_status", nil); res.IsError {
			t.Fatal("a read was rate-limited")
		}
	}
}

func TestConfirmationIsBoundToThePlanTheUserSaw(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	args := json.RawMessage(`{"vmid":101}`)
	res := h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "stop_vm", Args: args, Elicitation: true})
	if res.RequestState == "" {
		t.Fatalf("not asked: %+v", res)
	}
	if err := h.sim.RenameGuest(101, "someone-else"); err != nil {
		t.Fatal(err)
	}
	accept := &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}
	res = h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "stop_vm", Args: args, Elicitation: true, RequestState: res.RequestState, Confirm: accept})
	if r := refusalOf(t, res); r.Decision != safety.Denied {
		t.Fatalf("answer for another target: %+v", r)
	}
	if h.guestStatus(101) != "running" {
		t.Fatal("the renamed guest was stopped")
	}
}
