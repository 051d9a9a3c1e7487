package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// withShells gives the harness simulated node shells reached through the real executor.
func withShells(t *testing.T) (func(*Options), **sshsim.Sim) {
	var shells *sshsim.Sim
	return func(o *Options) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := ssh.NewSignerFromKey(priv)
		sshPub, _ := ssh.NewPublicKey(pub)
		shells, err = sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: sshPub})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shells.Close() })
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, shells.KnownHosts(), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes := map[string]string{}
		for _, n := range shells.Nodes() {
			nodes[n] = shells.Addr(n)
			o.Env.SSHNodes = append(o.Env.SSHNodes, n)
		}
		exec, err := sshexec.New(sshexec.Config{Nodes: nodes, User: "root", Signer: signer, KnownHostsPath: kh})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Close() })
		o.Env.SSH = exec
	}, &shells
}

func TestExecuteSSHRunsReadOnlyCommands(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	for _, c := range []struct{ command, want string }{
		{"uptime", "load average"},
		{"df -h", "Filesystem"},
		{"systemctl status pveproxy", "pveproxy"},
		{"journalctl -u pveproxy -n 20 --no-pager", "pveproxy"},
		{"zpool status | head -5", "pool"},
		{"systemctl status corosync", "corosync"},
	} {
		t.Run(c.command, func(t *testing.T) {
			out := structured[tools.CommandOutput](t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": c.command}))
			if !strings.Contains(out.Stdout, c.want) {
				t.Errorf("stdout of %q does not contain %q:\n%s", c.command, c.want, out.Stdout)
			}
		})
	}
	if n := len((*shells).Ran("pve")); n < 6 {
		t.Fatalf("the shell saw %d commands, want 6", n)
	}
}

func TestBypassAttemptsNeverReachAShell(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	f, err := os.Open("testdata/ssh_bypass.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		res := h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": line})
		r := refusalOf(t, res)
		switch r.Decision {
		case safety.Blocked, safety.Protected, safety.NeedsApproval:
		default:
			t.Errorf("%q: decision %s", line, r.Decision)
		}
	}
	if n < 60 {
		t.Fatalf("only %d bypass attempts in the table", n)
	}
	if ran := (*shells).Ran("pve"); len(ran) != 0 {
		t.Fatalf("refused commands reached the shell: %q", ran)
	}
	if got := h.executions("execute_ssh"); got != 0 {
		t.Fatalf("%d refused commands executed", got)
	}
}

func TestNodeToolsOverSSH(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, func(o *Options) { o.Policy.ProtectedServices = []string{"docker", "corosync"} }, tweak)
	temp := structured[tools.TemperatureOut](t, h.call(agentRed, "get_node_temperature", map[string]any{"node": "pve"}))
	if len(temp.Temperatures) == 0 || temp.MaxCelsius < 20 || temp.MaxCelsius > 110 {
		t.Fatalf("temperatures: %+v", temp)
	}
	svc := structured[tools.ServiceStatus](t, h.call(agentRed, "get_service_status", map[string]any{"node": "pve", "service": "pveproxy"}))
	if svc.Active != "active" {
		t.Fatalf("pveproxy: %+v", svc)
	}
	logs := structured[tools.LogsOut](t, h.call(agentRed, "get_node_logs", map[string]any{"node": "pve", "unit": "pveproxy", "lines": 5, "priority": "info"}))
	if len(logs.Lines) == 0 || len(logs.Lines) > 5 {
		t.Fatalf("logs: %d lines", len(logs.Lines))
	}
	if res := h.call(agentRed, "get_node_logs", map[string]any{"node": "pve", "since": "yesterday; reboot"}); !res.IsError {
		t.Fatal("a since value with a command in it was accepted")
	}
	// restart_service is RED; a protected service is refused, naming it.
	if r := refusalOf(t, h.call(agentRed, "restart_service", map[string]any{"node": "pve", "service": "corosync"})); r.Decision != safety.Protected || !strings.Contains(r.Reason, "corosync") {
		t.Fatalf("restart corosync: %+v", r)
	}
	r := refusalOf(t, h.call(agentRed, "restart_service", map[string]any{"node": "pve", "service": "pveproxy"}))
	if r.Decision != safety.NeedsApproval {
		t.Fatalf("restart pveproxy: %+v", r)
	}
	if _, err := h.srv.DecideApproval(context.Background(), r.ApprovalID, true, "operator"); err != nil {
		t.Fatal(err)
	}
	out := structured[tools.RestartOut](t, h.call(agentRed, "restart_service", map[string]any{"node": "pve", "service": "pveproxy", "approval_id": r.ApprovalID}))
	if !out.OK {
		t.Fatalf("restart: %+v", out)
	}
	restarted := false
	for _, c := range (*shells).Ran("pve") {
		restarted = restarted || strings.Contains(c, "systemctl restart pveproxy")
	}
	if !restarted {
		t.Fatalf("the shell never saw the restart: %q", (*shells).Ran("pve"))
	}
}

func TestWakeNodeSendsAMagicPacket(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wol, err := tools.ParseWakeOnLAN("pve=52:54:00:12:34:02", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.Env.Wake = wol })
	if res := h.call(agentRed, "wake_node", map[string]any{"node": "pve"}); !res.IsError || !strings.Contains(textOf(res), "already online") {
		t.Fatalf("waking an online node: %s", textOf(res))
	}
	h.sim.SetNodeOffline("pve", true)
	out := structured[tools.WakeOut](t, h.call(agentRed, "wake_node", map[string]any{"node": "pve"}))
	if out.SentBytes != 102 {
		t.Fatalf("sent %d bytes", out.SentBytes)
	}
	buf := make([]byte, 200)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:12:34:02")
	if string(buf[:n]) != string(tools.MagicPacket(mac)) {
		t.Fatalf("packet % x", buf[:n])
	}
}

func TestCommandsCannotHideFromTheApprover(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	for _, cmd := range []string{
		"rm -rf /srv/app #\r\x1b[2KRun `uptime`", // terminal escapes
		"uptime\nsystemctl stop pve-cluster",     // a second line
		"systemctl stop \u202epve-cluster",       // bidi override
		"systemctl stop pve\u200b-cluster",       // zero-width space
	} {
		res := h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": cmd})
		if !res.IsError || !strings.Contains(textOf(res), "invisible or control character") {
			t.Errorf("%q accepted: %s", cmd, textOf(res))
		}
	}
	// A credential in a command is refused, not shown redacted: redaction could
	// hide part of the command from the approver.
	for _, cmd := range []string{
		"mysql --password=hunter2 -e 'select 1'",
		`qm set 101 --description "token='" --delete net0 --description "'"`,
	} {
		res := h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": cmd})
		if !res.IsError || !strings.Contains(textOf(res), "credential") {
			t.Errorf("%q accepted: %s", cmd, textOf(res))
		}
	}
	ctx := context.Background()
	rows, _ := h.store.AuditRecent(ctx, 50)
	for _, row := range rows {
		if strings.Contains(row.Args+row.Plan+row.Error, "hunter2") {
			t.Fatal("the password reached the audit log")
		}
	}
	if len((*shells).Ran("pve")) != 0 {
		t.Fatal("something reached the shell")
	}
}

func TestReadOnlyCommandsMayReadProtectedNodes(t *testing.T) {
	tweak, _ := withShells(t)
	h := newHarness(t, tweak)
	out := structured[tools.CommandOutput](t, h.call(agentRed, "execute_ssh", map[string]any{"node": "agent1", "command": "uptime"}))
	if !strings.Contains(out.Stdout, "load average") {
		t.Fatalf("uptime on agent1: %+v", out)
	}
	if r := refusalOf(t, h.call(agentRed, "execute_ssh", map[string]any{"node": "agent1", "command": "systemctl restart pveproxy"})); r.Decision != safety.Protected {
		t.Fatalf("a change on protected agent1: %+v", r)
	}
	if err := h.srv.SetSwitch(context.Background(), PrefKillSwitch, true, "operator"); err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": "uptime"})); r.Decision != safety.KillSwitch {
		t.Fatalf("kill switch: %+v", r)
	}
}

func TestCommandsNamingProtectedGuestsAreRefused(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	for _, cmd := range []string{"qm stop 103", "pct stop 103", "pvesh create /nodes/agent1/qemu/103/status/stop", "qm migrate 101 agent1"} {
		if r := refusalOf(t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": cmd})); r.Decision != safety.Protected {
			t.Errorf("%q: %+v", cmd, r)
		}
	}
	if r := refusalOf(t, h.call(agentRed, "restart_service", map[string]any{"node": "home", "service": "docker.service"})); r.Decision != safety.Protected {
		t.Errorf("docker.service: %+v", r)
	}
	out := structured[tools.CommandOutput](t, h.call(agentRed, "execute_ssh", map[string]any{"node": "pve", "command": "qm list"}))
	if !strings.Contains(out.Stdout, "VMID") {
		t.Errorf("reading qm list: %+v", out)
	}
	for _, c := range (*shells).Ran("pve") {
		if strings.Contains(c, "103") {
			t.Fatalf("a command naming 103 ran: %q", c)
		}
	}
}

// TestYellowCeilingAndExecuteSSH: execute_ssh is listed from YELLOW up, since
// its read-only commands are YELLOW; each call still gets its command's own
// tier, so what a ceiling refuses is refused with the usual refusal shape.
func TestYellowCeilingAndExecuteSSH(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	green := safety.Principal{ID: "agent:reader", Kind: safety.Agent, MaxTier: safety.Green}
	yellow := safety.Principal{ID: "agent:helper", Kind: safety.Agent, MaxTier: safety.Yellow}

	for _, c := range []struct {
		who    safety.Principal
		listed bool
	}{{green, false}, {yellow, true}, {agentRed, true}} {
		list, err := h.connect(c.who, nil).ListTools(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		listed := false
		for _, tl := range list.Tools {
			if tl.Name == "execute_ssh" {
				listed = true
				// Its RED commands make it destructive and need approval_id,
				// whoever sees it.
				if tl.Annotations.DestructiveHint == nil || !*tl.Annotations.DestructiveHint {
					t.Errorf("%s: execute_ssh is not marked destructive", c.who.ID)
				}
				if props, _ := json.Marshal(tl.InputSchema); !strings.Contains(string(props), `"approval_id"`) {
					t.Errorf("%s: execute_ssh does not offer approval_id", c.who.ID)
				}
			}
		}
		if listed != c.listed {
			t.Errorf("%s (ceiling %s) sees execute_ssh: %t, want %t", c.who.ID, c.who.MaxTier, listed, c.listed)
		}
	}

	for _, c := range []struct {
		name     string
		who      safety.Principal
		command  string
		decision safety.Decision // "" when it runs
		tier     string
		mention  string
	}{
		{"df -h runs for yellow", yellow, "df -h", "", "", "Filesystem"},
		{"uptime runs for yellow", yellow, "uptime", "", "", "load average"},
		{"a change is above a yellow ceiling", yellow, "systemctl restart nginx", safety.Blocked, "red", "YELLOW"},
		{"destructive is never run", yellow, "rm -rf /", safety.Blocked, "black", "rm"},
		{"green may not call it at all", green, "uptime", safety.Blocked, "yellow", "GREEN"},
		{"a change from red needs a person", agentRed, "systemctl restart nginx", safety.NeedsApproval, "red", "approv"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := h.call(c.who, "execute_ssh", map[string]any{"node": "pve", "command": c.command})
			if c.decision == "" {
				out := structured[tools.CommandOutput](t, res)
				if !strings.Contains(out.Stdout, c.mention) {
					t.Errorf("stdout of %q: %s", c.command, out.Stdout)
				}
				return
			}
			r := refusalOf(t, res)
			if r.Decision != c.decision || r.Tier != c.tier {
				t.Fatalf("%q from %s: %s at %s (%s); want %s at %s", c.command, c.who.ID, r.Decision, r.Tier, r.Reason, c.decision, c.tier)
			}
			if !strings.Contains(r.Reason, c.mention) {
				t.Errorf("reason %q does not mention %q", r.Reason, c.mention)
			}
		})
	}
	ran := (*shells).Ran("pve")
	for _, line := range ran {
		if strings.Contains(line, "restart") || strings.Contains(line, "rm ") {
			t.Errorf("a refused command reached the shell: %q", line)
		}
	}
	if len(ran) != 2 {
		t.Errorf("the shell saw %d commands, want df -h and uptime: %q", len(ran), ran)
	}
}
