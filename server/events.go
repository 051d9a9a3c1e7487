package server

// The events dispatch publishes on the feed: one per tool call phase and one per
// approval change. A feed failure never fails a call.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
)

// publishTool announces a tool call on the feed. A feed failure never fails a call.
// outcome is one word (ok, error, unknown, or the refusal's decision); reason says why.
func (s *Server) publishTool(ctx context.Context, c Call, tier safety.Tier, phase, decision, plan, node string, d time.Duration, outcome, reason string) {
	details, _ := json.Marshal(map[string]any{
		"phase": phase, "principal": c.Principal.ID, "tool": c.Tool, "tier": tier.String(),
		"decision": decision, "plan": plan, "duration_ms": d.Milliseconds(), "outcome": outcome, "reason": reason,
	})
	severity := "info"
	switch {
	case phase == "refused":
		severity = "warning"
	case phase == "ended" && outcome != "ok":
		severity = "warning"
	}
	summary := fmt.Sprintf("%s %s %s", c.Principal.ID, phase, c.Tool)
	if phase == "ended" {
		summary = fmt.Sprintf("%s %s %s (%s, %s)", c.Principal.ID, c.Tool, phase, outcome, d.Round(time.Millisecond))
	}
	if phase == "refused" {
		summary = fmt.Sprintf("%s refused for %s: %s", c.Tool, c.Principal.ID, decision)
	}
	ev := &store.Event{Type: "tool", Severity: severity, Source: "dispatch", Node: node, Summary: summary, Details: details}
	if err := s.opts.Store.Publish(context.WithoutCancel(ctx), ev); err != nil {
		s.opts.Logger.Warn("could not publish tool event", "err", err)
	}
}

// publishApproval announces an approval's change on the feed.
func (s *Server) publishApproval(ctx context.Context, a *store.Approval, phase, actor string) {
	details, _ := json.Marshal(map[string]any{
		"phase": phase, "approval_id": a.ID, "principal": a.Principal, "tool": a.Tool, "tier": a.Tier,
		"plan": a.Plan, "expires_at": a.ExpiresAt, "actor": actor, "status": a.Status,
	})
	severity := "info"
	if phase == "requested" {
		severity = "warning"
	}
	ev := &store.Event{Type: "approval", Severity: severity, Source: "approvals",
		Summary: fmt.Sprintf("approval %s %s: %s", a.ID, phase, a.Plan), Details: details}
	if err := s.opts.Store.Publish(context.WithoutCancel(ctx), ev); err != nil {
		s.opts.Logger.Warn("could not publish approval event", "err", err)
	}
}
