package safety

import (
	"errors"
	"strings"
	"testing"
)

// CommandGuestIDs returns the numbers a command line names that could be
// VMIDs: the ones CheckCommand asks its GuestLookup about.
func CommandGuestIDs(cmd string) []int { return guestIDs(literalTexts(cmd)) }

// demoPolicy and demoGuests are the demo cluster's protection and guests.
var demoPolicy = Policy{ProtectedNodes: []string{"agent1"}, ProtectedVMIDs: []int{103}, ProtectedServices: []string{"docker"}}

var demoGuests = map[int]GuestPlace{
	100: {"home", "qemu"}, 101: {"pve", "qemu"}, 102: {"pve", "qemu"}, 103: {"agent1", "qemu"}, 104: {"agent", "qemu"},
	105: {"agent", "qemu"}, 106: {"home", "qemu"}, 9000: {"home", "qemu"},
	200: {"home", "lxc"}, 201: {"pve", "lxc"}, 202: {"agent1", "lxc"}, 203: {"agent", "lxc"}, 204: {"agent1", "lxc"},
}

// lookupIn answers from guests and counts how often it was asked.
func lookupIn(guests map[int]GuestPlace, calls *int) GuestLookup {
	return func(vmids []int) (map[int]GuestPlace, error) {
		*calls++
		out := map[int]GuestPlace{}
		for _, id := range vmids {
			if g, ok := guests[id]; ok {
				out[id] = g
			}
		}
		return out, nil
	}
}

type scopeCase struct {
	cmd      string
	decision Decision
	mentions string // the reason contains this ("" checks nothing)
}

func runScopeCases(t *testing.T, p Policy, node string, guests map[int]GuestPlace, cases []scopeCase) {
	t.Helper()
	for _, tc := range cases {
		calls := 0
		v := p.CheckCommand(tc.cmd, node, lookupIn(guests, &calls))
		if v.Decision != tc.decision {
			t.Errorf("%q on %s: %s (%s), want %s", tc.cmd, node, v.Decision, v.Reason, tc.decision)
			continue
		}
		if !strings.Contains(v.Reason, tc.mentions) {
			t.Errorf("%q on %s: reason %q does not mention %q", tc.cmd, node, v.Reason, tc.mentions)
		}
		want := map[Decision]Tier{Allow: Yellow, NeedsApproval: Red, Protected: Red, Blocked: Black}[v.Decision]
		if v.Tier != want {
			t.Errorf("%q: tier %s with decision %s", tc.cmd, v.Tier, v.Decision)
		}
		if calls > 1 {
			t.Errorf("%q: the cluster was asked %d times", tc.cmd, calls)
		}
	}
}

func TestCheckCommandProtectionByEffect(t *testing.T) {
	runScopeCases(t, demoPolicy, "pve", demoGuests, []scopeCase{
		// The five commands of the issue.
		{"qm stop $((102+1))", Protected, "In `qm stop $((102+1))`, $((102+1)) is only known at run time"},
		{"seq 102 104 | xargs -n1 qm stop", Protected, "`qm stop` gets more arguments at run time (from xargs"},
		{"pct stop 202", Protected, "names container 202, which runs on node agent1, protected by configuration (JARVIS_PROTECTED_NODES)"},
		{"pkill dockerd", Protected, "`pkill dockerd` matches dockerd, a process of service docker, which is protected by configuration (JARVIS_PROTECTED_SERVICES)"},
		{"killall -9 dockerd", Protected, "`killall -9 dockerd` stops dockerd, a process of service docker"},

		// Guests: named literally, resolved to their node, or not resolvable.
		{"qm stop 103", Protected, "names VM 103"},
		{"qm stop 101", NeedsApproval, ""},
		{"pct stop 201", NeedsApproval, ""},
		{"qm stop 999", NeedsApproval, ""}, // no such guest: Proxmox will say so
		{"pct start 204", Protected, "container 204, which runs on node agent1"},
		{"qm migrate 101 agent1", Protected, "node agent1"},
		{"pvesh create /nodes/pve/lxc/202/status/stop", Protected, "container 202"},
		{"pvesm free local-lvm:vm-202-disk-0", Protected, "container 202"},
		{"sh -c 'pct stop 202'", Protected, "container 202"},
		{"qm set 101 --memory 4096", NeedsApproval, ""},
		{"qm stop 10*", Protected, "10*"},
		{"qm stop 10?", Protected, "10?"},
		{"qm stop 10[0-9]", Protected, "10[0-9]"},
		{"qm stop 10{1,3}", Protected, "10{1,3}"},
		{`qm stop "$ID"`, Protected, `"$ID"`},
		{"qm stop $(cat /tmp/id)", Protected, "$(cat /tmp/id)"},
		{"qm stop `cat /tmp/id`", Protected, "`cat /tmp/id`"},
		{"for id in 101 102; do qm stop $id; done", Protected, "$id"},
		{"xargs qm stop < /tmp/ids", Protected, "xargs"},
		{"sudo qm stop $VM", Protected, "$VM"},
		{"bash -c 'qm stop $((100+3))'", Protected, "$((100+3))"},
		{"$QM stop 101", Protected, "$QM"},
		{"qm stop 101 > $LOG", Protected, "writes to $LOG"},
		{"find /etc/pve -name '*.conf' -exec rm {} +", Protected, "In `rm {}`, {} is only known at run time"},
		{"find /srv/data/cache -name x -delete", Protected, "deletes whatever matches"},
		{`find /srv/data/cache -exec ls {} \; -delete`, Protected, "deletes whatever matches"},
		{"sudo umount -a", Protected, "-a/--all"},
		{"pct cpusets", NeedsApproval, ""},

		// "Every guest" selectors.
		{"pct stop --all", Protected, "names no guest by its VMID"},
		{"qm rescan", Protected, "names no guest"},
		{"pvenode stopall", Protected, "every guest of the node"},
		{"pvenode stopall --vms 101,102", NeedsApproval, ""},
		{"pvenode stopall --vms 101,202", Protected, "container 202"},
		{"pvesh create /nodes/pve/stopall", Protected, "every guest of a node"},
		{"vzdump --all --mode stop", Protected, "every guest"},
		{"vzdump 101 --mode snapshot", NeedsApproval, ""},
		{"umount -a", Protected, "-a/--all"},
		{"swapoff --all", Protected, "-a/--all"},
		{"ifdown -a", Protected, "-a/--all"},
		{"zfs unmount -a", Protected, "every dataset"},
		{"fuser -km /mnt/data", Protected, "every process that uses the file"},

		// Processes of the protected docker service.
		{"kill -9 $(pidof dockerd)", Protected, "$(pidof dockerd)"},
		{"pidof dockerd | xargs kill", Protected, "`kill` gets more arguments at run time"},
		{"pkill -f docker", Protected, "matches docker, a process of service docker"},
		{"pkill dock", Protected, "service docker"},
		{"pkill -x dock", NeedsApproval, ""},
		{"pkill -x dockerd", Protected, "dockerd"},
		{"pkill DOCKERD", NeedsApproval, ""},
		{"pkill -i DOCKERD", Protected, "dockerd"},
		{"killall -I DOCKERD", Protected, "dockerd"},
		{"killall containerd", Protected, "containerd, a process of service docker"},
		{"killall -r '^contain'", Protected, "containerd"},
		{"killall containerd-shim-runc-v2", Protected, "containerd-shim-runc-v2"},
		{"pkill -9 -f /usr/bin/dockerd", Protected, "dockerd"},
		{"pkill -SIGKILL docker-proxy", Protected, "docker-proxy"},
		{"/usr/bin/pkill dockerd", Protected, "dockerd"},
		{"sudo pkill dockerd", Protected, "dockerd"},
		{"timeout 5 killall containerd", Protected, "containerd"},
		{"kill dockerd", Protected, "dockerd"}, // util-linux kill takes names
		{"pkill -u root", Protected, "`pkill -u root` stops every process -u root picks, whatever its name, so it could stop a process of the protected service docker"},
		{"killall -u www-data", Protected, "every process -u www-data picks"},
		{"pkill -v nginx", Protected, "stops every process that does not match the pattern (-v)"},
		{"pkill -F /run/nginx.pid", Protected, "PIDs from a file"},
		{"pkill --bogus nginx", Protected, "the option --bogus is not understood"},
		{`pkill '\<dockerd'`, Protected, "cannot be read as a regular expression"},
		{"kill 4242", Protected, "`kill 4242` names processes by PID (4242)"},
		{"kill -TERM -- -4242", Protected, "by PID"},
		{"kill -s HUP %1", Protected, "by PID"},
		{"pkill nginx", NeedsApproval, ""},
		{"pkill -f 'nginx: worker'", NeedsApproval, ""},
		{"killall -9 nginx", NeedsApproval, ""},
		{"pkill -u www-data php-fpm", NeedsApproval, ""},
		{"kill -l", NeedsApproval, ""},
		{"systemctl kill docker.service", Protected, "Service docker is protected"},
		{"systemctl kill -s KILL docker", Protected, "Service docker is protected"},
		{"systemctl stop docker.socket", Protected, "Service docker is protected"},
		{"systemctl stop containerd", Protected, "containerd is part of service docker"},
		{"systemctl restart 'contain*'", Protected, "docker"},
		{"systemctl restart pveproxy", NeedsApproval, ""},

		// Reads stay as they are, literal or not; refusals stay refusals.
		{"qm list", Allow, ""},
		{"pct config 202", Allow, ""},
		{"ps aux | grep dockerd", Allow, ""},
		{"qm status $((100+3))", NeedsApproval, ""},
		{"cat /var/log/$(date +%F).log", NeedsApproval, ""},
		{"echo $HOME | tee /tmp/x", NeedsApproval, ""},
		{"find /var/log -name '*.gz' -exec ls -l {} +", NeedsApproval, ""},
		{"rm -rf /", Blocked, ""},
		{"kill -9 -1", Blocked, ""},
	})
}

// A protected guest on the node the command runs on: its processes are
// there (a VM as kvm, a container as whatever runs inside it).
func TestCheckCommandProtectedGuestProcesses(t *testing.T) {
	p := Policy{ProtectedVMIDs: []int{105, 203}} // a VM and a container on node agent
	runScopeCases(t, p, "agent", demoGuests, []scopeCase{
		{"pkill kvm", Protected, "kvm, a process of VM 105"},
		{"killall qemu-system-x86_64", Protected, "VM 105"},
		{"pkill nginx", Protected, "container 203, which runs them on node agent"},
		{"kill 4242", Protected, "by PID"},
		{"qm stop 104", NeedsApproval, ""},
	})
	runScopeCases(t, p, "pve", demoGuests, []scopeCase{
		{"pkill kvm", NeedsApproval, ""},
		{"pkill nginx", NeedsApproval, ""},
		{"kill 4242", NeedsApproval, ""},
		{"qm stop $((100+5))", Protected, "$((100+5))"},
	})
}

// With nothing protected the classifier's verdict stands and the cluster is
// never asked.
func TestCheckCommandWithoutProtection(t *testing.T) {
	for _, cmd := range []string{"qm stop $((102+1))", "seq 102 104 | xargs -n1 qm stop", "pct stop 202", "pkill dockerd", "killall -9 dockerd", "kill 4242", "pvenode stopall"} {
		called := false
		v := Policy{ProtectedNodes: []string{" "}}.CheckCommand(cmd, "pve", func([]int) (map[int]GuestPlace, error) {
			called = true
			return nil, nil
		})
		if v.Decision != NeedsApproval || called {
			t.Errorf("%q with nothing protected: %s (%s), cluster asked: %v", cmd, v.Decision, v.Reason, called)
		}
	}
}

// When the cluster cannot be asked, a command that may reach a protected
// node's guest is refused, not guessed about; one that names no guest is not
// held up.
func TestCheckCommandLookupFailure(t *testing.T) {
	down := func([]int) (map[int]GuestPlace, error) { return nil, errors.New("595 no route to host") }
	for cmd, want := range map[string]Decision{
		"pct stop 202":               Protected,
		"qm stop 101":                Protected,
		"pkill nginx":                Protected, // VM 103 might run on this node
		"systemctl restart pveproxy": NeedsApproval,
		"qm list":                    Allow,
	} {
		v := demoPolicy.CheckCommand(cmd, "pve", down)
		if v.Decision != want {
			t.Errorf("%q with the cluster down: %s (%s), want %s", cmd, v.Decision, v.Reason, want)
		}
		if want == Protected && !strings.Contains(v.Reason, "595 no route to host") {
			t.Errorf("%q: reason %q does not say why the lookup failed", cmd, v.Reason)
		}
	}
	if v := demoPolicy.CheckCommand("pct stop 202", "pve", nil); v.Decision != Protected {
		t.Errorf("no lookup at all: %+v", v)
	}
}

func TestCommandGuestIDs(t *testing.T) {
	got := CommandGuestIDs("qm set 101 --memory 4096 --cores 4; zfs destroy rpool/data/vm-202-disk-0 && echo 1000000000 $X 0103")
	want := []int{101, 4096, 202, 103}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// FuzzCheckCommand checks that protection by effect never panics and never
// relaxes the classifier: it keeps its verdict or turns needs_approval into
// protected.
func FuzzCheckCommand(f *testing.F) {
	for _, c := range allowCases {
		f.Add(c)
	}
	for _, c := range bypassCases {
		f.Add(c.cmd)
	}
	for _, c := range []string{"qm stop $((102+1))", "seq 102 104 | xargs -n1 qm stop", "pct stop 202", "pkill dockerd", "killall -9 dockerd",
		"pkill -f 'do[c]k'", "kill -9 -- -42", "pvenode stopall --vms 101", "find /srv -exec qm stop {} +"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		calls := 0
		v := demoPolicy.CheckCommand(cmd, "pve", lookupIn(demoGuests, &calls))
		if v.Reason == scopeInternalErrorReason || v.Reason == internalErrorReason {
			t.Fatalf("CheckCommand(%q) hit an internal error (a recovered panic)", cmd)
		}
		if calls > 1 {
			t.Fatalf("CheckCommand(%q) asked the cluster %d times", cmd, calls)
		}
		base := ClassifyCommand(cmd, demoPolicy.ProtectedServices)
		if v.Decision != base.Decision && !(base.Decision == NeedsApproval && v.Decision == Protected) {
			t.Fatalf("CheckCommand(%q) = %s, but ClassifyCommand says %s", cmd, v.Decision, base.Decision)
		}
		if v.Decision == Protected && (v.Tier != Red || v.Reason == "") {
			t.Fatalf("CheckCommand(%q) = %s/%s %q: inconsistent", cmd, v.Tier, v.Decision, v.Reason)
		}
	})
}

func BenchmarkCheckCommand(b *testing.B) {
	calls := 0
	lookup := lookupIn(demoGuests, &calls)
	for _, c := range []struct{ name, cmd string }{
		{"read", "journalctl -u pveproxy -n 20 --no-pager | grep -i error | tail -5"},
		{"change", "qm set 101 --memory 4096 --cores 4"},
		{"kill", "pkill -f 'nginx: worker'"},
		{"unresolved", "seq 102 104 | xargs -n1 qm stop"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				demoPolicy.CheckCommand(c.cmd, "pve", lookup)
			}
		})
	}
}
