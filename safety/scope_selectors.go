package safety

// Selectors for CheckCommand: fully literal commands that still do not name
// what they act on ("every guest", "every mount", "whatever matches").

import (
	"fmt"
	"slices"
	"strings"
)

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
