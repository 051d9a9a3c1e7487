package safety

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PrincipalKind says whether a caller is a person or a program.
type PrincipalKind string

const (
	// Operator is the person who runs Jarvis: a console login or the local
	// stdio user.
	Operator PrincipalKind = "operator"
	// Agent is a program holding an agent token.
	Agent PrincipalKind = "agent"
)

// OperatorID is the principal id of the operator logged in to the console; the
// local stdio operator is OperatorID + ":stdio".
const OperatorID = "operator"

// Valid reports whether k is a kind Jarvis knows.
func (k PrincipalKind) Valid() bool { return k == Operator || k == Agent }

// Principal is who is calling: the operator or an agent token. It is the one
// type for the caller's identity, from the token check to the audit row.
type Principal struct {
	ID      string        // "operator", "operator:stdio" or "agent:<token id>"
	Kind    PrincipalKind // Operator or Agent
	MaxTier Tier          // highest tier this principal may use; zero means Green only
	// Toolsets, when set, is the comma-separated toolsets offered to this
	// caller (an agent token's own); "" means the server's. A tool outside
	// them is neither listed nor callable.
	Toolsets string
}

// CanApprove reports whether this principal may approve RED actions. Only the
// human operator can: an agent approving its own request would defeat the point.
func (p Principal) CanApprove() bool { return p.Kind == Operator }

// ceiling is the highest tier p may use; an unset or nonsensical ceiling grants
// the least.
func (p Principal) ceiling() Tier {
	if !p.MaxTier.Valid() {
		return Green
	}
	return p.MaxTier
}

// Target is the resolved resource a tool call touches. Empty fields mean "not
// applicable" (a node-level tool has no VMID).
type Target struct {
	Node    string
	VMID    int
	Kind    string // "qemu", "lxc" or ""
	Name    string
	Status  string
	Service string
}

// Request is one tool call as the safety layer sees it.
type Request struct {
	Principal Principal
	Tool      string
	Tier      Tier // the tool's declared tier
	Target    Target
	// Also lists the other resources the call touches (a migration's target
	// node, a clone's new VMID); protection applies to each of them.
	Also   []Target
	Effect string // tool-provided sentence fragment describing what will happen
	// TierReason says why this call is BLACK when its tool set Tier to Black
	// for these arguments (delete_guest on a guest Jarvis did not create).
	TierReason string
	// Command, when set, is the shell command line the call runs on
	// Target.Node (execute_ssh). The policy classifies it: the command's tier
	// replaces the tool's, a read-only command may read protected resources,
	// and a changing one is checked against protection by effect.
	Command *Command
}

// Command is a shell command line as a request carries it.
type Command struct {
	Line string
	// Guests tells where the guests a changing command names live; the
	// caller does the lookup, so the policy itself does no I/O.
	Guests GuestLookup
}

// State holds the live switches; the caller reads them fresh for each call.
type State struct {
	ReadOnly   bool
	KillSwitch bool
}

// Policy is the static protection configuration.
type Policy struct {
	ProtectedNodes    []string
	ProtectedVMIDs    []int
	ProtectedServices []string
}

// Verdict is the answer to one request.
type Verdict struct {
	Decision Decision
	Tier     Tier
	Reason   string // plain sentence explaining a refusal; empty when allowed
	Plan     string // human-readable sentence saying what would happen
}

// BlackTools are tools that exist in Proxmox but are never offered to agents.
var BlackTools = []string{"reboot_node", "shutdown_node", "delete_vm", "delete_container"}

// IsBlackTool reports whether name is one of BlackTools.
func IsBlackTool(name string) bool { return slices.Contains(BlackTools, name) }

// blackToolReasons explain why a specific BLACK tool is refused.
var blackToolReasons = map[string]string{
	"reboot_node":      "rebooting a node takes every guest on it down at once",
	"shutdown_node":    "shutting a node down takes every guest on it down and needs someone at the machine to bring it back",
	"delete_vm":        "deleting a VM destroys its disks and cannot be undone",
	"delete_container": "deleting a container destroys its disks and cannot be undone",
}

// Decide applies the policy to one request. The order matters: a tool that can
// never run is refused before anything else is considered; reads (GREEN) are
// never stopped by the switches or by protection, so an operator can always look.
func (p Policy) Decide(req Request, st State) Verdict {
	reads := false
	if req.Command != nil {
		cv := p.CheckCommand(req.Command.Line, req.Target.Node, req.Command.Guests)
		req.Tier = cv.Tier
		req.Effect = fmt.Sprintf("Run `%s` on node %s (%s)", req.Command.Line, req.Target.Node, cv.Reason)
		if cv.Decision == Blocked || cv.Decision == Protected {
			// The plan names the command, not the classifier's reason: the
			// reason is the refusal's.
			return Verdict{Decision: cv.Decision, Tier: cv.Tier, Reason: cv.Reason,
				Plan: fmt.Sprintf("%s: run `%s` on node %s", req.Tool, req.Command.Line, req.Target.Node)}
		}
		reads = cv.Decision == Allow
	}
	v := Verdict{Tier: req.Tier, Plan: plan(req)}

	if !req.Tier.Valid() || req.Tier == Black || IsBlackTool(req.Tool) {
		v.Decision = Blocked
		if req.Tier != Black && !IsBlackTool(req.Tool) {
			v.Reason = fmt.Sprintf("%s is never available to agents: its tier %s is not one Jarvis knows, so it is refused.", req.Tool, req.Tier)
		} else if req.TierReason != "" {
			v.Reason = fmt.Sprintf("%s is never allowed here: %s.", req.Tool, strings.TrimSuffix(req.TierReason, "."))
		} else if why, ok := blackToolReasons[req.Tool]; ok {
			v.Tier = Black
			v.Reason = fmt.Sprintf("%s is never available to agents: %s. Do it yourself from the Proxmox UI.", req.Tool, why)
		} else {
			v.Reason = fmt.Sprintf("%s is never available to agents: it is a BLACK-tier action.", req.Tool)
		}
		return v
	}

	if refusal, above := AboveCeiling(req.Principal, req.Tool, req.Tier); above {
		refusal.Plan = v.Plan
		if req.Command != nil {
			// The tool is open to this caller; this command is not.
			refusal.Reason = fmt.Sprintf("`%s` is a %s-tier command and %s may use up to %s only: only read-only commands are open to it. Ask a person to run it.",
				req.Command.Line, strings.ToUpper(req.Tier.String()), principalName(req.Principal), strings.ToUpper(req.Principal.ceiling().String()))
		}
		return refusal
	}

	if req.Tier == Green {
		v.Decision = Allow
		return v
	}
	if st.ReadOnly {
		v.Decision = ReadOnlyMode
		v.Reason = fmt.Sprintf("Jarvis is in read-only mode: %s changes the cluster, so it is refused until an operator turns read-only mode off.", req.Tool)
		return v
	}
	if st.KillSwitch {
		v.Decision = KillSwitch
		v.Reason = fmt.Sprintf("The kill switch is on: every action that changes the cluster, including %s, is refused until an operator releases it.", req.Tool)
		return v
	}
	// Protected resources may be read: a read-only command is not refused.
	if reason := p.protectedReason(req.Target); reason != "" && !reads {
		v.Decision = Protected
		v.Reason = reason
		return v
	}
	for _, t := range req.Also {
		if reason := p.protectedReason(t); reason != "" {
			v.Decision = Protected
			v.Reason = reason
			return v
		}
	}
	if req.Tier == Yellow {
		v.Decision = Allow
		return v
	}
	v.Decision = NeedsApproval
	v.Reason = fmt.Sprintf("%s is a RED-tier action and runs only after a human approves it.", req.Tool)
	return v
}

// AboveCeiling refuses a tool, or one call of it, whose tier is above what the
// caller may use. It is the only ceiling check: dispatch asks it for the tool's
// declared tier before looking at the arguments, and Decide asks it again for
// the call's own tier (a command's, for execute_ssh).
func AboveCeiling(p Principal, tool string, tier Tier) (Verdict, bool) {
	if tier <= p.ceiling() {
		return Verdict{}, false
	}
	return Verdict{Decision: Blocked, Tier: tier,
		Reason: fmt.Sprintf("%s is a %s-tier tool and %s may use tools up to %s only.",
			tool, strings.ToUpper(tier.String()), principalName(p), strings.ToUpper(p.ceiling().String()))}, true
}

// protectedReason names the first protected resource the target touches, or "".
func (p Policy) protectedReason(t Target) string {
	if t.Node != "" {
		for _, n := range p.ProtectedNodes {
			if strings.EqualFold(strings.TrimSpace(n), t.Node) {
				return fmt.Sprintf("Node %s is protected by configuration (JARVIS_PROTECTED_NODES); Jarvis will not act on it.", t.Node)
			}
		}
	}
	if t.VMID != 0 && slices.Contains(p.ProtectedVMIDs, t.VMID) {
		return fmt.Sprintf("%s %d is protected by configuration (JARVIS_PROTECTED_VMIDS); Jarvis will not act on it.", guestNoun(t.Kind), t.VMID)
	}
	if t.Service != "" {
		for _, s := range p.ProtectedServices {
			if sameService(s, t.Service) {
				return fmt.Sprintf("Service %s is protected by configuration (JARVIS_PROTECTED_SERVICES); Jarvis will not act on it.", t.Service)
			}
		}
	}
	return ""
}

// sameService compares unit names as systemd does: "docker", "docker.service",
// "docker.socket", "docker@x" and "Docker" all touch the protected docker.
func sameService(a, b string) bool {
	na, nb := UnitBase(strings.TrimSpace(a)), UnitBase(strings.TrimSpace(b))
	return na != "" && na == nb
}

func guestNoun(kind string) string {
	if kind == "lxc" {
		return "Container"
	}
	return "VM"
}

func principalName(p Principal) string {
	if p.ID == "" {
		return "this caller"
	}
	return p.ID
}

// plan builds the human sentence shown in approvals and audit rows. The tool's
// own Effect is preferred; the target is appended when the effect does not
// already name it, so the plan always says what will be touched.
func plan(req Request) string {
	tool := req.Tool
	if tool == "" {
		tool = "unnamed tool"
	}
	target := targetPhrase(req.Target)
	effect := strings.TrimSpace(req.Effect)
	switch {
	case effect == "" && target == "":
		return tool
	case effect == "":
		return tool + " on " + target
	case target == "" || mentionsTarget(effect, req.Target):
		return tool + ": " + effect
	default:
		return tool + ": " + effect + " (" + target + ")"
	}
}

func targetPhrase(t Target) string {
	var parts []string
	if t.VMID != 0 {
		s := "VM " + strconv.Itoa(t.VMID)
		if t.Kind == "lxc" {
			s = "container " + strconv.Itoa(t.VMID)
		}
		if t.Name != "" {
			s += " '" + t.Name + "'"
		}
		parts = append(parts, s)
	}
	if t.Service != "" {
		parts = append(parts, "service "+t.Service)
	}
	if t.Node != "" {
		if len(parts) == 0 {
			parts = append(parts, "node "+t.Node)
		} else {
			parts[len(parts)-1] += " on node " + t.Node
		}
	}
	return strings.Join(parts, ", ")
}

// mentionsTarget reports whether the effect text already names the resource.
func mentionsTarget(effect string, t Target) bool {
	switch {
	case t.VMID != 0:
		return strings.Contains(effect, strconv.Itoa(t.VMID))
	case t.Service != "":
		return strings.Contains(effect, t.Service)
	case t.Node != "":
		return strings.Contains(effect, t.Node)
	}
	return true
}
