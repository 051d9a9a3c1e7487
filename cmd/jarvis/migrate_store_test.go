package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// seedSQLite makes the SQLite file at path as jarvis serve leaves it: calls
// (a begin and an end row each), reads (one row each, written by 8 callers at
// once, as group commit writes them), a preference. It returns the number of
// audit rows.
func seedSQLite(t *testing.T, path, secret string, calls, reads int) int {
	t.Helper()
	ctx := context.Background()
	st, err := openStore(&Config{DBPath: path}, secret)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < calls; i++ {
		id, err := st.AuditBegin(ctx, store.AuditEntry{Principal: "operator", Tool: "stop_vm", Args: fmt.Sprintf(`{"vmid":%d}`, 100+i), Tier: "RED", Decision: "approved"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AuditEnd(ctx, id, store.AuditOutcome{Status: store.OutcomeOK, Duration: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < reads; i += 8 {
				_, err := st.AuditRead(ctx, store.AuditEntry{Principal: "agent:ci", Tool: "get_vm", Args: fmt.Sprintf(`{"vmid":%d}`, i), Tier: "GREEN", Decision: "allow"},
					store.AuditOutcome{Status: store.OutcomeOK, Result: "running"}, nil)
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := st.SetPreference(ctx, "notify.cursor", "7"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return 2*calls + reads
}

// jarvisRun runs one jarvis command in this process.
func jarvisRun(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, &out, &out)
	return out.String(), err
}

// TestMigrateStoreToPostgres moves an installation of about 10,000 audit rows
// from its SQLite file to PostgreSQL with the real command; then, configured
// for PostgreSQL as the command says, jarvis audit verify holds on the same
// log and the token made on SQLite still lists. A second copy is refused.
func TestMigrateStoreToPostgres(t *testing.T) {
	storetest.SkipOnSQLite(t, "migrate-store copies into PostgreSQL")
	target := storetest.Target(t) // before clearEnv, which clears JARVIS_TEST_DATABASE_URL
	clearEnv(t)
	secret := strings.Repeat("m", 40)
	dir := t.TempDir()
	path := filepath.Join(dir, "jarvis.db")
	t.Setenv("JWT_SECRET", secret)
	t.Setenv("DB_PATH", path)
	rows := seedSQLite(t, path, secret, 500, 9000)
	if out, err := jarvisRun("token", "create", "--name", "moved", "--max-tier", "yellow"); err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}

	// The installation keeps its anchor elsewhere (JARVIS_AUDIT_ANCHOR).
	sourceAnchor := filepath.Join(dir, "kept", "source.anchor")
	if err := os.MkdirAll(filepath.Dir(sourceAnchor), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(store.AnchorPath(path), sourceAnchor); err != nil {
		t.Fatal(err)
	}
	anchor := filepath.Join(dir, "replica", "jarvis.anchor") // the folder is made
	start := time.Now()
	out, err := jarvisRun("migrate-store", "--to", target, "--anchor", anchor, "--from-anchor", sourceAnchor)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("migrate-store: %v\n%s", err, out)
	}
	t.Logf("migrate-store of %d audit rows took %s:\n%s", rows, took.Round(time.Millisecond), out)
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal("the test database URL does not parse")
	}
	password, _ := u.User.Password()
	for _, want := range []string{
		"Copied " + path, "audit_log  ", fmt.Sprintf("%d rows", rows), fmt.Sprintf("up to row %d", rows),
		"JARVIS_DATABASE_URL=" + redactedURL(target), "JARVIS_AUDIT_ANCHOR=" + anchor, "DB_PATH=   (empty)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	if password == "" || strings.Contains(out, ":"+password+"@") {
		t.Errorf("the output shows the database password:\n%s", out)
	}

	// Jarvis on PostgreSQL, configured as the command says.
	t.Setenv("DB_PATH", "")
	t.Setenv("JARVIS_DATABASE_URL", target)
	t.Setenv("JARVIS_AUDIT_ANCHOR", anchor)
	out, err = jarvisRun("audit", "verify")
	if err != nil || !strings.Contains(out, fmt.Sprintf("audit log OK: %d rows", rows)) || !strings.Contains(out, fmt.Sprintf("anchored through row %d", rows)) {
		t.Fatalf("audit verify on PostgreSQL: %v\n%s", err, out)
	}
	if out, err := jarvisRun("token", "list"); err != nil || !strings.Contains(out, "moved") {
		t.Fatalf("token list on PostgreSQL: %v\n%s", err, out)
	}

	// The target holds an installation now: a second copy is refused.
	out, err = jarvisRun("migrate-store", "--from", path, "--from-anchor", sourceAnchor, "--anchor", filepath.Join(dir, "second.anchor"))
	if err == nil || !errors.Is(err, store.ErrTargetNotEmpty) || !strings.Contains(err.Error(), "audit_log (") {
		t.Fatalf("a second migrate-store = %v\n%s; want a refusal naming what the target holds", err, out)
	}
}

// TestMigrateStoreRefuses: each mistake is refused before anything is
// written, with a message that names the fix, and never shows the target's
// password. None of these reach the target.
func TestMigrateStoreRefuses(t *testing.T) {
	const target = "postgres://jarvis:s3cret-pw@127.0.0.1:1/jarvis?sslmode=disable"
	tests := []struct {
		name string
		args []string
		// prepare changes the environment or the source; its result is
		// closed after the command ran.
		prepare func(t *testing.T, path string) closer
		want    []string
		usage   bool
	}{
		{name: "jarvis still running on the file", prepare: func(t *testing.T, path string) closer {
			st, err := openStore(&Config{DBPath: path}, os.Getenv("JWT_SECRET"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}, want: []string{"open in another process", "stop jarvis serve"}},
		{name: "source log edited", prepare: func(t *testing.T, path string) closer {
			db, err := gorm.Open(sqlite.Open(path), &gorm.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Exec("UPDATE audit_log SET result = 'edited' WHERE id = 2").Error; err != nil {
				t.Fatal(err)
			}
			if sqlDB, err := db.DB(); err == nil {
				_ = sqlDB.Close()
			}
			return nil
		}, want: []string{"does not verify", "Row 2", "jarvis audit verify"}},
		{name: "another secret", prepare: func(t *testing.T, _ string) closer { t.Setenv("JWT_SECRET", strings.Repeat("x", 40)); return nil },
			want: []string{"does not verify", "JWT_SECRET is not the secret"}},
		{name: "target unreachable", want: []string{"reach the target PostgreSQL database jarvis on 127.0.0.1:1"}},
		{name: "no target", args: []string{"--to", ""}, want: []string{"--to: name the PostgreSQL database", "JARVIS_DATABASE_URL"}},
		{name: "target not PostgreSQL", args: []string{"--to", "/tmp/other.db"}, want: []string{"--to /tmp/other.db: must be a postgres://"}},
		{name: "no anchor", args: []string{"--anchor", ""}, want: []string{"--anchor: name the audit anchor file", "JARVIS_AUDIT_ANCHOR"}},
		{name: "no secret", prepare: func(t *testing.T, _ string) closer { t.Setenv("JWT_SECRET", ""); return nil },
			want: []string{"JWT_SECRET (or JWT_SECRET_FILE)"}},
		{name: "no source", prepare: func(t *testing.T, _ string) closer {
			t.Setenv("DB_PATH", filepath.Join(t.TempDir(), "missing.db"))
			return nil
		}, want: []string{"missing.db", "--from or DB_PATH"}},
		{name: "source anchor elsewhere", prepare: func(t *testing.T, path string) closer {
			// JARVIS_AUDIT_ANCHOR on SQLite: the file is not beside the database.
			if err := os.Rename(store.AnchorPath(path), filepath.Join(t.TempDir(), "elsewhere.anchor")); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: []string{"the audit anchor file of", "is missing", "--from-anchor"}},
		{name: "demo", args: []string{"--demo"}, want: []string{"does not take --demo"}, usage: true},
		{name: "stray argument", args: []string{"now"}, want: []string{`unexpected argument "now"`}, usage: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			secret := strings.Repeat("r", 40)
			path := filepath.Join(t.TempDir(), "jarvis.db")
			t.Setenv("JWT_SECRET", secret)
			t.Setenv("DB_PATH", path)
			seedSQLite(t, path, secret, 2, 2)
			anchor := filepath.Join(t.TempDir(), "target.anchor")
			if tc.prepare != nil {
				if held := tc.prepare(t, path); held != nil {
					defer held.Close()
				}
			}
			args := append([]string{"migrate-store", "--to", target, "--anchor", anchor}, tc.args...)
			out, err := jarvisRun(args...)
			if err == nil {
				t.Fatalf("migrate-store succeeded:\n%s", out)
			}
			var ue usageError
			if errors.As(err, &ue) != tc.usage {
				t.Errorf("error %v: usage error %t, want %t", err, !tc.usage, tc.usage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error()+out, "s3cret-pw") {
				t.Errorf("the password was shown: %v\n%s", err, out)
			}
			if _, err := os.Stat(anchor); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused migrate-store wrote the anchor file %s", anchor)
			}
		})
	}
}

// closer is what a refusal case holds open while the command runs.
type closer interface{ Close() error }
