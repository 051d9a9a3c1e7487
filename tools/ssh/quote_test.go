package sshexec

import (
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"uptime", "uptime"},
		{"/sys/class/thermal/thermal_zone0/temp", "/sys/class/thermal/thermal_zone0/temp"},
		{"--since=today", "'--since=today'"},
		{"a b", "'a b'"},
		{"a'b", `'a'"'"'b'`},
		{"'", `''"'"''`},
		{"$(id)", "'$(id)'"},
		{"`id`", "'`id`'"},
		{"$HOME", "'$HOME'"},
		{`"x"`, `'"x"'`},
		{"a\nb", "'a\nb'"},
		{"a;b&&c|d", "'a;b&&c|d'"},
		{"*", "'*'"},
		{"~root", "'~root'"},
		{"FOO=bar", "'FOO=bar'"},
		{"\xff\xfe", "'\xff\xfe'"},
		{"héllo", "'héllo'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"systemctl", "status", "pveproxy"}, "systemctl status pveproxy"},
		{[]string{"echo", "a b", "$(id)"}, "echo 'a b' '$(id)'"},
		{[]string{"journalctl", "-u", "x; rm -rf /", "-n", "50"}, "journalctl -u 'x; rm -rf /' -n 50"},
		{[]string{"printf", "%s", ""}, "printf %s ''"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := Command(tt.argv...); got != tt.want {
			t.Errorf("Command(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}

// TestQuoteRoundTripsThroughShell feeds quoted strings to the real /bin/sh:
// whatever the bytes, the shell must hand back exactly the original.
func TestQuoteRoundTripsThroughShell(t *testing.T) {
	if _, err := exec.LookPath("/bin/sh"); err != nil {
		t.Fatalf("/bin/sh is needed for this test: %v", err)
	}
	alphabet := []byte("ab $`'\"\\\n\t;&|<>()*?[]{}~#!=%-_/.:,@+\xff\xc3\xa9")
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", "'", "''", "\\", "$(id)", "`id`", "a'b\"c", "\xff", "-n", "-e"}
	for range 300 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			if rng.IntN(8) == 0 {
				b[i] = byte(1 + rng.IntN(255)) // any byte but NUL
			} else {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		cases = append(cases, string(b))
	}
	// One shell run for all cases keeps the test fast: each is printed
	// between separators that cannot occur in the input.
	var script strings.Builder
	for _, s := range cases {
		script.WriteString("printf '%s\\000' " + Quote(s) + "\n")
	}
	out, err := exec.Command("/bin/sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	got = got[:len(got)-1]
	if len(got) != len(cases) {
		t.Fatalf("shell printed %d strings, want %d", len(got), len(cases))
	}
	for i, s := range cases {
		if got[i] != s {
			t.Errorf("Quote(%q) = %s came back as %q", s, Quote(s), got[i])
		}
	}
}

func TestQuoteSingleCaseMatchesBrief(t *testing.T) {
	// sh -c 'printf %s '"$(Quote s)" prints s.
	for _, s := range []string{"a'b", "$(id)", "line1\nline2"} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("printf %%s %s printed %q (%v), want %q", Quote(s), out, err, s)
		}
	}
}
