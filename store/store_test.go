package store

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// testKey is a fixed 32-byte audit key for tests.
var testKey = bytes.Repeat([]byte{0x42}, 32)

// anchors maps each PostgreSQL test database to its anchor file. There is no
// file beside the database to default to, so each gets one in its test's
// directory, shared by every handle on it as an SQLite file's is.
var anchors sync.Map

// tempDB returns a fresh, empty database for one test: an SQLite file, or a
// PostgreSQL database when JARVIS_TEST_DATABASE_URL is set (storetest).
func tempDB(t testing.TB) string {
	t.Helper()
	return tempDBOn(t, storetest.Engine())
}

// tempDBOn is tempDB on one engine.
func tempDBOn(t testing.TB, engine string) string {
	t.Helper()
	target := storetest.TargetOn(t, engine)
	if IsDatabaseURL(target) {
		anchors.Store(target, filepath.Join(t.TempDir(), "jarvis.anchor"))
	}
	return target
}

// anchorOf is the anchor file of the test database at target.
func anchorOf(target string) string {
	if a, ok := anchors.Load(target); ok {
		return a.(string)
	}
	return AnchorPath(target)
}

// withParam is the URL target with one query parameter set (a connection
// setting), on the same test database and anchor file as target.
func withParam(t testing.TB, target, key, value string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal("the test database URL does not parse") // url's error would show the password
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // pgx reads + as itself, not a space
	anchors.Store(u.String(), anchorOf(target))
	return u.String()
}

// openStore opens target as the tests do: with its anchor file unless opts
// names another.
func openStore(target string, opts Options) (*Store, error) {
	if opts.AnchorPath == "" {
		opts.AnchorPath = anchorOf(target)
	}
	return Open(target, opts)
}

// openTemp opens a store on a fresh database.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	target := tempDB(t)
	return openAt(t, target, testKey), target
}

// onEachEngine runs bench on a fresh store on each engine the tests reach,
// side by side in one run (storetest.Engines).
func onEachEngine(b *testing.B, bench func(b *testing.B, s *Store, target string)) {
	for _, engine := range storetest.Engines() {
		b.Run(engine, func(b *testing.B) {
			target := tempDBOn(b, engine)
			bench(b, openAt(b, target, testKey), target)
		})
	}
}

// openAt opens another handle on target, as a second process would.
func openAt(t testing.TB, target string, key []byte) *Store {
	t.Helper()
	s, err := openStore(target, Options{AuditKey: key})
	if err != nil {
		t.Fatalf("Open(%s): %v", target, err)
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
		{"malformed URL", "postgres://jarvis:s3cret@127.0.0.1:port/jarvis", testKey, "read the PostgreSQL database URL"},
		{"no server", "postgresql://jarvis:s3cret@127.0.0.1:1/jarvis?sslmode=disable&connect_timeout=5", testKey,
			"open store PostgreSQL database jarvis on 127.0.0.1:1"},
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
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestOpenMigratesFreshDatabaseAndReopens(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	if !IsDatabaseURL(target) {
		target = filepath.Join(filepath.Dir(target), "odd ?#% name.db") // characters a URI would misread
	}
	s, err := openStore(target, Options{AuditKey: testKey})
	if err != nil {
		t.Fatalf("Open fresh: %v", err)
	}
	tables, err := s.db.Migrator().GetTables()
	if err != nil {
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
	if !IsDatabaseURL(target) {
		// SQLite must have used exactly this file, not a name cut at '?' or '#'.
		entries, err := os.ReadDir(filepath.Dir(target))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), filepath.Base(target)) {
				t.Errorf("unexpected file %q beside the database", e.Name())
			}
		}
		if st, err := os.Stat(target); err != nil || st.Size() == 0 {
			t.Fatalf("database not written at the path asked for: %v", err)
		}
	}

	s2 := openAt(t, target, testKey) // at the current version: no step runs
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
	storetest.SkipOnPostgres(t, "PRAGMAs and the database file's mode; TestConnectionSettingsPostgres is its twin")
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

func TestConnectionSettingsPostgres(t *testing.T) {
	storetest.SkipOnSQLite(t, "the server's version, the pool and the connections' name")
	s, target := openTemp(t)
	otherURL := target
	for _, p := range [][2]string{{"application_name", "jarvis/b"}, {"lock_timeout", "60s"}, {"default_transaction_isolation", "serializable"}} {
		otherURL = withParam(t, otherURL, p[0], p[1])
	}
	other := openAt(t, otherURL, testKey)
	replica := openWith(t, target, Options{Replica: "r1"})
	tests := []struct {
		name  string
		s     *Store
		query string
		want  string
	}{
		{"server 13 or newer (DROP DATABASE … WITH (FORCE) in the tests)", s, "SELECT current_setting('server_version_num')::int >= 130000", "true"},
		{"isolation Jarvis's locks are written for", s, "SHOW transaction_isolation", "read committed"},
		{"connections named jarvis", s, "SELECT current_setting('application_name')", "jarvis"},
		{"unless the URL names them", other, "SELECT current_setting('application_name')", "jarvis/b"},
		{"with the replica's id", replica, "SELECT current_setting('application_name')", "jarvis/r1"},
		{"a bounded wait for a lock", s, "SHOW lock_timeout", "15s"},
		{"unless the URL sets one", other, "SHOW lock_timeout", "1min"},
		{"a bounded idle transaction", s, "SHOW idle_in_transaction_session_timeout", "10s"},
		{"the isolation whatever the URL says", other, "SHOW default_transaction_isolation", "read committed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			if err := tt.s.db.Raw(tt.query).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
	pool, err := s.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if n := pool.Stats().MaxOpenConnections; n != postgresMaxConns {
		t.Errorf("pool of %d connections, want %d", n, postgresMaxConns)
	}
}

func TestPing(t *testing.T) {
	s, _ := openTemp(t)
	if s.Engine() != storetest.Engine() {
		t.Errorf("store on %s, want %s", s.Engine(), storetest.Engine())
	}
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
