package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/notify"
)

// received is what the loopback receivers got: the webhook's JSON bodies
// (signature checked) and ntfy's titles with their headers.
type received struct {
	mu   sync.Mutex
	hook []map[string]any
	ntfy []http.Header
	text []string // every title and message, both channels
	bad  []string
}

func (r *received) has(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.text {
		if strings.Contains(t, substr) {
			return true
		}
	}
	return false
}

func (r *received) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.text {
		if strings.Contains(t, substr) {
			n++
		}
	}
	return n
}

// TestOperatorAwayScenario is the scenario with real processes: jarvis
// serve on the demo, loopback webhook and ntfy receivers, an agent token with
// a rule "start_vm on VMID 101 while guest_stopped_unexpectedly is open, 3 per
// hour". The simulator crashes VM 101, the watcher raises the alert and it is
// notified, the agent's start_vm runs without a person, three times; the
// fourth needs a person and a notification says the rule is exhausted. A
// call for VMID 102 needs a person; the kill switch and revoking refuse at once.
func TestOperatorAwayScenario(t *testing.T) {
	const secret = "webhook-secret-0123456789"
	got := &received{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := notify.VerifySignature(secret, req.Header.Get("X-Jarvis-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			got.mu.Lock()
			got.bad = append(got.bad, err.Error())
			got.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		got.mu.Lock()
		got.hook = append(got.hook, m)
		got.text = append(got.text, fmt.Sprint(m["title"], " | ", m["message"]))
		got.mu.Unlock()
	}))
	defer hook.Close()
	ntfy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		got.mu.Lock()
		got.ntfy = append(got.ntfy, req.Header.Clone())
		got.text = append(got.text, req.Header.Get("Title")+" | "+string(body))
		got.mu.Unlock()
	}))
	defer ntfy.Close()

	port := freePort(t)
	env := demoEnv(t, fmt.Sprintf("PORT=%d", port), "XDG_STATE_HOME="+t.TempDir(),
		"JARVIS_WATCH_INTERVAL=1s", "JARVIS_APPROVAL_WAIT=0s",
		"JARVIS_NOTIFY_WEBHOOK_URL="+hook.URL+"/jarvis", "JARVIS_NOTIFY_WEBHOOK_SECRET="+secret,
		"JARVIS_NOTIFY_NTFY_URL="+ntfy.URL+"/homelab", "JARVIS_NOTIFY_RATE_PER_MIN=600",
		"JARVIS_RATE_RED_PER_MIN=600")
	cmd := exec.Command(jarvisBinary(t), "serve", "--demo")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("jarvis serve stderr:\n%s", stderr.String())
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, 30*time.Second, "jarvis serve healthy", func() bool {
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Post(base+"/api/auth/login", "application/json", strings.NewReader(`{"password":"e2e-operator-password"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", err, resp)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	operator := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+login.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	crash := func(vmid int) {
		t.Helper()
		if code, body := operator(http.MethodPost, fmt.Sprintf("/api/demo/guests/%d/crash", vmid)); code != http.StatusOK {
			t.Fatalf("crash %d: %d %s", vmid, code, body)
		}
	}

	// The agent's token and its rule, made on the host as an operator would.
	out, err := runJarvis(t, env, "token", "create", "--name", "nightwatch", "--max-tier", "red")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	agentToken := strings.TrimSpace(out)
	out, err = runJarvis(t, env, "rule", "create", "--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101",
		"--trigger", "guest_stopped_unexpectedly", "--per-hour", "3", "--max-failures", "3", "--expires", "1d")
	if err != nil {
		t.Fatalf("rule create: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{agentToken}}}
	agent, err := mcp.NewClient(&mcp.Implementation{Name: "nightwatch", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	start := func(vmid int) *mcp.CallToolResult {
		t.Helper()
		res, err := agent.CallTool(ctx, &mcp.CallToolParams{Name: "start_vm", Arguments: map[string]any{"vmid": vmid}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// openCrash waits until the watcher has an open crash alert for vmid.
	openCrash := func(vmid int) {
		t.Helper()
		subject := fmt.Sprintf("guest/%d", vmid)
		waitUntil(t, 30*time.Second, "a guest_stopped_unexpectedly alert for "+subject, func() bool {
			res, err := agent.CallTool(ctx, &mcp.CallToolParams{Name: "list_alerts", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				return false
			}
			b, _ := json.Marshal(res.StructuredContent)
			return strings.Contains(string(b), `"subject":"`+subject+`"`) && strings.Contains(string(b), "guest_stopped_unexpectedly")
		})
	}
	// running waits until the watcher saw vmid running again (its alert resolved).
	running := func(vmid int) {
		t.Helper()
		subject := fmt.Sprintf("guest/%d", vmid)
		waitUntil(t, 30*time.Second, "the crash alert for "+subject+" to resolve", func() bool {
			res, err := agent.CallTool(ctx, &mcp.CallToolParams{Name: "list_alerts", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				return false
			}
			b, _ := json.Marshal(res.StructuredContent)
			return !strings.Contains(string(b), `"subject":"`+subject+`"`)
		})
	}

	for i := 1; i <= 3; i++ {
		crashed := time.Now()
		crash(101)
		openCrash(101)
		if i == 1 {
			waitUntil(t, 30*time.Second, "the crash notified on both channels", func() bool {
				return got.count("stopped unexpectedly") >= 2
			})
			t.Logf("crash to both notifications: %s (JARVIS_WATCH_INTERVAL=1s)", time.Since(crashed).Round(time.Millisecond))
		}
		called := time.Now()
		res := start(101)
		if res.IsError {
			t.Fatalf("start %d of VM 101 under the rule: %+v", i, res.Content)
		}
		t.Logf("start %d under the rule: %s, %s after the crash", i, time.Since(called).Round(time.Millisecond), time.Since(crashed).Round(time.Millisecond))
		running(101)
	}
	crash(101)
	openCrash(101)
	r := refusal(t, start(101))
	if r["decision"] != "needs_approval" || !strings.Contains(fmt.Sprint(r["reason"]), "spent") {
		t.Fatalf("fourth start within the hour: %v", r)
	}
	waitUntil(t, 30*time.Second, "a notification that the rule is exhausted", func() bool { return got.has("exhausted") })
	waitUntil(t, 30*time.Second, "the approval request notified with a link to it", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		for _, h := range got.ntfy {
			if strings.Contains(h.Get("Click"), "#approval/apr_") && h.Get("Priority") != "" {
				return true
			}
		}
		return false
	})

	// VMID 102 under the same rule needs a person.
	crash(102)
	openCrash(102)
	if r := refusal(t, start(102)); r["decision"] != "needs_approval" {
		t.Fatalf("VM 102: %v", r)
	}

	// A second rule for VM 101: the kill switch refuses at once, and so
	// does revoking it.
	out, err = runJarvis(t, env, "rule", "create", "--for", "nightwatch", "--tool", "start_vm", "--arg", "vmid=101",
		"--per-hour", "10", "--expires", "1d")
	if err != nil {
		t.Fatalf("second rule: %v\n%s", err, out)
	}
	ruleID := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "r_") {
			ruleID = strings.TrimRight(strings.Split(f, "/")[0], ".,:")
			break
		}
	}
	if ruleID == "" {
		t.Fatalf("rule create did not print the rule id:\n%s", out)
	}
	if out, err := runJarvis(t, env, "safety", "kill-switch", "on"); err != nil {
		t.Fatalf("kill switch on: %v\n%s", err, out)
	}
	if r := refusal(t, start(101)); r["decision"] != "kill_switch" {
		t.Fatalf("kill switch on: %v", r)
	}
	if out, err := runJarvis(t, env, "safety", "kill-switch", "off"); err != nil {
		t.Fatalf("kill switch off: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "rule", "revoke", ruleID); err != nil {
		t.Fatalf("rule revoke: %v\n%s", err, out)
	}
	if r := refusal(t, start(101)); r["decision"] != "needs_approval" {
		t.Fatalf("after revoking: %v", r)
	}

	// Every run under the rule is in the audit log, naming it, and the log verifies.
	code, body := operator(http.MethodGet, "/api/audit/search?tool=start_vm&limit=100")
	if code != http.StatusOK {
		t.Fatalf("audit search: %d %s", code, body)
	}
	if n := strings.Count(body, `"approval_id":"rule:r_`); n < 3 {
		t.Fatalf("audit rows naming the rule: %d, want at least 3:\n%s", n, body)
	}
	if out, err := runJarvis(t, env, "audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.bad) > 0 {
		t.Fatalf("webhook deliveries with a bad signature: %v", got.bad)
	}
	for _, text := range got.text {
		if strings.Contains(text, agentToken) || strings.Contains(text, secret) {
			t.Fatalf("a notification carries a secret: %s", text)
		}
	}
	t.Logf("notifications: %d webhook, %d ntfy", len(got.hook), len(got.ntfy))
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}
