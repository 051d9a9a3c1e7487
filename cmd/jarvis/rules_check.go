package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// What jarvis rule reads from its flags and checks before the server does:
// argument values against the tool's schema, the expiry, the token's ceiling.

// parseRuleArgs reads --arg name=v1,v2 (repeatable; the same name again adds
// values). A shell command is taken whole: commas are part of it, so each
// command gets its own --arg command=....
func parseRuleArgs(raw []string) (map[string][]string, []string) {
	out := map[string][]string{}
	var problems []string
	for _, a := range raw {
		name, value, ok := strings.Cut(a, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			problems = append(problems, fmt.Sprintf("--arg %q: write name=value[,value…], e.g. --arg vmid=101,102 (or vmid=* for any value)", a))
			continue
		}
		var values []string
		if name == "command" {
			if strings.TrimSpace(value) != "" {
				values = []string{value}
			}
		} else {
			for v := range strings.SplitSeq(value, ",") {
				if v = strings.TrimSpace(v); v != "" {
					values = append(values, v)
				}
			}
		}
		if len(values) == 0 {
			problems = append(problems, fmt.Sprintf("--arg %s= gives no value; list the allowed values, e.g. --arg %s=VALUE1,VALUE2, or %s=* for any", name, name, name))
			continue
		}
		for _, v := range values {
			if !slices.Contains(out[name], v) {
				out[name] = append(out[name], v)
			}
		}
	}
	return out, problems
}

// parseExpires accepts Go durations and days ("30d"), 1m..366d.
func parseExpires(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > 366 {
			return 0, fmt.Errorf("--expires %q: days must be 1..366, e.g. --expires 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute || d > 366*24*time.Hour {
		return 0, fmt.Errorf("--expires %q: use a duration such as 12h, 720h or 30d (1m..366d)", s)
	}
	return d, nil
}

// ruleTool is the RED tool a rule names, or nil: the server then says why
// (no such tool, not RED).
func ruleTool(srv *server.Server, name string) *tools.Tool {
	for _, t := range srv.AllTools() {
		if t.Name == name && t.Tier == safety.Red {
			return t
		}
	}
	return nil
}

// checkRuleArgs checks the argument constraints against the tool's input,
// before the server does, so the message can list what the tool takes: a
// rule that names an argument the tool lacks, a value of the wrong type, or
// leaves out an argument every call passes would never let anything through.
func checkRuleArgs(srv *server.Server, r store.Rule) error {
	tool := ruleTool(srv, r.Tool)
	if tool == nil {
		return nil
	}
	// As callers see it: with several clusters, with the cluster argument.
	schema := srv.InputSchema(tool)
	var takes []string
	for name := range schema.Properties {
		if name != "approval_id" {
			takes = append(takes, name)
		}
	}
	slices.Sort(takes)
	names := make([]string, 0, len(r.Args))
	for name := range r.Args {
		names = append(names, name)
	}
	slices.Sort(names)
	var problems []string
	for _, name := range names {
		prop, ok := schema.Properties[name]
		if !ok || name == "approval_id" {
			problems = append(problems, fmt.Sprintf("%s has no argument %q; it takes %s", r.Tool, name, strings.Join(takes, ", ")))
			continue
		}
		for _, v := range r.Args[name] {
			if v == "*" {
				continue
			}
			if why := valueProblem(prop.Type, prop.Enum, v); why != "" {
				problems = append(problems, fmt.Sprintf("--arg %s=%s: %s", name, v, why))
			}
		}
	}
	if r.Tool == "execute_ssh" {
		if cmds := r.Args["command"]; len(cmds) == 0 || slices.Contains(cmds, "*") {
			problems = append(problems, `a rule for execute_ssh must list the exact commands it allows, each in its own --arg, e.g. --arg command='systemctl restart nginx' ("*" is not allowed)`)
		}
	}
	for _, name := range schema.Required {
		if _, ok := r.Args[name]; !ok && name != "approval_id" && !(r.Tool == "execute_ssh" && name == "command") {
			problems = append(problems, fmt.Sprintf("every %s call passes %s, and a rule allows only the arguments it names: add --arg %s=VALUES (or %s=* for any)", r.Tool, name, name, name))
		}
	}
	if len(problems) > 0 {
		return usageError{"rule not stored: " + strings.Join(problems, "; ")}
	}
	return nil
}

// valueProblem says why v can never be what a call passes for an argument
// of JSON type typ with the values enum (if any), or "".
func valueProblem(typ string, enum []any, v string) string {
	switch typ {
	case "integer":
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return "it takes whole numbers, e.g. 101"
		}
	case "number":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "it takes numbers"
		}
	case "boolean":
		if v != "true" && v != "false" {
			return "it takes true or false"
		}
	}
	if len(enum) > 0 {
		var allowed []string
		for _, e := range enum {
			s := fmt.Sprint(e)
			if s == v {
				return ""
			}
			allowed = append(allowed, s)
		}
		return "it takes one of " + strings.Join(allowed, ", ")
	}
	return ""
}

// warnRuleToken says when a rule for an agent can never apply because the
// agent's token stops its RED calls first (a ceiling below red).
func warnRuleToken(ctx context.Context, st *store.Store, r store.Rule, stdout io.Writer) {
	_, id, ok := agentParts(r.Principal)
	if !ok {
		return
	}
	toks, err := st.ListTokens(ctx)
	if err != nil {
		return
	}
	for _, t := range toks {
		if t.ID == id && t.MaxTier != safety.Red.String() {
			fmt.Fprintf(stdout, "Note: token %s (%s) has max tier %s, so its RED calls are refused before any rule is looked at; this rule applies only to a token with --max-tier red.\n", t.ID, t.Name, t.MaxTier)
		}
	}
}

// agentParts splits an agent's principal id ("agent:name/tok_…").
func agentParts(principal string) (name, id string, ok bool) {
	rest, ok := strings.CutPrefix(principal, "agent:")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/")
	if i < 0 {
		return rest, "", true
	}
	return rest[:i], rest[i+1:], true
}
