package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	a := &AgentToken{ID: "tok_a", Name: "ci", MaxTier: "GREEN", CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour), TokenHash: "h1"}
	b := &AgentToken{ID: "tok_b", Name: "ops", MaxTier: "YELLOW", CreatedAt: base.Add(time.Minute), TokenHash: "h2"}
	for _, tok := range []*AgentToken{a, b} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", tok.ID, err)
		}
	}

	got, err := s.GetToken(ctx, "tok_a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ci" || got.MaxTier != "GREEN" || !got.CreatedAt.Equal(base) || !got.ExpiresAt.Equal(base.Add(24*time.Hour)) ||
		got.RevokedAt != nil || got.TokenHash != "h1" {
		t.Errorf("GetToken = %+v, want the stored fields back", got)
	}
	if gb, _ := s.GetToken(ctx, "tok_b"); gb == nil || !gb.ExpiresAt.IsZero() {
		t.Errorf("token without expiry came back as %+v", gb)
	}

	list, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "tok_b" || list[1].ID != "tok_a" {
		t.Errorf("ListTokens order = %v, want tok_b then tok_a", list)
	}

	revoked := base.Add(time.Hour)
	if err := s.RevokeToken(ctx, "tok_a", revoked); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "tok_a", revoked.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeToken: %v", err)
	}
	if got, _ := s.GetToken(ctx, "tok_a"); got.RevokedAt == nil || !got.RevokedAt.Equal(revoked) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, revoked)
	}

	errTests := []struct {
		name string
		run  func() error
		is   error
	}{
		{"get unknown", func() error { _, err := s.GetToken(ctx, "nope"); return err }, ErrNotFound},
		{"revoke unknown", func() error { return s.RevokeToken(ctx, "nope", base) }, ErrNotFound},
		{"duplicate id", func() error { return s.CreateToken(ctx, &AgentToken{ID: "tok_a", TokenHash: "h3"}) }, nil},
		{"duplicate hash", func() error { return s.CreateToken(ctx, &AgentToken{ID: "tok_c", TokenHash: "h1"}) }, nil},
		{"no id", func() error { return s.CreateToken(ctx, &AgentToken{TokenHash: "h4"}) }, nil},
		{"no hash", func() error { return s.CreateToken(ctx, &AgentToken{ID: "tok_d"}) }, nil},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}
