package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey is a fixed 32-byte audit key for tests.
var testKey = bytes.Repeat([]byte{0x42}, 32)

// openTemp opens a store on a fresh file in a temporary directory.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jarvis.db")
	return openAt(t, path, testKey), path
}

// openAt opens another handle on path, as a second process would.
func openAt(t testing.TB, path string, key []byte) *Store {
	t.Helper()
	s, err := Open(path, Options{AuditKey: key})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestOpenRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
		key        []byte
		want       string
	}{
		{"empty path", "", testKey, "path is empty"},
		{"no key", filepath.Join(dir, "a.db"), nil, "audit key is 0 bytes"},
		{"short key", filepath.Join(dir, "b.db"), make([]byte, 31), "audit key is 31 bytes"},
		{"missing directory", filepath.Join(dir, "nope", "c.db"), testKey, "create database file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, Options{AuditKey: tt.key})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestOpenMigratesFreshFileAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd ?#% name.db") // characters a URI would misread
	s, err := Open(path, Options{AuditKey: testKey})
	if err != nil {
		t.Fatalf("Open fresh: %v", err)
	}
	var tables []string
	if err := s.db.Raw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"agent_tokens", "approvals", "audit_genesis", "audit_head", "audit_log", "events", "preferences"} {
		if !contains(tables, want) {
			t.Errorf("table %s missing after migration; have %v", want, tables)
		}
	}
	if err := s.SetPreference(ctx, "theme", "dark"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuditBegin(ctx, AuditEntry{Principal: "p", Tool: "list_nodes"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, &Event{Type: "system", Summary: "started"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// SQLite must have used exactly this file, not a name cut at '?' or '#'.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			t.Errorf("unexpected file %q beside the database", e.Name())
		}
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("database not written at the path asked for: %v", err)
	}

	s2 := openAt(t, path, testKey) // migrations run again on an existing schema
	if v, ok, err := s2.GetPreference(ctx, "theme"); err != nil || !ok || v != "dark" {
		t.Errorf("after reopen GetPreference = %q, %v, %v; want dark, true, nil", v, ok, err)
	}
	// Event 2 is the audit checkpoint Close wrote.
	if evs, err := s2.EventsAfter(ctx, 0, 10); err != nil || len(evs) != 2 || evs[0].Summary != "started" || evs[1].Source != "audit" {
		t.Errorf("after reopen events = %+v, %v; want the one published and Close's audit checkpoint", evs, err)
	}
	if rep, err := s2.AuditVerify(ctx); err != nil || !rep.OK || rep.Rows != 1 {
		t.Errorf("after reopen AuditVerify = %+v, %v; want OK with 1 row", rep, err)
	}
}

func TestConnectionSettings(t *testing.T) {
	s, path := openTemp(t)
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"busy_timeout", "5000"},
		{"foreign_keys", "1"},
		{"synchronous", "1"}, // NORMAL
	}
	for _, tt := range tests {
		var got string
		if err := s.db.Raw("PRAGMA " + tt.pragma).Scan(&got).Error; err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("database file mode = %o, want 600", mode)
	}
}

func TestPing(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping on an open store: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with a cancelled context succeeded")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
