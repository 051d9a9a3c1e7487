package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// TestConsoleWithTwoClustersInBrowser drives the console of `jarvis serve
// --demo` with JARVIS_CLUSTERS=home,lab (lab's VMIDs are home's + 1000, its
// nodes lab-…): the overview picks a cluster and shows only its snapshots,
// whatever the other cluster's watcher publishes meanwhile; approvals, feed
// rows, the approvals history and the audit log name each call's cluster and
// filter on it; a guest opened from lab's overview is read with its cluster
// and never shown as another cluster's guest.
func TestConsoleWithTwoClustersInBrowser(t *testing.T) {
	t.Setenv("JARVIS_CLUSTERS", "home,lab")
	// Frequent polls: both watchers publish several rounds while the page is open.
	t.Setenv("JARVIS_WATCH_INTERVAL", "2s")
	cs := startConsoleSession(t, "clusters-browser-test-operator-password", 150*time.Second)
	ctx, base, password, root, tab := cs.ctx, cs.base, cs.password, cs.root, cs.tab
	step, eval := cs.step, cs.eval
	text := cs.text
	// pick chooses value in a select as a change by hand does.
	pick := func(id, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event('change', { bubbles: true })); })()`, id, value))
	}
	// shownBesides lists what the overview shows that is not cluster's ("" when nothing).
	shownBesides := func(cluster string) string {
		return eval("check the overview's cluster", fmt.Sprintf(`(() => {
			const cluster = %q, lab = cluster === 'lab', bad = [];
			for (const tr of document.querySelectorAll('[data-testid="guest"]')) {
				if (tr.querySelector('td.node').textContent.startsWith('lab-') !== lab || tr.dataset.cluster !== cluster) bad.push('guest ' + tr.dataset.vmid);
			}
			for (const li of document.querySelectorAll('[data-testid="node"]')) {
				if (li.dataset.node.startsWith('lab-') !== lab) bad.push('node ' + li.dataset.node);
			}
			for (const li of document.querySelectorAll('[data-testid="storage-item"]')) {
				const s = li.dataset.storage;
				if (!s.startsWith('shared/') && s.startsWith('lab-') !== lab) bad.push('storage ' + s);
			}
			return bad.join(', ');
		})()`, cluster))
	}

	step("log in",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-password")),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password+"\n"),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
	)

	// The picker lists both clusters with the default chosen, and the
	// overview shows the default's nodes, guests and storage only.
	step("see the cluster picker and home's overview",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="cluster-pick"]`)),
		chromedp.Poll[chromedp.Void](`[...document.getElementById('cluster-pick').options].map(o => o.value).join() === 'home,lab'`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest"][data-cluster="home"][data-vmid="101"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node"][data-node="pve"] [data-meter="cpu"] .meter-value`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="storage-item"]`)),
	)
	if v := eval("read the picker", `document.getElementById('cluster-pick').value`); v != "home" {
		t.Errorf("the picker chose %q first, want the default cluster home", v)
	}
	token := browserOperatorToken(t, ctx, base, password)
	newestLabSnapshot := func() uint64 {
		var out struct {
			Events []struct {
				ID uint64 `json:"id"`
			} `json:"events"`
		}
		browserAPI(t, ctx, http.MethodGet, base+"/api/memory/events?type=cluster&cluster=lab&limit=1", token, nil, &out)
		if len(out.Events) == 0 {
			return 0
		}
		return out.Events[0].ID
	}
	// Lab's watcher keeps publishing; its snapshots must not replace home's.
	before := newestLabSnapshot()
	for deadline := time.Now().Add(20 * time.Second); newestLabSnapshot() <= before; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no new snapshot of lab within 20 s (newest %d)", before)
		}
	}
	time.Sleep(time.Second) // the feed delivers it to the page
	if bad := shownBesides("home"); bad != "" {
		t.Errorf("with home picked, the overview shows %s", bad)
	}
	if n := eval("count the nodes", `String(document.querySelectorAll('[data-testid="node"]').length)`); n != "4" {
		t.Errorf("home's overview shows %s nodes, want 4", n)
	}

	// The keyboard picks lab: its guests (VMIDs + 1000) on its nodes.
	step("pick lab with the keyboard",
		chromedp.Focus(chromedp.CSS(`#cluster-pick`)),
		chromedp.KeyEvent(kb.ArrowDown),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest"][data-cluster="lab"][data-vmid="1101"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node"][data-node="lab-pve"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById('cluster-updated').textContent.startsWith('updated ')`),
	)
	if bad := shownBesides("lab"); bad != "" {
		t.Errorf("with lab picked, the overview shows %s", bad)
	}
	if node := text(`[data-testid="guest"][data-vmid="1101"] td.node`); node != "lab-pve" {
		t.Errorf("lab's guest 1101 is on %q, want lab-pve", node)
	}

	// Two calls wait for a person, one on each cluster; each card names its cluster.
	session := browserMCPSession(t, ctx, base, token)
	ask := func(tool string, args map[string]any) string {
		t.Helper()
		var r struct {
			Decision   string `json:"decision"`
			ApprovalID string `json:"approval_id"`
		}
		browserDecode(t, browserCallTool(t, ctx, session, tool, args).StructuredContent, &r)
		if r.Decision != "needs_approval" || r.ApprovalID == "" {
			t.Fatalf("%s %v = %+v, want needs_approval", tool, args, r)
		}
		return r.ApprovalID
	}
	labID := ask("stop_vm", map[string]any{"vmid": 1101, "cluster": "lab"})
	homeID := ask("shutdown_vm", map[string]any{"vmid": 105, "cluster": "home", "timeout_seconds": 60})
	labCard := fmt.Sprintf(`[data-testid="approval"][data-approval-id=%q]`, labID)
	homeCard := fmt.Sprintf(`[data-testid="approval"][data-approval-id=%q]`, homeID)
	step("see each request with its cluster",
		chromedp.WaitVisible(chromedp.CSS(labCard+` [data-testid="approval-cluster"]`)),
		chromedp.WaitVisible(chromedp.CSS(homeCard+` [data-testid="approval-cluster"]`)),
	)
	if got := text(labCard + ` [data-testid="approval-cluster"]`); got != "lab" {
		t.Errorf("lab's request is tagged %q", got)
	}
	if got := text(homeCard + ` [data-testid="approval-cluster"]`); got != "home" {
		t.Errorf("home's request is tagged %q", got)
	}
	if label := eval("read Approve's label", fmt.Sprintf(`document.querySelector(%q).getAttribute('aria-label')`, labCard+` [data-testid="approve"]`)); !strings.Contains(label, "stop_vm on cluster lab") {
		t.Errorf("Approve on lab's request reads %q, want it to name the cluster", label)
	}

	// Approved in the page, the agent's retry runs on lab; the feed says so.
	step("approve lab's request", chromedp.Click(chromedp.CSS(labCard+` [data-testid="approve"]`)), chromedp.WaitNotPresent(chromedp.CSS(labCard)))
	if res := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": 1101, "cluster": "lab", "approval_id": labID}); res.IsError {
		t.Fatalf("the approved stop_vm on lab failed: %s", browserResultText(res))
	}
	labStop := `[...document.querySelectorAll('[data-testid="feed-item"][data-type="tool"][data-cluster="lab"]')].find(li => /stop_vm/.test(li.textContent) && /ended/.test(li.textContent))`
	step("see lab's stop on the feed", chromedp.Poll[chromedp.Void](labStop+` !== undefined`))
	if tag := eval("read the feed row's tag", `(() => { const t = `+labStop+`.querySelector('[data-testid="feed-cluster"]'); return t && t.offsetParent !== null ? t.textContent : '<hidden>'; })()`); tag != "lab" {
		t.Errorf("lab's stop_vm on the feed is tagged %q", tag)
	}
	step("show home's activity only",
		pick("filter-cluster", "home"),
		chromedp.Poll[chromedp.Void](`(() => { const items = [...document.querySelectorAll('[data-testid="feed-item"]')];
			return items.filter(li => li.dataset.cluster === 'lab').every(li => li.hidden) && items.some(li => li.dataset.cluster === 'home' && !li.hidden); })()`),
		pick("filter-cluster", ""),
		chromedp.Poll[chromedp.Void](labStop+`.hidden === false`),
	)

	screenshotsWideAndPhone(t, tab, root, "console-clusters")

	// The approvals history names each request's cluster and filters on it.
	step("deny home's request", chromedp.Click(chromedp.CSS(homeCard+` [data-testid="deny"]`)), chromedp.WaitNotPresent(chromedp.CSS(homeCard)))
	labRow := fmt.Sprintf(`[data-testid="history-row"][data-approval-id=%q]`, labID)
	homeRow := fmt.Sprintf(`[data-testid="history-row"][data-approval-id=%q]`, homeID)
	step("open the approvals history",
		chromedp.Click(chromedp.CSS(`[data-testid="nav-history"]`)),
		chromedp.WaitVisible(chromedp.CSS(labRow+` [data-testid="row-cluster"]`)),
		chromedp.WaitVisible(chromedp.CSS(homeRow+` [data-testid="row-cluster"]`)),
	)
	if got := text(labRow + ` [data-testid="row-cluster"]`); got != "lab" {
		t.Errorf("lab's request in the history is tagged %q", got)
	}
	step("show home's decisions only",
		pick("history-cluster", "home"),
		chromedp.WaitNotPresent(chromedp.CSS(labRow)),
		chromedp.WaitVisible(chromedp.CSS(homeRow)),
	)

	// The audit log: every row tagged, the cluster filter answered by the server.
	step("open the audit log, lab's calls only",
		chromedp.Click(chromedp.CSS(`[data-testid="nav-audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-row"] [data-testid="row-cluster"]`)),
		pick("audit-cluster", "lab"),
		chromedp.Click(chromedp.CSS(`[data-testid="audit-search"]`)),
		chromedp.Poll[chromedp.Void](`(() => { const rows = [...document.querySelectorAll('[data-testid="audit-row"]')];
			return rows.length > 0 && rows.every(r => (r.querySelector('[data-testid="row-cluster"]') || {}).textContent === 'lab') && rows.some(r => r.dataset.tool === 'stop_vm'); })()`),
	)

	// A guest opened from home's overview: its detail is read for home.
	step("open home's guest 101",
		chromedp.Click(chromedp.CSS(`[data-testid="nav-overview"]`)),
		pick("cluster-pick", "home"),
		chromedp.Click(chromedp.CSS(`[data-testid="guest"][data-cluster="home"][data-vmid="101"] td.vmid`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest-detail"][data-cluster="home"][data-vmid="101"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-detail"]').dataset.loaded !== 'false'`),
	)
	if h := eval("read the address", `location.hash`); h != "#/guest/home/101" {
		t.Errorf("the address of home's guest 101 is %q", h)
	}
	if loaded := eval("read the load state", `document.querySelector('[data-testid="guest-detail"]').dataset.loaded`); loaded != "true" {
		t.Fatalf("home's guest 101 did not load: %q (%s)", loaded, text(`[data-testid="guest-status"]`))
	}
	if cfg := text(`[data-testid="guest-config"]`); !strings.Contains(cfg, "web01") || strings.Contains(cfg, "lab-") {
		t.Errorf("home's guest 101 config reads %q", cfg)
	}
	if got := text(`[data-testid="guest-cluster"]`); got != "cluster home" {
		t.Errorf("the detail's cluster badge reads %q", got)
	}

	// Lab's guest 1101: the read names lab. Either Jarvis answers for lab, or
	// the page says it cannot show it; never another cluster's guest.
	step("open lab's guest 1101",
		chromedp.Click(chromedp.CSS(`[data-testid="guest-back"]`)),
		pick("cluster-pick", "lab"),
		chromedp.Click(chromedp.CSS(`[data-testid="guest"][data-cluster="lab"][data-vmid="1101"] td.vmid`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest-detail"][data-cluster="lab"][data-vmid="1101"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-testid="guest-detail"]').dataset.loaded !== 'false'`),
		chromedp.Poll[chromedp.Void](`document.getElementById('guest-charts').getAttribute('aria-busy') !== 'true'`),
	)
	if h := eval("read the address", `location.hash`); h != "#/guest/lab/1101" {
		t.Errorf("the address of lab's guest 1101 is %q", h)
	}
	if asked := eval("look for the cluster in the reads", `String(['/api/guests/1101?cluster=lab', '/api/guests/1101/metrics?timeframe=hour&cluster=lab'].every(u => performance.getEntriesByType('resource').some(e => e.name.endsWith(u))))`); asked != "true" {
		t.Errorf("the guest view did not pass cluster=lab to its reads")
	}
	if hidden := eval("look for the crash button", `String(document.getElementById('guest-demo').hidden)`); hidden != "true" {
		t.Errorf("the demo's crash button (default cluster only) is offered for lab's guest")
	}
	switch loaded := eval("read the load state", `document.querySelector('[data-testid="guest-detail"]').dataset.loaded`); loaded {
	case "true": // a Jarvis whose guest view takes the cluster
		if cfg := text(`[data-testid="guest-config"]`); !strings.Contains(cfg, "lab-pve") {
			t.Errorf("lab's guest 1101 config reads %q, want node lab-pve", cfg)
		}
	case "other-cluster":
		if status := text(`[data-testid="guest-status"]`); !strings.Contains(status, "cluster lab") {
			t.Errorf("the page says %q of lab's guest it cannot show", status)
		}
		if n := eval("count what the sections show", `String(document.querySelectorAll('[data-testid="guest-config"] *, [data-testid="guest-snapshots"] *, [data-testid="guest-charts"] *').length)`); n != "0" {
			t.Errorf("the page shows %s elements of an answer that is not lab's guest", n)
		}
	default:
		t.Errorf("lab's guest 1101: load state %q (%s)", loaded, text(`[data-testid="guest-status"]`))
	}

	cs.checkPageConsole("401")
}

// TestConsoleNamesTheClusterItCannotRead starts a real Jarvis (not the demo)
// on two clusters, home and lab, each a simulated Proxmox API over TLS; lab
// refuses Jarvis's token at first. The console names lab, and only lab, as
// the cluster it cannot read, in the banner, the pill, the picker and lab's
// overview, while home's overview stays live; once lab takes the token again
// the banner goes and lab's overview fills.
func TestConsoleNamesTheClusterItCannotRead(t *testing.T) {
	needBrowser(t)
	home := httptest.NewTLSServer(pvesim.New(pvesim.Options{}))
	t.Cleanup(home.Close)
	var deny atomic.Bool
	deny.Store(true)
	labSim := pvesim.New(pvesim.Options{Site: pvesim.Site{Name: "lab", NodePrefix: "lab-", VMIDOffset: 1000}})
	lab := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if deny.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		labSim.ServeHTTP(w, r)
	}))
	t.Cleanup(lab.Close)

	const password = "clusters-degraded-test-operator-password"
	port := browserFreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("JARVIS_LISTEN", "127.0.0.1")
	t.Setenv("JARVIS_PASSWORD", password)
	t.Setenv("JWT_SECRET", "clusters-degraded-jwt-secret-0123456789abcdef")
	testDatabase(t)
	t.Setenv("LOG_LEVEL", "warn")
	t.Setenv("JARVIS_WATCH_INTERVAL", "2s")
	t.Setenv("JARVIS_CLUSTERS", "home,lab")
	for name, c := range map[string]struct {
		api  *httptest.Server
		node string
	}{"HOME": {home, "pve"}, "LAB": {lab, "lab-pve"}} {
		t.Setenv("JARVIS_CLUSTER_"+name+"_NODES", c.node+"="+strings.TrimPrefix(c.api.URL, "https://"))
		t.Setenv("JARVIS_CLUSTER_"+name+"_PVE_TOKEN_ID", pvesim.DemoTokenID)
		t.Setenv("JARVIS_CLUSTER_"+name+"_PVE_TOKEN_SECRET", pvesim.DemoTokenSecret)
		t.Setenv("JARVIS_CLUSTER_"+name+"_PVE_TLS_FINGERPRINT", pve.FingerprintOf(c.api.Certificate()))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	var logs lockedBuffer
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	server := browserStartJarvis(t, ctx, base, &logs, "serve")
	t.Cleanup(func() {
		server.stop(t)
		if t.Failed() {
			t.Logf("jarvis log:\n%s", logs.String())
		}
	})
	tab, console := startBrowser(t, ctx)
	cs := &consoleSession{t: t, ctx: ctx, base: base, password: password, tab: tab, pageConsole: console}
	step, eval := cs.step, cs.eval
	text := cs.text

	step("log in",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-password")),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password+"\n"),
		chromedp.WaitVisible(chromedp.CSS("#console-view")),
	)
	step("see lab named in the banner",
		chromedp.WaitVisible(chromedp.CSS(`#cluster-banner`)),
		chromedp.Poll[chromedp.Void](`document.getElementById('cluster-banner-title').textContent === 'Jarvis cannot read Proxmox cluster lab.'`),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="degraded"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node"][data-node="pve"]`)),
	)
	if cause := text("#cluster-banner-cause"); !strings.HasPrefix(cause, "lab: ") || !strings.Contains(cause, "401") || strings.Contains(cause, "home") {
		t.Errorf("the banner's cause is %q, want lab's refused token only", cause)
	}
	if pill := text("#conn-text"); !strings.HasPrefix(pill, "lab ") {
		t.Errorf("the pill says %q, want it to name lab", pill)
	}
	if opts := eval("read the picker", `[...document.getElementById('cluster-pick').options].map(o => o.textContent).join('|')`); !strings.HasPrefix(opts, "home") || strings.Contains(opts, "home · cannot") || !strings.Contains(opts, "lab · cannot be read") {
		t.Errorf("the picker offers %q", opts)
	}
	step("see home's overview live",
		chromedp.Poll[chromedp.Void](`/^updated \d\d:\d\d:\d\d$/.test(document.getElementById('cluster-updated').textContent)`),
	)
	step("see the watcher's event for lab on the feed",
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="system"][data-cluster="lab"]')].some(li => li.textContent.includes('cannot read the Proxmox cluster'))`),
	)
	step("pick lab",
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('cluster-pick'); s.value = 'lab'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`),
		chromedp.Poll[chromedp.Void](`document.getElementById('cluster-updated').textContent.includes('cannot read the Proxmox cluster')`),
	)
	if n := eval("count lab's nodes", `String(document.querySelectorAll('[data-testid="node"]').length)`); n != "0" {
		t.Errorf("lab's overview shows %s nodes while lab cannot be read", n)
	}
	step("drop the focus ring before the screenshot", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	artifacts := filepath.Join(browserRepoRoot(t), "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatalf("creating %s: %v", artifacts, err)
	}
	browserScreenshot(t, tab, 1280, 900, filepath.Join(artifacts, "console-clusters-unreachable.png"))
	step("back to the wide viewport", chromedp.EmulateViewport(1280, 900))

	// Lab takes the token again: its watcher's next poll clears the banner.
	deny.Store(false)
	step("see lab again",
		chromedp.WaitNotVisible(chromedp.CSS(`#cluster-banner`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node"][data-node="lab-pve"]`)),
		chromedp.Poll[chromedp.Void](`/^updated \d\d:\d\d:\d\d$/.test(document.getElementById('cluster-updated').textContent)`),
		chromedp.Poll[chromedp.Void](`[...document.getElementById('cluster-pick').options].every(o => !o.textContent.includes('cannot'))`),
	)
	cs.checkPageConsole("401")
}
