package server

// The events dispatch publishes on the feed: one per tool call phase and one per
// approval change. A feed failure never fails a call.

import (
	"context"
	"fmt"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// publishTool announces a tool call on the feed. A feed failure never fails a call.
// outcome is one word (ok, error, unknown, or the refusal's decision); reason says why.
func (s *Server) publishTool(ctx context.Context, c Call, tier safety.Tier, phase, decision, plan, node string, d time.Duration, outcome, reason string) {
	ev := s.toolEvent(c, tier, phase, decision, plan, node, d, outcome, reason)
	if err := s.opts.Store.Publish(context.WithoutCancel(ctx), ev); err != nil {
		s.opts.Logger.Warn("could not publish tool event", "err", err)
	}
}

// toolEvent is the feed event of one phase of a tool call, naming its
// cluster when there are several (callCluster).
func (s *Server) toolEvent(c Call, tier safety.Tier, phase, decision, plan, node string, d time.Duration, outcome, reason string) *store.Event {
	td := store.ToolDetails{
		Phase: phase, Principal: c.Principal.ID, Tool: c.Tool, Tier: tier.String(),
		Decision: decision, Plan: plan, DurationMS: d.Milliseconds(), Outcome: outcome, Reason: reason,
	}
	if c.rule != nil {
		td.Rule = c.rule.rule.Ref()
	}
	details := store.EncodeDetails(td)
	severity := store.SeverityInfo
	switch {
	case phase == store.ToolRefused:
		severity = store.SeverityWarning
	case phase == store.ToolEnded && outcome != store.OutcomeOK:
		severity = store.SeverityWarning
	}
	summary := fmt.Sprintf("%s %s %s", c.Principal.ID, phase, c.Tool)
	if phase == store.ToolEnded {
		summary = fmt.Sprintf("%s %s %s (%s, %s)", c.Principal.ID, c.Tool, phase, outcome, d.Round(time.Millisecond))
	}
	if phase == store.ToolRefused {
		summary = fmt.Sprintf("%s refused for %s: %s", c.Tool, c.Principal.ID, decision)
	}
	return &store.Event{Type: store.EventTool, Severity: severity, Source: "dispatch", Cluster: s.callCluster(c), Node: node, Summary: summary, Details: details}
}

// publishApproval announces an approval's change on the feed, on the
// approval's cluster (requestApproval sets it).
func (s *Server) publishApproval(ctx context.Context, a *store.Approval, phase, actor string) {
	details := store.EncodeDetails(store.ApprovalDetails{
		Phase: phase, ApprovalID: a.ID, Principal: a.Principal, Tool: a.Tool, Tier: a.Tier,
		Plan: a.Plan, ExpiresAt: a.ExpiresAt, Actor: actor, Status: a.Status,
	})
	severity := store.SeverityInfo
	if phase == store.ApprovalRequested {
		severity = store.SeverityWarning
	}
	ev := &store.Event{Type: store.EventApproval, Severity: severity, Source: "approvals", Cluster: a.Cluster,
		Summary: fmt.Sprintf("approval %s %s: %s", a.ID, phase, a.Plan), Details: details}
	if err := s.opts.Store.Publish(context.WithoutCancel(ctx), ev); err != nil {
		s.opts.Logger.Warn("could not publish approval event", "err", err)
	}
}
