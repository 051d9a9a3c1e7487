package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
)

// recordingTransport adds the bearer token and remembers what each request
// and answer said about revisions and sessions.
type recordingTransport struct {
	token string
	mu    sync.Mutex
	seen  []exchange
}

type exchange struct {
	method, version, reqSession, respSession string
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		t.mu.Lock()
		t.seen = append(t.seen, exchange{method: r.Header.Get("Mcp-Method"), version: r.Header.Get(protocolVersionHeader),
			reqSession: r.Header.Get(sessionIDHeader), respSession: resp.Header.Get(sessionIDHeader)})
		t.mu.Unlock()
	}
	return resp, err
}

func (t *recordingTransport) exchanges() []exchange {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.seen)
}

// Go SDK clients of both generations do the everyday things over /mcp: list,
// a GREEN read, a RED call that needs an approval and its retry. 2026-07-28
// (the SDK client's default) is served without sessions; 2025-11-25 keeps
// them.
func TestMCPServesBothRevisions(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        *mcp.ClientSessionOptions
		wantVersion string
		wantSession bool
	}{
		{"2026-07-28, the SDK default: stateless", nil, statelessVersion, false},
		{"2025-11-25: sessions", &mcp.ClientSessionOptions{ProtocolVersion: sessionsVersion}, sessionsVersion, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newWebHarness(t)
			ctx := context.Background()
			rec := &recordingTransport{token: h.agentToken("fixer")}
			tr := &mcp.StreamableClientTransport{Endpoint: h.ts.URL + "/mcp", HTTPClient: &http.Client{Transport: rec}}
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "router-test", Version: "1"}, nil).Connect(ctx, tr, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			if got := cs.InitializeResult().ProtocolVersion; got != tc.wantVersion {
				t.Fatalf("negotiated %s, want %s", got, tc.wantVersion)
			}

			list, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(list.Tools, func(tl *mcp.Tool) bool { return tl.Name == "get_cluster_status" }) {
				t.Fatalf("get_cluster_status is not listed: %d tools", len(list.Tools))
			}
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
			if _, err := h.store.DecideApproval(ctx, ref.ApprovalID, true, "operator", time.Now()); err != nil {
				t.Fatal(err)
			}
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101, "approval_id": ref.ApprovalID}})
			if err != nil || res.IsError {
				t.Fatalf("approved retry: %v %+v", err, res)
			}
			if g, _ := h.sim.Guest(101); g.Status != "stopped" {
				t.Fatalf("VM 101 is %s", g.Status)
			}

			sessions := 0
			for _, x := range rec.exchanges() {
				if x.respSession != "" || x.reqSession != "" {
					sessions++
				}
				if !tc.wantSession && x.version != statelessVersion {
					t.Errorf("a %q request of the stateless client said revision %q", x.method, x.version)
				}
			}
			if got := h.app.OpenSessions(); tc.wantSession != (sessions > 0) || tc.wantSession != (got == 1) {
				t.Fatalf("%d exchanges carried Mcp-Session-Id, %d sessions open; want sessions: %v", sessions, got, tc.wantSession)
			}
			if tc.wantSession && cs.ID() == "" {
				t.Error("the 2025-11-25 client has no session id")
			}
		})
	}
}

// rawMCP is one hand-made request to /mcp.
type rawMCP struct {
	token, host string
	version     string // MCP-Protocol-Version header; "" for none
	session     string // Mcp-Session-Id header
	body        string
}

// modernBody is a request as 2026-07-28 puts it: the revision, client and
// capabilities in params._meta.
func modernBody(id int, method, version string, params map[string]any) string {
	if params == nil {
		params = map[string]any{}
	}
	if version != "" {
		params["_meta"] = map[string]any{
			mcp.MetaKeyProtocolVersion:    version,
			mcp.MetaKeyClientInfo:         map[string]string{"name": "raw", "version": "1"},
			mcp.MetaKeyClientCapabilities: map[string]any{},
		}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return string(b)
}

func (h *webHarness) rawRequest(ctx context.Context, q rawMCP) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.ts.URL+"/mcp", strings.NewReader(q.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.host != "" {
		req.Host = q.host
	}
	if q.version != "" {
		req.Header.Set(protocolVersionHeader, q.version)
		var m struct{ Method string }
		if json.Unmarshal([]byte(q.body), &m) == nil && m.Method != "" {
			req.Header.Set("Mcp-Method", m.Method) // required from 2026-07-28 on
		}
	}
	if q.session != "" {
		req.Header.Set(sessionIDHeader, q.session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// rpcReply is a JSON-RPC answer as a test reads it.
type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// reply reads the answer to a request: a JSON body, or the first response
// on an SSE stream.
func reply(t *testing.T, resp *http.Response) (rpcReply, string) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	var r rpcReply
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.Lines(text) {
			if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
				var m rpcReply
				if json.Unmarshal([]byte(data), &m) == nil && len(m.ID) > 0 {
					return m, text
				}
			}
		}
		return r, text
	}
	_ = json.Unmarshal(b, &r)
	return r, text
}

// server/discover names what /mcp serves at 2026-07-28; at any other
// revision, older or newer than any served, it gets the unsupported-version
// error with the list, HTTP 400, so a client can pick.
func TestDiscoverAnswersWhatIsServed(t *testing.T) {
	h := newWebHarness(t)
	tok := h.agentToken("prober")
	all := mcp.SupportedProtocolVersions()
	for _, tc := range []struct {
		name          string
		header, meta  string
		session       string // Mcp-Session-Id header
		wantRequested string
		wantSupported []string // nil: a result listing 2026-07-28
	}{
		{name: "2026-07-28", header: statelessVersion, meta: statelessVersion},
		{name: "1999-01-01 in header and _meta", header: "1999-01-01", meta: "1999-01-01", wantRequested: "1999-01-01", wantSupported: all},
		{name: "1999-01-01 in _meta only", meta: "1999-01-01", wantRequested: "1999-01-01", wantSupported: all},
		{name: "2025-11-25, a revision with initialize", header: sessionsVersion, meta: sessionsVersion, wantRequested: sessionsVersion, wantSupported: all},
		{name: "no revision at all", wantRequested: "", wantSupported: all},
		{name: "2099-01-01, newer than any served", header: "2099-01-01", meta: "2099-01-01", wantRequested: "2099-01-01", wantSupported: all},
		{name: "2025-11-25 with a session id", header: sessionsVersion, meta: sessionsVersion, session: "stale", wantRequested: sessionsVersion, wantSupported: all},
		{name: "2026-07-28 with a session id", header: statelessVersion, meta: statelessVersion, session: "stale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.rawRequest(context.Background(), rawMCP{token: tok, version: tc.header, session: tc.session,
				body: modernBody(7, methodDiscover, tc.meta, nil)})
			r, text := reply(t, resp)
			if resp.Header.Get(sessionIDHeader) != "" {
				t.Errorf("discover opened a session: %s", resp.Header.Get(sessionIDHeader))
			}
			if string(r.ID) != "7" {
				t.Errorf("answer id %s, want 7: %s", r.ID, text)
			}
			if tc.wantSupported == nil {
				var res struct{ SupportedVersions []string }
				_ = json.Unmarshal(r.Result, &res)
				if resp.StatusCode != http.StatusOK || !slices.Contains(res.SupportedVersions, statelessVersion) {
					t.Fatalf("%d %s: want 200 listing %s", resp.StatusCode, text, statelessVersion)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
				r.Error == nil || r.Error.Code != mcp.CodeUnsupportedProtocolVersion {
				t.Fatalf("%d %s %s: want 400 application/json with error %d", resp.StatusCode, resp.Header.Get("Content-Type"), text, mcp.CodeUnsupportedProtocolVersion)
			}
			var data mcp.UnsupportedProtocolVersionData
			if err := json.Unmarshal(r.Error.Data, &data); err != nil {
				t.Fatalf("error data %s: %v", r.Error.Data, err)
			}
			if !slices.Equal(data.Supported, tc.wantSupported) || data.Requested != tc.wantRequested {
				t.Errorf("data %+v, want supported %v, requested %q", data, tc.wantSupported, tc.wantRequested)
			}
		})
	}
}

// What a request of 2026-07-28 must carry is checked as the SDK checks it,
// whichever of header and _meta named the revision; and only token holders
// get that far.
func TestStatelessRequestsAreChecked(t *testing.T) {
	h := newWebHarness(t)
	tok := h.agentToken("checked")
	list := func(version string) string { return modernBody(3, "tools/list", version, nil) }
	for _, tc := range []struct {
		name     string
		q        rawMCP
		wantCode int // HTTP
		wantRPC  int // JSON-RPC error code; 0 for a result
	}{
		{"tools/list", rawMCP{token: tok, version: statelessVersion, body: list(statelessVersion)}, 200, 0},
		{"a stale session id is ignored", rawMCP{token: tok, version: statelessVersion, session: "gone", body: list(statelessVersion)}, 200, 0},
		{"header 2026-07-28, _meta 2025-11-25", rawMCP{token: tok, version: statelessVersion, body: list(sessionsVersion)}, 400, mcp.CodeHeaderMismatch},
		{"header 2025-11-25, _meta 2026-07-28", rawMCP{token: tok, version: sessionsVersion, body: list(statelessVersion)}, 400, mcp.CodeHeaderMismatch},
		{"_meta 2026-07-28 without the header", rawMCP{token: tok, body: list(statelessVersion)}, 400, mcp.CodeHeaderMismatch},
		{"no token", rawMCP{version: statelessVersion, body: list(statelessVersion)}, 401, 0},
		{"a wrong token", rawMCP{token: "wrong", version: statelessVersion, body: list(statelessVersion)}, 401, 0},
		{"no token, a discover the router would answer", rawMCP{version: "1999-01-01", body: modernBody(3, methodDiscover, "1999-01-01", nil)}, 401, 0},
		{"a body over the limit", rawMCP{token: tok, version: statelessVersion, body: modernBody(3, "tools/list", statelessVersion,
			map[string]any{"cursor": strings.Repeat("x", 2<<20)})}, 413, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.rawRequest(context.Background(), tc.q)
			r, text := reply(t, resp)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("%d %s, want %d", resp.StatusCode, text, tc.wantCode)
			}
			switch {
			case tc.wantCode != 200 && tc.wantRPC == 0:
			case tc.wantRPC == 0 && (r.Error != nil || len(r.Result) == 0):
				t.Fatalf("want a result: %s", text)
			case tc.wantRPC != 0 && (r.Error == nil || r.Error.Code != tc.wantRPC):
				t.Fatalf("want error %d: %s", tc.wantRPC, text)
			}
			if got := h.app.OpenSessions(); got != 0 {
				t.Errorf("%d sessions open after a stateless request", got)
			}
		})
	}
}

// A page whose name was rebound to 127.0.0.1 must not reach a local Jarvis
// on either path, nor get the router's own answers; a cross-site page neither.
func TestMCPRefusesRebindingAndCrossSiteOnBothPaths(t *testing.T) {
	h := newWebHarness(t)
	tok := h.agentToken("victim")
	for _, tc := range []struct {
		name string
		q    rawMCP
	}{
		{"2026-07-28 tools/list", rawMCP{version: statelessVersion, body: modernBody(1, "tools/list", statelessVersion, nil)}},
		{"2026-07-28 subscriptions/listen", rawMCP{version: statelessVersion, body: listenBody(1)}},
		{"discover at 1999-01-01 (the router's answer)", rawMCP{version: "1999-01-01", body: modernBody(1, methodDiscover, "1999-01-01", nil)}},
		{"2025-11-25 initialize", rawMCP{body: initializeBody}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.token, q.host = tok, "evil.example:80"
			resp := h.rawRequest(context.Background(), q)
			_, text := reply(t, resp)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(text, "Host") {
				t.Errorf("Host evil.example on loopback: %d %s, want 403", resp.StatusCode, text)
			}

			req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/mcp", strings.NewReader(tc.q.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set(protocolVersionHeader, tc.q.version)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "http://evil.example")
			cross, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			cross.Body.Close()
			if cross.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site: %d, want 403", cross.StatusCode)
			}
		})
	}
	if got := h.app.router.openListens(principalOf(t, h, tok)); got != 0 {
		t.Errorf("%d listen streams counted", got)
	}
}

// listenBody asks for notifications about jarvis://alerts (which Jarvis lets
// clients subscribe to) and the tool list, so the stream is held open.
func listenBody(id int) string {
	return modernBody(id, methodListen, statelessVersion, map[string]any{
		"notifications": map[string]any{"resourceSubscriptions": []string{server.AlertsURI}, "toolsListChanged": true},
	})
}

// listen opens a subscriptions/listen stream and waits for the server to
// acknowledge it; cancel ends it.
func (h *webHarness) listen(tok string, id int) (cancel func(), err error) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp := h.rawRequest(ctx, rawMCP{token: tok, version: statelessVersion, body: listenBody(id)})
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	acked := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "notifications/subscriptions/acknowledged") {
				acked <- true
				break
			}
		}
		close(acked)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
	select {
	case ok := <-acked:
		if !ok {
			cancel()
			return nil, fmt.Errorf("the listen stream ended before its acknowledgement")
		}
	case <-time.After(10 * time.Second):
		cancel()
		return nil, fmt.Errorf("no acknowledgement of the listen stream")
	}
	h.t.Cleanup(cancel)
	return cancel, nil
}

// Clients of 2026-07-28 hold subscriptions/listen streams where older ones
// held sessions: one caller may hold at most MaxSessionsPerPrincipal, the one
// more is refused with 429 and what to do, other callers and other requests
// go on, and a closed stream frees its place.
func TestListenStreamsAreCappedPerCaller(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.MaxSessionsPerPrincipal = 2 })
	fixer, other := h.agentToken("fixer"), h.agentToken("other")
	var streams []func()
	for i := range 2 {
		cancel, err := h.listen(fixer, 10+i)
		if err != nil {
			t.Fatalf("listen %d: %v", i, err)
		}
		streams = append(streams, cancel)
	}
	refused := func() {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := h.rawRequest(ctx, rawMCP{token: fixer, version: statelessVersion, body: listenBody(99)})
		if resp.StatusCode == http.StatusOK {
			cancel() // a stream held open: reading it to the end would never end
			resp.Body.Close()
			t.Fatal("3rd listen: 200, a stream past the cap")
		}
		r, text := reply(t, resp)
		if resp.StatusCode != http.StatusTooManyRequests || r.Error == nil || string(r.ID) != "99" {
			t.Fatalf("3rd listen: %d %s, want 429 with a JSON-RPC error for id 99", resp.StatusCode, text)
		}
		for _, want := range []string{"agent:fixer/tok_", "already holds 2 subscriptions/listen streams", "JARVIS_MCP_MAX_SESSIONS", "close the streams", "resourceSubscriptions"} {
			if !strings.Contains(r.Error.Message, want) {
				t.Errorf("refusal %q does not say %q", r.Error.Message, want)
			}
		}
	}
	refused()

	// Other callers, and the same caller's other requests, are not held to it.
	if _, err := h.listen(other, 1); err != nil {
		t.Fatalf("another caller's listen: %v", err)
	}
	resp := h.rawRequest(context.Background(), rawMCP{token: fixer, version: statelessVersion, body: modernBody(5, "tools/list", statelessVersion, nil)})
	if r, text := reply(t, resp); resp.StatusCode != http.StatusOK || r.Error != nil {
		t.Fatalf("tools/list at the listen cap: %d %s", resp.StatusCode, text)
	}
	if got := h.app.OpenSessions(); got != 0 {
		t.Errorf("listen streams opened %d sessions", got)
	}

	streams[0]()
	waitUntil(t, "the closed stream to free its place", func() bool { return h.app.router.openListens(principalOf(t, h, fixer)) == 1 })
	if _, err := h.listen(fixer, 12); err != nil {
		t.Fatalf("listen after one closed: %v", err)
	}
	refused()
}

func principalOf(t *testing.T, h *webHarness, tok string) string {
	t.Helper()
	claims, err := h.tokens.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return claims.Principal().ID
}

// Shutdown ends listen streams as it ends sessions: they would otherwise
// hold it until its deadline.
func TestShutdownEndsListenStreams(t *testing.T) {
	h := newWebHarness(t)
	tok := h.agentToken("watcher")
	for i := range 3 {
		if _, err := h.listen(tok, i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := h.app.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with listen streams open: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	waitUntil(t, "the listen count to follow Shutdown", func() bool { return h.app.router.openListens(principalOf(t, h, tok)) == 0 })
}

// The cap on listen streams cannot be slipped past by a body the router
// would read differently from the SDK (a second "Method" key, another case):
// the Mcp-Method header, which the SDK holds the body to, counts too.
func TestListenCapHoldsForBodiesReadDifferently(t *testing.T) {
	h := newWebHarness(t, func(o *Options) { o.MaxSessionsPerPrincipal = 1 })
	fixer := h.agentToken("fixer")
	for i, extra := range []string{`,"Method":5`, `,"Method":"ping"`} {
		body := strings.TrimSuffix(listenBody(70+i), "}") + extra + "}"
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.ts.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+fixer)
		req.Header.Set(protocolVersionHeader, statelessVersion)
		req.Header.Set("Mcp-Method", "subscriptions/listen")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if i == 0 {
			// The SDK opens it (it reads the first "method"), and the router
			// must have counted it.
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("first listen: HTTP %d", resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a second listen stream got HTTP %d past the cap of 1 (body %s); want 429", resp.StatusCode, body)
		}
	}
}

// The operator's confirmation (an input request with signed state) works on
// 2026-07-28 over HTTP as on 2025-11-25: accepted it runs, declined it is denied.
func TestOperatorConfirmationOverHTTPOnBothRevisions(t *testing.T) {
	for _, version := range []string{statelessVersion, "2025-11-25"} {
		for _, action := range []string{"accept", "decline"} {
			t.Run(version+"/"+action, func(t *testing.T) {
				h := newWebHarness(t)
				ctx := context.Background()
				tr := &mcp.StreamableClientTransport{Endpoint: h.ts.URL + "/mcp", HTTPClient: &http.Client{Transport: &recordingTransport{token: h.login()}}}
				asked := 0
				cs, err := mcp.NewClient(&mcp.Implementation{Name: "operator", Version: "1"}, &mcp.ClientOptions{
					ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
						asked++
						return &mcp.ElicitResult{Action: action, Content: map[string]any{"approve": true}}, nil
					}}).Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
				if err != nil {
					t.Fatal(err)
				}
				defer cs.Close()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
				if err != nil {
					t.Fatal(err)
				}
				g, _ := h.sim.Guest(101)
				switch {
				case asked != 1:
					t.Fatalf("the person was asked %d times, want once", asked)
				case action == "accept" && (res.IsError || g.Status != "stopped"):
					t.Fatalf("accepted: result %+v, VM %s", res.Content, g.Status)
				case action == "decline" && (!res.IsError || g.Status != "running"):
					t.Fatalf("declined: result %+v, VM %s", res.Content, g.Status)
				}
			})
		}
	}
}
