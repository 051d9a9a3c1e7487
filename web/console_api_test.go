package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// The console's read views: a guest's detail (tool calls through dispatch),
// the audit search and the approvals decided.

var consoleAPIPaths = []string{"/api/guests/101", "/api/guests/101/metrics?timeframe=day", "/api/audit/search", "/api/approvals/history"}

func TestConsoleAPIsAreForOperatorsOnly(t *testing.T) {
	h := newWebHarness(t)
	agentTok, _, err := h.tokens.IssueAgent(context.Background(), "bot", safety.Red, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range consoleAPIPaths {
		if resp, _ := h.do("GET", path, "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, resp.StatusCode)
		}
		if resp, _ := h.do("GET", path, agentTok, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with an agent token: %d, want 403", path, resp.StatusCode)
		}
		if resp, _ := h.do("GET", path, "garbage.token.here", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with garbage: %d, want 401", path, resp.StatusCode)
		}
	}
	// Nothing an agent or a stranger asked reached a tool.
	page, err := h.store.AuditSearch(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Calls) != 0 {
		t.Errorf("refused requests left %d calls in the audit log: %+v", len(page.Calls), page.Calls)
	}
}

// badRequest checks a 400 whose message and details name field.
func badRequest(t *testing.T, h *webHarness, tok, path, field string) {
	t.Helper()
	resp, out := h.do("GET", path, tok, nil)
	details, _ := out["details"].(map[string]any)
	msg, _ := out["error"].(string)
	if resp.StatusCode != http.StatusBadRequest || details["field"] != field || msg == "" {
		t.Errorf("GET %s = %d %v, want 400 naming %q", path, resp.StatusCode, out, field)
		return
	}
	if !strings.Contains(msg, field) {
		t.Errorf("GET %s: the message %q does not say which parameter is wrong (%s)", path, msg, field)
	}
}

func TestGuestDetailRefusesBadVMIDs(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	for _, v := range []string{"abc", "99", "0", "-101", "+101", "0101", "1e3", "1000000000", "99999999999999999999", "101.0", "%20101"} {
		badRequest(t, h, op, "/api/guests/"+v, "vmid")
		badRequest(t, h, op, "/api/guests/"+v+"/metrics", "vmid")
	}
	for _, tf := range []string{"month", "HOUR", "1h", "day,week"} {
		badRequest(t, h, op, "/api/guests/101/metrics?timeframe="+url.QueryEscape(tf), "timeframe")
	}
	// Bad requests ran no tool.
	if page, _ := h.store.AuditSearch(context.Background(), store.AuditFilter{}); len(page.Calls) != 0 {
		t.Errorf("bad requests left %d calls in the audit log", len(page.Calls))
	}
}

type sectionJSON struct {
	Tool     string          `json:"tool"`
	Data     json.RawMessage `json:"data"`
	Error    string          `json:"error"`
	Decision string          `json:"decision"`
}

type guestJSON struct {
	VMID            int    `json:"vmid"`
	Node            string `json:"node"`
	CreatedByJarvis bool   `json:"created_by_jarvis"`
	Protection      struct {
		Protected bool     `json:"protected"`
		Reasons   []string `json:"reasons"`
	} `json:"protection"`
	Config    sectionJSON `json:"config"`
	Agent     sectionJSON `json:"agent"`
	Snapshots sectionJSON `json:"snapshots"`
	Backups   sectionJSON `json:"backups"`
}

func getJSON(t *testing.T, h *webHarness, tok, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", h.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		t.Fatalf("GET %s = %d %v, want 200", path, resp.StatusCode, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func inCatalogue(name string) bool {
	return slices.ContainsFunc(tools.Catalogue(), func(t *tools.Tool) bool { return t.Name == name })
}

// checkSection: a tool in the catalogue answers with data; one not (yet) in it
// gives its section the dispatch's sentence, never a failed page.
func checkSection(t *testing.T, name string, s sectionJSON, tool string) {
	t.Helper()
	if s.Tool != tool {
		t.Errorf("%s section is from %q, want %s", name, s.Tool, tool)
	}
	if inCatalogue(tool) {
		if s.Error != "" || len(s.Data) == 0 {
			t.Errorf("%s section = error %q, data %s; want %s's answer", name, s.Error, s.Data, tool)
		}
		return
	}
	if len(s.Data) != 0 || !strings.Contains(s.Error, "no tool named") || s.Decision != "blocked" {
		t.Errorf("%s section without %s in the catalogue = %+v, want the dispatch's \"no tool named\" refusal", name, tool, s)
	}
}

func TestGuestDetailRunsEachSectionThroughDispatch(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	var g guestJSON
	getJSON(t, h, op, "/api/guests/101", &g)
	if g.VMID != 101 || g.Node != "pve" {
		t.Errorf("guest 101 = vmid %d on %q, want 101 on pve", g.VMID, g.Node)
	}
	checkSection(t, "config", g.Config, "get_guest_config")
	checkSection(t, "agent", g.Agent, "get_guest_agent_info")
	checkSection(t, "snapshots", g.Snapshots, "list_snapshots")
	checkSection(t, "backups", g.Backups, "get_backups")

	var snaps struct {
		Snapshots []struct {
			Name string `json:"name"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal(g.Snapshots.Data, &snaps); err != nil || len(snaps.Snapshots) != 2 || snaps.Snapshots[1].Name != "before-php84" {
		t.Errorf("snapshots of 101 = %s (%v), want pre-upgrade and before-php84", g.Snapshots.Data, err)
	}
	var backups struct {
		Backups []struct {
			VMID int `json:"vmid"`
		} `json:"backups"`
	}
	if err := json.Unmarshal(g.Backups.Data, &backups); err != nil || len(backups.Backups) == 0 {
		t.Errorf("backups of 101 = %s (%v), want the nightly ones", g.Backups.Data, err)
	}
	for _, b := range backups.Backups {
		if b.VMID != 101 {
			t.Errorf("the backups of 101 list one of guest %d", b.VMID)
		}
	}

	// Every section is a call the log holds, made by the operator.
	ctx := context.Background()
	for _, tool := range []string{"get_guest_config", "get_guest_agent_info", "list_snapshots", "get_backups"} {
		page, err := h.store.AuditSearch(ctx, store.AuditFilter{Tool: tool})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Calls) != 1 || page.Calls[0].Principal != safety.OperatorID || !strings.Contains(page.Calls[0].Args, `"vmid":101`) {
			t.Errorf("audit calls of %s = %+v, want one by the operator for vmid 101", tool, page.Calls)
		}
	}

	// Protection comes from the server's policy (103 is protected in the harness).
	var p guestJSON
	getJSON(t, h, op, "/api/guests/103", &p)
	if !p.Protection.Protected || len(p.Protection.Reasons) == 0 || !strings.Contains(p.Protection.Reasons[0], "103") {
		t.Errorf("guest 103's protection = %+v, want protected, naming 103", p.Protection)
	}
	if g.Protection.Protected {
		t.Errorf("guest 101's protection = %+v, want not protected", g.Protection)
	}
}

// One tool failing leaves the others: the page is 200 and only that section
// carries the error.
func TestGuestDetailSectionsFailAlone(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	for range 3 { // retries, if any, fail too
		h.sim.FailNext("/nodes/pve/qemu/101/snapshot", 500, "snapshot storage is offline")
	}
	var g guestJSON
	getJSON(t, h, op, "/api/guests/101", &g)
	if g.Snapshots.Error == "" || len(g.Snapshots.Data) != 0 {
		t.Errorf("snapshots section = %+v, want the failure", g.Snapshots)
	}
	if !strings.Contains(g.Snapshots.Error, "snapshot storage is offline") {
		t.Errorf("snapshots error %q does not say why", g.Snapshots.Error)
	}
	checkSection(t, "backups", g.Backups, "get_backups")
	page, err := h.store.AuditSearch(context.Background(), store.AuditFilter{Tool: "list_snapshots", Outcome: store.OutcomeFailed})
	if err != nil || len(page.Calls) != 1 {
		t.Errorf("failed list_snapshots in the log = %+v, %v; want one", page.Calls, err)
	}
}

func TestGuestMetrics(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	var out struct {
		VMID      int         `json:"vmid"`
		Timeframe string      `json:"timeframe"`
		Metrics   sectionJSON `json:"metrics"`
	}
	getJSON(t, h, op, "/api/guests/101/metrics?timeframe=day", &out)
	if out.VMID != 101 || out.Timeframe != "day" {
		t.Errorf("metrics answer = %+v, want 101, day", out)
	}
	checkSection(t, "metrics", out.Metrics, "get_metrics_history")
	if inCatalogue("get_metrics_history") {
		var m struct {
			Timeframe string           `json:"timeframe"`
			Points    []map[string]any `json:"points"`
		}
		if err := json.Unmarshal(out.Metrics.Data, &m); err != nil || m.Timeframe != "day" || len(m.Points) == 0 || len(m.Points) > guestMetricsPoints {
			t.Errorf("metrics = %s (%v), want up to %d points of a day", out.Metrics.Data, err, guestMetricsPoints)
		}
	}
	page, err := h.store.AuditSearch(context.Background(), store.AuditFilter{Tool: "get_metrics_history"})
	if err != nil || len(page.Calls) != 1 || !strings.Contains(page.Calls[0].Args, `"timeframe":"day"`) || !strings.Contains(page.Calls[0].Args, `"points":30`) {
		t.Errorf("get_metrics_history in the log = %+v, %v; want one call for a day of 30 points", page.Calls, err)
	}
	// No timeframe means the last hour.
	getJSON(t, h, op, "/api/guests/101/metrics", &out)
	if out.Timeframe != "hour" {
		t.Errorf("default timeframe = %q, want hour", out.Timeframe)
	}
}

func TestWithoutSecretsDropsCredentials(t *testing.T) {
	in := `{"vmid":101,"cloud_init":{"user":"debian","password_set":true,"ssh_keys_set":false,"cipassword":"hunter2","sshkeys":"ssh-ed25519 AAAA"},` +
		`"nics":[{"slot":"net0","api_token":"x"}],"notes":"keep","memory_mib":2048}`
	got := string(withoutSecrets(json.RawMessage(in)))
	for _, gone := range []string{"hunter2", "AAAA", "api_token"} {
		if strings.Contains(got, gone) {
			t.Errorf("withoutSecrets kept %q: %s", gone, got)
		}
	}
	for _, kept := range []string{`"password_set":true`, `"ssh_keys_set":false`, `"user":"debian"`, `"notes":"keep"`, `"memory_mib":2048`} {
		if !strings.Contains(got, kept) {
			t.Errorf("withoutSecrets dropped %s: %s", kept, got)
		}
	}
	if clean := `{"vmid":101}`; string(withoutSecrets(json.RawMessage(clean))) != clean {
		t.Errorf("withoutSecrets changed a clean answer")
	}
}

// seedAudit writes calls through the store, as dispatch would.
func seedAudit(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	call := func(principal, tool, tier, decision, plan, status, errText string) {
		id, err := st.AuditBegin(ctx, store.AuditEntry{Principal: principal, Tool: tool, Args: `{"vmid":101}`, Tier: tier, Decision: decision, Plan: plan})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AuditEnd(ctx, id, store.AuditOutcome{Status: status, Error: errText}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(principal, tool, status string) {
		if _, err := st.AuditRead(ctx, store.AuditEntry{Principal: principal, Tool: tool, Args: "{}", Tier: "green", Decision: "allow", Plan: "List VMs"},
			store.AuditOutcome{Status: status}, nil); err != nil {
			t.Fatal(err)
		}
	}
	read("operator", "get_vms", store.OutcomeOK)
	call("agent:ops/tok_1", "stop_vm", "red", "allow", "Hard stop of VM 101", store.OutcomeOK, "")
	call("agent:ops/tok_1", "start_vm", "yellow", "allow", "Start VM 101", store.OutcomeFailed, "VM 101 is locked")
	call("agent:ci/tok_2", "stop_vm", "red", "needs_approval", "Hard stop of VM 102", store.OutcomeRefused, "waiting for a person")
	read("agent:ci/tok_2", "get_vms", store.OutcomeOK)
	call("agent:ci/tok_2", "restart_vm", "red", "protected", "Restart VM 103", store.OutcomeRefused, "VM 103 is protected")
}

type auditPageJSON struct {
	Calls []struct {
		ID        uint64 `json:"id"`
		Kind      string `json:"kind"`
		Time      string `json:"time"`
		Principal string `json:"principal"`
		Tool      string `json:"tool"`
		Tier      string `json:"tier"`
		Decision  string `json:"decision"`
		Outcome   string `json:"outcome"`
		Plan      string `json:"plan"`
		Error     string `json:"error"`
	} `json:"calls"`
	More         bool   `json:"more"`
	NextBeforeID uint64 `json:"next_before_id"`
}

func (p auditPageJSON) tools() []string {
	var out []string
	for _, c := range p.Calls {
		out = append(out, c.Tool)
	}
	return out
}

func TestAuditSearchAPI(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	seedAudit(t, h.store)
	search := func(q string) auditPageJSON {
		t.Helper()
		var p auditPageJSON
		getJSON(t, h, op, "/api/audit/search"+q, &p)
		return p
	}
	all := search("")
	if want := []string{"restart_vm", "get_vms", "stop_vm", "start_vm", "stop_vm", "get_vms"}; !slices.Equal(all.tools(), want) {
		t.Fatalf("everything = %v, want %v (newest first, one line per call)", all.tools(), want)
	}
	if c := all.Calls[3]; c.Plan != "Start VM 101" || c.Outcome != "failed" || c.Error != "VM 101 is locked" || c.Kind != "call" {
		t.Errorf("start_vm line = %+v, want the plan with the end row's outcome and error", c)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"?tool=stop_vm", []string{"stop_vm", "stop_vm"}},
		{"?principal=agent:ci/tok_2", []string{"restart_vm", "get_vms", "stop_vm"}},
		{"?principal=" + url.QueryEscape("agent:ops*"), []string{"start_vm", "stop_vm"}},
		{"?outcome=refused", []string{"restart_vm", "stop_vm"}},
		{"?outcome=failed", []string{"start_vm"}},
		{"?decision=protected", []string{"restart_vm"}},
		{"?tier=green", []string{"get_vms", "get_vms"}},
		{"?tool=stop_vm&outcome=ok", []string{"stop_vm"}},
		{"?tool=delete_vm", nil},
		{"?since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), nil},
		{"?until=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), nil},
		{"?since=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)) + "&until=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)),
			[]string{"restart_vm", "get_vms", "stop_vm", "start_vm", "stop_vm", "get_vms"}},
	}
	for _, tt := range tests {
		if got := search(tt.query).tools(); !slices.Equal(got, tt.want) {
			t.Errorf("search%s = %v, want %v", tt.query, got, tt.want)
		}
	}

	// Older pages by id: two at a time visits all six once.
	var seen []uint64
	q := "?limit=2"
	for i := 0; ; i++ {
		if i > 5 {
			t.Fatal("paging does not end")
		}
		p := search(q)
		for _, c := range p.Calls {
			seen = append(seen, c.ID)
		}
		if !p.More {
			break
		}
		q = fmt.Sprintf("?limit=2&before_id=%d", p.NextBeforeID)
	}
	var want []uint64
	for _, c := range all.Calls {
		want = append(want, c.ID)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("paging gave %v, want %v", seen, want)
	}
}

func TestAuditSearchAPIRefusesBadParameters(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	for _, c := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=501", "limit"},
		{"?limit=ten", "limit"},
		{"?tool=Stop_VM", "tool"},
		{"?tool=" + url.QueryEscape("stop_vm'--"), "tool"},
		{"?principal=" + url.QueryEscape("*"), "principal"},
		{"?principal=" + url.QueryEscape("a*b"), "principal"},
		{"?principal=" + url.QueryEscape("agent\x00x"), "principal"},
		{"?principal=" + strings.Repeat("a", 201), "principal"},
		{"?tier=purple", "tier"},
		{"?decision=maybe", "decision"},
		{"?outcome=error", "outcome"},
		{"?since=yesterday", "since"},
		{"?until=2026-11-26", "until"},
		{"?since=2026-11-26T09:00:00Z&until=2026-11-26T08:00:00Z", "until"},
		{"?before_id=0", "before_id"},
		{"?before_id=9223372036854775808", "before_id"},
		{"?before_id=-3", "before_id"},
		{"?tools=stop_vm", "tools"},
		{"?tool=stop_vm&tool=start_vm", "tool"},
	} {
		badRequest(t, h, op, "/api/audit/search"+c.query, c.field)
	}
	// Every problem is named at once.
	resp, out := h.do("GET", "/api/audit/search?limit=0&tier=purple", op, nil)
	details, _ := out["details"].(map[string]any)
	fields, _ := details["fields"].([]any)
	if resp.StatusCode != http.StatusBadRequest || len(fields) != 2 {
		t.Errorf("two bad parameters = %d %v, want 400 naming both", resp.StatusCode, out)
	}
}

func TestApprovalHistoryAPI(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	ctx := context.Background()
	now := time.Now()
	mk := func(i int, tool string) *store.Approval {
		a := &store.Approval{Principal: "agent:ops/tok_1", Tool: tool, Args: "{}", Plan: fmt.Sprintf("%s plan %d", tool, i), Tier: "red",
			CreatedAt: now.Add(time.Duration(i-10) * time.Minute), ExpiresAt: now.Add(time.Hour)}
		if err := h.store.CreateApproval(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	pending := mk(0, "stop_vm")
	approved := mk(1, "stop_vm")
	denied := mk(2, "restart_vm")
	for _, d := range []struct {
		a   *store.Approval
		yes bool
	}{{approved, true}, {denied, false}} {
		if _, err := h.store.DecideApproval(ctx, d.a.ID, d.yes, safety.OperatorID, now); err != nil {
			t.Fatal(err)
		}
	}
	type historyJSON struct {
		Approvals []struct {
			ID        string `json:"id"`
			Principal string `json:"principal"`
			Tool      string `json:"tool"`
			Plan      string `json:"plan"`
			Status    string `json:"status"`
			DecidedBy string `json:"decided_by"`
			DecidedAt string `json:"decided_at"`
		} `json:"approvals"`
		More       bool   `json:"more"`
		NextBefore string `json:"next_before"`
	}
	var all historyJSON
	getJSON(t, h, op, "/api/approvals/history", &all)
	if len(all.Approvals) != 2 || all.Approvals[0].ID != denied.ID || all.Approvals[1].ID != approved.ID {
		t.Fatalf("history = %+v, want denied then approved, and not the pending %s", all, pending.ID)
	}
	if a := all.Approvals[0]; a.Status != "denied" || a.DecidedBy != safety.OperatorID || a.DecidedAt == "" || a.Plan != "restart_vm plan 2" || a.Principal != "agent:ops/tok_1" {
		t.Errorf("denied entry = %+v, want who asked, the plan, who decided and when", a)
	}
	var onlyApproved historyJSON
	getJSON(t, h, op, "/api/approvals/history?status=approved", &onlyApproved)
	if len(onlyApproved.Approvals) != 1 || onlyApproved.Approvals[0].ID != approved.ID {
		t.Errorf("approved history = %+v, want only %s", onlyApproved, approved.ID)
	}
	var first, second historyJSON
	getJSON(t, h, op, "/api/approvals/history?limit=1", &first)
	if !first.More || first.NextBefore != denied.ID {
		t.Fatalf("first page = %+v, want more after %s", first, denied.ID)
	}
	getJSON(t, h, op, "/api/approvals/history?limit=1&before="+first.NextBefore, &second)
	if len(second.Approvals) != 1 || second.Approvals[0].ID != approved.ID || second.More {
		t.Errorf("second page = %+v, want %s and no more", second, approved.ID)
	}
	for _, c := range []struct{ query, field string }{
		{"?status=pending", "status"},
		{"?status=maybe", "status"},
		{"?limit=0", "limit"},
		{"?limit=501", "limit"},
		{"?before=apr_XYZ", "before"},
		{"?before=apr_00000000deadbeef", "before"},
		{"?page=2", "page"},
	} {
		badRequest(t, h, op, "/api/approvals/history"+c.query, c.field)
	}
	// The single-approval route still answers beside history.
	var one map[string]any
	getJSON(t, h, op, "/api/approvals/"+approved.ID, &one)
	if one["id"] != approved.ID {
		t.Errorf("GET /api/approvals/%s = %v", approved.ID, one)
	}
}
