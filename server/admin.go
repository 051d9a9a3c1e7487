package server

import (
	"context"
	"fmt"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// DecideApproval records a person's decision and announces it. The CLI (jarvis
// approve/deny) and the operator API both come here.
//
// Approving is refused while the kill switch or read-only mode is on (or the
// switches cannot be read): the call could not run anyway, and a yes given now
// would surprise whoever releases the switch. Denying always works.
func (s *Server) DecideApproval(ctx context.Context, id string, approve bool, by string) (*store.Approval, error) {
	if approve {
		if st := s.liveState(ctx); st.KillSwitch || st.ReadOnly {
			return nil, &SwitchOnError{KillSwitch: st.KillSwitch}
		}
	}
	a, err := s.opts.Store.DecideApproval(ctx, id, approve, by, s.opts.Now())
	if err != nil {
		if got, gerr := s.opts.Store.GetApproval(ctx, id); gerr == nil && got.Status == store.ApprovalExpired {
			s.publishApproval(ctx, got, store.ApprovalExpired, by)
		}
		return nil, err
	}
	phase := store.ApprovalDenied
	if approve {
		phase = store.ApprovalApproved
	}
	s.publishApproval(ctx, a, phase, by)
	return a, nil
}

// SweepApprovals expires pending approvals whose time ran out and announces each.
func (s *Server) SweepApprovals(ctx context.Context) error {
	expired, err := s.opts.Store.ExpireApprovals(ctx, s.opts.Now())
	if err != nil {
		return err
	}
	for i := range expired {
		s.publishApproval(ctx, &expired[i], store.ApprovalExpired, store.Jarvis)
	}
	return nil
}

// RunSweeper expires approvals every interval until ctx ends.
func (s *Server) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.SweepApprovals(ctx); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("approval sweep failed", "err", err)
			}
			if err := s.Recover(ctx); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("interrupted-call sweep failed", "err", err)
			}
			// Cluster snapshots are news for an hour; alerts, tool calls and
			// approvals stay (the audit log is separate and never pruned).
			if _, err := s.opts.Store.PruneEvents(ctx, "cluster", s.opts.Now().Add(-time.Hour)); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("pruning cluster snapshots failed", "err", err)
			}
		}
	}
}

// SafetyState returns the live switches as stored (and the configured read-only mode).
func (s *Server) SafetyState(ctx context.Context) (safety.State, error) {
	st := safety.State{ReadOnly: s.opts.ReadOnly}
	kill, _, err := s.opts.Store.GetPreference(ctx, PrefKillSwitch)
	if err != nil {
		return st, err
	}
	ro, _, err := s.opts.Store.GetPreference(ctx, PrefReadOnly)
	if err != nil {
		return st, err
	}
	st.KillSwitch = kill == "on"
	st.ReadOnly = st.ReadOnly || ro == "on"
	return st, nil
}

// SwitchOnError refuses an approval while a safety switch stops every change.
type SwitchOnError struct{ KillSwitch bool }

func (e *SwitchOnError) Error() string {
	if e.KillSwitch {
		return "the kill switch is on, so nothing can be approved; release it first (console, PUT /api/safety or jarvis safety kill-switch off), or deny the request"
	}
	return "read-only mode is on, so nothing can be approved; turn it off first (console, PUT /api/safety or jarvis safety read-only off), or deny the request"
}

// SetSwitch turns a persisted safety switch on or off and announces it.
func (s *Server) SetSwitch(ctx context.Context, key string, on bool, by string) error {
	if key != PrefKillSwitch && key != PrefReadOnly {
		return fmt.Errorf("unknown safety switch %q", key)
	}
	value := "off"
	if on {
		value = "on"
	}
	if err := s.opts.Store.SetPreference(ctx, key, value); err != nil {
		return err
	}
	name := map[string]string{PrefKillSwitch: "kill switch", PrefReadOnly: "read-only mode"}[key]
	severity := store.SeverityInfo
	if on {
		severity = store.SeverityWarning
	}
	details := store.EncodeDetails(store.SafetyDetails{Switch: key, On: on, By: by})
	return s.opts.Store.Publish(ctx, &store.Event{Type: store.EventSafety, Severity: severity, Source: by,
		Summary: fmt.Sprintf("%s turned %s by %s", name, value, by), Details: details})
}

// Recover marks calls left "begun" by a crash as interrupted and raises an alert for
// each. Only calls older than the longest a call may run are touched, since
// another jarvis process sharing the database may have calls in flight, and
// the calls of a replica silent for ReplicaSilentFor (when set); it runs at
// start and with every approval sweep.
func (s *Server) Recover(ctx context.Context) error {
	var silentFor time.Duration
	if s.opts.ReplicaSilentFor != nil {
		silentFor = s.opts.ReplicaSilentFor()
	}
	rows, err := s.opts.Store.MarkInterruptedCalls(ctx, s.opts.ExecTimeout+time.Minute, silentFor)
	if err != nil {
		return fmt.Errorf("marking interrupted calls: %w", err)
	}
	s.alertInterrupted(ctx, rows)
	return nil
}

// RecoverEarlierRun marks the calls this replica's earlier run left
// running (store.MarkCallsOfEarlierRun) as interrupted, with an alert for
// each; a replica runs it as it joins, before it serves.
func (s *Server) RecoverEarlierRun(ctx context.Context) error {
	rows, err := s.opts.Store.MarkCallsOfEarlierRun(ctx)
	if err != nil {
		return fmt.Errorf("marking the calls of this replica's earlier run: %w", err)
	}
	s.alertInterrupted(ctx, rows)
	return nil
}

// alertInterrupted raises an alert for each call marked interrupted.
func (s *Server) alertInterrupted(ctx context.Context, rows []store.AuditRow) {
	for _, r := range rows {
		details := store.EncodeDetails(store.AlertDetails{InterruptedCall: &store.InterruptedCall{
			AuditID: r.ID, Principal: r.Principal, Tool: r.Tool, Plan: r.Plan, Began: r.Time}})
		// The row's cluster is the one its arguments name ("" with one).
		_ = s.opts.Store.Publish(ctx, &store.Event{Type: store.EventAlert, Severity: store.SeverityWarning, Source: store.Jarvis, Cluster: r.Cluster,
			Summary: fmt.Sprintf("call %s by %s was interrupted (Jarvis stopped while it ran); check its effect on the cluster", r.Tool, r.Principal),
			Details: details})
	}
}

// Policy is the safety policy of the default cluster (the console shows what
// it protects; its guest view reads that cluster).
func (s *Server) Policy() safety.Policy { return s.defaultCluster().Policy }

// PolicyOf is the safety policy of cluster name, and whether it is served.
func (s *Server) PolicyOf(name string) (safety.Policy, bool) {
	for _, c := range s.clusters {
		if c.Name == name {
			return c.Policy, true
		}
	}
	return safety.Policy{}, false
}
