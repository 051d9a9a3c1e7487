package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// Two `jarvis serve` replicas on one PostgreSQL database behind a plain load
// balancer (testLB: round robin, sticky on Mcp-Session-Id, a refused dial
// takes a replica out and sends the request to the other), as README's
// "Behind a load balancer" sets them up with HAProxy.
//
// A 2026-07-28 agent (the go-sdk client's default: stateless) has its calls
// spread over both replicas; its RED call waits for a person, who approves it
// through the balancer, and it runs once. A 2025-11-25 agent's session stays
// on the replica that opened it. That replica is killed (SIGKILL): the
// 2026-07-28 agent's next calls are served by the survivor with nothing done
// on its side; the 2025-11-25 agent's session is gone with its replica (the
// survivor answers its id with 404, and go-sdk's client does not start a new
// session by itself), and a fresh initialize through the balancer works.
// jarvis audit verify holds afterwards. The test logs how long each client
// took to get its first answer after the kill.
func TestReplicasBehindLoadBalancer(t *testing.T) {
	storetest.SkipOnSQLite(t, "two jarvis serve replicas on one PostgreSQL database")
	url := storetest.Target(t)
	c := startDoctorCluster(t, pvesim.Options{})
	envOf := func(name, anchor string) []string {
		return replicaEnv(t, url, anchor, name, fmt.Sprintf("PORT=%d", freePort(t)),
			"JARVIS_NODES="+c.allNodes(), "PVE_TOKEN_ID="+doctorTokenID, "PVE_TOKEN_SECRET="+doctorSecret,
			"PVE_TLS_FINGERPRINT="+c.fingerprint, "JARVIS_APPROVAL_WAIT=30s", "LOG_LEVEL=info")
	}
	a, b, envA, envB, _ := startPair(t, envOf)
	envs := map[string][]string{"replica-a": envA, "replica-b": envB}
	procs := map[string]*replicaProc{"replica-a": a, "replica-b": b}
	lb := newTestLB(t, []*lbBackend{
		{name: "replica-a", host: strings.TrimPrefix(procs["replica-a"].base, "http://")},
		{name: "replica-b", host: strings.TrimPrefix(procs["replica-b"].base, "http://")},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := runJarvis(t, envs["replica-a"], "token", "create", "--name", "lb-agent", "--max-tier", "red")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	token := strings.TrimSpace(out)

	// The 2025-11-25 session opens first: the replica it lands on is the one
	// that dies.
	legacy := connectLegacy(t, ctx, lb.URL, token)
	if legacy.ID() == "" {
		t.Fatal("the 2025-11-25 client has no session id")
	}
	victim, survivor := lb.stuckTo(legacy.ID()), ""
	if victim == "" {
		t.Fatalf("the balancer never saw session %s issued", legacy.ID())
	}
	for name := range procs {
		if name != victim {
			survivor = name
		}
	}
	t.Logf("the 2025-11-25 session landed on %s: %s dies, %s survives", victim, victim, survivor)

	modern := connectAgent(t, ctx, lb.URL, token) // go-sdk's default revision
	if v := modern.InitializeResult().ProtocolVersion; v != "2026-07-28" || modern.ID() != "" {
		t.Fatalf("the default client negotiated %s with session %q, want 2026-07-28 without one", v, modern.ID())
	}
	for i := range 6 {
		callOK(t, ctx, modern, "get_guest_status", map[string]any{"vmid": 101 + i%3})
	}
	for range 3 {
		callOK(t, ctx, legacy, "get_cluster_status", nil)
	}
	perReplica := served(lb.log(), func(x lbExchange) bool { return x.rpc == "tools/call" && x.version == "2026-07-28" })
	if perReplica[victim] == 0 || perReplica[survivor] == 0 {
		t.Fatalf("the 2026-07-28 calls were served %v, want some on each replica", perReplica)
	}
	if stuck := served(lb.log(), func(x lbExchange) bool { return x.session == legacy.ID() }); len(stuck) != 1 || stuck[victim] == 0 {
		t.Fatalf("the 2025-11-25 session's requests were served %v, want all on %s", stuck, victim)
	}
	t.Logf("before the kill: the 2026-07-28 calls were served %v; the 2025-11-25 session's requests all by %s", perReplica, victim)

	// A RED call waits for a person, who approves it through the balancer.
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	called := make(chan answer, 1)
	go func() {
		res, err := modern.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		called <- answer{res, err}
	}()
	operator := operatorLogin(t, lb.URL)
	var approvalID string
	waitUntil(t, 20*time.Second, "the approval request on the balancer's API", func() bool {
		var list struct {
			Approvals []struct{ ID, Tool string }
		}
		if getJSON(t, lb.URL+"/api/approvals?status=pending", operator, &list) != http.StatusOK {
			return false
		}
		for _, ap := range list.Approvals {
			if ap.Tool == "stop_vm" {
				approvalID = ap.ID
			}
		}
		return approvalID != ""
	})
	if code := postJSON(t, lb.URL+"/api/approvals/"+approvalID+"/approve", operator); code != http.StatusOK {
		t.Fatalf("approve through the balancer: HTTP %d", code)
	}
	select {
	case got := <-called:
		if got.err != nil || got.res.IsError {
			b, _ := json.Marshal(got.res)
			t.Fatalf("the approved stop_vm: %v %s", got.err, b)
		}
	case <-ctx.Done():
		t.Fatal("the waiting stop_vm never ran after the approval")
	}
	guest, _ := c.sim.Guest(101)
	if n := c.sim.RequestCount(http.MethodPost, fmt.Sprintf("/nodes/%s/%s/101/status/stop", guest.Node, guest.Kind)); n != 1 {
		t.Errorf("the cluster got %d stop requests for VM 101, want 1", n)
	}
	if n := countRows(auditRows(t, lb.URL, operator), func(r store.AuditRow) bool {
		return r.Kind == "end" && r.Tool == "stop_vm" && r.Status == store.OutcomeOK && r.ApprovalID == approvalID
	}); n != 1 {
		t.Errorf("%d ok end rows for the approved stop_vm, want 1", n)
	}

	// The replica holding the 2025-11-25 session dies.
	if err := procs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs[victim].exited
	killed, mark := time.Now(), len(lb.log())

	// The 2026-07-28 agent goes on as if nothing happened.
	res := callOK(t, ctx, modern, "get_guest_status", map[string]any{"vmid": 101})
	modernFirst := time.Since(killed)
	if body, _ := json.Marshal(res.StructuredContent); !strings.Contains(string(body), `"status":"stopped"`) {
		t.Fatalf("get_guest_status 101 after the kill: %s", body)
	}
	callOK(t, ctx, modern, "create_snapshot", map[string]any{"vmid": 102, "name": "after-kill"})
	for i := range 4 {
		callOK(t, ctx, modern, "get_guest_status", map[string]any{"vmid": 101 + i%3})
	}
	after := lb.log()[mark:]
	if got := served(after, func(x lbExchange) bool { return x.version == "2026-07-28" }); len(got) != 1 || got[survivor] != 6 {
		t.Fatalf("the 2026-07-28 requests after the kill were served %v, want all 6 by %s", got, survivor)
	}
	if n := len(served(after, func(x lbExchange) bool { return x.rpc == "server/discover" })); n != 0 {
		t.Error("the 2026-07-28 client discovered the server again after the kill; it needs no reconnect")
	}

	// The 2025-11-25 agent's session died with its replica: the survivor
	// answers its id with 404, and the go-sdk client reports the session
	// missing instead of starting a new one (go-sdk#715: a new ClientSession
	// is the caller's to make).
	legacyAsked := time.Now()
	_, err = legacy.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
	legacyFailed := time.Since(legacyAsked)
	if err == nil || !(errors.Is(err, mcp.ErrSessionMissing) ||
		errors.Is(err, mcp.ErrConnectionClosed) && strings.Contains(err.Error(), mcp.ErrSessionMissing.Error())) {
		t.Fatalf("the 2025-11-25 call after its replica died: %v, want the session missing", err)
	}
	var notFound *lbExchange
	for _, x := range lb.log()[mark:] {
		if x.session == legacy.ID() && x.backend == survivor && x.status == http.StatusNotFound {
			notFound = &x
			break
		}
	}
	if notFound == nil {
		t.Fatalf("no request of session %s got 404 from %s after the kill: %+v", legacy.ID(), survivor, lb.log()[mark:])
	}
	if again := served(lb.log()[mark:], func(x lbExchange) bool { return x.rpc == "initialize" }); len(again) != 0 {
		t.Fatalf("the go-sdk client initialized again by itself (%v); update the README and this test", again)
	}
	reconnect := time.Now()
	fresh := connectLegacy(t, ctx, lb.URL, token)
	if got := lb.stuckTo(fresh.ID()); got != survivor {
		t.Fatalf("the new 2025-11-25 session is on %q, want %s", got, survivor)
	}
	callOK(t, ctx, fresh, "get_cluster_status", nil)
	legacyRecovered, legacyBack := time.Since(reconnect), time.Since(killed)

	lb.mu.Lock()
	redialed, failed := lb.redialed, lb.failed
	lb.mu.Unlock()
	if redialed == 0 || failed != 0 {
		t.Errorf("after the kill the balancer sent %d requests on after a refused dial and failed %d; want some and none", redialed, failed)
	}
	t.Logf("2026-07-28 client: its first call after the kill answered %s after it, by %s, with no reconnect",
		modernFirst.Round(time.Millisecond), survivor)
	what := "its GET stream's reconnect"
	if notFound.method != http.MethodGet {
		what = "its " + notFound.rpc
	}
	t.Logf("2025-11-25 client: %s got 404 from %s %s after the kill; its next call, %s after the kill, failed in %s (%v); "+
		"a new initialize and its first call took %s, answered %s after the kill",
		what, survivor, notFound.at.Sub(killed).Round(time.Millisecond), legacyAsked.Sub(killed).Round(time.Millisecond),
		legacyFailed.Round(time.Millisecond), err, legacyRecovered.Round(time.Millisecond), legacyBack.Round(time.Millisecond))
	t.Logf("the balancer sent %d requests on to %s after a refused dial to %s", redialed, survivor, victim)

	// A clean stop, then the log verifies with the survivor's anchor.
	_ = procs[survivor].cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-procs[survivor].exited:
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v", survivor, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop within 20 s of SIGTERM", survivor)
	}
	out, err = runJarvis(t, envs[survivor], "audit", "verify")
	if err != nil || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify with %s's anchor: %v\n%s", survivor, err, out)
	}
	t.Log(strings.TrimSpace(out))
}

// connectLegacy is connectAgent pinned to 2025-11-25, which has sessions.
func connectLegacy(t *testing.T, ctx context.Context, base, token string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).
		Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// callOK calls tool and fails the test unless it answers without error.
func callOK(t *testing.T, ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil || res.IsError {
		b, _ := json.Marshal(res)
		t.Fatalf("%s %v: %v %s", tool, args, err, b)
	}
	return res
}

// testLB is a plain load balancer, as HAProxy or nginx would stand in front of
// the replicas: requests without Mcp-Session-Id go round robin; a request
// with one goes where the response that issued it came from (learned from
// the response header, like HAProxy's stick store-response); a refused dial
// marks the replica down (what its health check would find a moment later)
// and sends the request to the other, and only then: a request something
// was sent for is never sent twice. It keeps no connections to the replicas
// open between requests, so a dead replica always shows as a refused dial.
type testLB struct {
	*httptest.Server
	backends []*lbBackend
	next     atomic.Uint64
	tr       *http.Transport

	mu        sync.Mutex
	stick     map[string]*lbBackend // by the Mcp-Session-Id it issued
	exchanges []lbExchange
	redialed  int // requests sent on to another replica after a refused dial
	failed    int // requests no replica answered (502)
}

type lbBackend struct {
	name string
	host string // host:port
	down atomic.Bool
}

// lbExchange is one request the balancer passed on.
type lbExchange struct {
	backend string // the replica that answered, "" for none
	method  string // the HTTP method
	rpc     string // the JSON-RPC method of a POST
	version string // MCP-Protocol-Version
	session string // the Mcp-Session-Id it carried
	status  int
	at      time.Time // when the answer's headers came
}

func newTestLB(t *testing.T, backends []*lbBackend) *testLB {
	t.Helper()
	lb := &testLB{backends: backends, tr: &http.Transport{DisableKeepAlives: true}, stick: map[string]*lbBackend{}}
	// The turn starts anywhere, so the first session (and the replica that
	// dies) is A in some runs and B in others.
	lb.next.Store(rand.Uint64N(uint64(len(backends))))
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "replica" },
		Transport: lb,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil { // a client that hung up is no failure of ours
				lb.mu.Lock()
				lb.failed++
				lb.mu.Unlock()
			}
			http.Error(w, "no replica answered: "+err.Error(), http.StatusBadGateway)
		},
	}
	lb.Server = httptest.NewServer(proxy)
	t.Cleanup(func() {
		lb.Close()
		lb.tr.CloseIdleConnections()
	})
	return lb
}

// RoundTrip sends one request to a replica, and on to the next while the
// dial is refused.
func (lb *testLB) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		_ = req.Body.Close()
	}
	x := lbExchange{method: req.Method, rpc: rpcMethodOf(body), version: req.Header.Get("MCP-Protocol-Version"),
		session: req.Header.Get("Mcp-Session-Id")}
	err := errors.New("every replica is down")
	for i, be := range lb.order(x.session) {
		out := req.Clone(req.Context())
		out.URL.Host = be.host
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		var resp *http.Response
		resp, err = lb.tr.RoundTrip(out)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			be.down.Store(true) // nothing was sent: the next replica may take it
			continue
		}
		lb.mu.Lock()
		if i > 0 {
			lb.redialed++
		}
		x.backend, x.at = be.name, time.Now()
		if resp != nil {
			x.status = resp.StatusCode
			if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && lb.stick[sid] == nil {
				lb.stick[sid] = be
			}
		}
		lb.exchanges = append(lb.exchanges, x)
		lb.mu.Unlock()
		return resp, err
	}
	return nil, err
}

// order is the replicas to try for a request: the one its session sticks to
// while it is up, else the next up in turn; then the others up.
func (lb *testLB) order(session string) []*lbBackend {
	var up []*lbBackend
	for _, be := range lb.backends {
		if !be.down.Load() {
			up = append(up, be)
		}
	}
	if len(up) == 0 {
		return nil
	}
	lb.mu.Lock()
	first := lb.stick[session]
	lb.mu.Unlock()
	if session == "" || first == nil || first.down.Load() {
		first = up[int((lb.next.Add(1)-1)%uint64(len(up)))]
	}
	order := []*lbBackend{first}
	for _, be := range up {
		if be != first {
			order = append(order, be)
		}
	}
	return order
}

// stuckTo names the replica that issued session, "" for none.
func (lb *testLB) stuckTo(session string) string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if be := lb.stick[session]; be != nil {
		return be.name
	}
	return ""
}

// log is every request a replica answered, in order.
func (lb *testLB) log() []lbExchange {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return append([]lbExchange(nil), lb.exchanges...)
}

// served counts the exchanges that match by the replica that answered them.
func served(xs []lbExchange, match func(lbExchange) bool) map[string]int {
	n := map[string]int{}
	for _, x := range xs {
		if match(x) {
			n[x.backend]++
		}
	}
	return n
}

// rpcMethodOf is the method of a JSON-RPC message, "" for anything else.
func rpcMethodOf(body []byte) string {
	var m struct {
		Method string `json:"method"`
	}
	_ = json.Unmarshal(body, &m)
	return m.Method
}
