package main

// jarvis rule: standing approvals, made and changed only by the operator at
// the host (or in the console). A rule lets one caller make one narrow RED
// call without asking at call time, within a budget; server/rules.go checks
// and applies it, store/rules.go keeps its versions and uses.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// cliActor is whom the host commands act as in the audit and the feed
// (the same name jarvis approve and deny record).
const cliActor = "operator:cli"

// Defaults of jarvis rule create.
const (
	ruleDefaultPerHour     = 3
	ruleDefaultMaxFailures = 3
	ruleDefaultExpires     = "720h"
)

const ruleHelpHint = "(see jarvis rule --help)"

// ruleHelp is jarvis rule --help (main.go adds demoNote).
const ruleHelp = `Usage: jarvis rule create --for NAME|TOKEN_ID|operators --tool TOOL [--arg NAME=V1,V2]...
                          [--trigger KIND] [--per-hour N] [--max-failures K]
                          [--expires 30d] [--note TEXT] [--demo]
       jarvis rule list [--all] [--json] [--demo]
       jarvis rule show ID [--json] [--demo]
       jarvis rule update ID [the flags of create] [--demo]
       jarvis rule revoke ID [--demo]

Standing approvals: a rule lets one caller make one narrow RED call without
asking a person at call time, within a budget. Only the operator makes them
(here or in the console); BLACK tools, protected resources, the switches and
the rate limits still refuse first.

  --for           an agent token's name or id (jarvis token list), or operators
                  (the console login and stdio sessions)
  --tool          the RED tool it allows, e.g. start_vm
  --arg N=V1,V2   an argument the call may pass and the values it may take (* for
                  any); repeat for more arguments. A call that passes an argument
                  not named here is not covered. For execute_ssh give each exact
                  command in its own --arg command='...' (commas stay part of it)
  --trigger       an alert kind that must be open for what the call acts on (the
                  guest, its node or service): guest_stopped_unexpectedly,
                  guest_stopped, node_unreachable, node_memory, service_failed;
                  none clears it on update
  --per-hour      calls it lets through per target (guest, service) per hour (3)
  --max-failures  calls in a row that do not end ok before it stops (3)
  --expires       how long it holds from now: 12h, 720h, 30d (720h; 1m..366d)
  --note          why it exists

update makes a new version: the old one stops applying at once, flags not given
keep their values (--arg given replaces every argument), and the hour's budget
carries over. revoke stops it at once. list shows active rules (--all: revoked
and expired too) with what they spent this hour; show lists every version.
Needs DB_PATH and JWT_SECRET as the server has them.
`

var ruleIDPattern = regexp.MustCompile(`^r_[0-9a-f]{12}$`)

func runRule(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: jarvis rule create|list|show|update|revoke " + ruleHelpHint}
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "create":
		return runRuleCreate(ctx, demo, rest, stdout)
	case "update":
		return runRuleUpdate(ctx, demo, rest, stdout)
	case "list":
		return runRuleList(ctx, demo, rest, stdout)
	case "show":
		return runRuleShow(ctx, demo, rest, stdout)
	case "revoke":
		return runRuleRevoke(ctx, demo, rest, stdout)
	default:
		return usageError{fmt.Sprintf("unknown rule command %q: use create, list, show, update or revoke %s", sub, ruleHelpHint)}
	}
}

// ruleFlags are the flags of create and update.
type ruleFlags struct {
	fs                                   *flag.FlagSet
	forWho, tool, trigger, expires, note string
	perHour, maxFailures                 int
	args                                 rawArgs
}

// rawArgs collects every --arg as written; parseRuleArgs reads them.
type rawArgs []string

func (a *rawArgs) String() string     { return strings.Join(*a, " ") }
func (a *rawArgs) Set(s string) error { *a = append(*a, s); return nil }

func newRuleFlags(cmd string) *ruleFlags {
	f := &ruleFlags{fs: flag.NewFlagSet("rule "+cmd, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard) // the error is returned, with where to look
	f.fs.StringVar(&f.forWho, "for", "", "whom it lets act: an agent token's name or id (jarvis token list), or operators")
	f.fs.StringVar(&f.tool, "tool", "", "the RED tool it allows")
	f.fs.Var(&f.args, "arg", "name=v1,v2: an argument the call may pass and its allowed values (* any); repeatable")
	f.fs.StringVar(&f.trigger, "trigger", "", "an alert kind that must be open for the call's target")
	f.fs.IntVar(&f.perHour, "per-hour", ruleDefaultPerHour, "calls it lets through per target per hour")
	f.fs.IntVar(&f.maxFailures, "max-failures", ruleDefaultMaxFailures, "failures in a row that stop it")
	f.fs.StringVar(&f.expires, "expires", ruleDefaultExpires, "how long it holds, e.g. 12h, 30d")
	f.fs.StringVar(&f.note, "note", "", "why it exists, for whoever reads it later")
	return f
}

// parseFlags parses args whose flags may come before or after the
// positional arguments (jarvis rule update ID --per-hour 5), and returns
// those and the names of the flags given.
func parseFlags(fs *flag.FlagSet, cmd string, args []string) ([]string, map[string]bool, error) {
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return nil, nil, usageError{fmt.Sprintf("rule %s: %v %s", cmd, err, ruleHelpHint)}
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return pos, given, nil
}

// ruleID checks the one positional argument of show, update and revoke.
func ruleID(cmd string, pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Sprintf("usage: jarvis rule %s ID (ids look like r_0123456789ab; see jarvis rule list --all)", cmd)}
	}
	if !ruleIDPattern.MatchString(pos[0]) {
		return "", usageError{fmt.Sprintf("%q is not a rule id; ids look like r_ followed by 12 hex digits (see jarvis rule list --all)", pos[0])}
	}
	return pos[0], nil
}

// noRule turns a rule the store does not have into what to do about it.
func noRule(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no rule %s (see jarvis rule list --all)", id)
	}
	return err
}

func runRuleCreate(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	f := newRuleFlags("create")
	pos, given, err := parseFlags(f.fs, "create", args)
	if err != nil {
		return err
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q (every value comes with its flag, e.g. --tool start_vm)", pos[0]))
	}
	if strings.TrimSpace(f.forWho) == "" {
		problems = append(problems, "--for is required: an agent token's name or id (see jarvis token list), or operators")
	}
	if strings.TrimSpace(f.tool) == "" {
		problems = append(problems, "--tool is required: the RED tool the rule allows, e.g. start_vm")
	}
	r := store.Rule{Principal: strings.TrimSpace(f.forWho), Tool: strings.TrimSpace(f.tool), Note: f.note,
		PerTargetPerHour: f.perHour, MaxFailures: f.maxFailures}
	problems = append(problems, f.common(&r, given, true, time.Now())...)
	if len(problems) > 0 {
		return usageError{"rule create: " + strings.Join(problems, "; ") + " " + ruleHelpHint}
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkRuleArgs(srv, r); err != nil {
		return err
	}
	out, err := srv.CreateRule(ctx, r, cliActor)
	if err != nil {
		return fmt.Errorf("rule not created: %w", err)
	}
	fmt.Fprintf(stdout, "Created rule %s version %d: %s\n", out.ID, out.Version, describeRule(srv, *out, time.Now()))
	warnRuleToken(ctx, st, *out, stdout)
	return nil
}

func runRuleUpdate(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	f := newRuleFlags("update")
	pos, given, err := parseFlags(f.fs, "update", args)
	if err != nil {
		return err
	}
	id, err := ruleID("update", pos)
	if err != nil {
		return err
	}
	if len(given) == 0 {
		return usageError{fmt.Sprintf("rule update %s: nothing to change; give at least one of --for, --tool, --arg, --trigger, --per-hour, --max-failures, --expires, --note %s", id, ruleHelpHint)}
	}
	now := time.Now()
	next := store.Rule{}
	if given["for"] {
		if next.Principal = strings.TrimSpace(f.forWho); next.Principal == "" {
			return usageError{"rule update: --for needs an agent token's name or id (see jarvis token list), or operators"}
		}
	}
	if given["tool"] {
		if next.Tool = strings.TrimSpace(f.tool); next.Tool == "" {
			return usageError{"rule update: --tool needs the RED tool the rule allows, e.g. start_vm"}
		}
	}
	if problems := f.common(&next, given, false, now); len(problems) > 0 {
		return usageError{"rule update: " + strings.Join(problems, "; ") + " " + ruleHelpHint}
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	cur, err := st.GetRule(ctx, id)
	if err != nil {
		return noRule(id, err)
	}
	if cur.RevokedAt != nil {
		return fmt.Errorf("rule %s was revoked %s by %s and cannot be changed; make a new one with jarvis rule create", id, cur.RevokedAt.Local().Format(time.RFC3339), cur.RevokedBy)
	}
	// What was not given keeps the current version's value.
	if !given["for"] {
		next.Principal = cur.Principal
	}
	if !given["tool"] {
		next.Tool = cur.Tool
	}
	if !given["arg"] {
		next.Args = cur.Args
	}
	if !given["trigger"] {
		next.Trigger = cur.Trigger
	}
	next.PerTargetPerHour, next.MaxFailures, next.Note = f.perHour, f.maxFailures, f.note
	if !given["per-hour"] {
		next.PerTargetPerHour = cur.PerTargetPerHour
	}
	if !given["max-failures"] {
		next.MaxFailures = cur.MaxFailures
	}
	if !given["note"] {
		next.Note = cur.Note
	}
	if !given["expires"] {
		if !now.Before(cur.ExpiresAt) {
			return fmt.Errorf("rule %s expired %s; give --expires (e.g. --expires 30d) to renew it", id, cur.ExpiresAt.Local().Format(time.RFC3339))
		}
		next.ExpiresAt = cur.ExpiresAt
	}
	if err := checkRuleArgs(srv, next); err != nil {
		return err
	}
	out, err := srv.UpdateRule(ctx, id, next, cliActor)
	if err != nil {
		return fmt.Errorf("rule %s not changed: %w", id, err)
	}
	fmt.Fprintf(stdout, "Updated rule %s to version %d (version %d no longer applies): %s\n", out.ID, out.Version, cur.Version, describeRule(srv, *out, time.Now()))
	warnRuleToken(ctx, st, *out, stdout)
	return nil
}

// common reads the flags create and update share into r (those given, for
// update) and names each problem.
func (f *ruleFlags) common(r *store.Rule, given map[string]bool, create bool, now time.Time) []string {
	var problems []string
	if given["arg"] {
		args, errs := parseRuleArgs(f.args)
		r.Args = args
		problems = append(problems, errs...)
	}
	if given["trigger"] {
		r.Trigger = strings.TrimSpace(f.trigger)
		if r.Trigger == "none" {
			r.Trigger = ""
		}
		if r.Trigger != "" && !slices.Contains(store.AlertKinds(), r.Trigger) {
			problems = append(problems, fmt.Sprintf("--trigger %q is not an alert kind; use one of %s (or none)", f.trigger, strings.Join(store.AlertKinds(), ", ")))
		}
	}
	if f.perHour < 1 {
		problems = append(problems, fmt.Sprintf("--per-hour %d: it must be at least 1 (calls per target per hour)", f.perHour))
	}
	if f.maxFailures < 1 {
		problems = append(problems, fmt.Sprintf("--max-failures %d: it must be at least 1 (failures in a row that stop the rule)", f.maxFailures))
	}
	if given["expires"] || create {
		d, err := parseExpires(f.expires)
		if err != nil {
			problems = append(problems, err.Error())
		}
		r.ExpiresAt = now.Add(d)
	}
	return problems
}

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
	var takes []string
	for name := range tool.InputSchema.Properties {
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
		prop, ok := tool.InputSchema.Properties[name]
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
	for _, name := range tool.InputSchema.Required {
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

func runRuleList(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rule list", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := fs.Bool("all", false, "show revoked and expired rules too")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, _, err := parseFlags(fs, "list", args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("rule list: unexpected argument %q (for one rule: jarvis rule show ID)", pos[0])}
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := srv.Rules(ctx, *all)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, list)
	}
	if len(list) == 0 {
		if *all {
			fmt.Fprintln(stdout, "No rules. Make one with jarvis rule create (see jarvis rule --help).")
		} else {
			fmt.Fprintln(stdout, "No active rules (jarvis rule list --all shows revoked and expired ones too).")
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVERSION\tSTATUS\tFOR\tTOOL\tARGS\tTRIGGER\tSPENT\tFAILS\tEXPIRES")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\tv%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Version, v.Status, printable(v.Principal), v.Tool,
			argsText(v.Args), orDash(v.Trigger), spentText(v.Rule, v.Spend), fmt.Sprintf("%d/%d", v.Spend.FailuresInARow, v.MaxFailures),
			v.ExpiresAt.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func runRuleShow(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rule show", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, _, err := parseFlags(fs, "show", args)
	if err != nil {
		return err
	}
	id, err := ruleID("show", pos)
	if err != nil {
		return err
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	v, versions, err := srv.RuleDetail(ctx, id)
	if err != nil {
		return noRule(id, err)
	}
	if *asJSON {
		return writeJSON(stdout, struct {
			Rule     server.RuleView `json:"rule"`
			Versions []store.Rule    `json:"versions"`
		}{v, versions})
	}
	now := time.Now()
	fmt.Fprintf(stdout, "Rule %s version %d: %s\n", v.ID, v.Version, v.Status)
	fmt.Fprintf(stdout, "  %s\n", describeRule(srv, v.Rule, now))
	fmt.Fprintf(stdout, "  for:       %s\n", printable(v.Principal))
	fmt.Fprintf(stdout, "  tool:      %s\n", v.Tool)
	fmt.Fprintf(stdout, "  args:      %s\n", argsText(v.Args))
	fmt.Fprintf(stdout, "  trigger:   %s\n", orDash(v.Trigger))
	fmt.Fprintf(stdout, "  budget:    %d per %s per hour; stops after %d failures in a row\n", v.PerTargetPerHour, targetUnit(srv, v.Tool), v.MaxFailures)
	fmt.Fprintf(stdout, "  expires:   %s\n", whenText(v.ExpiresAt, now))
	if v.Note != "" {
		fmt.Fprintf(stdout, "  note:      %s\n", printable(v.Note))
	}
	fmt.Fprintf(stdout, "  made:      %s by %s\n", v.CreatedAt.Local().Format(time.RFC3339), printable(v.CreatedBy))
	if v.RevokedAt != nil {
		fmt.Fprintf(stdout, "  revoked:   %s by %s\n", v.RevokedAt.Local().Format(time.RFC3339), printable(v.RevokedBy))
	}
	fmt.Fprintln(stdout, "Spend:")
	fmt.Fprintf(stdout, "  last hour: %s\n", spentText(v.Rule, v.Spend))
	fmt.Fprintf(stdout, "  failures in a row: %d of %d", v.Spend.FailuresInARow, v.MaxFailures)
	if v.Spend.Stopped {
		fmt.Fprint(stdout, " (stopped: it lets nothing through until you update or revoke it)")
	}
	fmt.Fprintln(stdout)
	last := "never"
	if v.Spend.LastUsed != nil {
		last = v.Spend.LastUsed.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "  uses: %d in all, %d running, last %s\n", v.Spend.TotalUses, v.Spend.Running, last)
	if len(versions) > 1 {
		fmt.Fprintln(stdout, "Earlier versions:")
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERSION\tMADE\tBY\tFOR\tTOOL\tARGS\tTRIGGER\tPER HOUR\tMAX FAILS\tEXPIRES\tNOTE")
		for i := len(versions) - 2; i >= 0; i-- {
			r := versions[i]
			fmt.Fprintf(tw, "  v%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Version, r.CreatedAt.Local().Format("2006-01-02 15:04"),
				printable(r.CreatedBy), printable(r.Principal), r.Tool, argsText(r.Args), orDash(r.Trigger), r.PerTargetPerHour,
				r.MaxFailures, r.ExpiresAt.Local().Format("2006-01-02 15:04"), orDash(printable(r.Note)))
		}
		return tw.Flush()
	}
	fmt.Fprintln(stdout, "No earlier versions.")
	return nil
}

func runRuleRevoke(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rule revoke", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pos, _, err := parseFlags(fs, "revoke", args)
	if err != nil {
		return err
	}
	id, err := ruleID("revoke", pos)
	if err != nil {
		return err
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	out, err := srv.RevokeRule(ctx, id, cliActor)
	if err != nil {
		return noRule(id, err)
	}
	fmt.Fprintf(stdout, "Revoked rule %s (version %d, %s for %s): it lets nothing through from now on.\n", out.ID, out.Version, out.Tool, printable(out.Principal))
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// describeRule says in one sentence what a rule allows.
func describeRule(srv *server.Server, r store.Rule, now time.Time) string {
	var b strings.Builder
	who := "operators"
	if name, _, ok := agentParts(r.Principal); ok {
		who = "agent " + name
	} else if r.Principal != store.RuleOperators {
		who = r.Principal
	}
	unit := targetUnit(srv, r.Tool)
	fmt.Fprintf(&b, "%s may call %s %s", printable(who), r.Tool, argsPhrase(srv, r))
	if r.Trigger != "" {
		on := "what it acts on"
		if unit == "guest" || unit == "service" {
			on = "that " + unit + " or its node"
		}
		fmt.Fprintf(&b, " while a %s alert is open for %s", r.Trigger, on)
	}
	times := fmt.Sprintf("%d times", r.PerTargetPerHour)
	if r.PerTargetPerHour == 1 {
		times = "once"
	}
	fails := fmt.Sprintf("%d failures", r.MaxFailures)
	if r.MaxFailures == 1 {
		fails = "1 failure"
	}
	fmt.Fprintf(&b, ", at most %s per %s per hour, one call at a time; it stops after %s in a row; expires %s", times, unit, fails, whenText(r.ExpiresAt, now))
	return b.String()
}

// argsPhrase says which arguments a rule allows: "with vmid 101 or 102".
func argsPhrase(srv *server.Server, r store.Rule) string {
	names := make([]string, 0, len(r.Args))
	for name := range r.Args {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "with no arguments"
	}
	parts := make([]string, 0, len(names))
	for _, name := range names {
		values := r.Args[name]
		if slices.Contains(values, "*") {
			parts = append(parts, "any "+name)
			continue
		}
		quoted := make([]string, len(values))
		for i, v := range values {
			quoted[i] = valueText(v)
		}
		list := quoted[0]
		if n := len(quoted); n > 1 {
			list = strings.Join(quoted[:n-1], ", ") + " or " + quoted[n-1]
		}
		parts = append(parts, name+" "+list)
	}
	out := "with " + strings.Join(parts, " and ")
	if tool := ruleTool(srv, r.Tool); tool != nil {
		for name := range tool.InputSchema.Properties {
			if _, named := r.Args[name]; !named && name != "approval_id" {
				return out + " (and no other arguments)"
			}
		}
	}
	return out
}

// targetUnit names what a rule's budget is counted per: the subject the
// server counts (server.subjectsOf: the guest, else the service, else the node).
func targetUnit(srv *server.Server, toolName string) string {
	tool := ruleTool(srv, toolName)
	if tool == nil {
		return "target"
	}
	switch props := tool.InputSchema.Properties; {
	case props["vmid"] != nil:
		return "guest"
	case props["service"] != nil:
		return "service"
	}
	return "target"
}

// argsText is a rule's arguments for a table: vmid=101,102 force_stop=*.
func argsText(args map[string][]string) string {
	if len(args) == 0 {
		return "-"
	}
	names := make([]string, 0, len(args))
	for name := range args {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		values := make([]string, len(args[name]))
		for i, v := range args[name] {
			values[i] = valueText(v)
		}
		parts = append(parts, name+"="+strings.Join(values, ","))
	}
	return strings.Join(parts, " ")
}

// valueText quotes a value that would otherwise read as more than one.
func valueText(v string) string {
	if v == "" || strings.ContainsAny(v, " ,\"'=\t") {
		return printable(strconv.Quote(v))
	}
	return printable(v)
}

// spentText is the hour's spend by target: "guest/101 2/3", or "0/3".
func spentText(r store.Rule, sp store.RuleSpend) string {
	if len(sp.UsesLastHour) == 0 {
		return fmt.Sprintf("0/%d", r.PerTargetPerHour)
	}
	targets := make([]string, 0, len(sp.UsesLastHour))
	for t := range sp.UsesLastHour {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	parts := make([]string, len(targets))
	for i, t := range targets {
		parts[i] = fmt.Sprintf("%s %d/%d", printable(t), sp.UsesLastHour[t], r.PerTargetPerHour)
	}
	return strings.Join(parts, ", ")
}

// whenText is a moment with how far off it is: "2025-07-01 12:00 CEST (in 30 days)".
func whenText(t, now time.Time) string {
	at := t.Local().Format("2006-01-02 15:04 MST")
	d := t.Sub(now).Round(time.Minute)
	switch {
	case d <= 0:
		return at + " (expired)"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%s (in %d days)", at, int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%s (in %d hours)", at, int(d.Hours()))
	default:
		return fmt.Sprintf("%s (in %d minutes)", at, int(d.Minutes()))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
