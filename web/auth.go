package web

import (
	"context"
	"crypto/hmac"
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
	"github.com/jarvis-homelab/jarvis/server"
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
	Kind    safety.PrincipalKind `json:"kind"`     // operator | agent
	MaxTier string               `json:"max_tier"` // green | yellow | red
	Name    string               `json:"name,omitempty"`
	// Toolsets, for an agent token issued with its own, lists them (comma-separated).
	Toolsets string `json:"toolsets,omitempty"`
	// Epoch ties an operator login to the current session epoch; logging out
	// moves the epoch on and so ends every operator session at once.
	Epoch string `json:"epoch,omitempty"`
	jwt.RegisteredClaims
}

// prefOperatorEpoch is where the operator session epoch is kept.
const prefOperatorEpoch = "auth.operator_epoch"

// Tokens issues and verifies Jarvis's JWTs (HS256, issuer, audience, expiry required).
type Tokens struct {
	key []byte
	// operatorKey signs operator logins. It is derived from the key and the
	// operator password, so changing the password ends every login.
	operatorKey []byte
	store       *store.Store
	now         func() time.Time
}

// NewTokens uses key to sign agent tokens; the key is derived from JWT_SECRET by
// the caller. Operator logins need SetOperatorPassword first.
func NewTokens(key []byte, st *store.Store) *Tokens {
	return &Tokens{key: key, store: st, now: time.Now}
}

// SetOperatorPassword enables operator logins, signed with a key bound to password.
func (t *Tokens) SetOperatorPassword(password string) {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("operator-login:" + password))
	t.operatorKey = m.Sum(nil)
}

// IssueOperator mints the operator's login token.
func (t *Tokens) IssueOperator(ctx context.Context) (string, time.Time, error) {
	if t.operatorKey == nil {
		return "", time.Time{}, errors.New("operator logins are not enabled")
	}
	epoch, err := t.operatorEpoch(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := t.now().Add(OperatorTTL)
	tok, err := t.sign(t.operatorKey, Claims{Kind: safety.Operator, MaxTier: safety.Red.String(), Epoch: epoch, RegisteredClaims: jwt.RegisteredClaims{
		Subject: safety.OperatorID, ExpiresAt: jwt.NewNumericDate(exp), ID: randomID("op_"),
	}})
	return tok, exp, err
}

// EndOperatorSessions moves the session epoch on: every operator login so far stops working.
func (t *Tokens) EndOperatorSessions(ctx context.Context) error {
	return t.store.SetPreference(ctx, prefOperatorEpoch, randomID("ep_"))
}

func (t *Tokens) operatorEpoch(ctx context.Context) (string, error) {
	epoch, ok, err := t.store.GetPreference(ctx, prefOperatorEpoch)
	if err != nil {
		return "", fmt.Errorf("reading the session epoch: %w", err)
	}
	if !ok {
		return "", nil
	}
	return epoch, nil
}

// IssueAgent mints an agent token and records it (by id and hash) so it can be
// revoked. toolsets, when not empty, is the token's own toolsets (already
// checked by tools.ParseToolsets); empty means the server's.
func (t *Tokens) IssueAgent(ctx context.Context, name string, maxTier safety.Tier, ttl time.Duration, toolsets []string) (string, *store.AgentToken, error) {
	if maxTier < safety.Green || maxTier > safety.Red {
		return "", nil, fmt.Errorf("an agent's ceiling must be green, yellow or red")
	}
	if ttl <= 0 || ttl > 366*24*time.Hour {
		return "", nil, fmt.Errorf("token lifetime must be between 1s and 366 days")
	}
	now := t.now()
	id := randomID("tok_")
	// The subject names the token, not only the agent: two tokens with the same
	// name never share approvals or rate limits.
	sets := strings.Join(toolsets, ",")
	tok, err := t.sign(t.key, Claims{Kind: safety.Agent, MaxTier: maxTier.String(), Name: name, Toolsets: sets, RegisteredClaims: jwt.RegisteredClaims{
		Subject: "agent:" + name + "/" + id, ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: id,
	}})
	if err != nil {
		return "", nil, err
	}
	rec := &store.AgentToken{ID: id, Name: name, MaxTier: maxTier.String(), Toolsets: sets, CreatedAt: now, ExpiresAt: now.Add(ttl), TokenHash: hashToken(tok)}
	if err := t.store.CreateToken(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("recording the token: %w", err)
	}
	return tok, rec, nil
}

func (t *Tokens) sign(key []byte, c Claims) (string, error) {
	c.Issuer = tokenIssuer
	c.Audience = jwt.ClaimStrings{tokenAudience}
	c.IssuedAt = jwt.NewNumericDate(t.now())
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
}

// Verify checks a token's signature, issuer, audience and expiry, and for agents that
// it is known and not revoked.
func (t *Tokens) Verify(ctx context.Context, raw string) (*Claims, error) {
	var c Claims
	// The key depends on the kind the token claims; a wrong claim simply fails
	// the signature check with the other key.
	keyFor := func(tok *jwt.Token) (any, error) {
		if cl, ok := tok.Claims.(*Claims); ok && cl.Kind == safety.Operator {
			if t.operatorKey == nil {
				return nil, errors.New("operator logins are not enabled")
			}
			return t.operatorKey, nil
		}
		return t.key, nil
	}
	_, err := jwt.ParseWithClaims(raw, &c, keyFor,
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer), jwt.WithAudience(tokenAudience), jwt.WithTimeFunc(t.now))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
	}
	switch c.Kind {
	case safety.Operator:
		if c.Subject != safety.OperatorID {
			return nil, fmt.Errorf("%w: bad subject", auth.ErrInvalidToken)
		}
		epoch, err := t.operatorEpoch(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		if c.Epoch != epoch {
			return nil, fmt.Errorf("%w: this login was ended (logged out)", auth.ErrInvalidToken)
		}
	case safety.Agent:
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
		if c.Toolsets != rec.Toolsets {
			return nil, fmt.Errorf("%w: bad toolsets", auth.ErrInvalidToken)
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
		return server.TokenInfo(c.Principal(), c.ExpiresAt.Time), nil
	}
}

// Principal is the caller a verified token stands for.
func (c *Claims) Principal() safety.Principal {
	tier, err := safety.ParseTier(c.MaxTier)
	if err != nil {
		tier = safety.Green // Verify refuses such tokens; the least, should one slip through
	}
	return safety.Principal{ID: c.Subject, Kind: c.Kind, MaxTier: tier, Toolsets: c.Toolsets}
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
