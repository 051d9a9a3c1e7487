package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// jarvis serve --demo with JARVIS_CLUSTERS=home,lab, as a user runs it: two
// simulated clusters, told apart by their node names and VMIDs; every tool
// takes the cluster; a call lands on the cluster it names, a person approves
// it from the host, and the audit log holds.
func TestServeDemoWithTwoClusters(t *testing.T) {
	port := freePort(t)
	env := demoEnv(t, fmt.Sprintf("PORT=%d", port), "JARVIS_CLUSTERS=home,lab")
	cmd := exec.Command(jarvisBinary(t), "serve", "--demo")
	cmd.Env = env
	var stderr lockedBuffer // written by the process's copier while the test reads it
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHealthy(t, base, stderr.String)
	if !strings.Contains(stderr.String(), "cluster lab, nodes lab-home, lab-pve, lab-agent1, lab-agent, protected: nodes lab-agent1, VMIDs [1103]") {
		t.Errorf("the demo does not say what the second cluster is:\n%s", stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := connectAgent(t, ctx, base, operatorLogin(t, base))

	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		b, _ := json.Marshal(tl.InputSchema)
		if !strings.Contains(string(b), `"cluster":{"enum":["home","lab"],"type":"string"}`) {
			t.Errorf("%s has no cluster argument: %s", tl.Name, b)
		}
	}

	call := func(tool string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return res
	}
	text := func(res *mcp.CallToolResult) string {
		b, _ := json.Marshal(res.Content)
		return string(b)
	}
	for _, c := range []struct {
		tool string
		args map[string]any
		ok   bool
		says string
	}{
		{"get_node_status", map[string]any{"node": "lab-pve", "cluster": "lab"}, true, ""},
		{"get_node_status", map[string]any{"node": "lab-pve", "cluster": "home"}, false, "lab-pve"},
		{"get_guest_status", map[string]any{"vmid": 1101, "cluster": "lab"}, true, "web01"},
		{"execute_ssh", map[string]any{"node": "lab-agent", "command": "qm list", "cluster": "lab"}, true, "1105"},
		{"get_vms", map[string]any{}, false, "cluster is required: one of home, lab"},
		{"get_vms", map[string]any{"cluster": "office"}, false, "no cluster office: one of home, lab"},
	} {
		res := call(c.tool, c.args)
		if res.IsError == c.ok || !strings.Contains(text(res), c.says) {
			t.Errorf("%s %v: %s", c.tool, c.args, text(res))
		}
	}
	if r := refusal(t, call("stop_vm", map[string]any{"vmid": 1103, "cluster": "lab"})); r["decision"] != "protected" {
		t.Errorf("stop_vm 1103 on lab: %v", r)
	}

	// A RED call on lab waits for a person, who approves it on the host.
	r := refusal(t, call("start_vm", map[string]any{"vmid": 1106, "cluster": "lab"}))
	id, _ := r["approval_id"].(string)
	if r["decision"] != "needs_approval" || !strings.HasPrefix(fmt.Sprint(r["plan"]), "[cluster lab] start_vm: Start stopped VM 1106 'test-vm' on node lab-home") {
		t.Fatalf("start_vm 1106 on lab: %v", r)
	}
	if out, err := runJarvis(t, env, "approvals"); err != nil || !strings.Contains(out, "[cluster lab]") {
		t.Errorf("jarvis approvals does not show the cluster: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "approve", id); err != nil {
		t.Fatalf("jarvis approve: %v\n%s", err, out)
	}
	if res := call("start_vm", map[string]any{"vmid": 1106, "cluster": "home", "approval_id": id}); !res.IsError {
		t.Fatalf("the lab approval ran on home: %s", text(res))
	}
	if res := call("start_vm", map[string]any{"vmid": 1106, "cluster": "lab", "approval_id": id}); res.IsError {
		t.Fatalf("the approved call: %s", text(res))
	}
	var st struct{ Status string }
	b, _ := json.Marshal(call("get_guest_status", map[string]any{"vmid": 1106, "cluster": "lab"}).StructuredContent)
	if _ = json.Unmarshal(b, &st); st.Status != "running" {
		t.Errorf("VM 1106 on lab is %q after the approved start", st.Status)
	}
	// A rule may name the cluster from the host too.
	out, err := runJarvis(t, env, "rule", "create", "--for", "operators", "--tool", "stop_vm", "--arg", "vmid=1101", "--arg", "cluster=lab", "--per-hour", "1")
	if err != nil {
		t.Errorf("jarvis rule create with a cluster: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "audit", "verify"); err != nil || !strings.Contains(out, "audit log OK") {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
	if !slices.ContainsFunc(list.Tools, func(tl *mcp.Tool) bool { return tl.Name == "list_alerts" }) {
		return
	}
	// The watcher watches lab too: list_alerts answers there.
	if res := call("list_alerts", map[string]any{"cluster": "lab"}); res.IsError || !strings.Contains(text(res), "alerts") ||
		strings.Contains(text(res), "watches cluster home only") {
		t.Errorf("list_alerts on lab: %s", text(res))
	}
}
