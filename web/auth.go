package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

const (
	tokenIssuer   = "jarvis"
	tokenAudience = "jarvis-api"
	// OperatorTTL is how long an operator login lasts.
	OperatorTTL = 7 * 24 * time.Hour
)

// Claims are the JWT claims Jarvis issues. Kind and MaxTier are what dispatch needs.
type Claims struct {
	Kind    string `json:"kind"`     // operator | agent
	MaxTier string `json:"max_tier"` // green | yellow | red
	Name    string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies Jarvis's JWTs (HS256, issuer, audience, expiry required).
type Tokens struct {
	key   []byte
	store *store.Store
	now   func() time.Time
}

// NewTokens uses key to sign; the key is derived from JWT_SECRET by the caller.
func NewTokens(key []byte, st *store.Store) *Tokens {
	return &Tokens{key: key, store: st, now: time.Now}
}

// IssueOperator mints the operator's login token.
func (t *Tokens) IssueOperator() (string, time.Time, error) {
	exp := t.now().Add(OperatorTTL)
	tok, err := t.sign(Claims{Kind: "operator", MaxTier: safety.Red.String(), RegisteredClaims: jwt.RegisteredClaims{
		Subject: "operator", ExpiresAt: jwt.NewNumericDate(exp), ID: randomID("op_"),
	}})
	return tok, exp, err
}

// IssueAgent mints an agent token and records it (by id and hash) so it can be revoked.
func (t *Tokens) IssueAgent(ctx context.Context, name string, maxTier safety.Tier, ttl time.Duration) (string, *store.AgentToken, error) {
	if maxTier < safety.Green || maxTier > safety.Red {
		return "", nil, fmt.Errorf("an agent's ceiling must be green, yellow or red")
	}
	if ttl <= 0 || ttl > 366*24*time.Hour {
		return "", nil, fmt.Errorf("token lifetime must be between 1s and 366 days")
	}
	now := t.now()
	id := randomID("tok_")
	tok, err := t.sign(Claims{Kind: "agent", MaxTier: maxTier.String(), Name: name, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "agent:" + name, ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: id,
	}})
	if err != nil {
		return "", nil, err
	}
	rec := &store.AgentToken{ID: id, Name: name, MaxTier: maxTier.String(), CreatedAt: now, ExpiresAt: now.Add(ttl), TokenHash: hashToken(tok)}
	if err := t.store.CreateToken(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("recording the token: %w", err)
	}
	return tok, rec, nil
}

func (t *Tokens) sign(c Claims) (string, error) {
	c.Issuer = tokenIssuer
	c.Audience = jwt.ClaimStrings{tokenAudience}
	c.IssuedAt = jwt.NewNumericDate(t.now())
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
}

// Verify checks a token's signature, issuer, audience and expiry, and for agents that
// it is known and not revoked.
func (t *Tokens) Verify(ctx context.Context, raw string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer), jwt.WithAudience(tokenAudience), jwt.WithTimeFunc(t.now))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	switch c.Kind {
	case "operator":
		if c.Subject != "operator" {
			return nil, fmt.Errorf("%w: bad subject", auth.ErrInvalidToken)
		}
	case "agent":
		rec, err := t.store.GetToken(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: unknown agent token", auth.ErrInvalidToken)
		}
		if rec.RevokedAt != nil {
			return nil, fmt.Errorf("%w: token %s was revoked", auth.ErrInvalidToken, c.ID)
		}
		if rec.TokenHash != hashToken(raw) {
			return nil, fmt.Errorf("%w: token does not match its record", auth.ErrInvalidToken)
		}
		if _, err := safety.ParseTier(c.MaxTier); err != nil || c.MaxTier != rec.MaxTier {
			return nil, fmt.Errorf("%w: bad ceiling", auth.ErrInvalidToken)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind", auth.ErrInvalidToken)
	}
	return &c, nil
}

// MCPVerifier adapts Verify to the MCP SDK's bearer-token middleware, so tool
// handlers see the principal in req.Extra.TokenInfo.
func (t *Tokens) MCPVerifier() auth.TokenVerifier {
	return func(ctx context.Context, raw string, _ *http.Request) (*auth.TokenInfo, error) {
		c, err := t.Verify(ctx, raw)
		if err != nil {
			return nil, err
		}
		return &auth.TokenInfo{
			UserID:     c.Subject,
			Expiration: c.ExpiresAt.Time,
			Extra:      map[string]any{"kind": c.Kind, "max_tier": c.MaxTier, "jti": c.ID},
		}, nil
	}
}

// bearer extracts a token from the Authorization header or the session cookie.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		return c.Value
	}
	return ""
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func randomID(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return prefix + hex.EncodeToString(b)
}
