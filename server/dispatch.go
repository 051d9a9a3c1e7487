// Package server turns the tool catalogue into MCP servers and owns the one dispatch
// path every tool call takes, from stdio, HTTP or a test (ARCHITECTURE.md, "The one
// dispatch path"):
//
//  1. parse the arguments once, decode them into the tool's typed input, and let the
//     tool resolve its target;
//  2. ask the safety policy for a verdict and a plan sentence;
//  3. get a human's confirmation when the verdict needs one, then decide again;
//  4. commit the audit "begin" row (no row, no call);
//  5. execute under a deadline;
//  6. commit the audit "end" row and publish the event.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// DecisionRule is the audit decision of a RED call a standing approval let
// run; the row's approval id names the rule version ("rule:r_…/v1").
const DecisionRule = "rule"

// Call is one tool invocation as it reaches dispatch.
type Call struct {
	Principal safety.Principal
	Tool      string
	Args      json.RawMessage
	// Elicitation is true when the client declared it can show an input request.
	Elicitation bool
	// RequestState and Confirm come back on the retry of a multi-round-trip call.
	RequestState string
	Confirm      *mcp.ElicitResult
	// Progress, when set, receives progress of long calls.
	Progress tools.Progress
	// Notify, when set, sends the caller a message at once, outside the result
	// (an MCP log message): what it must not miss if it gives up waiting.
	Notify func(msg string)
	// Direct marks a call that does not come from a tool list: an MCP
	// resource read, the console's guest view. Toolsets shape what is listed
	// to a model, so they do not limit these; tiers and ceilings still do.
	Direct bool
	// wrongInput, when set, hears of an argument or target the caller got
	// wrong (a tools.InputError: no such node, a malformed name), whether
	// found while preparing or while reading: a resource read answers
	// "resource not found" for it rather than a failure.
	wrongInput func(*tools.InputError)

	// Set by Dispatch, once per call: when it started, the arguments parsed
	// (nil when they are not a JSON object) and their redacted canonical form
	// for audit rows, and the cluster the call is for.
	start     time.Time
	args      *tools.Args
	auditArgs string
	cluster   *Cluster
	// Set when the call needed approval: the standing approval that let it
	// run, or why none did (for the needs_approval answer).
	rule     *ruleGrant
	ruleNote string
}

// parseArgs parses the call's arguments once, for every step after it.
func (c *Call) parseArgs() error {
	args, err := tools.ParseArgs(c.Args)
	if err != nil {
		c.auditArgs = fmt.Sprintf(`{"_unparsed_bytes":%d}`, len(c.Args))
		return err
	}
	c.args = args
	c.auditArgs = redactedArgs(args.Object)
	return nil
}

// Dispatch runs one tool call through the safety layer. It never panics on bad input
// and never returns nil; refusals have one shape (ARCHITECTURE.md, "The refusal shape").
func (s *Server) Dispatch(ctx context.Context, c Call) (res *mcp.CallToolResult) {
	c.start = s.opts.Now()
	// Tools that answer per caller (list_alerts) read it from ctx.
	ctx = tools.WithCaller(ctx, c.Principal)
	defer func() {
		if r := recover(); r != nil {
			s.opts.Logger.Error("tool call panicked", "tool", c.Tool, "panic", fmt.Sprint(r))
			res = errorResult(fmt.Sprintf("%s failed inside Jarvis; the call was stopped and logged", c.Tool))
		}
	}()

	parseErr := c.parseArgs()
	tool, ok := s.byName[c.Tool]
	if !ok {
		return s.refuseUnknown(ctx, c)
	}
	// The door checks the tool's mildest call; Decide checks this call's own
	// tier (a command's, for execute_ssh) against the ceiling again.
	if v, above := safety.AboveCeiling(c.Principal, tool.Name, tool.MinTier); above {
		return s.refuse(ctx, c, tool.MinTier, v, "")
	}
	if v, outside := s.outsideToolsets(c.Principal, tool); outside && !c.Direct {
		return s.refuse(ctx, c, tool.MinTier, v, "")
	}
	if parseErr != nil {
		return s.failPrepare(ctx, c, tool, parseErr)
	}
	// From here on every step uses this cluster's Env and Policy.
	cluster, why := s.clusterOf(&c)
	if cluster == nil {
		return s.refuse(ctx, c, tool.MinTier, safety.Verdict{Decision: safety.Blocked, Tier: tool.MinTier, Reason: why}, "")
	}
	c.cluster = cluster
	in, err := s.decode(tool, c)
	if err != nil {
		return s.failPrepare(ctx, c, tool, err)
	}
	// A changing call is decided on the cluster as it is now, never on a cached
	// read: its target and plan come from fresh answers.
	prepCtx := ctx
	if tool.Tier != safety.Green {
		prepCtx = tools.Fresh(ctx)
	}
	call, err := tool.Prepare(prepCtx, c.cluster.Env, in)
	if err != nil {
		return s.failPrepare(ctx, c, tool, err)
	}
	verdict := s.decide(ctx, c, tool, call)
	tier := verdict.Tier
	switch verdict.Decision {
	case safety.Allow, safety.NeedsApproval:
	default:
		return s.refuse(ctx, c, tier, verdict, "")
	}
	// The retry that carries a person's answer to an input request was
	// charged when the question was asked; charging it again would turn a
	// person's "no" (or "yes") into rate_limited. Only a state that verifies
	// counts; confirm spends it (once) before anything runs.
	if !s.chargedWhenAsked(c, in, verdict) {
		if ok, retry := s.opts.Limiter.Allow(c.Principal.ID, tier, s.opts.Now()); !ok {
			v := safety.Verdict{Decision: safety.RateLimited, Tier: tier, Plan: verdict.Plan,
				Reason: fmt.Sprintf("too many %s calls from %s; try again in %s", tier, c.Principal.ID, retry.Round(time.Second))}
			return s.refuse(ctx, c, tier, v, "")
		}
	}

	approvalID := ""
	if verdict.Decision == safety.NeedsApproval {
		// A rule an operator made in advance may let this call run now. It is
		// looked at only here, after every refusal above: it can never let
		// through what the policy, a switch or the rate limit refused.
		if in.ApprovalID() == "" && c.RequestState == "" {
			if c.rule, c.ruleNote = s.standing(ctx, c, tool, in, call, verdict); c.rule != nil {
				return s.execute(ctx, c, tool, tier, verdict, call, "")
			}
		}
		var refusal *mcp.CallToolResult
		approvalID, refusal = s.confirm(ctx, c, in, verdict)
		if refusal != nil {
			return refusal
		}
		// A person's yes can take minutes. Whatever changed meanwhile — a switch
		// turned on, the guest moved to a protected node, a new target behind
		// the same arguments — counts now, not as it was when the call came in.
		if call, refusal = s.recheck(ctx, c, tool, in, verdict, approvalID); refusal != nil {
			return refusal
		}
	}
	if tool.Tier == safety.Green {
		return s.read(ctx, c, tool, verdict, call)
	}
	return s.execute(ctx, c, tool, tier, verdict, call, approvalID)
}

// read runs a GREEN call: it changes nothing, so it needs no row before it
// runs. One audit row records it afterwards, and the result reaches the
// caller only once that row is committed: no answer a client got is missing
// from the log. One "ended" event, stored in the same transaction, announces it.
func (s *Server) read(ctx context.Context, c Call, tool *tools.Tool, v safety.Verdict, call *tools.Call) *mcp.CallToolResult {
	out, runErr := s.run(ctx, c, call)
	elapsed := s.opts.Now().Sub(c.start)
	outcome := store.AuditOutcome{Status: store.OutcomeOK, Duration: elapsed}
	if runErr != nil {
		outcome.Status = store.OutcomeFailed
		outcome.Error = runErr.Error()
	}
	rowCtx, rowCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rowCancel()
	entry := s.auditEntry(c, safety.Green, string(safety.Allow), v.Plan, "")
	ev := s.toolEvent(c, safety.Green, store.ToolEnded, entry.Decision, v.Plan, call.Target.Node, elapsed, outcome.Status, outcome.Error)
	if _, err := s.opts.Store.AuditRead(rowCtx, entry, outcome, ev); err != nil {
		s.opts.Logger.Error("audit row of a read not confirmed; withholding its result", "tool", tool.Name, "err", err)
		s.observe(c, safety.Green, string(safety.Blocked), store.OutcomeRefused)
		return refusalResult(safety.Verdict{Decision: safety.Blocked, Tier: safety.Green, Plan: v.Plan,
			Reason: "the audit log could not be written (or not in time), so the result is withheld; check the database (jarvis doctor)"}, "")
	}
	s.observe(c, safety.Green, entry.Decision, outcome.Status)
	if runErr != nil {
		c.noteWrongInput(runErr)
		return errorResult(fmt.Sprintf("%s failed: %v", tool.Name, runErr))
	}
	return successResult(out)
}

// decide asks the safety policy about a prepared call, with the live switches.
// The verdict's tier is the call's own: a command's for execute_ssh.
func (s *Server) decide(ctx context.Context, c Call, tool *tools.Tool, call *tools.Call) safety.Verdict {
	// The switches never stop a GREEN read, so reads skip reading them.
	var st safety.State
	if tool.Tier != safety.Green {
		st = s.liveState(ctx)
	}
	// A tool whose tier depends on the arguments says so in the call: the
	// call's tier lies between the tool's MinTier and Tier, or is BLACK.
	tier := tool.Tier
	switch {
	case call.Tier == safety.Black:
		tier = safety.Black
	case call.Tier != 0:
		tier = min(max(call.Tier, tool.MinTier), tool.Tier)
	}
	v := c.cluster.Policy.Decide(safety.Request{
		Principal: c.Principal, Tool: tool.Name, Tier: tier, Target: call.Target, Also: call.Also,
		Effect: call.Effect, TierReason: call.TierReason, Command: call.Command,
	}, st)
	if s.several() && v.Plan != "" {
		// The plan is what a person approves: with several clusters it says
		// which, since node names and VMIDs may be the same on each.
		v.Plan = "[cluster " + c.cluster.Name + "] " + v.Plan
	}
	return v
}

// recheck decides a confirmed call again right before it runs: the target is
// resolved afresh and the live switches are read again. It returns the fresh call,
// or a refusal when the answer is no longer "run it" or the plan the person
// approved no longer describes what would run.
func (s *Server) recheck(ctx context.Context, c Call, tool *tools.Tool, in *tools.Input, approved safety.Verdict, approvalID string) (*tools.Call, *mcp.CallToolResult) {
	call, err := tool.Prepare(tools.Fresh(ctx), c.cluster.Env, in)
	if err != nil {
		tier := approved.Tier
		v := safety.Verdict{Decision: safety.Blocked, Tier: tier, Plan: approved.Plan,
			Reason: fmt.Sprintf("after the approval the target could not be checked again (%v), so nothing was done; call the tool again", err)}
		return nil, s.refuse(ctx, c, tier, v, approvalID)
	}
	verdict := s.decide(ctx, c, tool, call)
	tier := verdict.Tier
	switch {
	case verdict.Decision != safety.Allow && verdict.Decision != safety.NeedsApproval:
		verdict.Reason = strings.TrimSuffix(verdict.Reason, ".") + ". The call was approved, but the safety checks are made again at the moment of running, so nothing was done."
		return nil, s.refuse(ctx, c, tier, verdict, approvalID)
	case verdict.Plan != approved.Plan || verdict.Tier != approved.Tier:
		v := safety.Verdict{Decision: safety.Denied, Tier: tier, Plan: verdict.Plan,
			Reason: fmt.Sprintf("the target changed while the call waited: it was approved as %q, it would now %q; call the tool again to ask afresh", approved.Plan, verdict.Plan)}
		return nil, s.refuse(ctx, c, tier, v, approvalID)
	}
	return call, nil
}

// execute is steps 4–6: audit begin, run under a deadline, audit end and event.
func (s *Server) execute(ctx context.Context, c Call, tool *tools.Tool, tier safety.Tier, v safety.Verdict, call *tools.Call, approvalID string) *mcp.CallToolResult {
	entry := s.auditEntry(c, tier, string(safety.Allow), v.Plan, approvalID)
	if v.Decision == safety.NeedsApproval {
		entry.Decision = store.ApprovalApproved
	}
	if c.rule != nil {
		// The audit row names the rule version that stood in for a person.
		entry.Decision, entry.ApprovalID = DecisionRule, "rule:"+c.rule.rule.Ref()
	}
	// The rows are written whether or not the caller is still there: a
	// client that hangs up (on 2026-07-28 that cancels the call) must not
	// make an approved call look like a database failure.
	rowCtx, rowCancel := auditContext(ctx)
	defer rowCancel()
	beginID, err := s.opts.Store.AuditBegin(rowCtx, entry)
	if err != nil {
		if c.rule != nil {
			s.endStanding(context.WithoutCancel(ctx), c, c.rule, 0, store.OutcomeRefused, v.Plan)
		}
		s.opts.Logger.Error("audit log write failed; refusing the call", "tool", tool.Name, "err", err)
		s.observe(c, tier, string(safety.Blocked), store.OutcomeRefused)
		return refusalResult(safety.Verdict{Decision: safety.Blocked, Tier: tier, Plan: v.Plan,
			Reason: "the audit log could not be written, so the call was not run; check the database (jarvis doctor)"}, approvalID)
	}
	s.publishTool(ctx, c, tier, store.ToolBegun, entry.Decision, v.Plan, call.Target.Node, 0, "", "")
	if ctx.Err() != nil {
		// Gone before anything was sent: nothing ran, and the rows say so.
		reason := "the caller went away before the call ran, so nothing was done"
		if err := s.opts.Store.AuditEnd(rowCtx, beginID, store.AuditOutcome{Status: store.OutcomeRefused, Error: reason}); err != nil {
			s.opts.Logger.Error("audit end row failed", "tool", tool.Name, "audit_id", beginID, "err", err)
		}
		if c.rule != nil {
			s.endStanding(rowCtx, c, c.rule, beginID, store.OutcomeRefused, v.Plan)
		}
		s.publishTool(rowCtx, c, tier, store.ToolEnded, entry.Decision, v.Plan, call.Target.Node, s.opts.Now().Sub(c.start), store.OutcomeRefused, reason)
		s.observe(c, tier, entry.Decision, store.OutcomeRefused)
		return errorResult(fmt.Sprintf("%s: %s", tool.Name, reason))
	}

	out, runErr := s.run(ctx, c, call)
	elapsed := s.opts.Now().Sub(c.start)
	// Whatever the outcome, the cluster may have changed (over SSH too, which
	// the API client does not see): nobody reads the state from before it.
	c.cluster.Env.Changed()

	// Three outcomes, never conflated: ok, failed (refused by PVE, not sent, or
	// the task ended in error) and unknown (the write may or may not
	// have happened; never retried, the sentence says what to check).
	var unknown *tools.OutcomeUnknownError
	outcome := store.AuditOutcome{Status: store.OutcomeOK, Duration: elapsed, UPID: upidOf(out)}
	if runErr != nil {
		outcome.Status = store.OutcomeFailed
		if errors.As(runErr, &unknown) {
			outcome.Status = store.OutcomeUnknown
		}
		outcome.Error = runErr.Error()
		if outcome.UPID == "" {
			outcome.UPID = upidOf(runErr)
		}
	}
	// The end row is written on a fresh context: a client that hung up must not
	// leave a begun call without its ending.
	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer endCancel()
	if err := s.opts.Store.AuditEnd(endCtx, beginID, outcome); err != nil {
		s.opts.Logger.Error("audit end row failed", "tool", tool.Name, "audit_id", beginID, "err", err)
	}
	if runErr == nil {
		s.noteGuestRecords(endCtx, c, tool, beginID, out)
	}
	if c.rule != nil {
		s.endStanding(endCtx, c, c.rule, beginID, outcome.Status, v.Plan)
	}
	s.publishTool(endCtx, c, tier, store.ToolEnded, entry.Decision, v.Plan, call.Target.Node, elapsed, outcome.Status, outcome.Error)
	s.observe(c, tier, entry.Decision, outcome.Status)

	if unknown != nil {
		return errorResult(fmt.Sprintf("%s: %v", tool.Name, runErr))
	}
	if runErr != nil {
		return errorResult(fmt.Sprintf("%s failed: %v", tool.Name, runErr))
	}
	return successResult(out)
}

// run executes a prepared call under JARVIS_EXEC_TIMEOUT, with the caller's
// progress (if any), a panic turned into an error.
func (s *Server) run(ctx context.Context, c Call, call *tools.Call) (any, error) {
	runCtx, cancel := context.WithTimeout(ctx, s.opts.ExecTimeout)
	defer cancel()
	progress := c.Progress
	if progress == nil {
		progress = func(string, float64, float64) {}
	}
	return runSafely(runCtx, call, progress)
}

func runSafely(ctx context.Context, call *tools.Call, progress tools.Progress) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return call.Run(ctx, progress)
}

// liveState reads the persisted switches. A read failure is treated as "kill switch
// on": when Jarvis cannot tell, it does not act.
func (s *Server) liveState(ctx context.Context) safety.State {
	st, err := s.SafetyState(ctx)
	if err != nil {
		s.opts.Logger.Error("cannot read the safety switches; acting as if the kill switch were on", "err", err)
		st.KillSwitch = true
	}
	return st
}

func (s *Server) refuseUnknown(ctx context.Context, c Call) *mcp.CallToolResult {
	if c.start.IsZero() { // refused before Dispatch (server/mcp.go)
		c.start = s.opts.Now()
	}
	reason := fmt.Sprintf("there is no tool named %q; list the tools to see what is available", c.Tool)
	tier := safety.Black
	if safety.IsBlackTool(c.Tool) {
		reason = fmt.Sprintf("%s is never available to agents: it could take down the cluster or destroy data, so only a person at the console may do it", c.Tool)
	} else if t, ok := s.unregistered[c.Tool]; ok {
		tier = t
		reason = fmt.Sprintf("%s is not available: Jarvis runs in read-only mode (JARVIS_READ_ONLY)", c.Tool)
	}
	return s.refuse(ctx, c, tier, safety.Verdict{Decision: safety.Blocked, Tier: tier, Reason: reason}, "")
}

// failPrepare answers a call whose arguments or target were wrong: a tool error, audited.
func (s *Server) failPrepare(ctx context.Context, c Call, tool *tools.Tool, err error) *mcp.CallToolResult {
	entry := s.auditEntry(c, tool.Tier, "invalid", "", "")
	rowCtx, cancel := auditContext(ctx)
	defer cancel()
	if id, aerr := s.opts.Store.AuditBegin(rowCtx, entry); aerr == nil {
		_ = s.opts.Store.AuditEnd(rowCtx, id, store.AuditOutcome{Status: store.OutcomeRefused, Error: err.Error()})
	}
	s.observe(c, tool.Tier, entry.Decision, store.OutcomeRefused)
	if inErr := c.noteWrongInput(err); inErr != nil {
		return errorResult(inErr.Msg)
	}
	return errorResult(fmt.Sprintf("%s could not be prepared: %v", tool.Name, err))
}

// noteWrongInput tells c.wrongInput (if set) when err is an argument or
// target the caller got wrong, and returns that error, else nil.
func (c *Call) noteWrongInput(err error) *tools.InputError {
	var inErr *tools.InputError
	if !errors.As(err, &inErr) {
		return nil
	}
	if c.wrongInput != nil {
		c.wrongInput(inErr)
	}
	return inErr
}

// refuse writes the audit rows and the event for a refused call and returns the
// refusal result.
func (s *Server) refuse(ctx context.Context, c Call, tier safety.Tier, v safety.Verdict, approvalID string) *mcp.CallToolResult {
	if v.Tier == 0 {
		v.Tier = tier
	}
	entry := s.auditEntry(c, tier, string(v.Decision), v.Plan, approvalID)
	ctx, cancel := auditContext(ctx)
	defer cancel()
	if id, err := s.opts.Store.AuditBegin(ctx, entry); err != nil {
		s.opts.Logger.Error("audit log write failed for a refusal", "tool", c.Tool, "err", err)
	} else if err := s.opts.Store.AuditEnd(ctx, id, store.AuditOutcome{Status: store.OutcomeRefused, Error: v.Reason}); err != nil {
		s.opts.Logger.Error("audit end row failed for a refusal", "tool", c.Tool, "err", err)
	}
	s.publishTool(ctx, c, tier, store.ToolRefused, string(v.Decision), v.Plan, "", 0, string(v.Decision), v.Reason)
	s.observe(c, tier, string(v.Decision), store.OutcomeRefused)
	return refusalResult(v, approvalID)
}

// auditContext is the context audit rows are written on: not cancelled
// when the caller goes away, but bounded.
func auditContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

func (s *Server) auditEntry(c Call, tier safety.Tier, decision, plan, approvalID string) store.AuditEntry {
	if c.auditArgs == "" {
		_ = c.parseArgs()
	}
	return store.AuditEntry{
		Principal:  c.Principal.ID,
		Tool:       c.Tool,
		Args:       c.auditArgs,
		Tier:       tier.String(),
		Decision:   decision,
		Plan:       plan,
		ApprovalID: approvalID,
	}
}

// redactedArgs is the canonical, redacted JSON of the arguments for the audit log.
func redactedArgs(args map[string]any) string {
	canon, err := safety.CanonicalArgs(safety.RedactArgs(args))
	if err != nil {
		return `{"_uncanonical":true}`
	}
	return canon
}

// upidOf extracts a task id from a tool's output, or from its error (a failed or
// unknown task), when it has one.
func upidOf(out any) string {
	if u, ok := out.(interface{ TaskUPID() string }); ok {
		return u.TaskUPID()
	}
	var u interface{ TaskUPID() string }
	if err, ok := out.(error); ok && errors.As(err, &u) {
		return u.TaskUPID()
	}
	return ""
}
