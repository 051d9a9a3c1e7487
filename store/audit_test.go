package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// seedCalls writes n complete calls (a begin and an end row each).
func seedCalls(t testing.TB, s *Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "start_vm", Args: fmt.Sprintf(`{"vmid":%d}`, 100+i), Tier: "YELLOW", Decision: "allow"})
		if err != nil {
			t.Fatalf("AuditBegin: %v", err)
		}
		if err := s.AuditEnd(ctx, id, AuditOutcome{Status: "ok", UPID: "UPID:pve:1", Duration: 1500 * time.Millisecond, Result: "started"}); err != nil {
			t.Fatalf("AuditEnd: %v", err)
		}
	}
}

func mustVerify(t *testing.T, s *Store) VerifyReport {
	t.Helper()
	rep, err := s.AuditVerify(context.Background())
	if err != nil {
		t.Fatalf("AuditVerify: %v", err)
	}
	return rep
}

func TestAuditBeginEnd(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 0 {
		t.Fatalf("empty log verifies as %+v, want OK with 0 rows", rep)
	}

	entry := AuditEntry{Principal: "operator", Tool: "stop_vm", Args: `{"vmid":101}`, Tier: "RED", Decision: "approved", Plan: "Hard stop of VM 101", ApprovalID: "apr_00"}
	beginID, err := s.AuditBegin(ctx, entry)
	if err != nil {
		t.Fatal(err)
	}
	if beginID != 1 {
		t.Errorf("first begin id = %d, want 1", beginID)
	}
	// Committed before returning: another handle sees it.
	rows, err := s.AuditRecent(ctx, 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("AuditRecent after begin = %v, %v", rows, err)
	}
	long := strings.Repeat("é", 1000) // 2000 bytes
	if err := s.AuditEnd(ctx, beginID, AuditOutcome{Status: "error", Error: "VM is locked", UPID: "UPID:x", Duration: 2500 * time.Millisecond, Result: long}); err != nil {
		t.Fatal(err)
	}

	rows, err = s.AuditRecent(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("AuditRecent = %d rows, want 2", len(rows))
	}
	end, begin := rows[0], rows[1] // newest first
	if begin.Kind != "begin" || begin.Principal != entry.Principal || begin.Tool != entry.Tool || begin.Args != entry.Args ||
		begin.Tier != "RED" || begin.Decision != "approved" || begin.Plan != entry.Plan || begin.ApprovalID != "apr_00" ||
		begin.PrevHash != "" || len(begin.Hash) != 64 || len(begin.MAC) != 64 {
		t.Errorf("begin row = %+v", begin)
	}
	if end.Kind != "end" || end.BeginID != beginID || end.ID != 2 || end.Status != "error" || end.Error != "VM is locked" ||
		end.UPID != "UPID:x" || end.DurationMS != 2500 || end.Tool != "stop_vm" || end.Principal != "operator" ||
		end.PrevHash != begin.Hash || end.Time.Location() != time.UTC {
		t.Errorf("end row = %+v", end)
	}
	if len(end.Result) > maxAuditResult || !utf8.ValidString(end.Result) || !strings.HasPrefix(long, end.Result) {
		t.Errorf("result not cut to %d bytes of valid UTF-8: %d bytes", maxAuditResult, len(end.Result))
	}
	if rows, _ := s.AuditRecent(ctx, 1); len(rows) != 1 || rows[0].ID != 2 {
		t.Errorf("AuditRecent(1) = %v, want only row 2", rows)
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 2 {
		t.Errorf("AuditVerify = %+v, want OK with 2 rows", rep)
	}
}

// A read is one row, in the same chain as begin and end rows: it verifies,
// and editing it is caught like editing any other row.
func TestAuditReadIsOneChainedRow(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	begin, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:a", Tool: "stop_vm", Args: `{"vmid":101}`, Tier: "RED", Decision: "approved"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.AuditRead(ctx, AuditEntry{Principal: "agent:b", Tool: "get_vms", Args: `{}`, Tier: "GREEN", Decision: "allow", Plan: "List VMs"},
		AuditOutcome{Status: OutcomeFailed, Error: "cluster unreachable", Duration: 1500 * time.Millisecond}, nil)
	if err != nil || id != begin+1 {
		t.Fatalf("AuditRead = %d, %v; want row %d", id, err, begin+1)
	}
	if err := s.AuditEnd(ctx, begin, AuditOutcome{Status: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	rows, _ := s.AuditRecent(ctx, 0)
	read := rows[1]
	if read.Kind != "read" || read.Tool != "get_vms" || read.Principal != "agent:b" || read.Plan != "List VMs" ||
		read.Status != OutcomeFailed || read.Error != "cluster unreachable" || read.DurationMS != 1500 || read.BeginID != 0 {
		t.Errorf("read row = %+v", read)
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 3 {
		t.Fatalf("AuditVerify = %+v, want OK with 3 rows", rep)
	}
	if err := s.db.Exec("UPDATE audit_log SET principal = 'agent:c' WHERE id = ?", id).Error; err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, s); rep.OK {
		t.Fatal("an edited read row verified")
	}
	for _, bad := range []struct {
		e AuditEntry
		o AuditOutcome
	}{
		{AuditEntry{Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}},
		{AuditEntry{Principal: "agent:b", Tool: "get_vms"}, AuditOutcome{Status: "fine"}},
	} {
		if _, err := s.AuditRead(ctx, bad.e, bad.o, nil); err == nil {
			t.Errorf("AuditRead(%+v, %+v) was accepted", bad.e, bad.o)
		}
	}
}

func TestAuditRejects(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	seedCalls(t, s, 1) // rows 1 (begin) and 2 (end)
	open, err := s.AuditBegin(ctx, AuditEntry{Principal: "p", Tool: "t"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
		is   error
		want string
	}{
		{"begin without principal", func() error { _, err := s.AuditBegin(ctx, AuditEntry{Tool: "t"}); return err }, nil, "required"},
		{"begin without tool", func() error { _, err := s.AuditBegin(ctx, AuditEntry{Principal: "p"}); return err }, nil, "required"},
		{"end of unknown call", func() error { return s.AuditEnd(ctx, 99, AuditOutcome{Status: "ok"}) }, ErrNotFound, "no begin row"},
		{"end of an end row", func() error { return s.AuditEnd(ctx, 2, AuditOutcome{Status: "ok"}) }, ErrNotFound, "no begin row"},
		{"second end", func() error { return s.AuditEnd(ctx, 1, AuditOutcome{Status: "ok"}) }, ErrAlreadyEnded, "already"},
		{"unknown status", func() error { return s.AuditEnd(ctx, open, AuditOutcome{Status: "fine"}) }, nil, "unknown status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 3 {
		t.Errorf("after refused writes AuditVerify = %+v, want OK with 3 rows", rep)
	}
}

// TestAuditVerifyDetectsTampering edits a six-row log (three calls) the way
// someone with write access to the file but without the key could.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	otherKey := bytes.Repeat([]byte{0x17}, 32)
	forger := &Store{auditKey: otherKey}

	// forge appends a row after the tip, chained and hashed correctly but
	// sealed with the wrong key, and points the head at it.
	forge := func(t *testing.T, s *Store) {
		var tip auditRecord
		if err := s.db.Order("id DESC").Take(&tip).Error; err != nil {
			t.Fatal(err)
		}
		rec := auditRecord{ID: tip.ID + 1, TimeNS: time.Now().UnixNano(), Kind: "begin", Principal: "operator", Tool: "delete_vm", PrevHash: tip.Hash}
		rec.Hash = rowHash(rec)
		rec.MAC = forger.rowMAC(rec.Hash)
		if err := s.db.Create(&rec).Error; err != nil {
			t.Fatal(err)
		}
		exec(t, s, "UPDATE audit_head SET last_id = ?, hash = ?, mac = ?", rec.ID, rec.Hash, forger.headMAC(rec.ID, rec.Hash))
	}

	tests := []struct {
		name       string
		tamper     func(t *testing.T, s *Store)
		verifyKey  []byte
		wantOK     bool
		wantBadID  uint64
		wantInText string
	}{
		{name: "untouched", tamper: func(*testing.T, *Store) {}, wantOK: true},
		{name: "field edited", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "UPDATE audit_log SET args = ? WHERE id = 3", `{"vmid":666}`)
		}, wantBadID: 3, wantInText: "changed after it was written"},
		{name: "field edited and hash recomputed", tamper: func(t *testing.T, s *Store) {
			var r auditRecord
			s.db.Where("id = 3").Take(&r)
			r.Principal = "someone-else"
			exec(t, s, "UPDATE audit_log SET principal = ?, hash = ? WHERE id = 3", r.Principal, rowHash(r))
		}, wantBadID: 3, wantInText: "audit key"},
		{name: "time edited", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "UPDATE audit_log SET time_ns = time_ns + 1 WHERE id = 4")
		}, wantBadID: 4, wantInText: "changed after"},
		{name: "middle row deleted", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id = 3")
		}, wantBadID: 3, wantInText: "Row 3 is missing"},
		{name: "first row deleted", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id = 1")
		}, wantBadID: 1, wantInText: "Row 1 is missing"},
		{name: "middle rows deleted and renumbered", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id IN (3, 4)")
			exec(t, s, "UPDATE audit_log SET id = id - 2 WHERE id > 4")
		}, wantBadID: 3, wantInText: "does not link to row 2"},
		{name: "last row deleted", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id = 6")
		}, wantBadID: 6, wantInText: "from the end"},
		{name: "last two rows deleted", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id >= 5")
		}, wantBadID: 5, wantInText: "Rows 5 to 6 are missing"},
		{name: "every row deleted", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log")
		}, wantBadID: 1, wantInText: "Rows 1 to 6 are missing"},
		{name: "last row deleted and head moved back", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id = 6")
			exec(t, s, "UPDATE audit_head SET last_id = 5, hash = (SELECT hash FROM audit_log WHERE id = 5)")
		}, wantBadID: 0, wantInText: "head record was changed"},
		{name: "head deleted", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_head")
		}, wantBadID: 0, wantInText: "head record is missing"},
		{name: "last row deleted then a new call", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "DELETE FROM audit_log WHERE id = 6")
			seedCalls(t, s, 1) // rows 7 and 8 chain on from the head
		}, wantBadID: 6, wantInText: "row 7 follows row 5"},
		{name: "two rows swapped", tamper: func(t *testing.T, s *Store) { // contents of 2 and 3 trade places
			exec(t, s, "UPDATE audit_log SET id = 100 WHERE id = 2")
			exec(t, s, "UPDATE audit_log SET id = 2 WHERE id = 3")
			exec(t, s, "UPDATE audit_log SET id = 3 WHERE id = 100")
		}, wantBadID: 2, wantInText: "does not link to row 1"},
		{name: "forged row appended without the key", tamper: forge, wantBadID: 7, wantInText: "not sealed with this server's audit key"},
		{name: "verified with another key", tamper: func(*testing.T, *Store) {}, verifyKey: otherKey, wantBadID: 0, wantInText: "JWT_SECRET is not the secret this database was created with"},
		{name: "genesis forged", tamper: func(t *testing.T, s *Store) {
			exec(t, s, "UPDATE audit_genesis SET installation = 'forged'")
		}, wantBadID: 0, wantInText: "the genesis record was forged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openTemp(t)
			seedCalls(t, s, 3)
			tt.tamper(t, s)
			verifier := s
			if tt.verifyKey != nil {
				verifier = openAt(t, path, tt.verifyKey)
			}
			rep := mustVerify(t, verifier)
			if rep.OK != tt.wantOK || rep.FirstBadID != tt.wantBadID || !strings.Contains(rep.Problem, tt.wantInText) {
				t.Errorf("AuditVerify = %+v\nwant OK=%v FirstBadID=%d and a problem mentioning %q", rep, tt.wantOK, tt.wantBadID, tt.wantInText)
			}
			if !tt.wantOK && rep.Problem == "" {
				t.Error("a failed verification gave no problem sentence")
			}
		})
	}
}

func exec(t *testing.T, s *Store, sql string, args ...any) {
	t.Helper()
	if err := s.db.Exec(sql, args...).Error; err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestAuditConcurrentWriters appends from 8 goroutines through two handles
// on the same file, as serve and approve would.
func TestAuditConcurrentWriters(t *testing.T) {
	s, path := openTemp(t)
	other := openAt(t, path, testKey)
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
			for i := 0; i < calls; i++ {
				id, err := h.AuditBegin(context.Background(), AuditEntry{Principal: fmt.Sprintf("w%d", w), Tool: "list_vms"})
				if err != nil {
					t.Errorf("AuditBegin: %v", err)
					return
				}
				if err := h.AuditEnd(context.Background(), id, AuditOutcome{Status: "ok"}); err != nil {
					t.Errorf("AuditEnd: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != writers*calls*2 {
		t.Errorf("AuditVerify = %+v, want OK with %d rows", rep, writers*calls*2)
	}
}

func TestMarkInterrupted(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	seedCalls(t, s, 1)
	var open []uint64
	for _, tool := range []string{"stop_vm", "reboot_node", "list_nodes"} {
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent", Tool: tool, Args: "{}"})
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, id)
	}
	if err := s.AuditEnd(ctx, open[2], AuditOutcome{Status: "ok"}); err != nil {
		t.Fatal(err)
	}

	if young, err := s.MarkInterrupted(ctx, time.Hour); err != nil || len(young) != 0 {
		t.Fatalf("calls begun within the hour were marked: %v %v", young, err)
	}
	got, err := s.MarkInterrupted(ctx, -time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != open[0] || got[1].ID != open[1] || got[0].Tool != "stop_vm" || got[0].Kind != "begin" {
		t.Fatalf("MarkInterrupted returned %+v, want the begin rows %v", got, open[:2])
	}
	rows, _ := s.AuditRecent(ctx, 2)
	for _, r := range rows {
		if r.Kind != "end" || r.Status != "interrupted" || (r.BeginID != open[0] && r.BeginID != open[1]) {
			t.Errorf("end row %+v, want an interrupted end for %v", r, open[:2])
		}
	}
	if again, err := s.MarkInterrupted(ctx, -time.Second); err != nil || len(again) != 0 {
		t.Errorf("second MarkInterrupted = %v, %v; want nothing", again, err)
	}
	if err := s.AuditEnd(ctx, open[0], AuditOutcome{Status: "ok"}); !errors.Is(err, ErrAlreadyEnded) {
		t.Errorf("late AuditEnd of an interrupted call = %v, want ErrAlreadyEnded", err)
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != 8 {
		t.Errorf("AuditVerify = %+v, want OK with 8 rows", rep)
	}
}

func TestCanonicalEncodingSeparatesFields(t *testing.T) {
	// Without length prefixes these pairs would encode alike.
	pairs := [][2][]string{
		{{"ab", "c"}, {"a", "bc"}},
		{{"", "x"}, {"x", ""}},
		{{"a"}, {"a", ""}},
	}
	for _, p := range pairs {
		if bytes.Equal(canonical(p[0]...), canonical(p[1]...)) {
			t.Errorf("canonical(%q) == canonical(%q)", p[0], p[1])
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},             // é is two bytes: drop the half
		{"a€b", 3, "a"},            // € is three bytes
		{"😀😀", 7, "😀"},             // four-byte runes
		{"\ufffdxyz", 3, "\ufffd"}, // a real U+FFFD is kept
	}
	for _, tt := range tests {
		if got := truncateUTF8(tt.in, tt.max); got != tt.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func BenchmarkAuditBeginEnd(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, _ string) {
		ctx := context.Background()
		entry := AuditEntry{Principal: "agent:ci", Tool: "start_vm", Args: `{"node":"pve","vmid":101}`, Tier: "YELLOW", Decision: "allow"}
		for b.Loop() {
			id, err := s.AuditBegin(ctx, entry)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.AuditEnd(ctx, id, AuditOutcome{Status: "ok", Duration: time.Second}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Changing calls through two handles at once, as two processes or replicas
// make them: they take turns on the audit lock.
func BenchmarkAuditBeginEndTwoHandles(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, target string) {
		handles := []*Store{s, openAt(b, target, testKey)}
		var next atomic.Int64
		ctx := context.Background()
		entry := AuditEntry{Principal: "agent:ci", Tool: "start_vm", Args: `{"node":"pve","vmid":101}`, Tier: "YELLOW", Decision: "allow"}
		b.SetParallelism(2) // 4 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			h := handles[next.Add(1)%2]
			for pb.Next() {
				id, err := h.AuditBegin(ctx, entry)
				if err != nil {
					b.Fatal(err)
				}
				if err := h.AuditEnd(ctx, id, AuditOutcome{Status: "ok", Duration: time.Second}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// A changed server secret is named as such, and the log takes no rows under the
// new key; a forged genesis record is not mistaken for a changed secret.
func TestAuditWritableNamesAChangedKey(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	seedCalls(t, s, 2)
	if err := s.AuditWritable(ctx); err != nil {
		t.Fatalf("own key: %v", err)
	}
	other := openAt(t, path, bytes.Repeat([]byte{0x24}, 32))
	if err := other.AuditWritable(ctx); !errors.Is(err, ErrAuditKeyChanged) {
		t.Fatalf("another key: err = %v, want ErrAuditKeyChanged", err)
	}
	exec(t, s, "UPDATE audit_genesis SET installation = 'forged'")
	err := s.AuditWritable(ctx)
	if err == nil || errors.Is(err, ErrAuditKeyChanged) || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("forged genesis: err = %v", err)
	}
}

func BenchmarkAuditRead(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, _ string) {
		ctx := context.Background()
		entry := AuditEntry{Principal: "agent:ci", Tool: "get_vms", Args: `{}`, Tier: "GREEN", Decision: "allow"}
		for b.Loop() {
			if _, err := s.AuditRead(ctx, entry, AuditOutcome{Status: OutcomeOK, Duration: time.Millisecond}, &Event{Type: EventTool, Source: "dispatch", Summary: "agent:ci get_vms ended (ok, 1ms)"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// 50 reads at once, as the HTTP benchmark's clients make them: the store's
// ceiling with group commit.
func BenchmarkAuditReadParallel(b *testing.B) {
	onEachEngine(b, func(b *testing.B, s *Store, _ string) {
		ctx := context.Background()
		entry := AuditEntry{Principal: "agent:ci", Tool: "get_vms", Args: `{}`, Tier: "GREEN", Decision: "allow"}
		b.SetParallelism(25) // 50 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.AuditRead(ctx, entry, AuditOutcome{Status: OutcomeOK, Duration: time.Millisecond}, &Event{Type: EventTool, Source: "dispatch", Summary: "agent:ci get_vms ended (ok, 1ms)"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// A read's event is stored with its audit row and delivered like a published
// one: with reads and other events written at once, every subscriber gets
// every event once, in ID order.
func TestAuditReadEventsKeepTheFeedInOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	sub := s.Subscribe(1000)
	defer sub.Close()
	const writers, each = 6, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev := &Event{Type: EventTool, Source: "test", Summary: fmt.Sprintf("w%d e%d", w, i)}
				var err error
				if w%2 == 0 {
					_, err = s.AuditRead(ctx, AuditEntry{Principal: "agent:a", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, ev)
				} else {
					err = s.Publish(ctx, ev)
				}
				if err != nil || ev.ID == 0 {
					t.Errorf("writer %d: %v (id %d)", w, err, ev.ID)
				}
			}
		})
	}
	wg.Wait()
	var last uint64
	seen := map[string]bool{}
	for len(seen) < writers*each {
		ev := waitFor(t, sub.C(), "event")
		if ev.ID <= last {
			t.Fatalf("event %d after %d", ev.ID, last)
		}
		last = ev.ID
		if ev.Type == EventTool { // the checkpoints announce themselves too
			if seen[ev.Summary] {
				t.Fatalf("%q delivered twice", ev.Summary)
			}
			seen[ev.Summary] = true
		}
	}
	for {
		select {
		case ev := <-sub.C():
			if ev.Type == EventTool || ev.ID <= last {
				t.Fatalf("an extra event: %d %s", ev.ID, ev.Summary)
			}
			continue
		default:
		}
		break
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows != writers/2*each {
		t.Fatalf("audit after the reads: %+v", rep)
	}
}

// Reads committed in groups keep the promise: every read a caller was told is
// recorded is in the log after Close, even with reads arriving during Close,
// and a read after Close is refused rather than lost.
func TestGroupCommittedReadsSurviveClose(t *testing.T) {
	ctx := context.Background()
	path := tempDB(t)
	s := openOnce(t, path)
	var mu sync.Mutex
	recorded := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id, err := s.AuditRead(ctx, AuditEntry{Principal: fmt.Sprintf("agent:%d", w), Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK},
					&Event{Type: EventTool, Source: "test", Summary: fmt.Sprintf("w%d e%d", w, i)})
				if err != nil {
					return // closed
				}
				mu.Lock()
				recorded[id] = true
				mu.Unlock()
			}
		})
	}
	for {
		mu.Lock()
		n := len(recorded)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mustClose(t, s)
	wg.Wait()
	if _, err := s.AuditRead(ctx, AuditEntry{Principal: "agent:late", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, nil); err == nil {
		t.Fatal("a read after Close was accepted")
	}

	s = openOnce(t, path)
	defer mustClose(t, s)
	rows, err := s.AuditRecent(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, r := range rows {
		have[r.ID] = true
	}
	for id := range recorded {
		if !have[id] {
			t.Errorf("row %d was reported recorded but is not in the log", id)
		}
	}
	if rep := mustVerify(t, s); !rep.OK || rep.Rows < len(recorded) {
		t.Fatalf("after Close: %+v, %d reads recorded", rep, len(recorded))
	}
}

// A read whose caller stopped waiting is not written as if it had been
// answered: the caller withheld the answer.
func TestAuditReadNotWrittenForACallerThatGaveUp(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AuditRead(ctx, AuditEntry{Principal: "agent:a", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, nil); err == nil {
		t.Fatal("a read with its caller gone was reported recorded")
	}
	s.reads.stop() // whatever was queued is settled now
	if rows, err := s.AuditRecent(context.Background(), 10); err != nil || len(rows) != 0 {
		t.Fatalf("rows after a read nobody waited for: %+v %v", rows, err)
	}
}

// Rows take the database's clock on PostgreSQL, read under the audit lock,
// so their times follow their ids across hosts; on SQLite, the process's.
func TestAuditRowTimes(t *testing.T) {
	s, _ := openTemp(t)
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	s.now = func() time.Time { return past }
	if _, err := s.AuditBegin(context.Background(), AuditEntry{Principal: "p", Tool: "t"}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.AuditRecent(context.Background(), 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("AuditRecent = %v, %v", rows, err)
	}
	got := rows[0].Time
	if s.Engine() == storetest.Postgres {
		if d := time.Since(got); d < -time.Minute || d > time.Minute {
			t.Errorf("row time %v, want the database's clock, about now", got)
		}
	} else if !got.Equal(past) {
		t.Errorf("row time %v, want the process's clock %v", got, past)
	}
}
