package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// openWith opens a handle with opts (AuditKey defaults to testKey), closed at
// the end of the test.
func openWith(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if opts.AuditKey == nil {
		opts.AuditKey = testKey
	}
	s, err := openStore(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openOnce opens a handle the test closes itself (Close writes a checkpoint).
func openOnce(t *testing.T, path string) *Store {
	t.Helper()
	s, err := openStore(path, Options{AuditKey: testKey})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// anchorAt reads the anchor file of the database at path.
func anchorAt(t *testing.T, path string) anchorFile {
	t.Helper()
	a, err := readAnchor(anchorOf(path))
	if err != nil {
		t.Fatalf("read anchor: %v", err)
	}
	return a
}

func headOf(t *testing.T, s *Store) auditHeadRecord {
	t.Helper()
	var h auditHeadRecord
	if err := s.db.Where("id = ?", auditHeadRowID).Take(&h).Error; err != nil {
		t.Fatalf("read head: %v", err)
	}
	return h
}

func wantBroken(t *testing.T, s *Store, wantBadID uint64, wantInText ...string) {
	t.Helper()
	rep := mustVerify(t, s)
	if rep.OK || rep.FirstBadID != wantBadID {
		t.Errorf("AuditVerify = %+v\nwant a failure at %d", rep, wantBadID)
	}
	for _, w := range wantInText {
		if !strings.Contains(rep.Problem, w) {
			t.Errorf("problem %q does not mention %q", rep.Problem, w)
		}
	}
}

// TestWipedAuditLogStaysWiped empties the audit log the ways someone with
// write access to the file could. Verify must call it wiped, nothing may be
// appended to it, and opening the database again must not found a new log.
func TestWipedAuditLogStaysWiped(t *testing.T) {
	tests := []struct {
		name      string
		wipe      []string
		wantBadID uint64
		want      []string
	}{
		{"rows and head deleted", []string{"DELETE FROM audit_log", "DELETE FROM audit_head"}, 0,
			[]string{"The audit log was wiped", "founded"}},
		{"rows, head and genesis deleted", []string{"DELETE FROM audit_log", "DELETE FROM audit_head", "DELETE FROM audit_genesis"}, 0,
			[]string{"genesis record is missing", "wiped or replaced", "The anchor file"}},
		{"genesis deleted", []string{"DELETE FROM audit_genesis"}, 0,
			[]string{"genesis record is missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := tempDB(t)
			s := openOnce(t, path)
			seedCalls(t, s, 3)
			for _, q := range tt.wipe {
				exec(t, s, q)
			}
			wantBroken(t, s, tt.wantBadID, tt.want...)
			if _, err := s.AuditBegin(ctx, AuditEntry{Principal: "p", Tool: "t"}); err == nil {
				t.Error("AuditBegin on a wiped log succeeded: it must refuse (no row, no call)")
			}
			mustClose(t, s)

			s2 := openWith(t, path, Options{}) // as the next start of jarvis
			wantBroken(t, s2, tt.wantBadID, tt.want...)
			if _, err := s2.AuditBegin(ctx, AuditEntry{Principal: "p", Tool: "t"}); err == nil || !strings.Contains(err.Error(), "jarvis audit verify") {
				t.Errorf("AuditBegin after reopening a wiped log = %v, want a refusal pointing to jarvis audit verify", err)
			}
		})
	}
}

// removeDB deletes the database file and its WAL, keeping the anchor file.
func removeDB(t *testing.T, path string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

// dropTables drops every table of the database at target, as someone with
// access to it could, without going through a store.
func dropTables(t *testing.T, target string) {
	t.Helper()
	db, _ := openRaw(t, target)
	for _, table := range tables(t, db) {
		if err := db.Migrator().DropTable(table); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRefusesANewDatabaseBesideItsAnchor replaces the database with a
// new or empty one while its anchor file stays: Open must refuse to found a
// new audit log there and say what to do.
func TestOpenRefusesANewDatabaseBesideItsAnchor(t *testing.T) {
	tests := []struct {
		name       string
		sqliteOnly bool // the database is a file
		replace    func(t *testing.T, path string)
	}{
		{"database deleted", true, func(t *testing.T, path string) { removeDB(t, path) }},
		{"database emptied", true, func(t *testing.T, path string) {
			removeDB(t, path)
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"every table dropped", false, dropTables},
		{"audit tables dropped", false, func(t *testing.T, path string) {
			s := openOnce(t, path)
			for _, table := range []string{"audit_log", "audit_head", "audit_genesis"} {
				exec(t, s, "DROP TABLE "+table)
			}
			mustClose(t, s)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sqliteOnly {
				storetest.SkipOnPostgres(t, "replaces the database file")
			}
			path := tempDB(t)
			s := openOnce(t, path)
			seedCalls(t, s, 2)
			mustClose(t, s)
			before := anchorAt(t, path)
			tt.replace(t, path)

			s2, err := openStore(path, Options{AuditKey: testKey})
			if err == nil {
				s2.Close()
				t.Fatal("Open founded a new audit log beside the anchor file of the old one")
			}
			for _, want := range []string{"has no audit log", anchorOf(path), before.Installation, "Restore the database", "move both the database and"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not mention %q", err, want)
				}
			}
			if after := anchorAt(t, path); after != before {
				t.Errorf("the refused Open changed the anchor file: %+v, was %+v", after, before)
			}
			if _, err := openStore(path, Options{AuditKey: testKey}); err == nil {
				t.Fatal("a second Open succeeded: the refusal must hold")
			}
			if _, err := os.Stat(path); tt.name == "database deleted" && !os.IsNotExist(err) {
				t.Errorf("the refused Open left a new database file behind: %v", err)
			}
		})
	}

	t.Run("starting over on purpose", func(t *testing.T) {
		path := tempDB(t)
		s := openOnce(t, path)
		seedCalls(t, s, 1)
		mustClose(t, s)
		old := anchorAt(t, path)
		attic := t.TempDir()
		moveAside := []string{anchorOf(path)}
		if IsDatabaseURL(path) {
			dropTables(t, path)
		} else {
			moveAside = append(moveAside, path, path+"-wal", path+"-shm")
		}
		for _, name := range moveAside {
			if err := os.Rename(name, filepath.Join(attic, filepath.Base(name))); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		s2 := openWith(t, path, Options{})
		rep := mustVerify(t, s2)
		if !rep.OK || rep.Rows != 0 || rep.Installation == "" || rep.Installation == old.Installation {
			t.Fatalf("a new start verifies as %+v, want OK with 0 rows and a new installation (old %s)", rep, old.Installation)
		}
	})
}

// saveHead returns the head record as it is now, to put back later as
// someone who kept a copy would.
func saveHead(t *testing.T, s *Store) auditHeadRecord { return headOf(t, s) }

func putBackHead(t *testing.T, s *Store, h auditHeadRecord) {
	t.Helper()
	exec(t, s, "UPDATE audit_head SET last_id = ?, hash = ?, mac = ? WHERE id = ?", h.LastID, h.Hash, h.MAC, h.ID)
}

// TestAuditVerifyCatchesARollbackBehindACheckpoint deletes the newest rows
// and puts back a head saved before them. The head and rows agree, so only
// the anchor's later checkpoint shows what happened.
func TestAuditVerifyCatchesARollbackBehindACheckpoint(t *testing.T) {
	tests := []struct {
		name      string
		after     func(t *testing.T, s *Store) // after the rollback
		wantBadID uint64
		want      []string
		// wantAlarm: the head passed the checkpoint again, so a checkpoint was
		// attempted, refused, and reported on the feed.
		wantAlarm bool
	}{
		{"rows deleted and head rolled back", func(*testing.T, *Store) {}, 5,
			[]string{"Rows 5 to 6 are missing", "checkpoint", "records row 6", "rolled back"}, false},
		{"rolled back and written again past the checkpoint", func(t *testing.T, s *Store) { seedCalls(t, s, 2) }, 6,
			[]string{"Row 6 is not the row the anchor file's checkpoint", "rolled back and written again"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := tempDB(t)
			s := openOnce(t, path)
			seedCalls(t, s, 2) // rows 1-4
			saved := saveHead(t, s)
			seedCalls(t, s, 1) // rows 5-6
			mustClose(t, s)    // checkpoints row 6
			if a := anchorAt(t, path); a.Checkpoint.Row != 6 {
				t.Fatalf("checkpoint after Close at row %d, want 6", a.Checkpoint.Row)
			}

			s2 := openOnce(t, path)
			exec(t, s2, "DELETE FROM audit_log WHERE id > 4")
			putBackHead(t, s2, saved)
			tt.after(t, s2)
			wantBroken(t, s2, tt.wantBadID, tt.want...)
			mustClose(t, s2) // its checkpoint must refuse to anchor the rolled-back log
			if a := anchorAt(t, path); a.Checkpoint.Row != 6 {
				t.Errorf("the anchor moved to row %d over a rolled-back log", a.Checkpoint.Row)
			}

			s3 := openWith(t, path, Options{})
			wantBroken(t, s3, tt.wantBadID, tt.want...)
			evs, err := s3.ListEvents(ctx, EventFilter{Type: "system"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantAlarm {
				if len(evs) == 0 || evs[0].Severity != "critical" || !strings.Contains(evs[0].Summary, "Audit checkpoint not written") {
					t.Errorf("no critical event about the refused checkpoint; newest system events: %+v", evs)
				}
			}
		})
	}
}

// TestAuditVerifyChecksTheAnchorFile damages the anchor file or the genesis
// record it names.
func TestAuditVerifyChecksTheAnchorFile(t *testing.T) {
	other := tempDB(t)
	mustClose(t, openOnce(t, other))

	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store, anchor string)
		want   string
	}{
		{"anchor deleted", func(t *testing.T, _ *Store, anchor string) {
			if err := os.Remove(anchor); err != nil {
				t.Fatal(err)
			}
		}, "is missing, so a wiped, replaced or rolled-back log cannot be ruled out"},
		{"checkpoint moved back without the key", func(t *testing.T, _ *Store, anchor string) {
			a, _ := readAnchor(anchor)
			a.Checkpoint.Row = 2
			writeJSON(t, anchor, a)
		}, "changed without the audit key"},
		{"not an anchor file", func(t *testing.T, _ *Store, anchor string) {
			if err := os.WriteFile(anchor, []byte("{}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a valid anchor file"},
		{"anchor of another database", func(t *testing.T, _ *Store, anchor string) {
			b, err := os.ReadFile(anchorOf(other))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(anchor, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "belongs to installation"},
		{"genesis founded again with the key", func(t *testing.T, s *Store, _ string) {
			g := auditGenesisRecord{ID: auditGenesisRowID, Installation: "0123456789abcdef0123456789abcdef", CreatedNS: time.Now().UnixNano()}
			g.MAC = s.genesisMAC(g)
			exec(t, s, "UPDATE audit_genesis SET installation = ?, created_ns = ?, mac = ?", g.Installation, g.CreatedNS, g.MAC)
		}, "founded again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempDB(t)
			s := openOnce(t, path)
			seedCalls(t, s, 3)
			mustClose(t, s) // checkpoint at row 6
			s2 := openWith(t, path, Options{})
			if rep := mustVerify(t, s2); !rep.OK || rep.Checkpoint != 6 || rep.Anchor != anchorOf(path) {
				t.Fatalf("before tampering AuditVerify = %+v, want OK with a checkpoint at row 6", rep)
			}
			tt.tamper(t, s2, anchorOf(path))
			wantBroken(t, s2, 0, tt.want)
		})
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitForCheckpoint polls the anchor file until its checkpoint reaches row.
func waitForCheckpoint(t *testing.T, path string, row uint64) anchorFile {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := anchorAt(t, path)
		if a.Checkpoint.Row >= row {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint still at row %d, want %d", a.Checkpoint.Row, row)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuditCheckpointsFollowTheHead(t *testing.T) {
	t.Run("every N rows, published on the feed", func(t *testing.T) {
		path := tempDB(t)
		s := openWith(t, path, Options{CheckpointRows: 4, CheckpointEvery: time.Hour})
		if a := anchorAt(t, path); a.Checkpoint.Row != 0 || a.Installation == "" || !macEqual(s.anchorMAC(a), a.MAC) {
			t.Fatalf("anchor of a new database: %+v", a)
		}
		sub := s.Subscribe(100)
		defer sub.Close()
		seedCalls(t, s, 2) // rows 1-4
		a := waitForCheckpoint(t, path, 4)
		select {
		case ev := <-sub.C():
			var d struct {
				Installation, Hash, MAC string
				Row                     uint64
			}
			_ = json.Unmarshal(ev.Details, &d)
			if ev.Type != "system" || ev.Source != "audit" || !strings.Contains(ev.Summary, "rows 1 to 4") ||
				d.Row != 4 || d.Hash != a.Checkpoint.Hash || d.MAC != a.MAC || d.Installation != a.Installation {
				t.Errorf("checkpoint event %+v (details %+v), anchor %+v", ev, d, a)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no checkpoint event on the feed")
		}
		seedCalls(t, s, 1) // rows 5-6: fewer than 4 new rows
		time.Sleep(50 * time.Millisecond)
		if a := anchorAt(t, path); a.Checkpoint.Row != 4 {
			t.Errorf("checkpoint at row %d after 2 more rows, want it to stay at 4", a.Checkpoint.Row)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if a := anchorAt(t, path); a.Checkpoint.Row != 6 {
			t.Errorf("checkpoint at row %d after Close, want 6", a.Checkpoint.Row)
		}
	})
	t.Run("every T after new rows", func(t *testing.T) {
		path := tempDB(t)
		s := openWith(t, path, Options{CheckpointRows: 1000, CheckpointEvery: 20 * time.Millisecond})
		seedCalls(t, s, 1)
		waitForCheckpoint(t, path, 2)
		if rep := mustVerify(t, s); !rep.OK || rep.Checkpoint != 2 {
			t.Errorf("AuditVerify = %+v, want OK with the checkpoint at row 2", rep)
		}
	})
}

// TestAuditCheckpointsFromConcurrentWriters appends through two handles that
// both checkpoint often, while a reader checks that the anchor file is always
// whole and never moves backwards.
func TestAuditCheckpointsFromConcurrentWriters(t *testing.T) {
	path := tempDB(t)
	opts := Options{CheckpointRows: 3, CheckpointEvery: 5 * time.Millisecond}
	s := openWith(t, path, opts)
	other := openWith(t, path, opts)

	var stop atomic.Bool
	watched := make(chan error, 1)
	go func() {
		var last uint64
		for !stop.Load() {
			a, err := readAnchor(anchorOf(path))
			if err != nil {
				watched <- fmt.Errorf("anchor unreadable mid-write: %w", err)
				return
			}
			if a.Checkpoint.Row < last {
				watched <- fmt.Errorf("checkpoint moved back from row %d to %d", last, a.Checkpoint.Row)
				return
			}
			last = a.Checkpoint.Row
		}
		watched <- nil
	}()

	const writers, calls = 8, 10
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		h := s
		if w%2 == 1 {
			h = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			seedCalls(t, h, calls)
		}()
	}
	wg.Wait()
	stop.Store(true)
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	const rows = writers * calls * 2
	waitForCheckpoint(t, path, rows)
	for _, h := range []*Store{s, other} {
		if rep := mustVerify(t, h); !rep.OK || rep.Rows != rows || rep.Checkpoint != rows {
			t.Errorf("AuditVerify = %+v, want OK with %d rows, all anchored", rep, rows)
		}
	}
	if matches, _ := filepath.Glob(anchorOf(path) + ".tmp-*"); len(matches) != 0 {
		t.Errorf("temporary anchor files left behind: %v", matches)
	}
}

// TestAuditLogFromBeforeGenesisIsFoundedOnce opens a database written before
// genesis records existed: it is founded on its head, once.
func TestAuditLogFromBeforeGenesisIsFoundedOnce(t *testing.T) {
	old := func(t *testing.T, withHead bool, keepAnchor bool) string {
		path := tempDB(t)
		writeOldDatabase(t, path, []oldCall{{Tool: "start_vm"}, {Tool: "start_vm"}, {Tool: "start_vm"}})
		db, _ := openRaw(t, path)
		statements := []string{"DROP TABLE audit_genesis"}
		if !withHead {
			statements = append(statements, "DELETE FROM audit_log", "DELETE FROM audit_head")
		}
		for _, q := range statements {
			if err := db.Exec(q).Error; err != nil {
				t.Fatal(err)
			}
		}
		if !keepAnchor {
			if err := os.Remove(anchorOf(path)); err != nil {
				t.Fatal(err)
			}
		}
		return path
	}
	t.Run("with a head", func(t *testing.T) {
		path := old(t, true, false)
		s := openWith(t, path, Options{})
		rep := mustVerify(t, s)
		if !rep.OK || rep.Rows != 6 || rep.Checkpoint != 6 || rep.Installation == "" {
			t.Fatalf("AuditVerify = %+v, want OK with 6 rows anchored", rep)
		}
		mustClose(t, s)
		s2 := openWith(t, path, Options{})
		if rep2 := mustVerify(t, s2); !rep2.OK || rep2.Installation != rep.Installation {
			t.Errorf("reopened: %+v, want the same installation %s", rep2, rep.Installation)
		}
	})
	t.Run("emptied", func(t *testing.T) {
		s := openWith(t, old(t, false, false), Options{})
		wantBroken(t, s, 0, "genesis record is missing")
	})
	t.Run("beside an anchor", func(t *testing.T) {
		s := openWith(t, old(t, true, true), Options{})
		wantBroken(t, s, 0, "genesis record is missing", "The anchor file")
	})
}

func TestInMemoryDatabaseHasNoAnchor(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := openWith(t, memoryPath, Options{})
	seedCalls(t, s, 2)
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 4 || rep.Anchor != "" || rep.Installation == "" {
		t.Errorf("AuditVerify = %+v, want OK with 4 rows and no anchor", rep)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("an in-memory database wrote files: %v", entries)
	}
}
