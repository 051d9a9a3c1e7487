package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// harness is a Server on the simulated cluster and a real database: an SQLite
// file, or a PostgreSQL database with JARVIS_TEST_DATABASE_URL (storetest).
type harness struct {
	t     testing.TB
	srv   *Server
	store *store.Store
	sim   *pvesim.Sim
	// target is the database the store is on (storetest.Target): a second
	// handle on it stands for another replica (replicas_test.go).
	target string
}

var (
	operator = safety.Principal{ID: "operator", Kind: safety.Operator, MaxTier: safety.Red}
	agentRed = safety.Principal{ID: "agent:bot", Kind: safety.Agent, MaxTier: safety.Red}
)

func newHarness(t testing.TB, tweak ...func(*Options)) *harness {
	t.Helper()
	return newHarnessPVE(t, nil, tweak...)
}

// newHarnessPVE is newHarness with the cluster client's configuration changed
// by pveTweak (when not nil) before the client is built.
func newHarnessPVE(t testing.TB, pveTweak func(*pve.Config), tweak ...func(*Options)) *harness {
	t.Helper()
	sim := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!test", TokenSecret: "s3cret", TaskDuration: 50 * time.Millisecond})
	ts := httptest.NewTLSServer(sim)
	t.Cleanup(ts.Close)
	cfg := pve.Config{
		Endpoints: []pve.Endpoint{{Name: "pve", URL: ts.URL}},
		TokenID:   "jarvis@pve!test", TokenSecret: "s3cret",
		Fingerprint: pve.FingerprintOf(ts.Certificate()),
	}
	if pveTweak != nil {
		pveTweak(&cfg)
	}
	client, err := pve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	target := storetest.Target(t)
	st, err := store.Open(target, store.Options{AuditKey: safety.DeriveKey("test-secret-test-secret-test-secret", "audit-chain")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts := Options{
		Env:   &tools.Env{PVE: client},
		Store: st,
		Policy: safety.Policy{
			ProtectedNodes: []string{"agent1"}, ProtectedVMIDs: []int{103}, ProtectedServices: []string{"docker"},
		},
		Limiter:      safety.NewRateLimiter(safety.RateLimits{Yellow: rate.Inf, Red: rate.Inf, YellowBurst: 1000, RedBurst: 1000}),
		Confirmer:    safety.NewConfirmer(safety.DeriveKey("test-secret-test-secret-test-secret", "confirmation-state"), time.Minute),
		ApprovalWait: 0,
		ExecTimeout:  30 * time.Second,
		Version:      "test",
		// Every toolset, so each tool can be tested; toolsets_test.go
		// checks the defaults.
		Toolsets: tools.ToolsetNames(),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range tweak {
		f(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, store: st, sim: sim, target: target}
}

// call dispatches directly, as every transport does.
func (h *harness) call(p safety.Principal, tool string, args map[string]any) *mcp.CallToolResult {
	h.t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.srv.Dispatch(context.Background(), Call{Principal: p, Tool: tool, Args: raw})
}

// connect opens an in-memory MCP session as principal p. With elicit set, the
// client declares elicitation and answers with it.
func (h *harness) connect(p safety.Principal, elicit func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error)) *mcp.ClientSession {
	h.t.Helper()
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(p, &p).Connect(ctx, st, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ss.Close() })
	opts := &mcp.ClientOptions{}
	if elicit != nil {
		opts.ElicitationHandler = elicit
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, opts).Connect(ctx, ct, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cs.Close() })
	return cs
}

func refusalOf(t *testing.T, res *mcp.CallToolResult) Refusal {
	t.Helper()
	if !res.IsError {
		t.Fatalf("expected a refusal, got success: %s", textOf(res))
	}
	var r Refusal
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &r); err != nil || r.Decision == "" {
		t.Fatalf("refusal has no structured decision: %s (%s)", b, textOf(res))
	}
	return r
}

func textOf(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			return tc.Text
		}
	}
	return ""
}

func structured[T any](t *testing.T, res *mcp.CallToolResult) T {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool failed: %s", textOf(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return out
}

func (h *harness) guestStatus(vmid int) string {
	h.t.Helper()
	g, ok := h.sim.Guest(vmid)
	if !ok {
		h.t.Fatalf("no guest %d in the simulator", vmid)
	}
	return g.Status
}

// executions counts audit rows that ran the tool (end rows with status ok, failed or unknown).
func (h *harness) executions(tool string) int {
	h.t.Helper()
	rows, err := h.store.AuditRecent(context.Background(), 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if (r.Kind == "end" || r.Kind == "read") && r.Tool == tool && (r.Status == "ok" || r.Status == "failed" || r.Status == "unknown") {
			n++
		}
	}
	return n
}
