package safety

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// hkdfSalt separates Jarvis's keys from anything else derived from the same secret.
var hkdfSalt = []byte("jarvis-homelab/jarvis hkdf v1")

// DeriveKey derives a 32-byte key for one purpose (e.g. "confirm", "audit")
// from the server secret with HKDF-SHA256. It is deterministic, so every jarvis
// process that shares the secret derives the same key without storing it.
func DeriveKey(secret, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(secret), hkdfSalt, "jarvis:"+purpose, 32)
	if err != nil {
		// Only possible for an output longer than 255*32 bytes; 32 is constant.
		panic(fmt.Sprintf("safety: hkdf with a fixed 32-byte output failed: %v", err))
	}
	return key
}

// approvalArg is the argument that carries an approval id; it is not part of
// what is approved (the retry adds it), so canonical form leaves it out.
const approvalArg = "approval_id"

// CanonicalArgs renders tool arguments as canonical JSON: keys sorted at every
// level, numbers in one stable form (1, 1.0 and json.Number("1") agree), no
// HTML escaping, and the top-level "approval_id" left out. Approvals and
// confirmation states bind to this string, so equal arguments must render
// equally however they were decoded.
func CanonicalArgs(args map[string]any) (string, error) {
	trimmed := make(map[string]any, len(args))
	for k, v := range args {
		if k != approvalArg {
			trimmed[k] = v
		}
	}
	// A JSON round trip turns structs, typed slices and maps into the generic
	// tree, with numbers kept as their exact text.
	raw, err := json.Marshal(trimmed)
	if err != nil {
		return "", fmt.Errorf("canonical arguments: cannot encode the arguments as JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return "", fmt.Errorf("canonical arguments: cannot decode the arguments back: %w", err)
	}
	var buf bytes.Buffer
	if err := writeCanonical(&buf, tree); err != nil {
		return "", fmt.Errorf("canonical arguments: %w", err)
	}
	return buf.String(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case string:
		writeJSONString(buf, x)
	case json.Number:
		n, err := canonicalNumber(string(x))
		if err != nil {
			return err
		}
		buf.WriteString(n)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k)
			buf.WriteByte(':')
			if err := writeCanonical(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unexpected value of type %T", v)
	}
	return nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	buf.Truncate(buf.Len() - 1)
}

var integerLiteral = regexp.MustCompile(`^-?[0-9]+$`)

// canonicalNumber gives every JSON number one spelling: integral values as
// plain integers of any size, others in Go's shortest float form.
func canonicalNumber(s string) (string, error) {
	if integerLiteral.MatchString(s) {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return "", fmt.Errorf("number %q is not a valid integer", s)
		}
		return n.String(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %q cannot be represented exactly enough to be approved", s)
	}
	if f == math.Trunc(f) {
		i, _ := new(big.Float).SetFloat64(f).Int(nil)
		return i.String(), nil
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}

// Errors returned by Confirmer.Redeem. Callers map them to decisions: invalid
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

// Redeem accepts a state once: it checks the MAC in constant time, then that
// it was issued for this principal, tool and arguments, then its expiry, and
// finally that it has not been redeemed before in this process.
func (c *Confirmer) Redeem(state, principalID, tool, canonicalArgs string, now time.Time) error {
	_, _, err := c.RedeemNonce(state, principalID, tool, canonicalArgs, now)
	return err
}

// RedeemNonce is Redeem that also returns the state's nonce and expiry, so the
// caller can record the nonce where other processes see it too.
func (c *Confirmer) RedeemNonce(state, principalID, tool, canonicalArgs string, now time.Time) (string, time.Time, error) {
	err := c.redeem(state, principalID, tool, canonicalArgs, now)
	if err != nil {
		return "", time.Time{}, err
	}
	p, _ := c.payload(state)
	return p.Nonce, time.UnixMilli(p.Expiry), nil
}

// payload decodes a state whose MAC was verified.
func (c *Confirmer) payload(state string) (statePayload, error) {
	var p statePayload
	encPayload, _, _ := strings.Cut(state, ".")
	raw, err := base64.RawURLEncoding.DecodeString(encPayload)
	if err != nil {
		return p, ErrStateInvalid
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, ErrStateInvalid
	}
	return p, nil
}

func (c *Confirmer) redeem(state, principalID, tool, canonicalArgs string, now time.Time) error {
	if len(c.key) < 16 || len(state) == 0 || len(state) > maxStateLen {
		return ErrStateInvalid
	}
	encPayload, encMAC, ok := strings.Cut(state, ".")
	if !ok || strings.Contains(encMAC, ".") {
		return ErrStateInvalid
	}
	gotMAC, err := base64.RawURLEncoding.DecodeString(encMAC)
	if err != nil {
		return ErrStateInvalid
	}
	if !hmac.Equal(gotMAC, c.mac(encPayload)) {
		return ErrStateInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(encPayload)
	if err != nil {
		return ErrStateInvalid
	}
	var p statePayload
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.Nonce == "" {
		return ErrStateInvalid
	}
	if p.Principal != principalID || p.Tool != tool || p.ArgsHash != argsHash(canonicalArgs) {
		return ErrStateMismatch
	}
	expiry := time.UnixMilli(p.Expiry)
	if !now.Before(expiry) {
		return ErrStateExpired
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.used[p.Nonce]; seen {
		return ErrStateReplayed
	}
	if len(c.used) >= maxRememberedUsed {
		for n, exp := range c.used {
			if !now.Before(exp) {
				delete(c.used, n)
			}
		}
		if len(c.used) >= maxRememberedUsed {
			return ErrStateCapacity
		}
	}
	c.used[p.Nonce] = expiry
	return nil
}
