package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// chromiumPath is Debian's chromium; .ci/browser.sh installs it.
const chromiumPath = "/usr/bin/chromium"

// TestConsoleInBrowser drives the operator console in headless Chromium against a
// demo Jarvis: log in, see the cluster, watch an agent's stop_vm wait for approval,
// approve it in the page, and see the agent's retry succeed on the feed.
func TestConsoleInBrowser(t *testing.T) {
	// Jarvis in-process, in demo mode (simulated cluster and node shells). It is
	// started twice: the second start checks that the page reconnects by itself.
	// Every console message of the page is kept; script errors and CSP
	// violations fail the test at the end.
	cs := startConsoleSession(t, "browser-test-operator-password", 90*time.Second)
	ctx, base, password, root, tab := cs.ctx, cs.base, cs.password, cs.root, cs.tab
	step, eval := cs.step, cs.eval

	// Not logged in: the page asks for the password, with the cursor in the field.
	step("open the console",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-password")),
	)
	if got := eval("read the focused element", `document.activeElement ? document.activeElement.id : ""`); got != "login-password" {
		t.Errorf("focus after load is on %q, want the password field", got)
	}

	// Keyboard only: a wrong password shows an error, the right one logs in.
	step("submit a wrong password",
		chromedp.SendKeys(chromedp.CSS("#login-password"), "not-the-password\n"),
		chromedp.Poll[chromedp.Void](`document.getElementById('login-error').textContent.includes('Wrong password')`),
	)
	step("log in with the keyboard",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('login-password').value = ''`),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password+"\n"),
		chromedp.WaitVisible(chromedp.CSS("#console-view")),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
	)

	// The cluster overview fills from the poller's first round.
	for _, node := range []string{"home", "pve", "agent1", "agent"} {
		step("see node "+node, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-testid="node"][data-node=%q] [data-meter="cpu"] .meter-value`, node))))
	}
	step("see the guests and storage",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="guest"][data-vmid="101"][data-status="running"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="storage-item"]`)),
	)
	if got := eval("count the nodes", `String(document.querySelectorAll('[data-testid="node"]').length)`); got != "4" {
		t.Errorf("the page shows %s nodes, want 4", got)
	}

	// An agent asks to hard-stop web01 (VM 101 on pve, not protected).
	token := browserOperatorToken(t, ctx, base, password)
	session := browserMCPSession(t, ctx, base, token)
	first := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": 101})
	if !first.IsError {
		t.Fatalf("stop_vm without approval ran: %s", browserResultText(first))
	}
	var refusal struct {
		Decision   string `json:"decision"`
		ApprovalID string `json:"approval_id"`
		Plan       string `json:"plan"`
	}
	browserDecode(t, first.StructuredContent, &refusal)
	if refusal.Decision != "needs_approval" || refusal.ApprovalID == "" {
		t.Fatalf("stop_vm without approval = %+v, want needs_approval with an approval_id", refusal)
	}
	card := fmt.Sprintf(`[data-testid="approval"][data-approval-id=%q]`, refusal.ApprovalID)

	// The request appears in the page with its plan, who asked, and a countdown.
	step("see the approval request",
		chromedp.WaitVisible(chromedp.CSS(card+` [data-testid="approve"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`/^expires in \d+:\d\d$/.test(document.querySelector(%q).textContent)`, card+` [data-testid="approval-countdown"]`)),
	)
	plan := eval("read the plan", fmt.Sprintf(`document.querySelector(%q).textContent`, card+` [data-testid="approval-plan"]`))
	if plan != refusal.Plan || !strings.Contains(plan, "Hard stop") {
		t.Errorf("the page shows plan %q, want the server's %q", plan, refusal.Plan)
	}
	if who := eval("read who asked", fmt.Sprintf(`document.querySelector(%q).textContent`, card+` [data-testid="approval-principal"]`)); who == "" {
		t.Errorf("the approval does not say who asked")
	}
	if n := eval("read the count", `document.getElementById('approvals-count').textContent`); n != "1" {
		t.Errorf("pending count = %q, want 1", n)
	}

	// Approve with a real click; a second click right after must be ignored.
	step("click Approve", chromedp.Click(chromedp.CSS(card+` [data-testid="approve"]`)))
	if locked := eval("click Approve again", fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (!b) return "gone"; b.click(); return String(b.disabled); })()`, card+` [data-testid="approve"]`)); locked != "true" && locked != "gone" {
		t.Errorf("after the first click the Approve button is not locked (disabled = %s)", locked)
	}
	step("see the approval leave the list",
		chromedp.WaitNotPresent(chromedp.CSS(card)),
		chromedp.Poll[chromedp.Void](`document.getElementById('approvals-count').textContent === '0'`),
	)

	// The agent retries with the approval and the VM stops.
	second := browserCallTool(t, ctx, session, "stop_vm", map[string]any{"vmid": 101, "approval_id": refusal.ApprovalID})
	if second.IsError {
		t.Fatalf("stop_vm with the approval failed: %s", browserResultText(second))
	}
	var task struct {
		OK          bool   `json:"ok"`
		Action      string `json:"action"`
		GuestStatus string `json:"guest_status"`
	}
	browserDecode(t, second.StructuredContent, &task)
	if !task.OK || task.Action != "stop" {
		t.Fatalf("stop_vm with the approval = %+v, want ok stop", task)
	}

	// The feed shows the approval decided and the call that ran.
	step("see the run on the feed", chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="tool"]')].some(li => /stop_vm/.test(li.textContent) && /ended/.test(li.textContent) && /\bok\b/.test(li.textContent))`))
	step("see the decision on the feed", chromedp.Poll[chromedp.Void](fmt.Sprintf(`[...document.querySelectorAll('[data-testid="feed-item"][data-type="approval"]')].some(li => li.textContent.includes(%q) && li.textContent.includes('approved'))`, refusal.ApprovalID)))

	// The double click decided once: exactly one "approved" event for this approval.
	if n := browserCountApprovalEvents(t, ctx, base, token, refusal.ApprovalID, "approved"); n != 1 {
		t.Errorf("the approval was announced as approved %d times, want exactly 1", n)
	}

	// A second request stays pending for the screenshots.
	pending := browserCallTool(t, ctx, session, "shutdown_vm", map[string]any{"vmid": 105, "timeout_seconds": 60})
	var pendingRefusal struct {
		ApprovalID string `json:"approval_id"`
	}
	browserDecode(t, pending.StructuredContent, &pendingRefusal)
	step("see the second request", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-approval-id=%q]`, pendingRefusal.ApprovalID))))

	// Filters hide what is unchecked.
	step("filter the feed to alerts only",
		chromedp.Click(chromedp.CSS(`[data-testid="filter-tool"]`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="tool"]')].every(li => li.hidden)`),
		chromedp.Click(chromedp.CSS(`[data-testid="filter-tool"]`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="tool"]')].some(li => !li.hidden)`),
	)

	screenshotsWideAndPhone(t, tab, root, "console")

	// The kill switch is a real toggle the server honours.
	step("engage the kill switch",
		chromedp.Click(chromedp.CSS(`#kill-switch`)),
		chromedp.WaitVisible(chromedp.CSS(`#kill-switch[aria-checked="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#banner`)),
	)
	if on := browserKillSwitch(t, ctx, base, token); !on {
		t.Errorf("the page shows the kill switch on, but the server says off")
	}
	// While it is on, the waiting request cannot be approved (the server refuses it),
	// so its Approve button is off and says why; Deny still works.
	held := fmt.Sprintf(`[data-approval-id=%q]`, pendingRefusal.ApprovalID)
	step("see Approve held by the kill switch",
		chromedp.WaitVisible(chromedp.CSS(held+` [data-testid="approval-held"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { const c = document.querySelector(%q); return c.querySelector('[data-testid="approve"]').disabled && !c.querySelector('[data-testid="deny"]').disabled && c.querySelector('[data-testid="approval-held"]').textContent.includes('kill switch'); })()`, held)),
	)
	step("release the kill switch",
		chromedp.Click(chromedp.CSS(`#kill-switch`)),
		chromedp.WaitVisible(chromedp.CSS(`#kill-switch[aria-checked="false"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#banner`)),
		chromedp.WaitNotVisible(chromedp.CSS(held+` [data-testid="approval-held"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`!document.querySelector(%q).disabled`, held+` [data-testid="approve"]`)),
	)

	// A dropped connection: the server goes away and comes back on the same port and
	// database. The page shows it and reconnects without a reload, replaying what it
	// missed from Last-Event-ID.
	cs.jarvis.stop(t)
	step("see the connection drop", chromedp.Poll[chromedp.Void](`['reconnecting', 'offline'].includes(document.getElementById('conn').dataset.state)`))
	cs.jarvis = browserStartJarvis(t, ctx, base, cs.logs, "serve", "--demo")
	step("see the page reconnect",
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="system"]')].some(li => li.textContent.includes('Jarvis stopping'))`),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="system"]')].filter(li => li.textContent.includes('started')).length >= 2`),
	)
	if got := eval("count the nodes after the reconnect", `String(document.querySelectorAll('[data-testid="node"]').length)`); got != "4" {
		t.Errorf("after the reconnect the page shows %s nodes, want 4", got)
	}

	// Expected failed requests: the 401 that shows the login, and the refused
	// reconnects while the server was down.
	cs.checkPageConsole("401", "ERR_CONNECTION_REFUSED")
}

// browserJarvis is one in-process `jarvis serve --demo`.
type browserJarvis struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// consoleSession is a demo Jarvis on a free loopback port and a Chromium tab
// for its console: what every browser test starts the same way.
type consoleSession struct {
	t        *testing.T
	ctx      context.Context
	base     string // http://127.0.0.1:PORT
	password string // the operator's
	root     string // the repository, for artifacts/
	logs     *lockedBuffer
	// jarvis is the running server; a test may stop and start it again.
	jarvis *browserJarvis
	tab    context.Context
	// pageConsole returns every console message of the page so far.
	pageConsole func() []chromedp.ConsoleMessage
}

// needBrowser skips the test without Chromium, and fails it in CI, which
// must have it (.ci/browser.sh); -short skips it too.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; CI must install it with .ci/browser.sh", chromiumPath)
		}
		t.Skipf("%s is missing; run .ci/browser.sh to install it", chromiumPath)
	}
	if testing.Short() {
		t.Skip("the browser test starts Jarvis and Chromium; skipped with -short")
	}
}

// startConsoleSession skips the test without Chromium (and fails it in CI,
// which must have it), starts `jarvis serve --demo` with the given operator
// password and a fresh database, and opens a tab. Everything stops, and the
// log is shown on failure, when the test ends.
func startConsoleSession(t *testing.T, password string, timeout time.Duration) *consoleSession {
	t.Helper()
	needBrowser(t)
	port := browserFreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("JARVIS_LISTEN", "127.0.0.1")
	t.Setenv("JARVIS_PASSWORD", password)
	t.Setenv("JWT_SECRET", "browser-test-jwt-secret-0123456789abcdef")
	testDatabase(t)
	t.Setenv("JARVIS_APPROVAL_WAIT", "1s")
	t.Setenv("LOG_LEVEL", "warn")

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	s := &consoleSession{t: t, ctx: ctx, base: fmt.Sprintf("http://127.0.0.1:%d", port), password: password,
		root: browserRepoRoot(t), logs: &lockedBuffer{}}
	s.jarvis = browserStartJarvis(t, ctx, s.base, s.logs, "serve", "--demo")
	t.Cleanup(func() {
		s.jarvis.stop(t)
		if t.Failed() {
			t.Logf("jarvis log:\n%s", s.logs.String())
		}
	})
	s.tab, s.pageConsole = startBrowser(t, ctx)
	return s
}

// step runs browser actions, failing the test (with what) if they do not
// finish within 20 s.
func (s *consoleSession) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	sctx, scancel := context.WithTimeout(s.tab, 20*time.Second)
	defer scancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// checkPageConsole fails the test for every script error or CSP violation the
// page logged, and every failed request whose message contains none of
// expected (the 401 before login, say). The 401 before login always reaches
// the console; seeing nothing means the listener is broken and the checks
// would pass vacuously.
func (s *consoleSession) checkPageConsole(expected ...string) {
	t := s.t
	t.Helper()
	console := s.pageConsole()
	defer func() {
		if t.Failed() {
			for _, m := range console {
				t.Logf("page console: %s [%s] %s:%d", m, m.Source, m.URL, m.Line+1)
			}
		}
	}()
	if len(console) == 0 {
		t.Errorf("no console message was captured, not even the 401 before login")
	}
	for _, m := range console {
		switch {
		case m.IsException(), m.Type == chromedp.ConsoleError && m.Source != "network":
			t.Errorf("the page logged %s (%s:%d)", m, m.URL, m.Line+1)
		case m.Type == chromedp.ConsoleError && !slices.ContainsFunc(expected, func(e string) bool { return strings.Contains(m.Text, e) }):
			t.Errorf("the page logged %s (%s)", m, m.URL)
		}
	}
}

// eval evaluates a JavaScript expression whose value is a string.
func (s *consoleSession) eval(what, expr string) string {
	s.t.Helper()
	v, err := chromedp.Run(s.tab, chromedp.Evaluate[string](expr))
	if err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// text is the text of the element sel selects, or "<missing>".
func (s *consoleSession) text(sel string) string {
	return s.eval("read "+sel, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : '<missing>'; })()`, sel))
}

// browserStartJarvis runs jarvis in-process with args (serve, or serve --demo) and
// the test's environment, and waits until /api/health answers 200 (degraded included).
func browserStartJarvis(t *testing.T, ctx context.Context, base string, logs io.Writer, args ...string) *browserJarvis {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	j := &browserJarvis{cancel: cancel, done: make(chan error, 1)}
	go func() { j.done <- run(sctx, args, io.Discard, logs) }()
	browserWaitHealthy(t, ctx, base, j.done)
	return j
}

// stop shuts the server down and waits for it; a second call does nothing.
func (j *browserJarvis) stop(t *testing.T) {
	t.Helper()
	j.once.Do(func() {
		j.cancel()
		select {
		case err := <-j.done:
			if err != nil {
				t.Errorf("jarvis serve ended with: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("jarvis serve did not stop within 15 s of cancellation")
		}
	})
}

// lockedBuffer collects what a server or process writes while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func browserRepoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's folder")
		}
		dir = parent
	}
}

func browserFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func browserWaitHealthy(t *testing.T, ctx context.Context, base string, served chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			served <- err // for stop, which then returns at once
			t.Fatalf("jarvis serve stopped before it was healthy: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/health", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/api/health did not answer 200 within 30 s", base)
}

func browserAPI(t *testing.T, ctx context.Context, method, url, token string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %d: %s", method, url, res.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", method, url, raw, err)
	}
}

func browserOperatorToken(t *testing.T, ctx context.Context, base, password string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	browserAPI(t, ctx, http.MethodPost, base+"/api/auth/login", "", map[string]string{"password": password}, &out)
	if out.Token == "" {
		t.Fatalf("login returned no token")
	}
	return out.Token
}

func browserKillSwitch(t *testing.T, ctx context.Context, base, token string) bool {
	t.Helper()
	var out struct {
		KillSwitch bool `json:"kill_switch"`
	}
	browserAPI(t, ctx, http.MethodGet, base+"/api/safety", token, nil, &out)
	return out.KillSwitch
}

func browserCountApprovalEvents(t *testing.T, ctx context.Context, base, token, id, phase string) int {
	t.Helper()
	var out struct {
		Events []struct {
			Details struct {
				Phase      string `json:"phase"`
				ApprovalID string `json:"approval_id"`
			} `json:"details"`
		} `json:"events"`
	}
	browserAPI(t, ctx, http.MethodGet, base+"/api/memory/events?type=approval&limit=100", token, nil, &out)
	n := 0
	for _, ev := range out.Events {
		if ev.Details.ApprovalID == id && ev.Details.Phase == phase {
			n++
		}
	}
	return n
}

// browserBearer adds the agent's token to every MCP request.
type browserBearer struct{ token string }

func (b browserBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func browserMCPSession(t *testing.T, ctx context.Context, base, token string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "browser-test-agent", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   base + "/mcp",
		HTTPClient: &http.Client{Transport: browserBearer{token: token}},
	}, nil)
	if err != nil {
		t.Fatalf("connecting the MCP client: %v", err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

func browserCallTool(t *testing.T, ctx context.Context, s *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	res, err := s.CallTool(cctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("calling %s: %v", name, err)
	}
	return res
}

func browserDecode(t *testing.T, structured any, out any) {
	t.Helper()
	if structured == nil {
		t.Fatalf("the tool result has no structured content")
	}
	b, err := json.Marshal(structured)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("decoding the structured result %s: %v", b, err)
	}
}

func browserResultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, " ")
}

// browserScreenshot saves a full-page PNG at the given viewport width.
func browserScreenshot(t *testing.T, tab context.Context, width, height int64, path string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("setting a %d px viewport: %v", width, err)
	}
	// Let the layout and the bar transitions settle before capturing.
	time.Sleep(700 * time.Millisecond)
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("taking the %d px screenshot: %v", width, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("the %d px screenshot is not a PNG", width)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("saving %s: %v", path, err)
	}
	t.Logf("screenshot (%d px wide): %s", width, path)
}

// screenshotsWideAndPhone saves the page without a focus ring as
// artifacts/<name>.png at 1280 px and <name>-phone.png at 390 px, fails the
// test when the phone layout scrolls sideways, leaves the viewport at 1280
// px and returns the artifacts folder.
func screenshotsWideAndPhone(t *testing.T, tab context.Context, root, name string) string {
	t.Helper()
	artifacts := filepath.Join(root, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatalf("creating %s: %v", artifacts, err)
	}
	if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`)); err != nil {
		t.Fatalf("dropping the focus ring: %v", err)
	}
	browserScreenshot(t, tab, 1280, 900, filepath.Join(artifacts, name+".png"))
	browserScreenshot(t, tab, 390, 844, filepath.Join(artifacts, name+"-phone.png"))
	widths, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.documentElement.scrollWidth + " " + window.innerWidth`))
	if err != nil {
		t.Fatalf("measuring the phone layout: %v", err)
	}
	var scroll, inner int
	if _, err := fmt.Sscan(widths, &scroll, &inner); err != nil || scroll > inner {
		t.Errorf("at 390 px %s scrolls sideways (scrollWidth and innerWidth: %s)", name, widths)
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("back to 1280 px: %v", err)
	}
	return artifacts
}

// startBrowser starts headless Chromium with a throwaway profile and returns
// its tab and a function listing what the page logged. The profile folder is
// made before the allocator, so its removal runs after the browser has exited.
func startBrowser(t *testing.T, ctx context.Context) (context.Context, func() []chromedp.ConsoleMessage) {
	t.Helper()
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	messages := chromedp.Console(tab)
	var mu sync.Mutex
	var seen []chromedp.ConsoleMessage
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, m)
			mu.Unlock()
		}
	}()
	return tab, func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), seen...)
	}
}
