package sshsim

import (
	"strings"
	"testing"
)

// list-units answers as systemd's table does, in the forms scripts ask for.
func TestListUnitsAsSystemdPrintsThem(t *testing.T) {
	s := start(t)
	const smartd = "smartd.service loaded failed failed Self Monitoring and Reporting Technology (SMART) Daemon\n"
	for _, c := range []struct {
		node, command, want string
	}{
		// What the watcher runs: no glyph, no header, no count.
		{"agent", "systemctl list-units --state=failed --type=service --plain --no-legend --no-pager --full", smartd},
		{"agent", "systemctl --failed --plain --no-legend", smartd},
		{"agent", "systemctl list-units --state failed -t service --plain --no-legend", smartd},
		// Nothing failed: nothing at all.
		{"pve", "systemctl list-units --state=failed --type=service --plain --no-legend --no-pager --full", ""},
		// Other unit types hold no services.
		{"agent", "systemctl list-units --state=failed --type=timer --plain --no-legend", ""},
		// The glyph column marks the failed unit; the header widens the columns.
		{"agent", "systemctl list-units --failed", "  UNIT           LOAD   ACTIVE SUB    DESCRIPTION\n● " + smartd + "\n1 loaded units listed.\n"},
	} {
		out, errOut, code := s.run(t, c.node, c.command)
		if code != 0 || errOut != "" || out != c.want {
			t.Errorf("%s: %s\nexit %d, stderr %q, stdout:\n%q\nwant:\n%q", c.node, c.command, code, errOut, out, c.want)
		}
	}
	// Columns line up across rows, and inactive units are left out unless asked for.
	out, _, _ := s.run(t, "agent1", "systemctl list-units --type=service --plain --no-legend")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if strings.Contains(out, "pve-ha-crm") || len(lines) < 10 {
		t.Fatalf("default listing:\n%s", out)
	}
	at := strings.Index(lines[0], " loaded ")
	for _, l := range lines {
		if strings.Index(l, " loaded ") != at || strings.HasSuffix(l, " ") {
			t.Errorf("misaligned or padded line %q", l)
		}
	}
	if all, _, _ := s.run(t, "agent1", "systemctl list-units --all --plain --no-legend"); !strings.Contains(strings.Join(strings.Fields(all), " "), "pve-ha-crm.service loaded inactive dead") {
		t.Errorf("--all leaves out the inactive unit:\n%s", all)
	}
}

func TestFailAndRecoverService(t *testing.T) {
	s := start(t)
	const list = "systemctl list-units --state=failed --type=service --plain --no-legend --no-pager --full"
	if err := s.FailService("pve", "pveproxy.service"); err != nil {
		t.Fatal(err)
	}
	if err := s.FailService("pve", "nginx"); err != nil { // one the node did not know
		t.Fatal(err)
	}
	out, _, _ := s.run(t, "pve", list)
	want := "nginx.service    loaded failed failed nginx.service\npveproxy.service loaded failed failed PVE API Proxy Server\n"
	if out != want {
		t.Errorf("after two failures:\n%q\nwant\n%q", out, want)
	}
	if st, _, code := s.run(t, "pve", "systemctl is-failed pveproxy"); code != 0 || st != "failed\n" {
		t.Errorf("is-failed: %q exit %d", st, code)
	}
	journal, _, _ := s.run(t, "pve", "journalctl -u pveproxy -n 1")
	if !strings.Contains(journal, "Failed with result 'exit-code'") {
		t.Errorf("journal lacks the failure: %q", journal)
	}
	if err := s.RecoverService("pve", "pveproxy"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := s.run(t, "pve", list); out != "nginx.service loaded failed failed nginx.service\n" {
		t.Errorf("after recovering pveproxy:\n%q", out)
	}
	if s.Service("pve", "pveproxy") != "active" {
		t.Errorf("pveproxy is %s", s.Service("pve", "pveproxy"))
	}
	if s.FailService("nowhere", "x") == nil || s.RecoverService("pve", "nosuch") == nil || s.FailService("pve", "") == nil {
		t.Error("a hook accepted an unknown node, unit or an empty name")
	}
}
