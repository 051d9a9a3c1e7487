package sshsim_test

// The simulator must print what the real tools print. This test runs each
// command on a real OpenSSH server (CI starts one with
// `eval "$(bash .ci/sshd.sh)"`) and on every demo node, both through the
// sshexec executor, and checks both outputs against one shape: the fixed
// header lines word for word, then every other line against a regex built
// from per-column patterns, and the exit status. Values differ between
// machines; the shape may not.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
	"github.com/jarvis-homelab/jarvis/tools/ssh/sshsim"
	gossh "golang.org/x/crypto/ssh"
)

// Column patterns, as the real tools print them.
const (
	dfSize   = `(?:0|\d\.\d[KMGTPE]|[1-9]\d{0,3}[KMGTPE])`                            // df -h: 0, 4.0K, 94G, 1.5T
	freeSize = `(?:\d{1,4}B|\d\.\d(?:Ki|Mi|Gi|Ti|Pi)|[1-9]\d{1,3}(?:Ki|Mi|Gi|Ti|Pi))` // free -h: 0B, 8.7Mi, 23Gi
	blkSize  = `(?:0B|\d+(?:\.\d)?[BKMGTPE])`                                         // lsblk: 0B, 1007K, 465.8G
	pct      = `(?:\d{1,3}%|-)`
	load     = `\d+\.\d\d`
	hms      = `\d\d:\d\d:\d\d`
	treeArt  = "[│├└─|` -]*" // findmnt/lsblk tree prefixes, UTF-8 or ASCII by locale
)

// plural matches "1 unit" or "N units" (N ≥ 2), never "1 units" or "0 unit".
func plural(unit string) string {
	return `(?:1 ` + unit + `|(?:[2-9]|[1-9]\d+) ` + unit + `s)`
}

// shape is what a command's output must look like on every machine.
type shape struct {
	header []string // lines printed verbatim, compared with runs of blanks collapsed
	lines  []string // regexes for the lines after the header, in order
	row    string   // regex for every line after those; "" means no more lines
	// minRows and maxRows bound how many lines match row (maxRows 0: no bound).
	minRows, maxRows int
	alignRight       bool // every value after a row's label ends where a header word ends
	code             int
}

var faithfulCases = []struct {
	command string
	shape   shape
}{
	{"uptime", shape{lines: []string{`^ ` + hms + ` up (?:` + plural("day") + `, )?(?:(?: [1-9]|1\d|2[0-3]):[0-5]\d|[1-5]?\d min), (?: \d|\d\d+) users?,  load average: ` + load + `, ` + load + `, ` + load + `$`}}},
	{"uptime -p", shape{lines: []string{`^up (?:0 minutes|` + upUnits + `(?:, ` + upUnits + `)*)$`}}},
	{"uptime -s", shape{lines: []string{`^\d{4}-\d\d-\d\d ` + hms + `$`}}},
	{"df -h", shape{header: []string{"Filesystem Size Used Avail Use% Mounted on"},
		row: `^\S+ +` + dfSize + ` +` + dfSize + ` +` + dfSize + ` +` + pct + ` /\S*$`, minRows: 1}},
	{"df -h /", shape{header: []string{"Filesystem Size Used Avail Use% Mounted on"},
		lines: []string{`^\S+ +` + dfSize + ` +` + dfSize + ` +` + dfSize + ` +` + pct + ` /$`}}},
	{"df -hT /", shape{header: []string{"Filesystem Type Size Used Avail Use% Mounted on"},
		lines: []string{`^\S+ +[a-z0-9.]+ +` + dfSize + ` +` + dfSize + ` +` + dfSize + ` +` + pct + ` /$`}}},
	{"df /", shape{header: []string{"Filesystem 1K-blocks Used Available Use% Mounted on"},
		lines: []string{`^\S+ +\d+ +\d+ +\d+ +` + pct + ` /$`}}},
	{"free -m", shape{header: []string{"total used free shared buff/cache available"},
		lines: []string{`^Mem:(?: +\d+){6}$`, `^Swap:(?: +\d+){3}$`}, alignRight: true}},
	{"free -h", shape{header: []string{"total used free shared buff/cache available"},
		lines: []string{`^Mem:(?: +` + freeSize + `){6}$`, `^Swap:(?: +` + freeSize + `){3}$`}, alignRight: true}},
	{"uname -r", shape{lines: []string{`^\d+\.\d+\.\d+(?:-[\w.+-]+)?$`}}},
	{"uname -a", shape{lines: []string{`^Linux [\w.-]+ \d+\.\d+\.\d+\S* #\d+ .+ x86_64 GNU/Linux$`}}},
	{"cat /proc/loadavg", shape{lines: []string{`^` + load + ` ` + load + ` ` + load + ` \d+/\d+ \d+$`}}},
	{"head -3 /proc/meminfo", shape{lines: []string{`^MemTotal: +\d+ kB$`, `^MemFree: +\d+ kB$`, `^MemAvailable: +\d+ kB$`}}},
	{"ps aux | head -3", shape{header: []string{"USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND"},
		row: `^[\w-]+ +\d+ +\d+\.\d +\d+\.\d +\d+ +\d+ (?:\?|pts/\d+|tty\d+) +[RSDIZTtWXxKPN<sl+L]+ +(?:\d\d:\d\d|[A-Z][a-z]{2}\d\d|\d{4}) +\d+:\d\d \S.*$`, minRows: 2, maxRows: 2}},
	{"lsblk", shape{header: []string{"NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINTS"},
		row: `^` + treeArt + `[\w-]+ +\d+:\d+ +[01] +` + blkSize + ` +[01] (?:disk|part|lvm|rom|loop|crypt|raid\d+|md) +(?:\S.*)?$`, minRows: 1}},
	{"ip -br addr", shape{row: `^[\w.@-][\w.@ -]{15} (?:UP {12}|DOWN {10}|UNKNOWN {7}|DORMANT {7}|LOWERLAYERDOWN) (?:\S+/\d+ )*$`, minRows: 2}},
	{"ip -br link", shape{row: `^[\w.@-][\w.@ -]{15} (?:UP {12}|DOWN {10}|UNKNOWN {7}|DORMANT {7}|LOWERLAYERDOWN) (?:[0-9a-f]{2}:){5}[0-9a-f]{2} <[A-Z_,]+> $`, minRows: 2}},
	{"ip addr show", shape{row: `^(?:\d+: [\w.@-]+: <[A-Z_,]+> mtu \d+ qdisc \S+(?: master \S+)? state (?:UP|DOWN|UNKNOWN) group default qlen \d+` +
		`|    link/(?:ether|loopback) (?:[0-9a-f]{2}:){5}[0-9a-f]{2} brd (?:[0-9a-f]{2}:){5}[0-9a-f]{2}` +
		`|    inet \d+\.\d+\.\d+\.\d+/\d+ (?:brd \S+ )?scope (?:host|global|link) \S+` +
		`|    inet6 [0-9a-f:]+/\d+ scope (?:host|global|link) (?:\S+ )?` +
		`|       valid_lft \S+ preferred_lft \S+)$`, minRows: 4}},
	{"date", shape{lines: []string{`^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3]\d ` + hms + ` [A-Z]{3,5} \d{4}$`}}},
	{"date -R", shape{lines: []string{`^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} ` + hms + ` [+-]\d{4}$`}}},
	{"date -I", shape{lines: []string{`^\d{4}-\d\d-\d\d$`}}},
	{"date -Iseconds", shape{lines: []string{`^\d{4}-\d\d-\d\dT` + hms + `[+-]\d\d:\d\d$`}}},
	{"date +%s", shape{lines: []string{`^1\d{9}$`}}},
	{"hostname", shape{lines: []string{`^[a-z0-9][a-z0-9-]*$`}}},
	{"hostname -I", shape{lines: []string{`^(?:[0-9a-f.:]+ )+$`}}},
	{"findmnt", shape{header: []string{"TARGET SOURCE FSTYPE OPTIONS"},
		lines: []string{`^/ +\S+ +\S+ +\S+$`}, row: `^` + treeArt + `/\S* +\S+ +\S+ +\S+$`, minRows: 1}},
	{"findmnt /", shape{header: []string{"TARGET SOURCE FSTYPE OPTIONS"}, lines: []string{`^/ +\S+ +\S+ +\S+$`}}},
	{"mount | head -3", shape{row: `^\S+ on /\S* type \S+ \(\S+\)$`, minRows: 3, maxRows: 3}},
	{"nproc", shape{lines: []string{`^[1-9]\d*$`}}},
	{"wc -l /etc/hostname", shape{lines: []string{`^1 /etc/hostname$`}}},
	{"wc /etc/hostname", shape{lines: []string{`^1 1 [2-9] /etc/hostname$`}}},
	{"wc -l /etc/hostname /etc/os-release", shape{lines: []string{`^  1 /etc/hostname$`, `^ {1,2}\d{1,2} /etc/os-release$`, `^ ?\d{2,3} total$`}}},
	{"cat /proc/loadavg | wc -w", shape{lines: []string{`^5$`}}},
	{"cat /proc/loadavg | wc", shape{lines: []string{`^ {6}1 {7}5 {6}\d\d$`}}},
	{"cat /etc/os-release | grep -c PRETTY_NAME", shape{lines: []string{`^1$`}}},
	{"tail -1 /etc/os-release", shape{lines: []string{`^BUG_REPORT_URL="https://bugs\.debian\.org/"$`}}},
	{"false", shape{code: 1}},
	{"grep nomatch-jarvis /etc/hostname", shape{code: 1}},
	{"cat /proc/loadavg | grep nomatch-jarvis", shape{code: 1}},
	{"nosuchcommand-jarvis", shape{code: 127}},
}

var upUnits = `(?:` + plural("year") + `|` + plural("week") + `|` + plural("day") + `|` + plural("hour") + `|` + plural("minute") + `)`

// check returns what is wrong with a command's output, or nil.
func (s shape) check(stdout string, code int) []string {
	var bad []string
	if code != s.code {
		bad = append(bad, fmt.Sprintf("exit status %d, want %d", code, s.code))
	}
	var lines []string
	if stdout != "" {
		if !strings.HasSuffix(stdout, "\n") {
			bad = append(bad, "output does not end with a newline")
		}
		lines = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	}
	if len(lines) < len(s.header)+len(s.lines) {
		return append(bad, fmt.Sprintf("%d lines, want at least %d", len(lines), len(s.header)+len(s.lines)))
	}
	var headerEnds map[int]bool
	for i, want := range s.header {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want {
			bad = append(bad, fmt.Sprintf("header %q, want %q", lines[i], want))
		}
		headerEnds = wordEnds(lines[i])
	}
	body := lines[len(s.header):]
	for i, pattern := range s.lines {
		if !regexp.MustCompile(pattern).MatchString(body[i]) {
			bad = append(bad, fmt.Sprintf("line %q does not match %s", body[i], pattern))
		}
	}
	rest := body[len(s.lines):]
	switch {
	case s.row == "" && len(rest) > 0:
		bad = append(bad, fmt.Sprintf("%d unexpected lines, first %q", len(rest), rest[0]))
	case s.row != "":
		if len(rest) < s.minRows || (s.maxRows > 0 && len(rest) > s.maxRows) {
			bad = append(bad, fmt.Sprintf("%d rows, want %d to %d", len(rest), s.minRows, s.maxRows))
		}
		re := regexp.MustCompile(s.row)
		for _, l := range rest {
			if !re.MatchString(l) {
				bad = append(bad, fmt.Sprintf("row %q does not match %s", l, s.row))
			}
		}
	}
	if s.alignRight {
		for _, l := range body {
			ends := wordEnds(l)
			for end := range ends {
				if end != firstWordEnd(l) && !headerEnds[end] {
					bad = append(bad, fmt.Sprintf("a value in %q ends at column %d, under no header word", l, end))
				}
			}
		}
	}
	return bad
}

// wordEnds is the set of columns just past each blank-separated word.
func wordEnds(line string) map[int]bool {
	ends := map[int]bool{}
	for i := range len(line) {
		if line[i] != ' ' && (i+1 == len(line) || line[i+1] == ' ') {
			ends[i+1] = true
		}
	}
	return ends
}

func firstWordEnd(line string) int {
	trimmed := strings.TrimLeft(line, " ")
	start := len(line) - len(trimmed)
	if i := strings.IndexByte(trimmed, ' '); i >= 0 {
		return start + i
	}
	return len(line)
}

// TestShapeCheckerRejectsDrift proves the checker can fail: outputs that
// differ from the real tools in the ways the simulator once did.
func TestShapeCheckerRejectsDrift(t *testing.T) {
	shapes := map[string]shape{}
	for _, c := range faithfulCases {
		shapes[c.command] = c.shape
	}
	tests := []struct{ command, stdout string }{
		{"uptime", " 10:00:00 up 7 days,  0:00,  1 user,  load average: 0.52, 0.61, 0.57\n"},
		{"uptime", " 10:00:00 up 1 days,  3:04,  1 user,  load average: 0.52, 0.61, 0.57\n"},
		{"uptime -p", "up 0 weeks, 1 days, 0 hours, 3 minutes\n"},
		{"df /", "Filesystem 1K-blocks Used Avail Use% Mounted on\n/dev/vda 10 5 5 50% /\n"},
		{"df -h /", "Filesystem Size Used Avail Use% Mounted on\n/dev/vda 10G 0K 10G 0% /\n"},
		{"free -h", "               total        used        free      shared  buff/cache   available\nMem:            23Gi       432Mi        21Gi       8.7Mi       1.8Gi        23Gi\nSwap:          8.0Gi         0Ki       8.0Gi\n"},
		{"free -m", "               total        used        free      shared  buff/cache   available\nMem:           24105         431       22133           8        1843      23673\nSwap:              0           0           0\n"},
		{"ip -br addr", "lo               UNKNOWN        127.0.0.1/8\nvmbr0            UP             10.0.0.10/24\n"},
		{"wc -l /etc/hostname", "1\n"},
		{"cat /proc/loadavg | wc", "1 5 27\n"},
		{"date -I", "2026-11-26T05:47:22Z\n"},
		{"false", ""},
	}
	for _, tt := range tests {
		s := shapes[tt.command]
		code := s.code
		if tt.command == "false" {
			code = 0
		}
		if bad := s.check(tt.stdout, code); len(bad) == 0 {
			t.Errorf("%s: %q passed the shape check", tt.command, tt.stdout)
		}
	}
}

// realExecutor connects to the real sshd named by JARVIS_TEST_SSHD_*: it
// skips locally without one and fails under CI, as integration_test.go does.
func realExecutor(t *testing.T) *sshexec.Executor {
	t.Helper()
	addr, user, key, known := os.Getenv("JARVIS_TEST_SSHD_ADDR"), os.Getenv("JARVIS_TEST_SSHD_USER"),
		os.Getenv("JARVIS_TEST_SSHD_KEY"), os.Getenv("JARVIS_TEST_SSHD_KNOWN_HOSTS")
	if addr == "" || user == "" || key == "" || known == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd not configured in CI; run: eval \"$(bash .ci/sshd.sh)\"")
		}
		t.Skip("sshd not configured; run: eval \"$(bash .ci/sshd.sh)\"")
	}
	e, err := sshexec.New(sshexec.Config{Nodes: map[string]string{"real": addr}, User: user, KeyPath: key, KnownHostsPath: known,
		MaxSessions: 8}) // .ci/sshd.sh allows 10
	if err != nil {
		t.Fatalf("configuring the executor for the real sshd: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// simExecutor starts the demo cluster and an executor for all its nodes.
func simExecutor(t *testing.T) (*sshexec.Executor, []string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: signer.PublicKey()})
	if err != nil {
		t.Fatalf("starting the simulator: %v", err)
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, sim.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{}
	for _, n := range sim.Nodes() {
		nodes[n] = sim.Addr(n)
	}
	e, err := sshexec.New(sshexec.Config{Nodes: nodes, Signer: signer, KnownHostsPath: known})
	if err != nil {
		t.Fatalf("configuring the executor for the simulator: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Close()
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	return e, sim.Nodes()
}

func TestFaithfulToRealShell(t *testing.T) {
	real := realExecutor(t)
	sim, nodes := simExecutor(t)
	ctx := context.Background()
	for _, c := range faithfulCases {
		t.Run(c.command, func(t *testing.T) {
			t.Parallel() // each run waits mostly on the network
			res, err := real.Run(ctx, "real", c.command, 0)
			if err != nil {
				t.Fatalf("real sshd: %v", err)
			}
			// A tool absent from the real machine cannot be compared; the
			// shell's own `command -v` tells that apart from a real 127.
			if res.ExitCode == 127 && c.shape.code != 127 {
				tool := strings.Fields(c.command)[0]
				if probe, err := real.Run(ctx, "real", "command -v "+sshexec.Quote(tool), 0); err == nil && probe.ExitCode != 0 {
					t.Skipf("%s is not installed on the real machine", tool)
				}
			}
			for _, b := range c.shape.check(res.Stdout, res.ExitCode) {
				t.Errorf("real: %s\nstdout:\n%s\nstderr: %s", b, res.Stdout, res.Stderr)
			}
			if c.shape.code == 127 && res.Stderr == "" {
				t.Error("real: a missing command printed nothing on stderr")
			}
			for _, node := range nodes {
				res, err := sim.Run(ctx, node, c.command, 0)
				if err != nil {
					t.Fatalf("sim %s: %v", node, err)
				}
				for _, b := range c.shape.check(res.Stdout, res.ExitCode) {
					t.Errorf("sim %s: %s\nstdout:\n%s\nstderr: %s", node, b, res.Stdout, res.Stderr)
				}
				if c.shape.code == 127 && res.Stderr == "" {
					t.Errorf("sim %s: a missing command printed nothing on stderr", node)
				}
			}
		})
	}
}
