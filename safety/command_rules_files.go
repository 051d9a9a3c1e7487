package safety

// Rules for programs that read, write or delete files (grep, find, tee, rm,
// chmod/chown/chgrp), and the path checks every rule shares: devices, system
// paths, secret paths and the paths hidden in option words.

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

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

// hasDotDot reports whether p has a .. path component.
func hasDotDot(p string) bool {
	return slices.Contains(strings.Split(p, "/"), "..")
}

// cleanLower normalises a path for comparisons: lexical clean (so // and ..
// cannot disguise it) and lower case (so case tricks cannot either).
func cleanLower(p string) string { return path.Clean(strings.ToLower(p)) }
