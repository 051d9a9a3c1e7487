package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// The schema has a version, kept in schema_migrations: one row per step
// applied. Open runs the steps a database lacks, in order, in one
// transaction under the migrate lock (BEGIN IMMEDIATE on SQLite), together
// with founding the audit log of a new database: a failed Open leaves the
// database as it found it, and two processes opening it together take turns.
// A database at the current version costs a few small queries (about 2 ms on
// PostgreSQL, where the AutoMigrate every Open ran before took 0.4 s).
//
// Rules for a new step: append it, never change one that has shipped; write
// it for both engines (migrator.postgres tells them apart); prefer additive
// changes (a column with a default, a new table), so a replica still running
// the previous release keeps working during a rolling upgrade. The record
// structs must match what the steps make: TestSchemaMatchesRecords checks it.

// migration is one step of the schema.
type migration struct {
	version int
	name    string
	up      func(m migrator) error
}

// migrations are every step, in order; version n is migrations[n-1].
var migrations = []migration{
	{1, "baseline: the schema before versioned migrations", migrateBaseline},
	{2, "clusters: a cluster column on events, approvals, rules and audit_log; created guests keyed by cluster and VMID", migrateClusters},
	{3, "leases, replicas and running calls", migrateReplicas},
}

// KnownSchemaVersion is the schema version this Jarvis brings databases to.
func KnownSchemaVersion() int { return migrations[len(migrations)-1].version }

// ErrSchemaTooNew is a database whose schema a newer Jarvis made; Open
// refuses it rather than run on tables it does not know.
var ErrSchemaTooNew = errors.New("database schema is newer than this Jarvis")

type schemaTooNewError struct{ have, known int }

func (e schemaTooNewError) Error() string {
	return fmt.Sprintf("this database was upgraded by a newer Jarvis (schema %d, this one knows %d); run that version or newer", e.have, e.known)
}

func (schemaTooNewError) Unwrap() error { return ErrSchemaTooNew }

// migrator is what a step works with: migrate's transaction and the engine.
type migrator struct {
	tx *gorm.DB
	d  dialect
}

func (m migrator) postgres() bool { return m.d.name() == "postgres" }

// exec runs statements in order, stopping at the first that fails.
func (m migrator) exec(statements ...string) error {
	for _, q := range statements {
		if err := m.tx.Exec(q).Error; err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// schemaMigrationRecord is one applied step.
type schemaMigrationRecord struct {
	Version   int    `gorm:"primaryKey;autoIncrement:false"`
	Name      string `gorm:"not null"`
	AppliedNS int64  `gorm:"not null"`
}

func (schemaMigrationRecord) TableName() string { return "schema_migrations" }

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY, name text NOT NULL, applied_ns bigint NOT NULL)`

// migrate brings the database to KnownSchemaVersion and founds the audit log
// of a database that had none (see foundAuditLog), in one transaction.
func (s *Store) migrate() error {
	wroteAnchor := false
	err := s.db.Transaction(func(tx *gorm.DB) error {
		if err := s.d.lock(tx, lockMigrate); err != nil {
			return err
		}
		if err := tx.Exec(createSchemaMigrations).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		have, err := schemaVersion(tx)
		if err != nil {
			return err
		}
		switch known := KnownSchemaVersion(); {
		case have > known:
			return schemaTooNewError{have, known}
		case have == known:
			return s.keepWipedLogVisible(tx)
		}
		// A database without versions is new, or from before migrations:
		// founding depends on what it held before the steps run.
		fresh, upgrade := false, false
		if have == 0 {
			log, head, genesis := auditTables(tx)
			fresh = !log && !head && !genesis
			upgrade = log && !genesis // written before audit logs were founded
		}
		if err := s.applyMigrations(tx, have); err != nil {
			return err
		}
		if !fresh && !upgrade {
			return nil
		}
		wroteAnchor, err = s.foundAuditLog(tx, fresh)
		return err
	})
	if err != nil {
		if wroteAnchor {
			_ = os.Remove(s.cp.path) // the database did not take the genesis it names
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgInsufficientPrivilege {
			return fmt.Errorf("open store: %w (the role Jarvis connects as may not create its tables here: "+
				"make it the database's owner, CREATE DATABASE jarvis OWNER jarvis, or GRANT CREATE ON SCHEMA public TO it)", err)
		}
		return fmt.Errorf("open store: %w", err)
	}
	return nil
}

// applyMigrations runs every step after version have and records each.
func (s *Store) applyMigrations(tx *gorm.DB, have int) error {
	m := migrator{tx: tx, d: s.d}
	for _, step := range migrations[have:] {
		if err := step.up(m); err != nil {
			return fmt.Errorf("migrate the schema to version %d (%s): %w", step.version, step.name, err)
		}
		rec := schemaMigrationRecord{Version: step.version, Name: step.name, AppliedNS: s.now().UnixNano()}
		if err := tx.Create(&rec).Error; err != nil {
			return fmt.Errorf("record schema version %d: %w", step.version, err)
		}
	}
	return nil
}

// schemaVersion is the highest version applied, 0 for none.
func schemaVersion(db *gorm.DB) (int, error) {
	var v sql.NullInt64
	if err := db.Raw("SELECT max(version) FROM schema_migrations").Row().Scan(&v); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	return int(v.Int64), nil
}

// SchemaVersion is the schema version of the database as it is now: the one
// Open brought it to, or a later one if a newer Jarvis sharing it upgraded it
// since.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(s.db.WithContext(ctx))
}

// auditTables says which of the audit log's tables exist.
func auditTables(tx *gorm.DB) (log, head, genesis bool) {
	m := tx.Migrator()
	return m.HasTable(&auditRecord{}), m.HasTable(&auditHeadRecord{}), m.HasTable(&auditGenesisRecord{})
}

// keepWipedLogVisible deals with a database at the current version whose
// audit tables were dropped since. Its log was founded when it was migrated,
// so this is a wipe, never a new start: beside its anchor file Open refuses
// it, as it refuses a new database there; otherwise the missing tables are
// made again, empty, so that appends are refused and AuditVerify reports the
// wipe instead of failing on a missing table.
func (s *Store) keepWipedLogVisible(tx *gorm.DB) error {
	log, head, genesis := auditTables(tx)
	if log && head && genesis {
		return nil
	}
	if !log && !head && !genesis {
		if err := s.refuseBesideAnchor(); err != nil {
			return err
		}
	}
	var missing []any
	for _, t := range []struct {
		there bool
		rec   any
	}{{log, &auditRecord{}}, {head, &auditHeadRecord{}}, {genesis, &auditGenesisRecord{}}} {
		if !t.there {
			missing = append(missing, t.rec)
		}
	}
	if err := tx.Migrator().CreateTable(missing...); err != nil {
		return fmt.Errorf("create the missing audit tables: %w", err)
	}
	return nil
}
