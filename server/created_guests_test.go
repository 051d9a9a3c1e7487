package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
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
	list, err := h.store.ListCreatedGuests(ctx)
	if err != nil || len(list) != 1 || list[0].VMID != 150 || list[0].Tool != "clone_guest" {
		t.Fatalf("the clone is not recorded: %+v, %v", list, err)
	}
	if ok, err := h.store.CreatedByJarvis(ctx, 150, list[0].Marker); err != nil || !ok {
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
	if ok, _ := h.store.CreatedByJarvis(ctx, 150, list[0].Marker); ok {
		t.Error("a deleted guest is still recorded as created by Jarvis")
	}
	if st := h.call(agent, "get_guest_status", map[string]any{"vmid": 150}); !st.IsError {
		t.Errorf("VM 150 still exists after delete_guest: %s", textOf(st))
	}
}

// A guest a person makes in Proxmox carries Jarvis's tags when it is cloned
// from a guest Jarvis made, and may get a VMID Jarvis once used (Proxmox hands
// out the lowest free one). It is not Jarvis's: delete_guest stays BLACK and
// the plan does not call it Jarvis's.
func TestACopyMadeInProxmoxOfJarvissGuestIsNotJarviss(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	agent := safety.Principal{ID: "agent:builder", Kind: safety.Agent, MaxTier: safety.Red}
	for _, id := range []int{150, 151} {
		if res := h.call(agent, "clone_guest", map[string]any{"vmid": 9000, "new_vmid": id, "name": fmt.Sprintf("web%d", id), "full": true}); res.IsError {
			t.Fatalf("clone %d: %s", id, textOf(res))
		}
	}
	// A person, in Proxmox: deletes 150, then clones Jarvis's 151 into the
	// freed VMID 150. Jarvis's record of 150 is stale; the tags are 151's.
	client := h.srv.defaultCluster().Env.PVE
	upid, err := client.DestroyGuest(ctx, "home", "qemu", 150, false, false)
	if err == nil {
		_, err = client.WaitTask(ctx, upid, 10*time.Millisecond, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	upid, err = client.CloneGuest(ctx, "home", "qemu", 151, pve.CloneOptions{NewID: 150, Name: "humans-db", Full: true})
	if err == nil {
		_, err = client.WaitTask(ctx, upid, 10*time.Millisecond, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg := structured[map[string]any](t, h.call(agent, "get_guest_config", map[string]any{"vmid": 150}))
	if cfg["created_by_jarvis"] != false || !strings.Contains(fmt.Sprint(cfg["tags"]), "jarvis-created") {
		t.Fatalf("the person's copy: created_by_jarvis %v, tags %v; want false, with the copied tags", cfg["created_by_jarvis"], cfg["tags"])
	}
	r := refusalOf(t, h.call(agent, "delete_guest", map[string]any{"vmid": 150}))
	if r.Decision != safety.Blocked || r.Tier != "black" || strings.Contains(r.Plan, "created by Jarvis") {
		t.Fatalf("delete_guest of a person's copy: %+v, want blocked at BLACK, the plan not calling it Jarvis's", r)
	}
	// 151, which Jarvis made, still is.
	if first := refusalOf(t, h.call(agent, "delete_guest", map[string]any{"vmid": 151})); first.Decision != safety.NeedsApproval {
		t.Errorf("delete_guest of Jarvis's own 151: %+v, want needs_approval", first)
	}
}
