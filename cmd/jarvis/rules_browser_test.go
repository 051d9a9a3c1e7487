package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestConsoleRulesAndApprovalLinkInBrowser drives, in headless Chromium
// against a demo Jarvis: a notification's link to an approval
// (#approval/<id>) opened before logging in, kept through the login, and the
// request approved from there; then the Rules view: a standing approval made
// with the form (a 400 shown as the server's sentence first), listed active,
// revoked through the confirm dialog, listed revoked; a second rule that lets
// an agent's RED call run without a person, which the feed names; and, when
// the server is the demo's simulator, a guest crashed from its page.
func TestConsoleRulesAndApprovalLinkInBrowser(t *testing.T) {
	cs := startConsoleSession(t, "rules-test-operator-password", 150*time.Second)
	ctx, base, password, root, tab := cs.ctx, cs.base, cs.password, cs.root, cs.tab
	step, eval := cs.step, cs.eval
	text := cs.text

	// An agent's stop of web01 waits for a person; the notification links to it.
	token := browserOperatorToken(t, ctx, base, password)
	session := browserMCPSession(t, ctx, base, token)
	res := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": 101})
	var refusal struct {
		Decision   string `json:"decision"`
		ApprovalID string `json:"approval_id"`
	}
	browserDecode(t, res.StructuredContent, &refusal)
	if refusal.Decision != "needs_approval" || refusal.ApprovalID == "" {
		t.Fatalf("stop_vm 101 = %+v, want needs_approval", refusal)
	}
	id := refusal.ApprovalID
	card := fmt.Sprintf(`[data-testid="approval"][data-approval-id=%q]`, id)

	// The link opens the login first, says where it leads, and keeps the hash.
	step("open the approval's link",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/#approval/"+id),
		chromedp.WaitVisible(chromedp.CSS("#login-password")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-next"]`)),
	)
	if next := text(`[data-testid="login-next"]`); !strings.Contains(next, id) {
		t.Errorf("the login page says %q, want it to name %s", next, id)
	}
	step("log in",
		chromedp.SendKeys(chromedp.CSS("#login-password"), password+"\n"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="approval-view"][data-status="pending"]`)),
		chromedp.WaitVisible(chromedp.CSS(card+`[data-linked] [data-testid="approve"]`)),
	)
	if h := eval("read the address", `location.hash`); h != "#approval/"+id {
		t.Errorf("after the login the address is %q, want #approval/%s", h, id)
	}
	step("see the request focused", chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, card)))
	if st := text(`[data-testid="approval-status"]`); !strings.Contains(st, "Waiting for you") {
		t.Errorf("the approval's status says %q, want that it waits for the operator", st)
	}
	if facts := text(`[data-testid="approval-facts"]`); !strings.Contains(facts, "stop_vm") || !strings.Contains(facts, "101") {
		t.Errorf("the approval's facts are %q, want the tool and its target", facts)
	}
	artifacts := filepath.Join(root, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatalf("creating %s: %v", artifacts, err)
	}
	browserScreenshot(t, tab, 390, 844, filepath.Join(artifacts, "console-approval-link-phone.png"))
	step("back to the desktop width", chromedp.EmulateViewport(1280, 900))

	// Approve from there, with the keyboard on the focused card's button.
	step("approve it from the link",
		chromedp.Focus(chromedp.CSS(card+` [data-testid="approve"]`)),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="approval-view"][data-status="approved"]`)),
	)
	if st := text(`[data-testid="approval-status"]`); !strings.Contains(st, "Approved by operator") {
		t.Errorf("after approving, the status says %q", st)
	}
	second := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": 101, "approval_id": id})
	if second.IsError {
		t.Fatalf("stop_vm with the approval failed: %s", browserResultText(second))
	}
	step("see it used", chromedp.WaitVisible(chromedp.CSS(`[data-testid="approval-view"][data-status="consumed"]`)))

	// A decided request opened from its link says what became of it.
	goTo := func(hash string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash))
	}
	step("open the link again",
		goTo("#/"),
		chromedp.WaitVisible(chromedp.CSS(`#cluster-section`)),
		goTo("#approval/"+id),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="approval-view"][data-status="consumed"]`)),
	)
	step("open a link to nothing",
		goTo("#approval/apr_00000000deadbeef"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="approval-view"][data-status="missing"]`)),
	)

	// The Rules view: what a rule can and cannot do, and the form.
	step("open the rules",
		goTo("#/"),
		chromedp.WaitVisible(chromedp.CSS(`#cluster-section`)),
		chromedp.Click(chromedp.CSS(`[data-testid="nav-rules"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="rules-view"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="rules-empty"]`)),
		chromedp.Poll[chromedp.Void](`!!document.querySelector('#rule-tool option[value="start_vm"]') && !!document.querySelector('#rule-for option[value="operators"]')`),
	)
	if explain := text(`[data-testid="rules-explain"]`); !strings.Contains(explain, "BLACK") || !strings.Contains(explain, "protected") || !strings.Contains(explain, "kill switch") {
		t.Errorf("the rules view explains %q; want what a rule can never let through", explain)
	}
	if tools := eval("list the offered tools", `[...document.querySelectorAll('#rule-tool option')].map(o => o.value).join(',')`); strings.Contains(tools, "list_") || strings.Contains(tools, "get_") {
		t.Errorf("the form offers tools that are not RED: %s", tools)
	}
	fill := func(what, tool, args, trigger, perHour, expires string) {
		t.Helper()
		step(what,
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-for"]`), "operators"),
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-tool"]`), tool),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="rule-tool"]').dispatchEvent(new Event('change'))`),
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-args"]`), args),
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-trigger"]`), trigger),
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-per-hour"]`), perHour),
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-max-failures"]`), "3"),
			chromedp.SetValue(chromedp.CSS(`[data-testid="rule-expires"]`), expires),
			chromedp.Click(chromedp.CSS(`[data-testid="rule-submit"]`)),
		)
	}
	// A mistake is the server's 400, said in the form.
	fill("submit a rule that never ends", "start_vm", "vmid=101,102", "guest_stopped_unexpectedly", "2", "forever")
	step("see the server's sentence", chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="rule-form-error"]').textContent.includes('expires_in must be')`))
	if n := eval("count the rules", `String(document.querySelectorAll('[data-testid="rule-row"]').length)`); n != "0" {
		t.Errorf("a refused rule is listed (%s rows)", n)
	}
	if hint := text(`[data-testid="rule-tool-args"]`); !strings.Contains(hint, "vmid") {
		t.Errorf("the form does not say which arguments start_vm takes: %q", hint)
	}

	fill("create a rule", "start_vm", "vmid=101,102", "guest_stopped_unexpectedly", "2", "7d")
	row := `[data-testid="rule-row"]`
	step("see it active",
		chromedp.WaitVisible(chromedp.CSS(row+`[data-status="active"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="rule-form-error"]').textContent === ''`),
	)
	ruleID := eval("read the rule's id", fmt.Sprintf(`document.querySelector(%q).dataset.ruleId`, row))
	if !strings.HasPrefix(ruleID, "r_") {
		t.Fatalf("the new row's rule id is %q", ruleID)
	}
	thisRow := fmt.Sprintf(`[data-testid="rule-row"][data-rule-id=%q]`, ruleID)
	line := text(thisRow)
	for _, want := range []string{"operators", "start_vm", "vmid = 101, 102", "guest_stopped_unexpectedly", "2 per hour per target", "stops after 3 failures in a row", "0 of 3 failures in a row", "not used yet"} {
		if !strings.Contains(line, want) {
			t.Errorf("the rule's row %q lacks %q", line, want)
		}
	}
	if st := text(`[data-testid="rule-form-status"]`); !strings.Contains(st, ruleID) {
		t.Errorf("the form says %q after creating, want the new rule's id", st)
	}
	browserScreenshot(t, tab, 1280, 900, filepath.Join(artifacts, "console-rules.png"))
	browserScreenshot(t, tab, 390, 844, filepath.Join(artifacts, "console-rules-phone.png"))
	if fits := eval("measure the phone layout", `String(document.documentElement.scrollWidth <= window.innerWidth)`); fits != "true" {
		t.Errorf("at 390 px the rules view scrolls sideways (scrollWidth %s)", eval("read scrollWidth", `String(document.documentElement.scrollWidth)`))
	}
	step("back to the desktop width", chromedp.EmulateViewport(1280, 900))

	// Revoke: the dialog asks; Escape keeps it, OK revokes it.
	step("ask to revoke, then keep it",
		chromedp.Click(chromedp.CSS(thisRow+` [data-testid="rule-revoke"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)),
		chromedp.Poll[chromedp.Void](`document.activeElement && document.activeElement.dataset.testid === 'confirm-cancel'`),
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)),
	)
	if st := eval("read the status", fmt.Sprintf(`document.querySelector(%q).dataset.status`, thisRow)); st != "active" {
		t.Errorf("after cancelling, the rule is %s", st)
	}
	step("revoke it",
		chromedp.Click(chromedp.CSS(thisRow+` [data-testid="rule-revoke"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="confirm-dialog"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="confirm-ok"]`)),
		chromedp.WaitVisible(chromedp.CSS(thisRow+`[data-status="revoked"]`)),
	)
	if n := eval("look for controls on the revoked rule", fmt.Sprintf(`String(document.querySelectorAll(%q).length)`, thisRow+" button")); n != "0" {
		t.Errorf("the revoked rule still has %s buttons", n)
	}

	// A rule that lets the operator's own hard stop of 105 through, once an hour.
	fill("create a rule for stop_vm 105", "stop_vm", "vmid=105", "", "1", "8h")
	step("see the second rule active", chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll('[data-testid="rule-row"][data-status="active"]')].some(r => r.dataset.ruleId !== %q)`, ruleID)))
	rule2 := eval("read its id", fmt.Sprintf(`[...document.querySelectorAll('[data-testid="rule-row"][data-status="active"]')].find(r => r.dataset.ruleId !== %q).dataset.ruleId`, ruleID))
	ran := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": 105})
	if ran.IsError {
		t.Fatalf("stop_vm 105 under the rule did not run: %s", browserResultText(ran))
	}
	step("see its spend",
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { const r = document.querySelector('[data-testid="rule-row"][data-rule-id=%q]'); return r && r.textContent.includes('guest/105: 1 of 1'); })()`, rule2)),
	)

	// The feed: the rule's events, and the call it let through named by it.
	step("see the feed",
		chromedp.Click(chromedp.CSS(`[data-testid="nav-overview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#feed-section`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll('[data-testid="feed-item"][data-type="rule"]')].some(li => li.dataset.phase === 'revoked' && li.textContent.includes(%q))`, ruleID)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll('[data-testid="feed-item"][data-type="rule"]')].some(li => li.dataset.phase === 'used' && li.textContent.includes(%q))`, rule2)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll('[data-testid="feed-item"][data-type="tool"]')].some(li => li.dataset.rule === %q && li.textContent.includes('by rule %s/v1'))`, rule2+"/v1", rule2)),
	)
	// The person-approved stop of 101 says so, and names no rule.
	step("see the approved call",
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="tool"]')].some(li => !li.dataset.rule && li.textContent.includes('stop_vm') && li.textContent.includes('approved by a person'))`),
	)
	step("filter rules out of the feed",
		chromedp.Click(chromedp.CSS(`[data-testid="filter-rule"]`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="rule"]')].every(li => li.hidden)`),
		chromedp.Click(chromedp.CSS(`[data-testid="filter-rule"]`)),
	)

	// The demo's crash button, when the server runs the simulator.
	var demo struct {
		Demo bool `json:"demo"`
	}
	browserAPI(t, ctx, http.MethodGet, base+"/api/demo", token, nil, &demo)
	step("open guest 102",
		goTo("#/guest/102"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest-detail"][data-vmid="102"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-detail"]').dataset.loaded === 'true'`),
	)
	shown := eval("look for the crash button", `String(!document.querySelector('[data-testid="guest-demo"]').hidden)`)
	if shown != fmt.Sprint(demo.Demo) {
		t.Errorf("the crash button shown = %s, but the server says demo = %v", shown, demo.Demo)
	}
	if demo.Demo {
		step("crash guest 102",
			chromedp.Click(chromedp.CSS(`[data-testid="guest-crash"]`)),
			chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-crash-result"]').dataset.state === 'ok'`),
		)
	}

	// Expected failed requests: the 401 before the login, the 400 of the
	// rule that never ends, the 404 of the link to nothing.
	cs.checkPageConsole("401", "400", "404")
}
