package safety

// Keys derived from the server secret, one per purpose.

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
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
