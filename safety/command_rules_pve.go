package safety

// Rules for Proxmox VE commands: pvesh (with the API paths that are not
// read-only), pvecm, and qm and pct for guests.

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

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
			if len(p.positional) != 1 || !vmidShaped(p.positional[0]) {
				return red(fmt.Sprintf("%s %s needs one numeric ID.", program, verb))
			}
			return yellow("")
		}
		return red(fmt.Sprintf("%s %s changes a %s, so a human must approve it.", program, verb, noun))
	}
}

// vmidShaped reports a word shaped like a VMID: digits, no longer than the
// largest VMID. Reading the config of a number that is no guest is harmless.
func vmidShaped(s string) bool { return isDigits(s) && len(s) <= pveid.MaxVMIDDigits }
