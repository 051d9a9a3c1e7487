package server

// Standing approvals ("rules"): a person decides in advance that one caller
// may make one narrow RED call without asking at call time, within a budget.
// A rule only ever turns a needs_approval verdict into a run: BLACK tools,
// protected resources, the switches and the rate limits refuse before a rule
// is looked at. Rules are made by an operator (console, operator API, jarvis
// rule); nothing here is reachable through MCP.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// ruleGrant is a call let through by a rule: which version, which use of it.
type ruleGrant struct {
	rule   store.Rule
	useID  uint64
	target string
	left   int // uses left for target after this one
}

// staleAfter is how long a use of a rule may stay open before it counts as a
// call Jarvis stopped during (it never ended).
func (s *Server) staleAfter() time.Duration { return s.opts.ExecTimeout + time.Minute }

// checkRule checks a rule an operator wrote against this server: a RED tool
// that exists, arguments it takes, a known trigger, and whom it is for (a
// live agent token or operators), which it resolves to a principal id.
func (s *Server) checkRule(ctx context.Context, r *store.Rule) error {
	tool, ok := s.byName[r.Tool]
	if !ok {
		return fmt.Errorf("there is no tool %q here (see the tool list in the console or README)", r.Tool)
	}
	if tool.Tier != safety.Red {
		return fmt.Errorf("%s is %s, and only RED tools wait for a person; a rule is for RED tools only", r.Tool, tool.Tier)
	}
	if r.Trigger != "" && !slices.Contains(store.AlertKinds(), r.Trigger) {
		return fmt.Errorf("unknown trigger %q; one of %s", r.Trigger, strings.Join(store.AlertKinds(), ", "))
	}
	props := s.InputSchema(tool).Properties
	for name := range r.Args {
		if _, ok := props[name]; !ok || name == "approval_id" {
			return fmt.Errorf("%s has no argument %q", r.Tool, name)
		}
	}
	choices := strings.Join(s.ClusterNames(), ", ")
	// Every call names its cluster when there are several, and a rule lets
	// through only the arguments it names: without one it would never apply.
	if _, named := r.Args[tools.ClusterArg]; s.several() && !named {
		return fmt.Errorf("with several clusters every call names its cluster, so a rule must name the clusters it covers: add the argument cluster with one or more of %s (or * for any)", choices)
	}
	for _, v := range r.Args[tools.ClusterArg] {
		if v != "*" && !slices.Contains(s.ClusterNames(), v) {
			return fmt.Errorf("no cluster %s: one of %s", v, choices)
		}
	}
	// A shell command is only ever allowed word for word.
	if r.Tool == "execute_ssh" {
		if cmds := r.Args["command"]; len(cmds) == 0 || slices.Contains(cmds, "*") {
			return errors.New("a rule for execute_ssh must list the exact commands it allows (command=...)")
		}
	}
	// The trigger must be about what the tool's calls act on, or it could
	// never be open for one of them.
	if kinds := toolSubjectKinds(tool); r.Trigger != "" && !slices.Contains(kinds, alertSubjectKind(r.Trigger)) {
		return fmt.Errorf("a %s alert is about a %s, and %s acts on a %s, so the trigger could never be open for its calls; choose an alert about a %s, or none",
			r.Trigger, alertSubjectKind(r.Trigger), r.Tool, strings.Join(kinds, " on a "), strings.Join(kinds, " or a "))
	}
	who, err := s.rulePrincipal(ctx, r.Principal)
	if err != nil {
		return err
	}
	r.Principal = who
	return nil
}

// rulePrincipal resolves whom a rule is for: "operators", or one live agent
// token named by its id, its name (when unique) or its principal id.
func (s *Server) rulePrincipal(ctx context.Context, who string) (string, error) {
	if who == store.RuleOperators {
		return who, nil
	}
	toks, err := s.opts.Store.ListTokens(ctx)
	if err != nil {
		return "", err
	}
	var found []store.AgentToken
	for _, t := range toks {
		if t.RevokedAt != nil || (!t.ExpiresAt.IsZero() && !s.opts.Now().Before(t.ExpiresAt)) {
			continue
		}
		if t.ID == who || t.Name == who || agentPrincipal(t) == who {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return agentPrincipal(found[0]), nil
	case 0:
		return "", fmt.Errorf("no live agent token is named %q; give a token id or name from `jarvis token list`, or operators", who)
	default:
		return "", fmt.Errorf("%d live agent tokens are named %q; give the token id instead", len(found), who)
	}
}

// agentPrincipal is the principal id an agent token's calls carry (web/auth.go).
func agentPrincipal(t store.AgentToken) string { return "agent:" + t.Name + "/" + t.ID }

// CreateRule stores a new rule an operator wrote, and announces it.
func (s *Server) CreateRule(ctx context.Context, r store.Rule, by string) (*store.Rule, error) {
	if err := s.checkRule(ctx, &r); err != nil {
		return nil, err
	}
	r.CreatedBy = by
	if err := s.opts.Store.CreateRule(ctx, &r); err != nil {
		return nil, err
	}
	s.publishRule(ctx, r, r.Cluster, store.RuleCreated, by, "", "", "", 0, "")
	return &r, nil
}

// UpdateRule makes a new version of rule id, and announces it.
func (s *Server) UpdateRule(ctx context.Context, id string, r store.Rule, by string) (*store.Rule, error) {
	if err := s.checkRule(ctx, &r); err != nil {
		return nil, err
	}
	r.CreatedBy = by
	out, err := s.opts.Store.UpdateRule(ctx, id, r)
	if err != nil {
		return nil, err
	}
	s.publishRule(ctx, *out, out.Cluster, store.RuleUpdated, by, "", "", "", 0, "")
	return out, nil
}

// RevokeRule revokes rule id at once, and announces it.
func (s *Server) RevokeRule(ctx context.Context, id, by string) (*store.Rule, error) {
	out, err := s.opts.Store.RevokeRule(ctx, id, by)
	if err != nil {
		return nil, err
	}
	s.publishRule(ctx, *out, out.Cluster, store.RuleRevoked, by, "", "", "", 0, "")
	return out, nil
}

// Rule statuses (RuleView.Status).
const (
	RuleActive  = "active"
	RuleStopped = "stopped" // failures in a row reached its limit
	RuleExpired = "expired"
	RuleRevoked = "revoked"
)

// RuleView is a rule with what it has spent, for the console and jarvis rule list.
type RuleView struct {
	store.Rule
	Status string          `json:"status"`
	Spend  store.RuleSpend `json:"spend"`
}

// Rules lists the current version of every rule (only active ones unless
// all), with its spend.
func (s *Server) Rules(ctx context.Context, all bool) ([]RuleView, error) {
	now := s.opts.Now()
	rules, err := s.opts.Store.ListRules(ctx, !all, now)
	if err != nil {
		return nil, err
	}
	out := make([]RuleView, 0, len(rules))
	for _, r := range rules {
		v, err := s.ruleView(ctx, r, now)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// RuleDetail is one rule, current version, with its spend, and every version.
func (s *Server) RuleDetail(ctx context.Context, id string) (RuleView, []store.Rule, error) {
	versions, err := s.opts.Store.RuleVersions(ctx, id)
	if err != nil {
		return RuleView{}, nil, err
	}
	v, err := s.ruleView(ctx, versions[len(versions)-1], s.opts.Now())
	return v, versions, err
}

func (s *Server) ruleView(ctx context.Context, r store.Rule, now time.Time) (RuleView, error) {
	sp, err := s.opts.Store.SpendOf(ctx, r, now, s.staleAfter())
	if err != nil {
		return RuleView{}, err
	}
	v := RuleView{Rule: r, Spend: sp, Status: RuleActive}
	switch {
	case r.RevokedAt != nil:
		v.Status = RuleRevoked
	case !now.Before(r.ExpiresAt):
		v.Status = RuleExpired
	case sp.Stopped:
		v.Status = RuleStopped
	}
	return v, nil
}

// HasActiveRules reports whether any rule can let a call through: the
// watcher then keeps polling with nobody at the console.
func (s *Server) HasActiveRules(ctx context.Context) bool {
	rules, err := s.opts.Store.ListRules(ctx, true, s.opts.Now())
	return err == nil && len(rules) > 0
}

// subjectOf names what a call acts on as alerts name their subjects, for
// each kind of subject: "guest" (its guest), "service" (its service on its
// node), "node" (its node); "" when it names none of that kind.
func subjectOf(t safety.Target, kind string) string {
	switch {
	case kind == "guest" && t.VMID > 0:
		return store.GuestSubject(int64(t.VMID))
	case kind == "service" && t.Service != "" && t.Node != "":
		return store.ServiceSubject(t.Node, strings.TrimSuffix(t.Service, ".service"))
	case kind == "node" && t.Node != "":
		return store.NodeSubject(t.Node)
	}
	return ""
}

// toolSubjectKinds are the kinds of thing a tool's calls act on, its own
// first (the target of a rule's budget): a guest and its node for tools
// that take a vmid, a service and its node for those that take a service,
// else a node.
func toolSubjectKinds(t *tools.Tool) []string {
	switch props := t.InputSchema.Properties; {
	case props["vmid"] != nil:
		return []string{"guest", "node"}
	case props["service"] != nil:
		return []string{"service", "node"}
	}
	return []string{"node"}
}

// alertSubjectKind is the kind of thing an alert of kind is about.
func alertSubjectKind(kind string) string {
	switch kind {
	case store.AlertGuestStoppedUnexpectedly, store.AlertGuestStopped:
		return "guest"
	case store.AlertServiceFailed:
		return "service"
	case store.AlertStorageFull:
		return "storage"
	}
	return "node"
}

// OpenAlert is one alert the watcher raised and nothing has resolved yet.
// With several clusters, Cluster says whose, and Subject starts with it
// (lab/guest/101), as a rule's targets do.
type OpenAlert struct {
	ID       uint64    `json:"id"`
	Kind     string    `json:"kind"`
	Cluster  string    `json:"cluster,omitempty"`
	Subject  string    `json:"subject"`
	Node     string    `json:"node,omitempty"`
	VMID     int64     `json:"vmid,omitempty"`
	Service  string    `json:"service,omitempty"`
	Severity string    `json:"severity"`
	Summary  string    `json:"summary"`
	Since    time.Time `json:"since"`
}

// openAlerts reads the alerts the watcher raised and nobody resolved. Only
// the watcher's own count: an event posted through the operator API cannot
// open a rule's trigger.
func (s *Server) openAlerts(ctx context.Context) ([]OpenAlert, error) {
	evs, err := s.opts.Store.ListEvents(ctx, store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var out []OpenAlert
	for _, ev := range evs {
		var d store.AlertDetails
		if ev.Source != watcherSource || json.Unmarshal(ev.Details, &d) != nil || d.State != store.AlertRaised || d.AlertKind == "" {
			continue
		}
		a := OpenAlert{ID: ev.ID, Kind: d.AlertKind, Subject: d.Subject, Node: ev.Node, VMID: d.VMID,
			Service: d.Service, Severity: ev.Severity, Summary: ev.Summary, Since: ev.Time}
		if s.several() {
			// The watcher of several clusters names each alert's; one from
			// before several clusters names none and is the default's.
			a.Cluster = ev.Cluster
			if a.Cluster == "" {
				a.Cluster = s.defaultCluster().Name
			}
			if !strings.HasPrefix(a.Subject, a.Cluster+"/") {
				a.Subject = a.Cluster + "/" + a.Subject
			}
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b OpenAlert) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// watcherSource is the Source of the events server/watch publishes.
const watcherSource = "poller"

// triggerOpen reports whether an alert of kind is open for subject.
func triggerOpen(alerts []OpenAlert, kind, subject string) bool {
	for _, a := range alerts {
		if a.Kind == kind && a.Subject == subject {
			return true
		}
	}
	return false
}

// ruleTarget is the target a rule's budget counts a call's subject under,
// and its uses and messages name: the subject (guest/101) with one cluster,
// as before clusters existed; with several, the cluster before it
// (lab/guest/101), since each cluster may have its own guest/101.
func (s *Server) ruleTarget(c *Cluster, subject string) string {
	if !s.several() || subject == "" {
		return subject
	}
	return c.Name + "/" + subject
}

// standing looks for a rule that lets a call needing approval run now. It
// returns the grant, or why no rule applied (empty when none is for this
// caller and tool), for the needs_approval answer.
func (s *Server) standing(ctx context.Context, c Call, tool *tools.Tool, in *tools.Input, call *tools.Call, v safety.Verdict) (*ruleGrant, string) {
	now := s.opts.Now()
	rules, err := s.opts.Store.ListRules(ctx, true, now)
	if err != nil {
		s.opts.Logger.Error("cannot read standing approvals; asking a person", "err", err)
		return nil, "the standing approvals could not be read"
	}
	// The budget counts per target: what the call itself acts on.
	subject := subjectOf(call.Target, toolSubjectKinds(tool)[0])
	if subject == "" {
		return nil, ""
	}
	target := s.ruleTarget(c.cluster, subject)
	var alerts []OpenAlert
	alertsRead := false
	var why []string
	for _, r := range rules {
		if r.Tool != tool.Name || !r.Applies(c.Principal.ID, c.Principal.Kind == safety.Operator) {
			continue
		}
		if ok, reason := r.ArgsAllowed(in.Object, "approval_id"); !ok {
			why = append(why, fmt.Sprintf("rule %s does not cover this call: %s", r.Ref(), reason))
			continue
		}
		if r.Trigger != "" && !s.watched(c.cluster) {
			why = append(why, fmt.Sprintf("rule %s applies only while a %s alert is open, and alerts are raised for cluster %s only so far", r.Ref(), r.Trigger, s.defaultCluster().Name))
			continue
		}
		if r.Trigger != "" {
			if !alertsRead {
				if alerts, err = s.openAlerts(ctx); err != nil {
					return nil, "the open alerts could not be read"
				}
				alertsRead = true
			}
			// Alerts' subjects name their cluster as targets do (openAlerts).
			about := subjectOf(call.Target, alertSubjectKind(r.Trigger))
			if about == "" || !triggerOpen(alerts, r.Trigger, s.ruleTarget(c.cluster, about)) {
				why = append(why, fmt.Sprintf("rule %s applies only while a %s alert is open for %s, and none is", r.Ref(), r.Trigger, s.ruleTarget(c.cluster, about)))
				continue
			}
		}
		id, sp, err := s.opts.Store.ClaimRuleUse(ctx, store.RuleClaim{Rule: r, Principal: c.Principal.ID, Target: target,
			Node: call.Target.Node, Now: now, StaleAfter: s.staleAfter()})
		if err == nil {
			return &ruleGrant{rule: r, useID: id, target: target, left: sp.UsesLeft(r, target)}, ""
		}
		switch {
		case errors.Is(err, store.ErrRuleExhausted):
			why = append(why, fmt.Sprintf("rule %s allows %d calls per hour for %s and they are spent", r.Ref(), r.PerTargetPerHour, target))
			s.publishRule(ctx, r, s.callCluster(c), store.RuleExhausted, c.Principal.ID, target, v.Plan, "", 0,
				fmt.Sprintf("%d of %d calls this hour for %s used; a person must approve more", sp.UsesLastHour[target], r.PerTargetPerHour, target))
		case errors.Is(err, store.ErrRuleStopped):
			why = append(why, fmt.Sprintf("rule %s stopped after %d calls in a row did not end ok; an operator must change or revoke it", r.Ref(), sp.FailuresInARow))
			// Said here too: a rule stopped by calls Jarvis was cut off
			// during (a crash, a restart) was never announced when they ended.
			s.publishRule(ctx, r, s.callCluster(c), store.RuleStopped, c.Principal.ID, target, v.Plan, "", 0,
				fmt.Sprintf("%d calls in a row under it did not end ok; it lets nothing through until an operator changes or revokes it", sp.FailuresInARow))
		case errors.Is(err, store.ErrRuleBusy):
			why = append(why, fmt.Sprintf("rule %s lets one call run at a time, and one is running", r.Ref()))
		case errors.Is(err, store.ErrRuleInactive):
			why = append(why, fmt.Sprintf("rule %s was just changed, revoked or expired", r.Ref()))
		default:
			s.opts.Logger.Error("cannot claim a standing approval; asking a person", "rule", r.Ref(), "err", err)
			why = append(why, fmt.Sprintf("rule %s could not be checked", r.Ref()))
		}
	}
	return nil, strings.Join(why, "; ")
}

// endStanding records how a call let through by a rule ended, announces the
// use, and stops the rule (and says so) when failures in a row reached its limit.
func (s *Server) endStanding(ctx context.Context, c Call, g *ruleGrant, auditID uint64, outcome, plan string) {
	sp, err := s.opts.Store.EndRuleUse(ctx, g.rule, g.useID, outcome, auditID, s.staleAfter())
	if err != nil {
		s.opts.Logger.Error("could not record how a call under a standing approval ended", "rule", g.rule.Ref(), "err", err)
		return
	}
	s.publishRule(ctx, g.rule, s.callCluster(c), store.RuleUsed, c.Principal.ID, g.target, plan, outcome, sp.UsesLeft(g.rule, g.target), "")
	if sp.Stopped && outcome != store.OutcomeOK {
		s.publishRule(ctx, g.rule, s.callCluster(c), store.RuleStopped, c.Principal.ID, g.target, plan, outcome, 0,
			fmt.Sprintf("%d calls in a row under it did not end ok; it lets nothing through until an operator changes or revokes it", sp.FailuresInARow))
	}
}

// publishRule announces a rule's change or use on the feed.
// cluster is the call's (callCluster) for a use, else the rule's own.
func (s *Server) publishRule(ctx context.Context, r store.Rule, cluster, phase, actor, target, plan, outcome string, left int, reason string) {
	severity := store.SeverityInfo
	if phase == store.RuleExhausted || phase == store.RuleStopped || (phase == store.RuleUsed && outcome != store.OutcomeOK) {
		severity = store.SeverityWarning
	}
	summary := fmt.Sprintf("rule %s (%s for %s) %s by %s", r.Ref(), r.Tool, r.Principal, phase, actor)
	if target != "" {
		summary = fmt.Sprintf("rule %s %s for %s %s", r.Ref(), phase, r.Tool, target)
		if phase == store.RuleUsed {
			summary += fmt.Sprintf(" (%s; %d left this hour)", outcome, left)
		}
	}
	details := store.EncodeDetails(store.RuleDetails{Phase: phase, RuleID: r.ID, Version: r.Version, Principal: r.Principal,
		Tool: r.Tool, Target: target, Plan: plan, Outcome: outcome, UsesLeft: left, Actor: actor, Reason: reason})
	ev := &store.Event{Type: store.EventRule, Severity: severity, Source: "rules", Cluster: cluster, Summary: summary, Details: details}
	if err := s.opts.Store.Publish(context.WithoutCancel(ctx), ev); err != nil {
		s.opts.Logger.Warn("could not publish rule event", "err", err)
	}
}
