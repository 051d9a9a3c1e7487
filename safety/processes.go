package safety

// Killing processes by effect: kill, pkill and killall name processes, not
// services, so the processes of protected services and guests are listed here
// and matched the way those programs match them.

import (
	"fmt"
	"regexp"
	resyntax "regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// serviceProcesses lists the programs a service runs besides one named like
// the service itself or with a "d" added (corosync, dockerd, sshd): killing
// any of them stops the service or what it serves.
var serviceProcesses = map[string][]string{
	"docker":             {"dockerd", "docker-proxy", "docker-init", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc"},
	"containerd":         {"containerd-shim", "containerd-shim-runc-v2", "runc"},
	"pve-cluster":        {"pmxcfs"},
	"pveproxy":           {"pveproxy worker"},
	"pvedaemon":          {"pvedaemon worker"},
	"spiceproxy":         {"spiceproxy worker"},
	"zfs-zed":            {"zed"},
	"qemu-guest-agent":   {"qemu-ga"},
	"postgresql":         {"postgres"},
	"mariadb":            {"mariadbd", "mysqld"},
	"mysql":              {"mysqld", "mariadbd"},
	"nfs-server":         {"nfsd", "rpc.mountd"},
	"nfs-kernel-server":  {"nfsd", "rpc.mountd"},
	"samba":              {"smbd", "nmbd"},
	"openvswitch-switch": {"ovs-vswitchd", "ovsdb-server"},
}

// vmProcesses are the programs a running VM is on its node.
var vmProcesses = []string{"kvm", "qemu-system-x86_64", "qemu-system-aarch64"}

// processesOf returns the process names of a service (a unit name in any form).
func processesOf(service string) []string {
	base := UnitBase(service)
	if base == "" {
		return nil
	}
	return append([]string{base, base + "d"}, serviceProcesses[base]...)
}

// partOfService reports whether unit (any form) names one of the programs of
// a protected service other than the service itself: containerd for docker.
func partOfService(service, unit string) bool {
	return slices.Contains(serviceProcesses[UnitBase(service)], UnitBase(unit))
}

// commLength is how much of a program name the kernel keeps (comm), which is
// what pkill and killall match without -f.
const commLength = 15

// protectedProcess is a process name that belongs to something protected.
type protectedProcess struct {
	name  string // the program's name
	owner string // "service docker", "VM 103"
	env   string // the setting that protects it
}

// candidates are the texts a process can present to a pattern: its name, the
// name cut to what the kernel keeps, and with -f its command line's start.
func (pp protectedProcess) candidates(full bool) []string {
	out := []string{pp.name}
	if len(pp.name) > commLength {
		out = append(out, pp.name[:commLength])
	}
	if full {
		for _, dir := range []string{"/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/libexec/"} {
			out = append(out, dir+pp.name)
		}
	}
	return out
}

// killSelection is what one kill, pkill or killall invocation selects.
type killSelection struct {
	pids     []string // PIDs, process groups (-123) and job specs (%1)
	names    []string // exact program names (killall NAME, kill NAME)
	patterns []string // regular expressions (pkill PATTERN, killall -r)
	full     bool     // pkill -f: patterns see the whole command line
	exact    bool     // pkill -x: the pattern must match the whole name
	fold     bool     // -i / -I: case is ignored
	unnamed  string   // how it selects processes without naming them ("stops every process -u root picks, …")
	unknown  string   // an option that is not understood
}

// signalNames are the signals kill, pkill and killall take as -NAME.
var signalNames = []string{"HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
	"ALRM", "TERM", "STKFLT", "CHLD", "CLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH",
	"IO", "POLL", "PWR", "SYS", "UNUSED", "RTMIN", "RTMAX"}

// isSignal reports whether s (without its dash) names a signal: 9, KILL, SIGKILL, RTMIN+3.
func isSignal(s string) bool {
	if isDigits(s) {
		return true
	}
	u := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if i := strings.IndexAny(u, "+-"); i > 0 && isDigits(u[i+1:]) {
		u = u[:i]
	}
	return slices.Contains(signalNames, u)
}

// parseKill reads the selection of kill, pkill or killall from literal
// arguments; ok is false for other programs or when nothing is selected
// (kill -l lists signals).
func parseKill(program string, args []string) (sel killSelection, ok bool) {
	switch program {
	case "kill":
		return parseKillPIDs(args)
	case "pkill":
		return parseOptions(args, pkillOptions), true
	case "killall":
		return parseOptions(args, killallOptions), true
	}
	return sel, false
}

func parseKillPIDs(args []string) (killSelection, bool) {
	var sel killSelection
	signal, end := false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case end || a == "-" || !strings.HasPrefix(a, "-"):
			sel.operand(a)
		case a == "--":
			end = true
		case a == "-l" || a == "-L" || a == "--list" || a == "--table":
			return sel, false
		case a == "-s" || a == "-n" || a == "--signal" || a == "-q" || a == "--queue":
			i++
			signal = true
		case strings.HasPrefix(a, "--signal=") || strings.HasPrefix(a, "--queue="):
			signal = true
		case !signal && isSignal(a[1:]):
			signal = true
		case isDigits(a[1:]):
			sel.pids = append(sel.pids, a) // a process group
		default:
			sel.unknown = a
		}
	}
	return sel, true
}

// operand files one kill operand: a PID, a job, or (util-linux kill) a name.
func (sel *killSelection) operand(a string) {
	if isDigits(strings.TrimPrefix(a, "-")) || strings.HasPrefix(a, "%") {
		sel.pids = append(sel.pids, a)
	} else {
		sel.names = append(sel.names, programName(a))
	}
}

// killOptions describes the options of pkill or killall.
type killOptions struct {
	flags      string            // short options without a value
	values     string            // short options with a value
	selectors  string            // short options with a value that select processes without naming them (-u root)
	long       map[string]string // long option -> its short letter, or "" for a harmless flag
	longValues []string          // long options that take a value
	regex      bool              // operands are patterns (pkill) unless -r is missing (killall)
}

var pkillOptions = killOptions{
	flags: "cefinovxwAHlV", values: "dqrO", selectors: "gGPstuUF",
	long: map[string]string{"count": "c", "echo": "e", "full": "f", "ignore-case": "i", "newest": "n", "oldest": "o", "inverse": "v",
		"exact": "x", "lightweight": "w", "ignore-ancestors": "A", "require-handler": "H", "list-name": "l", "signal": "",
		"pgroup": "g", "group": "G", "parent": "P", "session": "s", "terminal": "t", "euid": "u", "uid": "U", "pidfile": "F",
		"ns": "u", "nslist": "", "cgroup": "u", "env": "u", "older": "O", "queue": "q", "runstates": "r", "delimiter": "d", "logpidfile": ""},
	longValues: []string{"signal", "pgroup", "group", "parent", "session", "terminal", "euid", "uid", "pidfile", "ns", "nslist",
		"cgroup", "env", "older", "queue", "runstates", "delimiter", "logpidfile"},
	regex: true,
}

var killallOptions = killOptions{
	flags: "egIiqrvwlV", values: "soyZ", selectors: "un",
	long: map[string]string{"exact": "e", "process-group": "g", "ignore-case": "I", "interactive": "i", "quiet": "q", "regexp": "r",
		"verbose": "v", "wait": "w", "list": "l", "signal": "", "user": "u", "older-than": "o", "younger-than": "y", "ns": "n", "context": "Z"},
	longValues: []string{"signal", "user", "older-than", "younger-than", "ns", "context"},
}

func parseOptions(args []string, o killOptions) killSelection {
	var sel killSelection
	var operands []string
	regex, end, selectedBy := o.regex, false, ""
	set := func(letter byte, opt string) {
		switch {
		case letter == 'f' && o.regex:
			sel.full = true
		case letter == 'x' && o.regex:
			sel.exact = true
		case letter == 'i' && o.regex, letter == 'I' && !o.regex:
			sel.fold = true
		case letter == 'r' && !o.regex:
			regex = true
		case letter == 'v' && o.regex:
			sel.unnamed = "stops every process that does not match the pattern (" + opt + ")"
		case letter == 'F':
			sel.pids = append(sel.pids, opt+" (PIDs from a file)")
		case strings.IndexByte(o.selectors, letter) >= 0 && selectedBy == "":
			selectedBy = opt
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case end || a == "-" || !strings.HasPrefix(a, "-"):
			operands = append(operands, a)
		case a == "--":
			end = true
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			letter, known := o.long[name]
			if !known {
				sel.unknown = a
				continue
			}
			opt := a
			if slices.Contains(o.longValues, name) && !hasValue && i+1 < len(args) {
				i++
				opt += " " + args[i]
			}
			if letter != "" {
				set(letter[0], opt)
			}
		case isSignal(a[1:]):
			// -9, -KILL, -SIGTERM
		default:
			for j := 1; j < len(a); j++ {
				letter := a[j]
				switch {
				case strings.IndexByte(o.flags, letter) >= 0:
					set(letter, "-"+string(letter))
				case strings.IndexByte(o.values+o.selectors, letter) >= 0:
					value := a[j+1:]
					if value == "" && i+1 < len(args) {
						i++
						value = args[i]
					}
					set(letter, "-"+string(letter)+" "+value)
					j = len(a)
				default:
					sel.unknown = a
					j = len(a)
				}
			}
		}
	}
	switch {
	case len(operands) == 0 && selectedBy != "" && sel.unnamed == "":
		sel.unnamed = "stops every process " + selectedBy + " picks, whatever its name"
	case regex:
		sel.patterns = operands
	default:
		for _, n := range operands {
			sel.names = append(sel.names, programName(n))
		}
	}
	return sel
}

// compilePattern compiles a pkill or killall -r pattern as those programs
// read it: a POSIX extended regular expression, unanchored unless exact.
func compilePattern(pattern string, exact, fold bool) (*regexp.Regexp, error) {
	// GNU regex gives \< \> \b \w \s \1 … meanings Go's POSIX syntax does not
	// (there \< is a plain <): only escapes of special characters mean the same.
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '\\' {
			if i+1 >= len(pattern) || !strings.ContainsRune(`.[]()*+?{}|^$\/-`, rune(pattern[i+1])) {
				return nil, fmt.Errorf("it uses an escape (%s) that GNU and Go read differently", pattern[i:min(i+2, len(pattern))])
			}
			i++
		}
	}
	if exact {
		pattern = "^(" + pattern + ")$"
	}
	flags := resyntax.POSIX
	if fold {
		flags |= resyntax.FoldCase
	}
	re, err := resyntax.Parse(pattern, flags)
	if err != nil {
		return nil, err
	}
	return regexp.Compile(re.String())
}

// sameName compares a name given to killall with a process's name as killall
// does: whole names, or the part the kernel keeps when the given name is that long.
func sameName(given, proc string, fold bool) bool {
	eq := func(a, b string) bool { return a == b || fold && strings.EqualFold(a, b) }
	if eq(given, proc) {
		return true
	}
	return len(given) >= commLength && len(proc) >= commLength && eq(given[:commLength], proc[:commLength])
}

// killReason returns why a kill, pkill or killall in the line reaches a
// protected service's or guest's processes, or "". Invocations with words
// built at run time are left to unresolved.
func (p Policy) killReason(rec *recording, node string, guests *guestMemo) string {
	type kill struct {
		shown string
		sel   killSelection
	}
	var kills []kill
	for _, inv := range rec.calls {
		if inv.inner || inv.ctx.extraArgs || len(inv.argv) == 0 {
			continue
		}
		args := make([]string, 0, len(inv.argv)-1)
		literal := inv.argv[0].literal
		for _, w := range inv.argv[1:] {
			args = append(args, w.text)
			literal = literal && w.literal
		}
		if !literal {
			continue
		}
		if sel, ok := parseKill(programName(inv.argv[0].text), args); ok {
			kills = append(kills, kill{showArgv(inv.argv, inv.line), sel})
		}
	}
	if len(kills) == 0 {
		return ""
	}

	var procs []protectedProcess
	for _, s := range p.ProtectedServices {
		for _, n := range processesOf(s) {
			procs = append(procs, protectedProcess{name: n, owner: "service " + strings.TrimSpace(s), env: "JARVIS_PROTECTED_SERVICES"})
		}
	}
	// A protected guest on this node runs its processes here: a VM as kvm, a
	// container as whatever runs inside it.
	var containers []int
	if slices.ContainsFunc(p.ProtectedVMIDs, func(id int) bool { return id > 0 }) {
		places, err := guests.get()
		if err != nil {
			return fmt.Sprintf("Jarvis could not look up which nodes protected guests %s are on (%v), so it cannot tell whether `%s` stops their processes; try again when the cluster answers.",
				joinInts(p.ProtectedVMIDs), err, kills[0].shown)
		}
		for _, id := range p.ProtectedVMIDs {
			g, ok := places[id]
			if !ok || !strings.EqualFold(strings.TrimSpace(g.Node), strings.TrimSpace(node)) {
				continue
			}
			if g.Kind == "lxc" {
				containers = append(containers, id)
				continue
			}
			for _, n := range vmProcesses {
				procs = append(procs, protectedProcess{name: n, owner: "VM " + strconv.Itoa(id), env: "JARVIS_PROTECTED_VMIDS"})
			}
		}
	}
	if len(procs) == 0 && len(containers) == 0 {
		return ""
	}
	for _, k := range kills {
		if why := k.sel.reaches(k.shown, procs, containers, node); why != "" {
			return why
		}
	}
	return ""
}

// reaches says why this selection can stop one of procs or a process of one
// of the protected containers running on node, or "".
func (sel killSelection) reaches(shown string, procs []protectedProcess, containers []int, node string) string {
	owners := ownersOf(procs, containers)
	switch {
	case sel.unknown != "":
		return fmt.Sprintf("`%s`: the option %s is not understood, so which processes it stops cannot be checked against the protected %s; Jarvis will not run it.", shown, sel.unknown, owners)
	case len(sel.pids) > 0:
		return fmt.Sprintf("`%s` names processes by PID (%s); which program a PID belongs to is not in the text and can change before the command runs, so it could stop a process of the protected %s. Name the program instead (pkill -x NAME, killall NAME) so Jarvis can check it.",
			shown, strings.Join(sel.pids, " "), owners)
	case sel.unnamed != "":
		return fmt.Sprintf("`%s` %s, so it could stop a process of the protected %s; Jarvis will not run it.", shown, sel.unnamed, owners)
	}
	for _, name := range sel.names {
		for _, pp := range procs {
			if sameName(name, pp.name, sel.fold) {
				return fmt.Sprintf("`%s` stops %s, a process of %s, which is protected by configuration (%s); Jarvis will not kill it.", shown, pp.name, pp.owner, pp.env)
			}
		}
	}
	for _, pattern := range sel.patterns {
		re, err := compilePattern(pattern, sel.exact, sel.fold)
		if err != nil {
			return fmt.Sprintf("`%s`: the pattern %q cannot be read as a regular expression (%v), so it could match a process of the protected %s; Jarvis will not run it.", shown, pattern, err, owners)
		}
		for _, pp := range procs {
			for _, c := range pp.candidates(sel.full) {
				if re.MatchString(c) {
					return fmt.Sprintf("`%s` matches %s, a process of %s, which is protected by configuration (%s); Jarvis will not kill it.", shown, pp.name, pp.owner, pp.env)
				}
			}
		}
	}
	if len(containers) > 0 && len(sel.names)+len(sel.patterns) > 0 {
		return fmt.Sprintf("`%s` could stop processes of container %d, which runs them on node %s and is protected by configuration (JARVIS_PROTECTED_VMIDS); Jarvis will not run it.",
			shown, containers[0], node)
	}
	return ""
}

// ownersOf names what the protected processes belong to: "service docker, VM 103".
func ownersOf(procs []protectedProcess, containers []int) string {
	var out []string
	for _, pp := range procs {
		if !slices.Contains(out, pp.owner) {
			out = append(out, pp.owner)
		}
	}
	for _, id := range containers {
		out = append(out, "container "+strconv.Itoa(id))
	}
	return strings.Join(out, ", ")
}

// kindNoun names a guest kind in a sentence.
func kindNoun(kind string) string {
	if kind == "lxc" {
		return "container"
	}
	return "VM"
}
