package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// lastEnd is the newest audit end row of a tool.
func (h *harness) lastEnd(tool string) store.AuditRow {
	h.t.Helper()
	rows, err := h.store.AuditRecent(context.Background(), 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	var end store.AuditRow
	for _, r := range rows {
		if r.Kind == "end" && r.Tool == tool && r.ID > end.ID {
			end = r
		}
	}
	if end.ID == 0 {
		h.t.Fatalf("no audit end row for %s", tool)
	}
	return end
}

// lastEnded is the newest "ended" feed event of a tool, with its details.
func (h *harness) lastEnded(tool string) (store.Event, map[string]any) {
	h.t.Helper()
	evs, err := h.store.EventsAfter(context.Background(), 0, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		var d map[string]any
		_ = json.Unmarshal(evs[i].Details, &d)
		if evs[i].Type == "tool" && d["tool"] == tool && d["phase"] == "ended" {
			return evs[i], d
		}
	}
	h.t.Fatalf("no ended event for %s", tool)
	return store.Event{}, nil
}

// assertUnknown checks the result, the audit row and the feed of a write whose
// outcome is unknown.
func (h *harness) assertUnknown(t *testing.T, tool string, res *mcp.CallToolResult, wantUPID bool) {
	t.Helper()
	text := textOf(res)
	if !res.IsError {
		t.Fatalf("%s with an unknown outcome answered success: %s", tool, text)
	}
	for _, wrong := range []string{"not accepted", "still running; check", " failed:"} {
		if strings.Contains(text, wrong) {
			t.Errorf("%s result says %q: %s", tool, wrong, text)
		}
	}
	if !strings.Contains(text, "outcome unknown") || !strings.Contains(text, "Before retrying, check") {
		t.Errorf("%s result does not say the outcome is unknown and what to check: %s", tool, text)
	}
	end := h.lastEnd(tool)
	if end.Status != "unknown" {
		t.Errorf("audit end row of %s has status %q, want unknown", tool, end.Status)
	}
	if wantUPID && (!strings.HasPrefix(end.UPID, "UPID:pve:") || !strings.Contains(text, end.UPID)) {
		t.Errorf("UPID %q missing from the audit row or the result %q", end.UPID, text)
	}
	ev, d := h.lastEnded(tool)
	if d["outcome"] != "unknown" || ev.Severity != "warning" {
		t.Errorf("feed event of %s: outcome %v severity %s, want unknown/warning", tool, d["outcome"], ev.Severity)
	}
}

func TestDispatchTaskStatusFailureIsUnknown(t *testing.T) {
	h := newHarness(t)
	h.sim.FailNext("/nodes/pve/tasks/", 403, "Permission check failed (/nodes/pve, Sys.Audit)")
	res := h.call(operator, "create_snapshot", map[string]any{"vmid": 101, "name": "pre_patch"})
	h.assertUnknown(t, "create_snapshot", res, true)
	if !strings.Contains(textOf(res), "Permission check failed (/nodes/pve, Sys.Audit)") {
		t.Errorf("the real error is lost: %s", textOf(res))
	}
}

// The issue's own case: an approved stop_vm whose task cannot be checked.
func TestDispatchApprovedStopWithUncheckableTaskIsUnknown(t *testing.T) {
	h := newHarness(t)
	args := map[string]any{"vmid": 101}
	first := refusalOf(t, h.call(agentRed, "stop_vm", args))
	if first.Decision != safety.NeedsApproval {
		t.Fatalf("first call: %+v", first)
	}
	if _, err := h.srv.DecideApproval(context.Background(), first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	h.sim.FailNext("/nodes/pve/tasks/", 401, "authentication failure")
	res := h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "approval_id": first.ApprovalID})
	h.assertUnknown(t, "stop_vm", res, true)
}

func TestDispatchLostPostAnswerIsUnknown(t *testing.T) {
	h := newHarness(t)
	h.sim.InjectFault(http.MethodPost, "/nodes/pve/qemu/101/snapshot", pvesim.FaultReset, 0)
	res := h.call(operator, "create_snapshot", map[string]any{"vmid": 101, "name": "pre_patch"})
	h.sim.ClearFaults()
	h.assertUnknown(t, "create_snapshot", res, false)
	if !strings.Contains(textOf(res), "get_recent_tasks for node pve") {
		t.Errorf("result does not point at get_recent_tasks: %s", textOf(res))
	}
	posts := 0
	for _, r := range h.sim.Requests() {
		if r.Method == http.MethodPost {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("the snapshot was sent %d times; Jarvis never retries a write", posts)
	}
}

func TestDispatchFailedWriteKeepsPVEsWords(t *testing.T) {
	h := newHarness(t)
	first := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101}))
	if _, err := h.srv.DecideApproval(context.Background(), first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	h.sim.FailNext("/nodes/pve/qemu/101/status/stop", 500, "VM 101 is locked (backup)")
	res := h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "approval_id": first.ApprovalID})
	if !res.IsError || !strings.Contains(textOf(res), "Proxmox refused the stop of VM 101 'web01'") ||
		!strings.Contains(textOf(res), "VM 101 is locked (backup)") || strings.Contains(textOf(res), "outcome unknown") {
		t.Fatalf("refused stop: %s", textOf(res))
	}
	if end := h.lastEnd("stop_vm"); end.Status != "failed" {
		t.Fatalf("audit status %q, want failed", end.Status)
	}
}

// A command that changes something, whose SSH session is lost while it runs,
// has an unknown outcome too.
func TestDispatchLostSSHSessionIsUnknown(t *testing.T) {
	tweak, shells := withShells(t)
	h := newHarness(t, tweak)
	args := map[string]any{"node": "pve", "command": "sleep 20"}
	first := refusalOf(t, h.call(agentRed, "execute_ssh", args))
	if first.Decision != safety.NeedsApproval {
		t.Fatalf("first call: %+v", first)
	}
	if _, err := h.srv.DecideApproval(context.Background(), first.ApprovalID, true, "operator:test"); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"node": "pve", "command": "sleep 20", "approval_id": first.ApprovalID})
	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		done <- h.srv.Dispatch(context.Background(), Call{Principal: agentRed, Tool: "execute_ssh", Args: raw})
	}()
	deadline := time.Now().Add(15 * time.Second)
	for (*shells).Running("pve") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the command never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	(*shells).DropConnections("pve")
	select {
	case res := <-done:
		h.assertUnknown(t, "execute_ssh", res, false)
	case <-time.After(30 * time.Second):
		t.Fatal("execute_ssh did not return after its session was cut")
	}
}
