package safety

// The allowlist and the known-dangerous list for ClassifyCommand. Each rule
// sees one program invocation and returns Yellow (read-only), Red (needs a
// human) or Black (never). Read-only rules list the options they accept;
// anything else falls to Red, so a new or forgotten option is never silently
// allowed.

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

type rule func(k *cmdCall) result

// commandRules maps a program's base name to its rule.
var commandRules map[string]rule

func init() {
	commandRules = map[string]rule{
		// System facts.
		"hostname": noArgs,
		"uptime":   flagsOnly(flagSpec{short: "psh", long: []string{"pretty", "since"}}),
		"df": withSpec(flagSpec{short: "ahHiklPTv", shortValue: "Btx",
			long:      []string{"all", "human-readable", "si", "inodes", "local", "portability", "print-type", "total", "output"},
			longValue: []string{"block-size", "type", "exclude-type", "output"}}),
		"free": flagsOnly(flagSpec{short: "bkmghltwv",
			long: []string{"bytes", "kilo", "mega", "giga", "tera", "peta", "kibi", "mebi", "gibi", "tebi", "pebi", "human", "wide", "total", "si", "lohi", "committed"}}),
		"lsblk": withSpec(flagSpec{short: "abdDfJlmnpPrsStzOA", shortValue: "oeIxE",
			long:      []string{"all", "bytes", "nodeps", "discard", "fs", "json", "list", "perms", "noheadings", "paths", "pairs", "raw", "inverse", "topology", "scsi", "nvme", "virtio", "zoned", "output-all", "ascii"},
			longValue: []string{"output", "exclude", "include", "sort"}}),
		"lscpu": flagsOnly(flagSpec{short: "abcexyJBC",
			long: []string{"all", "online", "offline", "extended", "parse", "json", "hex", "physical", "bytes", "caches", "output-all"}}),
		"lspci": flagsOnly(flagSpec{short: "vnktDPmb", shortValue: "sd",
			long: []string{"verbose"}}),
		"lsusb": flagsOnly(flagSpec{short: "vt", shortValue: "sdD", long: []string{"verbose", "tree"}}),
		"uname": flagsOnly(flagSpec{short: "asnrvmpio",
			long: []string{"all", "kernel-name", "nodename", "kernel-release", "kernel-version", "machine", "processor", "hardware-platform", "operating-system"}}),
		"date": dateRule,
		// who FILE reads a login-records file: treated like any file reader.
		"who":     readerRule(flagSpec{short: "abdHlmpqrsTtuw", long: []string{"all", "boot", "dead", "heading", "login", "lookup", "process", "count", "runlevel", "short", "time", "users", "mesg"}, maxPositional: 2}, 0),
		"w":       withSpec(flagSpec{short: "hiusfo", long: []string{"no-header", "ip-addr", "short", "from", "old-style", "no-current"}, maxPositional: 1}),
		"last":    withSpec(flagSpec{short: "adFiRwx", shortValue: "nfstp", digits: true, long: []string{"dns", "fulltimes", "ip", "nohostname", "fullnames", "system", "time-format"}, longValue: []string{"limit", "file", "since", "until", "present", "time-format"}, fileValues: []string{"f", "file"}}),
		"ps":      psRule,
		"top":     topRule,
		"sensors": withSpec(flagSpec{short: "Aujf", long: []string{"no-adapter", "fahrenheit"}}),
		"findmnt": withSpec(flagSpec{short: "aAbcDfklmnrsuUvJPRi", shortValue: "FotOSTNMd",
			long:      []string{"list", "json", "pairs", "raw", "noheadings", "all", "ascii", "bytes", "canonicalize", "df", "evaluate", "first-only", "invert", "kernel", "mtab", "fstab", "nofsroot", "notruncate", "submounts", "uniq", "verify", "verbose", "real", "pseudo", "shadowed"},
			longValue: []string{"output", "types", "options", "source", "target", "tab-file", "direction", "mountpoint"}, fileValues: []string{"F", "tab-file"},
			hints: map[string]string{"p": "follows mount changes forever", "poll": "follows mount changes forever"}}),
		"mount": mountRule,
		"dmesg": withSpec(flagSpec{short: "TkuxtdrSPJ", shortValue: "lfs",
			long:      []string{"ctime", "kernel", "userspace", "decode", "reltime", "notime", "raw", "syslog", "nopager", "json", "show-delta", "color"},
			longValue: []string{"level", "facility", "since", "until", "time-format", "color", "buffer-size"},
			hints: map[string]string{"c": "clears the kernel ring buffer", "C": "clears the kernel ring buffer", "clear": "clears the kernel ring buffer", "read-clear": "clears the kernel ring buffer",
				"D": "changes console logging", "E": "changes console logging", "n": "changes console logging", "console-off": "changes console logging", "console-on": "changes console logging", "console-level": "changes console logging",
				"w": "follows the log forever", "W": "follows the log forever", "follow": "follows the log forever", "follow-new": "follows the log forever"}}),
		"journalctl": withSpec(flagSpec{short: "kxrqamlNe", shortValue: "upgotSUF", shortOptional: "nb",
			long:      []string{"no-pager", "reverse", "catalog", "dmesg", "quiet", "all", "merge", "full", "no-full", "utc", "no-hostname", "system", "list-boots", "disk-usage", "no-tail", "pager-end", "show-cursor", "fields", "boot", "lines", "case-sensitive"},
			longValue: []string{"unit", "lines", "priority", "output", "since", "until", "grep", "identifier", "boot", "field", "output-fields", "case-sensitive", "facility", "cursor", "after-cursor", "exclude-identifier"},
			hints: map[string]string{"f": "follows the journal forever", "follow": "follows the journal forever",
				"vacuum-size": "deletes journal files", "vacuum-time": "deletes journal files", "vacuum-files": "deletes journal files",
				"rotate": "rotates the journal", "flush": "flushes the journal to disk", "sync": "forces a journal sync", "relinquish-var": "moves the journal", "smart-relinquish-var": "moves the journal",
				"setup-keys": "generates sealing keys", "update-catalog": "rewrites the message catalog",
				// Reading journals from another directory or file is refused: diagnostics need the system journal only.
				"D": "reads journal files from another place", "directory": "reads journal files from another place", "file": "reads journal files from another place", "root": "reads journal files from another place", "image": "reads journal files from another place", "M": "reads another machine's journal", "machine": "reads another machine's journal",
				"cursor-file": "writes a cursor file"}}),

		// Services.
		"systemctl":          systemctlRule,
		"service":            serviceRule,
		"invoke-rc.d":        serviceRule,
		"update-rc.d":        serviceRule,
		"deb-systemd-invoke": debSystemdInvokeRule,
		"loginctl":           loginctlRule,

		// Network.
		"ip": ipRule,
		"ss": withSpec(flagSpec{short: "ahlnrtuwxpeimosbZzHO46S0TMd", shortValue: "fA",
			long:      []string{"all", "listening", "numeric", "resolve", "tcp", "udp", "raw", "unix", "processes", "extended", "memory", "info", "options", "summary", "no-header", "oneline", "ipv4", "ipv6", "sctp", "dccp", "tipc", "vsock", "threads", "mptcp", "tos", "cgroup", "inet-sockopt", "context", "contexts"},
			longValue: []string{"family", "query"},
			hints:     map[string]string{"K": "kills sockets", "kill": "kills sockets", "E": "follows socket events forever", "events": "follows socket events forever", "D": "writes a dump file", "diag": "writes a dump file", "N": "enters another network namespace", "net": "enters another network namespace"}}),
		"netstat": flagsOnly(flagSpec{short: "tulpnaresigvWexoN46CwM",
			long:  []string{"tcp", "udp", "listening", "programs", "numeric", "all", "extended", "route", "statistics", "interfaces", "groups", "verbose", "wide", "timers", "unix", "raw", "masquerade", "numeric-hosts", "numeric-ports", "numeric-users"},
			hints: map[string]string{"c": "repeats forever", "continuous": "repeats forever"}}),

		// Storage.
		"zpool":    zpoolRule,
		"zfs":      zfsRule,
		"lvs":      lvmReportRule,
		"vgs":      lvmReportRule,
		"pvs":      lvmReportRule,
		"smartctl": smartctlRule,
		"lvm":      lvmRule,
		"lvremove": blackRule("lvremove destroys logical volumes and the data on them"),
		"vgremove": blackRule("vgremove destroys volume groups and the data on them"),
		"pvremove": blackRule("pvremove wipes LVM labels from disks"),

		// Proxmox.
		"pvesh": pveshRule,
		"pvecm": pvecmRule,
		"qm":    guestRule("qm", "VM"),
		"pct":   guestRule("pct", "container"),
		"pve-firewall": func(k *cmdCall) result {
			if firstArg(k) == "stop" {
				return black("pve-firewall stop removes the firewall from the node")
			}
			return red("pve-firewall changes firewall state")
		},

		// Files and filters.
		"cat": readerRule(flagSpec{short: "AbeEnstTuv",
			long: []string{"show-all", "number-nonblank", "show-ends", "number", "squeeze-blank", "show-tabs", "show-nonprinting"}}, 0),
		"head": readerRule(flagSpec{short: "qvz", shortValue: "nc", digits: true,
			long: []string{"quiet", "silent", "verbose", "zero-terminated"}, longValue: []string{"lines", "bytes"}}, 0),
		"tail": readerRule(flagSpec{short: "qvz", shortValue: "nc", digits: true,
			long: []string{"quiet", "silent", "verbose", "zero-terminated"}, longValue: []string{"lines", "bytes"},
			hints: map[string]string{"f": "follows the file forever", "F": "follows the file forever", "follow": "follows the file forever", "retry": "follows the file forever", "pid": "follows the file forever", "s": "follows the file forever", "sleep-interval": "follows the file forever"}}, 0),
		"wc": readerRule(flagSpec{short: "clmwL",
			long: []string{"bytes", "chars", "lines", "words", "max-line-length"}, longValue: []string{"total"}}, 0),
		"stat": withSpec(flagSpec{short: "LftZ", shortValue: "c",
			long: []string{"dereference", "file-system", "terse"}, longValue: []string{"format", "printf", "cached"}}),
		"du": withSpec(flagSpec{short: "0abcDHhkLlmsSxP", shortValue: "dBtX",
			long:      []string{"all", "apparent-size", "bytes", "total", "dereference-args", "human-readable", "si", "summarize", "separate-dirs", "one-file-system", "count-links", "null", "dereference", "no-dereference", "inodes"},
			longValue: []string{"max-depth", "exclude", "block-size", "threshold", "time", "time-style", "exclude-from"}}),
		"ls": withSpec(flagSpec{short: "aAbBcCdDfFgGhHiklLmnNopqQrRsStuUvxXZ1", shortValue: "TwI",
			long: []string{"all", "almost-all", "author", "escape", "directory", "dired", "classify", "file-type", "full-time", "group-directories-first", "human-readable", "si",
				"dereference-command-line", "dereference-command-line-symlink-to-dir", "hide-control-chars", "show-control-chars", "inode", "kibibytes", "dereference", "numeric-uid-gid",
				"literal", "no-group", "quote-name", "recursive", "reverse", "size", "context", "zero", "color"},
			longValue: []string{"block-size", "color", "format", "hide", "ignore", "indicator-style", "quoting-style", "sort", "time", "time-style", "tabsize", "width"}}),
		"grep":  grepRule,
		"egrep": grepRule,
		"fgrep": grepRule,
		"sort": readerRule(flagSpec{short: "bdfgiMhnRrVcCsuz", shortValue: "ktS",
			long:      []string{"ignore-leading-blanks", "dictionary-order", "ignore-case", "general-numeric-sort", "ignore-nonprinting", "month-sort", "human-numeric-sort", "numeric-sort", "random-sort", "reverse", "version-sort", "check", "stable", "unique", "zero-terminated"},
			longValue: []string{"key", "field-separator", "buffer-size", "sort"},
			hints:     map[string]string{"o": "writes its output to a file", "output": "writes its output to a file", "compress-program": "runs another program", "T": "writes temporary files", "temporary-directory": "writes temporary files"}}, 0),
		"uniq": readerRule(flagSpec{short: "cdDiuz", shortValue: "fsw",
			long: []string{"count", "repeated", "unique", "ignore-case", "zero-terminated"}, longValue: []string{"skip-fields", "skip-chars", "check-chars", "all-repeated", "group"},
			maxPositional: 1}, 0),
		"cut": readerRule(flagSpec{short: "snz", shortValue: "bcfd",
			long: []string{"complement", "only-delimited", "zero-terminated"}, longValue: []string{"bytes", "characters", "fields", "delimiter", "output-delimiter"}}, 0),
		"echo": func(k *cmdCall) result { return yellow("") },

		// Known to change things: RED with a reason a person understands.
		"sed":     redRule("sed can write files (-i, the w command)"),
		"awk":     redRule("awk can run commands through system() and write files"),
		"gawk":    redRule("awk can run commands through system() and write files"),
		"mawk":    redRule("awk can run commands through system() and write files"),
		"less":    redRule("less is interactive and can open a shell"),
		"more":    redRule("more is interactive and can open a shell"),
		"vi":      redRule("vi is an interactive editor"),
		"vim":     redRule("vim is an interactive editor"),
		"nano":    redRule("nano is an interactive editor"),
		"find":    findRule,
		"apt":     redRule("apt installs, removes or updates packages"),
		"apt-get": redRule("apt-get installs, removes or updates packages"),
		"dpkg":    redRule("dpkg installs or removes packages"),
		"docker":  redRule("docker can start, stop and change containers"),
		"podman":  redRule("podman can start, stop and change containers"),
		"pkill":   redRule("pkill stops processes"),
		"killall": redRule("killall stops processes"),
		"kill":    killRule,
		"tee":     teeRule,

		// Destructive: BLACK.
		"dd":               blackRule("dd writes raw data and can overwrite a whole disk"),
		"wipefs":           blackRule("wipefs erases filesystem signatures from disks"),
		"shred":            blackRule("shred destroys file contents beyond recovery"),
		"blkdiscard":       blackRule("blkdiscard discards every block of a device"),
		"mke2fs":           blackRule("mke2fs creates a filesystem, erasing what was there"),
		"mkswap":           blackRule("mkswap overwrites a device with swap"),
		"mkdosfs":          blackRule("mkdosfs creates a filesystem, erasing what was there"),
		"shutdown":         blackRule("shutdown takes the node down"),
		"reboot":           blackRule("reboot takes the node and every guest on it down"),
		"poweroff":         blackRule("poweroff takes the node down"),
		"halt":             blackRule("halt takes the node down"),
		"kexec":            blackRule("kexec replaces the running kernel"),
		"killall5":         blackRule("killall5 kills every process on the node"),
		"init":             runlevelRule,
		"telinit":          runlevelRule,
		"fdisk":            partitionRule,
		"sfdisk":           partitionRule,
		"sgdisk":           partitionRule,
		"gdisk":            blackRule("gdisk rewrites partition tables"),
		"cfdisk":           blackRule("cfdisk rewrites partition tables"),
		"parted":           partitionRule,
		"iptables":         iptablesRule,
		"ip6tables":        iptablesRule,
		"iptables-nft":     iptablesRule,
		"iptables-legacy":  iptablesRule,
		"ip6tables-nft":    iptablesRule,
		"ip6tables-legacy": iptablesRule,
		"ebtables":         iptablesRule,
		"ebtables-nft":     iptablesRule,
		"ebtables-legacy":  iptablesRule,
		"arptables":        iptablesRule,
		"arptables-nft":    iptablesRule,
		"arptables-legacy": iptablesRule,
		"at":               atRule,
		"batch":            atRule,
		"busctl":           busRule,
		"dbus-send":        busRule,
		"gdbus":            busRule,
		"nft":              nftRule,
		"rm":               rmRule,
		"chmod":            recursiveChangeRule,
		"chown":            recursiveChangeRule,
		"chgrp":            recursiveChangeRule,
		"crontab":          crontabRule,
		"curl":             blackRule("curl fetches from or sends to the network; downloads are how remote code gets run"),
		"wget":             blackRule("wget fetches from the network; downloads are how remote code gets run"),
	}
}

// prefixRule covers families of programs named by prefix.
func prefixRule(name string) (rule, bool) {
	if strings.HasPrefix(name, "mkfs") {
		return blackRule(name + " creates a filesystem, erasing what was on the device"), true
	}
	return nil, false
}

// wrappers run another program; the wrapped command is classified and the
// result is never lower than RED.
var wrappers = map[string]wrapperSpec{
	"env": {valueShort: "uCS", valueLong: []string{"unset", "chdir"}, commandShort: "S", commandLong: []string{"split-string"},
		assignments: true, defaultArgv: "", why: "with a changed environment"},
	"sudo": {valueShort: "ugCDhprtTUR", valueLong: []string{"user", "group", "close-from", "chdir", "host", "prompt", "role", "type", "command-timeout", "other-user", "chroot"},
		assignments: true, why: "as another user"},
	"doas":        {valueShort: "uC", why: "as another user"},
	"su":          {valueShort: "sgGw", valueLong: []string{"shell", "group", "supp-group", "whitelist-environment"}, commandShort: "c", commandLong: []string{"command", "session-command"}, permutes: true, why: "as another user"},
	"runuser":     {valueShort: "ugGsw", valueLong: []string{"user", "group", "supp-group", "shell", "whitelist-environment"}, commandShort: "c", commandLong: []string{"command", "session-command"}, permutes: true, why: "as another user"},
	"pkexec":      {valueLong: []string{"user"}, why: "as another user"},
	"nice":        {valueShort: "n", valueLong: []string{"adjustment"}, digitOptions: true, why: "at another priority"},
	"ionice":      {valueShort: "cnpPu", valueLong: []string{"class", "classdata", "pid", "pgid", "uid"}, why: "at another I/O priority"},
	"nohup":       {why: "detached from the session"},
	"timeout":     {valueShort: "sk", valueLong: []string{"signal", "kill-after"}, operands: 1, why: "under a time limit"},
	"stdbuf":      {valueShort: "ioe", valueLong: []string{"input", "output", "error"}, why: "with changed buffering"},
	"chroot":      {valueLong: []string{"userspec", "groups"}, operands: 1, why: "inside another root directory"},
	"nsenter":     {valueShort: "tSGrwe", valueLong: []string{"target", "setuid", "setgid", "root", "wd", "env"}, why: "inside other namespaces"},
	"unshare":     {valueShort: "RwSG", valueLong: []string{"root", "wd", "setuid", "setgid", "map-user", "map-group", "propagation", "setgroups", "kill-child"}, why: "in new namespaces"},
	"setsid":      {why: "in a new session"},
	"watch":       {valueShort: "nqd", valueLong: []string{"interval", "equexit", "differences"}, joinsArgs: true, why: "repeatedly, forever"},
	"exec":        {valueShort: "a", why: "in place of the shell"},
	"command":     {why: "bypassing shell functions"},
	"builtin":     {why: "as a shell builtin"},
	"eval":        {joinsArgs: true, why: "by re-reading its arguments as shell code"},
	"time":        {valueShort: "of", valueLong: []string{"output", "format"}, why: "while timing it"},
	"strace":      {valueShort: "opesuEabIOSPX", why: "under a tracer"},
	"ltrace":      {valueShort: "opesuEaAbDFlLnSwx", why: "under a tracer"},
	"xargs":       {valueShort: "adEILnPs", valueLong: []string{"arg-file", "delimiter", "eof", "replace", "max-lines", "max-args", "max-procs", "max-chars", "process-slot-var"}, extraArgs: true, defaultArgv: "echo", why: "with arguments read from its input"},
	"flock":       {valueShort: "wE", valueLong: []string{"timeout", "conflict-exit-code"}, commandShort: "c", commandLong: []string{"command"}, operands: 1, why: "while holding a lock"},
	"taskset":     {operands: 1, why: "pinned to CPUs"},
	"chrt":        {valueShort: "TPD", valueLong: []string{"sched-runtime", "sched-period", "sched-deadline"}, operands: 1, why: "with a real-time priority"},
	"systemd-run": {valueShort: "pupEMH", valueLong: []string{"unit", "property", "slice", "setenv", "uid", "gid", "nice", "working-directory", "description", "machine", "host", "on-active", "on-boot", "on-startup", "on-unit-active", "on-unit-inactive", "on-calendar", "timer-property", "path-property", "socket-property", "service-type"}, why: "as a transient service"},
	"script":      {valueShort: "IOBTEm", commandShort: "c", commandLong: []string{"command"}, why: "inside a recorded terminal"},
	"busybox":     {why: "as a busybox applet"},
	"sg":          {commandShort: "c", operands: 1, why: "with another group"},
	"caffeinate":  {why: "while preventing sleep"},
}

// flagSpec lists the options a read-only invocation may use.
type flagSpec struct {
	short         string   // boolean short options; may be bundled (-la)
	shortValue    string   // short options with a value, attached (-n5) or next (-n 5)
	shortOptional string   // short options whose value is optional and attached or the next word if it looks like one
	long          []string // boolean long options (a name in both lists may take =value)
	longValue     []string // long options with a value, --x=v or --x v
	digits        bool     // -5 means a count (head, tail, last)
	maxPositional int      // 0 = any number; otherwise at most this many operands
	fileValues    []string // options whose value is a file the program reads (last -f): no devices
	hints         map[string]string
}

type parsedArgs struct {
	positional []string
	options    map[string][]string // option name (letter or long name) -> values ("" for booleans)
}

// parse checks args against the spec. On failure it returns a reason naming
// the refused option.
func (s flagSpec) parse(program string, args []string) (parsedArgs, string) {
	out := parsedArgs{options: map[string][]string{}}
	refuse := func(opt, name string) string {
		if why, ok := s.hints[name]; ok {
			return fmt.Sprintf("%s %s %s, so it is not read-only.", program, opt, why)
		}
		return fmt.Sprintf("%s %s is not an option on the read-only list.", program, opt)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			out.positional = append(out.positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			switch {
			case !hasValue && slices.Contains(s.long, name):
				out.options[name] = append(out.options[name], "")
			case slices.Contains(s.longValue, name):
				if !hasValue {
					if i+1 >= len(args) {
						return out, fmt.Sprintf("%s %s needs a value.", program, a)
					}
					i++
					value = args[i]
				}
				out.options[name] = append(out.options[name], value)
			default:
				return out, refuse("--"+name, name)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if s.digits && isDigits(a[1:]) {
				out.options["n"] = append(out.options["n"], a[1:])
				continue
			}
			for j := 1; j < len(a); j++ {
				letter := a[j : j+1]
				switch {
				case strings.Contains(s.short, letter):
					out.options[letter] = append(out.options[letter], "")
				case strings.Contains(s.shortValue, letter):
					value := a[j+1:]
					if value == "" {
						if i+1 >= len(args) {
							return out, fmt.Sprintf("%s -%s needs a value.", program, letter)
						}
						i++
						value = args[i]
					}
					out.options[letter] = append(out.options[letter], value)
					j = len(a)
				case strings.Contains(s.shortOptional, letter):
					value := a[j+1:]
					if value == "" && i+1 < len(args) && optionalValuePattern.MatchString(args[i+1]) {
						i++
						value = args[i]
					}
					out.options[letter] = append(out.options[letter], value)
					j = len(a)
				default:
					return out, refuse("-"+letter, letter)
				}
			}
		default:
			out.positional = append(out.positional, a)
		}
	}
	if s.maxPositional > 0 && len(out.positional) > s.maxPositional {
		return out, fmt.Sprintf("%s takes at most %d operands here; more could mean writing a file.", program, s.maxPositional)
	}
	for _, name := range s.fileValues {
		for _, f := range out.options[name] {
			if reason := contentReadProblem(f); reason != "" {
				return out, fmt.Sprintf("%s %s: %s", program, f, reason)
			}
		}
	}
	return out, ""
}

// optionalValuePattern: what journalctl -n/-b accept as a following value.
var optionalValuePattern = regexp.MustCompile(`^([+-]?[0-9]+|all|[0-9a-f]{32}([+-][0-9]+)?)$`)

// withSpec allows the options in spec and any operands.
func withSpec(spec flagSpec) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		if _, bad := spec.parse(k.name, args); bad != "" {
			return red(bad)
		}
		return yellow("")
	}
}

// flagsOnly allows the options in spec and no operands.
func flagsOnly(spec flagSpec) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		p, bad := spec.parse(k.name, args)
		if bad != "" {
			return red(bad)
		}
		if len(p.positional) > 0 {
			return red(fmt.Sprintf("%s %s: operands are not on the read-only list.", k.name, p.positional[0]))
		}
		return yellow("")
	}
}

// readerRule is for programs that read file contents: operands are files and
// must not be devices (whole disks) or climb out of the login directory.
// patternOperands operands come first and are not files (grep's pattern).
func readerRule(spec flagSpec, patternOperands int) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		p, bad := spec.parse(k.name, args)
		if bad != "" {
			return red(bad)
		}
		files := p.positional
		if len(files) > patternOperands {
			files = files[patternOperands:]
		} else {
			files = nil
		}
		for _, f := range files {
			if reason := contentReadProblem(f); reason != "" {
				return red(fmt.Sprintf("%s %s: %s", k.name, f, reason))
			}
		}
		// A raw disk named anywhere, even as an option value, is refused:
		// simpler to trust than knowing which options open files.
		for _, a := range args {
			candidates, _ := argumentCandidates(a)
			for _, c := range candidates {
				if rawDevicePattern.MatchString(cleanLower(c)) {
					return red(fmt.Sprintf("%s %s names a disk, volume or memory device, whose contents must not be read without a human.", k.name, a))
				}
			}
		}
		return yellow("")
	}
}

// rawDevicePattern matches disks, partitions, volumes and memory devices:
// reading one dumps whatever data is on it.
var rawDevicePattern = regexp.MustCompile(`^/dev/(sd|hd|vd|xvd|nvme|mmcblk|dm-|md|zd|loop|nbd|rbd|sr|mapper/|disk/|zvol/|pve/|mem$|kmem$|port$)`)

// contentReadProblem says why reading the contents of file f is not
// read-only, or "" if it is. Callers have already refused paths with ..,
// so the lexical clean cannot be fooled by a symbolic link.
func contentReadProblem(f string) string {
	if f == "-" {
		return ""
	}
	if hasDotDot(f) {
		return "the path goes up a directory with .., and the kernel follows symbolic links before it applies .., so where it leads cannot be checked; a human must approve it."
	}
	p := cleanLower(f)
	if rawDevicePattern.MatchString(p) {
		return "reading a disk, volume or memory device dumps whatever data is on it, so a human must approve it."
	}
	if p == "/dev" || (strings.HasPrefix(p, "/dev/") && p != "/dev/null" && p != "/dev/stdin") {
		return "reading device files can dump whole disks or memory, so a human must approve it."
	}
	return ""
}

func noArgs(k *cmdCall) result {
	if len(k.args) > 0 {
		return red(fmt.Sprintf("%s with arguments can change settings; only plain %s is read-only.", k.name, k.name))
	}
	return yellow("")
}

func mountRule(k *cmdCall) result {
	if len(k.args) > 0 {
		return red("mount with arguments mounts or changes filesystems; only plain mount (listing) is read-only.")
	}
	return yellow("")
}

func redRule(why string) rule {
	return func(*cmdCall) result { return red(upperFirst(why) + ", so a human must approve it.") }
}

func blackRule(why string) rule {
	return func(*cmdCall) result { return black(upperFirst(why) + "; Jarvis never runs it for an agent.") }
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func firstArg(k *cmdCall) string {
	if len(k.args) == 0 {
		return ""
	}
	return k.args[0].text
}

func dateRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	rest := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == "-I" || a == "-Idate" || a == "-Ihours" || a == "-Iminutes" || a == "-Iseconds" || a == "-Ins":
			continue // ISO format selectors
		}
		rest = append(rest, a)
	}
	spec := flagSpec{short: "uR", shortValue: "dr",
		long:      []string{"utc", "universal", "rfc-email", "iso-8601"},
		longValue: []string{"date", "reference", "rfc-3339", "iso-8601"},
		hints:     map[string]string{"s": "sets the clock", "set": "sets the clock", "f": "reads dates from a file", "file": "reads dates from a file"}}
	p, bad := spec.parse("date", rest)
	if bad != "" {
		return red(bad)
	}
	for _, op := range p.positional {
		if !strings.HasPrefix(op, "+") {
			return red(fmt.Sprintf("date %s would set the clock; only +FORMAT operands are read-only.", op))
		}
	}
	return yellow("")
}

// psRule allows ps in any form except BSD "e", which prints every process's
// environment variables (where secrets often live).
func psRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	valueNext := false
	for _, a := range args {
		if valueNext {
			valueNext = false
			continue
		}
		if a == "" {
			continue // an empty operand selects nothing
		}
		if strings.HasPrefix(a, "--") {
			name, _, has := strings.Cut(a[2:], "=")
			valueNext = !has && slices.Contains([]string{"sort", "format", "pid", "ppid", "user", "User", "group", "Group", "cols", "columns", "rows", "lines", "tty", "sid", "quick-pid"}, name)
			continue
		}
		if strings.HasPrefix(a, "-") {
			last := a[len(a)-1:]
			valueNext = len(a) == 2 && strings.Contains("oOpuUgGCtqsN", last)
			continue
		}
		// BSD-style option letters.
		if strings.ContainsAny(a, "eE") {
			return red("ps e prints the environment of every process, which can hold secrets; a human must approve it.")
		}
		last := a[len(a)-1:]
		valueNext = strings.Contains("oOpUtk", last)
	}
	return yellow("")
}

// topRule allows only a single batch snapshot: top -b -n 1 (or -bn1).
func topRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	spec := flagSpec{short: "bcHiSE", shortValue: "nopuUdwe"}
	p, bad := spec.parse("top", args)
	if bad != "" {
		return red(bad)
	}
	if len(p.positional) > 0 || len(p.options["b"]) == 0 || !slices.Equal(p.options["n"], []string{"1"}) {
		return red("top is interactive and runs forever; only the one-shot form top -bn1 is read-only.")
	}
	return yellow("")
}

// systemctl verbs.
var (
	systemctlReadVerbs  = []string{"status", "is-active", "is-enabled", "is-failed", "list-units", "list-unit-files", "show", "list-timers", "list-sockets"}
	systemctlBlackVerbs = []string{"poweroff", "reboot", "halt", "kexec", "soft-reboot", "suspend", "hibernate", "hybrid-sleep", "suspend-then-hibernate", "emergency", "rescue", "exit", "switch-root"}
	// Verbs that start a unit now, or make it start at boot or with another
	// unit. Any of them on a shutdown unit takes the node down.
	systemctlActivateVerbs = []string{"start", "restart", "try-restart", "reload-or-restart", "try-reload-or-restart", "reload-or-try-restart",
		"force-reload", "condrestart", "isolate", "enable", "reenable", "set-default", "add-wants", "add-requires", "link", "preset"}
	// shutdownUnits take the node down or out of reach when started.
	shutdownUnits = []string{"poweroff.target", "reboot.target", "halt.target", "kexec.target", "shutdown.target", "rescue.target", "emergency.target",
		"soft-reboot.target", "sleep.target", "suspend.target", "hibernate.target", "hybrid-sleep.target", "suspend-then-hibernate.target",
		"final.target", "ctrl-alt-del.target", "exit.target", "runlevel0.target", "runlevel1.target", "runlevel6.target",
		"systemd-poweroff.service", "systemd-reboot.service", "systemd-halt.service", "systemd-kexec.service", "systemd-soft-reboot.service",
		"systemd-suspend.service", "systemd-hibernate.service", "systemd-hybrid-sleep.service", "systemd-suspend-then-hibernate.service", "systemd-exit.service"}
	// isolateSafeTargets are the normal running states; isolating anything
	// else stops every unit that target does not need, sshd included.
	isolateSafeTargets = []string{"multi-user.target", "graphical.target", "default.target"}
)

var systemctlSpec = flagSpec{short: "laqr", shortValue: "tpno",
	long:      []string{"no-pager", "full", "all", "no-legend", "plain", "value", "quiet", "failed", "system", "recursive", "reverse", "after", "before", "show-types"},
	longValue: []string{"type", "state", "property", "lines", "output"},
	hints:     map[string]string{"H": "runs on another host", "host": "runs on another host", "M": "runs in another machine", "machine": "runs in another machine"}}

var systemctlValueOptions = []string{"-t", "-p", "-n", "-o", "-H", "-M", "-s", "--type", "--state", "--property", "--lines", "--output", "--host", "--machine", "--root", "--kill-whom", "--kill-value", "--signal", "--job-mode", "--what", "--timestamp", "--preset-mode", "--message", "--image", "--boot-loader-entry", "--boot-loader-menu", "--reboot-argument", "--drop-in", "--when"}

func systemctlRule(k *cmdCall) result {
	// Find the verb and the units, skipping options (and their values).
	verb, units, isolateMode := "", []word{}, false
	for i := 0; i < len(k.args); i++ {
		a := k.args[i]
		if a.literal && strings.HasPrefix(a.text, "-") {
			if a.text == "--job-mode=isolate" || a.text == "--job-mode" && i+1 < len(k.args) && k.args[i+1].text == "isolate" {
				isolateMode = true
			}
			if !strings.Contains(a.text, "=") && slices.Contains(systemctlValueOptions, a.text) {
				i++
			}
			continue
		}
		if verb == "" && a.literal {
			verb = a.text
			continue
		}
		units = append(units, a)
	}
	if verb == "" {
		verb = "list-units"
	}
	if slices.Contains(systemctlBlackVerbs, verb) {
		return black(fmt.Sprintf("systemctl %s takes the node down or out of reach; Jarvis never runs it for an agent.", verb))
	}
	if isolateMode && verb == "start" {
		verb = "isolate" // start --job-mode=isolate behaves like isolate
	}
	if slices.Contains(systemctlActivateVerbs, verb) {
		if r, bad := shutdownActivation(verb, units); bad {
			return r
		}
	}
	if slices.Contains(systemctlReadVerbs, verb) {
		args, _ := k.literalArgs()
		if _, bad := systemctlSpec.parse("systemctl", args); bad != "" {
			return red(bad)
		}
		return yellow("")
	}
	r := red(fmt.Sprintf("systemctl %s changes services, so a human must approve it.", verb))
	return k.protectUnits(r, verb, units)
}

// shutdownActivation returns a BLACK result if verb would start (now or at
// boot) a unit that takes the node down, or isolate the node to anything but
// its normal running state.
func shutdownActivation(verb string, units []word) (result, bool) {
	never := func(u string) (result, bool) {
		return black(fmt.Sprintf("systemctl %s %s can take the node down or out of reach; Jarvis never runs it for an agent.", verb, u)), true
	}
	for _, u := range units {
		if !u.literal {
			if verb == "isolate" || verb == "set-default" {
				return never(u.text)
			}
			continue
		}
		name := systemdUnitName(u.text, verb)
		if strings.ContainsAny(name, "*?[") {
			for _, s := range shutdownUnits {
				if ok, err := path.Match(name, s); ok || err != nil {
					return never(u.text)
				}
			}
		}
		if slices.Contains(shutdownUnits, name) {
			return never(u.text)
		}
		if verb == "isolate" && !slices.Contains(isolateSafeTargets, name) {
			return black(fmt.Sprintf("systemctl isolate %s stops every unit that target does not need, which can include SSH and the node's services; Jarvis never runs it for an agent.", u.text)), true
		}
	}
	return result{}, false
}

// systemdUnitName is the unit systemctl would act on: lower case, with the
// suffix systemctl adds to a bare name (.target for isolate and set-default,
// .service otherwise).
func systemdUnitName(u, verb string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if strings.Contains(u, "/") {
		u = path.Base(u) // link and enable accept unit file paths
	}
	if hasUnitSuffix(u) || strings.ContainsAny(u, "*?[") {
		return u // systemctl adds no suffix to a glob
	}
	if verb == "isolate" || verb == "set-default" {
		return u + ".target"
	}
	return u + ".service"
}

// protectUnits marks r protected if any unit names a protected service. A unit
// name built at run time could be anything, so it counts as protected.
func (k *cmdCall) protectUnits(r result, verb string, units []word) result {
	for _, u := range units {
		if svc := k.c.protectedService(u); svc != "" {
			r.protected = true
			r.protectedReason = fmt.Sprintf("Service %s is protected by configuration (JARVIS_PROTECTED_SERVICES); Jarvis will not %s it.", svc, verb)
			if u.literal && partOfService(svc, u.text) {
				r.protectedReason = fmt.Sprintf("%s is part of service %s, which is protected by configuration (JARVIS_PROTECTED_SERVICES); Jarvis will not %s it.", u.text, svc, verb)
			}
			return r
		}
	}
	return r
}

// protectedService returns the protected service that unit refers to, or "".
// docker, Docker, docker.service, docker.socket, docker@x.service and globs
// matching docker all count, and so do the units of its programs (containerd).
func (c *classifier) protectedService(u word) string {
	for _, s := range c.protected {
		want := UnitBase(s)
		if want == "" {
			continue
		}
		if !u.literal {
			return s
		}
		got := strings.ToLower(u.text)
		if UnitBase(got) == want || partOfService(want, got) {
			return s
		}
		if strings.ContainsAny(got, "*?[\\") {
			for _, unit := range append([]string{want}, serviceProcesses[want]...) {
				for _, candidate := range []string{unit, unit + ".service", unit + ".socket", unit + "@.service", unit + ".timer", unit + ".path"} {
					if ok, err := path.Match(got, candidate); ok || err != nil {
						return s
					}
				}
			}
		}
	}
	return ""
}

// unitSuffixes are the systemd unit types.
var unitSuffixes = []string{".service", ".socket", ".timer", ".path", ".mount", ".automount", ".target", ".slice", ".scope", ".device", ".swap"}

func hasUnitSuffix(u string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(u, s) {
			return true
		}
	}
	return false
}

// UnitBase reduces a systemd unit name to the service it belongs to, so that
// every form of one service compares equal: it lower-cases, strips the unit
// type suffix (.service, .socket, .timer, .path, .mount, .automount, .target,
// .slice, .scope, .device, .swap) and any @instance. "Docker",
// "docker.socket" and "docker@x.service" all give "docker".
func UnitBase(unit string) string {
	u := strings.ToLower(strings.TrimSpace(unit))
	for _, s := range unitSuffixes {
		if strings.HasSuffix(u, s) {
			u = strings.TrimSuffix(u, s)
			break
		}
	}
	if before, _, ok := strings.Cut(u, "@"); ok {
		u = before
	}
	return u
}

// serviceRule handles "service NAME ACTION" (and init scripts, invoke-rc.d).
func serviceRule(k *cmdCall) result {
	args, literal := k.literalArgs()
	if len(args) == 1 && args[0] == "--status-all" {
		return yellow("")
	}
	if len(args) == 2 && literal && args[1] == "status" {
		return yellow("")
	}
	action := "change"
	if len(args) >= 2 {
		action = args[1]
	}
	r := red(fmt.Sprintf("%s %s changes a service, so a human must approve it.", k.name, strings.Join(args, " ")))
	if len(k.args) > 0 {
		r = k.protectUnits(r, action, k.args[:1])
	}
	return r
}

// ipRule: ip [-br|-4|-6|-j|...] addr|link|route|neigh [show|list ...].
func ipRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		switch args[i] {
		case "-br", "-brief", "-4", "-6", "-j", "-json", "-d", "-details", "-s", "-stats", "-statistics", "-c", "-color", "-p", "-pretty", "-o", "-oneline", "-h", "-human":
		default:
			return red(fmt.Sprintf("ip %s is not an option on the read-only list.", args[i]))
		}
	}
	if i >= len(args) {
		return red("ip without an object is not understood.")
	}
	object := args[i]
	switch object {
	case "a", "addr", "address", "l", "link", "r", "ro", "route", "n", "neigh", "neighbor", "neighbour":
	default:
		return red(fmt.Sprintf("ip %s is not on the read-only list.", object))
	}
	rest := args[i+1:]
	if len(rest) == 0 {
		return yellow("")
	}
	switch rest[0] {
	case "show", "sh", "list", "ls", "lst":
		return yellow("")
	case "get":
		if object == "r" || object == "ro" || object == "route" {
			return yellow("")
		}
	}
	return red(fmt.Sprintf("ip %s %s changes the network configuration, so a human must approve it.", object, rest[0]))
}

// zpoolRule: zpool status|list, no interval operands (which repeat forever).
func zpoolRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	switch firstArg(k) {
	case "destroy", "labelclear":
		return black(fmt.Sprintf("zpool %s destroys a pool's data; Jarvis never runs it for an agent.", firstArg(k)))
	case "status", "list":
		spec := flagSpec{short: "DegiLpPstvxH", shortValue: "oT"}
		p, bad := spec.parse("zpool "+args[0], args[1:])
		if bad != "" {
			return red(bad)
		}
		for _, op := range p.positional {
			if isDigits(op) {
				return red("zpool with an interval repeats forever; use it without one.")
			}
		}
		return yellow("")
	}
	return red(fmt.Sprintf("zpool %s changes storage pools, so a human must approve it.", firstArg(k)))
}

func zfsRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	switch firstArg(k) {
	case "destroy":
		return black("zfs destroy deletes datasets and snapshots; Jarvis never runs it for an agent.")
	case "list", "get":
		spec := flagSpec{short: "rHp", shortValue: "dostS"}
		if _, bad := spec.parse("zfs "+args[0], args[1:]); bad != "" {
			return red(bad)
		}
		return yellow("")
	}
	return red(fmt.Sprintf("zfs %s changes datasets, so a human must approve it.", firstArg(k)))
}

// lvmReportRule: lvs/vgs/pvs only report; they accept report options only.
func lvmReportRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	spec := flagSpec{short: "aPv", shortValue: "oOS",
		long:      []string{"all", "noheadings", "nosuffix", "nameprefixes", "rows", "segments", "aligned", "unbuffered", "readonly", "verbose", "binary"},
		longValue: []string{"options", "sort", "select", "separator", "units", "reportformat"}}
	if _, bad := spec.parse(k.name, args); bad != "" {
		return red(bad)
	}
	return yellow("")
}

func smartctlRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	spec := flagSpec{short: "aHixAcjq", shortValue: "d",
		long:      []string{"all", "health", "info", "xall", "attributes", "capabilities", "json"},
		longValue: []string{"device", "json", "quietmode"},
		hints:     map[string]string{"t": "starts a self-test", "test": "starts a self-test", "s": "changes SMART settings", "smart": "changes SMART settings", "o": "changes SMART settings", "S": "changes SMART settings", "X": "aborts a self-test", "set": "changes drive settings"}}
	p, bad := spec.parse("smartctl", args)
	if bad != "" {
		return red(bad)
	}
	if len(p.positional) == 0 {
		return red("smartctl needs a device such as /dev/sda.")
	}
	for _, d := range p.positional {
		if !strings.HasPrefix(cleanLower(d), "/dev/") {
			return red(fmt.Sprintf("smartctl %s: only devices under /dev are read-only operands.", d))
		}
	}
	return yellow("")
}

var apiPathPattern = regexp.MustCompile(`^/?[A-Za-z0-9_.:@/-]*$`)

// sensitiveAPISegments are API path components whose GET requests do more
// than report cluster state: they read files inside guests or backups, probe
// other hosts with credentials, fetch URLs, or open consoles.
var sensitiveAPISegments = map[string]string{
	"agent":               "talks to the guest agent inside a VM, which can read any file in the guest",
	"file-restore":        "reads files out of backups",
	"scan":                "probes storage servers, possibly with credentials",
	"query-url-metadata":  "makes the node fetch a URL",
	"query-oci-repo-tags": "makes the node contact a container registry",
	"acme":                "reads ACME accounts or makes the node fetch an ACME directory",
	"tfa":                 "reads two-factor authentication entries",
	"vncwebsocket":        "opens a console connection",
	"mtunnelwebsocket":    "opens a migration tunnel",
	"extractconfig":       "reads configuration out of backups",
}

// sensitiveAPIPath says why GET on an API path is not read-only, or "".
func sensitiveAPIPath(p string) string {
	for _, seg := range strings.Split(strings.ToLower(p), "/") {
		if seg == ".." || seg == "." {
			return "contains a relative component (. or ..)"
		}
		if why, ok := sensitiveAPISegments[seg]; ok {
			return why
		}
	}
	return ""
}

// pveshRule: pvesh get|ls PATH [--param value ...] issues GET requests only.
func pveshRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	verb := firstArg(k)
	if verb != "get" && verb != "ls" {
		return red(fmt.Sprintf("pvesh %s changes the cluster through its API, so a human must approve it.", verb))
	}
	paths := 0
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			if name == "" {
				return red("pvesh -- is not understood.")
			}
			switch name {
			case "noborder", "noheader", "human-readable", "quiet":
				// flags may be given bare; they also accept =value
				if !hasValue && i+1 < len(args) && (args[i+1] == "0" || args[i+1] == "1") {
					i++
				}
			default:
				if !hasValue {
					if i+1 >= len(args) {
						return red(fmt.Sprintf("pvesh --%s needs a value.", name))
					}
					i++ // API parameter value
				}
			}
		case strings.HasPrefix(a, "-"):
			return red(fmt.Sprintf("pvesh %s is not understood.", a))
		default:
			paths++
			if !apiPathPattern.MatchString(a) {
				return red(fmt.Sprintf("pvesh path %s is not understood.", a))
			}
			if why := sensitiveAPIPath(a); why != "" {
				return red(fmt.Sprintf("pvesh get %s %s, so a human must approve it.", a, why))
			}
		}
	}
	if paths != 1 {
		return red("pvesh get needs exactly one API path.")
	}
	return yellow("")
}

func pvecmRule(k *cmdCall) result {
	switch firstArg(k) {
	case "expected":
		return black("pvecm expected changes the quorum and can split the cluster's brain; Jarvis never runs it for an agent.")
	case "delnode":
		return black("pvecm delnode removes a node from the cluster; Jarvis never runs it for an agent.")
	case "status", "nodes":
		if len(k.args) == 1 {
			return yellow("")
		}
	}
	return red(fmt.Sprintf("pvecm %s changes the cluster, so a human must approve it.", firstArg(k)))
}

var vmidPattern = regexp.MustCompile(`^[0-9]{1,9}$`)

// guestRule handles qm (VMs) and pct (containers).
func guestRule(program, noun string) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		verb := firstArg(k)
		switch verb {
		case "destroy":
			return black(fmt.Sprintf("%s destroy deletes a %s and its disks; Jarvis never runs it for an agent.", program, noun))
		case "list":
			spec := flagSpec{longValue: []string{"full"}, long: []string{"full"}}
			if _, bad := spec.parse(program+" list", args[1:]); bad != "" {
				return red(bad)
			}
			return yellow("")
		case "config", "status", "pending", "listsnapshot":
			spec := flagSpec{long: []string{"current", "verbose"}, longValue: []string{"current", "verbose", "snapshot"}, maxPositional: 1}
			p, bad := spec.parse(program+" "+verb, args[1:])
			if bad != "" {
				return red(bad)
			}
			if len(p.positional) != 1 || !vmidPattern.MatchString(p.positional[0]) {
				return red(fmt.Sprintf("%s %s needs one numeric ID.", program, verb))
			}
			return yellow("")
		}
		return red(fmt.Sprintf("%s %s changes a %s, so a human must approve it.", program, verb, noun))
	}
}

// grepRule: grep without recursion (a recursive search could read private
// keys anywhere under the starting directory).
func grepRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	spec := flagSpec{short: "EFGPiyvwxcLloqsbHhnTZzaIUu", shortValue: "efmABCdD",
		long: []string{"extended-regexp", "fixed-strings", "basic-regexp", "perl-regexp", "ignore-case", "no-ignore-case", "invert-match", "word-regexp", "line-regexp", "count",
			"color", "colour", "files-without-match", "files-with-matches", "only-matching", "quiet", "silent", "no-messages", "byte-offset", "with-filename", "no-filename",
			"line-number", "line-buffered", "initial-tab", "null", "null-data", "text"},
		longValue: []string{"regexp", "file", "max-count", "after-context", "before-context", "context", "label", "color", "colour", "binary-files", "devices", "directories", "include", "exclude"},
		hints: map[string]string{"r": "searches directories recursively, which could read private keys", "R": "searches directories recursively, which could read private keys",
			"recursive": "searches directories recursively, which could read private keys", "dereference-recursive": "searches directories recursively, which could read private keys"}}
	p, bad := spec.parse(k.name, args)
	if bad != "" {
		return red(bad)
	}
	for _, d := range append(p.options["d"], p.options["directories"]...) {
		if d != "read" && d != "skip" {
			return red(fmt.Sprintf("%s --directories=%s searches directories, which could read private keys.", k.name, d))
		}
	}
	patterns := 1
	if len(p.options["e"])+len(p.options["regexp"])+len(p.options["f"])+len(p.options["file"]) > 0 {
		patterns = 0
	}
	files := p.positional
	if len(files) >= patterns {
		files = files[patterns:]
	}
	for _, f := range append(files, append(p.options["f"], p.options["file"]...)...) {
		if reason := contentReadProblem(f); reason != "" {
			return red(fmt.Sprintf("%s %s: %s", k.name, f, reason))
		}
	}
	return yellow("")
}

// findRule: find can delete and run commands. Deleting from system paths is
// BLACK; -exec is classified as the command it runs.
func findRule(k *cmdCall) result {
	var starts []word
	i := 0
	for ; i < len(k.args); i++ {
		t := k.args[i].text
		if strings.HasPrefix(t, "-") || t == "(" || t == "!" {
			break
		}
		starts = append(starts, k.args[i])
	}
	r := red("find can delete files and run commands (-delete, -exec), so a human must approve it.")
	for ; i < len(k.args); i++ {
		t := k.args[i].text
		switch t {
		case "-delete":
			if len(starts) == 0 {
				r.raise(Black, "find -delete in an unknown directory could delete system files; Jarvis never runs it for an agent.")
			}
			for _, s := range starts {
				if !s.literal || isSystemPath(s.text) {
					r.raise(Black, fmt.Sprintf("find %s -delete deletes system files; Jarvis never runs it for an agent.", s.text))
				}
			}
		case "-exec", "-execdir", "-ok", "-okdir":
			j := i + 1
			for j < len(k.args) && k.args[j].text != ";" && k.args[j].text != "+" {
				j++
			}
			if j > i+1 {
				r.merge(k.c.classifyArgv(k.args[i+1:j], callContext{extraArgs: true}, k.depth+1))
			}
			i = j
		}
	}
	return r
}

func killRule(k *cmdCall) result {
	for i, a := range k.args {
		// "kill -1" alone names signal 1; after a signal option or --, -1 means every process.
		if a.text == "1" || (a.text == "-1" && i > 0) {
			return black("kill of PID 1 or -1 kills init or every process on the node; Jarvis never runs it for an agent.")
		}
	}
	return red("kill stops processes, so a human must approve it.")
}

func teeRule(k *cmdCall) result {
	for _, a := range k.args {
		if strings.HasPrefix(a.text, "-") {
			continue
		}
		if !a.literal || dangerousWriteTargets.MatchString(cleanLower(a.text)) {
			return black(fmt.Sprintf("tee into %s can crash the node or destroy a disk; Jarvis never runs it for an agent.", a.text))
		}
	}
	return red("tee writes files, so a human must approve it.")
}

func runlevelRule(k *cmdCall) result {
	switch firstArg(k) {
	case "0", "6":
		return black(fmt.Sprintf("%s %s shuts the node down or reboots it; Jarvis never runs it for an agent.", k.name, firstArg(k)))
	}
	return red(fmt.Sprintf("%s changes the runlevel, so a human must approve it.", k.name))
}

// partitionRule: listing is RED (not needed as read-only); anything else writes partition tables: BLACK.
func partitionRule(k *cmdCall) result {
	listing := map[string][]string{
		"fdisk":  {"-l", "--list", "-x", "--list-details"},
		"sfdisk": {"-l", "--list", "-d", "--dump", "-s", "--show-size", "-V", "--verify", "-J", "--json", "--list-free", "-F"},
		"sgdisk": {"-p", "--print", "-i", "--info", "-v", "--verify", "-O", "--print-mbr"},
		"parted": {"-l", "--list"},
	}[k.name]
	for _, a := range k.args {
		if slices.Contains(listing, a.text) {
			return red(fmt.Sprintf("%s %s only lists, but is not on the read-only list.", k.name, a.text))
		}
	}
	if k.name == "parted" {
		for i, a := range k.args {
			if a.text == "print" && i == len(k.args)-1 {
				return red("parted print only lists, but is not on the read-only list.")
			}
		}
	}
	return black(fmt.Sprintf("%s rewrites partition tables and can destroy every partition on a disk; Jarvis never runs it for an agent.", k.name))
}

// iptables flags that never take a value; any other letter in a bundle
// takes the rest of the word or the next word as its value.
const iptablesBoolLetters = "vnx46fhZ"

// iptablesRule: flushing, deleting chains, resetting a table or a DROP policy
// can lock everyone out (or open the node): BLACK. Covers iptables,
// ip6tables, ebtables and arptables, bundled letters (-nvF), attached values
// (-PINPUT) and unambiguous abbreviations of long options (--flu).
func iptablesRule(k *cmdCall) result {
	never := func(what string) result {
		return black(fmt.Sprintf("%s %s removes firewall rules or closes the node and can lock everyone out or open it; Jarvis never runs it for an agent.", k.name, what))
	}
	// dropPolicy reports whether the policy target at position i is DROP or REJECT.
	dropPolicy := func(i int) bool {
		if i >= len(k.args) {
			return false
		}
		t := strings.ToUpper(k.args[i].text)
		return !k.args[i].literal || t == "DROP" || t == "REJECT"
	}
	for i, a := range k.args {
		t := a.text
		if strings.HasPrefix(t, "--") {
			name, value, hasValue := strings.Cut(t[2:], "=")
			switch {
			case len(name) >= 3 && strings.HasPrefix("flush", name),
				len(name) > len("delete") && strings.HasPrefix("delete-chain", name),
				len(name) >= 3 && strings.HasPrefix("init-table", name):
				return never(t)
			case len(name) >= 2 && strings.HasPrefix("policy", name):
				target := i + 2 // --policy CHAIN TARGET
				if hasValue && value != "" {
					target = i + 1 // --policy=CHAIN TARGET
				}
				if dropPolicy(target) {
					return never(t + " ... DROP")
				}
			}
			continue
		}
		if !strings.HasPrefix(t, "-") || len(t) < 2 {
			continue
		}
		for j := 1; j < len(t); j++ {
			switch c := t[j]; {
			case c == 'F' || c == 'X':
				return never("-" + string(c))
			case c == 'P':
				target := i + 2 // -P CHAIN TARGET
				if j+1 < len(t) {
					target = i + 1 // -PCHAIN TARGET
				}
				if dropPolicy(target) {
					return never("-P ... DROP")
				}
			case strings.IndexByte(iptablesBoolLetters, c) >= 0:
				continue
			}
			break // a letter with a value takes the rest of the word
		}
	}
	return red(fmt.Sprintf("%s changes or lists firewall rules, so a human must approve it.", k.name))
}

func nftRule(k *cmdCall) result {
	for _, a := range k.args {
		// nft joins its arguments into one script: 'flush ruleset' may be one word.
		for _, tok := range strings.FieldsFunc(strings.ToLower(a.text), func(r rune) bool { return !unicode.IsLetter(r) && r != '-' }) {
			if tok == "flush" || tok == "delete" || tok == "destroy" {
				return black("nft flush/delete removes firewall rules and can lock everyone out or open the node; Jarvis never runs it for an agent.")
			}
		}
		if a.text == "-f" || strings.HasPrefix(a.text, "--file") || a.text == "-i" || a.text == "--interactive" {
			return red("nft reads rules from a file or its input, which cannot be checked, so a human must approve it.")
		}
	}
	return red("nft changes or lists firewall rules, so a human must approve it.")
}

// rmRule: recursive or forced removal of system paths (or of paths only known
// at run time) is BLACK; other removals need a human.
func rmRule(k *cmdCall) result {
	recursive, force, noPreserve := false, false, false
	var targets []word
	endOfOptions := false
	for _, a := range k.args {
		t := a.text
		switch {
		case !endOfOptions && t == "--":
			endOfOptions = true
		case !endOfOptions && a.literal && strings.HasPrefix(t, "--"):
			switch t {
			case "--recursive":
				recursive = true
			case "--force":
				force = true
			case "--no-preserve-root":
				noPreserve = true
			}
		case !endOfOptions && a.literal && strings.HasPrefix(t, "-") && len(t) > 1:
			recursive = recursive || strings.ContainsAny(t, "rR")
			force = force || strings.Contains(t, "f")
		default:
			targets = append(targets, a)
		}
	}
	if noPreserve {
		return black("rm --no-preserve-root can delete the whole filesystem; Jarvis never runs it for an agent.")
	}
	if !recursive && !force {
		return red("rm deletes files, so a human must approve it.")
	}
	if k.ctx.extraArgs {
		return black("rm -r/-f of paths that arrive at run time could delete system files; Jarvis never runs it for an agent.")
	}
	for _, t := range targets {
		if !t.literal {
			return black(fmt.Sprintf("rm -r/-f of %s, a path expanded at run time, could delete system files; Jarvis never runs it for an agent.", t.text))
		}
		if isSystemPath(t.text) {
			return black(fmt.Sprintf("rm -r/-f of %s deletes system files; Jarvis never runs it for an agent.", t.text))
		}
	}
	return red("rm deletes files, so a human must approve it.")
}

// recursiveChangeRule: chmod/chown/chgrp -R of system paths is BLACK.
func recursiveChangeRule(k *cmdCall) result {
	recursive := false
	for _, a := range k.args {
		if a.text == "--recursive" || (strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "--") && strings.Contains(a.text, "R")) {
			recursive = true
		}
	}
	if recursive {
		if k.ctx.extraArgs {
			return black(fmt.Sprintf("%s -R of paths that arrive at run time could break the system; Jarvis never runs it for an agent.", k.name))
		}
		for _, a := range k.args {
			if strings.HasPrefix(a.text, "-") {
				continue
			}
			if !a.literal || isSystemPath(a.text) {
				return black(fmt.Sprintf("%s -R of %s changes ownership or permissions of system files and can break the node; Jarvis never runs it for an agent.", k.name, a.text))
			}
		}
	}
	return red(fmt.Sprintf("%s changes file permissions, so a human must approve it.", k.name))
}

func crontabRule(k *cmdCall) result {
	for _, a := range k.args {
		if strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "--") && strings.Contains(a.text, "r") {
			return black("crontab -r deletes every scheduled job without asking; Jarvis never runs it for an agent.")
		}
	}
	return red("crontab changes or shows scheduled jobs, so a human must approve it.")
}

// systemTopDirs hold the operating system and its data. Removing one of them,
// or anything directly inside it, breaks the node.
var systemTopDirs = []string{"etc", "var", "usr", "boot", "root", "home", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt", "srv", "dev", "proc", "sys", "run", "mnt", "media"}

// systemTrees are removed from at any depth only at the node's peril.
var systemTrees = []string{"/etc", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/usr", "/var/lib/pve-cluster", "/var/lib/vz", "/var/lib/ceph", "/etc/pve"}

// isSystemPath reports whether deleting p (recursively or by force) would
// damage the node. Relative paths that climb out (.., ., ../x) are unknown
// places and count as system paths.
func isSystemPath(p string) bool {
	c := cleanLower(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return true
	}
	if !path.IsAbs(c) {
		return false
	}
	if c == "/" {
		return true
	}
	for _, t := range systemTrees {
		if c == t || strings.HasPrefix(c, t+"/") {
			return true
		}
	}
	parts := strings.Split(strings.TrimPrefix(c, "/"), "/")
	if len(parts) == 1 {
		return true // any top-level directory
	}
	return len(parts) == 2 && slices.Contains(systemTopDirs, parts[0])
}

// Secret paths: reading them would hand credentials to the agent. Prefixes
// are matched against the cleaned, lower-cased path; globs against the path
// and each of its ancestors; names against every path component.
var (
	secretPrefixes = []string{"/etc/shadow", "/etc/gshadow", "/etc/pve/priv", "/etc/pve/user.cfg", "/etc/corosync/authkey",
		"/var/lib/pve-cluster", "/proc/kcore", "/dev/mem", "/dev/kmem", "/dev/port", "/etc/security/opasswd", "/etc/ssl/private",
		"/etc/wireguard", "/etc/apt/auth.conf", "/etc/subscription", "/etc/ssmtp", "/etc/nut", "/opt/jarvis"}
	secretGlobs = []string{"/home/*/.ssh", "/root/.ssh", "/etc/ssh/ssh_host_*_key", "/etc/ssh/*_key"}
	secretNames = []string{"*id_rsa*", "*id_dsa*", "*id_ecdsa*", "*id_ed25519*", "*.key", "*.pem", "*.p12", "*.pfx", "*.keytab", "*keyring*",
		".ssh", ".gnupg", ".pgpass", ".netrc", ".git-credentials", "*credentials*", "*secret*", "*sasl_passwd*", "*htpasswd*", "*msmtprc",
		"*_history", "authkey", "*.pw", ".env", "*.env", ".env.*", ".envrc", ".docker", ".kube", ".aws", "rclone.conf"}
	// procSecrets are the entries of /proc/<pid>/ that open another process's
	// files, memory or environment. /proc/<pid>/root and cwd are links to whole
	// directory trees, so any path through them can reach any file.
	procSecrets = []string{"cwd", "root", "fd", "environ", "mem", "map_files", "task", "pagemap"}
)

// assumedHome is where a relative path lands: execute_ssh logs in as root.
const assumedHome = "/root"

// maxOptionBundle bounds how many letters a short-option word may carry
// before its attached value: each position is a place a value could start.
const maxOptionBundle = 40

// argumentCandidates returns the texts in an argument that a program could
// treat as a path: the argument itself, the value of NAME=value or
// --name=value, and for a short-option word (-nf/etc/shadow) every place an
// attached value could start. It reports false if the word bundles so many
// option letters that checking every place is not reasonable.
func argumentCandidates(arg string) ([]string, bool) {
	out := []string{arg}
	if _, v, ok := strings.Cut(arg, "="); ok {
		out = append(out, v)
	}
	if strings.HasPrefix(arg, "-") && !strings.HasPrefix(arg, "--") && len(arg) > 2 {
		end := 1
		for end < len(arg) && isAlnum(arg[end]) {
			end++
		}
		if end > maxOptionBundle {
			return out, false
		}
		for j := 2; j <= end && j < len(arg); j++ {
			out = append(out, arg[j:])
		}
	}
	return out, true
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// secretArgument reports whether an argument (or the value of an option in
// it, as in --file=/etc/shadow or -f/etc/shadow) names a secret path. It
// returns the path and why, or "" when it does not.
func secretArgument(arg string) (string, string) {
	candidates, _ := argumentCandidates(arg)
	for _, c := range candidates {
		if why := secretPath(c); why != "" {
			return c, why
		}
	}
	return "", ""
}

func secretPath(p string) string {
	if p == "" {
		return ""
	}
	c := cleanLower(p)
	if !path.IsAbs(c) {
		if c == ".." || strings.HasPrefix(c, "../") {
			return "a path that climbs out of the login directory to an unknown place"
		}
		c = path.Join(assumedHome, c)
	}
	for _, pre := range secretPrefixes {
		if strings.HasPrefix(c, pre) {
			return "which holds credentials or keys"
		}
	}
	if strings.HasPrefix(c, "/etc/ssh/") && strings.HasSuffix(c, "_key") {
		return "which holds credentials or keys" // host keys, at any depth
	}
	segs := strings.Split(c, "/")
	for i := 0; i+2 < len(segs); i++ {
		if segs[i] == "proc" && slices.Contains(procSecrets, segs[i+2]) {
			return "which opens another process's files, memory or environment"
		}
	}
	for anc := c; anc != "/"; anc = path.Dir(anc) {
		for _, g := range secretGlobs {
			if ok, _ := path.Match(g, anc); ok {
				return "which holds credentials or keys"
			}
		}
		for _, n := range secretNames {
			if ok, _ := path.Match(n, path.Base(anc)); ok {
				return "which looks like a private key or credential file"
			}
		}
	}
	return ""
}

// debSystemdInvokeRule handles "deb-systemd-invoke ACTION UNIT...".
func debSystemdInvokeRule(k *cmdCall) result {
	action := firstArg(k)
	r := red(fmt.Sprintf("deb-systemd-invoke %s changes services, so a human must approve it.", action))
	if len(k.args) > 1 {
		r = k.protectUnits(r, action, k.args[1:])
	}
	return r
}

// loginctlVerbsBlack take the node down, like their systemctl namesakes.
var loginctlVerbsBlack = []string{"poweroff", "reboot", "halt", "kexec", "soft-reboot", "suspend", "hibernate", "hybrid-sleep", "suspend-then-hibernate"}

func loginctlRule(k *cmdCall) result {
	// Every word is checked, not just the first operand, so option values
	// (loginctl -H host reboot) cannot hide the verb.
	for _, a := range k.args {
		if slices.Contains(loginctlVerbsBlack, a.text) {
			return black(fmt.Sprintf("loginctl %s takes the node down; Jarvis never runs it for an agent.", a.text))
		}
	}
	return red("loginctl can end login sessions (including the one Jarvis uses), so a human must approve it.")
}

// lvmRule: "lvm CMD ..." runs the LVM command CMD, so it is classified as
// that command; plain lvm is an LVM shell.
func lvmRule(k *cmdCall) result {
	for _, a := range k.args {
		if a.text == "lvremove" || a.text == "vgremove" || a.text == "pvremove" {
			return black(fmt.Sprintf("lvm %s destroys volumes and the data on them; Jarvis never runs it for an agent.", a.text))
		}
	}
	if len(k.args) == 0 || strings.HasPrefix(firstArg(k), "-") {
		if k.ctx.fed {
			return black("lvm reads LVM commands (lvremove, vgremove ...) from its input and runs whatever it receives; Jarvis never runs it for an agent.")
		}
		return red("lvm without a command opens the LVM shell, so a human must approve it.")
	}
	sub := k.args[0]
	if !sub.literal {
		return red("lvm runs an LVM command named at run time, so a human must approve it.")
	}
	return k.c.classifyArgv(k.args, k.ctx, k.depth+1).atLeastRed(fmt.Sprintf("lvm %s changes or reports LVM volumes, so a human must approve it.", sub.text))
}

// atRule: at and batch run the text on their input later, as a shell would.
func atRule(k *cmdCall) result {
	if k.ctx.fed {
		return black(fmt.Sprintf("%s would run the text it receives as shell commands later; Jarvis never runs it for an agent.", k.name))
	}
	return red(fmt.Sprintf("%s schedules commands, so a human must approve it.", k.name))
}

// busRule: D-Bus calls can ask logind or systemd to power off or reboot.
func busRule(k *cmdCall) result {
	for _, a := range k.args {
		low := strings.ToLower(a.text)
		for _, w := range []string{"poweroff", "reboot", "halt", "kexec", "suspend", "hibernate", "isolate", "killunit", "stopunit"} {
			if strings.Contains(low, w) {
				return black(fmt.Sprintf("%s %s asks the system to power off, reboot or stop units over D-Bus; Jarvis never runs it for an agent.", k.name, a.text))
			}
		}
	}
	return red(fmt.Sprintf("%s calls system services over D-Bus, so a human must approve it.", k.name))
}
