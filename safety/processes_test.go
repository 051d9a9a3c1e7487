package safety

import (
	"strings"
	"testing"
)

func TestParseKill(t *testing.T) {
	tests := []struct {
		argv                  string
		pids, names, patterns string
		full, exact, fold     bool
		unnamed, unknown      string
	}{
		{argv: "kill -9 123 -456 %1", pids: "123 -456 %1"},
		{argv: "kill -s TERM -- 123", pids: "123"},
		{argv: "kill dockerd", names: "dockerd"},
		{argv: "pkill -9 -fi docker", patterns: "docker", full: true, fold: true},
		{argv: "pkill -x -u root sshd", patterns: "sshd", exact: true},
		{argv: "pkill --signal KILL --full dockerd", patterns: "dockerd", full: true},
		{argv: "pkill -uroot", unnamed: "stops every process -u root picks, whatever its name"},
		{argv: "pkill -v x", patterns: "x", unnamed: "stops every process that does not match the pattern (-v)"},
		{argv: "pkill -Z x", patterns: "x", unknown: "-Z"},
		{argv: "killall -9 -I /usr/bin/dockerd", names: "dockerd", fold: true},
		{argv: "killall -s KILL -r '^d'", patterns: "'^d'"},
		{argv: "killall --user root", unnamed: "stops every process --user root picks, whatever its name"},
		{argv: "killall -u root nginx", names: "nginx"},
	}
	for _, tc := range tests {
		f := strings.Fields(tc.argv)
		sel, ok := parseKill(f[0], f[1:])
		if !ok {
			t.Errorf("%s: not a kill", tc.argv)
			continue
		}
		got := []string{strings.Join(sel.pids, " "), strings.Join(sel.names, " "), strings.Join(sel.patterns, " "), sel.unnamed, sel.unknown}
		want := []string{tc.pids, tc.names, tc.patterns, tc.unnamed, tc.unknown}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: field %d = %q, want %q", tc.argv, i, got[i], want[i])
			}
		}
		if sel.full != tc.full || sel.exact != tc.exact || sel.fold != tc.fold {
			t.Errorf("%s: full/exact/fold = %v/%v/%v", tc.argv, sel.full, sel.exact, sel.fold)
		}
	}
	if _, ok := parseKill("kill", []string{"-l"}); ok {
		t.Error("kill -l lists signals; it selects nothing")
	}
}
