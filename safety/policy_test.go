package safety

import (
	"strings"
	"testing"
)

func TestTierNamesAndParse(t *testing.T) {
	for _, tier := range []Tier{Green, Yellow, Red, Black} {
		got, err := ParseTier(strings.ToUpper(tier.String()))
		if err != nil || got != tier {
			t.Errorf("ParseTier(%q) = %v, %v; want %v", strings.ToUpper(tier.String()), got, err, tier)
		}
	}
	if got, err := ParseTier("  Yellow "); err != nil || got != Yellow {
		t.Errorf("ParseTier with spaces = %v, %v", got, err)
	}
	_, err := ParseTier("purple")
	if err == nil || !strings.Contains(err.Error(), "green, yellow, red, black") {
		t.Errorf("ParseTier(purple) error = %v, want one naming the valid values", err)
	}
	if Tier(9).String() != "tier(9)" {
		t.Errorf("unknown tier String = %q", Tier(9).String())
	}
}

func TestTierAnnotations(t *testing.T) {
	tests := []struct {
		tier Tier
		want Annotations
	}{
		{Green, Annotations{ReadOnly: true, Destructive: false, Idempotent: true, OpenWorld: true}},
		{Yellow, Annotations{ReadOnly: false, Destructive: false, Idempotent: false, OpenWorld: true}},
		{Red, Annotations{ReadOnly: false, Destructive: true, Idempotent: false, OpenWorld: true}},
	}
	for _, tc := range tests {
		if got := tc.tier.Annotations(); got != tc.want {
			t.Errorf("%s.Annotations() = %+v, want %+v", tc.tier, got, tc.want)
		}
	}
}

func TestPrincipalCanApprove(t *testing.T) {
	if !(Principal{ID: "operator", Kind: Operator}).CanApprove() {
		t.Error("operator cannot approve")
	}
	if (Principal{ID: "agent:abc", Kind: Agent, MaxTier: Red}).CanApprove() {
		t.Error("agent can approve")
	}
}

func TestIsBlackTool(t *testing.T) {
	for _, name := range []string{"reboot_node", "shutdown_node", "delete_vm", "delete_container"} {
		if !IsBlackTool(name) {
			t.Errorf("IsBlackTool(%q) = false", name)
		}
	}
	if IsBlackTool("stop_vm") {
		t.Error("IsBlackTool(stop_vm) = true")
	}
}

func TestDecide(t *testing.T) {
	policy := Policy{ProtectedNodes: []string{"pve-core"}, ProtectedVMIDs: []int{103, 200}, ProtectedServices: []string{"docker.service"}}
	agentRed := Principal{ID: "agent:t1", Kind: Agent, MaxTier: Red}
	agentYellow := Principal{ID: "agent:t2", Kind: Agent, MaxTier: Yellow}
	agentGreen := Principal{ID: "agent:t3", Kind: Agent, MaxTier: Green}
	operator := Principal{ID: "operator", Kind: Operator, MaxTier: Red}
	web01 := Target{Node: "pve", VMID: 101, Kind: "qemu", Name: "web01", Status: "running"}
	stopEffect := "Hard stop of running VM 101 'web01' on node pve; the guest OS will not shut down cleanly"

	tests := []struct {
		name      string
		req       Request
		st        State
		want      Decision
		reasonHas []string
		wantTier  Tier
		planHas   []string
		emptyWhy  bool
	}{
		{name: "black tier refused", req: Request{Principal: operator, Tool: "reboot_node", Tier: Black, Target: Target{Node: "pve"}},
			want: Blocked, wantTier: Black, reasonHas: []string{"reboot_node is never available to agents:"}},
		{name: "black tool name refused even if mis-declared", req: Request{Principal: operator, Tool: "delete_vm", Tier: Yellow, Target: web01},
			want: Blocked, wantTier: Black, reasonHas: []string{"delete_vm is never available to agents:"}},
		{name: "unknown tier refused", req: Request{Principal: operator, Tool: "mystery", Tier: 0},
			want: Blocked, reasonHas: []string{"mystery is never available to agents:"}},
		{name: "tier above ceiling", req: Request{Principal: agentYellow, Tool: "stop_vm", Tier: Red, Target: web01, Effect: stopEffect},
			want: Blocked, wantTier: Red, reasonHas: []string{"RED", "YELLOW", "agent:t2"}},
		{name: "zero ceiling means green only", req: Request{Principal: Principal{ID: "agent:x", Kind: Agent}, Tool: "start_vm", Tier: Yellow, Target: web01},
			want: Blocked, reasonHas: []string{"GREEN"}},
		{name: "green allowed", req: Request{Principal: agentGreen, Tool: "list_vms", Tier: Green},
			want: Allow, emptyWhy: true},
		{name: "green read of protected VM allowed", req: Request{Principal: agentGreen, Tool: "get_vm", Tier: Green, Target: Target{Node: "pve", VMID: 103}},
			want: Allow, emptyWhy: true},
		{name: "green read of protected node allowed", req: Request{Principal: agentGreen, Tool: "node_status", Tier: Green, Target: Target{Node: "PVE-CORE"}},
			want: Allow},
		{name: "green allowed under kill switch and read-only", req: Request{Principal: agentGreen, Tool: "list_vms", Tier: Green},
			st: State{KillSwitch: true, ReadOnly: true}, want: Allow},
		{name: "read-only mode refuses yellow", req: Request{Principal: agentRed, Tool: "start_vm", Tier: Yellow, Target: web01},
			st: State{ReadOnly: true}, want: ReadOnlyMode, reasonHas: []string{"read-only mode", "start_vm"}},
		{name: "read-only wins over kill switch", req: Request{Principal: agentRed, Tool: "stop_vm", Tier: Red, Target: web01},
			st: State{ReadOnly: true, KillSwitch: true}, want: ReadOnlyMode},
		{name: "kill switch refuses yellow", req: Request{Principal: agentRed, Tool: "start_vm", Tier: Yellow, Target: web01},
			st: State{KillSwitch: true}, want: KillSwitch, reasonHas: []string{"kill switch"}},
		{name: "kill switch refuses red before protection", req: Request{Principal: agentRed, Tool: "stop_vm", Tier: Red, Target: Target{Node: "pve", VMID: 103}},
			st: State{KillSwitch: true}, want: KillSwitch},
		{name: "ceiling checked before switches", req: Request{Principal: agentGreen, Tool: "start_vm", Tier: Yellow, Target: web01},
			st: State{KillSwitch: true}, want: Blocked},
		{name: "protected VMID", req: Request{Principal: agentRed, Tool: "stop_vm", Tier: Red, Target: Target{Node: "pve", VMID: 103, Kind: "qemu", Name: "db"}},
			want: Protected, reasonHas: []string{"VM 103 is protected by configuration (JARVIS_PROTECTED_VMIDS); Jarvis will not act on it"}, planHas: []string{"VM 103 'db'"}},
		{name: "protected container", req: Request{Principal: agentRed, Tool: "start_container", Tier: Yellow, Target: Target{Node: "pve", VMID: 200, Kind: "lxc"}},
			want: Protected, reasonHas: []string{"Container 200 is protected", "JARVIS_PROTECTED_VMIDS"}},
		{name: "protected node", req: Request{Principal: agentRed, Tool: "start_vm", Tier: Yellow, Target: Target{Node: "pve-core", VMID: 150}},
			want: Protected, reasonHas: []string{"Node pve-core is protected", "JARVIS_PROTECTED_NODES"}},
		{name: "protected node case-insensitive", req: Request{Principal: agentRed, Tool: "restart_service", Tier: Red, Target: Target{Node: "PVE-Core", Service: "chrony"}},
			want: Protected, reasonHas: []string{"JARVIS_PROTECTED_NODES"}},
		{name: "protected service without suffix", req: Request{Principal: agentRed, Tool: "restart_service", Tier: Red, Target: Target{Node: "pve", Service: "docker"}},
			want: Protected, reasonHas: []string{"Service docker is protected", "JARVIS_PROTECTED_SERVICES"}, planHas: []string{"service docker on node pve"}},
		{name: "protected target node of a migration", req: Request{Principal: agentRed, Tool: "migrate_guest", Tier: Red, Target: web01, Also: []Target{{Node: "pve-core", VMID: 101, Kind: "qemu"}}},
			want: Protected, reasonHas: []string{"Node pve-core is protected"}},
		{name: "protected new VMID of a clone", req: Request{Principal: agentYellow, Tool: "clone_guest", Tier: Yellow, Target: Target{Node: "pve", VMID: 9000, Kind: "qemu"}, Also: []Target{{Node: "pve", VMID: 200, Kind: "lxc"}}},
			want: Protected, reasonHas: []string{"Container 200 is protected"}},
		{name: "unprotected extra targets change nothing", req: Request{Principal: agentYellow, Tool: "clone_guest", Tier: Yellow, Target: Target{Node: "pve", VMID: 9000, Kind: "qemu"}, Also: []Target{{Node: "home", VMID: 120, Kind: "qemu"}}},
			want: Allow},
		{name: "a call made BLACK by its tool says why", req: Request{Principal: operator, Tool: "delete_guest", Tier: Black, Target: web01, TierReason: "VM 101 'web01' was not created by Jarvis."},
			want: Blocked, wantTier: Black, reasonHas: []string{"delete_guest is never allowed here: VM 101 'web01' was not created by Jarvis."}},
		{name: "extra targets are not checked for reads", req: Request{Principal: agentGreen, Tool: "get_thing", Tier: Green, Also: []Target{{VMID: 103}}},
			want: Allow},
		{name: "yellow allowed", req: Request{Principal: agentYellow, Tool: "start_vm", Tier: Yellow, Target: web01, Effect: "Start VM 101 'web01' on node pve"},
			want: Allow, emptyWhy: true, planHas: []string{"start_vm: Start VM 101 'web01' on node pve"}},
		{name: "red needs approval", req: Request{Principal: agentRed, Tool: "stop_vm", Tier: Red, Target: web01, Effect: stopEffect},
			want: NeedsApproval, wantTier: Red, reasonHas: []string{"human"}, planHas: []string{"stop_vm: " + stopEffect}},
		{name: "operator red still needs approval", req: Request{Principal: operator, Tool: "stop_vm", Tier: Red, Target: web01},
			want: NeedsApproval, planHas: []string{"stop_vm on VM 101 'web01' on node pve"}},
		{name: "plan appends target when effect omits it", req: Request{Principal: agentRed, Tool: "stop_vm", Tier: Red, Target: web01, Effect: "Hard stop; the guest OS will not shut down cleanly"},
			want: NeedsApproval, planHas: []string{"Hard stop", "(VM 101 'web01' on node pve)"}},
		{name: "plan for container", req: Request{Principal: agentRed, Tool: "stop_container", Tier: Red, Target: Target{Node: "pve", VMID: 105, Kind: "lxc", Name: "dns"}},
			want: NeedsApproval, planHas: []string{"container 105 'dns' on node pve"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := policy.Decide(tc.req, tc.st)
			if v.Decision != tc.want {
				t.Fatalf("Decision = %s (%s), want %s", v.Decision, v.Reason, tc.want)
			}
			if tc.wantTier != 0 && v.Tier != tc.wantTier {
				t.Errorf("Tier = %s, want %s", v.Tier, tc.wantTier)
			}
			for _, s := range tc.reasonHas {
				if !strings.Contains(v.Reason, s) {
					t.Errorf("Reason %q does not contain %q", v.Reason, s)
				}
			}
			if v.Decision != Allow && v.Reason == "" {
				t.Error("refusal without a reason")
			}
			if tc.emptyWhy && v.Reason != "" {
				t.Errorf("allowed with reason %q", v.Reason)
			}
			if v.Plan == "" {
				t.Error("empty plan")
			}
			for _, s := range tc.planHas {
				if !strings.Contains(v.Plan, s) {
					t.Errorf("Plan %q does not contain %q", v.Plan, s)
				}
			}
		})
	}
}

func TestReadsOfProtectedResourcesAboveGreen(t *testing.T) {
	p := Policy{ProtectedNodes: []string{"agent1"}}
	req := Request{Principal: Principal{ID: "agent:x", Kind: Agent, MaxTier: Red}, Tool: "execute_ssh", Tier: Red,
		Target: Target{Node: "agent1"}, Command: &Command{Line: "uptime"}}
	if v := p.Decide(req, State{}); v.Decision != Allow || v.Tier != Yellow {
		t.Fatalf("read on a protected node: %+v", v)
	}
	if v := p.Decide(req, State{KillSwitch: true}); v.Decision != KillSwitch {
		t.Fatalf("read with the kill switch on: %+v", v)
	}
	req.Command = &Command{Line: "systemctl restart nginx"}
	if v := p.Decide(req, State{}); v.Decision != Protected {
		t.Fatalf("change on a protected node: %+v", v)
	}
}

// The policy alone decides a command: its tier, the caller's ceiling for that
// tier, refusals of the classifier and protection by effect.
func TestDecideClassifiesCommands(t *testing.T) {
	p := Policy{ProtectedNodes: []string{"agent1"}}
	onAgent1 := func(vmids []int) (map[int]GuestPlace, error) {
		out := map[int]GuestPlace{}
		for _, id := range vmids {
			if id == 202 {
				out[id] = GuestPlace{Node: "agent1", Kind: "qemu"}
			}
		}
		return out, nil
	}
	red := Principal{ID: "agent:r", Kind: Agent, MaxTier: Red}
	yellow := Principal{ID: "agent:y", Kind: Agent, MaxTier: Yellow}
	for _, tc := range []struct {
		name     string
		who      Principal
		line     string
		want     Decision
		tier     Tier
		planHas  string
		reasonHa string
	}{
		{"read-only runs", red, "df -h", Allow, Yellow, "Run `df -h` on node pve", ""},
		{"read-only within a yellow ceiling", yellow, "df -h", Allow, Yellow, "df -h", ""},
		{"changing needs a person", red, "systemctl restart nginx", NeedsApproval, Red, "systemctl restart nginx", "human"},
		{"changing is above a yellow ceiling", yellow, "systemctl restart nginx", Blocked, Red, "systemctl restart nginx", "RED-tier command and agent:y may use up to YELLOW"},
		{"destructive never runs", red, "rm -rf /", Blocked, Black, "execute_ssh: run `rm -rf /` on node pve", "rm"},
		{"destructive never runs, whatever the ceiling", yellow, "rm -rf /", Blocked, Black, "rm -rf /", "rm"},
		{"a guest on a protected node", red, "qm stop 202", Protected, Red, "qm stop 202", "agent1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Principal: tc.who, Tool: "execute_ssh", Tier: Red, Target: Target{Node: "pve"},
				Command: &Command{Line: tc.line, Guests: onAgent1}}
			v := p.Decide(req, State{})
			if v.Decision != tc.want || v.Tier != tc.tier {
				t.Fatalf("Decide(%q) = %s at %s (%s); want %s at %s", tc.line, v.Decision, v.Tier, v.Reason, tc.want, tc.tier)
			}
			if !strings.Contains(v.Plan, tc.planHas) {
				t.Errorf("plan %q does not contain %q", v.Plan, tc.planHas)
			}
			if !strings.Contains(v.Reason, tc.reasonHa) {
				t.Errorf("reason %q does not contain %q", v.Reason, tc.reasonHa)
			}
		})
	}
}

func TestProtectedServicesMatchEveryUnitForm(t *testing.T) {
	p := Policy{ProtectedServices: []string{"docker"}}
	for _, unit := range []string{"docker", "docker.service", "docker.socket", "Docker", "docker@x.service"} {
		req := Request{Principal: Principal{ID: "agent:x", Kind: Agent, MaxTier: Red}, Tool: "restart_service", Tier: Red, Target: Target{Node: "pve", Service: unit}}
		if v := p.Decide(req, State{}); v.Decision != Protected {
			t.Errorf("%s: %+v", unit, v)
		}
	}
}
