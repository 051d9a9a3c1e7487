package main

// jarvis rule: standing approvals, made and changed only by the operator at
// the host (or in the console). A rule lets one caller make one narrow RED
// call without asking at call time, within a budget; server/rules.go checks
// and applies it, store/rules.go keeps its versions and uses.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
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
Needs the database (DB_PATH or JARVIS_DATABASE_URL) and JWT_SECRET as the
server has them.
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

// openRuleCommand reads a subcommand's flags and rule id, then opens the
// store and server (show, revoke); the caller closes the store.
func openRuleCommand(fs *flag.FlagSet, cmd string, demo bool, args []string) (string, *store.Store, *server.Server, error) {
	pos, _, err := parseFlags(fs, cmd, args)
	if err != nil {
		return "", nil, nil, err
	}
	id, err := ruleID(cmd, pos)
	if err != nil {
		return "", nil, nil, err
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return "", nil, nil, err
	}
	return id, st, srv, nil
}

func runRuleShow(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rule show", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	id, st, srv, err := openRuleCommand(fs, "show", demo, args)
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
	id, st, srv, err := openRuleCommand(fs, "revoke", demo, args)
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
