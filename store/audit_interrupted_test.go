package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A call's age is judged by the clock its row took (the database's on
// PostgreSQL, shared by every replica), never by the clock of the process
// that judges: a replica whose clock runs minutes ahead must not close the
// young calls of the others, nor its own.
func TestInterruptedByTheRowsClock(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	// This process's clock runs 7 minutes ahead. On SQLite (one host) the
	// rows take it too; on PostgreSQL they take the database's.
	s.now = func() time.Time { return time.Now().Add(7 * time.Minute) }
	id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "stop_vm", Args: `{"vmid":101}`, Tier: "RED", Decision: "approved"})
	if err != nil {
		t.Fatal(err)
	}
	marked, err := s.MarkInterrupted(ctx, 6*time.Minute)
	if err != nil || len(marked) != 0 {
		t.Fatalf("a call begun just now, judged with a clock 7 minutes ahead: marked %+v, %v", marked, err)
	}
	if marked, err := s.MarkInterrupted(ctx, -time.Second); err != nil || len(marked) != 1 || marked[0].ID != id {
		t.Fatalf("every call begun until a second from now: marked %+v, %v", marked, err)
	}
}

// A replica that starts again under its id closes the calls its earlier run
// left listed as running (the other replicas leave them: the id's
// heartbeats go on), and only those.
func TestCallsOfAnEarlierRun(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	begin := func(s *Store, vmid int) uint64 {
		t.Helper()
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "stop_vm", Args: fmt.Sprintf(`{"vmid":%d}`, vmid), Tier: "RED", Decision: "approved"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	earlier := openWith(t, target, Options{Replica: "a"})
	left := begin(earlier, 101) // then the process dies
	other := openWith(t, target, Options{Replica: "b"})
	othersCall := begin(other, 102)

	again := openWith(t, target, Options{Replica: "a"})
	marked, err := again.MarkCallsOfEarlierRun(ctx)
	if err != nil || len(marked) != 1 || marked[0].ID != left {
		t.Fatalf("MarkCallsOfEarlierRun = %+v, %v; want call %d alone", marked, err, left)
	}
	if rows, _ := again.AuditRecent(ctx, 1); rows[0].Status != OutcomeInterrupted || !strings.Contains(rows[0].Error, "replica a stopped before the call finished, and started again") {
		t.Errorf("end row %+v", rows[0])
	}
	var listed []uint64
	if err := again.db.Raw("SELECT audit_id FROM running_calls ORDER BY audit_id").Scan(&listed).Error; err != nil || len(listed) != 1 || listed[0] != othersCall {
		t.Errorf("running calls after: %v (%v), want b's %d", listed, err, othersCall)
	}
	if marked, err := openWith(t, target, Options{}).MarkCallsOfEarlierRun(ctx); err != nil || len(marked) != 0 {
		t.Errorf("a store that is no replica marked %+v, %v", marked, err)
	}
}

// Age and silence together: a call old enough and a silent replica's call
// are both closed in one sweep.
func TestInterruptedByAgeAndSilenceAtOnce(t *testing.T) {
	ctx := context.Background()
	target := tempDB(t)
	plain := openWith(t, target, Options{})
	silent := openWith(t, target, Options{Replica: "c"})
	judge := openWith(t, target, Options{Replica: "b"})
	if err := silent.Heartbeat(ctx, Replica{}); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, s := range []*Store{plain, silent} {
		id, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:ci", Tool: "stop_vm", Args: `{"vmid":101}`, Tier: "RED", Decision: "approved"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	time.Sleep(300 * time.Millisecond)
	marked, err := judge.MarkInterruptedCalls(ctx, -time.Second, 200*time.Millisecond)
	if err != nil || len(marked) != 2 || marked[0].ID != want[0] || marked[1].ID != want[1] {
		t.Fatalf("marked %+v, %v; want %v", marked, err, want)
	}
}
