package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// sessionClient opens MCP sessions over loopback HTTP through a connection
// pool of its own, so a test can close every connection it made and count
// goroutines exactly.
type sessionClient struct {
	h  *webHarness
	tr *http.Transport
}

func newSessionClient(h *webHarness) *sessionClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	h.t.Cleanup(tr.CloseIdleConnections)
	return &sessionClient{h: h, tr: tr}
}

// clientSession is one MCP session; abandon ends it the way the TypeScript
// SDK's close() does: its streams end, no DELETE is sent.
type clientSession struct {
	*mcp.ClientSession
	noDelete *atomic.Bool
}

func (s clientSession) abandon() {
	s.noDelete.Store(true)
	_ = s.Close()
}

type sessionTransport struct {
	base     http.RoundTripper
	token    string
	noDelete *atomic.Bool
}

func (t sessionTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodDelete && t.noDelete.Load() {
		return nil, errors.New("the client went away without DELETE")
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// open starts a session; standaloneSSE holds the GET stream open as the Go and
// TypeScript SDKs do by default.
func (c *sessionClient) open(token string, standaloneSSE bool) (clientSession, error) {
	noDelete := &atomic.Bool{}
	tr := &mcp.StreamableClientTransport{Endpoint: c.h.ts.URL + "/mcp", DisableStandaloneSSE: !standaloneSSE,
		HTTPClient: &http.Client{Transport: sessionTransport{base: c.tr, token: token, noDelete: noDelete}}}
	// Sessions are what revisions up to 2025-11-25 have; go-sdk clients
	// default to 2026-07-28, which is served without (mcp_router_test.go).
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "sessions-test", Version: "1"}, nil).Connect(context.Background(), tr,
		&mcp.ClientSessionOptions{ProtocolVersion: sessionsVersion})
	if err != nil {
		return clientSession{}, err
	}
	return clientSession{ClientSession: cs, noDelete: noDelete}, nil
}

func (c *sessionClient) mustOpen(token string, standaloneSSE bool) clientSession {
	c.h.t.Helper()
	s, err := c.open(token, standaloneSSE)
	if err != nil {
		c.h.t.Fatal(err)
	}
	c.h.t.Cleanup(func() { _ = s.Close() })
	return s
}

func (h *webHarness) agentToken(name string) string {
	h.t.Helper()
	tok, _, err := h.tokens.IssueAgent(context.Background(), name, safety.Red, time.Hour, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// waitUntil polls cond until it holds or a generous deadline passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sdkSessions counts the SDK's live HTTP sessions, to check that the tracker
// knows every one.
func (h *webHarness) sdkSessions() int {
	n := 0
	for range h.app.sessions.live() {
		n++
	}
	return n
}

// sessionActive reports whether the tracker knows the session and how many of
// its requests are being served.
func (h *webHarness) sessionActive(id string) (known bool, active int) {
	t := h.app.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[id]
	if e == nil {
		return false, 0
	}
	return true, e.active
}

// sessionsVersion is the newest protocol revision with sessions.
const sessionsVersion = "2025-11-25"

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// mcpRequest sends one raw request to /mcp and reads the whole answer.
func (h *webHarness) mcpRequest(method, token, sessionID, body string) (*http.Response, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.ts.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if method == http.MethodGet {
		req.Header.Set("Accept", "text/event-stream")
	}
	if sessionID != "" {
		req.Header.Set(sessionIDHeader, sessionID)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Sessions ended by DELETE and sessions a client forgot (TypeScript SDK close:
// streams end, no DELETE) both end, and leave no goroutine behind.
func TestEndedAndForgottenSessionsLeaveNoGoroutines(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.SessionIdle = 200 * time.Millisecond; o.MaxSessionsPerPrincipal = 64 })
	tok := h.agentToken("fixer")
	c := newSessionClient(h)
	ctx := context.Background()
	call := func(s clientSession) {
		t.Helper()
		if res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"}); err != nil || res.IsError {
			t.Fatalf("get_cluster_status: %v %+v", err, res)
		}
	}
	// The first call starts what lives as long as the app (pooled connections
	// to the cluster, the store's background work): not a session's leftovers.
	warm, err := c.open(tok, true)
	if err != nil {
		t.Fatal(err)
	}
	call(warm)
	_ = warm.Close()
	waitUntil(t, "the warm-up session to end", func() bool { return h.app.OpenSessions() == 0 })
	c.tr.CloseIdleConnections()
	opt := goleak.IgnoreCurrent()

	const n = 50
	sessions := make([]clientSession, n)
	for i := range sessions {
		if sessions[i], err = c.open(tok, true); err != nil {
			t.Fatal(err)
		}
		call(sessions[i])
	}
	if got, sdk := h.app.OpenSessions(), h.sdkSessions(); got != n || sdk != n {
		t.Fatalf("OpenSessions = %d, the SDK has %d, want %d", got, sdk, n)
	}
	// Half say goodbye: the count follows at once.
	for i := 0; i < n; i += 2 {
		if err := sessions[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.app.OpenSessions(); got != n/2 {
		t.Fatalf("after %d DELETEs OpenSessions = %d, want %d (the others hold their GET stream: in use)", n/2, got, n/2)
	}
	// Half are forgotten: the idle timeout ends them.
	for i := 1; i < n; i += 2 {
		sessions[i].abandon()
	}
	waitUntil(t, "forgotten sessions to end", func() bool { return h.app.OpenSessions() == 0 })
	c.tr.CloseIdleConnections()
	goleak.VerifyNone(t, opt)
}

func TestSessionCapPerCaller(t *testing.T) {
	for _, tc := range []struct {
		name string
		idle time.Duration
		end  func(clientSession)
	}{
		{"ended by DELETE", time.Hour, func(s clientSession) { _ = s.Close() }},
		{"ended by the idle timeout", 200 * time.Millisecond, clientSession.abandon},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newWebHarness(t, func(o *Options) { o.SessionIdle = tc.idle; o.MaxSessionsPerPrincipal = 3 })
			c := newSessionClient(h)
			fixer, other := h.agentToken("fixer"), h.agentToken("other")
			var mine []clientSession
			for range 3 {
				mine = append(mine, c.mustOpen(fixer, true))
			}
			refused := func() {
				t.Helper()
				resp, body := h.mcpRequest(http.MethodPost, fixer, "", initializeBody)
				var rpc struct {
					ID    int
					Error struct{ Message string }
				}
				_ = json.Unmarshal([]byte(body), &rpc)
				if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || rpc.ID != 1 {
					t.Fatalf("4th session: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
				}
				for _, want := range []string{"agent:fixer/tok_", "already has 3 open MCP sessions", "JARVIS_MCP_MAX_SESSIONS", "every one is in use", "DELETE /mcp", "Mcp-Session-Id"} {
					if !strings.Contains(rpc.Error.Message, want) {
						t.Errorf("refusal %q does not say %q", rpc.Error.Message, want)
					}
				}
				if _, err := c.open(fixer, true); err == nil {
					t.Fatal("the Go SDK connected a 4th session")
				}
			}
			refused()
			// The cap is per caller: another agent is not held to this one's sessions.
			c.mustOpen(other, true)

			tc.end(mine[0])
			if tc.idle < time.Hour {
				waitUntil(t, "the forgotten session to end", func() bool { return h.app.OpenSessions() == 3 })
			}
			// No waiting after a DELETE: the slot is free at once.
			c.mustOpen(fixer, true)
			refused()
			if got := h.app.OpenSessions(); got != 4 {
				t.Fatalf("OpenSessions = %d, want 4 (3 fixer, 1 other)", got)
			}
		})
	}
}

// A caller at the cap whose sessions sit unused (a client that left without a
// DELETE, as the TypeScript SDK's close() does) is not locked out: the session
// idle the longest makes room, and the count never passes the cap.
func TestSessionCapMakesRoomFromIdleSessions(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.SessionIdle = time.Hour; o.MaxSessionsPerPrincipal = 3 })
	c := newSessionClient(h)
	tok := h.agentToken("forgetful")
	ctx := context.Background()
	var old []clientSession
	for range 3 {
		s := c.mustOpen(tok, false) // no GET stream: idle between calls
		old = append(old, s)
	}
	// One call each, in order, so they went idle in that order: a client's
	// initialized notification may still be in flight when the next opens.
	for i, s := range old {
		if _, err := s.ListTools(ctx, nil); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	busy := c.mustOpen(tok, true) // evicts old[0], the longest idle
	fresh := c.mustOpen(tok, false)
	if got := h.app.OpenSessions(); got != 3 {
		t.Fatalf("OpenSessions = %d, want 3", got)
	}
	if _, err := old[0].ListTools(ctx, nil); err == nil {
		t.Error("the longest idle session still works after making room")
	}
	if _, err := old[1].ListTools(ctx, nil); err == nil {
		t.Error("the second longest idle session still works after making room")
	}
	for i, s := range []clientSession{old[2], busy, fresh} {
		if _, err := s.ListTools(ctx, nil); err != nil {
			t.Errorf("session %d, not the idlest, was ended: %v", i, err)
		}
	}
}

// Initializes racing each other cannot pass the cap together: some make room
// from idle sessions, none leaves more than the cap open.
func TestSessionCapHoldsUnderConcurrentInitializes(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.MaxSessionsPerPrincipal = 3 })
	tok := h.agentToken("racer")
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for range cap(codes) {
		wg.Go(func() {
			resp, _ := h.mcpRequest(http.MethodPost, tok, "", initializeBody)
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusOK] < 3 || count[http.StatusOK]+count[http.StatusTooManyRequests] != 20 {
		t.Fatalf("status codes %v: want at least 3×200, the rest 200 (room made) or 429", count)
	}
	if got := h.app.OpenSessions(); got != 3 {
		t.Fatalf("OpenSessions = %d, want 3", got)
	}
	live := h.liveSDKSessions()
	if live != 3 {
		t.Fatalf("%d sessions live in the SDK, want 3", live)
	}
}

// A body the SDK reads as an initialize but a plain JSON parser does not (text
// after the JSON, a second "Method" key) still opens a counted session: the
// cap holds and no session escapes the idle timer.
func TestSessionsOpenedByOddBodiesAreCounted(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.MaxSessionsPerPrincipal = 2 })
	tok := h.agentToken("odd")
	opened := 0
	for _, body := range []string{initializeBody + " x", initializeBody + " x", `{"Method":"x",` + initializeBody[1:], initializeBody + " x", initializeBody + " x"} {
		if resp, _ := h.mcpRequest(http.MethodPost, tok, "", body); resp.Header.Get(sessionIDHeader) != "" {
			opened++
		}
	}
	if opened < 3 {
		t.Fatalf("the SDK opened %d sessions for odd bodies, so this test no longer reaches past the cap: give it a body the SDK accepts and a plain parser does not", opened)
	}
	if got := h.app.OpenSessions(); got != 2 {
		t.Fatalf("OpenSessions = %d after %d sessions were opened with odd bodies, want the cap, 2", got, opened)
	}
	live := h.liveSDKSessions()
	if live != 2 {
		t.Fatalf("%d sessions live in the SDK, want 2", live)
	}
}

// A session in use is never reaped, however long the use: a call in flight (one
// waiting for approval is the same open request) or an open GET stream.
func TestSessionsInUseAreNotReaped(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.SessionIdle = 200 * time.Millisecond })
	c := newSessionClient(h)
	tok := h.agentToken("patient")
	ctx := context.Background()

	// The cluster stops answering: the next read hangs until ClearFaults.
	h.sim.InjectFault("", "/cluster", pvesim.FaultHang, 1)
	calling := c.mustOpen(tok, false)
	callDone := make(chan error, 1)
	go func() {
		_, err := calling.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
		callDone <- err
	}()
	listening := c.mustOpen(tok, true)

	keepers := []struct {
		name string
		s    clientSession
	}{{"a call in flight", calling}, {"an open GET stream", listening}}
	// Connect returns once the GET stream is open. The call in flight must
	// count as activity (a regression here times out).
	waitUntil(t, "the call in flight to count as activity", func() bool { _, active := h.sessionActive(calling.ID()); return active > 0 })
	// A session opened after both became busy, and idle since: once it has
	// ended, the busy ones have been idle-eligible at least as long.
	idle := c.mustOpen(tok, false)
	waitUntil(t, "the idle session to end", func() bool { known, _ := h.sessionActive(idle.ID()); return !known })
	for _, k := range keepers {
		if known, _ := h.sessionActive(k.s.ID()); !known {
			t.Errorf("the session with %s was reaped", k.name)
		}
	}
	if got := h.app.OpenSessions(); got != 2 {
		t.Fatalf("OpenSessions = %d, want 2", got)
	}
	if _, err := idle.ListTools(ctx, nil); err == nil {
		t.Error("the reaped session still answers")
	}

	h.sim.ClearFaults()
	if err := <-callDone; err != nil {
		t.Fatalf("the long call: %v", err)
	}
	for _, k := range keepers {
		if res, err := k.s.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"}); err != nil || res.IsError {
			t.Errorf("the session with %s, after: %v %+v", k.name, err, res)
		}
	}
}

// Only the caller who opened a session may use it, keep it alive or end it.
func TestSessionBelongsToItsOpener(t *testing.T) {
	h := newWebHarness(t)
	c := newSessionClient(h)
	owner := c.mustOpen(h.agentToken("fixer"), false)
	id := owner.ID()
	strangers := map[string]string{
		"another agent":                  h.agentToken("other"),
		"another token of the same name": h.agentToken("fixer"),
		"the operator":                   h.login(),
	}
	for who, tok := range strangers {
		for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
			body := ""
			if method == http.MethodPost {
				body = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
			}
			if resp, text := h.mcpRequest(method, tok, id, body); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s, %s with the session id: %d %s", who, method, resp.StatusCode, text)
			}
		}
	}
	if _, err := owner.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("the owner's session after strangers tried it: %v", err)
	}
	if got := h.app.OpenSessions(); got != 1 {
		t.Fatalf("OpenSessions = %d, want 1", got)
	}
}

func TestShutdownEndsTheSessionCount(t *testing.T) {
	h := newWebHarness(t)
	c := newSessionClient(h)
	tok := h.agentToken("fixer")
	for range 3 {
		c.mustOpen(tok, true)
	}
	if got := h.app.OpenSessions(); got != 3 {
		t.Fatalf("OpenSessions = %d, want 3", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.app.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the count to follow Shutdown", func() bool { return h.app.OpenSessions() == 0 })
}

// What forgotten sessions cost and that reaping gives it back: a log line for
// the numbers, no assertion on bytes (go test ./web -run Cost -v). Each session
// makes one call; all are forgotten at once, so the server holds every one of
// them idle when measured.
func TestForgottenSessionsCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	const n = 300
	h := newWebHarness(t, func(o *Options) { o.SessionIdle = 3 * time.Second; o.MaxSessionsPerPrincipal = n })
	c := newSessionClient(h)
	tok := h.agentToken("forgetful")
	ctx := context.Background()
	session := func() (clientSession, error) {
		s, err := c.open(tok, true)
		if err != nil {
			return s, err
		}
		_, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
		return s, err
	}
	warm, err := session()
	if err != nil {
		t.Fatal(err)
	}
	warm.abandon()
	waitUntil(t, "the warm-up session to end", func() bool { return h.app.OpenSessions() == 0 })
	before := measure(c)

	sessions := make([]clientSession, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				sessions[i], errs[i] = session()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		s.abandon()
	}
	open := h.app.OpenSessions()
	held := measure(c)
	waitUntil(t, "forgotten sessions to end", func() bool { return h.app.OpenSessions() == 0 })
	after := measure(c)
	t.Logf("%d forgotten sessions: before %s; %d open and idle %s; all reaped %s", n, before, open, held, after)
	if open > 0 {
		t.Logf("per idle session: %.1f goroutines, %.1f KiB heap",
			float64(held.goroutines-before.goroutines)/float64(open), (float64(held.heap)-float64(before.heap))/float64(open)/1024)
	}
}

type usage struct {
	goroutines int
	heap, rss  uint64
}

func (u usage) String() string {
	return fmt.Sprintf("(%d goroutines, heap %.1f MiB, RSS %.1f MiB)", u.goroutines, float64(u.heap)/(1<<20), float64(u.rss)/(1<<20))
}

func measure(c *sessionClient) usage {
	c.h.sim.ResetRequests() // the simulator's request log is the test's memory, not Jarvis's
	c.tr.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond) // let closed connections' goroutines finish
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	u := usage{goroutines: runtime.NumGoroutine(), heap: m.HeapAlloc}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(status)) {
			var kb uint64
			if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
				u.rss = kb << 10
			}
		}
	}
	return u
}

// liveSDKSessions counts the sessions the SDK holds over HTTP, whatever the
// tracker thinks.
func (h *webHarness) liveSDKSessions() int {
	live := 0
	for _, srv := range h.srv.HTTPServers() {
		for range srv.Sessions() {
			live++
		}
	}
	return live
}
