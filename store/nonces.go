package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// spentNonceRecord remembers a used confirmation nonce until it expires, so a
// confirmation answered once cannot be replayed to another jarvis process
// sharing the database, or to this one after a restart.
type spentNonceRecord struct {
	Nonce     string `gorm:"primaryKey"`
	ExpiresNS int64  `gorm:"not null;index"`
}

func (spentNonceRecord) TableName() string { return "spent_nonces" }

// SpendNonce records nonce as used until expires. It returns ErrAlreadyConsumed
// when it was spent before; expired entries are forgotten on the way.
func (s *Store) SpendNonce(ctx context.Context, nonce string, expires time.Time) error {
	if nonce == "" {
		return fmt.Errorf("spend nonce: empty nonce")
	}
	db := s.db.WithContext(ctx)
	if err := db.Where("expires_ns < ?", s.now().UnixNano()).Delete(&spentNonceRecord{}).Error; err != nil {
		return fmt.Errorf("spend nonce: forget expired: %w", err)
	}
	res := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&spentNonceRecord{Nonce: nonce, ExpiresNS: expires.UnixNano()})
	if res.Error != nil {
		return fmt.Errorf("spend nonce: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrAlreadyConsumed
	}
	return nil
}
