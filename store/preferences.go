package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// preferenceRecord is one operator preference (dashboard settings and the like).
type preferenceRecord struct {
	Key       string `gorm:"primaryKey"`
	Value     string `gorm:"type:text;not null"`
	UpdatedNS int64  `gorm:"not null"`
}

func (preferenceRecord) TableName() string { return "preferences" }

// GetPreference returns the value stored under key and whether there is one.
func (s *Store) GetPreference(ctx context.Context, key string) (string, bool, error) {
	var rec preferenceRecord
	if err := s.db.WithContext(ctx).Where("key = ?", key).Take(&rec).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("read preference %q: %w", key, err)
	}
	return rec.Value, true, nil
}

// SetPreference stores value under key, replacing any earlier value.
func (s *Store) SetPreference(ctx context.Context, key, value string) error {
	if key == "" {
		return errors.New("set preference: key is empty")
	}
	// A value may be a person's words (a switch's reason): storable (text.go).
	rec := preferenceRecord{Key: key, Value: cleanText(value), UpdatedNS: s.now().UnixNano()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"value", "updated_ns"}),
	}).Create(&rec).Error
	if err != nil {
		return fmt.Errorf("set preference %q: %w", key, err)
	}
	return nil
}

// ListPreferences returns every preference.
func (s *Store) ListPreferences(ctx context.Context) (map[string]string, error) {
	var recs []preferenceRecord
	if err := s.db.WithContext(ctx).Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list preferences: %w", err)
	}
	out := make(map[string]string, len(recs))
	for _, r := range recs {
		out[r.Key] = r.Value
	}
	return out, nil
}
