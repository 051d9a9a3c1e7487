package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AgentToken records an issued agent bearer token. The token itself is never
// stored: ID is its token id (jti) and TokenHash a SHA-256 of the full token,
// so a leaked database does not leak usable tokens.
type AgentToken struct {
	ID      string
	Name    string
	MaxTier string // tier ceiling: tools above it are hidden from the token
	// Toolsets is the comma-separated toolsets the token is offered; ""
	// means the server's (JARVIS_TOOLSETS).
	Toolsets  string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: no expiry recorded
	RevokedAt *time.Time
	TokenHash string
}

type tokenRecord struct {
	ID        string `gorm:"primaryKey"`
	Name      string `gorm:"not null;default:''"`
	MaxTier   string `gorm:"not null;default:''"`
	Toolsets  string `gorm:"not null;default:''"`
	CreatedNS int64  `gorm:"not null;index"`
	ExpiresNS int64  `gorm:"not null;default:0"`
	RevokedNS *int64
	TokenHash string `gorm:"not null;uniqueIndex"`
}

func (tokenRecord) TableName() string { return "agent_tokens" }

func (r tokenRecord) token() AgentToken {
	return AgentToken{
		ID: r.ID, Name: r.Name, MaxTier: r.MaxTier, Toolsets: r.Toolsets, CreatedAt: fromNS(r.CreatedNS),
		ExpiresAt: fromNS(r.ExpiresNS), RevokedAt: fromNSPtr(r.RevokedNS), TokenHash: r.TokenHash,
	}
}

// CreateToken records a newly issued token. ID and TokenHash are required;
// CreatedAt is set when zero.
func (s *Store) CreateToken(ctx context.Context, t *AgentToken) error {
	if t == nil {
		return errors.New("create token: token is nil")
	}
	if t.ID == "" || t.TokenHash == "" {
		return errors.New("create token: id and token hash are required")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	rec := tokenRecord{
		ID: t.ID, Name: t.Name, MaxTier: t.MaxTier, Toolsets: t.Toolsets, CreatedNS: toNS(t.CreatedAt),
		ExpiresNS: toNS(t.ExpiresAt), RevokedNS: toNSPtr(t.RevokedAt), TokenHash: t.TokenHash,
	}
	if err := s.db.WithContext(ctx).Create(&rec).Error; err != nil {
		return fmt.Errorf("create token %q (%s): %w", t.Name, t.ID, err)
	}
	*t = rec.token()
	return nil
}

// GetToken returns the token with id, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (*AgentToken, error) {
	// Every MCP request over HTTP checks its token here (a revoked token stops
	// at once), so the lookup is one prepared statement (stmts.go).
	var rec tokenRecord
	err := s.stmts.getToken.QueryRowContext(ctx, id).Scan(&rec.ID, &rec.Name, &rec.MaxTier, &rec.Toolsets, &rec.CreatedNS, &rec.ExpiresNS, &rec.RevokedNS, &rec.TokenHash)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("get token %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("get token %s: %w", id, err)
	}
	t := rec.token()
	return &t, nil
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]AgentToken, error) {
	var recs []tokenRecord
	if err := s.db.WithContext(ctx).Order("created_ns DESC, " + s.d.byteOrder("id") + " DESC").Find(&recs).Error; err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]AgentToken, len(recs))
	for i, r := range recs {
		out[i] = r.token()
	}
	return out, nil
}

// RevokeToken marks a token revoked at now. Revoking it again keeps the first
// time. An unknown id gives ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string, now time.Time) error {
	db := s.db.WithContext(ctx)
	res := db.Model(&tokenRecord{}).Where("id = ? AND revoked_ns IS NULL", id).Update("revoked_ns", now.UnixNano())
	if res.Error != nil {
		return fmt.Errorf("revoke token %s: %w", id, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := db.Model(&tokenRecord{}).Where("id = ?", id).Count(&n).Error; err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("revoke token %s: %w", id, ErrNotFound)
	}
	return nil
}
