package server

// MCP for agents that watch: the open alerts as a tool (list_alerts) and a
// resource (jarvis://alerts) that clients can subscribe to, and the
// remediate_alert prompt. Each alert lists the standing approvals that let
// this caller act on it.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// AlertsURI is the resource of the open alerts.
const AlertsURI = "jarvis://alerts"

// OpenAlertsFor lists the open alerts with the rules that let caller act on
// each (tools.Alerts, for list_alerts).
func (s *Server) OpenAlertsFor(ctx context.Context, caller safety.Principal) (*tools.AlertList, error) {
	alerts, err := s.openAlerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the open alerts: %w", err)
	}
	now := s.opts.Now()
	rules, err := s.opts.Store.ListRules(ctx, true, now)
	if err != nil {
		return nil, fmt.Errorf("reading the standing approvals: %w", err)
	}
	out := &tools.AlertList{Alerts: []tools.OpenAlert{}}
	for _, a := range alerts {
		oa := tools.OpenAlert{ID: a.ID, Kind: a.Kind, Subject: a.Subject, Node: a.Node, VMID: a.VMID, Service: a.Service,
			Severity: a.Severity, Summary: a.Summary, Since: a.Since.UTC().Format(time.RFC3339), Rules: []tools.AlertRule{}}
		for _, r := range rules {
			// A rule is listed under the alerts of its trigger, and one
			// without a trigger under alerts about what its tool acts on.
			tool, ok := s.byName[r.Tool]
			if !ok || !r.Applies(caller.ID, caller.Kind == safety.Operator) || !ruleCovers(r, a) || !s.ruleOnCluster(r, a.Cluster) {
				continue
			}
			kinds := toolSubjectKinds(tool)
			if (r.Trigger != "" && r.Trigger != a.Kind) || (r.Trigger == "" && alertSubjectKind(a.Kind) != kinds[0]) ||
				!slices.Contains(kinds, alertSubjectKind(a.Kind)) {
				continue
			}
			sp, err := s.opts.Store.SpendOf(ctx, r, now, s.staleAfter())
			if err != nil || sp.Stopped {
				continue
			}
			// The budget is per target (a guest, a service): for an alert
			// about one, what is left for it; for a node alert, per target.
			left := r.PerTargetPerHour
			if alertSubjectKind(a.Kind) == kinds[0] {
				left = sp.UsesLeft(r, a.Subject) // the subject as the budget's targets name it
			}
			oa.Rules = append(oa.Rules, tools.AlertRule{Rule: r.Ref(), Tool: r.Tool, Args: r.Args,
				UsesLeft: left, Expires: r.ExpiresAt.UTC().Format(time.RFC3339)})
		}
		out.Alerts = append(out.Alerts, oa)
	}
	return out, nil
}

// ruleCovers reports whether a rule's argument constraints allow acting on
// the alert's subject: its vmid, node and service, where it names them. The
// caller has checked that the rule's tool acts on that kind of subject.
func ruleCovers(r store.Rule, a OpenAlert) bool {
	allows := func(name, value string) bool {
		vals, named := r.Args[name]
		return !named || value == "" || slices.Contains(vals, "*") || slices.Contains(vals, value)
	}
	vmid := ""
	if a.VMID > 0 {
		vmid = strconv.FormatInt(a.VMID, 10)
	}
	return allows("vmid", vmid) && allows("node", a.Node) && (allows("service", a.Service) || allows("service", a.Service+".service"))
}

// suggestedArgs are the arguments a rule allows for acting on an alert: the
// alert's own vmid, node or service where the rule names them, else the one
// value it allows.
func suggestedArgs(r store.Rule, a tools.OpenAlert) map[string]any {
	out := map[string]any{}
	for name, vals := range r.Args {
		switch {
		case name == "vmid" && a.VMID > 0:
			out[name] = a.VMID
		case name == "node" && a.Node != "":
			out[name] = a.Node
		case name == "service" && a.Service != "":
			// The unit as the rule spells it, with or without ".service".
			out[name] = a.Service
			if !slices.Contains(vals, a.Service) && slices.Contains(vals, a.Service+".service") {
				out[name] = a.Service + ".service"
			}
		case len(vals) == 1 && vals[0] != "*":
			out[name] = vals[0]
		}
	}
	return out
}

// AlertSubscribers is how many MCP sessions follow jarvis://alerts now; the
// watcher polls while there are any. A session that ended without
// unsubscribing (the SDK does not say) stops counting once it is gone.
func (s *Server) AlertSubscribers() int {
	live := map[*mcp.ServerSession]bool{}
	s.mu.Lock()
	for _, srv := range s.servers {
		for ss := range srv.Sessions() {
			live[ss] = true
		}
	}
	s.mu.Unlock()
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for ss := range s.alertSubs {
		if !live[ss] {
			delete(s.alertSubs, ss)
		}
	}
	return len(s.alertSubs)
}

func (s *Server) subscribeAlerts(_ context.Context, req *mcp.SubscribeRequest) error {
	if req.Params.URI != AlertsURI {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.alertSubs == nil {
		s.alertSubs = map[*mcp.ServerSession]bool{}
	}
	s.alertSubs[req.Session] = true
	return nil
}

func (s *Server) unsubscribeAlerts(_ context.Context, req *mcp.UnsubscribeRequest) error {
	if req.Params.URI == AlertsURI {
		s.subsMu.Lock()
		delete(s.alertSubs, req.Session)
		s.subsMu.Unlock()
	}
	return nil
}

// RunAlertUpdates tells subscribed clients that jarvis://alerts changed
// whenever an alert is raised or resolved or a rule changes or is used,
// until ctx ends.
func (s *Server) RunAlertUpdates(ctx context.Context) {
	sub := s.opts.Store.Subscribe(256)
	defer func() { sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				// Dropped for being slow, or the store closed: follow again
				// after a pause (a closed store's subscription is closed at once).
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				sub = s.opts.Store.Subscribe(256)
				s.alertsUpdated(ctx)
				continue
			}
			if ev.Type == store.EventAlert || ev.Type == store.EventRule {
				s.alertsUpdated(ctx)
			}
		}
	}
}

func (s *Server) alertsUpdated(ctx context.Context) {
	s.mu.Lock()
	servers := make([]*mcp.Server, 0, len(s.servers))
	for _, srv := range s.servers {
		servers = append(servers, srv)
	}
	s.mu.Unlock()
	for _, srv := range servers {
		_ = srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: AlertsURI})
	}
}

// addAlerts adds the alerts resource and the remediate_alert prompt.
func (s *Server) addAlerts(srv *mcp.Server, principalOf func(*auth.TokenInfo) (safety.Principal, bool), read readResource) {
	srv.AddResource(&mcp.Resource{
		URI: AlertsURI, Name: "alerts", Title: "Open alerts",
		Description: "Alerts that are open now, each with a stable id, kind, subject, since, and the standing approvals that let you act on it (list_alerts). Subscribe to hear when it changes.",
		MIMEType:    "application/json",
	}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return read(ctx, req, "list_alerts", map[string]any{})
	})
	srv.AddPrompt(&mcp.Prompt{
		Name:        "remediate_alert",
		Title:       "Remediate an alert",
		Description: "Look into one open alert and fix it: with a standing approval when one covers it, else by proposing an action a person approves.",
		Arguments: []*mcp.PromptArgument{{Name: "alert_id", Title: "Alert id",
			Description: "the id of an open alert (jarvis://alerts or list_alerts)", Required: true}},
	}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		var ti *auth.TokenInfo
		if req.Extra != nil {
			ti = req.Extra.TokenInfo
		}
		p, ok := principalOf(ti)
		if !ok {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the caller could not be identified; use a valid token"}
		}
		id, err := strconv.ParseUint(strings.TrimSpace(req.Params.Arguments["alert_id"]), 10, 64)
		if err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "alert_id must be the number of an open alert (read jarvis://alerts)"}
		}
		list, err := s.OpenAlertsFor(ctx, p)
		if err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
		}
		for _, a := range list.Alerts {
			if a.ID == id {
				// With several clusters the subject starts with the
				// alert's cluster (openAlerts).
				cluster := ""
				if s.several() {
					cluster, _, _ = strings.Cut(a.Subject, "/")
				}
				return &mcp.GetPromptResult{Description: "Remediate alert " + strconv.FormatUint(id, 10),
					Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: remediateText(a, cluster)}}}}, nil
			}
		}
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: fmt.Sprintf("there is no open alert %d (it may have been resolved); read jarvis://alerts for the open ones", id)}
	})
}

// remediateText is the remediate_alert prompt for one alert; cluster is the
// cluster it is about when Jarvis serves several ("" with one).
func remediateText(a tools.OpenAlert, cluster string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Jarvis alert %d is open since %s: %s (kind %s, subject %s, severity %s).\n\n", a.ID, a.Since, a.Summary, a.Kind, a.Subject, a.Severity)
	if cluster != "" {
		fmt.Fprintf(&b, "It is about cluster %s: pass cluster %q to every tool you call for it.\n", cluster, cluster)
	}
	b.WriteString("First read what is going on, changing nothing: get_guest_status or get_node_status for the subject, get_recent_tasks, and get_task_log or get_node_logs where they help.\n")
	if len(a.Rules) > 0 {
		r := a.Rules[0]
		suggested := suggestedArgs(store.Rule{Args: r.Args}, a)
		if cluster != "" {
			suggested[tools.ClusterArg] = cluster
		}
		args, _ := json.Marshal(suggested)
		fmt.Fprintf(&b, "A standing approval (%s) lets you act without waiting for a person: call %s with exactly %s. It allows %d more call(s) for %s this hour; use one, once.\n",
			r.Rule, r.Tool, args, r.UsesLeft, a.Subject)
		b.WriteString("Then check that it worked (read the subject's status again). If the call is refused or fails, do not retry in a loop: say what happened and what a person should look at.\n")
	} else {
		b.WriteString("No standing approval covers this alert for you: propose one action that would fix it and why, then call that tool. A RED call waits for a person's approval; tell the user the approval id and wait.\n")
	}
	b.WriteString("End with a short report: the cause as far as you can tell, what you did, and what is still open.")
	return b.String()
}
