package main

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// The password in these URLs must never be printed.
const dbPassword = "hunter2-Secret"

// Every database setting mistake is named by its variable, and the URL is
// shown without its password however it is malformed.
func TestDatabaseSettings(t *testing.T) {
	anchor := filepath.Join(t.TempDir(), "jarvis.anchor")
	for _, c := range []struct {
		name string
		env  map[string]string
		want []string // each in the error; none: accepted
	}{
		{"SQLite by default", nil, nil},
		{"PostgreSQL with an anchor", map[string]string{
			"JARVIS_DATABASE_URL": "postgres://jarvis:" + dbPassword + "@db.home.example:5432/jarvis?sslmode=verify-full", "JARVIS_AUDIT_ANCHOR": anchor}, nil},
		{"postgresql:// too", map[string]string{
			"JARVIS_DATABASE_URL": "postgresql://jarvis@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor}, nil},
		{"both set", map[string]string{
			"DB_PATH": "/data/jarvis.db", "JARVIS_DATABASE_URL": "postgres://jarvis:" + dbPassword + "@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"DB_PATH=/data/jarvis.db and JARVIS_DATABASE_URL are both set", "DB_PATH="}},
		{"an empty DB_PATH is unset", map[string]string{
			"DB_PATH": "", "JARVIS_DATABASE_URL": "postgres://jarvis@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor}, nil},
		{"another scheme", map[string]string{
			"JARVIS_DATABASE_URL": "mysql://jarvis:" + dbPassword + "@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=mysql://jarvis@db/jarvis: must be a postgres:// or postgresql:// URL", "set DB_PATH instead"}},
		{"a file path", map[string]string{"JARVIS_DATABASE_URL": "/var/lib/jarvis/jarvis.db", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=/var/lib/jarvis/jarvis.db: must be a postgres://"}},
		{"no scheme, a password", map[string]string{"JARVIS_DATABASE_URL": "jarvis:" + dbPassword + "@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=jarvis@db/jarvis: must be"}},
		{"a port that is not one", map[string]string{
			"JARVIS_DATABASE_URL": "postgres://jarvis:" + dbPassword + "@db:fivefour/jarvis", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=postgres://jarvis@db:fivefour/jarvis: cannot be read as a PostgreSQL URL", "%XX"}},
		{"an unescaped character in the password", map[string]string{
			"JARVIS_DATABASE_URL": "postgres://jarvis:" + dbPassword + "/x@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=postgres://jarvis@db/jarvis: the password holds one of / ? # as it is", "%2F", "PGPASSWORD"}},
		{"an unescaped ? in the password", map[string]string{
			"JARVIS_DATABASE_URL": "postgres://jarvis:" + dbPassword + "?x@db/jarvis", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=postgres://jarvis@db/jarvis: the password holds one of / ? # as it is"}},
		{"a bad sslmode, the password in the query", map[string]string{
			"JARVIS_DATABASE_URL": "postgres://jarvis@db/jarvis?password=" + dbPassword + "&sslmode=sometimes", "JARVIS_AUDIT_ANCHOR": anchor},
			[]string{"JARVIS_DATABASE_URL=postgres://jarvis@db/jarvis?sslmode=sometimes: cannot be read", "sslmode"}},
		{"no anchor", map[string]string{"JARVIS_DATABASE_URL": "postgres://jarvis@db/jarvis"},
			[]string{"JARVIS_AUDIT_ANCHOR: with JARVIS_DATABASE_URL, name this replica's audit anchor file"}},
		{"an anchor folder", map[string]string{"JARVIS_AUDIT_ANCHOR": t.TempDir()},
			[]string{"JARVIS_AUDIT_ANCHOR=", "is a directory; name the anchor file in it"}},
		{"a replica name with a space", map[string]string{"JARVIS_REPLICA_ID": "replica a"},
			[]string{`JARVIS_REPLICA_ID="replica a": use 1-56 letters`}},
		{"a replica name too long", map[string]string{"JARVIS_REPLICA_ID": strings.Repeat("r", 57)},
			[]string{"JARVIS_REPLICA_ID="}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig(true)
			if err != nil && strings.Contains(err.Error(), dbPassword) {
				t.Fatalf("the password is in the error:\n%v", err)
			}
			switch {
			case len(c.want) == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case len(c.want) > 0 && err == nil:
				t.Fatalf("accepted, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

// What Jarvis opens, names and anchors on each engine.
func TestDatabaseTarget(t *testing.T) {
	clearEnv(t)
	t.Setenv("DB_PATH", "/var/lib/jarvis/jarvis.db")
	cfg, err := LoadConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.onPostgres() || cfg.database() != "/var/lib/jarvis/jarvis.db" || cfg.anchorPath() != "/var/lib/jarvis/jarvis.db.anchor" {
		t.Errorf("SQLite: database %q, anchor %q", cfg.database(), cfg.anchorPath())
	}

	clearEnv(t)
	t.Setenv("JARVIS_DATABASE_URL", "postgres://jarvis:"+dbPassword+"@db:5432/jarvis?sslmode=verify-full")
	t.Setenv("JARVIS_AUDIT_ANCHOR", "/data/jarvis.anchor")
	t.Setenv("JARVIS_REPLICA_ID", "jarvis-a")
	if cfg, err = LoadConfig(true); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.database())
	if err != nil || u.Query().Get("application_name") != "jarvis/jarvis-a" || u.Query().Get("sslmode") != "verify-full" {
		t.Errorf("PostgreSQL: opens %q, want the URL with application_name=jarvis/jarvis-a", cfg.database())
	}
	if p, _ := u.User.Password(); p != dbPassword {
		t.Errorf("the password did not survive: %q", cfg.database())
	}
	if got := cfg.databaseName(); got != "PostgreSQL postgres://jarvis@db:5432/jarvis?sslmode=verify-full" {
		t.Errorf("named %q", got)
	}
	if cfg.anchorPath() != "/data/jarvis.anchor" {
		t.Errorf("anchor %q", cfg.anchorPath())
	}

	// A name given in the URL is kept.
	t.Setenv("JARVIS_DATABASE_URL", "postgres://jarvis@db/jarvis?application_name=mine")
	if cfg, err = LoadConfig(true); err != nil || cfg.database() != "postgres://jarvis@db/jarvis?application_name=mine" {
		t.Errorf("opens %q (%v)", cfg.database(), err)
	}

	// Unset, the replica's name is the host's with a suffix, new each start.
	t.Setenv("JARVIS_REPLICA_ID", "")
	a, _ := LoadConfig(true)
	b, _ := LoadConfig(true)
	if !replicaIDOK(a.ReplicaID) || a.ReplicaID == b.ReplicaID {
		t.Errorf("default replica names %q and %q", a.ReplicaID, b.ReplicaID)
	}
}

func TestRedactedURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://jarvis:pw@db:5432/jarvis", "postgres://jarvis@db:5432/jarvis"},
		{"postgres://jarvis@db/jarvis?sslmode=disable", "postgres://jarvis@db/jarvis?sslmode=disable"},
		{"postgres://jarvis:p@ss@db/jarvis", "postgres://jarvis@db/jarvis"},
		{"postgres://db/jarvis?user=j&password=pw&sslpassword=k&sslmode=require", "postgres://db/jarvis?user=j&sslmode=require"},
		{"postgres://db/jarvis?PassWord=pw", "postgres://db/jarvis"},
		{"jarvis:pw@db/jarvis", "jarvis@db/jarvis"},
		// Unescaped, a password's / ? # would end it where URLs end it.
		{"postgres://jarvis:SEC?RET@db/jarvis?sslmode=disable", "postgres://jarvis@db/jarvis?sslmode=disable"},
		{"postgres://jarvis:SEC@RET/tail@db/jarvis", "postgres://jarvis@db/jarvis"},
		{"postgres://jarvis:S#C/R?T@db:5432/jarvis", "postgres://jarvis@db:5432/jarvis"},
		{"postgres://db/jarvis", "postgres://db/jarvis"},
	} {
		if got := redactedURL(c.in); got != c.want {
			t.Errorf("redactedURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// testDatabase points the environment at a fresh database on the engine the
// tests run on (storetest: SQLite, or PostgreSQL with
// JARVIS_TEST_DATABASE_URL) and returns the configuration naming it.
func testDatabase(t *testing.T) *Config {
	t.Helper()
	target := storetest.Target(t)
	if storetest.Engine() == storetest.Postgres {
		anchor := filepath.Join(t.TempDir(), "jarvis.anchor")
		t.Setenv("JARVIS_DATABASE_URL", target)
		t.Setenv("JARVIS_AUDIT_ANCHOR", anchor)
		return &Config{DatabaseURL: target, AuditAnchor: anchor, ReplicaID: "test"}
	}
	t.Setenv("DB_PATH", target)
	return &Config{DBPath: target}
}

// doctor warns about a connection to another host that does not verify the
// server's certificate.
func TestDatabaseTLSWarning(t *testing.T) {
	for _, c := range []struct {
		url, pgsslmode string
		warn           string // "" for none
	}{
		{"postgres://jarvis@127.0.0.1/jarvis?sslmode=disable", "", ""},
		{"postgres://jarvis@localhost/jarvis", "", ""},
		{"postgres://jarvis@db.home.example/jarvis?sslmode=disable", "", "sslmode=disable: the connection to db.home.example is not verified"},
		{"postgres://jarvis@db.home.example/jarvis", "", "sslmode=prefer"},
		{"postgres://jarvis@db.home.example/jarvis?sslmode=require", "", "sslmode=require"},
		{"postgres://jarvis@db.home.example/jarvis", "require", "sslmode=require"},
		{"postgres://jarvis@db.home.example/jarvis", "verify-full", ""},
		{"postgres://jarvis@db.home.example/jarvis?sslmode=verify-full", "", ""},
		{"postgres://jarvis@db.home.example/jarvis?sslmode=verify-ca", "", ""},
	} {
		t.Run(c.url+" "+c.pgsslmode, func(t *testing.T) {
			t.Setenv("PGSSLMODE", c.pgsslmode)
			got := databaseTLS(c.url)
			if (c.warn == "") != (got == "") || !strings.Contains(got, c.warn) {
				t.Errorf("databaseTLS = %q, want %q", got, c.warn)
			}
		})
	}
}
