package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestConsoleGuestDetailHistoryAndAuditInBrowser drives the console's read
// views in headless Chromium against a demo Jarvis: open a guest from the
// overview (mouse and keyboard) and see its config, snapshots, backups, guest
// agent and drawn charts; a protected guest's badge; the approvals decided;
// and the audit log narrowed by tool. Every section is a tool call through
// dispatch, so this also needs get_guest_config, get_guest_agent_info and
// get_metrics_history in the catalogue.
func TestConsoleGuestDetailHistoryAndAuditInBrowser(t *testing.T) {
	cs := startConsoleSession(t, "console-views-test-operator-password", 120*time.Second)
	ctx, base, password, root, tab := cs.ctx, cs.base, cs.password, cs.root, cs.tab
	step, eval := cs.step, cs.eval
	text := cs.text

	step("log in",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-password")),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password+"\n"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest"][data-vmid="101"] [data-testid="guest-link"]`)),
	)

	// Some history for the other views: an agent's stop of web01 waits for a
	// person, who denies it; a second request is approved.
	token := browserOperatorToken(t, ctx, base, password)
	session := browserMCPSession(t, ctx, base, token)
	askStop := func(vmid int) string {
		t.Helper()
		res := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": vmid})
		var r struct {
			Decision   string `json:"decision"`
			ApprovalID string `json:"approval_id"`
		}
		browserDecode(t, res.StructuredContent, &r)
		if r.Decision != "needs_approval" || r.ApprovalID == "" {
			t.Fatalf("stop_vm %d = %+v, want needs_approval", vmid, r)
		}
		return r.ApprovalID
	}
	denied := askStop(101)
	var decided map[string]any
	browserAPI(t, ctx, http.MethodPost, base+"/api/approvals/"+denied+"/deny", token, nil, &decided)
	approved := askStop(105)
	browserAPI(t, ctx, http.MethodPost, base+"/api/approvals/"+approved+"/approve", token, nil, &decided)

	// Guest 101 from the overview, with a click on its row (not on its link),
	// once the decided requests have left the pending list above it (the page
	// must not shift under the click).
	step("see nothing pending", chromedp.Poll[chromedp.Void](`document.getElementById('approvals-count').textContent === '0' && !document.querySelector('[data-testid="approval"]')`))
	step("click guest 101's row", chromedp.Click(chromedp.CSS(`[data-testid="guest"][data-vmid="101"] td.vmid`)))
	step("see guest 101's detail", chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest-detail"][data-vmid="101"]`)))
	step("see the overview make room", chromedp.WaitNotVisible(chromedp.CSS(`#cluster-section`)))
	step("wait for guest 101's answer", chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-detail"]').dataset.loaded !== 'false'`))
	if h := eval("read the address", `location.hash`); h != "#/guest/101" {
		t.Errorf("the address after opening 101 is %q, want #/guest/101", h)
	}
	if loaded := eval("read the load state", `document.querySelector('[data-testid="guest-detail"]').dataset.loaded`); loaded != "true" {
		t.Fatalf("guest 101 did not load: %q (%s)", loaded, text(`[data-testid="guest-status"]`))
	}
	if title := text(`[data-testid="guest-title"]`); !strings.Contains(title, "101") || !strings.Contains(title, "web01") {
		t.Errorf("the detail's title is %q, want VM 101 · web01", title)
	}

	// Each section shows its tool's answer, or says why not.
	for _, part := range []string{"config", "agent", "snapshots", "backups"} {
		if e := text(fmt.Sprintf(`[data-testid="guest-%s-error"]`, part)); e != "" {
			t.Errorf("the %s section says: %s", part, e)
		}
	}
	config := text(`[data-testid="guest-config"]`)
	for _, want := range []string{"web01", "pve", "8.0 GiB", "prod", "web"} {
		if !strings.Contains(config, want) {
			t.Errorf("the config section %q lacks %q", config, want)
		}
	}
	if n := eval("count the disks", `String(document.querySelectorAll('[data-testid="guest-disks"] tbody tr').length)`); n == "0" {
		t.Errorf("the config section lists no disks: %q", config)
	}
	if n := eval("count the NICs", `String(document.querySelectorAll('[data-testid="guest-nics"] tbody tr').length)`); n == "0" {
		t.Errorf("the config section lists no network devices: %q", config)
	}
	snaps := text(`[data-testid="guest-snapshot-list"]`)
	if !strings.Contains(snaps, "pre-upgrade") || !strings.Contains(snaps, "before-php84") {
		t.Errorf("the snapshots section is %q, want pre-upgrade and before-php84", snaps)
	}
	if cur := eval("find the current snapshot", `(() => { const r = [...document.querySelectorAll('[data-testid="guest-snapshot-list"] tbody tr')].find(tr => tr.querySelector('.badge-current')); return r ? r.textContent : ''; })()`); !strings.Contains(cur, "before-php84") {
		t.Errorf("the snapshot marked current is %q, want before-php84", cur)
	}
	if n := eval("count the backups", `String(document.querySelectorAll('[data-testid="guest-backups"] tbody tr').length)`); n == "0" {
		t.Errorf("the backups section lists none: %q", text(`[data-testid="guest-backups"]`))
	}
	if agent := text(`[data-testid="guest-agent"]`); agent == "" {
		t.Errorf("the guest agent section is empty")
	}
	if n := eval("look for badges", `String(document.querySelectorAll('[data-testid="badge-protected"], [data-testid="badge-created"]').length)`); n != "0" {
		t.Errorf("guest 101 shows %s protected/created badges, want none (not protected, not created by Jarvis)", n)
	}

	// The charts are drawn: three canvases with a size.
	chartsDrawn := `(() => {
		const cs = [...document.querySelectorAll('[data-testid="guest-charts"] figure canvas')];
		return cs.length >= 3 && cs.every(c => c.width > 0 && c.height > 0 && c.getBoundingClientRect().width > 0 && c.getBoundingClientRect().height > 0);
	})()`
	sctx, scancel := context.WithTimeout(tab, 20*time.Second)
	err := chromedp.Do(sctx, chromedp.Poll[chromedp.Void](chartsDrawn))
	scancel()
	if err != nil {
		t.Fatalf("the charts were not drawn: %v (metrics section says %q; summary %q)", err, text(`[data-testid="guest-metrics-error"]`), text(`[data-testid="guest-metrics-summary"]`))
	}
	for _, key := range []string{"cpu", "mem", "net"} {
		if label := eval("read a chart's label", fmt.Sprintf(`document.querySelector('[data-testid="chart-%s"] [role="img"]').getAttribute('aria-label')`, key)); label == "" {
			t.Errorf("chart %s has no text alternative", key)
		}
	}
	// Another timeframe redraws from get_metrics_history with it.
	step("chart a week",
		chromedp.Click(chromedp.CSS(`[data-testid="guest-timeframe"] input[value="week"] + span`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-metrics-summary"]').textContent.includes('week')`),
		chromedp.Poll[chromedp.Void](chartsDrawn),
	)

	artifacts := screenshotsWideAndPhone(t, tab, root, "console-guest")

	// Keyboard: back to the overview, then Enter on a guest's link.
	step("open guest 103 with the keyboard",
		chromedp.Click(chromedp.CSS(`[data-testid="guest-back"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#cluster-section`)),
		chromedp.Focus(chromedp.CSS(`[data-testid="guest"][data-vmid="103"] [data-testid="guest-link"]`)),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest-detail"][data-vmid="103"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-detail"]').dataset.loaded === 'true'`),
	)
	// 103 is protected in the demo (JARVIS_PROTECTED_VMIDS; its node agent1 too).
	step("see guest 103 protected", chromedp.WaitVisible(chromedp.CSS(`[data-testid="badge-protected"]`)))
	if why := text(`[data-testid="guest-protection"]`); !strings.Contains(why, "103") || !strings.Contains(why, "agent1") {
		t.Errorf("the protection note is %q, want it to say why (VMID 103, node agent1)", why)
	}

	// Approvals history: the denied and the approved request, newest first.
	deniedRow := fmt.Sprintf(`[data-testid="history-row"][data-approval-id=%q]`, denied)
	approvedRow := fmt.Sprintf(`[data-testid="history-row"][data-approval-id=%q]`, approved)
	step("open the approvals history",
		chromedp.Click(chromedp.CSS(`[data-testid="nav-history"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="history-view"]`)),
		chromedp.WaitVisible(chromedp.CSS(deniedRow+`[data-status="denied"]`)),
		chromedp.WaitVisible(chromedp.CSS(approvedRow+`[data-status="approved"]`)),
	)
	if row := text(deniedRow); !strings.Contains(row, "stop_vm") || !strings.Contains(row, "operator") || !strings.Contains(row, "101") {
		t.Errorf("the denied request's row is %q, want the tool, its plan for 101 and who decided", row)
	}
	if first := eval("read the first row", `document.querySelector('[data-testid="history-row"]').dataset.approvalId`); first != approved {
		t.Errorf("the history starts with %s, want the newest request %s", first, approved)
	}
	browserScreenshot(t, tab, 1280, 900, filepath.Join(artifacts, "console-history.png"))
	step("filter the history to denials",
		chromedp.SetValue(chromedp.CSS(`[data-testid="history-status"]`), "denied"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="history-status"]').dispatchEvent(new Event('change'))`),
		chromedp.WaitNotPresent(chromedp.CSS(approvedRow)),
		chromedp.WaitVisible(chromedp.CSS(deniedRow)),
	)

	// Audit log: everything, then narrowed to one tool.
	step("open the audit log",
		chromedp.Click(chromedp.CSS(`[data-testid="nav-audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-view"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('[data-testid="audit-row"][data-tool="list_snapshots"]').length > 0 && document.querySelectorAll('[data-testid="audit-row"][data-tool="stop_vm"]').length > 0`),
	)
	all, _ := strconv.Atoi(eval("count the rows", `String(document.querySelectorAll('[data-testid="audit-row"]').length)`))
	step("search for list_snapshots",
		chromedp.SendKeys(chromedp.CSS(`[data-testid="audit-tool"]`), "list_snapshots"),
		chromedp.Click(chromedp.CSS(`[data-testid="audit-search"]`)),
		chromedp.Poll[chromedp.Void](`(() => { const rows = [...document.querySelectorAll('[data-testid="audit-row"]')]; return rows.length > 0 && rows.every(r => r.dataset.tool === 'list_snapshots'); })()`),
	)
	narrowed, _ := strconv.Atoi(eval("count the rows", `String(document.querySelectorAll('[data-testid="audit-row"]').length)`))
	if narrowed == 0 || narrowed >= all {
		t.Errorf("filtering by tool left %d of %d rows, want fewer but some", narrowed, all)
	}
	// The console's own reads are in the log as the operator's calls.
	if who := eval("read who listed snapshots", `[...document.querySelectorAll('[data-testid="audit-row"] td.who')].map(td => td.textContent).join(',')`); !strings.Contains(who, "operator") {
		t.Errorf("list_snapshots rows were made by %q, want the operator (the console's reads)", who)
	}
	// A wrong filter is the server's 400, said in the page.
	step("search with a bad tool name",
		chromedp.SetValue(chromedp.CSS(`[data-testid="audit-tool"]`), "Not A Tool"),
		chromedp.Click(chromedp.CSS(`[data-testid="audit-search"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="audit-error"]').textContent.includes('tool must be')`),
	)
	step("clear the filters",
		chromedp.Click(chromedp.CSS(`[data-testid="audit-clear"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelectorAll('[data-testid="audit-row"]').length >= %d && document.querySelector('[data-testid="audit-error"]').textContent === ''`, all)),
	)
	if editable := eval("look for controls in the log", `String(document.querySelectorAll('[data-testid="audit-table"] tbody input, [data-testid="audit-table"] tbody button, [data-testid="audit-table"] tbody [contenteditable]').length)`); editable != "0" {
		t.Errorf("the audit table has %s controls in its rows; it must be read-only", editable)
	}
	browserScreenshot(t, tab, 1280, 900, filepath.Join(artifacts, "console-audit.png"))

	// Expected failed requests: the 401 before login and the 400 of the bad
	// search above.
	cs.checkPageConsole("401", "400")
}
