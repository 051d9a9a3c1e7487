package web

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for wipeAuditLog
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

const testPassword = "correct-horse-battery"

type webHarness struct {
	t      testing.TB
	app    *App
	ts     *httptest.Server
	store  *store.Store
	srv    *server.Server
	tokens *Tokens
	sim    *pvesim.Sim
	// target is the database the store is on (storetest.Target).
	target string
}

func newWebHarness(t testing.TB, tweak ...func(*Options)) *webHarness {
	t.Helper()
	return newWebHarnessOn(t, storetest.Engine(), tweak...)
}

// newWebHarnessOn is newWebHarness with its store on engine (one of
// storetest.Engines), for benchmarks that compare the engines in one run.
func newWebHarnessOn(t testing.TB, engine string, tweak ...func(*Options)) *webHarness {
	t.Helper()
	sim := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!t", TokenSecret: "s", TaskDuration: 50 * time.Millisecond})
	pts := httptest.NewTLSServer(sim)
	t.Cleanup(pts.Close)
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: pts.URL}}, TokenID: "jarvis@pve!t", TokenSecret: "s",
		Fingerprint: pve.FingerprintOf(pts.Certificate())})
	if err != nil {
		t.Fatal(err)
	}
	secret := "web-test-secret-web-test-secret-000"
	target := storetest.TargetOn(t, engine)
	st, err := store.Open(target, store.Options{AuditKey: safety.DeriveKey(secret, "audit-chain")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Options{
		Env: &tools.Env{PVE: client}, Store: st,
		Policy:    safety.Policy{ProtectedVMIDs: []int{103}},
		Limiter:   safety.NewRateLimiter(safety.RateLimits{Yellow: rate.Inf, Red: rate.Inf, YellowBurst: 100, RedBurst: 100}),
		Confirmer: safety.NewConfirmer(safety.DeriveKey(secret, "confirmation-state"), time.Minute),
		Logger:    logger, Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := NewTokens(safety.DeriveKey(secret, "jwt-signing"), st)
	tokens.SetOperatorPassword(testPassword)
	opts := Options{Server: srv, Store: st, Tokens: tokens, Password: testPassword, Version: "test", Logger: logger,
		PVEPing: client.Ping, Heartbeat: 100 * time.Millisecond}
	for _, f := range tweak {
		f(&opts)
	}
	app := New(opts)
	ts := httptest.NewServer(app.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = app.Shutdown(ctx)
		ts.Close()
	})
	return &webHarness{t: t, app: app, ts: ts, store: st, srv: srv, tokens: tokens, sim: sim, target: target}
}

// wipeAuditLog deletes the audit rows and head behind the store's back, as
// someone with access to the database could.
func (h *webHarness) wipeAuditLog() {
	h.t.Helper()
	driver := "sqlite3"
	if storetest.Engine() == storetest.Postgres {
		driver = "pgx"
	}
	db, err := sql.Open(driver, h.target)
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"DELETE FROM audit_log", "DELETE FROM audit_head"} {
		if _, err := db.Exec(q); err != nil {
			h.t.Fatalf("%s: %v", q, err)
		}
	}
}

func (h *webHarness) do(method, path, token string, body any) (*http.Response, map[string]any) {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
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
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func (h *webHarness) login() string {
	h.t.Helper()
	resp, out := h.do("POST", "/api/auth/login", "", map[string]string{"password": testPassword})
	if resp.StatusCode != 200 {
		h.t.Fatalf("login: %d %v", resp.StatusCode, out)
	}
	if out["expiresIn"].(float64) != OperatorTTL.Seconds() {
		h.t.Errorf("expiresIn = %v", out["expiresIn"])
	}
	return out["token"].(string)
}

func TestHealthIsPublicAndReportsDependencies(t *testing.T) {
	h := newWebHarness(t)
	resp, out := h.do("GET", "/api/health", "", nil)
	if resp.StatusCode != 200 || out["status"] != "ok" || out["store"] != "ok" || out["pve_api"] != "ok" || out["version"] != "test" {
		t.Fatalf("health: %d %v", resp.StatusCode, out)
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("security headers missing")
	}
	if out["audit_log"] != "ok" {
		t.Fatalf("health audit_log: %v", out)
	}
	// A wiped audit log refuses every call: health says so, not "ok".
	h.wipeAuditLog()
	resp, out = h.do("GET", "/api/health", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || out["status"] != "down" || out["audit_log"] != "broken" {
		t.Fatalf("health with a wiped audit log: %d %v", resp.StatusCode, out)
	}
}

func TestLogin(t *testing.T) {
	h := newWebHarness(t)
	tok := h.login()
	if c, err := h.tokens.Verify(context.Background(), tok); err != nil || c.Kind != "operator" || c.Subject != "operator" {
		t.Fatalf("operator token: %+v %v", c, err)
	}
	resp, _ := h.do("POST", "/api/auth/login", "", map[string]string{"password": "wrong"})
	if resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	// Throttled per address: a burst of failures ends in 429 with Retry-After.
	var last *http.Response
	for range 8 {
		last, _ = h.do("POST", "/api/auth/login", "", map[string]string{"password": "wrong"})
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after repeated failures: %d Retry-After=%q", last.StatusCode, last.Header.Get("Retry-After"))
	}
	resp, _ = h.do("POST", "/api/auth/login", "", "not an object")
	if resp.StatusCode != 400 && resp.StatusCode != 429 {
		t.Fatalf("bad body: %d", resp.StatusCode)
	}
}

func TestOperatorAPIRefusesAgentsAndStrangers(t *testing.T) {
	h := newWebHarness(t)
	agentTok, _, err := h.tokens.IssueAgent(context.Background(), "bot", safety.Red, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/approvals", "/api/safety", "/api/events", "/api/memory/events", "/api/audit"} {
		if resp, _ := h.do("GET", path, "", nil); resp.StatusCode != 401 {
			t.Errorf("%s without token: %d", path, resp.StatusCode)
		}
		if resp, _ := h.do("GET", path, agentTok, nil); resp.StatusCode != 403 {
			t.Errorf("%s with agent token: %d", path, resp.StatusCode)
		}
		if resp, _ := h.do("GET", path, "garbage.token.here", nil); resp.StatusCode != 401 {
			t.Errorf("%s with garbage: %d", path, resp.StatusCode)
		}
	}
}

func TestMCPRequiresAValidToken(t *testing.T) {
	h := newWebHarness(t)
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, tok := range []string{"", "wrong", "Bearer"} {
		req, _ := http.NewRequest("POST", h.ts.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("token %q: %d, want 401", tok, resp.StatusCode)
		}
	}
	// A revoked agent token stops working at once.
	tok, rec, err := h.tokens.IssueAgent(context.Background(), "bot", safety.Green, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := h.mcpSession(tok)
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := h.store.RevokeToken(context.Background(), rec.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mcpSession2(tok); err == nil {
		t.Fatal("revoked token still connects")
	}
}

type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func (h *webHarness) mcpSession2(token string) (*mcp.ClientSession, error) {
	tr := &mcp.StreamableClientTransport{Endpoint: h.ts.URL + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{token}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "web-test", Version: "1"}, nil).Connect(context.Background(), tr, nil)
	if err == nil {
		h.t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func (h *webHarness) mcpSession(token string) *mcp.ClientSession {
	h.t.Helper()
	cs, err := h.mcpSession2(token)
	if err != nil {
		h.t.Fatal(err)
	}
	return cs
}

func TestMCPOverHTTPWithTokensAndApprovals(t *testing.T) {
	h := newWebHarness(t)
	ctx := context.Background()
	green, _, _ := h.tokens.IssueAgent(ctx, "reader", safety.Green, time.Hour, nil)
	red, _, _ := h.tokens.IssueAgent(ctx, "fixer", safety.Red, time.Hour, nil)

	list, err := h.mcpSession(green).ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if !tl.Annotations.ReadOnlyHint {
			t.Errorf("green token lists %s", tl.Name)
		}
	}

	cs := h.mcpSession(red)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
	if err != nil || res.IsError {
		t.Fatalf("get_cluster_status: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
	if err != nil {
		t.Fatal(err)
	}
	var ref server.Refusal
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &ref)
	if ref.Decision != safety.NeedsApproval || ref.ApprovalID == "" {
		t.Fatalf("stop_vm: %s", b)
	}

	op := h.login()
	resp, out := h.do("GET", "/api/approvals?status=pending", op, nil)
	if resp.StatusCode != 200 || len(out["approvals"].([]any)) != 1 {
		t.Fatalf("pending approvals: %d %v", resp.StatusCode, out)
	}
	a := out["approvals"].([]any)[0].(map[string]any)
	if !strings.HasPrefix(a["principal"].(string), "agent:fixer/tok_") || !strings.Contains(a["plan"].(string), "web01") {
		t.Errorf("approval row: %v", a)
	}
	if resp, _ := h.do("POST", "/api/approvals/"+ref.ApprovalID+"/approve", op, nil); resp.StatusCode != 200 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	if resp, _ := h.do("POST", "/api/approvals/"+ref.ApprovalID+"/approve", op, nil); resp.StatusCode != 409 {
		t.Fatalf("second approve click: %d, want 409", resp.StatusCode)
	}
	if resp, _ := h.do("POST", "/api/approvals/apr_00000000deadbeef/deny", op, nil); resp.StatusCode != 404 {
		t.Fatalf("unknown approval: %d", resp.StatusCode)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101, "approval_id": ref.ApprovalID}})
	if err != nil || res.IsError {
		t.Fatalf("approved retry: %v %+v", err, res)
	}
	if g, _ := h.sim.Guest(101); g.Status != "stopped" {
		t.Fatalf("VM 101 is %s", g.Status)
	}
}

func TestSafetySwitchesOverHTTP(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	resp, out := h.do("PUT", "/api/safety", op, map[string]bool{"kill_switch": true})
	if resp.StatusCode != 200 || out["kill_switch"] != true {
		t.Fatalf("kill switch on: %d %v", resp.StatusCode, out)
	}
	res := h.srv.Dispatch(context.Background(), server.Call{Principal: safety.Principal{ID: "agent:x", Kind: "agent", MaxTier: safety.Red},
		Tool: "create_snapshot", Args: json.RawMessage(`{"vmid":101,"name":"s1"}`)})
	if !res.IsError || !strings.Contains(fmt.Sprint(res.StructuredContent), "kill_switch") {
		t.Fatalf("call with kill switch on: %+v", res.StructuredContent)
	}
	if resp, _ := h.do("PUT", "/api/safety", op, map[string]any{"kill_switch": "yes"}); resp.StatusCode != 400 {
		t.Fatalf("bad body: %d", resp.StatusCode)
	}
	if resp, _ := h.do("PUT", "/api/safety", op, map[string]any{"surprise": true}); resp.StatusCode != 400 {
		t.Fatalf("unknown field: %d", resp.StatusCode)
	}
}

func TestMemoryEventsAPI(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	resp, ev := h.do("POST", "/api/memory/events", op, map[string]any{"type": "alert", "severity": "warning", "node": "pve", "summary": "disk noise", "details": map[string]any{"a": 1}})
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %v", resp.StatusCode, ev)
	}
	for _, bad := range []map[string]any{
		{"type": "nope", "summary": "x"},
		{"type": "alert", "summary": ""},
		{"type": "alert", "summary": "x", "severity": "apocalyptic"},
		{"type": "alert", "summary": "x", "node": "bad node"},
		{"type": "alert", "summary": "x", "extra": 1},
		// Jarvis's own sources: a posted alert must not pass for the watcher's
		// and open a standing approval's trigger.
		{"type": "alert", "summary": "x", "source": "poller", "details": map[string]any{"state": "raised", "kind": "guest_stopped_unexpectedly", "subject": "guest/101"}},
		{"type": "alert", "summary": "x", "source": " Poller "},
		{"type": "rule", "summary": "x", "source": "rules"},
	} {
		if resp, out := h.do("POST", "/api/memory/events", op, bad); resp.StatusCode != 400 || out["error"] == nil {
			t.Errorf("%v: %d %v", bad, resp.StatusCode, out)
		}
	}
	big := map[string]any{"type": "alert", "summary": strings.Repeat("x", 70_000)}
	if resp, _ := h.do("POST", "/api/memory/events", op, big); resp.StatusCode != 413 {
		t.Errorf("oversized body: %d, want 413", resp.StatusCode)
	}
	_, out := h.do("GET", "/api/memory/events/unresolved?type=alert", op, nil)
	if n := len(out["events"].([]any)); n != 1 {
		t.Fatalf("unresolved: %d", n)
	}
	id := int(ev["id"].(float64))
	if resp, _ := h.do("POST", fmt.Sprintf("/api/memory/events/%d/resolve", id), op, nil); resp.StatusCode != 200 {
		t.Fatalf("resolve: %d", resp.StatusCode)
	}
	_, out = h.do("GET", "/api/memory/events/unresolved?type=alert", op, nil)
	if n := len(out["events"].([]any)); n != 0 {
		t.Fatalf("unresolved after resolve: %d", n)
	}
	if resp, _ := h.do("GET", "/api/memory/events?limit=0", op, nil); resp.StatusCode != 400 {
		t.Error("limit=0 accepted")
	}
	if resp, _ := h.do("PUT", "/api/memory/preferences/theme", op, map[string]string{"value": "dark"}); resp.StatusCode != 200 {
		t.Fatal("preference put")
	}
	_, out = h.do("GET", "/api/memory/preferences", op, nil)
	if out["preferences"].(map[string]any)["theme"] != "dark" {
		t.Fatalf("preferences: %v", out)
	}
	if resp, _ := h.do("PUT", "/api/memory/preferences/safety.kill_switch", op, map[string]string{"value": "off"}); resp.StatusCode != 400 {
		t.Fatal("safety switch writable through preferences")
	}
}

// sseClient reads an SSE stream into events.
type sseEvent struct {
	ID, Type string
	Data     map[string]any
}

func (h *webHarness) openFeed(ctx context.Context, token, lastID, query string) (<-chan sseEvent, <-chan string) {
	h.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/api/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		h.t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan sseEvent, 1000)
	comments := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.ID != "" {
					events <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, ":"):
				select {
				case comments <- line:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				cur.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &cur.Data)
			}
		}
	}()
	return events, comments
}

func publish(t *testing.T, st *store.Store, summary string) uint64 {
	t.Helper()
	ev := &store.Event{Type: "system", Summary: summary}
	if err := st.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return sseEvent{}
}

func TestFeedReplaysExactlyWhatWasMissed(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	ctx, cancel := context.WithCancel(context.Background())
	events, comments := h.openFeed(ctx, op, "", "")
	select {
	case <-comments:
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat comment")
	}
	id1 := publish(t, h.store, "one")
	if ev := next(t, events); ev.ID != fmt.Sprint(id1) || ev.Type != "system" || ev.Data["summary"] != "one" {
		t.Fatalf("live event: %+v", ev)
	}
	cancel() // the connection drops; three events happen meanwhile
	var missed []uint64
	for _, s := range []string{"two", "three", "four"} {
		missed = append(missed, publish(t, h.store, s))
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	events2, _ := h.openFeed(ctx2, op, fmt.Sprint(id1), "")
	for _, want := range missed {
		if ev := next(t, events2); ev.ID != fmt.Sprint(want) {
			t.Fatalf("replay got %s, want %d", ev.ID, want)
		}
	}
	id5 := publish(t, h.store, "five")
	if ev := next(t, events2); ev.ID != fmt.Sprint(id5) {
		t.Fatalf("after replay got %s, want %d (no gap, no duplicate)", ev.ID, id5)
	}
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	filtered, _ := h.openFeed(ctx3, op, "", "?kind=alert&node=pve")
	publish(t, h.store, "not an alert")
	_ = h.store.Publish(context.Background(), &store.Event{Type: "alert", Node: "home", Summary: "other node"})
	want := &store.Event{Type: "alert", Node: "pve", Summary: "this one"}
	_ = h.store.Publish(context.Background(), want)
	if ev := next(t, filtered); ev.ID != fmt.Sprint(want.ID) {
		t.Fatalf("filter passed %+v", ev)
	}
}

func TestFeedReachesManySubscribersDespiteAStalledOne(t *testing.T) {
	h := newWebHarness(t)
	op := h.login()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One stalled subscriber: it connects and never reads.
	stalledReq, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/api/events", nil)
	stalledReq.Header.Set("Authorization", "Bearer "+op)
	stalled, err := http.DefaultClient.Do(stalledReq)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Body.Close()

	const n = 200
	streams := make([]<-chan sseEvent, n)
	for i := range n {
		streams[i], _ = h.openFeed(ctx, op, "", "")
	}
	// Give every handler time to subscribe before publishing.
	deadline := time.Now().Add(10 * time.Second)
	for h.subscribers() < n+1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// A tool call publishes events; it must not wait for the stalled reader.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			publish(t, h.store, "burst")
		}
		h.srv.Dispatch(context.Background(), server.Call{Principal: safety.Principal{ID: "agent:x", Kind: "agent", MaxTier: safety.Red}, Tool: "get_cluster_status"})
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a blocked publish never ends; a slow machine does
		t.Fatal("publishing blocked on a stalled subscriber")
	}
	var wg sync.WaitGroup
	failures := make(chan string, n)
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timeout := time.After(20 * time.Second)
			for {
				select {
				case ev, ok := <-s:
					if !ok {
						failures <- fmt.Sprintf("subscriber %d: stream ended", i)
						return
					}
					if ev.Type == "tool" {
						return
					}
				case <-timeout:
					failures <- fmt.Sprintf("subscriber %d: no tool event", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
}

func (h *webHarness) subscribers() int { return h.store.SubscriberCount() }

func TestCrossSiteRequestsAreRefused(t *testing.T) {
	h := newWebHarness(t)
	for _, path := range []string{"/api/auth/login", "/mcp"} {
		req, _ := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(`{"password":"`+testPassword+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "http://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, resp.StatusCode)
		}
	}
}

// A client that stops reading is cut off by the per-write deadline, its
// subscription goes away, and publishing never waits for it.
func TestStalledFeedClientIsDropped(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.FeedWriteTimeout = 300 * time.Millisecond })
	op := h.login()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.ts.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+op)
	stalled, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Body.Close()
	for h.store.SubscriberCount() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	big := strings.Repeat("x", 16<<10)
	start := time.Now()
	for i := 0; h.store.SubscriberCount() > 0; i++ {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("stalled subscriber still connected after %d events", i)
		}
		if err := h.store.Publish(context.Background(), &store.Event{Type: "system", Summary: big}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOperatorSessionsEndOnLogoutAndPasswordChange(t *testing.T) {
	h := newWebHarness(t)
	tok := h.login()
	if resp, _ := h.do("GET", "/api/safety", tok, nil); resp.StatusCode != 200 {
		t.Fatalf("fresh login: %d", resp.StatusCode)
	}
	if resp, _ := h.do("POST", "/api/auth/logout", tok, nil); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := h.do("GET", "/api/safety", tok, nil); resp.StatusCode != 401 {
		t.Fatalf("token after logout: %d, want 401", resp.StatusCode)
	}
	tok = h.login()
	// A new password (restart with another JARVIS_PASSWORD) ends earlier logins.
	h.tokens.SetOperatorPassword("a-completely-new-password")
	if _, err := h.tokens.Verify(context.Background(), tok); err == nil {
		t.Fatal("login survived a password change")
	}
	// An agent token cannot pass for an operator by claiming the kind.
	agentTok, _, _ := h.tokens.IssueAgent(context.Background(), "sneaky", safety.Red, time.Hour, nil)
	if c, err := h.tokens.Verify(context.Background(), agentTok); err != nil || c.Kind != "agent" {
		t.Fatalf("agent token: %+v %v", c, err)
	}
}

func TestLoginThrottleGroupsIPv6NetworksAndHasAGlobalCap(t *testing.T) {
	h := newWebHarness(t)
	for i := range loginPerClientBurst {
		if ok, _, _ := h.app.loginAllowed(fmt.Sprintf("2001:db8::%x", i+1)); !ok {
			t.Fatalf("attempt %d refused early", i)
		}
	}
	if ok, d, _ := h.app.loginAllowed("2001:db8::ffff"); ok || d <= 0 {
		t.Fatal("another address in the same /64 got a fresh bucket")
	}
	allowed := 0
	for i := range 100 {
		if ok, _, _ := h.app.loginAllowed(fmt.Sprintf("192.0.2.%d", i)); ok {
			allowed++ // each guess was wrong: no refund
		}
	}
	if allowed > loginGlobalBurst {
		t.Fatalf("%d attempts from rotating addresses allowed, cap is %d", allowed, loginGlobalBurst)
	}
}

func TestMCPRefusesOversizedRequests(t *testing.T) {
	h := newWebHarness(t)
	tok := h.login()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"` + strings.Repeat("x", 2<<20) + `","version":"1"}}}`
	req, _ := http.NewRequest("POST", h.ts.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB request: %d, want 413", resp.StatusCode)
	}
}

func TestForwardedForIsTrustedOnlyFromConfiguredProxies(t *testing.T) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	h := newWebHarness(t, func(o *Options) { o.TrustedProxies = []*net.IPNet{loopback} })
	attempt := func(xff string) int {
		req, _ := http.NewRequest("POST", h.ts.URL+"/api/auth/login", strings.NewReader(`{"password":"wrong"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range loginPerClientBurst {
		attempt("198.51.100.7")
	}
	if code := attempt("198.51.100.7"); code != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt from the same forwarded client: %d", code)
	}
	// Behind the proxy another client still has its own attempts.
	if code := attempt("198.51.100.8"); code != http.StatusUnauthorized {
		t.Fatalf("another forwarded client: %d, want 401", code)
	}
	// Without trusted proxies the header is ignored: all share the peer address.
	h2 := newWebHarness(t)
	for i := range loginPerClientBurst + 1 {
		req, _ := http.NewRequest("POST", h2.ts.URL+"/api/auth/login", strings.NewReader(`{"password":"wrong"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		resp, _ := http.DefaultClient.Do(req)
		resp.Body.Close()
		if i == loginPerClientBurst && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("spoofed X-Forwarded-For bought attempts: %d", resp.StatusCode)
		}
	}
}

func TestLogoutEndsOpenFeedStreams(t *testing.T) {
	h := newWebHarness(t)
	tok := h.login()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := h.openFeed(ctx, tok, "", "")
	if resp, _ := h.do("POST", "/api/auth/logout", tok, nil); resp.StatusCode != 204 {
		t.Fatal("logout failed")
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("the feed stream outlived the logout")
		}
	}
}

func TestSessionEpochIsNotAPreference(t *testing.T) {
	h := newWebHarness(t)
	tok := h.login()
	if resp, _ := h.do("PUT", "/api/memory/preferences/auth.operator_epoch", tok, map[string]string{"value": ""}); resp.StatusCode != 400 {
		t.Fatalf("auth.* writable: %d", resp.StatusCode)
	}
	_, _ = h.do("POST", "/api/auth/logout", tok, nil)
	tok = h.login()
	_, out := h.do("GET", "/api/memory/preferences", tok, nil)
	for k := range out["preferences"].(map[string]any) {
		if strings.HasPrefix(k, "auth.") {
			t.Fatalf("preferences list shows %s", k)
		}
	}
}

// Handler is the app as an http.Handler (tests use it with httptest).
func (a *App) Handler() http.Handler { return a.e }
