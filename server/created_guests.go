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
	// Each cluster has its own VMIDs: the record is kept under the call's
	// cluster, so a clone on lab never replaces home's record of the same VMID.
	records := s.opts.Store.CreatedGuestsOn(s.guestCluster(c.cluster))
	if g, ok := out.(tools.GuestCreated); ok {
		node, vmid, marker := g.CreatedGuest()
		rec := store.CreatedGuest{VMID: vmid, Node: node, Tool: tool.Name, Principal: c.Principal.ID, Marker: marker, BeginID: beginID}
		if err := records.Record(ctx, rec); err != nil {
			s.opts.Logger.Error("could not record a guest Jarvis created; delete_guest will refuse it", "cluster", c.cluster.Name, "vmid", vmid, "err", err)
		}
	}
	if g, ok := out.(tools.GuestDeleted); ok {
		if err := records.Forget(ctx, g.DeletedGuest()); err != nil {
			s.opts.Logger.Error("could not forget a deleted guest's creation record", "cluster", c.cluster.Name, "vmid", g.DeletedGuest(), "err", err)
		}
	}
}
