// Package safety is Jarvis's pure policy layer: tiers, protected resources, the
// SSH command classifier, confirmation state, rate limits and argument redaction.
// It does no I/O of any kind: callers pass the inputs (principal, request, live
// switches, clock) in and get a decision out, so every rule is testable in isolation.
package safety

import (
	"fmt"
	"strings"
)

// Tier is how much harm a tool or command can do. Higher is more dangerous.
type Tier int

const (
	// Green reads only.
	Green Tier = 1 + iota
	// Yellow changes state with low risk and can be undone.
	Yellow
	// Red is disruptive or loses data: it runs only after a human approves.
	Red
	// Black is never available to an agent.
	Black
)

// String returns the lower-case tier name used in results and configuration.
func (t Tier) String() string {
	switch t {
	case Green:
		return "green"
	case Yellow:
		return "yellow"
	case Red:
		return "red"
	case Black:
		return "black"
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// Valid reports whether t is one of the four defined tiers.
func (t Tier) Valid() bool { return t >= Green && t <= Black }

// ParseTier reads a tier name, ignoring case and surrounding spaces.
func ParseTier(s string) (Tier, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "green":
		return Green, nil
	case "yellow":
		return Yellow, nil
	case "red":
		return Red, nil
	case "black":
		return Black, nil
	}
	return 0, fmt.Errorf("unknown tier %q: valid values are green, yellow, red, black", s)
}

// Annotations are the MCP tool hints. They are derived from the tier so that the
// tier stays the single source of truth about what a tool may do.
type Annotations struct {
	ReadOnly, Destructive, Idempotent, OpenWorld bool
}

// Annotations returns the MCP hints for a tool of this tier. OpenWorld is true
// for every tier because every tool talks to a cluster outside the server.
// Black (and unknown) tiers get the most cautious hints; such tools are never
// registered, so this only matters if a caller asks anyway.
func (t Tier) Annotations() Annotations {
	switch t {
	case Green:
		return Annotations{ReadOnly: true, Destructive: false, Idempotent: true, OpenWorld: true}
	case Yellow:
		return Annotations{ReadOnly: false, Destructive: false, Idempotent: false, OpenWorld: true}
	default:
		return Annotations{ReadOnly: false, Destructive: true, Idempotent: false, OpenWorld: true}
	}
}

// Decision is the outcome of a safety check, as it appears in a refusal's
// structured content.
type Decision string

const (
	Allow         Decision = "allow"
	NeedsApproval Decision = "needs_approval"
	Blocked       Decision = "blocked"
	Denied        Decision = "denied"
	Expired       Decision = "expired"
	RateLimited   Decision = "rate_limited"
	KillSwitch    Decision = "kill_switch"
	ReadOnlyMode  Decision = "read_only"
	Protected     Decision = "protected"
)
