package safety

import "testing"

// The classifier runs on every execute_ssh call; it must stay far below the
// cost of the SSH round trip itself (about 0.5 ms on the simulated shells).
func BenchmarkClassifyCommand(b *testing.B) {
	for _, c := range []struct{ name, cmd string }{
		{"simple", "uptime"},
		{"pipeline", "journalctl -u pveproxy -n 20 --no-pager | grep -i error | tail -5"},
		{"bypass", "ls $(touch /tmp/x); reboot"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				ClassifyCommand(c.cmd, []string{"docker"})
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	p := Policy{ProtectedNodes: []string{"agent1"}, ProtectedVMIDs: []int{103}, ProtectedServices: []string{"docker"}}
	req := Request{Principal: Principal{ID: "agent:x", Kind: "agent", MaxTier: Red}, Tool: "stop_vm", Tier: Red,
		Target: Target{Node: "pve", VMID: 101, Kind: "qemu", Name: "web01", Status: "running"}, Effect: "Hard stop of running VM 101 'web01' on node pve"}
	for b.Loop() {
		p.Decide(req, State{})
	}
}
