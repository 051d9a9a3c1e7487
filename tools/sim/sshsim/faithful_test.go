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
	"sync"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Column patterns, as the real tools print them. Each accepts every value
// the tool can print, not only the ones seen on one machine: the recorded
// outputs in testdata/machines hold the variants (see TestRecordedMachines).
const (
	dfSize = `(?:0|\d\.\d[KMGTPE]|[1-9]\d{0,3}[KMGTPE])` // df -h: 0, 4.0K, 94G, 1.5T
	// free -h: 0B, 900Ki, 9Mi (procps 4.0.4), 9.9Mi, 23Gi, 1.5Ti
	freeSize = `(?:\d{1,4}B|\d\.\d(?:Ki|Mi|Gi|Ti|Pi)|[1-9]\d{0,3}(?:Ki|Mi|Gi|Ti|Pi))`
	blkSize  = `(?:0B|\d+(?:\.\d)?[BKMGTPE])` // lsblk: 0B, 1007K, 465.8G
	pct      = `(?:\d{1,3}%|-)`
	load     = `\d+\.\d\d`
	hms      = `\d\d:\d\d:\d\d`
	treeArt  = "[│├└─|` -]*" // findmnt/lsblk tree prefixes, UTF-8 or ASCII by locale
	mac      = `(?:[0-9a-f]{2}:){5}[0-9a-f]{2}`
	ipv4     = `\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`
	// ip(8) interface names: eth0, vmbr0.20, veth100i0@if2, fwln102i0@fwpr102p0, gre0@NONE.
	ifName = `[\w.-]+(?:@[\w.-]+)?`
	// ip(8) address flags (iproute2's ifa_flag_names table).
	addrFlag = `(?:secondary|temporary|nodad|optimistic|dadfailed|home|deprecated|tentative|permanent|mngtmpaddr|noprefixroute|autojoin|stable-privacy|dynamic)`
)

// operStates are ip(8)'s operational states (iproute2's oper_states table).
var operStates = []string{"UP", "DOWN", "UNKNOWN", "DORMANT", "LOWERLAYERDOWN", "NOTPRESENT", "TESTING"}

var operState = `(?:` + strings.Join(operStates, "|") + `)`

// ipAddrLine is every line `ip addr show` prints, per ip-address(8) and
// iproute2's print_linkinfo/print_addrinfo: qlen is left out when the queue
// length is 0 (docker0), link/none has no address (WireGuard, tun), a moved
// veth names its peer's namespace, newer iproute2 adds `altname` lines and
// `proto kernel_ll`, DHCP addresses carry `metric` and `dynamic`.
var ipAddrLine = `^(?:\d+: ` + ifName + `: <[A-Z0-9_,-]*> mtu \d+(?: xdp\S*)? qdisc \S+(?: master \S+)? state ` + operState + `(?: mode \S+)? group \S+(?: qlen \d+| )` +
	`|    link/(?:ether|loopback|ieee802\.11) ` + mac + ` brd ` + mac + `(?: permaddr ` + mac + `| link-netns \S+| link-netnsid \d+)*` +
	`|    link/none ?` +
	`|    altname \S+` +
	`|    inet ` + ipv4 + `/\d+(?: peer ` + ipv4 + `/\d+)?(?: metric \d+)?(?: brd ` + ipv4 + `)? scope (?:host|global|link|site|\d+) (?:` + addrFlag + ` )*[\w.:@-]+(?: proto \S+)? ?` +
	`|    inet6 [0-9a-f:]+/\d+(?: peer [0-9a-f:]+/\d+)?(?: metric \d+)? scope (?:host|global|link|site|\d+) (?:` + addrFlag + ` )*(?:proto \S+ )?` +
	`|       valid_lft (?:forever|\d+sec) preferred_lft (?:forever|\d+sec))$`

// brief is a `%-Ns ` column of ip -br: the value padded to width, then a
// blank; a longer value pushes the rest of the line right.
func brief(value string, width int) string {
	alts := []string{value + `{` + fmt.Sprint(width) + `,} `}
	for n := 1; n < width; n++ {
		alts = append(alts, value+`{`+fmt.Sprint(n)+`} {`+fmt.Sprint(width-n+1)+`}`)
	}
	return `(?:` + strings.Join(alts, "|") + `)`
}

// briefState is ip -br's state column: one of the states, padded to 14.
func briefState() string {
	var alts []string
	for _, s := range operStates {
		alts = append(alts, s+strings.Repeat(" ", max(14-len(s), 0)+1))
	}
	return `(?:` + strings.Join(alts, "|") + `)`
}

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
	countsAligned    bool // wc: on every line, each count ends in the same column
	code             int
}

var faithfulCases = []struct {
	command string
	shape   shape
}{
	{"uptime", shape{lines: []string{`^ ` + hms + ` up (?:` + plural("day") + `, )?(?:(?: [1-9]|1\d|2[0-3]):[0-5]\d|[1-5]?\d min), (?: \d|\d\d+) users?,  load average: ` + load + `, ` + load + `, ` + load + `$`}}},
	{"uptime -p", shape{lines: []string{`^up (?:` + upUnits + `, )*(?:0 minutes|` + plural("minute") + `)$`}}}, // procps-ng 4.0: minutes always last, even 0
	{"uptime -s", shape{lines: []string{`^\d{4}-\d\d-\d\d ` + hms + `$`}}},
	{"df -h", shape{header: []string{"Filesystem Size Used Avail Use% Mounted on"},
		row: `^\S+ +` + dfSize + ` +` + dfSize + ` +` + dfSize + ` +` + pct + ` /.*$`, minRows: 1}},
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
	{"uname -a", shape{lines: []string{`^Linux [\w.-]+ \d+\.\d+\.\d+\S* #\d+ .+ \w+ GNU/Linux$`}}},
	{"cat /proc/loadavg", shape{lines: []string{`^` + load + ` ` + load + ` ` + load + ` \d+/\d+ \d+$`}}},
	{"head -3 /proc/meminfo", shape{lines: []string{`^MemTotal: +\d+ kB$`, `^MemFree: +\d+ kB$`, `^MemAvailable: +\d+ kB$`}}},
	{"ps aux | head -3", shape{header: []string{"USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND"},
		row: `^[\w.+-]+ +\d+ +\d+\.\d +\d+\.\d +\d+ +\d+ (?:\?|pts/\d+|tty\w+|console) +[RSDIZTtWXxKPN<sl+L]+ +(?:\d\d:\d\d|[A-Z][a-z]{2}\d\d|\d{4}) +\d+:\d\d \S.*$`, minRows: 2, maxRows: 2}},
	{"lsblk", shape{header: []string{"NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINTS"},
		row: `^(?:` + treeArt + `[\w-]+ +\d+:\d+ +[01] +` + blkSize + ` +[01] (?:disk|part|lvm|rom|loop|crypt|raid\d+|md|mpath|dm) +(?:\S.*)?` +
			"|[│| ]+/\\S*)$", minRows: 1}}, // a device's second and later mount points stand alone on their line
	{"ip -br addr", shape{row: `^` + brief(`[\w.@-]`, 16) + briefState() + `(?:\S+/\d+ )*$`, minRows: 2}},
	{"ip -br link", shape{row: `^` + brief(`[\w.@-]`, 16) + briefState() + `(?:` + mac + ` )?<[A-Z0-9_,-]*> $`, minRows: 2}},
	{"ip addr show", shape{row: ipAddrLine, minRows: 4}},
	{"date", shape{lines: []string{`^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3]\d ` + hms + ` (?:[A-Z]{2,5}|[+-]\d\d(?:\d\d)?) \d{4}$`}}},
	{"date -R", shape{lines: []string{`^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} ` + hms + ` [+-]\d{4}$`}}},
	{"date -I", shape{lines: []string{`^\d{4}-\d\d-\d\d$`}}},
	{"date -Iseconds", shape{lines: []string{`^\d{4}-\d\d-\d\dT` + hms + `[+-]\d\d:\d\d$`}}},
	{"date +%s", shape{lines: []string{`^1\d{9}$`}}},
	{"hostname", shape{lines: []string{`^[A-Za-z0-9][A-Za-z0-9.-]*$`}}},
	{"hostname -I", shape{lines: []string{`^(?:[0-9a-f.:]+ )*$`}}}, // an empty line without addresses
	{"findmnt", shape{header: []string{"TARGET SOURCE FSTYPE OPTIONS"},
		lines: []string{`^/ +\S+ +\S+ +\S+$`}, row: `^` + treeArt + `/\S* +\S+ +\S+ +\S+$`, minRows: 1}},
	{"findmnt /", shape{header: []string{"TARGET SOURCE FSTYPE OPTIONS"}, lines: []string{`^/ +\S+ +\S+ +\S+$`}}},
	{"mount | head -3", shape{row: `^\S+ on /\S* type \S+ \(\S+\)$`, minRows: 3, maxRows: 3}},
	{"nproc", shape{lines: []string{`^[1-9]\d*$`}}},
	{"wc -l /etc/hostname", shape{lines: []string{`^1 /etc/hostname$`}}},
	// wc pads every count to the width of the largest one, here the byte count.
	{"wc /etc/hostname", shape{lines: []string{`^ *1 +1 +(?:[2-9]|[1-9]\d+) /etc/hostname$`}, countsAligned: true}},
	{"wc -l /etc/hostname /etc/os-release", shape{lines: []string{`^ *1 /etc/hostname$`, `^ *[1-9]\d* /etc/os-release$`, `^ *[1-9]\d+ total$`}, countsAligned: true}},
	{"cat /proc/loadavg | wc -w", shape{lines: []string{`^5$`}}},
	{"cat /proc/loadavg | wc", shape{lines: []string{`^ {6}1 {7}5 {6}\d\d$`}}}, // stdin: GNU wc pads to 7
	{"cat /etc/os-release | grep -c PRETTY_NAME", shape{lines: []string{`^1$`}}},
	{"tail -1 /etc/os-release", shape{lines: []string{`^[A-Z_]+=.*$`}}}, // os-release(5): KEY=value lines
	{"false", shape{code: 1}},
	{"grep nomatch-jarvis /etc/hostname", shape{code: 1}},
	{"cat /proc/loadavg | grep nomatch-jarvis", shape{code: 1}},
	{"nosuchcommand-jarvis", shape{code: 127}},
}

var upUnits = `(?:` + plural("year") + `|` + plural("week") + `|` + plural("day") + `|` + plural("hour") + `)`

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
	if s.countsAligned {
		bad = append(bad, countsAligned(body)...)
	}
	return bad
}

// countsAligned checks wc's layout: every count is right-aligned in a
// column of one width w (the first ends at column w, the next w+1 later),
// the same on every line; the last word is the file name.
func countsAligned(lines []string) []string {
	var bad []string
	var first []int
	for _, l := range lines {
		ends := sortedEnds(l)
		if len(ends) < 2 {
			bad = append(bad, fmt.Sprintf("%q has no counts", l))
			continue
		}
		counts := ends[:len(ends)-1]
		w := counts[0]
		for i := 1; i < len(counts); i++ {
			if counts[i]-counts[i-1] != w+1 {
				bad = append(bad, fmt.Sprintf("counts in %q are not in columns of width %d", l, w))
			}
		}
		if first == nil {
			first = counts
		} else if fmt.Sprint(first) != fmt.Sprint(counts) {
			bad = append(bad, fmt.Sprintf("counts in %q end in columns %v, the first line's in %v", l, counts, first))
		}
	}
	return bad
}

// sortedEnds lists the columns just past each blank-separated word.
func sortedEnds(line string) []int {
	var ends []int
	for i := range len(line) {
		if line[i] != ' ' && (i+1 == len(line) || line[i+1] == ' ') {
			ends = append(ends, i+1)
		}
	}
	return ends
}

// wordEnds is sortedEnds as a set.
func wordEnds(line string) map[int]bool {
	ends := map[int]bool{}
	for _, e := range sortedEnds(line) {
		ends[e] = true
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
		{"uptime -p", "up 9 hours\n"}, // procps-ng 4.0 always ends with the minutes
		{"df /", "Filesystem 1K-blocks Used Avail Use% Mounted on\n/dev/vda 10 5 5 50% /\n"},
		{"df -h /", "Filesystem Size Used Avail Use% Mounted on\n/dev/vda 10G 0K 10G 0% /\n"},
		{"free -h", "               total        used        free      shared  buff/cache   available\nMem:            23Gi       432Mi        21Gi       8.7Mi       1.8Gi        23Gi\nSwap:          8.0Gi         0Ki       8.0Gi\n"},
		{"free -m", "               total        used        free      shared  buff/cache   available\nMem:           24105         431       22133           8        1843      23673\nSwap:              0           0           0\n"},
		{"ip -br addr", "lo               UNKNOWN        127.0.0.1/8\nvmbr0            UP             10.0.0.10/24\n"},
		{"wc -l /etc/hostname", "1\n"},
		{"wc /etc/hostname", "1 1 20 /etc/hostname\n"},                                               // counts not padded to one width
		{"wc -l /etc/hostname /etc/os-release", "1 /etc/hostname\n  9 /etc/os-release\n 10 total\n"}, // ragged column
		{"free -h", "               total        used        free      shared  buff/cache   available\nMem:            23Gi       432Mi        21Gi        10.5Mi       1.8Gi        23Gi\nSwap:             0B          0B          0B\n"},
		{"ip -br link", "lo UNKNOWN 00:00:00:00:00:00 <LOOPBACK,UP,LOWER_UP> \neth0 UP 02:fc:00:00:00:01 <BROADCAST,MULTICAST,UP,LOWER_UP> \n"},
		{"ip -br link", "lo               UNKNOWN        00:00:00:00:00:00 <LOOPBACK,UP,LOWER_UP>\neth0             UP             02:fc:00:00:00:01 <BROADCAST,MULTICAST,UP,LOWER_UP>\n"},
		{"ip addr show", "2: docker0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default\n    link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff\n    inet 172.17.0.1/16 scope global docker0\n       valid_lft forever preferred_lft forever\n"},
		{"ip addr show", "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n    valid_lft forever preferred_lft forever\n"},
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

// A recorded machine is a file in testdata/machines: comment lines starting
// with '#' say where and how it was recorded, then each command as
// "$ command" followed by exactly what it printed (exit status 0).
type recording struct {
	command, stdout string
}

func readMachine(t *testing.T, path string) []recording {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []recording
	for _, line := range strings.SplitAfter(string(data), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "$ "):
			recs = append(recs, recording{command: strings.TrimSuffix(line[2:], "\n")})
		case len(recs) == 0 && strings.HasPrefix(line, "#"):
		case len(recs) == 0:
			t.Fatalf("%s: %q before the first \"$ command\" line", path, line)
		default:
			recs[len(recs)-1].stdout += line
		}
	}
	return recs
}

// TestRecordedMachines checks the shapes against real outputs recorded on
// machines unlike the one CI runs on (bridges without carrier, bonds and
// VLANs, little and much memory, long host names), so a pattern that is
// narrower than the real tool fails here, wherever CI happens to run.
func TestRecordedMachines(t *testing.T) {
	shapes := map[string]shape{}
	for _, c := range faithfulCases {
		shapes[c.command] = c.shape
	}
	files, err := filepath.Glob(filepath.Join("testdata", "machines", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded machines in testdata/machines (%v)", err)
	}
	seen := map[string]int{}
	for _, f := range files {
		for _, r := range readMachine(t, f) {
			s, ok := shapes[r.command]
			if !ok {
				t.Errorf("%s: %q is not one of the faithful commands", f, r.command)
				continue
			}
			seen[r.command]++
			for _, b := range s.check(r.stdout, 0) {
				t.Errorf("%s: $ %s: %s", filepath.Base(f), r.command, b)
			}
		}
	}
	// The variants the issue named must stay covered by more than one machine.
	for _, c := range []string{"ip addr show", "ip -br addr", "ip -br link", "free -h", "free -m"} {
		if seen[c] < 2 {
			t.Errorf("%q is recorded on %d machines, want at least 2", c, seen[c])
		}
	}
}

// recordMachine writes the real machine's outputs as a new recording when
// JARVIS_RECORD_MACHINE names a file, to add a machine shape to testdata.
func recordMachine(t *testing.T) func(command, stdout string) {
	path := os.Getenv("JARVIS_RECORD_MACHINE")
	if path == "" {
		return func(string, string) {}
	}
	var mu sync.Mutex
	got := map[string]string{}
	t.Cleanup(func() {
		var b strings.Builder
		host, _ := os.Hostname()
		fmt.Fprintf(&b, "# recorded by TestFaithfulToRealShell over SSH on %s\n", host)
		for _, c := range faithfulCases {
			if out, ok := got[c.command]; ok {
				fmt.Fprintf(&b, "$ %s\n%s", c.command, out)
			}
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	})
	return func(command, stdout string) {
		mu.Lock()
		defer mu.Unlock()
		got[command] = stdout
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
	record := recordMachine(t)
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
			if res.ExitCode == 0 && c.shape.code == 0 {
				record(c.command, res.Stdout)
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
