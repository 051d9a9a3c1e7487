package safety

// Rules for storage: mount, ZFS pools and datasets, LVM, SMART and partition
// tables.

import (
	"fmt"
	"slices"
	"strings"
)

func mountRule(k *cmdCall) result {
	if len(k.args) > 0 {
		return red("mount with arguments mounts or changes filesystems; only plain mount (listing) is read-only.")
	}
	return yellow("")
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
