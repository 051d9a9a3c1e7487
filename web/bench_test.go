package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// GREEN calls over the real streamable HTTP transport on loopback, many
// clients at once, side by side in one run (BENCHMARKS.md):
//
//	go test ./web -run '^$' -bench HTTPCalls -benchtime 2000x
//
// HTTPCalls/bare serves the same tool handler on a plain go-sdk streamable
// HTTP server (no token, policy, audit or events); HTTPCalls/jarvis is /mcp
// with an agent token verified on every request, the whole dispatch path and
// the audit log on a SQLite file, and again on PostgreSQL when the tests
// reach one (store/storetest). Each of the 50 clients has its own session.
// Reported: calls/s, and p50/p99 of one call's latency as the client sees it.
func BenchmarkHTTPCalls(b *testing.B) {
	const clients = 50
	b.Run("get_vms/bare", func(b *testing.B) {
		url := bareHTTPServer(b, "get_vms")
		benchHTTPCalls(b, clients, func() *mcp.ClientSession { return connectHTTPAt(b, url, "", sessionsRevision) })
	})
	// Jarvis on each protocol revision it serves over HTTP: 2025-11-25 with
	// sessions (like for like with the bare server), 2026-07-28 stateless.
	// On each engine tests reach (PostgreSQL with JARVIS_TEST_DATABASE_URL).
	for _, engine := range storetest.Engines() {
		for _, version := range []string{sessionsRevision, statelessRevision} {
			b.Run("get_vms/jarvis-"+version+"/"+engine, func(b *testing.B) {
				h := newWebHarnessOn(b, engine)
				// One agent per client: several agents share one cluster (and one agent
				// may hold only so many sessions).
				benchHTTPCalls(b, clients, func() *mcp.ClientSession {
					tok, _, err := h.tokens.IssueAgent(context.Background(), "bench", safety.Green, time.Hour, nil)
					if err != nil {
						b.Fatal(err)
					}
					return connectHTTPAt(b, h.ts.URL+"/mcp", tok, version)
				})
			})
		}
	}
}

// The protocol revisions the HTTP benchmark compares.
const (
	sessionsRevision  = "2025-11-25"
	statelessRevision = "2026-07-28"
)

// benchHTTPCalls spreads b.N calls of get_vms over n clients, each on its own
// session, and reports throughput and latency percentiles.
func benchHTTPCalls(b *testing.B, n int, connect func() *mcp.ClientSession) {
	sessions := make([]*mcp.ClientSession, n)
	for i := range sessions {
		sessions[i] = connect()
	}
	ctx := context.Background()
	calls := make(chan struct{}, b.N)
	for range b.N {
		calls <- struct{}{}
	}
	close(calls)
	latencies := make([][]time.Duration, n)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, cs := range sessions {
		wg.Go(func() {
			for range calls {
				t0 := time.Now()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_vms", Arguments: map[string]any{}})
				if err != nil || res.IsError {
					b.Error(err, res)
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// connectHTTPAt connects a client that speaks protocol revision version.
func connectHTTPAt(b *testing.B, url, token, version string) *mcp.ClientSession {
	// Both sides get the same client transport, keeping a connection per client.
	hc := &http.Client{Transport: tokenTransport{token: token, next: benchTransport}}
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(), tr,
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	return cs
}

var benchTransport = &http.Transport{MaxIdleConnsPerHost: 128}

// tokenTransport adds a bearer token, when there is one.
type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.next.RoundTrip(r)
}

// bareHTTPServer serves one catalogue tool with nothing but its own handler
// (decode, prepare, run) on a plain go-sdk streamable HTTP server, against a
// simulated cluster of its own like the harness's.
func bareHTTPServer(b *testing.B, name string) string {
	sim := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!t", TokenSecret: "s", TaskDuration: 50 * time.Millisecond})
	pts := httptest.NewTLSServer(sim)
	b.Cleanup(pts.Close)
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: pts.URL}}, TokenID: "jarvis@pve!t", TokenSecret: "s",
		Fingerprint: pve.FingerprintOf(pts.Certificate())})
	if err != nil {
		b.Fatal(err)
	}
	env := &tools.Env{PVE: client}
	var tool *tools.Tool
	for _, t := range tools.Catalogue() {
		if t.Name == name {
			tool = t
		}
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "bare", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: tool.Name, Description: tool.Description, InputSchema: tool.InputSchema, OutputSchema: tool.OutputSchema},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			args, err := tools.ParseArgs(req.Params.Arguments)
			if err != nil {
				return nil, err
			}
			in, err := tool.Decode(args)
			if err != nil {
				return nil, err
			}
			call, err := tool.Prepare(ctx, env, in)
			if err != nil {
				return nil, err
			}
			out, err := call.Run(ctx, func(string, float64, float64) {})
			if err != nil {
				return nil, err
			}
			text, err := json.Marshal(out)
			if err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}, StructuredContent: json.RawMessage(text)}, nil
		})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	b.Cleanup(ts.Close)
	return ts.URL
}
