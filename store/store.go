// Package store keeps Jarvis's durable state through gorm, in one SQLite file
// or in a PostgreSQL database: the hash-chained audit log, the event feed
// (with in-process fan-out), approvals, operator preferences and agent tokens.
//
// Several jarvis processes (serve, stdio, approve, audit verify; on
// PostgreSQL, replicas on several hosts) may open the same database at once.
// Every write that reads before it writes runs in a transaction that takes
// turns with the others across processes: on SQLite by taking the write lock
// at BEGIN (_txlock=immediate), on PostgreSQL by an explicit lock as its
// first statement (dialect.go). So the audit chain, the feed's ids, approval
// and rule state stay consistent across processes too.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Sentinel errors. Callers test them with errors.Is; the returned errors wrap
// them with the id and the reason in words.
var (
	ErrNotFound        = errors.New("not found")
	ErrMismatch        = errors.New("approval was granted for a different principal, tool or arguments")
	ErrNotApproved     = errors.New("approval has not been approved")
	ErrAlreadyConsumed = errors.New("approval was already used")
	ErrExpired         = errors.New("approval has expired")
	ErrPlanChanged     = errors.New("approval was granted for a plan that no longer describes the call")
	ErrNotPending      = errors.New("approval is no longer pending")
	ErrAlreadyEnded    = errors.New("audit call already has an end row")
)

// minAuditKeyLen is the shortest HMAC key accepted for the audit chain.
const minAuditKeyLen = 32

// Options configures Open.
type Options struct {
	// AuditKey is the HMAC key for audit rows, derived by the caller from the
	// server secret so every process sharing the database agrees on it.
	// Required, at least 32 bytes.
	AuditKey []byte

	// AnchorPath is the audit anchor file (see anchor.go); empty means the
	// database path plus ".anchor". An in-memory database has none, and a
	// PostgreSQL database has one only when AnchorPath names it (each
	// replica keeps its own).
	AnchorPath string
	// CheckpointRows and CheckpointEvery say how often the anchor file's
	// checkpoint follows the audit head: after that many new rows, or that
	// long after a row was added, whichever comes first (and at Close).
	// Zero means 32 rows and 30 seconds.
	CheckpointRows  int
	CheckpointEvery time.Duration

	// RequireAnchor refuses (ErrAnchorMissing) an audit log founded before
	// this Open whose anchor file is missing, before anything is written: a
	// Jarvis that serves on PostgreSQL must have its own anchor, and one that
	// refuses to start should not first raise a missing-anchor alarm on the
	// feed every replica shares. Without it, Open goes on and the missing
	// file is reported by the checkpoints and by AuditVerify.
	RequireAnchor bool

	// Replica names this process among the Jarvis replicas sharing the
	// database (leases.go): the calls it begins are recorded as running
	// on it, so that another replica can mark them interrupted soon after
	// this one stops sending heartbeats. Empty for a process that sends
	// none (the CLI, a lone Jarvis): its calls are marked only by age,
	// as before replicas.
	Replica string
}

// memoryPath is the path that opens a private in-memory database (tests,
// throwaway tools): no file, no anchor.
const memoryPath = ":memory:"

// Store is the handle on the database. It is safe for concurrent use.
type Store struct {
	db       *gorm.DB
	d        dialect
	auditKey []byte
	now      func() time.Time
	// dbClock: audit rows take the database's clock, not now (PostgreSQL:
	// processes on several hosts append rows whose times follow their ids).
	dbClock bool
	// listen connects FollowOtherWriters's listener (PostgreSQL); nil on
	// SQLite, where it polls.
	listen *pgx.ConnConfig
	// replica is Options.Replica; opened is when Open was called, its
	// start in heartbeats.
	replica string
	opened  time.Time

	// auditMu serialises audit appends inside this process so writers queue
	// here instead of spinning in SQLite's busy handler or holding pool
	// connections while they wait for PostgreSQL's audit lock; across
	// processes the transaction's lock does the same job.
	auditMu sync.Mutex

	// publishMu keeps insert and fan-out of one event together, so live
	// subscribers see events in ID order.
	publishMu sync.Mutex
	// fanned is the highest event ID fanned out (guarded by publishMu); events
	// other processes wrote below it were delivered too, in ID order.
	fanned uint64

	subMu  sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool

	// cp writes the audit anchor's checkpoints; nil for in-memory databases.
	cp *checkpointer

	// stmts are the audit append's statements, prepared once (stmts.go).
	stmts statements
	// reads commits read rows in groups (audit_reads.go).
	reads *readWriter
}

// Open opens the store at target and migrates it to the current schema
// (migrations.go), refusing one a newer Jarvis upgraded (ErrSchemaTooNew).
// target is either the path of an SQLite file, created if needed (private to
// its owner), or the URL of an existing PostgreSQL database
// (postgres://user:password@host:5432/jarvis?sslmode=verify-full;
// IsDatabaseURL). The Open that creates the audit tables also founds the
// audit log: its genesis record and its anchor file (beside an SQLite file).
// Open refuses a database without an audit log when an anchor file says it
// had one.
func Open(target string, opts Options) (*Store, error) {
	if target == "" {
		return nil, errors.New("open store: database path is empty")
	}
	if len(opts.AuditKey) < minAuditKeyLen {
		return nil, fmt.Errorf("open store: audit key is %d bytes, need at least %d", len(opts.AuditKey), minAuditKeyLen)
	}
	pg := IsDatabaseURL(target)
	memory := target == memoryPath
	created := false
	var (
		dial   gorm.Dialector
		d      dialect
		pool   *sql.DB         // PostgreSQL's, opened here
		listen *pgx.ConnConfig // PostgreSQL's, for the follower
		where  = target        // names the database in messages
	)
	if pg {
		var err error
		if pool, listen, where, err = openPostgres(target, opts.Replica); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		dial, d = postgres.New(postgres.Config{Conn: pool}), postgresDialect{}
	} else {
		if !memory {
			var err error
			if created, err = createFile(target); err != nil {
				return nil, err
			}
		}
		dial, d = openSQLite(target), sqliteDialect{}
	}
	db, err := openGorm(dial)
	for try := 1; err != nil && !pg && try < 10 && strings.Contains(err.Error(), "database is locked"); try++ {
		// A new SQLite file's first connection turns it to WAL, which needs
		// the file to itself; another process doing the same at that
		// moment is answered "locked" at once, not after the busy timeout.
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		db, err = openGorm(openSQLite(target))
	}
	if err != nil {
		if pool != nil {
			_ = pool.Close()
		}
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	s := &Store{
		db:       db,
		d:        d,
		auditKey: append([]byte(nil), opts.AuditKey...),
		now:      time.Now,
		dbClock:  pg,
		listen:   listen,
		replica:  opts.Replica,
		opened:   time.Now(),
		subs:     make(map[*Subscription]struct{}),
	}
	switch {
	case memory:
		// Every connection to ":memory:" is a database of its own: keep one.
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.SetMaxOpenConns(1)
		}
	case pg && opts.AnchorPath == "":
		// No file beside the database to default to.
	default:
		s.cp = newCheckpointer(target, opts)
	}
	if err := s.migrate(); err != nil {
		_ = s.closeDB()
		if created {
			// Leave no empty database behind to be mistaken for a new one.
			for _, suffix := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(target + suffix)
			}
		}
		return nil, err
	}
	if err := s.anchorRequired(opts); err != nil {
		_ = s.closeDB()
		return nil, err
	}
	if err := s.prepare(); err != nil {
		_ = s.closeDB()
		return nil, err
	}
	// Events already stored are history, not news for live subscribers.
	last, err := s.LastEventID(context.Background())
	if err != nil {
		_ = s.closeDB()
		return nil, err
	}
	s.fanned = last
	s.startReads()
	s.startCheckpoints()
	return s, nil
}

func openGorm(dial gorm.Dialector) (*gorm.DB, error) {
	db, err := gorm.Open(dial, &gorm.Config{
		// Logs would carry SQL with arguments (args, tokens hashes): keep quiet.
		Logger: logger.Discard,
		// Single statements are atomic already; multi-statement writes open
		// their own transactions explicitly.
		SkipDefaultTransaction: true,
	})
	if err != nil && db != nil {
		if pool, derr := db.DB(); derr == nil {
			_ = pool.Close()
		}
	}
	return db, err
}

// createFile creates the SQLite file at path ourselves so it is private to
// the owner: it holds the audit log and token hashes (SQLite gives -wal/-shm
// the same mode). It reports whether the file is new.
func createFile(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR, 0o600)
	}
	if err != nil {
		return false, fmt.Errorf("open store: create database file %s: %w", path, err)
	}
	return created, f.Close()
}

// dsn builds the connection string measured to give WAL, a busy timeout,
// foreign keys and no "database is locked" under concurrent writers.
func dsn(path string) string {
	// The path is read as a URI by SQLite: escape the characters that would
	// end it early or be decoded.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?_journal_mode=WAL&_busy_timeout=5000&_foreign_keys=on&_synchronous=NORMAL&_txlock=immediate"
}

// Close writes a last audit checkpoint, drops every subscription and closes
// the database.
func (s *Store) Close() error {
	s.reads.stop() // queued reads first: their rows belong before the last checkpoint
	s.stopCheckpoints()
	s.subMu.Lock()
	s.closed = true
	for sub := range s.subs {
		delete(s.subs, sub)
		sub.end(false)
	}
	s.subMu.Unlock()
	return s.closeDB()
}

func (s *Store) closeDB() error {
	_ = s.stmts.close()
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	if err := sqlDB.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Engine names the database engine the store is on: "sqlite" or "postgres".
func (s *Store) Engine() string { return s.d.name() }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.db.WithContext(ctx).Raw("SELECT 1").Scan(&n).Error; err != nil {
		return fmt.Errorf("store ping: %w", err)
	}
	return nil
}

// Times are stored as Unix nanoseconds: exact round trips (the audit hash
// covers them) and comparisons in SQL that do not depend on text formats.
// The zero time is stored as 0.

func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func toNSPtr(t *time.Time) *int64 {
	if t == nil || t.IsZero() {
		return nil
	}
	ns := t.UnixNano()
	return &ns
}

func fromNSPtr(ns *int64) *time.Time {
	if ns == nil {
		return nil
	}
	t := fromNS(*ns)
	return &t
}

// clampLimit turns a caller's limit into one in [1, max], using def for <= 0.
func clampLimit(limit, def, max int) int {
	if limit <= 0 {
		return def
	}
	if limit > max {
		return max
	}
	return limit
}
