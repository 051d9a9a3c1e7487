package store

import (
	"context"
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
