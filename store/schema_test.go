package store

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// The schema as the database has it, read the same way on both engines, for
// comparing with the record structs and with the schema of version 1.

// dbColumn is one column as the database has it.
type dbColumn struct {
	Name, Type string // type lower case, as declared (SQLite) or named (PostgreSQL)
	NotNull    bool
	Default    string // normalised (normDefault); "" for none
	PK         bool
}

// dbIndex is one index as the database has it, the primary key's aside.
type dbIndex struct {
	Name    string
	Columns string // comma-separated, in order
	Unique  bool
}

// normDefault writes a column default alike on both engines: SQLite keeps
// the quotes written (double or single), PostgreSQL adds casts (::text).
func normDefault(d string) string {
	return strings.ReplaceAll(pgCast.ReplaceAllString(d, ""), `"`, `'`)
}

var pgCast = regexp.MustCompile(`::[a-z]+`)

func tableColumns(t *testing.T, db *gorm.DB, table string) []dbColumn {
	t.Helper()
	var cols []dbColumn
	if db.Dialector.Name() == "postgres" {
		var rows []struct {
			ColumnName, DataType, IsNullable string
			ColumnDefault                    *string
			PK                               bool
		}
		err := db.Raw(`SELECT c.column_name, c.data_type, c.is_nullable, c.column_default,
			EXISTS (SELECT 1 FROM information_schema.key_column_usage k JOIN information_schema.table_constraints tc
				ON tc.constraint_name = k.constraint_name AND tc.table_schema = k.table_schema
				WHERE tc.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema AND k.table_name = c.table_name
				AND k.column_name = c.column_name) AS pk
			FROM information_schema.columns c WHERE c.table_schema = current_schema() AND c.table_name = ?`, table).Scan(&rows).Error
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			cols = append(cols, dbColumn{Name: r.ColumnName, Type: r.DataType, NotNull: r.IsNullable == "NO",
				Default: normDefault(deref(r.ColumnDefault)), PK: r.PK})
		}
	} else {
		var rows []struct {
			Name, Type string
			NotNull    bool
			DfltValue  *string
			PK         int
		}
		if err := db.Raw("SELECT name, type, \"notnull\" AS not_null, dflt_value, pk FROM pragma_table_info(?)", table).Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			cols = append(cols, dbColumn{Name: r.Name, Type: strings.ToLower(r.Type), NotNull: r.NotNull,
				Default: normDefault(deref(r.DfltValue)), PK: r.PK > 0})
		}
	}
	slices.SortFunc(cols, func(a, b dbColumn) int { return strings.Compare(a.Name, b.Name) })
	return cols
}

func tableIndexes(t *testing.T, db *gorm.DB, table string) []dbIndex {
	t.Helper()
	var idx []dbIndex
	if db.Dialector.Name() == "postgres" {
		err := db.Raw(`SELECT i.relname AS name, ix.indisunique AS "unique",
				(SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
					JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum) AS columns
			FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_class i ON i.oid = ix.indexrelid
			WHERE t.relname = ? AND t.relnamespace = current_schema()::regnamespace AND NOT ix.indisprimary`, table).Scan(&idx).Error
		if err != nil {
			t.Fatal(err)
		}
	} else {
		var list []struct {
			Name   string
			Unique bool
			Origin string
		}
		if err := db.Raw(`SELECT name, "unique", origin FROM pragma_index_list(?)`, table).Scan(&list).Error; err != nil {
			t.Fatal(err)
		}
		for _, l := range list {
			if l.Origin == "pk" {
				continue
			}
			var cols []string
			if err := db.Raw("SELECT name FROM pragma_index_info(?) ORDER BY seqno", l.Name).Scan(&cols).Error; err != nil {
				t.Fatal(err)
			}
			idx = append(idx, dbIndex{Name: l.Name, Columns: strings.Join(cols, ","), Unique: l.Unique})
		}
	}
	slices.SortFunc(idx, func(a, b dbIndex) int { return strings.Compare(a.Name, b.Name) })
	return idx
}

// tables lists the database's own tables (not SQLite's).
func tables(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	names, err := db.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return strings.HasPrefix(n, "sqlite_") })
	slices.Sort(names)
	return names
}

// schemaDump describes every table, column, index and trigger of db, one per
// line, in an order that does not depend on how they were made.
func schemaDump(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range tables(t, db) {
		fmt.Fprintf(&b, "table %s\n", table)
		for _, c := range tableColumns(t, db, table) {
			fmt.Fprintf(&b, "  column %s %s not_null=%v default=%q pk=%v\n", c.Name, c.Type, c.NotNull, c.Default, c.PK)
		}
		for _, i := range tableIndexes(t, db, table) {
			fmt.Fprintf(&b, "  index %s (%s) unique=%v\n", i.Name, i.Columns, i.Unique)
		}
	}
	if db.Dialector.Name() == "postgres" {
		var triggers []string
		err := db.Raw(`SELECT tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`).Scan(&triggers).Error
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range triggers {
			fmt.Fprintf(&b, "trigger %s\n", tr)
		}
	}
	return b.String()
}

// records are the record structs of every table, as the code reads and
// writes them.
var records = []any{
	&eventRecord{}, &auditRecord{}, &auditHeadRecord{}, &auditGenesisRecord{}, &spentNonceRecord{},
	&approvalRecord{}, &preferenceRecord{}, &tokenRecord{}, &createdGuestRecord{}, &ruleRecord{},
	&ruleUseRecord{}, &leaseRecord{}, &replicaRecord{}, &runningCallRecord{}, &schemaMigrationRecord{},
}

// columnTypes are the types of the columns that may hold a field of each
// kind, on either engine.
func columnTypes(k reflect.Kind) []string {
	switch k {
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return []string{"integer", "bigint"}
	case reflect.String:
		return []string{"text"}
	case reflect.Bool:
		return []string{"numeric", "boolean"}
	}
	return nil
}

// structDefault is the default f's tag declares, as the database writes it.
func structDefault(f *schema.Field) string {
	switch {
	case !f.HasDefaultValue:
		return ""
	case f.IndirectFieldType.Kind() == reflect.String:
		return "'" + f.DefaultValue + "'" // gorm took the quotes off
	}
	return f.DefaultValue
}

// TestSchemaMatchesRecords checks that what the migrations make is what the
// record structs say, table by table: the same columns, each of a type that
// holds the field, nullable exactly when the field may be nil, with the
// default the struct declares, the same primary key and the same indexes.
// It runs on a new database and on one upgraded from before migrations, so
// SQL written by hand in a step cannot drift from the structs.
func TestSchemaMatchesRecords(t *testing.T) {
	for _, from := range []string{"new", "from before migrations"} {
		t.Run(from, func(t *testing.T) {
			target := tempDB(t)
			if from != "new" {
				writeOldDatabase(t, target, oldCalls)
			}
			s := openAt(t, target, testKey)
			var want []string
			for _, rec := range records {
				stmt := &gorm.Statement{DB: s.db}
				if err := stmt.Parse(rec); err != nil {
					t.Fatal(err)
				}
				want = append(want, stmt.Schema.Table)
				checkTable(t, s.db, stmt.Schema)
			}
			slices.Sort(want)
			if got := tables(t, s.db); !slices.Equal(got, want) {
				t.Errorf("tables %v, records for %v", got, want)
			}
		})
	}
}

func checkTable(t *testing.T, db *gorm.DB, sch *schema.Schema) {
	t.Helper()
	cols := map[string]dbColumn{}
	for _, c := range tableColumns(t, db, sch.Table) {
		cols[c.Name] = c
	}
	for _, f := range sch.Fields {
		if f.DBName == "" {
			continue
		}
		c, ok := cols[f.DBName]
		if !ok {
			t.Errorf("%s.%s (%s.%s) has no column", sch.Table, f.DBName, sch.Name, f.Name)
			continue
		}
		delete(cols, f.DBName)
		where := sch.Table + "." + f.DBName
		if !slices.Contains(columnTypes(f.IndirectFieldType.Kind()), c.Type) {
			t.Errorf("%s is %s, which does not hold a Go %s", where, c.Type, f.FieldType)
		}
		if c.PK != f.PrimaryKey {
			t.Errorf("%s: primary key %v, the struct says %v", where, c.PK, f.PrimaryKey)
		}
		// SQLite lets a primary key column of another type than INTEGER
		// hold NULL unless it says NOT NULL; nothing writes one.
		if !f.PrimaryKey && c.NotNull != f.NotNull {
			t.Errorf("%s: NOT NULL %v, the struct says %v", where, c.NotNull, f.NotNull)
		}
		if want := structDefault(f); !f.PrimaryKey && c.Default != want {
			t.Errorf("%s: default %q, the struct says %q", where, c.Default, want)
		}
	}
	for name := range cols {
		t.Errorf("%s.%s has no field in %s", sch.Table, name, sch.Name)
	}

	var want []dbIndex
	for _, idx := range sch.ParseIndexes() {
		var names []string
		for _, f := range idx.Fields {
			names = append(names, f.DBName)
		}
		want = append(want, dbIndex{Name: idx.Name, Columns: strings.Join(names, ","), Unique: idx.Class == "UNIQUE"})
	}
	slices.SortFunc(want, func(a, b dbIndex) int { return strings.Compare(a.Name, b.Name) })
	if got := tableIndexes(t, db, sch.Table); !slices.Equal(got, want) {
		t.Errorf("%s has indexes %+v, the struct says %+v", sch.Table, got, want)
	}
}

// TestBaselineIsTheSchemaBeforeMigrations pins version 1 to the schema
// Jarvis made before versioned migrations. The golden files were written
// once by schemaDump from databases made by that Jarvis (commit b84904e) and
// must never change: a database of that release is stamped version 1 as it
// is.
func TestBaselineIsTheSchemaBeforeMigrations(t *testing.T) {
	target := tempDB(t)
	db, d := openRaw(t, target)
	if err := db.Transaction(func(tx *gorm.DB) error { return migrateBaseline(migrator{tx, d}) }); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "schema-v1."+storetest.Engine()+".txt")
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := schemaDump(t, db); got != string(want) {
		t.Errorf("version 1 makes a schema other than %s:\n%s", golden, diffLines(string(want), got))
	}
}

// diffLines lists the lines only in want (-) and only in got (+).
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
