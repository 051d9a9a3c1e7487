package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// holdLock takes lock k on the database at target in a transaction of a
// session of its own, as a replica paused mid-transaction would, and leaves
// it idle. The server ends the session once it has been idle for idle; the
// returned func ends it sooner, releasing the lock.
func holdLock(t *testing.T, target string, k lockKey, idle time.Duration) (conn *pgx.Conn, release func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(target)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = pgDuration(idle)
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", jarvisLockClass, int32(k)); err != nil {
		t.Fatal(err)
	}
	return conn, func() { _, _ = conn.Exec(ctx, "COMMIT") }
}

// A replica that stops mid-transaction while holding a lock (paused, cut
// off) stops the others only for a while: a wait for its lock gives up with
// ErrLockTimeout, naming the lock, and once its transaction has sat idle
// long enough the server ends it and the lock is free again.
func TestWaitOnAStoppedHolderIsBounded(t *testing.T) {
	storetest.SkipOnSQLite(t, "lock_timeout and idle_in_transaction_session_timeout")
	const lockWait, holderIdle = 500 * time.Millisecond, 2 * time.Second
	tests := []struct {
		name string
		lock lockKey
		// do is one write that needs the lock.
		do func(ctx context.Context, s *Store) error
	}{
		{"audit begin", lockAudit, func(ctx context.Context, s *Store) error {
			_, err := s.AuditBegin(ctx, AuditEntry{Principal: "agent:x", Tool: "stop_vm"})
			return err
		}},
		{"read", lockAudit, func(ctx context.Context, s *Store) error {
			_, err := s.AuditRead(ctx, AuditEntry{Principal: "agent:x", Tool: "get_vms"}, AuditOutcome{Status: OutcomeOK}, nil)
			return err
		}},
		{"publish", lockEvents, func(ctx context.Context, s *Store) error {
			return s.Publish(ctx, &Event{Type: EventSystem, Summary: "hello"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // a database each: advisory locks are per database
			ctx := context.Background()
			_, target := openTemp(t)
			s := openAt(t, withParam(t, target, "lock_timeout", pgDuration(lockWait)), testKey)
			holder, _ := holdLock(t, target, tt.lock, holderIdle)
			held := time.Now()

			start := time.Now()
			err := tt.do(ctx, s)
			t.Logf("while held: %v after %s", err, time.Since(start).Round(time.Millisecond))
			if !errors.Is(err, ErrLockTimeout) || !strings.Contains(err.Error(), "the "+tt.lock.String()+" lock") {
				t.Fatalf("while another session holds the %s lock: %v; want ErrLockTimeout naming it", tt.lock, err)
			}

			// The holder's session is ended after holderIdle; the lock with it.
			for {
				err = tt.do(ctx, s)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrLockTimeout) || time.Since(held) > holderIdle+20*time.Second {
					t.Fatalf("after the holder sat idle: %v", err)
				}
			}
			t.Logf("free again %s after the holder took it (its idle limit %s)", time.Since(held).Round(time.Millisecond), holderIdle)
			if _, err := holder.Exec(ctx, "SELECT 1"); err == nil {
				t.Error("the holder's session still works after its idle limit")
			}
			if rep := mustVerify(t, s); !rep.OK {
				t.Errorf("AuditVerify = %+v, want OK", rep)
			}
		})
	}
}

// Open waits for the migrate lock longer than for the others: another
// replica may hold it for as long as a migration takes.
func TestOpenWaitsOutAMigration(t *testing.T) {
	storetest.SkipOnSQLite(t, "lock_timeout")
	const lockWait, migration = 300 * time.Millisecond, time.Second
	_, target := openTemp(t)
	_, release := holdLock(t, target, lockMigrate, time.Minute)
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(migration)
		release()
	}()
	start := time.Now()
	s := openAt(t, withParam(t, target, "lock_timeout", pgDuration(lockWait)), testKey)
	<-released // the holder's connection is this goroutine's again
	t.Logf("Open waited %s for a migration of %s", time.Since(start).Round(time.Millisecond), migration)
	if time.Since(start) < migration {
		t.Errorf("Open took %s, before the migration ended", time.Since(start))
	}
	var got string
	if err := s.db.Raw("SHOW lock_timeout").Scan(&got).Error; err != nil || got != "300ms" {
		t.Errorf("lock_timeout after Open = %q, %v; want the URL's 300ms", got, err)
	}
}

// A role that may not create tables where it connects is told what to grant.
func TestOpenWithoutTheRightToCreateTables(t *testing.T) {
	storetest.SkipOnSQLite(t, "roles and privileges")
	target := tempDB(t)
	// information_schema stands for a schema the role may not create in.
	_, err := openStore(withParam(t, target, "search_path", "information_schema"), Options{AuditKey: testKey})
	if err == nil || !strings.Contains(err.Error(), "GRANT CREATE ON SCHEMA public") || !strings.Contains(err.Error(), "OWNER") {
		t.Fatalf("Open as a role that may not create tables: %v", err)
	}
}
