package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Several Jarvis replicas may share one database. Work that must run on one
// of them at a time (the cluster watcher, the notifier) runs under a lease:
// a row naming its holder until it expires. The holder renews it well
// before; another replica takes it once it expired. Each replica also sends
// heartbeats to the replicas table, which says who is alive, what each one
// needs watched, and whose running calls died with it (audit_interrupted.go).
//
// Times that replicas compare are read from the database's clock on
// PostgreSQL, as replicas may run on several hosts, and from the process's
// clock on SQLite, one host (clockNS).

// leaseRecord is one lease. Epoch grows by one each time the lease passes to
// another holder, so work done under it can say which tenure it was.
type leaseRecord struct {
	Name      string `gorm:"primaryKey"`
	Holder    string `gorm:"not null"`
	Epoch     int64  `gorm:"not null"`
	ExpiresNS int64  `gorm:"not null"`
}

func (leaseRecord) TableName() string { return "leases" }

// replicaRecord is one replica's last heartbeat.
type replicaRecord struct {
	ID          string `gorm:"primaryKey"`
	Addr        string `gorm:"not null;default:''"`
	StartedNS   int64  `gorm:"not null"`
	HeartbeatNS int64  `gorm:"not null"`
	Listeners   int    `gorm:"not null;default:0"`
	Unattended  bool   `gorm:"not null;default:false"`
}

func (replicaRecord) TableName() string { return "replicas" }

// runningCallRecord is a call a replica began and has not ended.
type runningCallRecord struct {
	AuditID uint64 `gorm:"primaryKey;autoIncrement:false"`
	Replica string `gorm:"not null"`
}

func (runningCallRecord) TableName() string { return "running_calls" }

// migrateReplicas is version 3: leases, replicas and running calls.
func migrateReplicas(m migrator) error {
	return m.exec(
		`CREATE TABLE leases (
			name text PRIMARY KEY,
			holder text NOT NULL,
			epoch bigint NOT NULL,
			expires_ns bigint NOT NULL)`,
		`CREATE TABLE replicas (
			id text PRIMARY KEY,
			addr text NOT NULL DEFAULT '',
			started_ns bigint NOT NULL,
			heartbeat_ns bigint NOT NULL,
			listeners bigint NOT NULL DEFAULT 0,
			unattended boolean NOT NULL DEFAULT false)`,
		`CREATE TABLE running_calls (
			audit_id bigint PRIMARY KEY,
			replica text NOT NULL)`,
	)
}

// clockNS is an SQL expression for now in Unix nanoseconds, for times that
// processes compare with each other: the database's clock on PostgreSQL,
// this process's (a literal) on SQLite.
func (s *Store) clockNS() string {
	if s.dbClock {
		return s.d.nowNS()
	}
	return strconv.FormatInt(s.now().UnixNano(), 10)
}

// takeLeaseSQL takes or renews a lease in one statement: inserted when new;
// else taken over when it expired (epoch + 1), renewed when holder holds it
// already (same epoch), and left alone otherwise, which returns no row. NOW
// is clockNS. Among takers at once exactly one gets it: the row is locked
// (PostgreSQL) or the database is (SQLite) while the condition is checked.
const takeLeaseSQL = `INSERT INTO leases (name, holder, epoch, expires_ns) VALUES (?, ?, 1, NOW + ?)
	ON CONFLICT (name) DO UPDATE SET
		epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END,
		holder = excluded.holder, expires_ns = excluded.expires_ns
	WHERE leases.holder = excluded.holder OR leases.expires_ns <= NOW
	RETURNING epoch`

// TakeLease takes lease name for holder until ttl from now, or renews it
// when holder holds it already. held says whether holder holds it now; if
// so, epoch is its tenure: the same across renewals, larger after the lease
// was anyone else's. Renew well within ttl (a third of it), and stop the
// work the lease guards when a renewal has not succeeded for nearly ttl:
// another replica may hold it by then.
func (s *Store) TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (epoch int64, held bool, err error) {
	if name == "" || holder == "" || ttl <= 0 {
		return 0, false, fmt.Errorf("take lease %q for %q: name, holder and a positive ttl are required", name, holder)
	}
	var epochs []int64
	q := strings.ReplaceAll(takeLeaseSQL, "NOW", s.clockNS())
	if err := s.db.WithContext(ctx).Raw(q, name, holder, ttl.Nanoseconds()).Scan(&epochs).Error; err != nil {
		return 0, false, fmt.Errorf("take lease %s for %s: %w", name, holder, err)
	}
	if len(epochs) == 0 {
		return 0, false, nil
	}
	return epochs[0], true, nil
}

// ReleaseLease gives up lease name if holder holds it, so another replica
// can take it at once instead of after it expires.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.db.WithContext(ctx).Exec("UPDATE leases SET expires_ns = 0 WHERE name = ? AND holder = ?", name, holder).Error
	if err != nil {
		return fmt.Errorf("release lease %s of %s: %w", name, holder, err)
	}
	return nil
}

// Lease is a lease as it stands.
type Lease struct {
	Name   string
	Holder string // the last holder, even when it expired
	Epoch  int64
	// Expires is when it expires, by the clock that decides (PostgreSQL's
	// on PostgreSQL); Held says whether it had not at the moment read.
	Expires time.Time
	Held    bool
}

// GetLease returns lease name, or ErrNotFound when it was never taken.
func (s *Store) GetLease(ctx context.Context, name string) (Lease, error) {
	var rows []struct {
		Name, Holder     string
		Epoch, ExpiresNS int64
		Held             bool
	}
	err := s.db.WithContext(ctx).Raw("SELECT name, holder, epoch, expires_ns, expires_ns > "+s.clockNS()+" AS held FROM leases WHERE name = ?", name).
		Scan(&rows).Error
	if err != nil {
		return Lease{}, fmt.Errorf("read lease %s: %w", name, err)
	}
	if len(rows) == 0 {
		return Lease{}, fmt.Errorf("lease %s: %w", name, ErrNotFound)
	}
	r := rows[0]
	return Lease{Name: r.Name, Holder: r.Holder, Epoch: r.Epoch, Expires: fromNS(r.ExpiresNS), Held: r.Held}, nil
}

// Replica is one Jarvis replica as its heartbeats say.
type Replica struct {
	ID          string
	Addr        string // where it serves, for messages
	StartedAt   time.Time
	HeartbeatAt time.Time // set by Heartbeat
	// Listeners is how many clients follow its feed, and Unattended
	// whether it needs the cluster watched with nobody listening: what the
	// watcher's holder polls for besides its own.
	Listeners  int
	Unattended bool
	// TakeOverAfter is how long the heartbeats of another process under
	// the same id (another StartedAt) must have stopped before this one
	// takes the id over; until then Heartbeat refuses with
	// ErrReplicaIDInUse. Zero takes it over at once.
	TakeOverAfter time.Duration
}

// ErrLeaseLost is the cause (context.Cause) with which work run under a
// lease is stopped when the lease was lost or could not be renewed in time:
// another process may hold it, so the work must not write what the next
// holder writes (a cursor, messages) on its way out.
var ErrLeaseLost = errors.New("the lease was lost: another process may hold it now")

// ErrReplicaIDInUse is Heartbeat's refusal of an id another process,
// still sending heartbeats, has: two replicas under one id would both hold
// every lease and neither would judge the other's calls.
var ErrReplicaIDInUse = errors.New("another Jarvis process sends heartbeats under this replica id")

// Replica is Options.Replica: this store's replica, "" when it is none.
func (s *Store) Replica() string { return s.replica }

// Heartbeat records that replica r is alive now, with what it says about
// itself. r.ID defaults to Options.Replica and r.StartedAt to when the store
// was opened.
func (s *Store) Heartbeat(ctx context.Context, r Replica) error {
	if r.ID == "" {
		r.ID = s.replica
	}
	if r.ID == "" {
		return errors.New("heartbeat: no replica id (Options.Replica)")
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = s.opened
	}
	// The row is this process's (the same start) or taken over from one
	// silent for TakeOverAfter; otherwise nothing changes.
	res := s.db.WithContext(ctx).Exec(`INSERT INTO replicas (id, addr, started_ns, heartbeat_ns, listeners, unattended)
		VALUES (?, ?, ?, `+s.clockNS()+`, ?, ?)
		ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, started_ns = excluded.started_ns,
			heartbeat_ns = excluded.heartbeat_ns, listeners = excluded.listeners, unattended = excluded.unattended
		WHERE replicas.started_ns = excluded.started_ns OR replicas.heartbeat_ns < excluded.heartbeat_ns - ?`,
		r.ID, r.Addr, toNS(r.StartedAt), r.Listeners, r.Unattended, r.TakeOverAfter.Nanoseconds())
	if res.Error != nil {
		return fmt.Errorf("heartbeat of replica %s: %w", r.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("heartbeat of replica %s: %w", r.ID, ErrReplicaIDInUse)
	}
	return nil
}

// EndHeartbeats says that this store's replica (Options.Replica) stopped
// cleanly: its heartbeat row reads as silent at once, so that the same id
// can start again without waiting for TakeOverAfter. Its calls have ended.
func (s *Store) EndHeartbeats(ctx context.Context) error {
	if s.replica == "" {
		return nil
	}
	err := s.db.WithContext(ctx).Exec("UPDATE replicas SET heartbeat_ns = 0 WHERE id = ? AND started_ns = ?", s.replica, toNS(s.opened)).Error
	if err != nil {
		return fmt.Errorf("end the heartbeats of replica %s: %w", s.replica, err)
	}
	return nil
}

// FreshReplicas returns the replicas whose last heartbeat is at most within
// old, by id.
func (s *Store) FreshReplicas(ctx context.Context, within time.Duration) ([]Replica, error) {
	var recs []replicaRecord
	err := s.db.WithContext(ctx).Where("heartbeat_ns >= "+s.clockNS()+" - ?", within.Nanoseconds()).
		Order(s.d.byteOrder("id")).Find(&recs).Error
	if err != nil {
		return nil, fmt.Errorf("read fresh replicas: %w", err)
	}
	out := make([]Replica, len(recs))
	for i, r := range recs {
		out[i] = Replica{ID: r.ID, Addr: r.Addr, StartedAt: fromNS(r.StartedNS), HeartbeatAt: fromNS(r.HeartbeatNS),
			Listeners: r.Listeners, Unattended: r.Unattended}
	}
	return out, nil
}

// PruneReplicas forgets replicas silent for longer than silentFor, except
// those with calls still listed as running (MarkInterruptedCalls needs them),
// and says how many went. Replica ids made anew at each start would
// otherwise pile up.
func (s *Store) PruneReplicas(ctx context.Context, silentFor time.Duration) (int64, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM replicas WHERE heartbeat_ns < `+s.clockNS()+` - ?
		AND NOT EXISTS (SELECT 1 FROM running_calls AS c WHERE c.replica = replicas.id)`, silentFor.Nanoseconds())
	if res.Error != nil {
		return 0, fmt.Errorf("prune replicas: %w", res.Error)
	}
	return res.RowsAffected, nil
}
