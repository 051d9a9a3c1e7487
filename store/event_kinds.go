package store

// The feed's event kinds and, for each, the Go type of its Details. This file
// is the payload reference for everyone who reads the feed: the publishers
// (server, store, server/watch, cmd/jarvis), the SSE writer (web/feed.go) and
// the browser console (web/static/app.js). The json tags are the wire names;
// changing one breaks the console.
//
//	kind      Details         published by
//	tool      ToolDetails     server (dispatch): every call begun, ended or refused
//	approval  ApprovalDetails server: approval requested, approved, denied, expired, consumed
//	cluster   ClusterDetails  server/watch: a snapshot of nodes, guests or storage
//	alert     AlertDetails    server/watch (raised/resolved), server (interrupted call)
//	safety    SafetyDetails   server: a safety switch turned on or off
//	rule      RuleDetails     server: a standing approval created, changed, revoked, used, exhausted or stopped
//	system    SystemDetails   store (audit checkpoint)
//	          DependencyDetails server/watch: the cluster cannot be read, or can again
//	          (other system events, start and stop, have no details)
//
// Events posted by an operator (POST /api/events) carry whatever details they
// were given: readers must tolerate details of an unexpected shape.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event kinds (Event.Type).
const (
	EventTool     = "tool"
	EventApproval = "approval"
	EventCluster  = "cluster"
	EventAlert    = "alert"
	EventSafety   = "safety"
	EventSystem   = "system"
	EventRule     = "rule"
)

// Jarvis is the actor and source of what Jarvis does by itself: an approval
// expiring, an alert resolving, a start-up notice.
const Jarvis = "jarvis"

// jarvisSources are the sources of the events Jarvis publishes itself. An
// event posted through the operator API may not claim one: a standing
// approval's trigger trusts only the watcher's ("poller") alerts.
var jarvisSources = []string{Jarvis, "poller", "rules", "dispatch", "approvals", "audit", "demo"}

// IsJarvisSource reports whether source is one Jarvis's own events carry.
func IsJarvisSource(source string) bool {
	return slices.Contains(jarvisSources, strings.ToLower(strings.TrimSpace(source)))
}

// Event severities (Event.Severity).
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// IsEventKind reports whether k is one of the event kinds.
func IsEventKind(k string) bool { return eventTypes[k] }

// IsSeverity reports whether s is one of the severities.
func IsSeverity(s string) bool { return eventSeverities[s] }

// EventDetails is a payload type of this file; Kind is the event kind it belongs to.
type EventDetails interface{ Kind() string }

// EncodeDetails turns a payload into Event.Details. These types always
// marshal (barring a NaN reading, which leaves the details empty, as before).
func EncodeDetails(d EventDetails) json.RawMessage {
	b, err := json.Marshal(d)
	if err != nil {
		return nil
	}
	return b
}

// Tool call phases (ToolDetails.Phase).
const (
	ToolBegun   = "begun"
	ToolEnded   = "ended"
	ToolRefused = "refused"
)

// ToolDetails is the payload of a tool event, one per phase of a call.
// Outcome is ok, error or unknown (a write that may or may not have happened)
// when ended, the refusal's decision when refused, empty when begun; Reason
// says why (the error, or what to check before retrying). DurationMS is 0
// until the call ends. Every field is always present.
type ToolDetails struct {
	Phase      string `json:"phase"` // begun|ended|refused
	Principal  string `json:"principal"`
	Tool       string `json:"tool"`
	Tier       string `json:"tier"` // green|yellow|red|black
	Decision   string `json:"decision"`
	Plan       string `json:"plan"`
	DurationMS int64  `json:"duration_ms"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	// Rule names the standing approval a RED call ran under ("r_…/v2"),
	// empty when a person approved it or none was needed.
	Rule string `json:"rule"`
}

// Kind is EventTool.
func (ToolDetails) Kind() string { return EventTool }

// ApprovalRequested is the phase of an approval event when an agent asks; the
// other phases are the status the approval moved to (ApprovalApproved, …).
const ApprovalRequested = "requested"

// ApprovalDetails is the payload of an approval event. Phase is requested,
// approved, denied, expired or consumed; Actor is who caused the change (the
// asking principal, the operator, or "jarvis" for expiry); Status is the
// approval's status after it. Every field is always present.
type ApprovalDetails struct {
	Phase      string    `json:"phase"`
	ApprovalID string    `json:"approval_id"`
	Principal  string    `json:"principal"`
	Tool       string    `json:"tool"`
	Tier       string    `json:"tier"`
	Plan       string    `json:"plan"`
	ExpiresAt  time.Time `json:"expires_at"`
	Actor      string    `json:"actor"`
	Status     string    `json:"status"`
}

// Kind is EventApproval.
func (ApprovalDetails) Kind() string { return EventApproval }

// What a cluster snapshot holds (ClusterDetails.What).
const (
	ClusterNodes   = "nodes"
	ClusterGuests  = "guests"
	ClusterStorage = "storage"
)

// ClusterDetails is the payload of a cluster event: a full snapshot of one
// part of the cluster. Only the list named by What is present, and it is
// present even when empty ([]), which says "none" rather than "not polled";
// hence omitzero, which keeps an empty list and drops a nil one. Percentages
// have one decimal, rounded as the tools round them.
type ClusterDetails struct {
	What    string            `json:"what"` // nodes|guests|storage
	Nodes   []NodeSnapshot    `json:"nodes,omitzero"`
	Guests  []GuestSnapshot   `json:"guests,omitzero"`
	Storage []StorageSnapshot `json:"storage,omitzero"`
}

// Kind is EventCluster.
func (ClusterDetails) Kind() string { return EventCluster }

// NodeSnapshot is one node in a nodes snapshot.
type NodeSnapshot struct {
	Node          string  `json:"node"`
	Status        string  `json:"status"` // online|offline|unknown
	CPUPercent    float64 `json:"cpu_percent"`
	MemPercent    float64 `json:"mem_percent"`
	DiskPercent   float64 `json:"disk_percent"`
	MemBytes      int64   `json:"mem_bytes"`
	MaxMemBytes   int64   `json:"maxmem_bytes"`
	UptimeSeconds int64   `json:"uptime_seconds"`
}

// GuestSnapshot is one VM or container in a guests snapshot.
type GuestSnapshot struct {
	VMID       int64   `json:"vmid"`
	Name       string  `json:"name"`
	Node       string  `json:"node"`
	Kind       string  `json:"kind"` // qemu|lxc
	Status     string  `json:"status"`
	CPUPercent float64 `json:"cpu_percent"`
	MemPercent float64 `json:"mem_percent"`
}

// StorageSnapshot is one storage on one node in a storage snapshot.
type StorageSnapshot struct {
	Storage     string  `json:"storage"`
	Node        string  `json:"node"`
	Type        string  `json:"type"`
	Shared      bool    `json:"shared"`
	Status      string  `json:"status"`
	UsedPercent float64 `json:"used_percent"`
	UsedBytes   int64   `json:"used_bytes"`
	TotalBytes  int64   `json:"total_bytes"`
}

// Alert states (AlertDetails.State).
const (
	AlertRaised   = "raised"
	AlertResolved = "resolved"
)

// Alert kinds (AlertDetails.Kind): what an alert is about. A standing
// approval's trigger names one of them.
const (
	// A guest that was running stopped, and no task (Jarvis's or anyone's)
	// stopped it: it crashed, or was killed from inside.
	AlertGuestStoppedUnexpectedly = "guest_stopped_unexpectedly"
	// A guest that was running was stopped by a task, or stopped and its
	// tasks could not be read to tell (never claimed a crash then).
	AlertGuestStopped    = "guest_stopped"
	AlertNodeUnreachable = "node_unreachable"
	AlertNodeMemory      = "node_memory"
	AlertStorageFull     = "storage_full"
	// A systemd unit on a node is in the failed state.
	AlertServiceFailed   = "service_failed"
	AlertInterruptedCall = "interrupted_call"
)

// AlertKinds lists the alert kinds a standing approval's trigger may name
// (not storage_full: no tool acts on a storage as its target).
func AlertKinds() []string {
	return []string{AlertGuestStoppedUnexpectedly, AlertGuestStopped, AlertNodeUnreachable, AlertNodeMemory,
		AlertServiceFailed}
}

// Alert subjects (AlertDetails.Subject) name what an alert is about, one
// form per kind of thing: "guest/101", "node/pve1", "service/pve1/nginx",
// "storage/pve1/local" ("storage//local" for shared storage).
func GuestSubject(vmid int64) string             { return fmt.Sprintf("guest/%d", vmid) }
func NodeSubject(node string) string             { return "node/" + node }
func ServiceSubject(node, service string) string { return "service/" + node + "/" + service }
func StorageSubject(node, storage string) string { return "storage/" + node + "/" + storage }

// AlertDetails is the payload of an alert event. The watcher's alerts carry
// Key (what the alert is about, e.g. "node-offline:pve1"), State, Kind and
// Subject (and VMID or Service where they apply); AlertKind is the kind; the notice that an alert
// cleared is stored resolved and names the raised alert's event in AlertID
// (absent when raised). An alert for a call interrupted by a stop of Jarvis
// carries the InterruptedCall fields instead, inline.
type AlertDetails struct {
	Key       string `json:"key,omitempty"`
	State     string `json:"state,omitempty"` // raised|resolved
	AlertID   uint64 `json:"alert_id,omitempty"`
	AlertKind string `json:"kind,omitempty"`
	Subject   string `json:"subject,omitempty"`
	VMID      int64  `json:"vmid,omitempty"`
	Service   string `json:"service,omitempty"`
	// A pointer, so watcher alerts carry none of its fields.
	*InterruptedCall
}

// Kind is EventAlert.
func (AlertDetails) Kind() string { return EventAlert }

// InterruptedCall names the audit begin row of a call that never ended.
type InterruptedCall struct {
	AuditID   uint64    `json:"audit_id"`
	Principal string    `json:"principal"`
	Tool      string    `json:"tool"`
	Plan      string    `json:"plan"`
	Began     time.Time `json:"began"`
}

// SafetyDetails is the payload of a safety event: a switch (a preference key,
// e.g. the kill switch) turned on or off, and by whom.
type SafetyDetails struct {
	Switch string `json:"switch"`
	On     bool   `json:"on"`
	By     string `json:"by"`
}

// Kind is EventSafety.
func (SafetyDetails) Kind() string { return EventSafety }

// Rule phases (RuleDetails.Phase).
const (
	RuleCreated   = "created"   // an operator created a rule
	RuleUpdated   = "updated"   // an operator made a new version
	RuleRevoked   = "revoked"   // an operator revoked it
	RuleUsed      = "used"      // a call ran under it (Outcome says how it ended)
	RuleExhausted = "exhausted" // a call fell back to a person: the hourly budget for its target is spent
	RuleStopped   = "stopped"   // K calls in a row under it did not end ok: it lets nothing through until changed
)

// RuleDetails is the payload of a rule event. Target is the subject a call
// acted on (guest/101), empty for created, updated and revoked; Outcome is
// the call's (ok, failed, unknown) when used; UsesLeft is what the hourly
// budget for Target still allows; Actor is the operator (created, updated,
// revoked) or the calling principal. Every field is always present.
type RuleDetails struct {
	Phase     string `json:"phase"`
	RuleID    string `json:"rule_id"`
	Version   int    `json:"version"`
	Principal string `json:"principal"` // whom the rule lets act
	Tool      string `json:"tool"`
	Target    string `json:"target"`
	Plan      string `json:"plan"`
	Outcome   string `json:"outcome"`
	UsesLeft  int    `json:"uses_left"`
	Actor     string `json:"actor"`
	Reason    string `json:"reason"`
}

// Kind is EventRule.
func (RuleDetails) Kind() string { return EventRule }

// SystemDetails is the payload of the audit checkpoint's system event: the
// anchor file's new checkpoint (Row and Hash of the last anchored audit row,
// Time it was written, RFC 3339) and its MAC. Other system events (start,
// stop, a checkpoint that could not be written) have no details.
type SystemDetails struct {
	Installation string `json:"installation"`
	Row          uint64 `json:"row"`
	Hash         string `json:"hash"`
	Time         string `json:"time"`
	MAC          string `json:"mac"`
}

// Kind is EventSystem.
func (SystemDetails) Kind() string { return EventSystem }

// The dependencies Jarvis reports on (DependencyDetails.Dependency, and the
// "dependency" of each problem in /api/health).
const (
	DependencyPVE      = "pve_api"   // the Proxmox VE API
	DependencyStore    = "store"     // the database
	DependencyAuditLog = "audit_log" // the audit log taking rows
)

// Dependency states (DependencyDetails.State).
const (
	DependencyFailing   = "failing"
	DependencyRecovered = "recovered"
)

// DependencyDetails is the payload of the system event published when a
// dependency stops working or its cause changes (State failing, Error the cause
// in words, Fix what to change, Since when it started) and when it works again
// (State recovered, Error and Fix empty). The console shows the failing one as a
// banner until the recovered one arrives. Every field is always present.
type DependencyDetails struct {
	Dependency string    `json:"dependency"`
	State      string    `json:"state"`
	Error      string    `json:"error"`
	Fix        string    `json:"fix"`
	Since      time.Time `json:"since"`
}

// Kind is EventSystem.
func (DependencyDetails) Kind() string { return EventSystem }
