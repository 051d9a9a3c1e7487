package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
)

// Protection by effect, driven through execute_ssh on node pve with the demo's
// protection (node agent1, VM 103, service docker): commands that reach a
// protected guest, node or service without naming it are refused, not sent to
// a person; their near, unprotected variants still wait for one.
func TestExecuteSSHProtectionByEffect(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	tests := []struct {
		command  string
		decision safety.Decision
		mentions string // the reason must contain this
	}{
		// Unresolvable targets.
		{"qm stop $((102+1))", safety.Protected, "$((102+1))"},
		{"seq 102 104 | xargs -n1 qm stop", safety.Protected, "at run time"},
		{"qm stop 10*", safety.Protected, "10*"},
		{"qm stop 10{2..4}", safety.Protected, "10{2..4}"},
		{"kill -9 $(pidof dockerd)", safety.Protected, "$(pidof dockerd)"},
		{"pvenode stopall", safety.Protected, "every guest"},
		{"pct stop --all", safety.Protected, "VMID"},
		// A guest resolved to its node: 202 is a container on protected agent1.
		{"pct stop 202", safety.Protected, "agent1"},
		{"pvesh create /nodes/pve/lxc/202/status/stop", safety.Protected, "agent1"},
		// Processes of the protected docker service.
		{"pkill dockerd", safety.Protected, "docker"},
		{"killall -9 dockerd", safety.Protected, "docker"},
		{"pkill -f docker", safety.Protected, "docker"},
		{"killall containerd", safety.Protected, "docker"},
		{"kill 4242", safety.Protected, "PID"},
		{"systemctl kill docker.service", safety.Protected, "docker"},
		{"systemctl stop containerd", safety.Protected, "docker"},
		// Near variants that reach nothing protected still need a person.
		{"qm stop 101", safety.NeedsApproval, ""},
		{"pct stop 201", safety.NeedsApproval, ""},
		{"pkill nginx", safety.NeedsApproval, ""},
		{"killall -9 nginx", safety.NeedsApproval, ""},
		{"systemctl restart pveproxy", safety.NeedsApproval, ""},
		{"cat /var/log/$(date +%F).log", safety.NeedsApproval, ""},
	}
	for _, tc := range tests {
		t.Run(tc.command, func(t *testing.T) {
			r := refusalOf(t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": tc.command}))
			if r.Decision != tc.decision {
				t.Fatalf("decision %s, want %s (reason: %s)", r.Decision, tc.decision, r.Reason)
			}
			if !strings.Contains(r.Reason, tc.mentions) {
				t.Errorf("reason %q does not mention %q", r.Reason, tc.mentions)
			}
		})
	}
	// Reading stays allowed, on the protected node too.
	out := structured[tools.CommandOutput](t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": "qm list"}))
	if !strings.Contains(out.Stdout, "VMID") {
		t.Errorf("qm list: %+v", out)
	}
	if ran := (*shells).Ran("pve"); len(ran) != 1 {
		t.Fatalf("the shell saw %q, want only qm list", ran)
	}
	if got := h.executions("execute_ssh"); got != 1 {
		t.Fatalf("%d execute_ssh calls ran, want 1", got)
	}
}

// With nothing protected, a command whose target is only known at run time
// still goes to a person: there is nothing it could reach that must be refused.
func TestExecuteSSHUnresolvedTargetsWithoutProtection(t *testing.T) {
	tweak, _ := withShells(t)
	h := newHarness(t, func(o *Options) { o.Policy = safety.Policy{} }, tweak)
	for _, cmd := range []string{"qm stop $((102+1))", "seq 102 104 | xargs -n1 qm stop", "pct stop 202", "pkill dockerd", "kill 4242"} {
		if r := refusalOf(t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": cmd})); r.Decision != safety.NeedsApproval {
			t.Errorf("%q: %+v", cmd, r)
		}
	}
}

// A guest on a protected node is protected for the lifecycle and snapshot
// tools as well: the target is resolved from the cluster and the policy refuses
// it before a person is asked or Proxmox is called.
func TestGuestOnProtectedNodeIsProtectedForTools(t *testing.T) {
	h := newHarness(t)
	// Give container 202 (on agent1) a snapshot straight through the simulator,
	// so rollback and delete get past their own checks.
	form := url.Values{"snapname": {"keep"}}
	req := httptest.NewRequest(http.MethodPost, "/api2/json/nodes/agent1/lxc/202/snapshot", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "PVEAPIToken=jarvis@pve!test=s3cret")
	rec := httptest.NewRecorder()
	h.sim.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("snapshot of 202 in the simulator: %d %s", rec.Code, rec.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g, _ := h.sim.Guest(202); len(g.Snapshots) == 0; g, _ = h.sim.Guest(202) {
		if time.Now().After(deadline) {
			t.Fatal("the simulator never finished the snapshot of 202")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.sim.ResetRequests()

	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"stop_container", map[string]any{"vmid": 202}},
		{"shutdown_container", map[string]any{"vmid": 202}},
		{"restart_container", map[string]any{"vmid": 202}},
		{"create_snapshot", map[string]any{"vmid": 202, "name": "x1"}},
		{"rollback_snapshot", map[string]any{"vmid": 202, "name": "keep"}},
		{"delete_snapshot", map[string]any{"vmid": 202, "name": "keep"}},
	} {
		r := refusalOf(t, h.call(operator, c.tool, c.args))
		if r.Decision != safety.Protected || !strings.Contains(r.Reason, "agent1") {
			t.Errorf("%s 202: %+v", c.tool, r)
		}
	}
	for _, r := range h.sim.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("a refused call reached Proxmox: %s %s", r.Method, r.Path)
		}
	}
	if g, _ := h.sim.Guest(202); g.Status != "running" || len(g.Snapshots) != 1 {
		t.Fatalf("202 changed: %+v", g)
	}
}
