package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Copying a store into another database is how an installation moves from
// its SQLite file to PostgreSQL (jarvis migrate-store): CopyInto. It stays the
// same installation: every table's rows are copied as they are, ids included,
// so the audit log keeps its genesis and chain and verifies on the target
// under the same key (JWT_SECRET). The target's schema is made by Open's steps
// (migrations.go), without founding a log. The source must be unused
// (CheckNotInUse), is read under its write lock and must verify first; the
// target must hold no Jarvis data and is filled in one transaction under the
// locks Open and the appends take; text PostgreSQL cannot store is refused,
// never changed (the audit hashes cover it); the target's anchor is sealed at
// the copied head, and the copy is verified against the source after commit.
// Tables and columns come from each side's catalogue, so a table a later
// migration adds is copied with no change here; one a side lacks is refused.

// CopyOptions configures CopyInto.
type CopyOptions struct {
	// AnchorPath is the target's audit anchor file. Required, and it must not
	// exist yet: CopyInto writes it, sealed at the copied head.
	AnchorPath string
}

// CopyReport is what CopyInto copied and found: the target (named without
// its password), every table copied by name (schema_migrations is the
// target's own), and the target's audit log as verified after the copy, its
// head the same as the source's.
type CopyReport struct {
	Target   string
	Tables   []CopiedTable
	Audit    VerifyReport
	HeadID   uint64
	HeadHash string
	Took     time.Duration
}

// CopiedTable is one table copied.
type CopiedTable struct {
	Name string
	Rows int64
}

// Refusals of CopyInto and CheckNotInUse; the errors say what was found.
var (
	ErrInUse            = errors.New("another process has the database open")
	ErrSourceUnverified = errors.New("the source's audit log does not verify")
	ErrTargetNotEmpty   = errors.New("the target database is not empty")
)

const (
	schemaMigrations = "schema_migrations" // not copied: each database records the steps it ran
	// maxCopyParams bounds the values of one INSERT: a few hundred rows, far
	// below either engine's limit (SQLite 32766, PostgreSQL 65535).
	maxCopyParams = 4096
)

// CopyInto copies the store src, an SQLite file with its anchor file, into
// the empty database at target (a PostgreSQL URL, or an SQLite path), and
// writes the target's anchor file. src must be opened after CheckNotInUse
// found no other process on it. Nothing is written to the target unless all
// is, and the copy is verified before CopyInto returns.
func CopyInto(ctx context.Context, src *Store, target string, opts CopyOptions) (*CopyReport, error) {
	start := time.Now()
	if src.d.name() != "sqlite" || src.cp == nil {
		return nil, errors.New("copy store: the source must be an SQLite file with its anchor file")
	}
	switch _, err := os.Lstat(opts.AnchorPath); {
	case opts.AnchorPath == "":
		return nil, errors.New("copy store: name the target's audit anchor file: on PostgreSQL each replica keeps its own (JARVIS_AUDIT_ANCHOR)")
	case err == nil:
		return nil, fmt.Errorf("copy store: the anchor file %s exists already: it belongs to another audit log or an earlier copy. "+
			"Name a new file, or move that one away if it is not in use", opts.AnchorPath)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("copy store: the anchor file %s: %w", opts.AnchorPath, err)
	}
	rep := &CopyReport{}
	var from *copySource
	// The source's write lock (BEGIN IMMEDIATE) throughout: what is verified is
	// what is copied, and a writer started since CheckNotInUse waits.
	err := src.db.WithContext(ctx).Transaction(func(stx *gorm.DB) error {
		var err error
		if from, err = src.readSource(ctx, stx); err != nil {
			return err
		}
		return src.copyTo(ctx, from, target, opts.AnchorPath, rep)
	})
	if err != nil {
		return nil, fmt.Errorf("copy store: %w", err)
	}
	if err := src.checkCopy(ctx, target, opts.AnchorPath, from, rep); err != nil {
		return nil, fmt.Errorf("copy store: the copy in %s was committed, but %w. Do not run Jarvis on it: "+
			"drop that database and remove %s, then run the copy again", rep.Target, err, opts.AnchorPath)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

type copySource struct { // the source as the copy reads it, in its transaction
	tx      *gorm.DB
	tables  []string // every table but schema_migrations, by name
	genesis auditGenesisRecord
	head    auditHeadRecord
	seqs    map[string]int64 // sqlite_sequence: the last id each AUTOINCREMENT table handed out
	audit   VerifyReport
}

// readSource verifies the source's audit log and reads what the copy needs
// to know of it, inside the source's transaction stx.
func (s *Store) readSource(ctx context.Context, stx *gorm.DB) (*copySource, error) {
	// Verify reads on a connection of its own: under the lock held here, it
	// sees what this transaction reads.
	rep, err := s.AuditVerify(ctx)
	if err != nil {
		return nil, err
	}
	if !rep.OK {
		return nil, fmt.Errorf("%w: %s Nothing was copied: a log that does not verify is not carried over. "+
			"See jarvis audit verify, and put the database and its anchor file right first", ErrSourceUnverified, rep.Problem)
	}
	src := &copySource{tx: stx, seqs: map[string]int64{}, audit: rep}
	if src.genesis, _, err = readGenesis(stx); err != nil {
		return nil, err
	}
	if err := stx.Where("id = ?", auditHeadRowID).Take(&src.head).Error; err != nil {
		return nil, fmt.Errorf("read the source's audit head: %w", err)
	}
	tables, err := catalogTables(stx, s.d)
	if err != nil {
		return nil, err
	}
	src.tables = slices.DeleteFunc(tables, func(t string) bool { return t == schemaMigrations })
	var seqs []struct {
		Name string
		Seq  int64
	}
	if err := stx.Raw("SELECT name, seq FROM sqlite_sequence").Scan(&seqs).Error; err != nil { // events' AUTOINCREMENT made it
		return nil, fmt.Errorf("read the source's sqlite_sequence: %w", err)
	}
	for _, q := range seqs {
		src.seqs[q.Name] = q.Seq
	}
	return src, nil
}

// copyTo opens the target, fills it in one transaction and writes its anchor
// file. A failure leaves neither behind, nor an SQLite file it created.
func (s *Store) copyTo(ctx context.Context, src *copySource, target, anchorPath string, rep *CopyReport) error {
	tdb, td, created, err := openCopyTarget(target, &rep.Target)
	wroteAnchor := false
	if err == nil {
		err = tdb.WithContext(ctx).Transaction(func(ttx *gorm.DB) error {
			if err := s.fillTarget(ctx, ttx, td, src, rep); err != nil {
				return err
			}
			// Before the commit, as Open writes a new log's, and removed if the
			// commit fails: the target never has a log without it.
			if err := writeAnchor(anchorPath, s.sealAnchor(src.genesis, src.head.LastID, src.head.Hash, time.Now())); err != nil {
				return fmt.Errorf("write the target's anchor file %s: %w", anchorPath, err)
			}
			wroteAnchor = true
			return nil
		})
	}
	if tdb != nil {
		if sqlDB, derr := tdb.DB(); derr == nil {
			_ = sqlDB.Close()
		}
	}
	if err != nil && wroteAnchor {
		_ = os.Remove(anchorPath)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err != nil && created {
			_ = os.Remove(target + suffix)
		}
	}
	return err
}

// openCopyTarget opens the database at target without migrating it: a
// PostgreSQL URL, or an SQLite path, created if need be (created says so).
// It names the database in *where, without a password.
func openCopyTarget(target string, where *string) (db *gorm.DB, d dialect, created bool, err error) {
	if !IsDatabaseURL(target) {
		if target == "" || target == memoryPath {
			return nil, nil, false, errors.New("name the target database: a PostgreSQL URL")
		}
		*where = target
		if created, err = createFile(target); err == nil {
			db, err = openGorm(openSQLite(target))
		}
		return db, sqliteDialect{}, created, err
	}
	pool, _, name, err := openPostgres(target, "migrate-store")
	if err != nil {
		return nil, nil, false, err
	}
	*where = name
	if err = pool.Ping(); err == nil { // pgx leaves the password out of its errors
		db, err = openGorm(postgres.New(postgres.Config{Conn: pool}))
	}
	if err != nil {
		_ = pool.Close()
		return nil, nil, false, fmt.Errorf("reach the target %s: %w", name, err)
	}
	return db, postgresDialect{}, false, nil
}

// fillTarget makes the schema and copies every table, in the target's ttx.
func (s *Store) fillTarget(ctx context.Context, ttx *gorm.DB, td dialect, src *copySource, rep *CopyReport) error {
	// migrate first, as Open takes it, then audit before events as appends
	// take them: a Jarvis opening the target meanwhile waits for the commit,
	// then finds the copied log.
	for _, k := range []lockKey{lockMigrate, lockAudit, lockEvents} {
		if err := td.lock(ttx, k); err != nil {
			return err
		}
	}
	if err := ttx.Exec(createSchemaMigrations).Error; err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	have, err := schemaVersion(ttx)
	if known := KnownSchemaVersion(); err == nil && have > known {
		err = schemaTooNewError{have, known}
	}
	if err == nil {
		err = refuseNonEmpty(ttx, td, rep.Target, src.tables)
	}
	if err != nil {
		return err
	}
	// The steps Open runs, but not foundAuditLog: the log is the source's.
	if err := (&Store{d: td, now: time.Now}).applyMigrations(ttx, have); err != nil {
		return err
	}
	tables, err := catalogTables(ttx, td)
	if err != nil {
		return err
	}
	tables = slices.DeleteFunc(tables, func(t string) bool { return t == schemaMigrations })
	if err := differ("tables", src.tables, tables); err != nil {
		return fmt.Errorf("%w; copy into a database of its own, with no other program's tables", err)
	}
	ttxSQL, _ := ttx.Statement.ConnPool.(*sql.Tx)
	targetCols := map[string][]catalogColumn{}
	for _, t := range src.tables {
		if targetCols[t], err = catalogColumns(ttx, td, t); err != nil {
			return err
		}
		n, err := copyTable(ctx, src, ttxSQL, td, t, targetCols[t])
		if err != nil {
			return fmt.Errorf("copy table %s: %w", t, err)
		}
		rep.Tables = append(rep.Tables, CopiedTable{Name: t, Rows: n})
	}
	return carrySequences(ttx, td, src, targetCols)
}

// refuseNonEmpty refuses a target where any of Jarvis's tables has rows.
func refuseNonEmpty(ttx *gorm.DB, td dialect, where string, jarvisTables []string) error {
	there, err := catalogTables(ttx, td)
	if err != nil {
		return err
	}
	var full []string
	for _, t := range jarvisTables {
		var n int64
		if !slices.Contains(there, t) {
			continue
		} else if err := ttx.Raw("SELECT count(*) FROM " + quoteIdent(t)).Scan(&n).Error; err != nil {
			return fmt.Errorf("count the rows of %s in the target: %w", t, err)
		} else if n > 0 {
			full = append(full, fmt.Sprintf("%s (%d rows)", t, n))
		}
	}
	if len(full) == 0 {
		return nil
	}
	ran := ""
	if g, ok, err := readGenesis(ttx); err == nil && ok {
		ran = fmt.Sprintf("; it has the audit log of installation %s, founded %s: a Jarvis ran on it", g.Installation, formatTime(fromNS(g.CreatedNS)))
	}
	return fmt.Errorf("%w: %s holds %s%s. Copy only into a new, empty database (CREATE DATABASE jarvis OWNER jarvis), never into one a Jarvis uses",
		ErrTargetNotEmpty, where, strings.Join(full, ", "), ran)
}

// copyTable copies table's rows from the source into the target in primary
// key order, a few hundred to a statement, and says how many it copied.
func copyTable(ctx context.Context, src *copySource, ttx *sql.Tx, td dialect, table string, targetCols []catalogColumn) (int64, error) {
	cols, err := catalogColumns(src.tx, sqliteDialect{}, table)
	if err != nil {
		return 0, err
	}
	if err := differ("columns of "+table, columnNames(cols), columnNames(targetCols)); err != nil {
		return 0, err
	}
	types := map[string]string{}
	for _, c := range targetCols {
		types[c.Name] = c.Type
	}
	names, key := columnNames(cols), primaryKey(cols)
	if len(key) == 0 {
		return 0, errors.New("it has no primary key to copy its rows in order")
	}
	var order []string
	for i := range names {
		names[i] = quoteIdent(names[i])
	}
	for _, k := range key {
		order = append(order, names[k])
	}
	stx, _ := src.tx.Statement.ConnPool.(*sql.Tx)
	rows, err := stx.QueryContext(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+quoteIdent(table)+" ORDER BY "+strings.Join(order, ", "))
	if err != nil {
		return 0, fmt.Errorf("read the source's rows: %w", err)
	}
	defer rows.Close()

	perInsert := max(1, maxCopyParams/len(cols))
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	insertOf := func(n int) string {
		return td.rebind("INSERT INTO " + quoteIdent(table) + " (" + strings.Join(names, ", ") + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(one+", ", n), ", "))
	}
	full, batch := insertOf(perInsert), make([]any, 0, perInsert*len(cols))
	flush := func() error {
		q, n := full, len(batch)/len(cols)
		switch {
		case n == 0:
			return nil
		case n < perInsert:
			q = insertOf(n)
		}
		if _, err := ttx.ExecContext(ctx, q, batch...); err != nil {
			return fmt.Errorf("insert rows: %w", err)
		}
		batch = batch[:0]
		return nil
	}

	vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for ; rows.Next(); n++ {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("read a source row: %w", err)
		}
		for i, v := range vals {
			stored, err := copyValue(td.name() == "postgres", types[cols[i].Name], v)
			if err != nil {
				var at []string
				for _, k := range key {
					at = append(at, fmt.Sprintf("%s=%v", cols[k].Name, vals[k]))
				}
				return 0, fmt.Errorf("row %s, column %s: %w%s", strings.Join(at, ", "), cols[i].Name, err, unstorableHint(table, err))
			}
			batch = append(batch, stored)
		}
		if len(batch) >= perInsert*len(cols) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read the source's rows: %w", err)
	}
	return n, flush()
}

// errUnstorableText is text only SQLite keeps, from a Jarvis older than text.go.
var errUnstorableText = errors.New("it holds text PostgreSQL cannot store (a NUL byte, or bytes that are not UTF-8), written by an older Jarvis")

// unstorableHint says what to do about errUnstorableText in table.
func unstorableHint(table string, err error) string {
	switch {
	case !errors.Is(err, errUnstorableText):
		return ""
	case strings.HasPrefix(table, "audit_"):
		return ". The audit log's hashes cover it, so the copy will not change it: this audit log cannot move to PostgreSQL as it is"
	}
	return ". With Jarvis stopped, change or delete that row in the SQLite file (sqlite3), then run the copy again"
}

// copyValue is v, as the source gave it, as the target's column of type typ
// stores it exactly, or why it cannot; SQLite to SQLite takes it as it is.
func copyValue(pg bool, typ string, v any) (any, error) {
	if v == nil || !pg {
		return v, nil
	}
	switch typ {
	case "bigint", "integer", "smallint":
		if i, ok := v.(int64); ok {
			return i, nil
		}
	case "boolean": // gorm's booleans are 0 and 1 in SQLite; a column declared boolean reads as one
		if b, ok := v.(bool); ok {
			return b, nil
		} else if i, ok := v.(int64); ok && (i == 0 || i == 1) {
			return i == 1, nil
		}
	case "text":
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		if s, ok := v.(string); ok && !isCleanText(s) {
			return nil, errUnstorableText
		} else if ok {
			return s, nil
		}
	default:
		return nil, fmt.Errorf("its PostgreSQL type %s is not one the copy knows (bigint, integer, smallint, boolean, text)", typ)
	}
	return nil, fmt.Errorf("it holds a value of type %T, which a PostgreSQL %s column cannot take exactly", v, typ)
}

// carrySequences moves the target's id counters past every id the source
// handed out, so that new rows never take one again: past the largest
// copied, and past sqlite_sequence's, which is ahead of it when the newest
// rows were deleted (an SSE client's Last-Event-ID must never come to name
// another event, events.go).
func carrySequences(ttx *gorm.DB, td dialect, src *copySource, targetCols map[string][]catalogColumn) error {
	for _, t := range src.tables {
		if td.name() != "postgres" {
			if _, ok := src.seqs[t]; !ok {
				continue
			}
			// SQLite's counter followed the copied ids: only deleted ones are missing.
			res := ttx.Exec("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", src.seqs[t], t)
			if res.Error == nil && res.RowsAffected == 0 { // no row copied into it
				res = ttx.Exec("INSERT INTO sqlite_sequence (seq, name) VALUES (?, ?)", src.seqs[t], t)
			}
			if res.Error != nil {
				return fmt.Errorf("set the target's id counter of %s: %w", t, res.Error)
			}
			continue
		}
		for _, c := range targetCols[t] {
			var last int64
			if c.Seq == "" {
				continue
			} else if err := ttx.Raw("SELECT COALESCE(max(" + quoteIdent(c.Name) + "), 0) FROM " + quoteIdent(t)).Scan(&last).Error; err != nil {
				return fmt.Errorf("read the largest %s.%s copied: %w", t, c.Name, err)
			}
			if last = max(last, src.seqs[t]); last == 0 {
				continue // nothing handed out: the new sequence starts at 1
			}
			if err := ttx.Exec("SELECT setval(CAST(? AS regclass), ?)", c.Seq, last).Error; err != nil {
				return fmt.Errorf("set the sequence %s past %d: %w", c.Seq, last, err)
			}
		}
	}
	return nil
}

// checkCopy opens the target as Jarvis will and verifies its audit log: the
// source's installation, rows and head.
func (s *Store) checkCopy(ctx context.Context, target, anchorPath string, src *copySource, rep *CopyReport) error {
	t, err := Open(target, Options{AuditKey: s.auditKey, AnchorPath: anchorPath, RequireAnchor: true})
	if err != nil {
		return fmt.Errorf("opening it failed: %w", err)
	}
	defer t.Close() // at the head its anchor vouches for: nothing to write
	got, err := t.AuditVerify(ctx)
	if err != nil {
		return fmt.Errorf("verifying its audit log failed: %w", err)
	}
	var head auditHeadRecord
	if err := t.db.WithContext(ctx).Where("id = ?", auditHeadRowID).Take(&head).Error; err != nil {
		return fmt.Errorf("reading its audit head failed: %w", err)
	}
	switch want := src.audit; {
	case !got.OK:
		return fmt.Errorf("its audit log does not verify: %s", got.Problem)
	case got.Installation != want.Installation || got.Rows != want.Rows || head != src.head:
		return fmt.Errorf("its audit log is not the source's: installation %s, %d rows, head at row %d (%s), where the source has %s, %d rows, head at row %d (%s)",
			got.Installation, got.Rows, head.LastID, head.Hash, want.Installation, want.Rows, src.head.LastID, src.head.Hash)
	}
	rep.Audit, rep.HeadID, rep.HeadHash = got, head.LastID, head.Hash
	return nil
}

// catalogColumn is one column of a table as the database's catalogue has it.
type catalogColumn struct {
	Name string
	Type string // lower case: as declared (SQLite), or PostgreSQL's name for it
	PK   int    // its place in the primary key, from 1; 0 outside it
	Seq  string // PostgreSQL: the sequence that numbers it, "" for none
}

// catalogTables lists the database's tables (not SQLite's own) in byte order.
func catalogTables(tx *gorm.DB, d dialect) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	if d.name() == "postgres" {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	var names []string
	if err := tx.Raw(q).Scan(&names).Error; err != nil {
		return nil, fmt.Errorf("list the tables: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// catalogColumns lists table's columns in their order.
func catalogColumns(tx *gorm.DB, d dialect, table string) ([]catalogColumn, error) {
	q, args := `SELECT name, lower(type) AS type, pk, '' AS seq FROM pragma_table_info(?) ORDER BY cid`, []any{table}
	if d.name() == "postgres" {
		q = `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type,
				COALESCE(array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1, 0) AS pk,
				COALESCE(pg_get_serial_sequence(?, a.attname), '') AS seq
			FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
			WHERE a.attrelid = CAST(? AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`
		args = []any{quoteIdent(table), quoteIdent(table)}
	}
	var cols []catalogColumn
	if err := tx.Raw(q, args...).Scan(&cols).Error; err != nil {
		return nil, fmt.Errorf("list the columns of %s: %w", table, err)
	}
	return cols, nil
}

// primaryKey is the places of the primary key's columns in cols, in key order.
func primaryKey(cols []catalogColumn) []int {
	var key []int
	for i, c := range cols {
		if c.PK > 0 {
			key = append(key, i)
		}
	}
	slices.SortFunc(key, func(a, b int) int { return cols[a].PK - cols[b].PK })
	return key
}

func columnNames(cols []catalogColumn) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// differ refuses what the source and the target do not both have.
func differ(what string, src, dst []string) error {
	extra := slices.DeleteFunc(slices.Clone(src), func(x string) bool { return slices.Contains(dst, x) })
	missing := slices.DeleteFunc(slices.Clone(dst), func(x string) bool { return slices.Contains(src, x) })
	if len(extra)+len(missing) > 0 {
		return fmt.Errorf("the source's %s and this Jarvis's schema differ: only in the source %v, only in the target %v", what, extra, missing)
	}
	return nil
}

// quoteIdent quotes a table or column name for either engine ("trigger" is
// a column of rules, and a keyword of both).
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// CheckNotInUse makes sure no other process has the SQLite file at path open
// (a jarvis serve or stdio, an sqlite3 shell), so that nothing writes to it
// after it is copied. It takes the file's exclusive lock for a moment, which
// any other connection refuses: on a WAL database each holds a shared lock
// for as long as it is open, idle or not. A process that crashed holds none.
// Call it before opening the file: this process's connections count too.
func CheckNotInUse(path string) error {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) // as dsn does
	db, err := sql.Open("sqlite3", "file:"+escaped+"?mode=rw&_locking_mode=EXCLUSIVE&_busy_timeout=500")
	if err == nil {
		defer db.Close()
		db.SetMaxOpenConns(1) // the lock is one connection's
		for _, q := range []string{"BEGIN EXCLUSIVE", "SELECT count(*) FROM sqlite_master", "COMMIT"} {
			if _, err = db.Exec(q); err != nil {
				break
			}
		}
	}
	switch {
	case err != nil && strings.Contains(err.Error(), "database is locked"):
		return fmt.Errorf("%w: %s", ErrInUse, path)
	case err != nil:
		return fmt.Errorf("check whether %s is in use: %w", path, err)
	}
	return nil
}
