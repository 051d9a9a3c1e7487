package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
)

const console = "https://jarvis.example/"

func event(severity, summary string, d store.EventDetails) store.Event {
	return store.Event{ID: 42, Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Type: d.Kind(), Severity: severity,
		Summary: summary, Details: store.EncodeDetails(d)}
}

func TestNoticeForEachEvent(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	apr := "apr_0123456789abcdef"
	for _, tc := range []struct {
		name     string
		ev       store.Event
		kind     string
		priority Priority
		title    string   // contained in the title
		body     []string // each contained in the body
		url      string
		key      string
	}{
		{"approval requested", event(store.SeverityWarning, "approval requested", store.ApprovalDetails{Phase: store.ApprovalRequested,
			ApprovalID: apr, Principal: "agent:claude/tok_1", Tool: "stop_vm", Tier: "red", Plan: "Hard stop of VM 101 'web01'",
			ExpiresAt: at.Add(10 * time.Minute)}),
			"approval.requested", PriorityHigh, "Approval needed: stop_vm",
			[]string{"agent:claude/tok_1 asks to run stop_vm (RED)", "Plan: Hard stop of VM 101 'web01'", "(in 10m)"},
			console + "#approval/" + apr, "approval:" + apr},
		{"approval approved", event(store.SeverityInfo, "approved", store.ApprovalDetails{Phase: store.ApprovalApproved,
			ApprovalID: apr, Principal: "agent:a", Tool: "stop_vm", Actor: "operator", Plan: "stop"}),
			"approval.approved", PriorityDefault, "Approved: stop_vm", []string{"operator approved stop_vm for agent:a"},
			console + "#approval/" + apr, "approval:" + apr},
		{"approval denied", event(store.SeverityInfo, "denied", store.ApprovalDetails{Phase: store.ApprovalDenied,
			ApprovalID: apr, Principal: "agent:a", Tool: "stop_vm", Actor: "operator:cli", Plan: "stop"}),
			"approval.denied", PriorityDefault, "Denied: stop_vm", []string{"operator:cli denied"}, console + "#approval/" + apr, "approval:" + apr},
		{"approval expired", event(store.SeverityInfo, "expired", store.ApprovalDetails{Phase: store.ApprovalExpired,
			ApprovalID: apr, Principal: "agent:a", Tool: "stop_vm", Actor: store.Jarvis, Plan: "stop"}),
			"approval.expired", PriorityLow, "Expired: stop_vm", []string{"must ask again"}, console + "#approval/" + apr, "approval:" + apr},
		{"a malformed approval id links to the console only", event(store.SeverityWarning, "x", store.ApprovalDetails{
			Phase: store.ApprovalRequested, ApprovalID: "../../evil", Tool: "stop_vm"}),
			"approval.requested", PriorityHigh, "Approval needed", nil, console, "approval:../../evil"},
		{"alert raised, warning", event(store.SeverityWarning, "storage local on pve1 is 93.2 % full", store.AlertDetails{
			Key: "storage-full:pve1/local", State: store.AlertRaised}),
			"alert.raised", PriorityHigh, "Alert: storage local on pve1 is 93.2 % full", []string{"93.2 % full"}, console, "alert:storage-full:pve1/local"},
		{"alert raised, critical, about a guest", event(store.SeverityCritical, "VM 101 stopped unexpectedly", store.AlertDetails{
			Key: "guest-stopped:101", State: store.AlertRaised, VMID: 101}),
			"alert.raised", PriorityUrgent, "Alert: VM 101", nil, console + "#/guest/101", "alert:guest-stopped:101"},
		{"alert resolved", event(store.SeverityInfo, "storage local on pve1 back below 90 %", store.AlertDetails{
			Key: "storage-full:pve1/local", State: store.AlertResolved, AlertID: 7}),
			"alert.resolved", PriorityLow, "Resolved: storage local", nil, console, "alert:storage-full:pve1/local"},
		{"interrupted call", event(store.SeverityWarning, "call interrupted", store.AlertDetails{InterruptedCall: &store.InterruptedCall{
			AuditID: 9, Principal: "agent:a", Tool: "migrate_guest", Plan: "Migrate VM 101 to pve2", Began: at}}),
			"alert.raised", PriorityHigh, "Interrupted call: migrate_guest", []string{"may or may not have taken effect", "Migrate VM 101 to pve2"},
			console + "#/audit", "alert:interrupted:9"},
		{"tool outcome unknown", event(store.SeverityWarning, "ended", store.ToolDetails{Phase: store.ToolEnded, Principal: "agent:a",
			Tool: "stop_vm", Outcome: store.OutcomeUnknown, Plan: "Hard stop of VM 101",
			Reason: "outcome unknown: no answer. Before retrying, check get_task_status"}),
			"tool.unknown", PriorityHigh, "Outcome unknown: stop_vm",
			[]string{"may or may not have happened; check", "Before retrying, check get_task_status", "Plan: Hard stop of VM 101"},
			console + "#/audit", ""},
		{"kill switch on", event(store.SeverityWarning, "on", store.SafetyDetails{Switch: "safety.kill_switch", On: true, By: "operator"}),
			"safety.on", PriorityHigh, "Kill switch ON", []string{"operator turned the kill switch on"}, console, "safety:safety.kill_switch"},
		{"read-only off", event(store.SeverityInfo, "off", store.SafetyDetails{Switch: "safety.read_only", On: false, By: "operator:cli"}),
			"safety.off", PriorityHigh, "Read-only mode off", []string{"operator:cli turned the read-only mode off"}, console, "safety:safety.read_only"},
		{"dependency failing", event(store.SeverityCritical, "cannot read", store.DependencyDetails{Dependency: store.DependencyPVE,
			State: store.DependencyFailing, Error: "no node answers", Fix: "check JARVIS_NODES", Since: at}),
			"system.failing", PriorityHigh, "Jarvis cannot use the Proxmox cluster", []string{"no node answers.", "Fix: check JARVIS_NODES"},
			console, "dependency:pve_api"},
		{"dependency recovered", event(store.SeverityInfo, "back", store.DependencyDetails{Dependency: store.DependencyPVE,
			State: store.DependencyRecovered, Since: at}),
			"system.recovered", PriorityDefault, "The Proxmox cluster works again", nil, console, "dependency:pve_api"},
		{"rule used", event(store.SeverityInfo, "used", store.RuleDetails{Phase: store.RuleUsed, RuleID: "r_1", Version: 2,
			Principal: "agent:a", Tool: "start_vm", Target: "guest/101", Outcome: "ok", UsesLeft: 3, Plan: "Start VM 101"}),
			"rule.used", PriorityDefault, "Rule used: start_vm on guest/101",
			[]string{"under standing approval r_1/v2: ok", "3 more allowed this hour for guest/101"}, console, ""},
		{"rule exhausted", event(store.SeverityWarning, "exhausted", store.RuleDetails{Phase: store.RuleExhausted, RuleID: "r_1", Version: 2,
			Principal: "agent:a", Tool: "start_vm", Target: "guest/101"}),
			"rule.exhausted", PriorityHigh, "Rule exhausted: start_vm on guest/101", []string{"is exhausted for guest/101 this hour", "waits for a person"},
			console, "rule-exhausted:r_1:guest/101"},
		{"rule stopped", event(store.SeverityWarning, "stopped", store.RuleDetails{Phase: store.RuleStopped, RuleID: "r_1", Version: 2,
			Principal: "agent:a", Tool: "start_vm", Reason: "3 calls in a row failed"}),
			"rule.stopped", PriorityHigh, "Rule stopped: r_1/v2", []string{"3 calls in a row failed"}, console, "rule-stopped:r_1/v2"},
		{"rule created", event(store.SeverityInfo, "created", store.RuleDetails{Phase: store.RuleCreated, RuleID: "r_1", Version: 1,
			Principal: "agent:a", Tool: "start_vm", Actor: "operator"}),
			"rule.created", PriorityLow, "Rule created: r_1/v1", []string{"operator created standing approval r_1/v1"}, console, ""},
		{"rule revoked", event(store.SeverityInfo, "revoked", store.RuleDetails{Phase: store.RuleRevoked, RuleID: "r_1", Version: 3,
			Principal: "agent:a", Tool: "start_vm", Actor: "operator"}),
			"rule.revoked", PriorityLow, "Rule revoked: r_1/v3", nil, console, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := noticeFor(tc.ev, console)
			if !ok {
				t.Fatal("no message")
			}
			if n.Kind != tc.kind || n.Priority != tc.priority || n.URL != tc.url || n.key != tc.key {
				t.Errorf("kind %q priority %v url %q key %q; want %q %v %q %q", n.Kind, n.Priority, n.URL, n.key, tc.kind, tc.priority, tc.url, tc.key)
			}
			if !strings.Contains(n.Title, tc.title) {
				t.Errorf("title %q does not contain %q", n.Title, tc.title)
			}
			for _, want := range tc.body {
				if !strings.Contains(n.Body, want) {
					t.Errorf("body does not contain %q:\n%s", want, n.Body)
				}
			}
			if n.ID != "event-42" || n.EventID != 42 || !n.Time.Equal(tc.ev.Time) || len(n.Tags) == 0 {
				t.Errorf("id %q event %d time %v tags %v", n.ID, n.EventID, n.Time, n.Tags)
			}
		})
	}
}

func TestNoticeForSkipsWhatIsNoNews(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   store.Event
	}{
		{"cluster snapshot", event(store.SeverityInfo, "cluster nodes snapshot", store.ClusterDetails{What: store.ClusterNodes, Nodes: []store.NodeSnapshot{}})},
		{"tool begun", event(store.SeverityInfo, "begun", store.ToolDetails{Phase: store.ToolBegun, Tool: "stop_vm"})},
		{"tool ended ok", event(store.SeverityInfo, "ok", store.ToolDetails{Phase: store.ToolEnded, Tool: "stop_vm", Outcome: store.OutcomeOK})},
		{"tool failed", event(store.SeverityWarning, "failed", store.ToolDetails{Phase: store.ToolEnded, Tool: "stop_vm", Outcome: store.OutcomeFailed})},
		{"tool refused", event(store.SeverityWarning, "refused", store.ToolDetails{Phase: store.ToolRefused, Tool: "stop_vm", Outcome: store.OutcomeUnknown})},
		{"approval consumed", event(store.SeverityInfo, "consumed", store.ApprovalDetails{Phase: "consumed", ApprovalID: "apr_0123456789abcdef"})},
		{"audit checkpoint", event(store.SeverityInfo, "checkpoint", store.SystemDetails{Row: 32, Hash: "ab"})},
		{"start notice", store.Event{ID: 1, Type: store.EventSystem, Summary: "Jarvis started"}},
		{"rule of an unknown phase", event(store.SeverityInfo, "x", store.RuleDetails{Phase: "renamed", RuleID: "r_1"})},
		{"safety details of another shape", store.Event{ID: 1, Type: store.EventSafety, Summary: "x", Details: json.RawMessage(`"on"`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, ok := noticeFor(tc.ev, console); ok {
				t.Errorf("notified: %+v", n.Message)
			}
		})
	}
}

// An operator may post an alert with any details, or none: it is still an alert.
func TestNoticeForOperatorAlertWithoutDetails(t *testing.T) {
	n, ok := noticeFor(store.Event{ID: 3, Type: store.EventAlert, Severity: store.SeverityCritical, Summary: "UPS on battery"}, console)
	if !ok || n.Kind != "alert.raised" || n.Priority != PriorityUrgent || n.key != "alert:UPS on battery" {
		t.Fatalf("got %v %+v", ok, n)
	}
}

func TestCleanedRedactsAndBounds(t *testing.T) {
	m := Message{
		Title: "line one\nline two\x1b[2K\u202e" + strings.Repeat("x", 300),
		Body:  "mysql --password=hunter2 -e 'select 1'\nget https://files.example/a?token=abc123secret&x=1\nvia https://admin:s3cr3t@host/\nPASSWORD=swordfish " + strings.Repeat("y", 3000),
		Tags:  []string{"ok", "a,b", "  "},
	}.cleaned()
	for _, secret := range []string{"hunter2", "abc123secret", "s3cr3t", "swordfish"} {
		if strings.Contains(m.Title+m.Body, secret) {
			t.Errorf("%q survived: %s", secret, m.Body[:200])
		}
	}
	if strings.ContainsAny(m.Title, "\n\x1b\u202e") || strings.ContainsRune(m.Body, '\x1b') {
		t.Errorf("control characters survived: %q", m.Title)
	}
	if n := len([]rune(m.Title)); n > maxTitle {
		t.Errorf("title has %d runes", n)
	}
	if n := len([]rune(m.Body)); n > maxBody {
		t.Errorf("body has %d runes", n)
	}
	if len(m.Tags) != 1 || m.Tags[0] != "ok" {
		t.Errorf("tags %q", m.Tags)
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30s", 10*time.Minute - 20*time.Millisecond: "10m", 90 * time.Minute: "1h30m",
		2 * time.Hour: "2h", -time.Second: "0s",
	} {
		if got := span(d); got != want {
			t.Errorf("span(%v) = %q, want %q", d, got, want)
		}
	}
}
