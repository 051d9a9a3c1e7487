package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// createdGuestRecord remembers a guest Jarvis created (clone_guest,
// restore_backup into a new VMID), tied to the audit rows of the call that
// created it. delete_guest may remove only such guests. Each cluster has its
// own VMIDs: the key is (cluster, vmid), and "" is the cluster of records
// from before clusters and of an installation with one.
type createdGuestRecord struct {
	Cluster   string `gorm:"primaryKey;not null;default:''"`
	VMID      int    `gorm:"column:vmid;primaryKey;autoIncrement:false"`
	Node      string `gorm:"not null"`
	Tool      string `gorm:"not null"`
	Principal string `gorm:"not null"`
	// Marker is the id tag Jarvis gave the guest (jarvis-id-…): a guest with
	// this VMID counts as Jarvis's only while it carries that tag.
	Marker string `gorm:"not null;default:''"`
	// BeginID is the audit begin row of the creating call; its end row must
	// say ok for the record to count.
	BeginID   uint64 `gorm:"not null"`
	CreatedNS int64  `gorm:"not null"`
}

func (createdGuestRecord) TableName() string { return "created_guests" }

// CreatedGuest is one guest Jarvis created.
type CreatedGuest struct {
	Cluster   string // "" for the only cluster, and records from before clusters
	VMID      int
	Node      string
	Tool      string
	Principal string
	Marker    string
	BeginID   uint64
}

// GuestRecords is the record of the guests Jarvis created on one cluster.
// It answers delete_guest for that cluster (tools.CreatedGuests).
type GuestRecords struct {
	s       *Store
	cluster string
}

// CreatedGuestsOn is the record of the guests Jarvis created on cluster; ""
// is the one the Store's own methods (CreatedByJarvis, …) use.
func (s *Store) CreatedGuestsOn(cluster string) GuestRecords {
	return GuestRecords{s: s, cluster: cluster}
}

// RecordCreatedGuest remembers that the call audited under beginID created
// guest vmid on g.Cluster. A later record for the same cluster and VMID
// replaces an earlier one.
func (s *Store) RecordCreatedGuest(ctx context.Context, g CreatedGuest) error {
	if g.VMID <= 0 || g.BeginID == 0 || g.Marker == "" {
		return fmt.Errorf("record created guest: vmid %d, its id tag %q and audit row %d must all be set", g.VMID, g.Marker, g.BeginID)
	}
	rec := createdGuestRecord{Cluster: g.Cluster, VMID: g.VMID, Node: g.Node, Tool: g.Tool, Principal: g.Principal, Marker: g.Marker,
		BeginID: g.BeginID, CreatedNS: s.now().UnixNano()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&rec).Error
	if err != nil {
		return fmt.Errorf("record created guest %s: %w", guestName(g.Cluster, g.VMID), err)
	}
	return nil
}

// Record is RecordCreatedGuest on this cluster, whatever g.Cluster says.
func (c GuestRecords) Record(ctx context.Context, g CreatedGuest) error {
	g.Cluster = c.cluster
	return c.s.RecordCreatedGuest(ctx, g)
}

// ForgetCreatedGuest drops the record of vmid (the guest was deleted) on the
// cluster "".
func (s *Store) ForgetCreatedGuest(ctx context.Context, vmid int) error {
	return s.CreatedGuestsOn("").Forget(ctx, vmid)
}

// Forget drops the record of vmid (the guest was deleted).
func (c GuestRecords) Forget(ctx context.Context, vmid int) error {
	if err := c.s.db.WithContext(ctx).Delete(&createdGuestRecord{}, "cluster = ? AND vmid = ?", c.cluster, vmid).Error; err != nil {
		return fmt.Errorf("forget created guest %s: %w", guestName(c.cluster, vmid), err)
	}
	return nil
}

// CreatedByJarvis is GuestRecords.CreatedByJarvis on the cluster "".
func (s *Store) CreatedByJarvis(ctx context.Context, vmid int, marker string) (bool, error) {
	return s.CreatedGuestsOn("").CreatedByJarvis(ctx, vmid, marker)
}

// CreatedByJarvis reports whether Jarvis created guest vmid, which carries
// the id tag marker: a record exists for that VMID with that id tag, and the
// audit log holds the creating call, ended ok. All are needed; a record
// without its audit rows does not count, nor a guest with another (or no) id
// tag.
func (c GuestRecords) CreatedByJarvis(ctx context.Context, vmid int, marker string) (bool, error) {
	rec, found, err := c.read(ctx, vmid)
	if err != nil || !found {
		return false, err
	}
	if rec.Marker == "" || rec.Marker != marker {
		return false, nil
	}
	var n int64
	err = c.s.db.WithContext(ctx).Model(&auditRecord{}).
		Where("begin_id = ? AND kind = ? AND status = ? AND tool = ?", rec.BeginID, "end", OutcomeOK, rec.Tool).
		Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("read the audit rows of created guest %s: %w", guestName(c.cluster, vmid), err)
	}
	return n > 0, nil
}

func (c GuestRecords) read(ctx context.Context, vmid int) (createdGuestRecord, bool, error) {
	var rec createdGuestRecord
	err := c.s.db.WithContext(ctx).Where("cluster = ? AND vmid = ?", c.cluster, vmid).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("read created guest %s: %w", guestName(c.cluster, vmid), err)
	}
	return rec, true, nil
}

// ListCreatedGuests returns every guest Jarvis has a creation record of, on
// every cluster, by cluster and VMID.
func (s *Store) ListCreatedGuests(ctx context.Context) ([]CreatedGuest, error) {
	var recs []createdGuestRecord
	if err := s.db.WithContext(ctx).Order(s.d.byteOrder("cluster") + ", vmid").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list created guests: %w", err)
	}
	out := make([]CreatedGuest, len(recs))
	for i, r := range recs {
		out[i] = CreatedGuest{Cluster: r.Cluster, VMID: r.VMID, Node: r.Node, Tool: r.Tool, Principal: r.Principal, Marker: r.Marker, BeginID: r.BeginID}
	}
	return out, nil
}

// CreatedGuestDetails is GuestRecords.CreatedGuestDetails on the cluster "".
func (s *Store) CreatedGuestDetails(ctx context.Context, vmid int) (tool string, at time.Time, err error) {
	return s.CreatedGuestsOn("").CreatedGuestDetails(ctx, vmid)
}

// CreatedGuestDetails says which tool created guest vmid and when, for the
// plan of delete_guest; ErrNotFound when there is no record.
func (c GuestRecords) CreatedGuestDetails(ctx context.Context, vmid int) (tool string, at time.Time, err error) {
	rec, found, err := c.read(ctx, vmid)
	if err != nil {
		return "", time.Time{}, err
	}
	if !found {
		return "", time.Time{}, ErrNotFound
	}
	return rec.Tool, fromNS(rec.CreatedNS).UTC(), nil
}

// guestName names a guest in messages: 101, or lab/101 on a named cluster.
func guestName(cluster string, vmid int) string {
	if cluster == "" {
		return strconv.Itoa(vmid)
	}
	return cluster + "/" + strconv.Itoa(vmid)
}
