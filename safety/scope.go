package safety

// Protection by effect for execute_ssh. ClassifyCommand says whether a line
// only reads; CheckCommand also asks what a changing line acts on. A changing
// command is refused, not sent to a person, when it reaches a protected node,
// guest or service without naming it: a VMID whose guest runs on a protected
// node, a process of a protected service, or a target that cannot be read
// from the text at all (arithmetic, expansions, substitutions, globs, braces,
// arguments fed through xargs or find -exec, "every guest" selectors).

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// GuestPlace is where a guest of the cluster lives.
type GuestPlace struct {
	Node string
	Kind string // "qemu" or "lxc"
}

// GuestLookup tells where the guests among vmids are. Numbers that are no
// guest of the cluster are left out of the answer. It is how CheckCommand
// learns about the cluster; the safety package itself does no I/O.
type GuestLookup func(vmids []int) (map[int]GuestPlace, error)

// scopeInternalErrorReason is CheckCommand's answer if its own analysis fails.
const scopeInternalErrorReason = "The command could not be checked against the protected resources because of an internal error, so it is refused."

// CheckCommand is execute_ssh's whole check of a command line run on node:
// ClassifyCommand with the protected services, then, for a line that changes
// something and is not refused already, protection by effect. The result is
// Protected when the line
//
//   - names a protected VMID or node, or a guest that runs on a protected node
//     (lookup resolves the VMIDs it names; qm stop 202 where 202 is on agent1);
//   - kills processes of a protected service (pkill dockerd, killall -9
//     containerd, pkill -f docker when docker is protected), processes of a
//     protected guest on this node (pkill kvm), or processes by PID, which
//     cannot be tied to a program from the text;
//   - has a target that cannot be read from the text (see above), while any
//     resource is protected at all.
//
// With nothing protected the classifier's verdict stands: a person reads the
// command, as before. Read-only lines (Allow) are never refused here: reading
// a protected resource is allowed.
func (p Policy) CheckCommand(cmd, node string, lookup GuestLookup) CommandVerdict {
	c := &classifier{protected: p.ProtectedServices, rec: &recording{}}
	v := c.classify(cmd)
	if v.Decision != NeedsApproval || !p.protectsAnything() {
		return v
	}
	if reason := p.reach(cmd, node, c.rec, lookup); reason != "" {
		v.Tier, v.Decision, v.Reason = Red, Protected, reason
	}
	return v
}

func (p Policy) protectsAnything() bool {
	for _, s := range append(slices.Clone(p.ProtectedNodes), p.ProtectedServices...) {
		if strings.TrimSpace(s) != "" {
			return true
		}
	}
	for _, id := range p.ProtectedVMIDs {
		if id > 0 {
			return true
		}
	}
	return false
}

// reach returns why a changing command reaches something protected, or "".
func (p Policy) reach(cmd, node string, rec *recording, lookup GuestLookup) (reason string) {
	defer func() {
		if r := recover(); r != nil {
			reason = scopeInternalErrorReason
		}
	}()
	texts := literalTexts(cmd)
	ids := guestIDs(texts)
	guests := &guestMemo{lookup: lookup, ids: append(slices.Clone(ids), p.ProtectedVMIDs...)}

	// Named: a protected VMID or node, or a guest that runs on a protected node.
	m := newTouchMatcher(p.ProtectedVMIDs, p.ProtectedNodes)
	if len(m.nodes) > 0 && len(ids) > 0 {
		places, err := guests.get()
		if err != nil {
			return fmt.Sprintf("Jarvis could not look up which nodes guests %s are on (%v), so it cannot tell whether the command reaches protected node %s; try again when the cluster answers.",
				joinInts(ids), err, strings.Join(m.nodes, ", "))
		}
		m.guests = guestsOnNodes(places, m.nodes)
	}
	for _, text := range texts {
		if why := m.match(text); why != "" {
			return why
		}
	}

	// Processes of protected services and guests.
	if why := p.killReason(rec, node, guests); why != "" {
		return why
	}

	// Targets only known at run time.
	if why := rec.unresolved(); why != "" {
		return why + " Jarvis cannot check it against the protected resources (" + p.summary() + "), so it is refused; " +
			"write the VMIDs, nodes, services and process names it acts on literally."
	}
	return ""
}

// summary lists the protected resources for a reason sentence.
func (p Policy) summary() string {
	var parts []string
	add := func(noun string, items []string) {
		var kept []string
		for _, s := range items {
			if s = strings.TrimSpace(s); s != "" {
				kept = append(kept, s)
			}
		}
		switch len(kept) {
		case 0:
		case 1:
			parts = append(parts, noun+" "+kept[0])
		default:
			parts = append(parts, noun+"s "+strings.Join(kept, ", "))
		}
	}
	add("node", p.ProtectedNodes)
	var ids []string
	for _, id := range p.ProtectedVMIDs {
		if id > 0 {
			ids = append(ids, strconv.Itoa(id))
		}
	}
	add("VMID", ids)
	add("service", p.ProtectedServices)
	return strings.Join(parts, "; ")
}

// guestMemo asks lookup once, for every VMID that may matter.
type guestMemo struct {
	lookup GuestLookup
	ids    []int
	done   bool
	places map[int]GuestPlace
	err    error
}

func (g *guestMemo) get() (map[int]GuestPlace, error) {
	if !g.done {
		g.done = true
		ids := slices.Compact(slices.Sorted(slices.Values(g.ids)))
		if g.lookup == nil {
			g.err = fmt.Errorf("no cluster to ask")
		} else {
			g.places, g.err = g.lookup(ids)
		}
	}
	return g.places, g.err
}

// guestsOnNodes keeps the guests whose node is one of nodes (lower case).
func guestsOnNodes(places map[int]GuestPlace, nodes []string) map[string]GuestPlace {
	out := map[string]GuestPlace{}
	for id, g := range places {
		if slices.Contains(nodes, strings.ToLower(strings.TrimSpace(g.Node))) {
			out[strconv.Itoa(id)] = g
		}
	}
	return out
}

// guestIDs returns the numbers in texts that could be VMIDs, each once, in
// the literal pieces of a command line (qm stop 202, /qemu/202/, vm-202-disk-0).
func guestIDs(texts []string) []int {
	var ids []int
	for _, text := range texts {
		for _, tok := range strings.FieldsFunc(strings.ToLower(text), isTouchSeparator) {
			if s := tokenVMID(tok); s != "" && len(s) <= pveid.MaxVMIDDigits {
				if id, err := strconv.Atoi(s); err == nil && pveid.ValidVMID(id) && !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

// vmidLike reports whether s is a number Proxmox would take as a VMID.
func vmidLike(s string) bool {
	if !isDigits(s) || len(s) > pveid.MaxVMIDDigits {
		return false
	}
	id, err := strconv.Atoi(s)
	return err == nil && pveid.ValidVMID(id)
}

func joinInts(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ", ")
}
