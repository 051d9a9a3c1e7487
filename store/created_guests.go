package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// createdGuestRecord remembers a guest Jarvis created (clone_guest,
// restore_backup into a new VMID), tied to the audit rows of the call that
// created it. delete_guest may remove only such guests.
type createdGuestRecord struct {
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
	VMID      int
	Node      string
	Tool      string
	Principal string
	Marker    string
	BeginID   uint64
}

// RecordCreatedGuest remembers that the call audited under beginID created
// guest vmid. A later record for the same VMID replaces an earlier one.
func (s *Store) RecordCreatedGuest(ctx context.Context, g CreatedGuest) error {
	if g.VMID <= 0 || g.BeginID == 0 || g.Marker == "" {
		return fmt.Errorf("record created guest: vmid %d, its id tag %q and audit row %d must all be set", g.VMID, g.Marker, g.BeginID)
	}
	rec := createdGuestRecord{VMID: g.VMID, Node: g.Node, Tool: g.Tool, Principal: g.Principal, Marker: g.Marker, BeginID: g.BeginID, CreatedNS: s.now().UnixNano()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&rec).Error
	if err != nil {
		return fmt.Errorf("record created guest %d: %w", g.VMID, err)
	}
	return nil
}

// ForgetCreatedGuest drops the record of vmid (the guest was deleted).
func (s *Store) ForgetCreatedGuest(ctx context.Context, vmid int) error {
	if err := s.db.WithContext(ctx).Delete(&createdGuestRecord{}, "vmid = ?", vmid).Error; err != nil {
		return fmt.Errorf("forget created guest %d: %w", vmid, err)
	}
	return nil
}

// CreatedByJarvis reports whether Jarvis created guest vmid, which carries the
// id tag marker: a record exists for that VMID with that id tag, and the audit
// log holds the creating call, ended ok. All are needed; a record without its
// audit rows does not count, nor a guest with another (or no) id tag.
func (s *Store) CreatedByJarvis(ctx context.Context, vmid int, marker string) (bool, error) {
	var rec createdGuestRecord
	err := s.db.WithContext(ctx).Where("vmid = ?", vmid).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read created guest %d: %w", vmid, err)
	}
	if rec.Marker == "" || rec.Marker != marker {
		return false, nil
	}
	var n int64
	err = s.db.WithContext(ctx).Model(&auditRecord{}).
		Where("begin_id = ? AND kind = ? AND status = ? AND tool = ?", rec.BeginID, "end", OutcomeOK, rec.Tool).
		Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("read the audit rows of created guest %d: %w", vmid, err)
	}
	return n > 0, nil
}

// ListCreatedGuests returns every guest Jarvis has a creation record of, by VMID.
func (s *Store) ListCreatedGuests(ctx context.Context) ([]CreatedGuest, error) {
	var recs []createdGuestRecord
	if err := s.db.WithContext(ctx).Order("vmid").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list created guests: %w", err)
	}
	out := make([]CreatedGuest, len(recs))
	for i, r := range recs {
		out[i] = CreatedGuest{VMID: r.VMID, Node: r.Node, Tool: r.Tool, Principal: r.Principal, Marker: r.Marker, BeginID: r.BeginID}
	}
	return out, nil
}

// CreatedGuestDetails says which tool created guest vmid and when, for the
// plan of delete_guest; ErrNotFound when there is no record.
func (s *Store) CreatedGuestDetails(ctx context.Context, vmid int) (tool string, at time.Time, err error) {
	var rec createdGuestRecord
	err = s.db.WithContext(ctx).Where("vmid = ?", vmid).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", time.Time{}, ErrNotFound
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read created guest %d: %w", vmid, err)
	}
	return rec.Tool, fromNS(rec.CreatedNS).UTC(), nil
}
