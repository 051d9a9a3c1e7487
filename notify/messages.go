package notify

// Which events become messages, and what they say. Only the fields named here
// are read; audit arguments never are. Everything else on the feed — cluster
// snapshots, tool calls begun, ended ok or failed, or refused, consumed
// approvals, audit checkpoints, start and stop — is not news for a phone.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
)

// notice is a message and what makes it a repeat: a notice whose key was sent
// with the same state within the dedup window is not sent again (an alert
// raised twice); a new state is (the alert resolved). An empty key never repeats.
type notice struct {
	Message
	key, state string
}

// noticeFor is the message ev makes, if any. console is the console's
// address; links point into it.
func noticeFor(ev store.Event, console string) (notice, bool) {
	var n notice
	var ok bool
	switch ev.Type {
	case store.EventApproval:
		n, ok = approvalNotice(ev, console)
	case store.EventAlert:
		n, ok = alertNotice(ev, console)
	case store.EventTool:
		n, ok = toolNotice(ev, console)
	case store.EventSafety:
		n, ok = safetyNotice(ev, console)
	case store.EventSystem:
		n, ok = systemNotice(ev, console)
	case store.EventRule:
		n, ok = ruleNotice(ev, console)
	}
	if !ok {
		return notice{}, false
	}
	n.ID = "event-" + strconv.FormatUint(ev.ID, 10)
	n.EventID = ev.ID
	n.Time = ev.Time
	n.Message = n.cleaned()
	return n, true
}

// decode reads ev's details into d; details of an unexpected shape (an
// operator may post any) read as none.
func decode(ev store.Event, d any) bool {
	return len(ev.Details) > 0 && json.Unmarshal(ev.Details, d) == nil
}

func approvalNotice(ev store.Event, console string) (notice, bool) {
	var d store.ApprovalDetails
	if !decode(ev, &d) {
		return notice{}, false
	}
	n := notice{key: "approval:" + d.ApprovalID, state: d.Phase}
	n.URL = link(console, "")
	if store.IsApprovalID(d.ApprovalID) {
		n.URL = link(console, "approval/"+d.ApprovalID)
	}
	who, plan := field(d.Principal), field(d.Plan)
	switch d.Phase {
	case store.ApprovalRequested:
		n.Kind, n.Priority, n.Tags = "approval.requested", PriorityHigh, []string{"question", "approval"}
		n.Title = "Approval needed: " + d.Tool
		n.Body = fmt.Sprintf("%s asks to run %s (%s).\nPlan: %s", who, d.Tool, strings.ToUpper(d.Tier), plan)
		if !d.ExpiresAt.IsZero() {
			n.Body += fmt.Sprintf("\nExpires %s (in %s). Approve or deny in the console.", clock(d.ExpiresAt), span(d.ExpiresAt.Sub(ev.Time)))
		}
	case store.ApprovalApproved:
		n.Kind, n.Priority, n.Tags = "approval.approved", PriorityDefault, []string{"white_check_mark", "approval"}
		n.Title = "Approved: " + d.Tool
		n.Body = fmt.Sprintf("%s approved %s for %s.\nPlan: %s", field(d.Actor), d.Tool, who, plan)
	case store.ApprovalDenied:
		n.Kind, n.Priority, n.Tags = "approval.denied", PriorityDefault, []string{"x", "approval"}
		n.Title = "Denied: " + d.Tool
		n.Body = fmt.Sprintf("%s denied %s for %s.\nPlan: %s", field(d.Actor), d.Tool, who, plan)
	case store.ApprovalExpired:
		n.Kind, n.Priority, n.Tags = "approval.expired", PriorityLow, []string{"hourglass", "approval"}
		n.Title = "Expired: " + d.Tool
		n.Body = fmt.Sprintf("Nobody decided on %s's request for %s in time; it expired, and %s must ask again.\nPlan: %s", who, d.Tool, who, plan)
	default: // consumed: the agent used what a person approved; nothing new
		return notice{}, false
	}
	return n, true
}

func alertNotice(ev store.Event, console string) (notice, bool) {
	var d store.AlertDetails
	decode(ev, &d) // an operator's alert may carry no details
	if c := d.InterruptedCall; c != nil {
		n := notice{key: fmt.Sprintf("alert:interrupted:%d", c.AuditID), state: store.AlertRaised}
		n.Kind, n.Priority, n.Tags, n.URL = "alert.raised", severityPriority(ev.Severity), []string{"warning", "alert"}, link(console, "/audit")
		n.Title = "Interrupted call: " + c.Tool
		n.Body = fmt.Sprintf("%s's call %s (begun %s) was cut short: Jarvis stopped while it ran. It may or may not have taken effect; check the cluster before trying again.\nPlan: %s",
			field(c.Principal), c.Tool, clock(c.Began), field(c.Plan))
		return n, true
	}
	key := d.Key
	if key == "" {
		key = ev.Summary
	}
	n := notice{key: "alert:" + key}
	n.URL = link(console, "")
	if d.VMID > 0 {
		n.URL = link(console, fmt.Sprintf("/guest/%d", d.VMID))
	}
	where := ""
	if ev.Node != "" {
		where = " (node " + ev.Node + ")"
	}
	if d.State == store.AlertResolved {
		n.state, n.Kind, n.Priority, n.Tags = store.AlertResolved, "alert.resolved", PriorityLow, []string{"white_check_mark", "alert"}
		n.Title = "Resolved: " + ev.Summary
		n.Body = fmt.Sprintf("%s%s, at %s.", ev.Summary, where, clock(ev.Time))
		return n, true
	}
	n.state, n.Kind, n.Priority = store.AlertRaised, "alert.raised", severityPriority(ev.Severity)
	n.Tags = []string{"warning", "alert"}
	if ev.Severity == store.SeverityCritical {
		n.Tags[0] = "rotating_light"
	}
	n.Title = "Alert: " + ev.Summary
	n.Body = fmt.Sprintf("%s%s, since %s.", ev.Summary, where, clock(ev.Time))
	return n, true
}

// severityPriority: a warning must reach someone, a critical one wake them.
func severityPriority(severity string) Priority {
	switch severity {
	case store.SeverityCritical:
		return PriorityUrgent
	case store.SeverityWarning:
		return PriorityHigh
	}
	return PriorityDefault
}

func toolNotice(ev store.Event, console string) (notice, bool) {
	var d store.ToolDetails
	if !decode(ev, &d) || d.Phase != store.ToolEnded || d.Outcome != store.OutcomeUnknown {
		return notice{}, false
	}
	n := notice{}
	n.Kind, n.Priority, n.Tags, n.URL = "tool.unknown", PriorityHigh, []string{"grey_question", "tool"}, link(console, "/audit")
	n.Title = "Outcome unknown: " + d.Tool
	n.Body = fmt.Sprintf("%s's call %s may or may not have happened; check the cluster before anyone tries again.\n%s\nPlan: %s",
		field(d.Principal), d.Tool, field(d.Reason), field(d.Plan))
	return n, true
}

// switchNames are the safety switches by preference key (server.PrefKillSwitch, …).
var switchNames = map[string]string{"safety.kill_switch": "kill switch", "safety.read_only": "read-only mode"}

func safetyNotice(ev store.Event, console string) (notice, bool) {
	var d store.SafetyDetails
	if !decode(ev, &d) || d.Switch == "" {
		return notice{}, false
	}
	name := switchNames[d.Switch]
	if name == "" {
		name = d.Switch
	}
	n := notice{key: "safety:" + d.Switch}
	n.URL = link(console, "")
	n.Priority = PriorityHigh
	if d.On {
		n.state, n.Kind, n.Tags = "on", "safety.on", []string{"no_entry", "safety"}
		n.Title = capital(name) + " ON"
		n.Body = fmt.Sprintf("%s turned the %s on: Jarvis refuses every change, and nothing can be approved, until it is turned off.", field(d.By), name)
	} else {
		n.state, n.Kind, n.Tags = "off", "safety.off", []string{"white_check_mark", "safety"}
		n.Title = capital(name) + " off"
		n.Body = fmt.Sprintf("%s turned the %s off: changes run again under the usual rules.", field(d.By), name)
	}
	return n, true
}

// dependencyNames say what each dependency is, in words.
var dependencyNames = map[string]string{
	store.DependencyPVE: "the Proxmox cluster", store.DependencyStore: "the database", store.DependencyAuditLog: "the audit log",
}

func systemNotice(ev store.Event, console string) (notice, bool) {
	var d store.DependencyDetails
	if !decode(ev, &d) || d.Dependency == "" { // checkpoints, start and stop
		return notice{}, false
	}
	name := dependencyNames[d.Dependency]
	if name == "" {
		name = d.Dependency
	}
	n := notice{key: "dependency:" + d.Dependency}
	n.URL = link(console, "")
	switch d.State {
	case store.DependencyFailing:
		n.state, n.Kind, n.Priority, n.Tags = "failing:"+d.Error, "system.failing", PriorityHigh, []string{"warning", "system"}
		n.Title = "Jarvis cannot use " + name
		n.Body = fmt.Sprintf("%s.\nFix: %s\nSince %s.", field(d.Error), field(d.Fix), clock(d.Since))
	case store.DependencyRecovered:
		n.state, n.Kind, n.Priority, n.Tags = "recovered", "system.recovered", PriorityDefault, []string{"white_check_mark", "system"}
		n.Title = capital(name) + " works again"
		n.Body = fmt.Sprintf("Jarvis can use %s again (%s).", name, clock(ev.Time))
	default:
		return notice{}, false
	}
	return n, true
}

func ruleNotice(ev store.Event, console string) (notice, bool) {
	var d store.RuleDetails
	if !decode(ev, &d) || d.RuleID == "" {
		return notice{}, false
	}
	rule := fmt.Sprintf("%s/v%d", d.RuleID, d.Version)
	n := notice{}
	n.URL, n.Kind = link(console, ""), "rule."+d.Phase
	// Principal is whom the rule lets act; Actor who used it (or the operator who changed it).
	who, caller, target := field(d.Principal), field(cmp.Or(d.Actor, d.Principal)), field(d.Target)
	switch d.Phase {
	case store.RuleUsed:
		n.Priority, n.Tags = PriorityDefault, []string{"robot", "rule"}
		n.Title = fmt.Sprintf("Rule used: %s on %s", d.Tool, target)
		n.Body = fmt.Sprintf("%s ran %s on %s under standing approval %s: %s. %d more allowed this hour for %s.\nPlan: %s",
			caller, d.Tool, target, rule, field(d.Outcome), d.UsesLeft, target, field(d.Plan))
	case store.RuleExhausted:
		n.key, n.Priority, n.Tags = "rule-exhausted:"+d.RuleID+":"+d.Target, PriorityHigh, []string{"hourglass", "rule"}
		n.Title = fmt.Sprintf("Rule exhausted: %s on %s", d.Tool, target)
		n.Body = fmt.Sprintf("Standing approval %s is exhausted for %s this hour: %s's %s now waits for a person's approval.", rule, target, caller, d.Tool)
		if d.Reason != "" {
			n.Body += "\n" + field(d.Reason)
		}
	case store.RuleStopped:
		n.key, n.Priority, n.Tags = "rule-stopped:"+rule, PriorityHigh, []string{"no_entry", "rule"}
		n.Title = "Rule stopped: " + rule
		n.Body = fmt.Sprintf("Standing approval %s (%s may run %s) lets nothing through until it is changed: %s.", rule, who, d.Tool, field(d.Reason))
	case store.RuleCreated, store.RuleUpdated, store.RuleRevoked:
		n.Priority, n.Tags = PriorityLow, []string{"memo", "rule"}
		n.Title = fmt.Sprintf("Rule %s: %s", d.Phase, rule)
		n.Body = fmt.Sprintf("%s %s standing approval %s, which lets %s run %s.", field(d.Actor), d.Phase, rule, who, d.Tool)
		if d.Plan != "" {
			n.Body += "\nPlan: " + field(d.Plan)
		}
	default:
		return notice{}, false
	}
	return n, true
}

// link is the console's address with a location hash ("approval/apr_…",
// "/guest/101"); empty when the console's address is not known.
func link(console, hash string) string {
	if console == "" || hash == "" {
		return console
	}
	return console + "#" + hash
}

// field is one value quoted inside a body: on one line, not too long.
func field(s string) string {
	if s = clip(oneLine(s), maxField); s == "" {
		return "(none)"
	}
	return s
}

// clock is a moment as a person reads it on the Jarvis host.
func clock(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

// span is a duration as a person says it: 10m, 1h30m, 45s.
func span(d time.Duration) string {
	d = max(d, 0)
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s") // 10m0s → 10m
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
