package safety

import (
	"strings"
	"testing"
)

// touchesInternalErrorReason is CommandTouches' answer if it fails: a
// command it could not check is treated as touching something protected.
const touchesInternalErrorReason = "The command could not be checked for protected VMs and nodes because of an internal error, so it is treated as touching them."

// CommandTouches reports whether a shell command line names a protected
// guest (by VMID) or a protected node, and returns a sentence naming the
// first one it finds, or "" if it names none.
//
// The line is parsed as bash and every word that is fully literal after
// quote removal is looked at, wherever it stands: program arguments,
// assignments, redirection targets and strings handed to sh -c; so are the
// literal lines of here-documents. A word names VM 103 if it, or a piece of it between separators
// such as / = , : @ or spaces, is "103" (qm stop 103, --vmid=103,
// /nodes/x/qemu/103/status/stop), a guest config file "103.conf", or a disk
// or backup of that guest (vm-103-disk-0, vzdump-qemu-103-…). A word names
// node agent1 if such a piece is "agent1" or "agent1.<domain>", in any case
// (qm migrate 101 agent1, /nodes/agent1/…, root@agent1). Words built at run
// time are ignored here; Policy.CheckCommand refuses a changing command with
// such words when anything is protected.
// VMIDs below 1 and empty node names are ignored. A line that does not parse
// is searched as plain text.
func CommandTouches(cmd string, vmids []int, nodes []string) (reason string) {
	defer func() {
		if p := recover(); p != nil {
			reason = touchesInternalErrorReason
		}
	}()
	m := newTouchMatcher(vmids, nodes)
	if m.empty() {
		return ""
	}
	for _, text := range literalTexts(cmd) {
		if reason = m.match(text); reason != "" {
			return reason
		}
	}
	return ""
}

func (m touchMatcher) empty() bool {
	return len(m.vmids) == 0 && len(m.nodes) == 0 && len(m.guests) == 0
}

func TestCommandTouches(t *testing.T) {
	vmids := []int{103, 2000}
	nodes := []string{"agent1", "Edge-2"}
	const vm103 = "The command names VM 103, which is protected by configuration (JARVIS_PROTECTED_VMIDS)."
	const vm2000 = "The command names VM 2000, which is protected by configuration (JARVIS_PROTECTED_VMIDS)."
	const agent1 = "The command names node agent1, which is protected by configuration (JARVIS_PROTECTED_NODES)."
	const edge2 = "The command names node edge-2, which is protected by configuration (JARVIS_PROTECTED_NODES)."
	tests := []struct {
		cmd, want string
	}{
		// VMIDs as words, path segments and option values.
		{"qm stop 103", vm103},
		{"pct stop 103", vm103},
		{"qm stop '103'", vm103},
		{`qm stop "10"3`, vm103},
		{`qm stop 1\03`, vm103},
		{"qm stop 0103", vm103},
		{"pvesh create /nodes/pve/qemu/103/status/stop", vm103},
		{"pvesh create /nodes/x/qemu/103/", vm103},
		{"qm migrate --vmid=103 pve2", vm103},
		{"vzdump --vmid 2000,103 --mode snapshot", vm2000},
		{"rm /etc/pve/qemu-server/103.conf", vm103},
		{"cat /etc/pve/firewall/103.fw", vm103},
		{"zfs destroy rpool/data/vm-103-disk-0", vm103},
		{"lvremove pve/vm-103-disk-1", vm103},
		{"zfs destroy rpool/data/subvol-103-disk-0", vm103},
		{"qmrestore /var/lib/vz/dump/vzdump-qemu-103-2024_01_01-00_00_00.vma.zst 104", vm103},
		{"pvesm free local-lvm:vm-103-disk-0", vm103},
		// Every command of the line, nested shells, redirections, assignments, here-documents.
		{"uptime; qm stop 103", vm103},
		{"uptime && pct destroy 103", vm103},
		{"sh -c 'qm stop 103'", vm103},
		{`bash -c "sleep 1; qm shutdown 103"`, vm103},
		{"echo x > /etc/pve/qemu-server/103.conf", vm103},
		{"ID=103 qm stop $ID", vm103},
		{"bash <<'EOF'\nqm stop 103\nEOF", vm103},
		{"bash <<EOF\necho $HOME\nqm stop 103\nEOF", vm103},
		{"ssh root@agent1 reboot", agent1},
		{"echo $(qm stop 103)", vm103},
		{"for i in 103; do qm stop $i; done", vm103},
		// Nodes.
		{"qm migrate 101 agent1", agent1},
		{"qm migrate 101 AGENT1 --online", agent1},
		{"pvesh create /nodes/agent1/qemu/101/status/start", agent1},
		{"pvesh get /nodes/edge-2/status", edge2},
		{"ping -c1 agent1.lan", agent1},
		{"pct migrate 200 --target=agent1", agent1},
		{"scp x agent1:/tmp/", agent1},
		// First protected resource wins.
		{"pvesh create /nodes/agent1/qemu/103/status/stop", agent1},
		{"qm stop 103 && qm migrate 101 agent1", vm103},
		// Not protected.
		{"qm stop 101", ""},
		{"qm stop 1030", ""},
		{"qm stop 10", ""},
		{"pvesh create /nodes/pve/qemu/1103/status/stop", ""},
		{"zfs destroy rpool/data/vm-1033-disk-0", ""},
		{"ping 10.0.0.103", ""},
		{"ping 103.1.2.3", ""},
		{"sleep 103.5", ""},
		{"qm migrate 101 agent10", ""},
		{"qm migrate 101 myagent1", ""},
		{"cat /var/log/agent1_backup.log", ""},
		{"uptime", ""},
		{"", ""},
		// Words built at run time are not read (the classifier refuses them anyway).
		{"qm stop $VMID", ""},
		{"qm stop 10$X", ""},
		{"qm stop 103*", ""},
		// A line that does not parse is searched as text.
		{"qm stop 103 'unterminated", vm103},
		{"pvesh create /nodes/agent1/x )", agent1},
	}
	for _, tc := range tests {
		if got := CommandTouches(tc.cmd, vmids, nodes); got != tc.want {
			t.Errorf("CommandTouches(%q) = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

func TestCommandTouchesNothingProtected(t *testing.T) {
	for _, tc := range []struct {
		vmids []int
		nodes []string
	}{
		{nil, nil},
		{[]int{0, -5}, []string{"", "  "}},
	} {
		for _, cmd := range []string{"qm stop 103", "qm stop 0", "qm migrate 101 agent1", "cat /proc/-5"} {
			if got := CommandTouches(cmd, tc.vmids, tc.nodes); got != "" {
				t.Errorf("CommandTouches(%q, %v, %q) = %q, want \"\"", cmd, tc.vmids, tc.nodes, got)
			}
		}
	}
}

func TestCommandTouchesHostileInput(t *testing.T) {
	inputs := []string{
		strings.Repeat("(", 5000),
		strings.Repeat("$(", 2000) + "qm stop 103",
		"\x00\xff\xfe",
		strings.Repeat("a/", 3000) + "103",
		"<<EOF",
		"qm stop 103\x00",
	}
	for _, in := range inputs {
		got := CommandTouches(in, []int{103}, []string{"agent1"})
		if got == touchesInternalErrorReason {
			t.Errorf("CommandTouches(%.30q) hit an internal error", in)
		}
	}
	if got := CommandTouches(strings.Repeat("a/", 3000)+"103", []int{103}, nil); got == "" {
		t.Error("a long path ending in a protected VMID was not found")
	}
}

func FuzzCommandTouches(f *testing.F) {
	f.Add("qm stop 103")
	f.Add("pvesh create /nodes/agent1/qemu/103/status/stop")
	f.Add("sh -c 'qm stop 103'")
	f.Fuzz(func(t *testing.T, cmd string) {
		got := CommandTouches(cmd, []int{103}, []string{"agent1"})
		if got == touchesInternalErrorReason {
			t.Fatalf("CommandTouches(%q) hit an internal error", cmd)
		}
		// A protected VMID appended as its own word is always found.
		if CommandTouches(cmd+"\nqm stop 103", []int{103}, nil) == "" {
			t.Fatalf("CommandTouches(%q + qm stop 103) found nothing", cmd)
		}
	})
}
