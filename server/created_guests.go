package server

import (
	"context"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// noteGuestRecords keeps the store's record of the guests Jarvis created in
// step with a call that ended ok: a clone is remembered with its audit row, a
// deleted guest forgotten. A failed write is logged; it can only make Jarvis
// refuse to delete a guest later, never allow one it should not.
func (s *Server) noteGuestRecords(ctx context.Context, c Call, tool *tools.Tool, beginID uint64, out any) {
	if c.cluster != s.defaultCluster() {
		// The records are kept per VMID, not per cluster (clusters.go):
		// another cluster's guest must never replace the default's record.
		return
	}
	if g, ok := out.(tools.GuestCreated); ok {
		node, vmid, marker := g.CreatedGuest()
		rec := store.CreatedGuest{VMID: vmid, Node: node, Tool: tool.Name, Principal: c.Principal.ID, Marker: marker, BeginID: beginID}
		if err := s.opts.Store.RecordCreatedGuest(ctx, rec); err != nil {
			s.opts.Logger.Error("could not record a guest Jarvis created; delete_guest will refuse it", "vmid", vmid, "err", err)
		}
	}
	if g, ok := out.(tools.GuestDeleted); ok {
		if err := s.opts.Store.ForgetCreatedGuest(ctx, g.DeletedGuest()); err != nil {
			s.opts.Logger.Error("could not forget a deleted guest's creation record", "vmid", g.DeletedGuest(), "err", err)
		}
	}
}
