package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
)

// ruleState is a fresh database (testDatabase) and JWT_SECRET with one agent
// token with max tier red, named nightwatch, made the way jarvis token create
// makes it.
func ruleState(t *testing.T) {
	t.Helper()
	clearEnv(t)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("JWT_SECRET", strings.Repeat("r", 40))
	testDatabase(t)
	var out bytes.Buffer
	if err := runToken(context.Background(), false, []string{"create", "--name", "nightwatch", "--max-tier", "red"}, &out); err != nil {
		t.Fatalf("token create: %v\n%s", err, out.String())
	}
}

// rule runs jarvis rule with args and returns what it printed.
func rule(args ...string) (string, error) {
	var out bytes.Buffer
	err := runRule(context.Background(), false, args, &out)
	return out.String(), err
}

func mustRule(t *testing.T, args ...string) string {
	t.Helper()
	out, err := rule(args...)
	if err != nil {
		t.Fatalf("jarvis rule %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func ruleListJSON(t *testing.T, all bool) []server.RuleView {
	t.Helper()
	args := []string{"list", "--json"}
	if all {
		args = append(args, "--all")
	}
	var list []server.RuleView
	if err := json.Unmarshal([]byte(mustRule(t, args...)), &list); err != nil {
		t.Fatalf("jarvis rule list --json: %v", err)
	}
	return list
}

// tableRow returns the line of a table that starts with id, split in columns.
func tableRow(t *testing.T, table, id string) []string {
	t.Helper()
	for line := range strings.SplitSeq(table, "\n") {
		if strings.HasPrefix(line, id+" ") {
			return strings.Fields(line)
		}
	}
	return nil
}

var ruleIDRE = regexp.MustCompile(`rule (r_[0-9a-f]{12}) (?:to )?version (\d+)`)

// A rule from creation to revocation: it is listed active with nothing
// spent, update makes version 2 keeping what was not given, show lists both
// versions, and a revoked rule leaves the active list but not --all.
func TestRuleLifecycle(t *testing.T) {
	ruleState(t)

	out := mustRule(t, "create", "--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101,102",
		"--trigger", "guest_stopped_unexpectedly", "--note", "restart what crashed at night")
	m := ruleIDRE.FindStringSubmatch(out)
	if m == nil || m[2] != "1" {
		t.Fatalf("create printed no rule id and version 1:\n%s", out)
	}
	id := m[1]
	for _, want := range []string{
		"agent nightwatch may call start_vm with vmid 101 or 102 while a guest_stopped_unexpectedly alert is open for that guest,",
		"at most 3 times per guest per hour", "it stops after 3 failures in a row", "(in 30 days)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("create's summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Note:") {
		t.Errorf("a red token drew a warning:\n%s", out)
	}

	table := mustRule(t, "list")
	row := tableRow(t, table, id)
	if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, "SPENT") || !strings.Contains(table, "FAILS") {
		t.Errorf("list has no header:\n%s", table)
	}
	if len(row) < 9 || row[1] != "v1" || row[2] != "active" || !strings.HasPrefix(row[3], "agent:nightwatch/tok_") ||
		row[4] != "start_vm" || row[5] != "vmid=101,102" || row[6] != "guest_stopped_unexpectedly" || row[7] != "0/3" || row[8] != "0/3" {
		t.Errorf("list row for %s = %q\n%s", id, row, table)
	}
	list := ruleListJSON(t, false)
	if len(list) != 1 || list[0].ID != id || list[0].Status != server.RuleActive || list[0].Spend.TotalUses != 0 ||
		list[0].CreatedBy != cliActor || list[0].PerTargetPerHour != 3 || list[0].MaxFailures != 3 {
		t.Fatalf("list --json = %+v", list)
	}
	v1 := list[0]
	if d := time.Until(v1.ExpiresAt); d < 719*time.Hour || d > 720*time.Hour {
		t.Errorf("default expiry is %v away, want 720h", d)
	}

	// Flags may follow or precede the id; what is not given is kept.
	out = mustRule(t, "update", id, "--per-hour", "5", "--arg", "vmid=101")
	if m := ruleIDRE.FindStringSubmatch(out); m == nil || m[1] != id || m[2] != "2" {
		t.Fatalf("update did not make version 2 of %s:\n%s", id, out)
	}
	if !strings.Contains(out, "with vmid 101 while") || !strings.Contains(out, "at most 5 times per guest per hour") {
		t.Errorf("update's summary:\n%s", out)
	}

	var detail struct {
		Rule     server.RuleView `json:"rule"`
		Versions []store.Rule    `json:"versions"`
	}
	if err := json.Unmarshal([]byte(mustRule(t, "show", "--json", id)), &detail); err != nil {
		t.Fatal(err)
	}
	r := detail.Rule
	if r.Version != 2 || r.PerTargetPerHour != 5 || !slices.Equal(r.Args["vmid"], []string{"101"}) || len(r.Args) != 1 ||
		r.Trigger != v1.Trigger || r.Principal != v1.Principal || r.Note != v1.Note || r.MaxFailures != 3 || !r.ExpiresAt.Equal(v1.ExpiresAt) {
		t.Errorf("version 2 = %+v, want per-hour 5 and vmid 101 with the rest of version 1 (%+v)", r, v1.Rule)
	}
	if len(detail.Versions) != 2 || detail.Versions[0].Current || !detail.Versions[1].Current ||
		!slices.Equal(detail.Versions[0].Args["vmid"], []string{"101", "102"}) {
		t.Errorf("versions = %+v", detail.Versions)
	}
	show := mustRule(t, "show", id)
	for _, want := range []string{"Rule " + id + " version 2: active", "budget:    5 per guest per hour", "note:      restart what crashed at night",
		"made:", "by operator:cli", "last hour: 0/5", "failures in a row: 0 of 3", "Earlier versions:"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	if old := tableRow(t, strings.ReplaceAll(show, "\n  v", "\nv"), "v1"); len(old) < 7 || old[6] != "vmid=101,102" {
		t.Errorf("show's version 1 row = %q\n%s", old, show)
	}

	// none clears the trigger; the expiry given counts from now.
	out = mustRule(t, "update", "--trigger", "none", "--expires", "1h", id)
	if m := ruleIDRE.FindStringSubmatch(out); m == nil || m[2] != "3" || strings.Contains(out, "alert is open") || !strings.Contains(out, "(in 60 minutes)") {
		t.Errorf("update --trigger none --expires 1h:\n%s", out)
	}
	if l := ruleListJSON(t, false); len(l) != 1 || l[0].Trigger != "" || l[0].Version != 3 || time.Until(l[0].ExpiresAt) > time.Hour {
		t.Errorf("after clearing the trigger: %+v", l)
	}

	out = mustRule(t, "revoke", id)
	if !strings.Contains(out, "Revoked rule "+id) {
		t.Errorf("revoke printed %q", out)
	}
	if out := mustRule(t, "list"); strings.Contains(out, id) || !strings.Contains(out, "No active rules") {
		t.Errorf("list after revoke shows the rule:\n%s", out)
	}
	if l := ruleListJSON(t, false); len(l) != 0 {
		t.Errorf("list --json after revoke = %+v", l)
	}
	all := mustRule(t, "list", "--all")
	if row := tableRow(t, all, id); len(row) < 3 || row[1] != "v3" || row[2] != "revoked" {
		t.Errorf("list --all row = %q\n%s", row, all)
	}
	if show := mustRule(t, "show", id); !strings.Contains(show, "version 3: revoked") || !strings.Contains(show, "revoked:") {
		t.Errorf("show after revoke:\n%s", show)
	}

	// A revoked rule stays revoked.
	for _, args := range [][]string{{"revoke", id}, {"update", id, "--per-hour", "1"}} {
		if out, err := rule(args...); err == nil {
			t.Errorf("jarvis rule %s after revoke succeeded:\n%s", strings.Join(args, " "), out)
		} else if !strings.Contains(err.Error(), "already revoked") && !strings.Contains(err.Error(), "jarvis rule create") {
			t.Errorf("jarvis rule %s after revoke = %v", strings.Join(args, " "), err)
		}
	}
}

// Rules for operators, for a service, and for exact shell commands (commas
// kept), each described in words of its own target.
func TestRuleCreateShapes(t *testing.T) {
	ruleState(t)
	for _, c := range []struct {
		args []string
		want []string // in create's output
		row  map[int]string
	}{
		{
			args: []string{"--for", "operators", "--tool", "restart_service", "--arg", "node=pve1", "--arg", "service=nginx,caddy",
				"--per-hour", "1", "--max-failures", "1", "--expires", "2h"},
			want: []string{"operators may call restart_service with node pve1 and service nginx or caddy, at most once per service per hour",
				"stops after 1 failure in a row", "(in 2 hours)"},
			// ARGS holds two words here.
			row: map[int]string{3: "operators", 4: "restart_service", 5: "node=pve1", 6: "service=nginx,caddy", 7: "-", 8: "0/1", 9: "0/1"},
		},
		{
			args: []string{"--for", "nightwatch", "--tool", "execute_ssh", "--arg", "node=pve1,pve2",
				"--arg", "command=systemctl restart nginx", "--arg", "command=echo a,b", "--expires", "7d"},
			want: []string{`may call execute_ssh with command "systemctl restart nginx" or "echo a,b" and node pve1 or pve2 (and no other arguments)`,
				"per target per hour", "(in 7 days)"},
		},
		{
			args: []string{"--for", "nightwatch", "--tool", "shutdown_vm", "--arg", "vmid=*", "--arg", "force_stop=true", "--trigger", "node_memory"},
			want: []string{"may call shutdown_vm with force_stop true and any vmid (and no other arguments) while a node_memory alert is open for its node"},
		},
	} {
		out := mustRule(t, append([]string{"create"}, c.args...)...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("create %q lacks %q:\n%s", c.args, w, out)
			}
		}
		id := ruleIDRE.FindStringSubmatch(out)[1]
		row := tableRow(t, mustRule(t, "list"), id)
		for i, w := range c.row {
			if len(row) <= i || row[i] != w {
				t.Errorf("list row of %q = %q, want column %d %q", c.args, row, i, w)
			}
		}
	}
	var ssh []server.RuleView
	for _, v := range ruleListJSON(t, false) {
		if v.Tool == "execute_ssh" {
			ssh = append(ssh, v)
		}
	}
	if len(ssh) != 1 || !slices.Equal(ssh[0].Args["command"], []string{"systemctl restart nginx", "echo a,b"}) {
		t.Errorf("execute_ssh rule stored %+v, want both commands whole", ssh)
	}
}

// Each mistake fails with a message that names the fix, usage mistakes as
// usage errors, and none of them stores anything.
func TestRuleBadInputs(t *testing.T) {
	ruleState(t)
	good := mustRule(t, "create", "--for", "nightwatch", "--tool", "stop_vm", "--arg", "vmid=101")
	id := ruleIDRE.FindStringSubmatch(good)[1]

	create := func(args ...string) []string { return append([]string{"create"}, args...) }
	for _, c := range []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"no subcommand", nil, "usage: jarvis rule create|list|show|update|revoke", true},
		{"unknown subcommand", []string{"delete", id}, `unknown rule command "delete": use create, list, show, update or revoke`, true},
		{"no --for", create("--tool", "start_vm", "--arg", "vmid=101"), "--for is required: an agent token's name or id (see jarvis token list), or operators", true},
		{"no --tool", create("--for", "nightwatch"), "--tool is required", true},
		{"unknown flag", create("--for", "nightwatch", "--tool", "start_vm", "--vmid", "101"), "flag provided but not defined: -vmid (see jarvis rule --help)", true},
		{"stray argument", create("start_vm", "--for", "nightwatch"), `unexpected argument "start_vm" (every value comes with its flag`, true},
		{"unknown tool", create("--for", "nightwatch", "--tool", "list_nodes"), `there is no tool "list_nodes" here`, false},
		{"green tool", create("--for", "nightwatch", "--tool", "get_node_status", "--arg", "node=pve1"), "get_node_status is green, and only RED tools wait for a person", false},
		{"yellow tool", create("--for", "nightwatch", "--tool", "create_snapshot", "--arg", "vmid=101"), "create_snapshot is yellow, and only RED tools", false},
		{"unknown trigger", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--trigger", "disk_on_fire"),
			`--trigger "disk_on_fire" is not an alert kind; use one of guest_stopped_unexpectedly, guest_stopped`, true},
		{"--arg without =", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid"), `--arg "vmid": write name=value[,value…], e.g. --arg vmid=101,102`, true},
		{"--arg without value", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=, "), "--arg vmid= gives no value; list the allowed values", true},
		{"argument the tool lacks", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--arg", "node=pve1"), `start_vm has no argument "node"; it takes vmid`, true},
		{"approval_id is no argument", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--arg", "approval_id=*"), `start_vm has no argument "approval_id"`, true},
		{"value of the wrong type", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=web"), "--arg vmid=web: it takes whole numbers, e.g. 101", true},
		{"value outside the enum", create("--for", "nightwatch", "--tool", "create_backup", "--arg", "vmid=101", "--arg", "mode=fast"), "--arg mode=fast: it takes one of snapshot, suspend, stop", true},
		{"required argument left out", create("--for", "nightwatch", "--tool", "start_vm"), "every start_vm call passes vmid, and a rule allows only the arguments it names: add --arg vmid=VALUES (or vmid=* for any)", true},
		{"execute_ssh without commands", create("--for", "nightwatch", "--tool", "execute_ssh", "--arg", "node=pve1"), "a rule for execute_ssh must list the exact commands it allows", true},
		{"execute_ssh with any command", create("--for", "nightwatch", "--tool", "execute_ssh", "--arg", "node=pve1", "--arg", "command=*"), `("*" is not allowed)`, true},
		{"unknown agent", create("--for", "ghost", "--tool", "start_vm", "--arg", "vmid=101"), `no live agent token is named "ghost"; give a token id or name from ` + "`jarvis token list`" + `, or operators`, false},
		{"expiry too far", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--expires", "400d"), `--expires "400d": days must be 1..366`, true},
		{"expiry unreadable", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--expires", "soon"), `--expires "soon": use a duration such as 12h, 720h or 30d`, true},
		{"no budget", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--per-hour", "0"), "--per-hour 0: it must be at least 1", true},
		{"no failures allowed", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--max-failures", "-1"), "--max-failures -1: it must be at least 1", true},
		{"budget not a number", create("--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101", "--per-hour", "many"), `invalid value "many" for flag -per-hour`, true},
		{"show unknown id", []string{"show", "r_000000000000"}, "no rule r_000000000000 (see jarvis rule list --all)", false},
		{"show malformed id", []string{"show", "42"}, `"42" is not a rule id; ids look like r_ followed by 12 hex digits`, true},
		{"show without id", []string{"show"}, "usage: jarvis rule show ID", true},
		{"update unknown id", []string{"update", "r_000000000000", "--per-hour", "2"}, "no rule r_000000000000 (see jarvis rule list --all)", false},
		{"update without changes", []string{"update", id}, "nothing to change; give at least one of --for, --tool, --arg", true},
		{"update to a tool the args do not fit", []string{"update", id, "--tool", "restart_service"}, `restart_service has no argument "vmid"; it takes node, service`, true},
		{"update to an unknown agent", []string{"update", id, "--for", "ghost"}, `no live agent token is named "ghost"`, false},
		{"revoke unknown id", []string{"revoke", "r_000000000000"}, "no rule r_000000000000 (see jarvis rule list --all)", false},
		{"revoke two ids", []string{"revoke", id, id}, "usage: jarvis rule revoke ID", true},
		{"list with an argument", []string{"list", id}, "for one rule: jarvis rule show ID", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := rule(c.args...)
			if err == nil {
				t.Fatalf("jarvis rule %q succeeded:\n%s", c.args, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("jarvis rule %q = %v\nwant it to say %q", c.args, err, c.want)
			}
			var ue usageError
			if errors.As(err, &ue) != c.usage {
				t.Errorf("jarvis rule %q: usage error %t, want %t (%v)", c.args, !c.usage, c.usage, err)
			}
		})
	}
	list := ruleListJSON(t, true)
	if len(list) != 1 || list[0].ID != id || list[0].Version != 1 {
		t.Errorf("after the mistakes, the rules are %+v; want only %s version 1", list, id)
	}
}

// A rule for an agent whose token stops at yellow is stored, with a note
// that it can never apply until the agent has a red token.
func TestRuleForAYellowTokenWarns(t *testing.T) {
	ruleState(t)
	var out bytes.Buffer
	if err := runToken(context.Background(), false, []string{"create", "--name", "dayshift", "--max-tier", "yellow"}, &out); err != nil {
		t.Fatal(err)
	}
	got := mustRule(t, "create", "--for", "dayshift", "--tool", "start_vm", "--arg", "vmid=101")
	if !strings.Contains(got, "has max tier yellow, so its RED calls are refused before any rule is looked at") {
		t.Errorf("no warning for a yellow token:\n%s", got)
	}
}

// The help names every subcommand and every alert kind a trigger may be.
func TestRuleHelp(t *testing.T) {
	if !strings.HasPrefix(ruleHelp, "Usage: jarvis rule") {
		t.Errorf("help starts %q", ruleHelp[:30])
	}
	for _, w := range append([]string{"rule create", "rule list", "rule show", "rule update", "rule revoke", "--for", "--tool", "--arg",
		"--trigger", "--per-hour", "--max-failures", "--expires", "--note", "--json", "--all"}, store.AlertKinds()...) {
		if !strings.Contains(ruleHelp, w) {
			t.Errorf("jarvis rule --help does not mention %s", w)
		}
	}
}

// With several clusters a rule is described against the arguments calls
// pass, cluster included: a rule stored without it (made while there was
// one cluster) allows no other argument, so it says so.
func TestDescribeRuleWithSeveralClusters(t *testing.T) {
	ruleState(t)
	t.Setenv("JARVIS_CLUSTERS", "home,lab")
	_, st, srv, _, err := openAdmin(false, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct {
		args map[string][]string
		want string
	}{
		{map[string][]string{"vmid": {"101"}}, "operators may call stop_vm with vmid 101 (and no other arguments), at most"},
		{map[string][]string{"vmid": {"101"}, "cluster": {"lab"}}, "operators may call stop_vm with cluster lab and vmid 101, at most"},
		{map[string][]string{"vmid": {"*"}, "cluster": {"*"}}, "operators may call stop_vm with any cluster and any vmid, at most"},
	} {
		r := store.Rule{Principal: store.RuleOperators, Tool: "stop_vm", Args: tc.args, PerTargetPerHour: 1, MaxFailures: 1, ExpiresAt: time.Now().Add(time.Hour)}
		if got := describeRule(srv, r, time.Now()); !strings.HasPrefix(got, tc.want) {
			t.Errorf("rule with %v:\n%s\nwant it to start %q", tc.args, got, tc.want)
		}
	}
	// jarvis rule create asks for the cluster, and describes the rule with it.
	if out, err := rule("create", "--for", "nightwatch", "--tool", "stop_vm", "--arg", "vmid=101"); err == nil ||
		!strings.Contains(err.Error(), "every stop_vm call passes cluster") {
		t.Errorf("a rule without cluster: %v\n%s", err, out)
	}
	if out := mustRule(t, "create", "--for", "nightwatch", "--tool", "stop_vm", "--arg", "vmid=101", "--arg", "cluster=lab"); !strings.Contains(out, "may call stop_vm with cluster lab and vmid 101, at most") {
		t.Errorf("create printed:\n%s", out)
	}
}
