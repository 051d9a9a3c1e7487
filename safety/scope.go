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

	"mvdan.cc/sh/v3/syntax"
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

// minVMID and maxVMID bound the numbers Proxmox accepts as guest IDs.
const (
	minVMID = 100
	maxVMID = 999999999
)

// guestIDs returns the numbers in texts that could be VMIDs, each once, in
// the pieces CommandTouches looks at (qm stop 202, /qemu/202/, vm-202-disk-0).
func guestIDs(texts []string) []int {
	var ids []int
	for _, text := range texts {
		for _, tok := range strings.FieldsFunc(strings.ToLower(text), isTouchSeparator) {
			if s := tokenVMID(tok); s != "" && len(s) <= 9 {
				if id, err := strconv.Atoi(s); err == nil && id >= minVMID && id <= maxVMID && !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

// CommandGuestIDs returns the numbers a command line names that could be
// VMIDs: the ones CheckCommand asks its GuestLookup about.
func CommandGuestIDs(cmd string) []int { return guestIDs(literalTexts(cmd)) }

// vmidLike reports whether s is a number Proxmox would take as a VMID.
func vmidLike(s string) bool {
	if !isDigits(s) || len(s) > 9 {
		return false
	}
	id, err := strconv.Atoi(s)
	return err == nil && id >= minVMID && id <= maxVMID
}

func joinInts(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ", ")
}

// ---- what the classifier saw ----

// recording collects, while a line is classified, every program invocation
// (wrappers, sh -c strings, xargs and find -exec included) and every
// redirection, for CheckCommand. A nil recording records nothing.
type recording struct {
	calls  []invocation
	redirs []redirection
	deep   bool
	cur    int    // 1 + index of the invocation being classified; 0 outside any
	line   string // the text being parsed (the line, or a string handed to sh -c)
}

type redirection struct {
	rd   *syntax.Redirect
	line string
}

// invocation is one program run as the classifier saw it.
type invocation struct {
	line   string // the text its words were parsed from
	argv   []word
	ctx    callContext
	parent int  // 1 + index of the invocation that runs it; 0 for none
	inner  bool // it runs other invocations (a wrapper, sh -c, find -exec), which are checked instead
}

var noRecord = func() {}

// call records an invocation; the returned function ends it.
func (r *recording) call(argv []word, ctx callContext) func() {
	if r == nil {
		return noRecord
	}
	r.calls = append(r.calls, invocation{line: r.line, argv: argv, ctx: ctx, parent: r.cur})
	prev := r.cur
	if prev > 0 {
		r.calls[prev-1].inner = true
	}
	r.cur = len(r.calls)
	return func() { r.cur = prev }
}

func (r *recording) redirect(rd *syntax.Redirect) {
	if r != nil {
		r.redirs = append(r.redirs, redirection{rd, r.line})
	}
}

// enterLine notes the text being parsed; the returned function leaves it.
func (r *recording) enterLine(line string) func() {
	if r == nil {
		return noRecord
	}
	prev := r.line
	r.line = line
	return func() { r.line = prev }
}

func (r *recording) tooDeep() {
	if r != nil {
		r.deep = true
	}
}

// unresolved returns the first sentence saying which changing part of the line
// acts on something only known at run time, or "".
func (r *recording) unresolved() string {
	if r.deep {
		return "The command nests shells and wrappers too deeply to see what it acts on."
	}
	for _, inv := range r.calls {
		if why := inv.unresolved(); why != "" {
			return why
		}
	}
	for _, x := range r.redirs {
		if !writesFile(x.rd.Op) || x.rd.Word == nil {
			continue
		}
		if w := resolveWord(x.rd.Word); !w.literal {
			return fmt.Sprintf("The command writes to %s, a file name only known at run time.", showWord(w, x.line))
		}
	}
	return ""
}

func writesFile(op syntax.RedirOperator) bool {
	switch op {
	case syntax.RdrOut, syntax.AppOut, syntax.RdrInOut, syntax.DplOut, syntax.RdrClob, syntax.AppClob,
		syntax.RdrAll, syntax.RdrAllClob, syntax.AppAll, syntax.AppAllClob:
		return true
	}
	return false
}

// unresolved says why this invocation's target is only known at run time, or "".
// An invocation that would be read-only with any fixed value in place of what
// is built at run time (cat /var/log/$(date +%F).log) only reads: it is left to
// the classifier. The words of an invocation that runs others (sudo, sh -c,
// find -exec) are checked in those others.
func (inv invocation) unresolved() string {
	var runtime *word
	for i := range inv.argv {
		if !inv.argv[i].literal {
			runtime = &inv.argv[i]
			break
		}
	}
	if !inv.inner && (runtime != nil || inv.ctx.extraArgs) {
		switch {
		case inv.readShaped():
			return ""
		case runtime != nil:
			return fmt.Sprintf("In `%s`, %s is only known at run time (arithmetic, variables, substitutions, globs or braces).",
				showArgv(inv.argv, inv.line), showWord(*runtime, inv.line))
		default:
			return fmt.Sprintf("`%s` gets more arguments at run time (from xargs or find -exec), so what it acts on is not in the text.", showArgv(inv.argv, inv.line))
		}
	}
	if why := selectorReason(inv.argv, inv.line); why != "" && !inv.readShaped() {
		return why
	}
	return ""
}

// probeValues stand in for words built at run time when checking whether an
// invocation only reads: a number (qm status N) and a plain name (cat F).
var probeValues = []string{"0", "x"}

// readShaped reports whether the invocation would only read with a fixed
// value in place of every word built at run time and no appended arguments.
func (inv invocation) readShaped() bool {
	values := probeValues
	if !slices.ContainsFunc(inv.argv, func(w word) bool { return !w.literal }) {
		values = values[:1] // nothing to stand in for: one look is enough
	}
	for _, v := range values {
		argv := make([]word, len(inv.argv))
		for i, w := range inv.argv {
			if w.literal {
				argv[i] = w
			} else {
				argv[i] = word{text: v, literal: true}
			}
		}
		probe := &classifier{}
		if r := probe.classifyArgv(argv, callContext{fed: inv.ctx.fed}, 0); r.tier == Yellow {
			return true
		}
	}
	return false
}

// showWord quotes a word as it was written in line, the text it was parsed
// from; a word made up by the classifier is shown after quote removal.
func showWord(w word, line string) string {
	if w.src != nil {
		start, end := int(w.src.Pos().Offset()), int(w.src.End().Offset())
		if 0 <= start && start < end && end <= len(line) {
			return clip(line[start:end])
		}
	}
	return clip(strings.ReplaceAll(w.text, unknownPart, "…"))
}

func showArgv(argv []word, line string) string {
	parts := make([]string, len(argv))
	for i, w := range argv {
		parts[i] = showWord(w, line)
	}
	return clip(strings.Join(parts, " "))
}

func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ---- selectors: "every guest", "every mount", "whatever matches" ----

// selectorReason says why a fully literal, changing invocation still does not
// name what it acts on, or "".
func selectorReason(argv []word, line string) string {
	if len(argv) == 0 || !argv[0].literal {
		return ""
	}
	name := programName(argv[0].text)
	args := make([]string, len(argv)-1)
	for i, w := range argv[1:] {
		args[i] = w.text
	}
	shown := showArgv(argv, line)
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	switch name {
	case "qm", "pct":
		if slices.Contains([]string{"help", "list", "mtunnel", "cpusets"}, verb) || verb == "" {
			return ""
		}
		for _, a := range args[1:] {
			_, v, _ := strings.Cut(a, "=")
			if vmidLike(a) || vmidLike(v) {
				return ""
			}
		}
		return fmt.Sprintf("`%s` names no guest by its VMID, so which guests it acts on is not in the text.", shown)
	case "pvenode":
		if slices.Contains([]string{"startall", "stopall", "suspendall", "migrateall"}, verb) && !hasOption(args, "vms", 0) {
			return fmt.Sprintf("`%s` acts on every guest of the node (name them with --vms).", shown)
		}
	case "pvesh":
		for _, a := range args {
			a = strings.TrimRight(a, "/")
			for _, all := range []string{"/startall", "/stopall", "/suspendall", "/migrateall"} {
				if strings.HasSuffix(a, all) && !hasOption(args, "vms", 0) {
					return fmt.Sprintf("`%s` acts on every guest of a node (name them with --vms).", shown)
				}
			}
		}
	case "vzdump":
		if hasOption(args, "all", 0) || hasOption(args, "pool", 0) || hasOption(args, "exclude", 0) {
			return fmt.Sprintf("`%s` acts on every guest of the node or a pool, not on guests it names.", shown)
		}
	case "lxc-autostart":
		if !hasOption(args, "list", 'L') {
			return fmt.Sprintf("`%s` acts on every container set to start automatically.", shown)
		}
	case "umount", "swapoff", "ifdown", "ifup", "mount", "swapon":
		if hasOption(args, "all", 'a') {
			return fmt.Sprintf("`%s` acts on everything listed for it (-a/--all), not on what it names.", shown)
		}
	case "zfs", "zpool":
		if slices.Contains([]string{"mount", "unmount", "umount", "export", "import"}, verb) && hasOption(args[1:], "all", 'a') {
			return fmt.Sprintf("`%s` acts on every dataset or pool (-a), not on what it names.", shown)
		}
	case "find":
		if slices.Contains(args, "-delete") {
			return fmt.Sprintf("`%s` deletes whatever matches when it runs; which files is not in the text (name them with rm).", shown)
		}
	case "fuser":
		if hasOption(args, "kill", 'k') {
			return fmt.Sprintf("`%s` kills every process that uses the file, whichever program it is.", shown)
		}
	case "start-stop-daemon":
		if hasOption(args, "stop", 'K') {
			return fmt.Sprintf("`%s` stops processes chosen when it runs.", shown)
		}
	}
	return ""
}

// programName is the name a program is known by: the base name of a path.
func programName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// hasOption reports whether args carry --long (or --long=…) or, when short is
// not 0, -short alone or in a bundle of short options (-av).
func hasOption(args []string, long string, short byte) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "="); strings.HasPrefix(a, "--") && name == long {
			return true
		}
		if short != 0 && len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.IndexByte(a[1:], short) >= 0 {
			return true
		}
	}
	return false
}
