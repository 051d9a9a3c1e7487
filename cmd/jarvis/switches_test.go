package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The operator at the host turns the kill switch on while a stdio call waits for
// approval: approving is refused, the waiting call stops with kill_switch, and the
// VM keeps running. Released, the same approval can be granted and the retry runs.
func TestStdioKillSwitchWhileACallWaits(t *testing.T) {
	env := demoEnv(t, "JARVIS_APPROVAL_WAIT=60s")
	cmd := exec.Command(jarvisBinary(t), "stdio", "--demo")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr: %s", err, stderr.String())
	}
	defer func() { cs.Close(); _ = cmd.Wait() }()

	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	waiting := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		waiting <- answer{res, err}
	}()

	idRE := regexp.MustCompile(`apr_[0-9a-f]{16}`)
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ := runJarvis(t, env, "approvals")
		id = idRE.FindString(out)
	}
	if id == "" {
		t.Fatal("the waiting call's approval request never appeared in jarvis approvals")
	}
	if out, err := runJarvis(t, env, "safety", "kill-switch", "on"); err != nil || !strings.Contains(out, "kill switch: on") {
		t.Fatalf("jarvis safety kill-switch on: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "approve", id); err == nil || !strings.Contains(out, "kill switch is on") {
		t.Fatalf("approving with the kill switch on: %v\n%s", err, out)
	}
	select {
	case a := <-waiting:
		if a.err != nil {
			t.Fatal(a.err)
		}
		r := refusal(t, a.res)
		if r["decision"] != "kill_switch" || r["approval_id"] != id {
			t.Fatalf("the waiting call after the switch: %v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting call did not stop when the kill switch went on")
	}
	status := func() string {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_guest_status", Arguments: map[string]any{"vmid": 101}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res.StructuredContent)
		return string(b)
	}
	if s := status(); !strings.Contains(s, `"status":"running"`) {
		t.Fatalf("VM 101 with the kill switch on: %s", s)
	}

	if out, err := runJarvis(t, env, "safety", "kill-switch", "off"); err != nil || !strings.Contains(out, "kill switch: off") {
		t.Fatalf("jarvis safety kill-switch off: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "approve", id); err != nil {
		t.Fatalf("approving after the release: %v\n%s", err, out)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101, "approval_id": id}})
	if err != nil || res.IsError {
		t.Fatalf("approved retry: %v %+v", err, res)
	}
	if s := status(); !strings.Contains(s, `"status":"stopped"`) {
		t.Fatalf("VM 101 after the approved retry: %s", s)
	}
	if out, err := runJarvis(t, env, "safety", "read-only", "maybe"); err == nil || !strings.Contains(out, "usage: jarvis safety") {
		t.Fatalf("bad switch value: %v\n%s", err, out)
	}
}
