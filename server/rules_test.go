package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// ruleAgent is an agent with a live token, so rules can name it.
func ruleAgent(t *testing.T, h *harness) safety.Principal {
	t.Helper()
	if err := h.store.CreateToken(context.Background(), &store.AgentToken{ID: "tok1", Name: "night", MaxTier: "red", TokenHash: "h1"}); err != nil {
		t.Fatal(err)
	}
	return safety.Principal{ID: "agent:night/tok1", Kind: safety.Agent, MaxTier: safety.Red}
}

// raiseAlert publishes an open alert as the watcher does (source "poller").
func raiseAlert(t *testing.T, h *harness, source, kind string, vmid int64) uint64 {
	t.Helper()
	ev := &store.Event{Type: store.EventAlert, Severity: store.SeverityWarning, Source: source, Node: "pve",
		Summary: "guest stopped unexpectedly", Details: store.EncodeDetails(store.AlertDetails{Key: "guest-crashed:x", State: store.AlertRaised,
			AlertKind: kind, Subject: store.GuestSubject(vmid), VMID: vmid})}
	if err := h.store.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

func resolveAlert(t *testing.T, h *harness, id uint64) {
	t.Helper()
	if _, err := h.store.ResolveEvent(context.Background(), id, store.Jarvis); err != nil {
		t.Fatal(err)
	}
}

// ruleEvents returns the phases of the rule events published so far.
func ruleEvents(t *testing.T, h *harness) []string {
	t.Helper()
	evs, err := h.store.ListEvents(context.Background(), store.EventFilter{Type: store.EventRule, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		var d store.RuleDetails
		_ = json.Unmarshal(evs[i].Details, &d)
		out = append(out, d.Phase)
	}
	return out
}

// The scenario of the issue, in one process: a rule lets an agent start VM 101
// while a crash alert is open for it, twice per hour; the third start, a call
// for VM 102, a call without the alert, a call after revocation and a call
// under the kill switch all need a person (or are refused).
func TestStandingApprovalRunsWithinItsBudgetOnly(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	agent := ruleAgent(t, h)
	rule, err := h.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "start_vm", Args: map[string][]string{"vmid": {"101"}},
		Trigger: store.AlertGuestStoppedUnexpectedly, PerTargetPerHour: 2, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator")
	if err != nil {
		t.Fatal(err)
	}
	if rule.Principal != agent.ID {
		t.Fatalf("the rule names %q, want the token's principal %q", rule.Principal, agent.ID)
	}
	crash := func(vmid int) {
		t.Helper()
		if err := h.sim.SetGuestStatus(vmid, "stopped"); err != nil {
			t.Fatal(err)
		}
	}
	start := func(vmid int) *mcp.CallToolResult {
		t.Helper()
		return h.call(agent, "start_vm", map[string]any{"vmid": vmid})
	}

	// Stopped, but no crash alert is open: a person must approve.
	crash(101)
	r := refusalOf(t, start(101))
	if r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, "none is") {
		t.Fatalf("without the alert: %+v", r)
	}
	// An alert that is not the watcher's (posted through the operator API) does not count.
	raiseAlert(t, h, "operator", store.AlertGuestStoppedUnexpectedly, 101)
	if r := refusalOf(t, start(101)); r.Decision != safety.NeedsApproval {
		t.Fatalf("with a posted alert: %+v", r)
	}

	for i := 1; i <= 2; i++ {
		alert := raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 101)
		// The agent sees the alert with the rule that covers it.
		list := structured[tools.AlertList](t, h.call(agent, "list_alerts", map[string]any{}))
		var found *tools.OpenAlert
		for j := range list.Alerts {
			if list.Alerts[j].ID == alert {
				found = &list.Alerts[j]
			}
		}
		if found == nil || len(found.Rules) != 1 || found.Rules[0].Rule != rule.Ref() || found.Rules[0].UsesLeft != 3-i {
			t.Fatalf("start %d: list_alerts = %+v", i, list)
		}
		if res := start(101); res.IsError {
			t.Fatalf("start %d under the rule: %s", i, textOf(res))
		}
		if got := h.guestStatus(101); got != "running" {
			t.Fatalf("start %d: VM 101 is %s", i, got)
		}
		resolveAlert(t, h, alert)
		crash(101)
	}
	rows, err := h.store.AuditRecent(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	ruled := 0
	for _, row := range rows {
		if row.Tool == "start_vm" && row.Decision == DecisionRule && row.ApprovalID == "rule:"+rule.Ref() && row.Status == store.OutcomeOK {
			ruled++
		}
	}
	if ruled != 2 {
		t.Fatalf("audit rows naming the rule with outcome ok: %d, want 2", ruled)
	}

	// The third within the hour: a person must approve, and the rule says it is exhausted.
	raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 101)
	r = refusalOf(t, start(101))
	if r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, "spent") {
		t.Fatalf("third start: %+v", r)
	}
	if got := ruleEvents(t, h); strings.Join(got, ",") != "created,used,used,exhausted" {
		t.Fatalf("rule events %v", got)
	}

	// VM 102 is outside the rule even with its own crash alert.
	crash(102)
	raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 102)
	if r := refusalOf(t, start(102)); r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, "only as 101") {
		t.Fatalf("VM 102: %+v", r)
	}

	// A rule for 102: the kill switch refuses it at once, revocation too.
	r102, err := h.srv.CreateRule(ctx, store.Rule{Principal: "tok1", Tool: "start_vm", Args: map[string][]string{"vmid": {"102"}},
		PerTargetPerHour: 5, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.SetSwitch(ctx, PrefKillSwitch, true, "operator"); err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, start(102)); r.Decision != safety.KillSwitch {
		t.Fatalf("kill switch on: %+v", r)
	}
	if err := h.srv.SetSwitch(ctx, PrefKillSwitch, false, "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.RevokeRule(ctx, r102.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, start(102)); r.Decision != safety.NeedsApproval {
		t.Fatalf("after revocation: %+v", r)
	}
	if got := h.guestStatus(102); got != "stopped" {
		t.Fatalf("VM 102 is %s; nothing may have started it", got)
	}
}

// A protected guest and a BLACK call stay refused whatever a rule says, and
// a rule stops after failures in a row.
func TestStandingApprovalNeverOverridesAndStopsAfterFailures(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	agent := ruleAgent(t, h)
	if _, err := h.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "stop_vm", Args: map[string][]string{"vmid": {"*"}},
		PerTargetPerHour: 10, MaxFailures: 2, ExpiresAt: time.Now().Add(time.Hour)}, "operator"); err != nil {
		t.Fatal(err)
	}
	// VM 103 is protected.
	if r := refusalOf(t, h.call(agent, "stop_vm", map[string]any{"vmid": 103})); r.Decision != safety.Protected {
		t.Fatalf("protected VM: %+v", r)
	}
	// Two failures in a row stop the rule.
	for i := 0; i < 2; i++ {
		h.sim.FailNext("/nodes/pve/qemu/101/status/stop", 500, "simulated failure")
		res := h.call(agent, "stop_vm", map[string]any{"vmid": 101})
		if !res.IsError || strings.Contains(textOf(res), "approve") {
			t.Fatalf("failure %d: want the call to run and fail, got %s", i+1, textOf(res))
		}
	}
	r := refusalOf(t, h.call(agent, "stop_vm", map[string]any{"vmid": 101}))
	if r.Decision != safety.NeedsApproval || !strings.Contains(r.Reason, "stopped after 2") {
		t.Fatalf("after two failures: %+v", r)
	}
	views, err := h.srv.Rules(ctx, false)
	if err != nil || len(views) != 1 || views[0].Status != RuleStopped {
		t.Fatalf("rule views %+v, %v", views, err)
	}

	// Bad rules are refused with what to fix.
	for _, bad := range []store.Rule{
		{Principal: "night", Tool: "list_snapshots", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "no_such_tool", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "nobody", Tool: "stop_vm", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "stop_vm", Args: map[string][]string{"colour": {"red"}}, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "stop_vm", Trigger: "moon_phase", PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "execute_ssh", Args: map[string][]string{"node": {"pve"}, "command": {"*"}}, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		// Triggers about something the tool's calls never act on could never be open.
		{Principal: "night", Tool: "execute_ssh", Args: map[string][]string{"node": {"pve"}, "command": {"systemctl restart nginx"}},
			Trigger: store.AlertServiceFailed, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "stop_vm", Trigger: store.AlertStorageFull, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "restart_service", Trigger: store.AlertGuestStoppedUnexpectedly, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
		{Principal: "night", Tool: "wake_node", Trigger: store.AlertServiceFailed, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)},
	} {
		if _, err := h.srv.CreateRule(ctx, bad, "operator"); err == nil {
			t.Errorf("rule %+v was accepted", bad)
		}
	}
}

// jarvis://alerts can be read and subscribed to; a raised alert tells the
// subscriber, and the remediate_alert prompt names the rule to use.
func TestAlertsResourceSubscriptionAndPrompt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHarness(t)
	go h.srv.RunAlertUpdates(ctx)
	agent := ruleAgent(t, h)
	if _, err := h.srv.CreateRule(ctx, store.Rule{Principal: "night", Tool: "start_vm", Args: map[string][]string{"vmid": {"101", "102"}},
		Trigger: store.AlertGuestStoppedUnexpectedly, PerTargetPerHour: 3, MaxFailures: 3, ExpiresAt: time.Now().Add(time.Hour)}, "operator"); err != nil {
		t.Fatal(err)
	}
	updated := make(chan string, 16)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(agent, &agent).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "watcher-agent", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) { updated <- req.Params.URI },
	}).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: AlertsURI}); err != nil {
		t.Fatal(err)
	}
	// On the newest protocol revision the subscription is a long-lived
	// listen request, so it reaches the server a moment later.
	waitFor(t, "one subscriber", func() bool { return h.srv.AlertSubscribers() == 1 })
	// Another session that never subscribed cannot unsubscribe someone else,
	// and one that subscribed and went away without a word stops counting.
	second := h.connect(agent, nil)
	for range 3 {
		_ = second.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: AlertsURI})
	}
	if err := second.Subscribe(ctx, &mcp.SubscribeParams{URI: AlertsURI}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two subscribers", func() bool { return h.srv.AlertSubscribers() == 2 })
	second.Close()
	waitFor(t, "the closed session to stop counting", func() bool { return h.srv.AlertSubscribers() == 1 })
	// Drain the notice of the rule's creation, if it raced ahead.
	for len(updated) > 0 {
		<-updated
	}
	id := raiseAlert(t, h, watcherSource, store.AlertGuestStoppedUnexpectedly, 102)
	select {
	case uri := <-updated:
		if uri != AlertsURI {
			t.Fatalf("updated %q", uri)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notifications/resources/updated after an alert was raised")
	}
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: AlertsURI})
	if err != nil {
		t.Fatal(err)
	}
	var list tools.AlertList
	if err := json.Unmarshal([]byte(res.Contents[0].Text), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Alerts) != 1 || list.Alerts[0].ID != id || list.Alerts[0].Subject != "guest/102" || len(list.Alerts[0].Rules) != 1 {
		t.Fatalf("alerts %+v", list)
	}
	prompt, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "remediate_alert", Arguments: map[string]string{"alert_id": jsonNumber(id)}})
	if err != nil {
		t.Fatal(err)
	}
	text := prompt.Messages[0].Content.(*mcp.TextContent).Text
	if !strings.Contains(text, `call start_vm with exactly {"vmid":102}`) {
		t.Fatalf("prompt does not name the call the rule allows:\n%s", text)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "remediate_alert", Arguments: map[string]string{"alert_id": "999999"}}); err == nil {
		t.Fatal("a prompt for an alert that is not open must fail")
	}
	// Another caller sees the alert but no rule.
	other := structured[tools.AlertList](t, h.call(agentRed, "list_alerts", map[string]any{}))
	if len(other.Alerts) != 1 || len(other.Alerts[0].Rules) != 0 {
		t.Fatalf("another agent's view %+v", other)
	}
	if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: AlertsURI}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "no subscriber after unsubscribing", func() bool { return h.srv.AlertSubscribers() == 0 })
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func jsonNumber(id uint64) string { b, _ := json.Marshal(id); return string(b) }
