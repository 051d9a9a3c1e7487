package server

import (
	"context"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/safety"
)

// The whole life of a guest Jarvis creates, through dispatch: an agent clones
// the template (YELLOW, no person needed), the server records it with the
// clone's audit row, and delete_guest then asks a person and removes it. A
// guest Jarvis did not create stays BLACK, with nobody asked; so does one
// whose tag was set by hand.
func TestGuestsJarvisCreatedCanBeDeletedOthersNever(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	agent := safety.Principal{ID: "agent:builder", Kind: safety.Agent, MaxTier: safety.Red}

	clone := structured[map[string]any](t, h.call(agent, "clone_guest", map[string]any{"vmid": 9000, "new_vmid": 150, "name": "web02", "full": true}))
	if clone["vmid"] != float64(150) && clone["new_vmid"] != float64(150) {
		t.Fatalf("clone_guest answered %v", clone)
	}
	if ok, err := h.store.CreatedByJarvis(ctx, 150); err != nil || !ok {
		t.Fatalf("the clone is not recorded as created by Jarvis: %v, %v", ok, err)
	}

	// A guest nobody recorded: BLACK, whatever its tag.
	for _, vmid := range []int{106} {
		r := refusalOf(t, h.call(agent, "delete_guest", map[string]any{"vmid": vmid}))
		if r.Decision != safety.Blocked || r.Tier != "black" || !strings.Contains(r.Reason, "not created by Jarvis") {
			t.Errorf("delete_guest %d: %+v, want blocked at BLACK saying Jarvis did not create it", vmid, r)
		}
	}
	if n, _ := h.store.CountApprovals(ctx, "pending"); n != 0 {
		t.Fatalf("%d approvals pending after BLACK refusals; nobody may be asked", n)
	}

	// The clone: RED, a person approves, it is deleted and forgotten.
	first := refusalOf(t, h.call(agent, "delete_guest", map[string]any{"vmid": 150}))
	if first.Decision != safety.NeedsApproval || !strings.Contains(first.Plan, "150") {
		t.Fatalf("delete_guest of the clone: %+v, want needs_approval naming VM 150", first)
	}
	if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator"); err != nil {
		t.Fatal(err)
	}
	res := h.call(agent, "delete_guest", map[string]any{"vmid": 150, "approval_id": first.ApprovalID})
	if res.IsError {
		t.Fatalf("approved delete_guest failed: %s", textOf(res))
	}
	if ok, _ := h.store.CreatedByJarvis(ctx, 150); ok {
		t.Error("a deleted guest is still recorded as created by Jarvis")
	}
	if st := h.call(agent, "get_guest_status", map[string]any{"vmid": 150}); !st.IsError {
		t.Errorf("VM 150 still exists after delete_guest: %s", textOf(st))
	}
}
