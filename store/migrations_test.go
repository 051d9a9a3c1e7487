package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// openRaw opens the database at target with gorm alone, as an older Jarvis
// or someone with access to the database would, closed at the end of the
// test.
func openRaw(t *testing.T, target string) (*gorm.DB, dialect) {
	t.Helper()
	dial, d := openSQLite(target), dialect(sqliteDialect{})
	if IsDatabaseURL(target) {
		dial, d = postgres.Open(target), postgresDialect{}
	}
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pool, err := db.DB(); err == nil {
			pool.Close()
		}
	})
	return db, d
}

// oldCall is one call in a database from before migrations.
type oldCall struct {
	Tool, Args string
	Read       bool // one read row, not a begin and an end
	Open       bool // a begin row only: it was running
}

// oldCalls is what the upgrade tests find in an old database: calls on one
// cluster and on named clusters, as an installation serving several wrote
// them, and one still running.
var oldCalls = []oldCall{
	{Tool: "clone_guest", Args: `{"newid":150,"vmid":9000}`},
	{Tool: "start_vm", Args: `{"cluster":"lab","vmid":101}`},
	{Tool: "get_vms", Args: `{"cluster":"home"}`, Read: true},
	{Tool: "get_vms", Args: `{}`, Read: true},
	{Tool: "stop_vm", Args: `{"cluster":"lab","vmid":102}`, Open: true},
	{Tool: "start_vm", Args: `{"vmid":103}`},
}

// writeOldDatabase writes at target what a Jarvis from before versioned
// migrations left there: the tables of schema version 1 and no
// schema_migrations; an audit log founded with its anchor file, holding
// calls and checkpointed at its last row; a row or two in every other table,
// and the record of guest 150 created by the first call if it is a clone. It
// returns how many audit rows it wrote.
func writeOldDatabase(t *testing.T, target string, calls []oldCall) int {
	t.Helper()
	db, d := openRaw(t, target)
	k := &Store{auditKey: testKey}
	now := time.Now().Add(-time.Hour)
	g := auditGenesisRecord{ID: auditGenesisRowID, Installation: "0123456789abcdef0123456789abcdef", CreatedNS: now.UnixNano()}
	g.MAC = k.genesisMAC(g)
	var tip auditRecord
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := migrateBaseline(migrator{tx, d}); err != nil {
			return err
		}
		insert := func(recs ...any) {
			for _, r := range recs {
				if err := tx.Create(r).Error; err != nil {
					t.Fatalf("insert %T: %v", r, err)
				}
			}
		}
		insert(&auditGenesisRecordV1{ID: g.ID, Installation: g.Installation, CreatedNS: g.CreatedNS, MAC: g.MAC})
		add := func(r auditRecord) uint64 {
			r.ID, r.PrevHash, r.TimeNS = tip.ID+1, tip.Hash, now.Add(time.Duration(tip.ID+1)*time.Second).UnixNano()
			r.Hash = rowHash(r)
			r.MAC = k.rowMAC(r.Hash)
			insert(&auditRecordV1{ID: r.ID, TimeNS: r.TimeNS, Kind: r.Kind, BeginID: r.BeginID, Principal: r.Principal, Tool: r.Tool,
				Args: r.Args, Tier: r.Tier, Decision: r.Decision, Plan: r.Plan, Status: r.Status, DurationMS: r.DurationMS,
				Result: r.Result, PrevHash: r.PrevHash, Hash: r.Hash, MAC: r.MAC})
			tip = r
			return r.ID
		}
		for _, c := range calls {
			if c.Read {
				add(auditRecord{Kind: "read", Principal: "agent:ci", Tool: c.Tool, Args: c.Args, Tier: "GREEN", Decision: "allow", Status: OutcomeOK})
				continue
			}
			id := add(auditRecord{Kind: "begin", Principal: "agent:ci", Tool: c.Tool, Args: c.Args, Tier: "YELLOW", Decision: "allow", Plan: "do " + c.Tool})
			if !c.Open {
				add(auditRecord{Kind: "end", BeginID: id, Principal: "agent:ci", Tool: c.Tool, Tier: "YELLOW", Decision: "allow", Status: OutcomeOK, DurationMS: 1500})
			}
		}
		insert(&auditHeadRecordV1{ID: auditHeadRowID, LastID: tip.ID, Hash: tip.Hash, MAC: k.headMAC(tip.ID, tip.Hash)})

		ns := now.UnixNano()
		later := now.Add(2 * time.Hour).UnixNano()
		insert(
			&eventRecordV1{TimeNS: ns, Type: EventSystem, Severity: SeverityInfo, Source: "jarvis", Summary: "started"},
			&eventRecordV1{TimeNS: ns, Type: EventAlert, Severity: SeverityWarning, Source: "watch", Node: "pve1", Summary: "node pve1 is down", Details: `{"kind":"node_down"}`},
			&approvalRecordV1{ID: "apr_00000000000000a1", Principal: "agent:ci", Tool: "stop_vm", Args: `{"cluster":"lab","vmid":102}`, Plan: "[cluster lab] stop 102", Status: ApprovalPending, CreatedNS: ns, ExpiresNS: later},
			&approvalRecordV1{ID: "apr_00000000000000a2", Principal: "agent:ci", Tool: "stop_vm", Args: `{"vmid":102}`, Plan: "stop 102", Status: ApprovalDenied, CreatedNS: ns, ExpiresNS: later},
			&ruleRecordV1{ID: "r_0000000000a1", Version: 1, Principal: "agent:ci", Tool: "start_vm", Args: `{"cluster":["lab"],"vmid":["101"]}`, PerTargetPerHour: 2, MaxFailures: 2, ExpiresNS: later, CreatedBy: "operator", CreatedNS: ns, Current: true},
			&ruleRecordV1{ID: "r_0000000000a2", Version: 1, Principal: "agent:ci", Tool: "start_vm", Args: `{"cluster":["home","lab"],"vmid":["*"]}`, PerTargetPerHour: 2, MaxFailures: 2, ExpiresNS: later, CreatedBy: "operator", CreatedNS: ns, Current: true},
			&ruleUseRecordV1{RuleID: "r_0000000000a1", Version: 1, Principal: "agent:ci", Target: "lab/guest/101", AuditID: 3, StartedNS: ns},
			&tokenRecordV1{ID: "tok1", Name: "ci", MaxTier: "YELLOW", CreatedNS: ns, TokenHash: "hash1"},
			&preferenceRecordV1{Key: "theme", Value: "dark", UpdatedNS: ns},
			&spentNonceRecordV1{Nonce: "n1", ExpiresNS: later},
		)
		if len(calls) > 0 && calls[0].Tool == "clone_guest" && !calls[0].Open && !calls[0].Read {
			insert(&createdGuestRecordV1{VMID: 150, Node: "pve1", Tool: "clone_guest", Principal: "agent:ci", Marker: "jarvis-id-1", BeginID: 1, CreatedNS: ns})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAnchor(anchorOf(target), k.sealAnchor(g, tip.ID, tip.Hash, now)); err != nil {
		t.Fatal(err)
	}
	return int(tip.ID)
}

func TestMigrateNewDatabase(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if v, err := s.SchemaVersion(ctx); err != nil || v != KnownSchemaVersion() {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, KnownSchemaVersion())
	}
	var applied []schemaMigrationRecord
	if err := s.db.Order("version").Find(&applied).Error; err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(migrations) {
		t.Fatalf("%d steps recorded, want %d", len(applied), len(migrations))
	}
	for i, a := range applied {
		if a.Version != i+1 || a.Name != migrations[i].name || a.AppliedNS == 0 {
			t.Errorf("step %d recorded as %+v", i+1, a)
		}
	}
}

// The steps are numbered 1, 2, … in order: version n is migrations[n-1].
func TestMigrationsAreNumberedInOrder(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 || m.name == "" || m.up == nil {
			t.Errorf("migrations[%d] is version %d %q", i, m.version, m.name)
		}
	}
}

// A database from before migrations is upgraded in place: its audit chain
// verifies as it did (no row's hash changes), its rows read as before, the
// cluster columns say what the arguments said, and the guests Jarvis created
// are still its own.
func TestMigrateDatabaseFromBeforeMigrations(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	rows := writeOldDatabase(t, target, oldCalls)
	s := openAt(t, target, testKey)

	if v, err := s.SchemaVersion(ctx); err != nil || v != KnownSchemaVersion() {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, KnownSchemaVersion())
	}
	rep := mustVerify(t, s)
	if !rep.OK || rep.Rows != rows || rep.Checkpoint != uint64(rows) || rep.Installation != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("AuditVerify after the upgrade = %+v, want OK with %d rows, as founded", rep, rows)
	}

	// Audit rows: the cluster each call's arguments name; end rows their begin's.
	recent, err := s.AuditRecent(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uint64]AuditRow{}
	for _, r := range recent {
		byID[r.ID] = r
	}
	for _, r := range recent {
		want := clusterOfArgs(r.Args)
		if r.Kind == "end" {
			want = clusterOfArgs(byID[r.BeginID].Args)
		}
		if r.Cluster != want {
			t.Errorf("row %d (%s %s) has cluster %q, want %q", r.ID, r.Kind, r.Tool, r.Cluster, want)
		}
	}
	page, err := s.AuditSearch(ctx, AuditFilter{Cluster: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range page.Calls {
		got = append(got, fmt.Sprintf("%s:%s", c.Tool, c.Outcome))
	}
	if strings.Join(got, " ") != "stop_vm:running start_vm:ok" {
		t.Errorf("calls on lab: %v, want the running stop_vm and the start_vm that ended ok", got)
	}

	// The call that was running ends as any call: its end row says lab.
	if _, err := s.MarkInterrupted(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if page, err := s.AuditSearch(ctx, AuditFilter{Cluster: "lab", Outcome: OutcomeInterrupted}); err != nil || len(page.Calls) != 1 {
		t.Errorf("interrupted calls on lab: %+v, %v; want the stop_vm", page, err)
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != rows+1 {
		t.Errorf("AuditVerify after a new row = %+v", rep)
	}

	// Every other table reads as before; approvals and rules say their cluster.
	if ok, err := s.CreatedByJarvis(ctx, 150, "jarvis-id-1"); err != nil || !ok {
		t.Errorf("CreatedByJarvis(150) after the upgrade = %v, %v; want true", ok, err)
	}
	if guests, err := s.ListCreatedGuests(ctx); err != nil || len(guests) != 1 || guests[0].Cluster != "" || guests[0].VMID != 150 {
		t.Errorf("created guests after the upgrade: %+v, %v", guests, err)
	}
	for id, want := range map[string]string{"apr_00000000000000a1": "lab", "apr_00000000000000a2": ""} {
		if a, err := s.GetApproval(ctx, id); err != nil || a.Cluster != want {
			t.Errorf("approval %s: %+v, %v; want cluster %q", id, a, err, want)
		}
	}
	for id, want := range map[string]string{"r_0000000000a1": "lab", "r_0000000000a2": ""} {
		if r, err := s.GetRule(ctx, id); err != nil || r.Cluster != want {
			t.Errorf("rule %s: %+v, %v; want cluster %q", id, r, err, want)
		}
	}
	if evs, err := s.EventsAfter(ctx, 0, 10); err != nil || len(evs) < 2 || evs[1].Summary != "node pve1 is down" || evs[1].Cluster != "" {
		t.Errorf("events after the upgrade: %+v, %v", evs, err)
	}
	if tok, err := s.GetToken(ctx, "tok1"); err != nil || tok.Name != "ci" {
		t.Errorf("token after the upgrade: %+v, %v", tok, err)
	}
	if v, ok, err := s.GetPreference(ctx, "theme"); err != nil || !ok || v != "dark" {
		t.Errorf("preference after the upgrade: %q, %v, %v", v, ok, err)
	}
	if err := s.SpendNonce(ctx, "n1", time.Now().Add(time.Hour)); !errors.Is(err, ErrAlreadyConsumed) {
		t.Errorf("spending a nonce spent before the upgrade: %v, want ErrAlreadyConsumed", err)
	}
}

// A database a newer Jarvis upgraded is refused as it is, saying what to do.
func TestOpenRefusesANewerSchema(t *testing.T) {
	s, target := openTemp(t)
	newer := KnownSchemaVersion() + 1
	exec(t, s, "INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)", newer, "from the future", 1)
	_, err := openStore(target, Options{AuditKey: testKey})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
	want := fmt.Sprintf("this database was upgraded by a newer Jarvis (schema %d, this one knows %d); run that version or newer", newer, KnownSchemaVersion())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if v, err := s.SchemaVersion(context.Background()); err != nil || v != newer {
		t.Errorf("the refused Open changed the version: %d, %v", v, err)
	}
}

// A step that fails leaves the database as it was: no step of the run is
// kept, and the next Open starts again from the same version.
func TestFailedMigrationChangesNothing(t *testing.T) {
	target := tempDB(t)
	writeOldDatabase(t, target, oldCalls)
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = append(copyMigrations(saved), migration{len(saved) + 1, "fails", func(m migrator) error {
		if err := m.exec("CREATE TABLE half_done (id integer)"); err != nil {
			return err
		}
		return errors.New("no space left")
	}})
	if _, err := openStore(target, Options{AuditKey: testKey}); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Open with a failing step = %v, want its error", err)
	}
	db, _ := openRaw(t, target)
	for _, table := range []string{"schema_migrations", "half_done", "leases"} {
		if db.Migrator().HasTable(table) {
			t.Errorf("table %s exists after the failed Open", table)
		}
	}
	if db.Migrator().HasColumn(&auditRecord{}, "cluster") {
		t.Error("audit_log.cluster exists after the failed Open")
	}

	migrations = saved
	s := openAt(t, target, testKey)
	if rep := mustVerify(t, s); !rep.OK {
		t.Errorf("after the failed Open, a good one: %+v", rep)
	}
}

// Reopening a database at the current version runs no step.
func TestReopenRunsNoMigration(t *testing.T) {
	s, target := openTemp(t)
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	ran := 0
	migrations = copyMigrations(saved)
	for i := range migrations {
		up := migrations[i].up
		migrations[i].up = func(m migrator) error { ran++; return up(m) }
	}
	openAt(t, target, testKey)
	if ran != 0 {
		t.Errorf("%d steps ran on reopening a current database", ran)
	}
	if v, err := s.SchemaVersion(context.Background()); err != nil || v != KnownSchemaVersion() {
		t.Errorf("SchemaVersion = %d, %v", v, err)
	}
}

// copyMigrations copies ms, so a test can change its copy.
func copyMigrations(ms []migration) []migration { return append([]migration(nil), ms...) }

// Reopening a database already at the current schema: what every jarvis
// command (approve, audit verify, doctor) and every restart pays.
func BenchmarkOpenCurrent(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, target string) {
		for b.Loop() {
			h, err := openStore(target, Options{AuditKey: testKey})
			if err != nil {
				b.Fatal(err)
			}
			if err := h.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
