package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
)

// How jarvis rule prints rules: the summary sentence, table cells, times.

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
		// The trigger's alert is about the call's guest or service, or
		// about the node it is on.
		on := "that " + unit
		switch r.Trigger {
		case store.AlertGuestStoppedUnexpectedly, store.AlertGuestStopped:
			on = "that guest"
		case store.AlertServiceFailed:
			on = "that service"
		default:
			if unit != "node" {
				on = "its node"
			}
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
		// The arguments as callers pass them: with several clusters, cluster too.
		for name := range srv.InputSchema(tool).Properties {
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
