package safety

// The allowlist and the known-dangerous list for ClassifyCommand. Each rule
// sees one program invocation and returns Yellow (read-only), Red (needs a
// human) or Black (never). Read-only rules list the options they accept;
// anything else falls to Red, so a new or forgotten option is never silently
// allowed.
//
// This file holds the table of rules and the generic ones; the rules for each
// kind of program are in command_rules_*.go.

import (
	"fmt"
	"strings"
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

func noArgs(k *cmdCall) result {
	if len(k.args) > 0 {
		return red(fmt.Sprintf("%s with arguments can change settings; only plain %s is read-only.", k.name, k.name))
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
