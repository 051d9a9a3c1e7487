package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// The source of a copy is always an SQLite file; the target is a database on
// the engine the tests run on: PostgreSQL with JARVIS_TEST_DATABASE_URL, as
// jarvis migrate-store copies, else another SQLite file, so the copy's logic
// runs in the SQLite pass too.

// seededSource is an SQLite store with rows in every table: calls (begin,
// end, read, and one still running), approvals, rules with uses, tokens (one
// revoked), events (one resolved, the newest deleted), created guests,
// preferences, nonces, leases, replicas. Text with every kind of character
// JSON and the console meet, and NULLs. It returns the store, its path and
// the id of the deleted event.
func seededSource(t *testing.T) (*Store, string, uint64) {
	t.Helper()
	ctx := context.Background()
	path := tempDBOn(t, storetest.SQLite)
	s := openWith(t, path, Options{Replica: "host-a"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	seedCalls(t, s, 3)
	_, err := s.AuditRead(ctx, AuditEntry{Principal: "agent:b", Tool: "get_vms", Args: `{"cluster":"lab","note":"ünï ✓ \"q\"\n"}`,
		Tier: "GREEN", Decision: "allow", Plan: "List VMs"}, AuditOutcome{Status: OutcomeOK, Result: "3 guests"}, nil)
	must(err)
	running, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:b", Tool: "stop_vm", Args: `{"vmid":101}`, Tier: "RED", Decision: "approved"})
	must(err) // no end row: listed in running_calls

	now := time.Now()
	pending := Approval{Principal: "agent:b", Tool: "stop_vm", Args: `{"vmid":102}`, Plan: "Stop VM 102 on pve", Tier: "RED", ExpiresAt: now.Add(time.Hour)}
	must(s.CreateApproval(ctx, &pending))
	decided := Approval{Principal: "agent:b", Tool: "stop_vm", Args: `{"vmid":103}`, Plan: "Stop VM 103", Tier: "RED", ExpiresAt: now.Add(time.Hour)}
	must(s.CreateApproval(ctx, &decided))
	_, err = s.DecideApproval(ctx, decided.ID, true, "operator", now)
	must(err)

	r := Rule{Principal: "agent:night/t1", Tool: "start_vm", Args: map[string][]string{"vmid": {"101"}}, Trigger: AlertGuestStoppedUnexpectedly,
		PerTargetPerHour: 2, MaxFailures: 2, ExpiresAt: now.Add(24 * time.Hour), CreatedBy: "operator", Note: "nightly"}
	must(s.CreateRule(ctx, &r))
	v2, err := s.UpdateRule(ctx, r.ID, Rule{Principal: r.Principal, Tool: r.Tool, Args: map[string][]string{"vmid": {"101", "102"}},
		PerTargetPerHour: 3, MaxFailures: 2, ExpiresAt: now.Add(24 * time.Hour), CreatedBy: "operator"})
	must(err)
	use, _, err := s.ClaimRuleUse(ctx, RuleClaim{Rule: *v2, Principal: v2.Principal, Target: "guest/101", Node: "pve", Now: now, StaleAfter: 6 * time.Minute})
	must(err)
	_, err = s.EndRuleUse(ctx, *v2, use, OutcomeOK, 1, 6*time.Minute)
	must(err)
	_, _, err = s.ClaimRuleUse(ctx, RuleClaim{Rule: *v2, Principal: v2.Principal, Target: "guest/102", Node: "pve", Now: now, StaleAfter: 6 * time.Minute})
	must(err) // still running: ended_ns NULL

	for i, name := range []string{"ci", "night"} {
		must(s.CreateToken(ctx, &AgentToken{ID: fmt.Sprintf("tok%d", i), Name: name, MaxTier: "red", Toolsets: "cluster,power",
			ExpiresAt: now.Add(30 * 24 * time.Hour), TokenHash: fmt.Sprintf("hash-%d", i)}))
	}
	must(s.RevokeToken(ctx, "tok1", now))

	for i := 0; i < 3; i++ {
		must(s.Publish(ctx, &Event{Type: EventAlert, Severity: SeverityWarning, Source: "watch", Cluster: "lab", Node: "pve",
			Summary: fmt.Sprintf("guest %d stopped — ünï", 101+i), Details: []byte(`{"vmid":101}`)}))
	}
	_, err = s.ResolveEvent(ctx, 1, "operator")
	must(err)
	newest := Event{Type: EventSystem, Summary: "deleted later"}
	must(s.Publish(ctx, &newest))
	exec(t, s, "DELETE FROM events WHERE id = ?", newest.ID) // sqlite_sequence stays past it

	must(s.RecordCreatedGuest(ctx, CreatedGuest{Cluster: "lab", VMID: 9001, Node: "pve", Tool: "clone_guest", Principal: "agent:b", Marker: "jarvis-id-ab12", BeginID: 1}))
	must(s.SetPreference(ctx, "notify.cursor", "42"))
	must(s.SpendNonce(ctx, "nonce-1", now.Add(time.Hour)))
	_, _, err = s.TakeLease(ctx, "watcher", "host-a", time.Minute)
	must(err)
	must(s.Heartbeat(ctx, Replica{Addr: "10.0.0.5:4000", Listeners: 2, Unattended: true}))
	_ = running
	return s, path, newest.ID
}

// tableRows reads every row of table, each a map of column to value, in the
// same form on both engines (integers as int64, booleans as 0 or 1, text as
// string), in primary key order.
func tableRows(t *testing.T, s *Store, table string) []map[string]any {
	t.Helper()
	cols, err := catalogColumns(s.db, s.d, table)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, k := range primaryKey(cols) {
		col := quoteIdent(cols[k].Name)
		if cols[k].Type == "text" {
			col = s.d.byteOrder(col)
		}
		order = append(order, col)
	}
	rows, err := s.db.Raw("SELECT * FROM " + quoteIdent(table) + " ORDER BY " + strings.Join(order, ", ")).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names, _ := rows.Columns()
	var out []map[string]any
	for rows.Next() {
		vals, ptrs := make([]any, len(names)), make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, v := range vals {
			switch x := v.(type) {
			case int32:
				v = int64(x)
			case bool:
				v = map[bool]int64{false: 0, true: 1}[x]
			case []byte:
				v = string(x)
			}
			row[names[i]] = v
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// jarvisTables is the catalogue's list of tables but schema_migrations.
func jarvisTables(t *testing.T, s *Store) []string {
	t.Helper()
	tables, err := catalogTables(s.db, s.d)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(tables, func(n string) bool { return n == schemaMigrations })
}

// TestCopyIntoCopiesEveryTable copies a source with rows in every table and
// compares each table row by row; then Jarvis carries on on the copy: its
// audit log verifies with the source's head, appends continue its chain and
// ids, and an edit of a row is caught.
func TestCopyIntoCopiesEveryTable(t *testing.T) {
	ctx := context.Background()
	src, _, deletedEvent := seededSource(t)
	// A table a migration adds must get rows here, or its copy goes untested.
	for _, table := range jarvisTables(t, src) {
		if len(tableRows(t, src, table)) == 0 {
			t.Errorf("the seeded source has no rows in %s: add some to seededSource so that its copy is tested", table)
		}
	}
	srcAudit := mustVerify(t, src)
	srcHead := headOf(t, src)

	target := tempDB(t)
	anchor := filepath.Join(t.TempDir(), "target.anchor")
	rep, err := CopyInto(ctx, src, target, CopyOptions{AnchorPath: anchor})
	if err != nil {
		t.Fatalf("CopyInto: %v", err)
	}
	if strings.Contains(rep.Target, "jarvis:jarvis@") || rep.Target == "" {
		t.Errorf("report names the target %q: want it named, without a password", rep.Target)
	}

	dst := openWith(t, target, Options{AnchorPath: anchor, RequireAnchor: true})
	// Every table of the schema was copied, each with every row as it was.
	tables := jarvisTables(t, dst)
	var copied []string
	for _, c := range rep.Tables {
		copied = append(copied, c.Name)
	}
	if !slices.Equal(copied, tables) {
		t.Fatalf("copied tables %v, the target's schema has %v", copied, tables)
	}
	for i, table := range tables {
		want, got := tableRows(t, src, table), tableRows(t, dst, table)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("table %s differs after the copy:\n got %v\nwant %v", table, got, want)
		}
		if rep.Tables[i].Rows != int64(len(want)) {
			t.Errorf("report says %d rows of %s, the source has %d", rep.Tables[i].Rows, table, len(want))
		}
	}

	// The same audit log: verified by CopyInto and here, anchored at its head.
	if !rep.Audit.OK || rep.Audit.Rows != srcAudit.Rows || rep.HeadID != srcHead.LastID || rep.HeadHash != srcHead.Hash {
		t.Fatalf("report %+v, want the source's %d rows up to row %d", rep, srcAudit.Rows, srcHead.LastID)
	}
	if a := anchorAtPath(t, anchor); a.Installation != srcAudit.Installation || a.Checkpoint.Row != srcHead.LastID || a.Checkpoint.Hash != srcHead.Hash {
		t.Errorf("target anchor %+v, want installation %s checkpointed at row %d", a, srcAudit.Installation, srcHead.LastID)
	}
	if v := mustVerify(t, dst); !v.OK || v.Rows != srcAudit.Rows || v.Installation != srcAudit.Installation {
		t.Fatalf("verify on the target = %+v, want the source's %+v", v, srcAudit)
	}

	// Jarvis carries on: the chain, event ids and rule uses continue.
	id, err := dst.AuditBegin(ctx, AuditEntry{Principal: "operator", Tool: "start_vm", Args: `{"vmid":101}`})
	if err != nil || id != srcHead.LastID+1 {
		t.Fatalf("AuditBegin on the copy = %d, %v; want row %d", id, err, srcHead.LastID+1)
	}
	ev := Event{Type: EventSystem, Summary: "after the move"}
	if err := dst.Publish(ctx, &ev); err != nil || ev.ID <= deletedEvent {
		t.Fatalf("Publish on the copy = id %d, %v; want an id past %d, the source's last (deleted) one", ev.ID, err, deletedEvent)
	}
	rules, err := dst.ListRules(ctx, true, time.Now())
	if err != nil || len(rules) != 1 {
		t.Fatalf("ListRules = %v, %v", rules, err)
	}
	use, _, err := dst.ClaimRuleUse(ctx, RuleClaim{Rule: rules[0], Principal: rules[0].Principal, Target: "guest/102", Node: "pve", Now: time.Now(), StaleAfter: time.Nanosecond})
	if err != nil || use <= uint64(len(tableRows(t, src, "rule_uses"))) {
		t.Fatalf("ClaimRuleUse on the copy = %d, %v; want a new id", use, err)
	}
	if v := mustVerify(t, dst); !v.OK || v.Rows != srcAudit.Rows+1 {
		t.Fatalf("verify after an append on the copy = %+v", v)
	}

	// An edit of a copied row is caught on the target as on the source.
	exec(t, dst, "UPDATE audit_log SET plan = 'edited' WHERE id = 2")
	wantBroken(t, dst, 2, "changed after it was written")
}

// anchorAtPath reads the anchor file at path.
func anchorAtPath(t *testing.T, path string) anchorFile {
	t.Helper()
	a, err := readAnchor(path)
	if err != nil {
		t.Fatalf("read anchor %s: %v", path, err)
	}
	return a
}

// TestCopyIntoRefuses: each refusal names what it found, writes nothing to
// the target, and writes no anchor file.
func TestCopyIntoRefuses(t *testing.T) {
	tests := []struct {
		name   string
		pgOnly bool
		// prepare breaks the source, the target or the anchor path.
		prepare func(t *testing.T, src *Store, srcPath, target string, anchor *string)
		is      error
		want    []string
	}{
		{name: "target not empty", is: ErrTargetNotEmpty,
			prepare: func(t *testing.T, _ *Store, _, target string, _ *string) {
				s := openWith(t, target, Options{AnchorPath: filepath.Join(t.TempDir(), "other.anchor")})
				seedCalls(t, s, 1)
				mustClose(t, s)
			},
			want: []string{"audit_log (2 rows)", "audit_genesis (1 rows)", "a Jarvis ran on it", "new, empty database"}},
		{name: "source log edited", is: ErrSourceUnverified,
			prepare: func(t *testing.T, src *Store, _, _ string, _ *string) {
				exec(t, src, "UPDATE audit_log SET result = 'edited' WHERE id = 2")
			},
			want: []string{"Row 2", "changed after it was written", "jarvis audit verify"}},
		{name: "source anchor missing", is: ErrSourceUnverified,
			prepare: func(t *testing.T, _ *Store, srcPath, _ string, _ *string) {
				if err := os.Remove(AnchorPath(srcPath)); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"anchor file", "missing"}},
		{name: "no anchor path",
			prepare: func(_ *testing.T, _ *Store, _, _ string, anchor *string) { *anchor = "" },
			want:    []string{"name the target's audit anchor file", "JARVIS_AUDIT_ANCHOR"}},
		{name: "anchor path taken",
			prepare: func(t *testing.T, _ *Store, _, _ string, anchor *string) {
				if err := os.WriteFile(*anchor, []byte("someone's\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"exists already"}},
		{name: "text PostgreSQL cannot store", pgOnly: true,
			prepare: func(t *testing.T, src *Store, _, _ string, _ *string) {
				exec(t, src, "UPDATE events SET summary = 'a' || char(0) || 'b' WHERE id = 2")
			},
			want: []string{"copy table events", "row id=2, column summary", "NUL byte", "change or delete that row"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pgOnly {
				storetest.SkipOnSQLite(t, "text SQLite keeps and PostgreSQL refuses")
			}
			src, srcPath, _ := seededSource(t)
			target := tempDB(t)
			anchor := filepath.Join(t.TempDir(), "target.anchor")
			tc.prepare(t, src, srcPath, target, &anchor)
			before := targetRows(t, target)
			anchorBefore, _ := os.ReadFile(anchor)

			_, err := CopyInto(context.Background(), src, target, CopyOptions{AnchorPath: anchor})
			if err == nil {
				t.Fatal("CopyInto succeeded, want a refusal")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if after := targetRows(t, target); !reflect.DeepEqual(after, before) {
				t.Errorf("the refused copy changed the target: rows %v, before %v", after, before)
			}
			if anchor != "" {
				if got, _ := os.ReadFile(anchor); string(got) != string(anchorBefore) {
					t.Errorf("the refused copy left the anchor file %q, before %q", got, anchorBefore)
				}
			}
		})
	}
}

// targetRows counts the rows of every table in the database at target
// (nil when there is none yet, as CopyInto leaves a new SQLite file).
func targetRows(t *testing.T, target string) map[string]int64 {
	t.Helper()
	if !IsDatabaseURL(target) {
		if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	var where string
	db, d, _, err := openCopyTarget(target, &where)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	}()
	tables, err := catalogTables(db, d)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, table := range tables {
		var n int64
		if err := db.Raw("SELECT count(*) FROM " + quoteIdent(table)).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	return counts
}

func TestCopyValue(t *testing.T) {
	tests := []struct {
		name    string
		pg      bool
		typ     string
		in, out any
		wantErr string
	}{
		{"nil stays NULL", true, "bigint", nil, nil, ""},
		{"integer", true, "bigint", int64(1 << 62), int64(1 << 62), ""},
		{"boolean from 1", true, "boolean", int64(1), true, ""},
		{"boolean from 0", true, "boolean", int64(0), false, ""},
		{"boolean from 2", true, "boolean", int64(2), nil, "int64"},
		{"boolean declared boolean", true, "boolean", true, true, ""},
		{"text", true, "text", "ünï ✓\n{\"a\":1}", "ünï ✓\n{\"a\":1}", ""},
		{"text kept as a blob", true, "text", []byte("abc"), "abc", ""},
		{"NUL byte", true, "text", "a\x00b", nil, "NUL byte"},
		{"not UTF-8", true, "text", "a\xffb", nil, "not UTF-8"},
		{"text in an integer column", true, "bigint", "12", nil, "string"},
		{"unknown type", true, "jsonb", "{}", nil, "jsonb"},
		{"SQLite keeps what it kept", false, "text", "a\x00b", "a\x00b", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := copyValue(tc.pg, tc.typ, tc.in)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("copyValue = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("copyValue = %v, %v; want an error saying %q", got, err, tc.wantErr)
			case !reflect.DeepEqual(got, tc.out):
				t.Fatalf("copyValue = %#v, want %#v", got, tc.out)
			}
		})
	}
	if h := unstorableHint("audit_log", errUnstorableText); !strings.Contains(h, "hashes cover it") {
		t.Errorf("hint for an audit row: %q", h)
	}
	if h := unstorableHint("events", errUnstorableText); !strings.Contains(h, "change or delete that row") {
		t.Errorf("hint for an event: %q", h)
	}
}

// TestCheckNotInUse: an SQLite file open in any connection, idle or not, is
// in use; closed, it is not, and opens as before; a missing file is an error,
// not created.
func TestCheckNotInUse(t *testing.T) {
	path := tempDBOn(t, storetest.SQLite)
	s := openOnce(t, path)
	seedCalls(t, s, 1)
	if err := CheckNotInUse(path); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
		t.Fatalf("CheckNotInUse of an open database = %v, want ErrInUse naming it", err)
	}
	mustClose(t, s)
	if err := CheckNotInUse(path); err != nil {
		t.Fatalf("CheckNotInUse of a closed database = %v", err)
	}
	s = openWith(t, path, Options{})
	if v := mustVerify(t, s); !v.OK || v.Rows != 2 {
		t.Fatalf("verify after the check = %+v", v)
	}

	missing := filepath.Join(t.TempDir(), "missing.db")
	if err := CheckNotInUse(missing); err == nil || errors.Is(err, ErrInUse) {
		t.Fatalf("CheckNotInUse of a missing file = %v, want an error", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CheckNotInUse created %s", missing)
	}
}

// BenchmarkCopyInto copies a source of 10,000 audit rows (5,000 calls) and
// as many events to a new database on each engine.
func BenchmarkCopyInto(b *testing.B) {
	ctx := context.Background()
	path := tempDBOn(b, storetest.SQLite)
	src := openAt(b, path, testKey)
	const rows = 10000
	for done := 0; done < rows; done += 500 {
		err := src.auditTx(ctx, func(tx *gorm.DB) error {
			recs := make([]*auditRecord, 0, 500)
			for i := done; i < done+500; i += 2 {
				args := fmt.Sprintf(`{"vmid":%d}`, 100+i)
				recs = append(recs, &auditRecord{Kind: "read", Principal: "agent:ci", Tool: "get_vm", Args: args, Tier: "GREEN", Decision: "allow", Status: OutcomeOK},
					&auditRecord{Kind: "read", Principal: "agent:ci", Tool: "get_vm", Args: args, Tier: "GREEN", Decision: "allow", Status: OutcomeOK, Result: "running"})
			}
			return src.appendAuditRows(tx, recs)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < rows/100; i++ {
		if err := src.Publish(ctx, &Event{Type: EventTool, Summary: fmt.Sprintf("call %d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, engine := range storetest.Engines() {
		b.Run(engine, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				target := tempDBOn(b, engine)
				anchor := filepath.Join(b.TempDir(), "target.anchor")
				b.StartTimer()
				rep, err := CopyInto(ctx, src, target, CopyOptions{AnchorPath: anchor})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Audit.Rows != rows {
					b.Fatalf("copied %d audit rows, want %d", rep.Audit.Rows, rows)
				}
			}
		})
	}
}
