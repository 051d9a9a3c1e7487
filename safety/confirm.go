package safety

// The Confirmer: signed, single-use confirmation states that bind a human's
// answer to one caller, tool and set of arguments.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors returned by Confirmer.RedeemNonce. Callers map them to decisions: invalid
// and mismatch to denied, expired to expired, replayed to denied.
var (
	ErrStateInvalid  = errors.New("confirmation state is not one this server issued")
	ErrStateExpired  = errors.New("confirmation state has expired; ask again")
	ErrStateReplayed = errors.New("confirmation state was already used")
	ErrStateMismatch = errors.New("confirmation state was issued for a different caller, tool or arguments")
	// ErrStateCapacity means too many unexpired states were redeemed recently to
	// remember them all; refusing is the only way to keep replays impossible.
	ErrStateCapacity = errors.New("too many confirmations in flight; try again in a few minutes")
)

// DefaultConfirmTTL is how long a confirmation state stays valid.
const DefaultConfirmTTL = 5 * time.Minute

const (
	maxStateLen       = 2048
	maxRememberedUsed = 100_000
	stateMACContext   = "jarvis confirm v1\n"
)

// Confirmer issues and redeems signed, single-use confirmation states that
// bind a human's answer to one principal, tool and set of arguments.
type Confirmer struct {
	key []byte
	ttl time.Duration

	mu   sync.Mutex
	used map[string]time.Time // nonce -> expiry
}

// NewConfirmer makes a Confirmer. A ttl of zero or less means DefaultConfirmTTL.
func NewConfirmer(key []byte, ttl time.Duration) *Confirmer {
	if ttl <= 0 {
		ttl = DefaultConfirmTTL
	}
	return &Confirmer{key: slices.Clone(key), ttl: ttl, used: make(map[string]time.Time)}
}

type statePayload struct {
	Nonce     string `json:"n"`
	Expiry    int64  `json:"e"` // Unix milliseconds
	Principal string `json:"p"`
	Tool      string `json:"t"`
	ArgsHash  string `json:"a"` // hex SHA-256 of the canonical arguments
}

func argsHash(canonicalArgs string) string {
	sum := sha256.Sum256([]byte(canonicalArgs))
	return hex.EncodeToString(sum[:])
}

func (c *Confirmer) mac(encodedPayload string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(stateMACContext))
	m.Write([]byte(encodedPayload))
	return m.Sum(nil)
}

// Issue returns base64url(payload) + "." + base64url(HMAC) for a confirmation
// that expires ttl after now.
func (c *Confirmer) Issue(principalID, tool, canonicalArgs string, now time.Time) (string, error) {
	if len(c.key) < 16 {
		return "", errors.New("confirmation key is shorter than 16 bytes; derive it with DeriveKey from the server secret")
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("reading random bytes for a confirmation nonce: %w", err)
	}
	p := statePayload{
		Nonce:     base64.RawURLEncoding.EncodeToString(nonce),
		Expiry:    now.Add(c.ttl).UnixMilli(),
		Principal: principalID,
		Tool:      tool,
		ArgsHash:  argsHash(canonicalArgs),
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding the confirmation state: %w", err)
	}
	enc := base64.RawURLEncoding.EncodeToString(raw)
	return enc + "." + base64.RawURLEncoding.EncodeToString(c.mac(enc)), nil
}

// RedeemNonce checks a state issued for exactly this principal, tool and
// arguments (signature, expiry) and returns its nonce and expiry, so the caller
// can spend the nonce where other processes see it too.
func (c *Confirmer) RedeemNonce(state, principalID, tool, canonicalArgs string, now time.Time) (string, time.Time, error) {
	p, err := c.redeem(state, principalID, tool, canonicalArgs, now)
	if err != nil {
		return "", time.Time{}, err
	}
	return p.Nonce, time.UnixMilli(p.Expiry), nil
}

// Check verifies a state as RedeemNonce does (signature, binding, expiry, not
// redeemed here before) but uses nothing up, so a caller can tell a genuine
// answer from junk before the one place that redeems it. A nonce spent only
// in another process's store is not seen here.
func (c *Confirmer) Check(state, principalID, tool, canonicalArgs string, now time.Time) error {
	p, err := c.verify(state, principalID, tool, canonicalArgs, now)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.used[p.Nonce]; seen {
		return ErrStateReplayed
	}
	return nil
}

func (c *Confirmer) redeem(state, principalID, tool, canonicalArgs string, now time.Time) (statePayload, error) {
	p, err := c.verify(state, principalID, tool, canonicalArgs, now)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.used[p.Nonce]; seen {
		return p, ErrStateReplayed
	}
	if len(c.used) >= maxRememberedUsed {
		for n, exp := range c.used {
			if !now.Before(exp) {
				delete(c.used, n)
			}
		}
		if len(c.used) >= maxRememberedUsed {
			return p, ErrStateCapacity
		}
	}
	c.used[p.Nonce] = time.UnixMilli(p.Expiry)
	return p, nil
}

// verify checks a state's signature, binding and expiry; it remembers nothing.
func (c *Confirmer) verify(state, principalID, tool, canonicalArgs string, now time.Time) (statePayload, error) {
	var p statePayload
	if len(c.key) < 16 || len(state) == 0 || len(state) > maxStateLen {
		return p, ErrStateInvalid
	}
	encPayload, encMAC, ok := strings.Cut(state, ".")
	if !ok || strings.Contains(encMAC, ".") {
		return p, ErrStateInvalid
	}
	gotMAC, err := base64.RawURLEncoding.DecodeString(encMAC)
	if err != nil {
		return p, ErrStateInvalid
	}
	if !hmac.Equal(gotMAC, c.mac(encPayload)) {
		return p, ErrStateInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(encPayload)
	if err != nil {
		return p, ErrStateInvalid
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.Nonce == "" {
		return p, ErrStateInvalid
	}
	if p.Principal != principalID || p.Tool != tool || p.ArgsHash != argsHash(canonicalArgs) {
		return p, ErrStateMismatch
	}
	if !now.Before(time.UnixMilli(p.Expiry)) {
		return p, ErrStateExpired
	}
	return p, nil
}
