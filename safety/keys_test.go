package safety

import (
	"bytes"
	"testing"
)

func TestDeriveKey(t *testing.T) {
	a := DeriveKey("server-secret", "confirm")
	if len(a) != 32 {
		t.Fatalf("key length %d, want 32", len(a))
	}
	if !bytes.Equal(a, DeriveKey("server-secret", "confirm")) {
		t.Error("same secret and purpose gave different keys")
	}
	if bytes.Equal(a, DeriveKey("server-secret", "audit")) {
		t.Error("different purposes gave the same key")
	}
	if bytes.Equal(a, DeriveKey("other-secret", "confirm")) {
		t.Error("different secrets gave the same key")
	}
}
