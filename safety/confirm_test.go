package safety

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redeem accepts a state once: it checks the MAC in constant time, then that
// it was issued for this principal, tool and arguments, then its expiry, and
// finally that it has not been redeemed before in this process.
func (c *Confirmer) Redeem(state, principalID, tool, canonicalArgs string, now time.Time) error {
	_, _, err := c.RedeemNonce(state, principalID, tool, canonicalArgs, now)
	return err
}

func TestConfirmer(t *testing.T) {
	key := DeriveKey("s3cret", "confirm")
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	args := `{"node":"pve","vmid":101}`

	issue := func(c *Confirmer) string {
		t.Helper()
		s, err := c.Issue("agent:a", "stop_vm", args, now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tamperPayload := func(state string) string {
		p, mac, _ := strings.Cut(state, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(p)
		raw = bytes.Replace(raw, []byte("agent:a"), []byte("agent:b"), 1)
		return base64.RawURLEncoding.EncodeToString(raw) + "." + mac
	}
	tamperMAC := func(state string) string {
		p, mac, _ := strings.Cut(state, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(mac)
		raw[0] ^= 1
		return p + "." + base64.RawURLEncoding.EncodeToString(raw)
	}

	tests := []struct {
		name      string
		state     func(c *Confirmer) string
		principal string
		tool      string
		args      string
		at        time.Time
		want      error
	}{
		{"valid", issue, "agent:a", "stop_vm", args, now.Add(time.Minute), nil},
		{"valid just before expiry", issue, "agent:a", "stop_vm", args, now.Add(5*time.Minute - time.Millisecond), nil},
		{"tampered payload", func(c *Confirmer) string { return tamperPayload(issue(c)) }, "agent:b", "stop_vm", args, now, ErrStateInvalid},
		{"tampered MAC", func(c *Confirmer) string { return tamperMAC(issue(c)) }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
		{"other key", func(*Confirmer) string { return issue(NewConfirmer(DeriveKey("other", "confirm"), 0)) }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
		{"expired", issue, "agent:a", "stop_vm", args, now.Add(5 * time.Minute), ErrStateExpired},
		{"wrong principal", issue, "agent:b", "stop_vm", args, now, ErrStateMismatch},
		{"wrong tool", issue, "agent:a", "delete_snapshot", args, now, ErrStateMismatch},
		{"wrong args", issue, "agent:a", "stop_vm", `{"node":"pve","vmid":102}`, now, ErrStateMismatch},
		{"empty", func(*Confirmer) string { return "" }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
		{"garbage", func(*Confirmer) string { return "not a state" }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
		{"three parts", func(c *Confirmer) string { return issue(c) + ".x" }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
		{"bad base64", func(*Confirmer) string { return "!!!.???" }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
		{"huge", func(*Confirmer) string { return strings.Repeat("A", 10000) + ".AA" }, "agent:a", "stop_vm", args, now, ErrStateInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfirmer(key, 0)
			state := tc.state(c)
			// Check answers the same and spends nothing: Redeem still does.
			if err := c.Check(state, tc.principal, tc.tool, tc.args, tc.at); !errors.Is(err, tc.want) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
			err := c.Redeem(state, tc.principal, tc.tool, tc.args, tc.at)
			if !errors.Is(err, tc.want) {
				t.Errorf("Redeem = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConfirmerSingleUse(t *testing.T) {
	c := NewConfirmer(DeriveKey("s3cret", "confirm"), time.Minute)
	now := time.Now()
	state, err := c.Issue("agent:a", "stop_vm", "{}", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Redeem(state, "agent:a", "stop_vm", "{}", now); err != nil {
		t.Fatalf("first redeem: %v", err)
	}
	if err := c.Redeem(state, "agent:a", "stop_vm", "{}", now.Add(time.Second)); !errors.Is(err, ErrStateReplayed) {
		t.Fatalf("second redeem = %v, want ErrStateReplayed", err)
	}
	// A failed redeem (wrong args) must not burn the state.
	other, _ := c.Issue("agent:a", "stop_vm", "{}", now)
	if err := c.Redeem(other, "agent:a", "stop_vm", `{"x":1}`, now); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("mismatch = %v", err)
	}
	if err := c.Redeem(other, "agent:a", "stop_vm", "{}", now); err != nil {
		t.Fatalf("redeem after a mismatch: %v", err)
	}
	// Two states for the same call are distinct (fresh nonce each time).
	a, _ := c.Issue("p", "t", "{}", now)
	b, _ := c.Issue("p", "t", "{}", now)
	if a == b {
		t.Error("two issued states are identical")
	}
}

// Check never uses a state up, however often it is asked, and sees one
// this Confirmer redeemed as replayed.
func TestConfirmerCheckUsesNothing(t *testing.T) {
	c := NewConfirmer(DeriveKey("s3cret", "confirm"), time.Minute)
	now := time.Now()
	state, err := c.Issue("p", "t", "{}", now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Check(state, "p", "t", "{}", now); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	if len(c.used) != 0 {
		t.Fatalf("Check remembered %d nonces", len(c.used))
	}
	if err := c.Redeem(state, "p", "t", "{}", now); err != nil {
		t.Fatalf("redeem after checks: %v", err)
	}
	if err := c.Check(state, "p", "t", "{}", now); !errors.Is(err, ErrStateReplayed) {
		t.Fatalf("check after redeem = %v, want ErrStateReplayed", err)
	}
}

func TestConfirmerForgetsExpiredNonces(t *testing.T) {
	c := NewConfirmer(DeriveKey("s3cret", "confirm"), time.Minute)
	now := time.Now()
	for i := 0; i < maxRememberedUsed; i++ {
		c.used["n"+strconv.Itoa(i)] = now.Add(time.Second)
	}
	state, _ := c.Issue("p", "t", "{}", now)
	if err := c.Redeem(state, "p", "t", "{}", now); !errors.Is(err, ErrStateCapacity) {
		t.Fatalf("full memory of live nonces: %v, want ErrStateCapacity", err)
	}
	later := now.Add(2 * time.Second)
	state, _ = c.Issue("p", "t", "{}", later)
	if err := c.Redeem(state, "p", "t", "{}", later); err != nil {
		t.Fatalf("after the remembered nonces expired: %v", err)
	}
	if len(c.used) != 1 {
		t.Errorf("remembered %d nonces after pruning, want 1", len(c.used))
	}
}

func TestConfirmerRefusesShortKey(t *testing.T) {
	c := NewConfirmer([]byte("short"), 0)
	if _, err := c.Issue("p", "t", "{}", time.Now()); err == nil {
		t.Error("Issue with a 5-byte key succeeded")
	}
}
