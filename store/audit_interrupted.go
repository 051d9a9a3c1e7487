package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// A call whose process stopped while it ran keeps its begin row without an
// end row. Something else closes it with an end row of status
// "interrupted": the sweep (MarkInterrupted) once the call is older than any
// call may run; and, for a call begun by a replica (Options.Replica), as soon
// as that replica stopped sending heartbeats (MarkInterruptedCalls). Those
// calls are listed in running_calls from their begin row's transaction to
// their end row's.

// beginRunning lists the call begun at auditID as running on this replica.
// Must run in the begin row's transaction.
func (s *Store) beginRunning(tx *gorm.DB, auditID uint64) error {
	if s.replica == "" {
		return nil
	}
	if err := tx.Exec("INSERT INTO running_calls (audit_id, replica) VALUES (?, ?)", auditID, s.replica).Error; err != nil {
		return fmt.Errorf("list call %d as running: %w", auditID, err)
	}
	return nil
}

// endRunning takes the call begun at auditID off running_calls. Must run in
// the end row's transaction. Only a replica lists its calls, and only it
// ends them (or MarkInterruptedCalls).
func (s *Store) endRunning(tx *gorm.DB, auditID uint64) error {
	if s.replica == "" {
		return nil
	}
	if err := tx.Exec("DELETE FROM running_calls WHERE audit_id = ?", auditID).Error; err != nil {
		return fmt.Errorf("take call %d off the running calls: %w", auditID, err)
	}
	return nil
}

// MarkInterrupted closes every begin row older than olderThan that has no
// end row with an end row of status "interrupted" and returns those begin
// rows, oldest first. Choose olderThan so that no call could still be
// running (the longest a call may take): another process sharing the
// database may have calls in flight. Ages are by the clock row times take
// (the database's on PostgreSQL), so a replica whose own clock is ahead
// cannot close young calls.
func (s *Store) MarkInterrupted(ctx context.Context, olderThan time.Duration) ([]AuditRow, error) {
	return s.MarkInterruptedCalls(ctx, olderThan, 0)
}

// MarkInterruptedCalls is MarkInterrupted that also closes, whatever their
// age, the calls begun by another replica whose last heartbeat is older than
// replicaSilentFor (by the database's clock on PostgreSQL): that replica
// stopped, and its calls with it. Zero closes none that way. A replica that
// never sent a heartbeat is not judged by it, nor is this store's own
// (Options.Replica): it knows its calls run.
func (s *Store) MarkInterruptedCalls(ctx context.Context, olderThan, replicaSilentFor time.Duration) ([]AuditRow, error) {
	return s.closeInterrupted(ctx, true, olderThan, func(tx *gorm.DB) (map[uint64]string, error) { return s.orphanedCalls(tx, replicaSilentFor) },
		func(replica string) string {
			return fmt.Sprintf("jarvis replica %s stopped before the call finished (no heartbeat for %s)", replica, replicaSilentFor)
		})
}

// MarkCallsOfEarlierRun closes, as interrupted, the calls still listed as
// running on this store's replica (Options.Replica), and returns their
// begin rows. A replica calls it as it joins, before it runs any call: such
// calls were begun by an earlier process under the same id, which stopped
// without ending them (the other replicas leave them alone, as the id's
// heartbeats go on).
func (s *Store) MarkCallsOfEarlierRun(ctx context.Context) ([]AuditRow, error) {
	if s.replica == "" {
		return nil, nil
	}
	return s.closeInterrupted(ctx, false, 0, func(tx *gorm.DB) (map[uint64]string, error) {
		var ids []uint64
		if err := tx.Raw("SELECT audit_id FROM running_calls WHERE replica = ?", s.replica).Scan(&ids).Error; err != nil {
			return nil, fmt.Errorf("find this replica's calls of an earlier run: %w", err)
		}
		out := make(map[uint64]string, len(ids))
		for _, id := range ids {
			out[id] = s.replica
		}
		return out, nil
	}, func(replica string) string {
		return fmt.Sprintf("jarvis replica %s stopped before the call finished, and started again", replica)
	})
}

// closeInterrupted ends with an "interrupted" row every begin row without
// an end row that is older than olderThan (with byAge) or among orphans
// (listed running calls, by replica; why says why for those), and takes
// them off running_calls.
func (s *Store) closeInterrupted(ctx context.Context, byAge bool, olderThan time.Duration, orphansOf func(*gorm.DB) (map[uint64]string, error),
	why func(replica string) string) ([]AuditRow, error) {
	var open []auditRecord
	var last uint64
	err := s.auditTx(ctx, func(tx *gorm.DB) error {
		open, last = nil, 0
		orphans, err := orphansOf(tx)
		if err != nil {
			return err
		}
		var conds []string
		var args []any
		if byAge {
			conds, args = append(conds, "time_ns < "+s.clockNS()+" - ?"), append(args, olderThan.Nanoseconds())
		}
		if len(orphans) > 0 {
			conds, args = append(conds, "id IN ?"), append(args, mapKeys(orphans))
		}
		if len(conds) == 0 {
			return nil
		}
		err = tx.Where("kind = ? AND NOT EXISTS (SELECT 1 FROM audit_log e WHERE e.kind = ? AND e.begin_id = audit_log.id) AND ("+strings.Join(conds, " OR ")+")",
			append([]any{"begin", "end"}, args...)...).
			Order("id ASC").Find(&open).Error
		if err != nil {
			return fmt.Errorf("find calls without an end row: %w", err)
		}
		// Every orphan goes off the list: closed now, or ended meanwhile.
		done := mapKeys(orphans)
		for _, b := range open {
			reason := "jarvis stopped before the call finished"
			replica, orphan := orphans[b.ID]
			if orphan {
				reason = why(replica)
			} else {
				done = append(done, b.ID)
			}
			rec := endRecord(b, AuditOutcome{Status: OutcomeInterrupted, Error: reason})
			if err := s.appendAudit(tx, &rec); err != nil {
				return err
			}
			last = rec.ID
		}
		if len(done) == 0 {
			return nil
		}
		if err := tx.Exec("DELETE FROM running_calls WHERE audit_id IN ?", done).Error; err != nil {
			return fmt.Errorf("take interrupted calls off the running calls: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mark interrupted audit calls: %w", err)
	}
	s.appended(last)
	out := make([]AuditRow, len(open))
	for i, r := range open {
		out[i] = r.row()
	}
	return out, nil
}

// orphanedCalls maps the running calls of other replicas silent for longer
// than silentFor to their replica; none when silentFor is zero.
func (s *Store) orphanedCalls(tx *gorm.DB, silentFor time.Duration) (map[uint64]string, error) {
	if silentFor <= 0 {
		return nil, nil
	}
	var rows []struct {
		AuditID uint64
		Replica string
	}
	err := tx.Raw(`SELECT c.audit_id, c.replica FROM running_calls AS c JOIN replicas AS r ON r.id = c.replica
		WHERE c.replica <> ? AND r.heartbeat_ns < `+s.clockNS()+` - ?`, s.replica, silentFor.Nanoseconds()).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("find the calls of stopped replicas: %w", err)
	}
	out := make(map[uint64]string, len(rows))
	for _, r := range rows {
		out[r.AuditID] = r.Replica
	}
	return out, nil
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
