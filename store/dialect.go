package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

// The store runs on SQLite (one file, the default) or on PostgreSQL (one
// database shared by several Jarvis processes, possibly on several hosts).
// The SQL is the same on both except for what a dialect says here.
//
// The one difference that matters for correctness is locking. Every SQLite
// transaction holds the database's one write lock from BEGIN
// (_txlock=immediate), so read-then-write transactions take turns across
// processes by themselves. PostgreSQL runs them side by side under READ
// COMMITTED, so each takes an explicit lock as its first statement: an
// advisory lock by purpose (lock) or the rows it is about to change
// (lockRows). Under READ COMMITTED, which every connection asks for
// (openPostgres), every statement after the lock sees what the previous
// holder committed.
type dialect interface {
	// name is gorm's name of the engine: "sqlite" or "postgres".
	name() string
	// oneWriter says the database lets one writer at a time, so a single
	// statement commits in the order it ran (SQLite) and needs no lock.
	oneWriter() bool
	// rebind writes the ? placeholders of a statement prepared by hand
	// (stmts.go) as the driver wants them; gorm rebinds its own.
	rebind(query string) string
	// lock takes lock k until tx ends.
	lock(tx *gorm.DB, k lockKey) error
	// lockRows locks the rows query selects until tx ends.
	lockRows(tx *gorm.DB, query string, args ...any) error
	// nowNS is an SQL expression for the database's clock in Unix
	// nanoseconds, or NULL where the process's clock is used.
	nowNS() string
	// prefixMatch is a condition with one placeholder: column starts with
	// the pattern (a LIKE pattern escaped with '\' and ending in %), ASCII
	// letters matched without regard to case and every other character
	// exactly.
	prefixMatch(column string) string
	// byteOrder is column compared and sorted by its bytes (text ids and
	// cursors page the same on both engines, whatever the database's
	// default collation).
	byteOrder(column string) string
}

// lockKey names one purpose of a transaction-scoped lock.
type lockKey int32

// jarvisLockClass is the first half of every advisory lock key Jarvis takes
// ("jarv" in ASCII), so its locks cannot meet another application's in the
// same database. Advisory locks are per database: two installations on one
// server never meet either.
const jarvisLockClass int32 = 0x6a617276

// The locks, one per purpose. Whoever holds more than one takes them in this
// order (audit before events; nothing takes migrate with another), so two
// transactions never wait on each other.
const (
	// lockAudit: appending to the audit chain (read the tip, link, move the head).
	lockAudit lockKey = 1
	// lockEvents: inserting events, so ids commit in id order and a reader
	// of "id > last" never passes an id that commits later.
	lockEvents lockKey = 2
	// lockMigrate: creating or changing tables and founding the audit log.
	lockMigrate lockKey = 3
)

func (k lockKey) String() string {
	switch k {
	case lockAudit:
		return "audit"
	case lockEvents:
		return "events"
	case lockMigrate:
		return "migrate"
	}
	return fmt.Sprintf("#%d", int32(k))
}

// sqliteDialect is SQLite through mattn/go-sqlite3.
type sqliteDialect struct{}

func (sqliteDialect) name() string               { return "sqlite" }
func (sqliteDialect) oneWriter() bool            { return true }
func (sqliteDialect) rebind(query string) string { return query }

// lock does nothing: the transaction took SQLite's write lock at BEGIN.
func (sqliteDialect) lock(*gorm.DB, lockKey) error { return nil }

// lockRows does nothing, as lock.
func (sqliteDialect) lockRows(*gorm.DB, string, ...any) error { return nil }
func (sqliteDialect) nowNS() string                           { return "NULL" }

// SQLite's LIKE folds ASCII letters only (without the ICU extension, which
// mattn/go-sqlite3 does not build).
func (sqliteDialect) prefixMatch(column string) string { return column + ` LIKE ? ESCAPE '\'` }

// SQLite compares text with BINARY (memcmp) unless told otherwise.
func (sqliteDialect) byteOrder(column string) string { return column }

// postgresDialect is PostgreSQL through pgx.
type postgresDialect struct{}

func (postgresDialect) name() string    { return "postgres" }
func (postgresDialect) oneWriter() bool { return false }

// rebind numbers the placeholders: none of the statements it is given has a
// ? inside a string literal.
func (postgresDialect) rebind(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func (postgresDialect) lock(tx *gorm.DB, k lockKey) error {
	if k == lockMigrate {
		// A migration may hold it for minutes (an index on a large table):
		// another replica starting meanwhile waits that long rather than fail.
		wait := pgDuration(postgresMigrateLockTimeout)
		if err := tx.Exec(longerLockTimeout, wait, wait).Error; err != nil {
			return fmt.Errorf("take the %s lock: %w", k, err)
		}
	}
	start := time.Now()
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?, ?)", jarvisLockClass, int32(k)).Error; err != nil {
		return lockError(k.String(), start, err)
	}
	return nil
}

func (postgresDialect) lockRows(tx *gorm.DB, query string, args ...any) error {
	start := time.Now()
	if err := tx.Exec(query+" FOR UPDATE", args...).Error; err != nil {
		return lockError("row", start, err)
	}
	return nil
}

// longerLockTimeout raises lock_timeout to at least its argument until the
// transaction ends, leaving a longer one (or none, 0) as it is.
const longerLockTimeout = `SELECT set_config('lock_timeout', CASE
	WHEN current_setting('lock_timeout')::interval = interval '0'
	  OR current_setting('lock_timeout')::interval >= CAST(? AS interval) THEN current_setting('lock_timeout')
	ELSE ? END, true)`

// ErrLockTimeout is a wait for a lock that another Jarvis process (or
// another session on the database) held for longer than lock_timeout: the
// transaction was given up, nothing of it was written.
var ErrLockTimeout = errors.New("gave up waiting for a lock another process holds")

// lockError names a failed wait for lock what: a timeout as ErrLockTimeout,
// with how long it waited, rather than the server's bare "canceling
// statement due to lock timeout".
func lockError(what string, start time.Time, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgLockNotAvailable {
		return fmt.Errorf("take the %s lock: %w (waited %s; a Jarvis replica holding it may be paused or stuck, see pg_stat_activity): %w",
			what, ErrLockTimeout, time.Since(start).Round(time.Millisecond), err)
	}
	return fmt.Errorf("take the %s lock: %w", what, err)
}

// pgLockNotAvailable is the SQLSTATE of a lock_timeout.
const pgLockNotAvailable = "55P03"

// pgInsufficientPrivilege is the SQLSTATE of a statement the role may not run.
const pgInsufficientPrivilege = "42501"

// nowNS uses clock_timestamp, the time of the call: now() is the time the
// transaction began, which may be before the previous holder of a lock
// committed.
func (postgresDialect) nowNS() string {
	return "(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint"
}

// PostgreSQL's LIKE is case-sensitive, ILIKE folds every letter the
// collation knows; lower() under the C collation folds ASCII letters only, as
// SQLite's LIKE does.
func (postgresDialect) prefixMatch(column string) string {
	return `lower(` + column + ` COLLATE "C") LIKE lower(? COLLATE "C") ESCAPE '\'`
}

func (postgresDialect) byteOrder(column string) string { return column + ` COLLATE "C"` }

// IsDatabaseURL reports whether target names a PostgreSQL database (a
// postgres:// or postgresql:// URL) rather than an SQLite file.
func IsDatabaseURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// Pool limits on PostgreSQL. Each Jarvis process is one client among
// several, and the server's default is 100 connections: 10 are enough for
// the audit writer, the read batches and the API, as most statements are
// short and the audit appends take turns on one lock anyway.
const (
	postgresMaxConns    = 10
	postgresMaxIdleTime = 5 * time.Minute
	// applicationName is what pg_stat_activity shows for Jarvis's
	// connections unless the URL names one (application_name=jarvis/b);
	// a replica's connections add its id: jarvis/<replica>.
	applicationName = "jarvis"
)

// Every connection's session settings, sent as startup parameters: they hold
// from the first statement on every connection the pool opens, and override
// what ALTER DATABASE or ALTER ROLE … SET made the default there.
//
// The isolation is not negotiable: the locks rely on each statement after
// the lock seeing what the previous holder committed (dialect), which READ
// COMMITTED gives and REPEATABLE READ or SERIALIZABLE do not (claims of one
// rule both win, audit appends collide, concurrent Opens fail).
//
// The two timeouts bound a wait on another replica, and the URL may set
// its own (lock_timeout=30s, 0 for none). A replica paused or cut off while
// it holds the audit lock would stop every other one: the server ends its
// transaction once it sits idle for postgresIdleInTransactionTimeout (no
// Jarvis transaction waits on anything but the database between its
// statements, which take milliseconds), and that is shorter than
// postgresLockTimeout, so the others see a delay, not errors. A holder busy
// in a statement for longer makes the waiters give up with ErrLockTimeout;
// the longest Jarvis holds a lock itself, for a batch of 128 read rows, is
// well under a second.
const (
	postgresIsolation                = "read committed"
	postgresLockTimeout              = 15 * time.Second
	postgresIdleInTransactionTimeout = 10 * time.Second
	// postgresMigrateLockTimeout is the wait for the migrate lock, at least.
	postgresMigrateLockTimeout = 5 * time.Minute
)

// openPostgres opens the pool on the database at url. It returns the
// connection settings too (the follower's listener connects with them), and
// names the database for messages without the password.
func openPostgres(url, replica string) (*sql.DB, *pgx.ConnConfig, string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx leaves the password out of its parse errors.
		return nil, nil, "", fmt.Errorf("read the PostgreSQL database URL: %w", err)
	}
	where := fmt.Sprintf("PostgreSQL database %s on %s:%d", cfg.Database, cfg.Host, cfg.Port)
	name := applicationName
	if replica != "" {
		name += "/" + replica
	}
	setDefault(cfg.RuntimeParams, "application_name", name)
	setDefault(cfg.RuntimeParams, "lock_timeout", pgDuration(postgresLockTimeout))
	setDefault(cfg.RuntimeParams, "idle_in_transaction_session_timeout", pgDuration(postgresIdleInTransactionTimeout))
	cfg.RuntimeParams["default_transaction_isolation"] = postgresIsolation
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	db.SetConnMaxIdleTime(postgresMaxIdleTime)
	return db, cfg, where, nil
}

// pgDuration writes d as PostgreSQL reads a time setting or an interval.
func pgDuration(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// setDefault sets a connection's parameter unless the URL did, as a
// parameter of its own or in options (-c key=value).
func setDefault(params map[string]string, key, value string) {
	if _, ok := params[key]; ok || strings.Contains(params["options"], key+"=") {
		return
	}
	params[key] = value
}

// openSQLite opens the file at path (already created by Open), or a private
// in-memory database.
func openSQLite(path string) gorm.Dialector {
	if path == memoryPath {
		return sqlite.Open("file::memory:?_foreign_keys=on&_txlock=immediate")
	}
	return sqlite.Open(dsn(path))
}
