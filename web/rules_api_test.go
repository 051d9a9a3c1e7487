package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// The operator API for standing approvals. Only the operator's login may
// create, change, list or revoke a rule; an agent's token gets 403 whatever
// it sends.

// ruleJSON is a RuleView as the API sends it.
type ruleJSON struct {
	ID               string              `json:"id"`
	Version          int                 `json:"version"`
	Principal        string              `json:"principal"`
	Tool             string              `json:"tool"`
	Args             map[string][]string `json:"args"`
	Trigger          string              `json:"trigger"`
	PerTargetPerHour int                 `json:"per_target_per_hour"`
	MaxFailures      int                 `json:"max_failures"`
	ExpiresAt        time.Time           `json:"expires_at"`
	Note             string              `json:"note"`
	CreatedBy        string              `json:"created_by"`
	RevokedAt        *time.Time          `json:"revoked_at"`
	RevokedBy        string              `json:"revoked_by"`
	Current          bool                `json:"current"`
	Status           string              `json:"status"`
	Spend            struct {
		UsesLastHour   map[string]int `json:"uses_last_hour"`
		FailuresInARow int            `json:"failures_in_a_row"`
		Stopped        bool           `json:"stopped"`
		TotalUses      int            `json:"total_uses"`
	} `json:"spend"`
}

// doJSON sends body (a string is sent as it is) and decodes the answer into out.
func (h *webHarness) doJSON(method, path, token string, body any, out any) (int, map[string]any) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		r = strings.NewReader(string(raw))
	}
	req, _ := http.NewRequest(method, h.ts.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, m
}

// validRule is a rule the harness's server accepts, for whom.
func validRule(who string) map[string]any {
	return map[string]any{
		"for": who, "tool": "start_vm", "args": map[string]any{"vmid": []any{"101", 102}},
		"trigger": "guest_stopped_unexpectedly", "per_target_per_hour": 3, "max_failures": 2,
		"expires_in": "720h", "note": "restart crashed web guests",
	}
}

func TestRulesAPIIsForTheOperatorOnly(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.Demo = &fakeDemo{} })
	op := h.login()
	agentTok, rec, err := h.tokens.IssueAgent(context.Background(), "bot", safety.Red, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One rule the operator made, for the agent itself: the agent may not
	// read, widen or lift it.
	var made ruleJSON
	if code, out := h.doJSON("POST", "/api/rules", op, validRule(rec.ID), &made); code != http.StatusCreated {
		t.Fatalf("operator create: %d %v", code, out)
	}
	ruleURL := "/api/rules/" + made.ID
	cases := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/rules", nil},
		{"GET", "/api/rules?all=1", nil},
		{"GET", "/api/rules/options", nil},
		{"GET", ruleURL, nil},
		{"POST", "/api/rules", validRule(rec.ID)},
		{"POST", "/api/rules", validRule("operators")},
		{"PUT", ruleURL, validRule(rec.ID)},
		{"DELETE", ruleURL, nil},
		{"GET", "/api/demo", nil},
		{"POST", "/api/demo/guests/101/crash", nil},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			if code, out := h.doJSON(c.method, c.path, agentTok, c.body, nil); code != http.StatusForbidden {
				t.Errorf("with the agent's token: %d %v, want 403", code, out)
			}
			if code, _ := h.doJSON(c.method, c.path, "", c.body, nil); code != http.StatusUnauthorized {
				t.Errorf("without a token: %d, want 401", code)
			}
			if code, _ := h.doJSON(c.method, c.path, "garbage.token.here", c.body, nil); code != http.StatusUnauthorized {
				t.Errorf("with a garbage token: %d, want 401", code)
			}
		})
	}
	// Nothing the agent sent changed anything: one rule, version 1, active.
	rules, err := h.store.ListRules(context.Background(), false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].ID != made.ID || rules[0].Version != 1 || rules[0].RevokedAt != nil {
		t.Errorf("after the agent's requests the rules are %+v, want only the operator's, unchanged", rules)
	}
	if len(h.app.opts.Demo.(*fakeDemo).crashed()) != 0 {
		t.Errorf("the agent crashed a guest")
	}
}

func TestRulesAPICreateListShowChangeRevoke(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	ctx := context.Background()
	_, rec, err := h.tokens.IssueAgent(ctx, "fixer", safety.Red, 24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	principal := "agent:fixer/" + rec.ID
	before := time.Now()

	// Create, naming the token by its name.
	var r ruleJSON
	code, out := h.doJSON("POST", "/api/rules", op, validRule("fixer"), &r)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	if !strings.HasPrefix(r.ID, "r_") || r.Version != 1 || r.Principal != principal || r.Tool != "start_vm" ||
		r.Trigger != "guest_stopped_unexpectedly" || r.PerTargetPerHour != 3 || r.MaxFailures != 2 ||
		r.CreatedBy != safety.OperatorID || r.Status != server.RuleActive || !r.Current || r.Note != "restart crashed web guests" {
		t.Errorf("created rule = %+v", r)
	}
	if got := r.Args["vmid"]; len(got) != 2 || got[0] != "101" || got[1] != "102" {
		t.Errorf("args = %v, want vmid 101 and 102 (numbers kept as JSON writes them)", r.Args)
	}
	if d := r.ExpiresAt.Sub(before); d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("expires %s after the request, want 720h", d)
	}
	if r.Spend.UsesLastHour == nil || r.Spend.TotalUses != 0 {
		t.Errorf("a new rule's spend = %+v", r.Spend)
	}

	// A second rule, for operators, ending at a given time, with no trigger.
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	var r2 ruleJSON
	body := map[string]any{"for": "operators", "tool": "stop_vm", "args": map[string]any{"vmid": "*"}, "trigger": "none",
		"per_target_per_hour": "1", "max_failures": 1, "expires_at": at.Format(time.RFC3339)}
	if code, out := h.doJSON("POST", "/api/rules", op, body, &r2); code != http.StatusCreated {
		t.Fatalf("create for operators: %d %v", code, out)
	}
	if r2.Principal != store.RuleOperators || r2.Trigger != "" || !r2.ExpiresAt.Equal(at) || r2.Args["vmid"][0] != "*" || r2.PerTargetPerHour != 1 {
		t.Errorf("rule for operators = %+v", r2)
	}

	// List: both active.
	var list struct {
		Rules []ruleJSON `json:"rules"`
	}
	if code, out := h.doJSON("GET", "/api/rules", op, nil, &list); code != 200 || len(list.Rules) != 2 {
		t.Fatalf("list: %d %v", code, out)
	}

	// Show: the rule and its versions.
	var detail struct {
		Rule     ruleJSON   `json:"rule"`
		Versions []ruleJSON `json:"versions"`
	}
	if code, out := h.doJSON("GET", "/api/rules/"+r.ID, op, nil, &detail); code != 200 || detail.Rule.ID != r.ID || len(detail.Versions) != 1 {
		t.Fatalf("show: %d %v", code, out)
	}

	// Change: a new version, the same id.
	changed := validRule(rec.ID)
	changed["per_target_per_hour"] = 1
	changed["args"] = map[string]any{"vmid": []string{"101"}}
	var r3 ruleJSON
	if code, out := h.doJSON("PUT", "/api/rules/"+r.ID, op, changed, &r3); code != 200 {
		t.Fatalf("change: %d %v", code, out)
	}
	if r3.ID != r.ID || r3.Version != 2 || r3.PerTargetPerHour != 1 || len(r3.Args["vmid"]) != 1 || r3.Status != server.RuleActive {
		t.Errorf("changed rule = %+v", r3)
	}
	if code, _ := h.doJSON("GET", "/api/rules/"+r.ID, op, nil, &detail); code != 200 || len(detail.Versions) != 2 || detail.Versions[0].Current || !detail.Versions[1].Current {
		t.Errorf("versions after the change: %+v", detail.Versions)
	}

	// Revoke: at once, and for good.
	var rv ruleJSON
	if code, out := h.doJSON("DELETE", "/api/rules/"+r.ID, op, nil, &rv); code != 200 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	if rv.Status != server.RuleRevoked || rv.RevokedAt == nil || rv.RevokedBy != safety.OperatorID || rv.Version != 2 {
		t.Errorf("revoked rule = %+v", rv)
	}
	for _, c := range []struct {
		method string
		body   any
	}{{"DELETE", nil}, {"PUT", changed}} {
		code, out := h.doJSON(c.method, "/api/rules/"+r.ID, op, c.body, nil)
		if code != http.StatusConflict || !strings.Contains(fmt.Sprint(out["error"]), "revoked") {
			t.Errorf("%s of a revoked rule: %d %v, want 409 saying it was revoked", c.method, code, out)
		}
	}
	if code, _ := h.doJSON("GET", "/api/rules", op, nil, &list); code != 200 || len(list.Rules) != 1 || list.Rules[0].ID != r2.ID {
		t.Errorf("active rules after the revocation: %+v, want only %s", list.Rules, r2.ID)
	}
	if code, _ := h.doJSON("GET", "/api/rules?all=1", op, nil, &list); code != 200 || len(list.Rules) != 2 {
		t.Fatalf("all rules: %+v", list.Rules)
	}
	for _, x := range list.Rules {
		if x.ID == r.ID && x.Status != server.RuleRevoked {
			t.Errorf("the revoked rule is listed as %s", x.Status)
		}
	}

	// Each change was announced on the feed, by the operator.
	evs, err := h.store.ListEvents(ctx, store.EventFilter{Type: store.EventRule, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	phases := map[string]int{}
	for _, ev := range evs {
		var d store.RuleDetails
		if json.Unmarshal(ev.Details, &d) == nil && d.Actor == safety.OperatorID {
			phases[d.Phase]++
		}
	}
	if phases[store.RuleCreated] != 2 || phases[store.RuleUpdated] != 1 || phases[store.RuleRevoked] != 1 {
		t.Errorf("rule events by the operator: %v, want 2 created, 1 updated, 1 revoked", phases)
	}
}

func TestRulesAPIRefusesBadRules(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	_, rec, err := h.tokens.IssueAgent(context.Background(), "bot", safety.Red, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(m map[string]any)) map[string]any {
		m := validRule(rec.ID)
		change(m)
		return m
	}
	cases := []struct {
		name  string
		body  any
		code  int
		field string // the field details names, when the web layer found it
		says  string // part of the message
	}{
		{"not JSON", `{"for": `, 400, "", "invalid JSON"},
		{"trailing data", `{"for": "operators"} {}`, 400, "", "trailing"},
		{"a list", `[]`, 400, "", "invalid JSON"},
		{"unknown field", with(func(m map[string]any) { m["tol"] = "start_vm" }), 400, "tol", `unknown field "tol"`},
		{"empty", map[string]any{}, 400, "for", "for is required"},
		{"no tool", with(func(m map[string]any) { delete(m, "tool") }), 400, "tool", "tool is required"},
		{"tool not a name", with(func(m map[string]any) { m["tool"] = "Start VM" }), 400, "tool", "tool must be a tool name"},
		{"for too long", with(func(m map[string]any) { m["for"] = strings.Repeat("x", 300) }), 400, "for", "at most 200"},
		{"for with a newline", with(func(m map[string]any) { m["for"] = "bot\nx" }), 400, "for", "printable"},
		{"per hour zero", with(func(m map[string]any) { m["per_target_per_hour"] = 0 }), 400, "per_target_per_hour", "from 1 to 100"},
		{"per hour absurd", with(func(m map[string]any) { m["per_target_per_hour"] = 1e12 }), 400, "per_target_per_hour", "from 1 to 100"},
		{"per hour huge", with(func(m map[string]any) { m["per_target_per_hour"] = json.Number("99999999999999999999999") }), 400, "per_target_per_hour", "from 1 to 100"},
		{"per hour fraction", with(func(m map[string]any) { m["per_target_per_hour"] = 2.5 }), 400, "per_target_per_hour", "whole number"},
		{"per hour words", with(func(m map[string]any) { m["per_target_per_hour"] = "many" }), 400, "per_target_per_hour", "whole number"},
		{"per hour boolean", with(func(m map[string]any) { m["per_target_per_hour"] = true }), 400, "per_target_per_hour", "whole number"},
		{"per hour missing", with(func(m map[string]any) { delete(m, "per_target_per_hour") }), 400, "per_target_per_hour", "required"},
		{"failures negative", with(func(m map[string]any) { m["max_failures"] = -1 }), 400, "max_failures", "from 1 to 100"},
		{"no expiry", with(func(m map[string]any) { delete(m, "expires_in") }), 400, "expires_in", "a rule always ends"},
		{"two expiries", with(func(m map[string]any) { m["expires_at"] = "2030-01-01T00:00:00Z" }), 400, "expires_in", "not both"},
		{"expiry not a duration", with(func(m map[string]any) { m["expires_in"] = "forever" }), 400, "expires_in", "duration"},
		{"expiry zero", with(func(m map[string]any) { m["expires_in"] = "0s" }), 400, "expires_in", "from 1m"},
		{"expiry too far", with(func(m map[string]any) { m["expires_in"] = "400d" }), 400, "expires_in", "366 days"},
		{"expiry in hours too far", with(func(m map[string]any) { m["expires_in"] = "9000h" }), 400, "expires_in", "366 days"},
		{"expiry past", with(func(m map[string]any) { delete(m, "expires_in"); m["expires_at"] = "2020-01-01T00:00:00Z" }), 400, "expires_at", "past"},
		{"expiry not a time", with(func(m map[string]any) { delete(m, "expires_in"); m["expires_at"] = "tomorrow" }), 400, "expires_at", "RFC 3339"},
		{"unknown trigger", with(func(m map[string]any) { m["trigger"] = "sometimes" }), 400, "trigger", "trigger must be one of"},
		{"arg without values", with(func(m map[string]any) { m["args"] = map[string]any{"vmid": []string{}} }), 400, "args", "at least one allowed value"},
		{"arg with an empty value", with(func(m map[string]any) { m["args"] = map[string]any{"vmid": []string{""}} }), 400, "args", "empty"},
		{"arg value an object", with(func(m map[string]any) { m["args"] = map[string]any{"vmid": []any{map[string]int{"a": 1}}} }), 400, "args", "string, a number or true/false"},
		{"arg value null", with(func(m map[string]any) { m["args"] = map[string]any{"vmid": nil} }), 400, "args", "string, a number or true/false"},
		{"args a list", with(func(m map[string]any) { m["args"] = []string{"vmid=101"} }), 400, "args", "argument name"},
		{"arg name bad", with(func(m map[string]any) { m["args"] = map[string]any{"VM-ID": []string{"1"}} }), 400, "args", "not one"},
		{"arg approval_id", with(func(m map[string]any) { m["args"] = map[string]any{"approval_id": []string{"*"}} }), 400, "args", "approval_id"},
		{"note too long", with(func(m map[string]any) { m["note"] = strings.Repeat("n", 1001) }), 400, "note", "at most 1000"},
		{"body too large", with(func(m map[string]any) { m["note"] = strings.Repeat("n", 70000) }), 413, "", "too large"},
		// What only the server can tell: its sentence, as it is.
		{"no such tool", with(func(m map[string]any) { m["tool"] = "reboot_cluster" }), 400, "", `no tool "reboot_cluster"`},
		{"not a RED tool", with(func(m map[string]any) { m["tool"] = "get_cluster_status"; m["args"] = map[string]any{} }), 400, "", "only RED tools"},
		{"no such token", with(func(m map[string]any) { m["for"] = "nobody" }), 400, "", `no live agent token is named "nobody"`},
		{"no such argument", with(func(m map[string]any) { m["args"] = map[string]any{"colour": []string{"red"}} }), 400, "", `no argument "colour"`},
		{"ssh with any command", with(func(m map[string]any) {
			m["tool"] = "execute_ssh"
			m["args"] = map[string]any{"node": []string{"pve"}, "command": []string{"*"}}
		}), 400, "", "exact commands"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := h.doJSON("POST", "/api/rules", op, c.body, nil)
			msg, _ := out["error"].(string)
			if code != c.code || !strings.Contains(strings.ToLower(msg), strings.ToLower(c.says)) {
				t.Fatalf("= %d %q, want %d saying %q (%v)", code, msg, c.code, c.says, out)
			}
			if c.field != "" {
				details, _ := out["details"].(map[string]any)
				if details["field"] != c.field {
					t.Errorf("details = %v, want field %q", out["details"], c.field)
				}
			}
		})
	}
	// The same checks guard a change.
	var r ruleJSON
	if code, out := h.doJSON("POST", "/api/rules", op, validRule(rec.ID), &r); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	if code, out := h.doJSON("PUT", "/api/rules/"+r.ID, op, with(func(m map[string]any) { m["max_failures"] = 0 }), nil); code != 400 {
		t.Errorf("change with max_failures 0: %d %v, want 400", code, out)
	}
	if code, out := h.doJSON("PUT", "/api/rules/"+r.ID, op, with(func(m map[string]any) { m["tool"] = "reboot_cluster" }), nil); code != 400 {
		t.Errorf("change to an unknown tool: %d %v, want 400", code, out)
	}
	// Nothing refused was stored.
	rules, _ := h.store.ListRules(context.Background(), false, time.Now())
	if len(rules) != 1 || rules[0].Version != 1 {
		t.Errorf("after the refusals the rules are %+v, want the one created, version 1", rules)
	}
	// Listing takes all=1 or nothing.
	if code, out := h.doJSON("GET", "/api/rules?all=yes", op, nil, nil); code != 400 {
		t.Errorf("all=yes: %d %v", code, out)
	}
	if code, out := h.doJSON("GET", "/api/rules?active=1", op, nil, nil); code != 400 {
		t.Errorf("an unknown parameter: %d %v", code, out)
	}
}

func TestRulesAPIIDs(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		var body any
		if method == "PUT" {
			body = validRule("operators")
		}
		code, out := h.doJSON(method, "/api/rules/r_000000000000", op, body, nil)
		if code != http.StatusNotFound || !strings.Contains(fmt.Sprint(out["error"]), "r_000000000000") {
			t.Errorf("%s of an unknown rule: %d %v, want 404 naming it", method, code, out)
		}
		for _, bad := range []string{"r_XYZ", "r_0000000000000", "apr_00000000deadbeef", "..%2Fx"} {
			code, out := h.doJSON(method, "/api/rules/"+bad, op, body, nil)
			details, _ := out["details"].(map[string]any)
			if code != http.StatusBadRequest || details["field"] != "id" {
				t.Errorf("%s /api/rules/%s: %d %v, want 400 naming id", method, bad, code, out)
			}
		}
	}
}

func TestRulesOptionsOfferLiveTokensAndREDTools(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	ctx := context.Background()
	_, red, _ := h.tokens.IssueAgent(ctx, "fixer", safety.Red, time.Hour, nil)
	_, yellow, _ := h.tokens.IssueAgent(ctx, "watcher", safety.Yellow, time.Hour, nil)
	_, gone, _ := h.tokens.IssueAgent(ctx, "gone", safety.Red, time.Hour, nil)
	if err := h.store.RevokeToken(ctx, gone.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	var o struct {
		Callers []struct {
			For        string `json:"for"`
			Principal  string `json:"principal"`
			CanCallRed bool   `json:"can_call_red"`
		} `json:"callers"`
		Tools []struct {
			Name string `json:"name"`
			Args []struct {
				Name     string `json:"name"`
				Required bool   `json:"required"`
			} `json:"args"`
		} `json:"tools"`
		Triggers []string `json:"triggers"`
	}
	if code, out := h.doJSON("GET", "/api/rules/options", op, nil, &o); code != 200 {
		t.Fatalf("options: %d %v", code, out)
	}
	callers := map[string]bool{}
	for _, c := range o.Callers {
		callers[c.For] = c.CanCallRed
	}
	if len(o.Callers) != 3 || !callers[store.RuleOperators] || !callers[red.ID] || callers[yellow.ID] {
		t.Errorf("callers = %+v, want operators, %s (red) and %s (yellow, cannot call RED); not the revoked one", o.Callers, red.ID, yellow.ID)
	}
	if _, ok := callers[gone.ID]; ok {
		t.Errorf("the revoked token is offered")
	}
	var startVM bool
	for _, tool := range o.Tools {
		for _, s := range h.srv.AllTools() {
			if s.Name == tool.Name && s.Tier != safety.Red {
				t.Errorf("%s is offered but is %s", tool.Name, s.Tier)
			}
		}
		for _, a := range tool.Args {
			if a.Name == "approval_id" {
				t.Errorf("%s offers approval_id as an argument", tool.Name)
			}
		}
		if tool.Name == "start_vm" {
			startVM = len(tool.Args) > 0 && tool.Args[0].Name == "vmid" && tool.Args[0].Required
		}
	}
	if !startVM {
		t.Errorf("start_vm is not offered with its required vmid: %+v", o.Tools)
	}
	if len(o.Triggers) != len(store.AlertKinds()) {
		t.Errorf("triggers = %v", o.Triggers)
	}
}

// withClusters serves the clusters named instead of the harness's one: the
// rules' API needs their names only.
func withClusters(t testing.TB, names ...string) func(*Options) {
	return func(o *Options) {
		var clusters []server.Cluster
		for _, n := range names {
			clusters = append(clusters, server.Cluster{Name: n, Env: &tools.Env{}})
		}
		srv, err := server.New(server.Options{Clusters: clusters, Store: o.Store, Logger: o.Logger,
			Limiter:   safety.NewRateLimiter(safety.RateLimits{}),
			Confirmer: safety.NewConfirmer(safety.DeriveKey("web-test-secret-web-test-secret-000", "confirmation-state"), time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		o.Server = srv
	}
}

// With several clusters every call names its cluster, so the console
// offers the argument for a rule and refuses a rule without it, naming the
// clusters; with one it offers what it always did.
func TestRulesOptionsOfferTheClusterWithSeveral(t *testing.T) {
	for _, tc := range []struct {
		name     string
		clusters []string
		args     string // start_vm's arguments as offered
	}{
		{"one cluster", nil, "vmid (required)"},
		{"two clusters", []string{"home", "lab"}, "cluster (required), vmid (required)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tweak []func(*Options)
			if tc.clusters != nil {
				tweak = append(tweak, withClusters(t, tc.clusters...))
			}
			h := newWebHarness(t, tweak...)
			op := h.login()
			var o struct {
				Tools []struct {
					Name string `json:"name"`
					Args []struct {
						Name     string `json:"name"`
						Required bool   `json:"required"`
					} `json:"args"`
				} `json:"tools"`
			}
			if code, out := h.doJSON("GET", "/api/rules/options", op, nil, &o); code != 200 {
				t.Fatalf("options: %d %v", code, out)
			}
			var args []string
			for _, tool := range o.Tools {
				for _, a := range tool.Args {
					if tool.Name == "start_vm" && a.Required {
						args = append(args, a.Name+" (required)")
					}
				}
			}
			if got := strings.Join(args, ", "); got != tc.args {
				t.Errorf("start_vm's required arguments offered: %q, want %q", got, tc.args)
			}

			body := validRule("operators")
			code, out := h.doJSON("POST", "/api/rules", op, body, nil)
			if tc.clusters == nil {
				if code != http.StatusCreated {
					t.Errorf("a rule with one cluster: %d %v", code, out)
				}
				return
			}
			if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "add the argument cluster with one or more of home, lab") {
				t.Errorf("a rule naming no cluster: %d %v, want 400 naming the clusters", code, out)
			}
			body["args"].(map[string]any)["cluster"] = []string{"home"}
			if code, out := h.doJSON("POST", "/api/rules", op, body, nil); code != http.StatusCreated {
				t.Errorf("a rule for home: %d %v", code, out)
			}
		})
	}
}

// A rule made through the API stands in for a person: an agent's RED call
// it covers runs, and the feed says which rule let it.
func TestRuleMadeThroughTheAPILetsTheCallRun(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	ctx := context.Background()
	_, rec, err := h.tokens.IssueAgent(ctx, "fixer", safety.Red, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := validRule(rec.ID)
	body["tool"], body["trigger"], body["per_target_per_hour"] = "stop_vm", "", 1
	body["args"] = map[string]any{"vmid": []string{"101"}}
	var r ruleJSON
	if code, out := h.doJSON("POST", "/api/rules", op, body, &r); code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	agent := safety.Principal{ID: "agent:fixer/" + rec.ID, Kind: safety.Agent, MaxTier: safety.Red}
	res := h.srv.Dispatch(ctx, server.Call{Principal: agent, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})
	if res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		t.Fatalf("stop_vm under the rule was refused: %s", b)
	}
	evs, err := h.store.ListEvents(ctx, store.EventFilter{Type: store.EventTool, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var byRule bool
	for _, ev := range evs {
		var d store.ToolDetails
		if json.Unmarshal(ev.Details, &d) == nil && d.Tool == "stop_vm" && d.Phase == store.ToolEnded {
			byRule = d.Rule == r.ID+"/v1"
		}
	}
	if !byRule {
		t.Errorf("the ended stop_vm event does not name rule %s/v1", r.ID)
	}
	var after ruleJSON
	var detail struct {
		Rule *ruleJSON `json:"rule"`
	}
	detail.Rule = &after
	if code, out := h.doJSON("GET", "/api/rules/"+r.ID, op, nil, &detail); code != 200 || after.Spend.TotalUses != 1 || after.Spend.UsesLastHour["guest/101"] != 1 {
		t.Errorf("spend after one use: %d %+v %v", code, after.Spend, out)
	}
}

// fakeDemo records the guests it was asked to crash.
type fakeDemo struct {
	mu  sync.Mutex
	got []int
}

func (f *fakeDemo) CrashGuest(vmid int) error {
	switch vmid {
	case 999:
		return fmt.Errorf("pvesim: no guest %d: %w", vmid, store.ErrNotFound)
	case 102:
		return errors.New("pvesim: guest 102 is stopped: only a running guest can crash")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, vmid)
	return nil
}

func (f *fakeDemo) crashed() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.got...)
}

func TestDemoCrashRouteOnlyInTheDemo(t *testing.T) {
	t.Run("without Demo", func(t *testing.T) {
		h := newWebHarness(t)
		op := h.login()
		var info struct {
			Demo bool `json:"demo"`
		}
		if code, out := h.doJSON("GET", "/api/demo", op, nil, &info); code != 200 || info.Demo {
			t.Errorf("GET /api/demo: %d %v, want demo false", code, out)
		}
		if code, out := h.doJSON("POST", "/api/demo/guests/101/crash", op, nil, nil); code != http.StatusNotFound {
			t.Errorf("crash without the demo: %d %v, want 404 (no route)", code, out)
		}
	})
	t.Run("with Demo", func(t *testing.T) {
		demo := &fakeDemo{}
		h := newWebHarness(t, func(o *Options) { o.Demo = demo })
		op := h.login()
		var info struct {
			Demo bool `json:"demo"`
		}
		if code, out := h.doJSON("GET", "/api/demo", op, nil, &info); code != 200 || !info.Demo {
			t.Errorf("GET /api/demo: %d %v, want demo true", code, out)
		}
		cases := []struct {
			path string
			code int
			says string
		}{
			{"/api/demo/guests/101/crash", 200, ""},
			{"/api/demo/guests/999/crash", 404, "no guest 999"},
			{"/api/demo/guests/102/crash", 400, "only a running guest"},
			{"/api/demo/guests/abc/crash", 400, "vmid must be"},
			{"/api/demo/guests/0101/crash", 400, "vmid must be"},
		}
		for _, c := range cases {
			var got map[string]int
			code, out := h.doJSON("POST", c.path, op, nil, &got)
			if code != c.code || (c.says != "" && !strings.Contains(fmt.Sprint(out["error"]), c.says)) {
				t.Errorf("POST %s: %d %v, want %d saying %q", c.path, code, out, c.code, c.says)
			}
			if c.code == 200 && got["crashed"] != 101 {
				t.Errorf("POST %s answered %v, want {\"crashed\": 101}", c.path, got)
			}
		}
		if got := demo.crashed(); len(got) != 1 || got[0] != 101 {
			t.Errorf("crashed %v, want [101]", got)
		}
		if code, _ := h.doJSON("GET", "/api/demo/guests/101/crash", op, nil, nil); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("GET of the crash route: %d, want 404 or 405", code)
		}
	})
}
