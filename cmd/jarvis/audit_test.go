package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/jarvis-homelab/jarvis/store"
)

// TestAuditVerifyCommandOnAWipedLog runs `jarvis audit verify` on a good log,
// on the same log with its rows and head deleted (twice: verifying must not
// found it again), and with the database deleted beside its anchor file.
func TestAuditVerifyCommandOnAWipedLog(t *testing.T) {
	ctx := context.Background()
	clearEnv(t)
	secret := strings.Repeat("v", 40)
	path := filepath.Join(t.TempDir(), "jarvis.db")
	t.Setenv("JWT_SECRET", secret)
	t.Setenv("DB_PATH", path)

	st, err := openStore(&Config{DBPath: path}, secret)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		id, err := st.AuditBegin(ctx, store.AuditEntry{Principal: "operator", Tool: "stop_vm", Args: `{"vmid":101}`})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AuditEnd(ctx, id, store.AuditOutcome{Status: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	verify := func() (string, error) {
		var out bytes.Buffer
		err := run(ctx, []string{"audit", "verify"}, &out, &out)
		return out.String(), err
	}
	out, err := verify()
	if err != nil || !strings.Contains(out, "audit log OK: 4 rows") || !strings.Contains(out, "anchored through row 4") {
		t.Fatalf("audit verify on a good log: %v\n%s", err, out)
	}

	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM audit_log", "DELETE FROM audit_head"} {
		if err := db.Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}
	for i := 0; i < 2; i++ {
		out, err := verify()
		var ue usageError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "audit log BROKEN") || !strings.Contains(err.Error(), "wiped") {
			t.Fatalf("audit verify #%d on a wiped log = %v (output %q), want a failure (exit 1) naming the wipe", i+1, err, out)
		}
	}

	// Jarvis does not start on it either: every call would be refused, so it says
	// why at once instead of serving a console that can do nothing.
	for _, cmd := range []string{"serve", "stdio"} {
		var out bytes.Buffer
		if err := run(ctx, []string{cmd, "--demo"}, &out, &out); err == nil || !strings.Contains(err.Error(), "not starting: the audit head record is missing") {
			t.Fatalf("jarvis %s --demo on a wiped log = %v, want a refusal to start", cmd, err)
		}
	}

	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
	if _, err := verify(); err == nil || !strings.Contains(err.Error(), "is gone, but its anchor file") {
		t.Fatalf("audit verify with the database deleted = %v, want it to name the anchor file", err)
	}
}

// After JWT_SECRET changes, nothing starts on the old database, and the
// message names the secret, not tampering.
func TestChangedSecretIsNamedAndRefused(t *testing.T) {
	ctx := context.Background()
	clearEnv(t)
	st, err := openStore(testDatabase(t), strings.Repeat("a", 40))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	t.Setenv("JWT_SECRET", strings.Repeat("b", 40))
	for _, args := range [][]string{{"serve", "--demo"}, {"stdio", "--demo"}, {"approvals"}, {"token", "list"}} {
		var out bytes.Buffer
		err := run(ctx, args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "JWT_SECRET is not the secret this database was created with") || strings.Contains(err.Error(), "tamper") {
			t.Errorf("jarvis %s with a changed secret = %v", strings.Join(args, " "), err)
		}
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify"}, &out, &out); err == nil || !strings.Contains(err.Error(), "JWT_SECRET is not the secret") {
		t.Errorf("audit verify with a changed secret = %v", err)
	}
}
