package safety

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// FuzzClassifyCommand checks that the classifier never panics, always gives a
// consistent verdict, and that whatever it allows passes an independent,
// deliberately simpler re-check of the read-only rules.
func FuzzClassifyCommand(f *testing.F) {
	for _, c := range allowCases {
		f.Add(c)
	}
	for _, c := range bypassCases {
		f.Add(c.cmd)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		v := ClassifyCommand(cmd, testProtected)
		if v.Reason == internalErrorReason {
			t.Fatalf("ClassifyCommand(%q) hit an internal error (a recovered panic)", cmd)
		}
		want := map[Decision]Tier{Allow: Yellow, NeedsApproval: Red, Protected: Red, Blocked: Black}
		tier, known := want[v.Decision]
		if !known || tier != v.Tier {
			t.Fatalf("ClassifyCommand(%q) = %s/%s: inconsistent verdict", cmd, v.Tier, v.Decision)
		}
		if v.Reason == "" {
			t.Fatalf("ClassifyCommand(%q): empty reason", cmd)
		}
		if v.Decision != Allow {
			return
		}
		if problem := independentReadOnlyProblem(cmd); problem != "" {
			t.Fatalf("ClassifyCommand(%q) allowed it, but the independent check says: %s", cmd, problem)
		}
	})
}

// independentAllowlist is the set of programs the spec allows to run as
// read-only. Written out here, not taken from the classifier's tables.
var independentAllowlist = []string{"hostname", "uptime", "df", "free", "lsblk", "lscpu", "lspci", "lsusb", "uname", "date", "who", "w", "last",
	"ps", "top", "sensors", "findmnt", "mount", "dmesg", "journalctl", "systemctl", "service", "invoke-rc.d", "ip", "ss", "netstat",
	"zpool", "zfs", "lvs", "vgs", "pvs", "smartctl", "pvesh", "pvecm", "qm", "pct",
	"cat", "head", "tail", "wc", "stat", "du", "ls", "grep", "egrep", "fgrep", "sort", "uniq", "cut", "echo"}

var independentHostKey = regexp.MustCompile(`^/etc/ssh/ssh_host_.*_key$`)
var independentEnviron = regexp.MustCompile(`^/proc/[^/]+/environ$`)
var independentProcLink = regexp.MustCompile(`(^|/)proc/[^/]+/(cwd|root|fd|environ|mem|map_files)(/|$)`)
var independentRawDevice = regexp.MustCompile(`^/dev/(sd|nvme|vd|mapper/|dm-|zd|disk/|mem$|kmem$|port$)`)

// independentContentReaders print the contents of every operand (grep is
// left out: its first operand is a pattern).
var independentContentReaders = []string{"cat", "head", "tail", "wc", "sort", "uniq", "cut"}

// independentReadOnlyProblem re-derives, from the parse tree alone, whether
// cmd is a single simple command or | pipeline of allowlisted programs with
// literal words and no secret path. It returns "" if so.
func independentReadOnlyProblem(cmd string) string {
	if len(cmd) > 4096 || !utf8.ValidString(cmd) {
		return "input too long or not UTF-8"
	}
	for _, r := range cmd {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return "control character"
		}
	}
	file, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(cmd), "")
	if err != nil {
		return "does not parse"
	}
	if len(file.Stmts) != 1 {
		return "not exactly one statement"
	}
	var stages []*syntax.Stmt
	var flatten func(s *syntax.Stmt) bool
	flatten = func(s *syntax.Stmt) bool {
		if b, ok := s.Cmd.(*syntax.BinaryCmd); ok {
			if b.Op != syntax.Pipe || s.Background || s.Negated || len(s.Redirs) > 0 {
				return false
			}
			return flatten(b.X) && flatten(b.Y)
		}
		stages = append(stages, s)
		return true
	}
	if !flatten(file.Stmts[0]) {
		return "not a plain pipeline"
	}
	for _, st := range stages {
		call, ok := st.Cmd.(*syntax.CallExpr)
		if !ok || st.Background || st.Negated || st.Coprocess || len(st.Redirs) > 0 || len(call.Assigns) > 0 || len(call.Args) == 0 {
			return "stage is not a simple command"
		}
		var words []string
		for _, w := range call.Args {
			text, ok := independentLiteral(w)
			if !ok {
				return "word is not a literal"
			}
			words = append(words, text)
		}
		name := words[0]
		if strings.Contains(name, "/") {
			clean := path.Clean(name)
			if !slices.Contains([]string{"/bin", "/usr/bin", "/sbin", "/usr/sbin"}, path.Dir(clean)) {
				return "program path outside the system directories"
			}
			name = path.Base(clean)
		}
		if !slices.Contains(independentAllowlist, name) {
			return "program " + name + " is not allowlisted"
		}
		for _, w := range words[1:] {
			if independentSecret(w) {
				return "argument " + w + " names a secret"
			}
			if slices.Contains(independentContentReaders, name) && independentRawDevice.MatchString(path.Clean(w)) {
				return "argument " + w + " is a raw disk or memory device"
			}
		}
	}
	return ""
}

func independentLiteral(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, part := range w.Parts {
		switch p := part.(type) {
		case *syntax.Lit:
			escaped := false
			for _, r := range p.Value {
				if escaped {
					b.WriteRune(r)
					escaped = false
					continue
				}
				if r == '\\' {
					escaped = true
					continue
				}
				if strings.ContainsRune("*?[]{}~$`()", r) {
					return "", false
				}
				b.WriteRune(r)
			}
		case *syntax.SglQuoted:
			if p.Dollar {
				return "", false
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			if p.Dollar {
				return "", false
			}
			for _, in := range p.Parts {
				lit, ok := in.(*syntax.Lit)
				if !ok {
					return "", false
				}
				b.WriteString(lit.Value) // escapes left in: only used for the secret check
			}
		default:
			return "", false
		}
	}
	return b.String(), true
}

func independentSecret(arg string) bool {
	candidates := []string{arg}
	if _, v, ok := strings.Cut(arg, "="); ok {
		candidates = append(candidates, v)
	}
	if strings.HasPrefix(arg, "-") && !strings.HasPrefix(arg, "--") && len(arg) > 2 {
		candidates = append(candidates, arg[2:])
	}
	for _, c := range candidates {
		if slices.Contains(strings.Split(c, "/"), "..") {
			return true // a symbolic link before .. can lead anywhere
		}
		p := path.Clean(strings.ToLower(c))
		base := path.Base(p)
		switch {
		case independentProcLink.MatchString(p), strings.HasPrefix(p, "/etc/wireguard"), strings.Contains(p, "sasl_passwd"),
			strings.HasSuffix(p, ".keyring"), base == ".env", strings.HasSuffix(base, ".env"):
			return true
		}
		switch {
		case strings.HasPrefix(p, "/etc/shadow"), strings.HasPrefix(p, "/etc/gshadow"), strings.HasPrefix(p, "/etc/pve/priv"),
			p == ".ssh", strings.HasPrefix(p, ".ssh/"), strings.HasSuffix(p, "/.ssh"), strings.Contains(p, "/.ssh/"),
			strings.Contains(p, "id_rsa"), strings.Contains(p, "id_ed25519"),
			strings.HasSuffix(p, ".key"), strings.HasSuffix(p, ".pem"),
			independentHostKey.MatchString(p), independentEnviron.MatchString(p):
			return true
		}
	}
	return false
}
