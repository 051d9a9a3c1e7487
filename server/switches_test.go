package server

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// The safety switches hold at the moment a call would run, not only when it came
// in: a person's yes can take minutes, and a switch turned on meanwhile wins.

// waitPending returns the id of the first pending approval, waiting for it to appear.
func (h *harness) waitPending() string {
	h.t.Helper()
	for range 250 {
		if list, _ := h.store.ListApprovals(context.Background(), store.ApprovalPending); len(list) > 0 {
			return list[0].ID
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatal("no approval request appeared")
	return ""
}

// switchCases are the two live switches and the decision each must give.
var switchCases = []struct {
	key  string
	want safety.Decision
}{
	{PrefKillSwitch, safety.KillSwitch},
	{PrefReadOnly, safety.ReadOnlyMode},
}

func TestSwitchTurnedOnWhileACallWaitsForApproval(t *testing.T) {
	for _, sc := range switchCases {
		t.Run(sc.key, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.ApprovalWait = 20 * time.Second })
			done := make(chan error, 1)
			go func() {
				id := h.waitPending()
				// The operator approved just before the switch went on (another
				// process, or the click raced the switch): the call must still not run.
				if _, err := h.store.DecideApproval(context.Background(), id, true, "operator", time.Now()); err != nil {
					done <- err
					return
				}
				done <- h.srv.SetSwitch(context.Background(), sc.key, true, "operator")
			}()
			start := time.Now()
			res := h.srv.Dispatch(context.Background(), Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			r := refusalOf(t, res)
			if r.Decision != sc.want || h.guestStatus(101) != "running" {
				t.Fatalf("approved call with %s on: %+v, VM %s", sc.key, r, h.guestStatus(101))
			}
			if h.executions("stop_vm") != 0 {
				t.Fatal("stop_vm executed with a switch on")
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("the call waited out its approval wait (%s) instead of stopping", time.Since(start))
			}
		})
	}
}

func TestSwitchOnEndsTheWaitAndCannotBeApprovedPast(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ApprovalWait = 20 * time.Second })
	ctx := context.Background()
	type result struct {
		res *mcp.CallToolResult
	}
	got := make(chan result, 1)
	go func() {
		got <- result{h.srv.Dispatch(ctx, Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})}
	}()
	id := h.waitPending()
	if err := h.srv.SetSwitch(ctx, PrefKillSwitch, true, "operator"); err != nil {
		t.Fatal(err)
	}
	_, err := h.srv.DecideApproval(ctx, id, true, "operator")
	var on *SwitchOnError
	if !errors.As(err, &on) || !on.KillSwitch || !strings.Contains(err.Error(), "kill switch is on") {
		t.Fatalf("approving with the kill switch on: %v", err)
	}
	select {
	case g := <-got:
		r := refusalOf(t, g.res)
		if r.Decision != safety.KillSwitch || r.ApprovalID != id || !strings.Contains(r.Reason, id) {
			t.Fatalf("waiting call after the switch: %+v", r)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting call did not stop when the kill switch went on")
	}
	// The approval is still pending, not spent: once released, a person can approve it
	// and the agent's retry runs.
	a, err := h.store.GetApproval(ctx, id)
	if err != nil || a.Status != store.ApprovalPending {
		t.Fatalf("approval after the switch: %+v %v", a, err)
	}
	// Denying always works.
	if err := h.srv.SetSwitch(ctx, PrefKillSwitch, false, "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.DecideApproval(ctx, id, true, "operator"); err != nil {
		t.Fatal(err)
	}
	res := h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "approval_id": id})
	if res.IsError || h.guestStatus(101) != "stopped" {
		t.Fatalf("approved after release: %s", textOf(res))
	}
}

func TestDenyWorksWithASwitchOn(t *testing.T) {
	for _, sc := range switchCases {
		t.Run(sc.key, func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			first := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101}))
			if err := h.srv.SetSwitch(ctx, sc.key, true, "operator"); err != nil {
				t.Fatal(err)
			}
			var on *SwitchOnError
			if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator"); !errors.As(err, &on) || on.KillSwitch != (sc.key == PrefKillSwitch) {
				t.Fatalf("approve with %s on: %v", sc.key, err)
			}
			if a, err := h.srv.DecideApproval(ctx, first.ApprovalID, false, "operator"); err != nil || a.Status != store.ApprovalDenied {
				t.Fatalf("deny with %s on: %+v %v", sc.key, a, err)
			}
		})
	}
}

func TestSwitchOnBeforeAnApprovalIDRetry(t *testing.T) {
	for _, sc := range switchCases {
		t.Run(sc.key, func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			first := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101}))
			if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator"); err != nil {
				t.Fatal(err)
			}
			if err := h.srv.SetSwitch(ctx, sc.key, true, "operator"); err != nil {
				t.Fatal(err)
			}
			r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 101, "approval_id": first.ApprovalID}))
			if r.Decision != sc.want || h.guestStatus(101) != "running" {
				t.Fatalf("approval_id retry with %s on: %+v", sc.key, r)
			}
		})
	}
}

func TestSwitchOnBeforeTheElicitationAnswer(t *testing.T) {
	for _, sc := range switchCases {
		t.Run(sc.key, func(t *testing.T) {
			h := newHarness(t)
			// The person is shown the question; while it is on screen the operator
			// elsewhere turns the switch on; then the person says yes.
			cs := h.connect(operator, func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				if err := h.srv.SetSwitch(ctx, sc.key, true, "operator"); err != nil {
					return nil, err
				}
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
			})
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
			if err != nil {
				t.Fatal(err)
			}
			if r := refusalOf(t, res); r.Decision != sc.want || h.guestStatus(101) != "running" {
				t.Fatalf("elicitation answered with %s on: %+v", sc.key, r)
			}
		})
	}
}

// A local operator without elicitation (jarvis stdio in most clients) waits in the
// call; the switch stops it there too.
func TestSwitchOnWhileALocalOperatorWaits(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ApprovalWait = 20 * time.Second })
	cs := h.connect(operator, nil)
	go func() {
		h.waitPending()
		_ = h.srv.SetSwitch(context.Background(), PrefKillSwitch, true, "operator")
	}()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
	if err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, res); r.Decision != safety.KillSwitch || h.guestStatus(101) != "running" {
		t.Fatalf("local operator's waiting call: %+v", r)
	}
}

// The target is resolved again after the wait: a guest that changed while the
// person was deciding is not what they approved.
func TestTargetChangedWhileACallWaits(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ApprovalWait = 20 * time.Second })
	done := make(chan error, 1)
	go func() {
		id := h.waitPending()
		if err := h.sim.RenameGuest(101, "restored-web"); err != nil {
			done <- err
			return
		}
		_, err := h.srv.DecideApproval(context.Background(), id, true, "operator")
		done <- err
	}()
	res := h.srv.Dispatch(context.Background(), Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r := refusalOf(t, res)
	if r.Decision != safety.Denied || !strings.Contains(r.Reason, "changed while the call waited") || !strings.Contains(r.Plan, "restored-web") {
		t.Fatalf("renamed while waiting: %+v", r)
	}
	if h.guestStatus(101) != "running" {
		t.Fatal("the changed guest was stopped")
	}
}
