// Package storetest gives each test a fresh database for a store: an SQLite
// file in the test's temporary directory or, when JARVIS_TEST_DATABASE_URL
// names a PostgreSQL server, a database of its own on it, dropped when the
// test ends. So one suite runs on either engine:
//
//	JARVIS_TEST_DATABASE_URL=postgres://jarvis:jarvis@127.0.0.1:55432/jarvis?sslmode=disable go test ./store/...
//
// (.ci/postgres.sh starts such a server.) It hands out a target for
// store.Open rather than a store, so that store's own tests can use it too.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable with the URL of a PostgreSQL database whose role
// may create databases (CREATEDB) and end other sessions in them
// (pg_signal_backend: an autovacuum worker's, when a test's database is
// dropped). Unset, tests run on SQLite.
const EnvURL = "JARVIS_TEST_DATABASE_URL"

// The engines, as Engine and Engines name them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Engine names the engine tests run on.
func Engine() string {
	if os.Getenv(EnvURL) != "" {
		return Postgres
	}
	return SQLite
}

// Engines lists every engine tests can reach, SQLite first: benchmarks run
// on each, side by side in one run.
func Engines() []string {
	if Engine() == Postgres {
		return []string{SQLite, Postgres}
	}
	return []string{SQLite}
}

// SkipOnPostgres skips a test of something only SQLite has (a file, a
// PRAGMA), saying which.
func SkipOnPostgres(t testing.TB, what string) {
	t.Helper()
	if Engine() == Postgres {
		t.Skipf("SQLite only (%s); the tests run on PostgreSQL", what)
	}
}

// SkipOnSQLite skips a test of something only PostgreSQL has.
func SkipOnSQLite(t testing.TB, what string) {
	t.Helper()
	if Engine() != Postgres {
		t.Skipf("PostgreSQL only (%s); set %s to run it", what, EnvURL)
	}
}

// Target returns where a fresh store for t lives on the engine tests run on:
// a path or a database URL, as store.Open takes it. Every call gives a new,
// empty database.
func Target(t testing.TB) string {
	t.Helper()
	return TargetOn(t, Engine())
}

// TargetOn is Target on one of Engines.
func TargetOn(t testing.TB, engine string) string {
	t.Helper()
	switch engine {
	case SQLite:
		return filepath.Join(t.TempDir(), "jarvis.db")
	case Postgres:
		admin := os.Getenv(EnvURL)
		if admin == "" {
			t.Fatalf("no PostgreSQL server for the tests: set %s", EnvURL)
		}
		return newDatabase(t, admin)
	}
	t.Fatalf("no engine %q: %s or %s", engine, SQLite, Postgres)
	return ""
}

// seq numbers this process's databases.
var seq atomic.Int64

// staleAfter is the age past which a test database left on the server (a
// test binary killed before its cleanup ran) is dropped by the next test
// run: far longer than any test binary runs.
const staleAfter = 6 * time.Hour

// sweepOnce drops stale test databases at this process's first one.
var sweepOnce sync.Once

// newDatabase creates a database for t on the server of admin and returns
// its URL. It is dropped at the end of the test, after the stores on it are
// closed, or with their connections cut if they were not.
//
// Its name, t_<unix seconds>_<pid>_<n>_<random>, is unique among test
// binaries running side by side, on one host or several sharing a server,
// and says when it was made, for the sweep of databases left behind.
func newDatabase(t testing.TB, admin string) string {
	t.Helper()
	u, err := parseAdmin(admin)
	if err != nil {
		t.Fatal(err)
	}
	sweepOnce.Do(func() { sweepStale(t, admin, time.Now()) })
	var random [4]byte
	_, _ = rand.Read(random[:])
	name := fmt.Sprintf("t_%d_%d_%d_%s", time.Now().Unix(), os.Getpid(), seq.Add(1), hex.EncodeToString(random[:]))
	// The default collation is a linguistic one, as a production database's
	// often is: a query that needs byte order and does not say so fails here
	// rather than there. FILE_COPY: twice as fast as the default for a
	// database this small. Before PostgreSQL 15, or without ICU, the
	// server's defaults; never in CI, whose server has both: there a
	// quietly weaker test is a failure.
	err = onServer(admin, "CREATE DATABASE "+name+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' STRATEGY FILE_COPY")
	if err != nil {
		if inCI() {
			t.Fatalf("create test database %s with an ICU collation (CI needs PostgreSQL 15 or newer with ICU): %v", name, err)
		}
		t.Logf("creating %s with an ICU collation: %v; using the server's defaults", name, err)
		err = onServer(admin, "CREATE DATABASE "+name)
	}
	if err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := onServer(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// parseAdmin reads the server's URL. url.Parse's errors repeat the URL,
// password and all: this one gives only the reason.
func parseAdmin(admin string) (*url.URL, error) {
	u, err := url.Parse(admin)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%s is not a URL: %v", EnvURL, err)
	}
	return u, nil
}

// staleName matches the names newDatabase gives, capturing the time.
var staleName = regexp.MustCompile(`^t_([0-9]+)_[0-9]+_[0-9]+_[0-9a-f]{8}$`)

// sweepStale drops the test databases made more than staleAfter before now.
// It only logs what fails: another run may be dropping the same ones.
func sweepStale(t testing.TB, admin string, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Logf("sweep stale test databases: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 't\_%'`)
	if err != nil {
		t.Logf("sweep stale test databases: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Logf("sweep stale test databases: %v", err)
		return
	}
	for _, name := range names {
		if !isStale(name, now) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("sweep stale test database %s: %v", name, err)
		}
	}
}

// isStale reports whether name is a test database made more than staleAfter
// before now.
func isStale(name string, now time.Time) bool {
	m := staleName.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	made, err := strconv.ParseInt(m[1], 10, 64)
	return err == nil && now.Sub(time.Unix(made, 0)) > staleAfter
}

// inCI reports whether the tests run in CI (.ci/run sets CI=true).
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// onServer runs one statement on its own connection (CREATE and DROP
// DATABASE cannot run in a transaction).
func onServer(admin, statement string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, statement)
	return err
}
