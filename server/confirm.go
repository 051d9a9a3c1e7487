package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// confirmKey is the id of the one input request a RED call makes.
const confirmKey = "confirm"

// approvalPoll is how often a waiting call looks for the operator's decision. The
// decision may come from another process (jarvis approve), so it is read from the store.
const approvalPoll = 200 * time.Millisecond

// approvalNoteEvery is how often a waiting call reports progress.
const approvalNoteEvery = 5 * time.Second

// confirm gets a human's yes for a call that needs one. It returns the approval id
// used (empty for an elicitation), or a result to send instead of running the call.
//
// The model's own word never counts: a "confirmed" argument does not exist, an
// approval must be decided by an operator, and an elicitation answer is honoured
// only with a signed, unexpired, unused state issued for this very call.
func (s *Server) confirm(ctx context.Context, c Call, in *tools.Input, v safety.Verdict) (string, *mcp.CallToolResult) {
	canonical, err := safety.CanonicalArgs(in.Object)
	if err != nil {
		return "", errorResult(fmt.Sprintf("arguments cannot be canonicalised: %v", err))
	}

	if id := in.ApprovalID(); id != "" {
		return s.redeemApproval(ctx, c, v, id, bindArgs(in.Object, canonical))
	}
	if s.answersElicitation(c, in, v) {
		return "", s.redeemElicitation(ctx, c, v, canonical)
	}
	if s.elicits(c) && c.Elicitation {
		return "", s.askClient(ctx, c, v, canonical)
	}
	return s.requestApproval(ctx, c, v, bindArgs(in.Object, canonical))
}

// elicits reports whether c's yes is asked through its own client's
// elicitation. Elicitation asks "the user" of the caller's client. For the
// local operator (stdio) or an operator login that user is a person; an agent
// answers its own client, so agents get a stored approval that an operator
// decides — unless JARVIS_ELICITATION_FOR_AGENTS says their clients are
// trusted to show the question to a person.
func (s *Server) elicits(c Call) bool {
	return c.Principal.Kind == safety.Operator || s.opts.ElicitAgents
}

// answersElicitation reports whether c is the retry that carries the answer
// to an input request: a call that needs approval, names no approval, comes
// with a request state, from a caller who is asked by elicitation. confirm
// redeems exactly these (signature, binding to caller, tool, arguments and
// plan, expiry, the nonce spent once) and runs nothing on a state that fails.
// Any other caller's request state is ignored, so attaching one gets an agent
// nothing.
func (s *Server) answersElicitation(c Call, in *tools.Input, v safety.Verdict) bool {
	return v.Decision == safety.NeedsApproval && in.ApprovalID() == "" && c.RequestState != "" && s.elicits(c)
}

// chargedWhenAsked reports whether c answers an input request with a state
// that verifies now, checked without spending its nonce (confirm spends it).
// Only such a retry is not charged to the rate limit again: the question was
// charged when it was asked. A junk state (forged, expired, for another call,
// already used) is charged as any call, then refused by confirm.
func (s *Server) chargedWhenAsked(c Call, in *tools.Input, v safety.Verdict) bool {
	if !s.answersElicitation(c, in, v) {
		return false
	}
	canonical, err := safety.CanonicalArgs(in.Object)
	if err != nil {
		return false
	}
	return s.opts.Confirmer.Check(c.RequestState, c.Principal.ID, c.Tool, withPlan(canonical, v.Plan), s.opts.Now()) == nil
}

// withPlan binds a confirmation to the plan the user was shown as well as to
// the arguments: if the same arguments now mean another target, the answer
// does not count.
func withPlan(canonical, plan string) string { return canonical + "\nplan: " + plan }

// bindArgs is what an approval is bound to: the redacted arguments a person can
// read, and a hash of the exact canonical arguments, so a call with any other
// value (a different password hidden by the redaction included) does not match.
func bindArgs(args map[string]any, canonical string) string {
	shown, err := safety.CanonicalArgs(safety.RedactArgs(args))
	if err != nil {
		shown = "{}"
	}
	sum := sha256.Sum256([]byte(canonical))
	return shown + " sha256:" + hex.EncodeToString(sum[:])
}

// askClient returns an input request: the client shows the plan to its user and
// retries with the answer and the signed state.
func (s *Server) askClient(ctx context.Context, c Call, v safety.Verdict, canonical string) *mcp.CallToolResult {
	state, err := s.opts.Confirmer.Issue(c.Principal.ID, c.Tool, withPlan(canonical, v.Plan), s.opts.Now())
	if err != nil {
		return errorResult(fmt.Sprintf("could not ask for confirmation: %v", err))
	}
	s.auditDecision(ctx, c, v, "confirmation_requested", "")
	return &mcp.CallToolResult{
		InputRequests: mcp.InputRequestMap{confirmKey: &mcp.ElicitParams{
			Mode:    "form",
			Message: fmt.Sprintf("Jarvis needs your approval.\n\n%s\n\nApprove this action?", v.Plan),
			RequestedSchema: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"approve": map[string]any{
						"type":        "boolean",
						"title":       "Approve",
						"description": "Tick to let Jarvis carry out the action described above.",
					},
				},
				"required": []string{"approve"},
			},
		}},
		RequestState: state,
	}
}

// redeemElicitation checks the retry of an input request.
func (s *Server) redeemElicitation(ctx context.Context, c Call, v safety.Verdict, canonical string) *mcp.CallToolResult {
	nonce, expires, err := s.opts.Confirmer.RedeemNonce(c.RequestState, c.Principal.ID, c.Tool, withPlan(canonical, v.Plan), s.opts.Now())
	if err == nil {
		// Once across every jarvis process sharing the database, and across restarts.
		err = s.opts.Store.SpendNonce(ctx, nonce, expires)
	}
	if err != nil {
		decision := safety.Denied
		reason := "the confirmation could not be verified (it was altered, reused or issued for another call); call the tool again to be asked afresh"
		if errors.Is(err, safety.ErrStateExpired) {
			decision = safety.Expired
			reason = "the confirmation expired before it was answered; call the tool again to be asked afresh"
		}
		return s.refuse(ctx, c, v.Tier, safety.Verdict{Decision: decision, Tier: v.Tier, Plan: v.Plan, Reason: reason}, "")
	}
	if c.Confirm == nil {
		return s.refuse(ctx, c, v.Tier, safety.Verdict{Decision: safety.Denied, Tier: v.Tier, Plan: v.Plan,
			Reason: "no answer to the confirmation came back, so nothing was done"}, "")
	}
	approved, _ := c.Confirm.Content["approve"].(bool)
	if c.Confirm.Action != "accept" || !approved {
		return s.refuse(ctx, c, v.Tier, safety.Verdict{Decision: safety.Denied, Tier: v.Tier, Plan: v.Plan,
			Reason: fmt.Sprintf("the user did not approve (%s), so nothing was done", answerWord(c.Confirm))}, "")
	}
	return nil
}

func answerWord(r *mcp.ElicitResult) string {
	if r.Action == "accept" {
		return "accepted without ticking approve"
	}
	return r.Action
}

// requestApproval records an approval request for the operator and waits a while
// for the decision. bound is bindArgs of the call's arguments.
func (s *Server) requestApproval(ctx context.Context, c Call, v safety.Verdict, bound string) (string, *mcp.CallToolResult) {
	now := s.opts.Now()
	// The cluster is said outright: the store cannot read it from bound,
	// which is not plain JSON (the arguments, then their hash).
	a := &store.Approval{
		Principal: c.Principal.ID, Tool: c.Tool, Cluster: s.callCluster(c), Args: bound, Plan: v.Plan, Tier: v.Tier.String(),
		CreatedAt: now, ExpiresAt: now.Add(s.opts.ApprovalTTL),
	}
	if err := s.opts.Store.CreateApproval(ctx, a); err != nil {
		return "", s.refuse(ctx, c, v.Tier, safety.Verdict{Decision: safety.Blocked, Tier: v.Tier, Plan: v.Plan,
			Reason: "the approval request could not be stored, so nothing was done; check the database (jarvis doctor)"}, "")
	}
	s.publishApproval(ctx, a, store.ApprovalRequested, c.Principal.ID)
	// The id and where to approve reach the caller now: a client that gives up
	// before the wait ends has them anyway.
	if c.Notify != nil {
		c.Notify(fmt.Sprintf("Jarvis approval %s requested: %s. A person can approve it %s; it expires at %s (in %s). Then call %s again with the same arguments and approval_id %q.",
			a.ID, v.Plan, s.opts.ApproveWhere(a.ID), a.ExpiresAt.UTC().Format("15:04:05 UTC"), tools.HumanDuration(int64(s.opts.ApprovalTTL.Seconds())), c.Tool, a.ID))
	}
	return s.awaitApproval(ctx, c, v, a.ID, store.Binding{Principal: c.Principal.ID, Tool: c.Tool, Args: bound, Plan: v.Plan})
}

// redeemApproval handles a call that names an approval: it runs only if that approval
// was granted by a person for this principal, tool and arguments and never used.
// bound is bindArgs of the call's arguments. The approval is not read first:
// trying to use it answers in one step, and a pending one is waited for.
func (s *Server) redeemApproval(ctx context.Context, c Call, v safety.Verdict, id, bound string) (string, *mcp.CallToolResult) {
	return s.consume(ctx, c, v, id, store.Binding{Principal: c.Principal.ID, Tool: c.Tool, Args: bound, Plan: v.Plan}, true)
}

// awaitApproval waits up to ApprovalWait for a pending approval to be decided.
func (s *Server) awaitApproval(ctx context.Context, c Call, v safety.Verdict, id string, want store.Binding) (string, *mcp.CallToolResult) {
	deadline := time.NewTimer(s.opts.ApprovalWait)
	defer deadline.Stop()
	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	// Progress while waiting tells the user what is happening, and keeps clients
	// that reset their request timeout on progress from giving up.
	start, lastNote := s.opts.Now(), time.Time{}
	for {
		if c.Progress != nil && s.opts.Now().Sub(lastNote) >= approvalNoteEvery {
			lastNote = s.opts.Now()
			c.Progress(fmt.Sprintf("waiting for a person to approve %s: %s; approve it %s", id, v.Plan, s.opts.ApproveWhere(id)),
				lastNote.Sub(start).Seconds(), s.opts.ApprovalWait.Seconds())
		}
		// A switch turned on while the call waits ends the wait: nothing may run now,
		// and the approval stays pending for when the switch is off again.
		if st := s.liveState(ctx); st.KillSwitch || st.ReadOnly {
			stop := c.cluster.Policy.Decide(safety.Request{Principal: c.Principal, Tool: c.Tool, Tier: v.Tier}, st)
			if stop.Decision != safety.Allow && stop.Decision != safety.NeedsApproval {
				stop.Plan = v.Plan
				stop.Reason = strings.TrimSuffix(stop.Reason, ".") + fmt.Sprintf(". The call stopped waiting for approval %s, which cannot be granted until then.", id)
				return "", s.refuse(context.WithoutCancel(ctx), c, v.Tier, stop, id)
			}
		}
		// Decided or expired: consume says which, and runs the call if approved.
		if a, err := s.opts.Store.GetApproval(ctx, id); err == nil && (a.Status != store.ApprovalPending || !s.opts.Now().Before(a.ExpiresAt)) {
			return s.consume(ctx, c, v, id, want, false)
		}
		select {
		case <-ctx.Done():
			return "", s.needsApproval(ctx, c, v, id)
		case <-deadline.C:
			return "", s.needsApproval(ctx, c, v, id)
		case <-tick.C:
		}
	}
}

func (s *Server) needsApproval(ctx context.Context, c Call, v safety.Verdict, id string) *mcp.CallToolResult {
	reason := fmt.Sprintf("a person must approve this first: %s. Ask the operator to approve %s %s, then call %s again with the same arguments and approval_id %q",
		v.Plan, id, s.opts.ApproveWhere(id), c.Tool, id)
	if c.ruleNote != "" {
		reason += ". No standing approval covered it: " + c.ruleNote
	}
	return s.refuse(context.WithoutCancel(ctx), c, v.Tier, safety.Verdict{Decision: safety.NeedsApproval, Tier: v.Tier, Plan: v.Plan, Reason: reason}, id)
}

// consume takes the approval, exactly once, and maps every way it can fail to a
// refusal. The store answers in one step, with the approval as it stands when it
// cannot be used, so nothing is read twice. A pending approval is waited for
// when wait is set, else answered with needs_approval.
func (s *Server) consume(ctx context.Context, c Call, v safety.Verdict, id string, want store.Binding, wait bool) (string, *mcp.CallToolResult) {
	a, err := s.opts.Store.ConsumeApproval(ctx, id, want, s.opts.Now())
	if err == nil {
		s.publishApproval(ctx, a, store.ApprovalConsumed, c.Principal.ID)
		return id, nil
	}
	refusal := safety.Verdict{Decision: safety.Denied, Tier: v.Tier, Plan: v.Plan}
	switch {
	case errors.Is(err, store.ErrPlanChanged):
		// The same arguments can name a different guest by now (recreated,
		// migrated, renamed), and that was not approved.
		refusal.Reason = fmt.Sprintf("the target changed since approval %s was granted: it approved %q, the call would now %q; ask again", id, a.Plan, v.Plan)
	case errors.Is(err, store.ErrExpired):
		refusal.Decision = safety.Expired
		refusal.Reason = fmt.Sprintf("approval %s expired before it was used; call the tool without approval_id to request a new one", id)
	case errors.Is(err, store.ErrAlreadyConsumed):
		refusal.Reason = fmt.Sprintf("approval %s was already used once; each approval runs one call", id)
	case errors.Is(err, store.ErrMismatch):
		refusal.Reason = fmt.Sprintf("approval %s was granted for a different caller, tool or arguments; it cannot be used for this call", id)
	case errors.Is(err, store.ErrNotApproved):
		if a != nil && a.Status == store.ApprovalPending {
			if wait {
				return s.awaitApproval(ctx, c, v, id, want)
			}
			return "", s.needsApproval(ctx, c, v, id)
		}
		refusal.Reason = fmt.Sprintf("approval %s was refused by the operator, so nothing was done", id)
	case errors.Is(err, store.ErrNotFound):
		refusal.Reason = fmt.Sprintf("approval %s does not exist; call the tool without approval_id to request one", id)
		return "", s.refuse(ctx, c, v.Tier, refusal, "") // no such id to hand back
	default:
		refusal.Decision = safety.Blocked
		refusal.Reason = "the approval could not be checked, so nothing was done; check the database (jarvis doctor)"
	}
	return "", s.refuse(ctx, c, v.Tier, refusal, id)
}

// auditDecision records a step that is neither a run nor a refusal (an input request).
func (s *Server) auditDecision(ctx context.Context, c Call, v safety.Verdict, decision, approvalID string) {
	entry := s.auditEntry(c, v.Tier, decision, v.Plan, approvalID)
	id, err := s.opts.Store.AuditBegin(ctx, entry)
	if err != nil {
		s.opts.Logger.Error("audit log write failed", "tool", c.Tool, "err", err)
		return
	}
	_ = s.opts.Store.AuditEnd(ctx, id, store.AuditOutcome{Status: store.OutcomeRefused, Error: "waiting for the user's confirmation"})
}
