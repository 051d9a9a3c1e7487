package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// legacyProtocol is the newest protocol version with sessions (Mcp-Session-Id
// and the standalone GET stream): what the TypeScript SDK and the agents built
// on it speak today. The SDK's default, 2026-07-28, is stateless and would not
// exercise the sessions an abandoning client leaves behind.
const legacyProtocol = "2025-11-25"

// errAbandoned stands in for the DELETE an abandoned session never sends.
var errAbandoned = errors.New("session abandoned without DELETE")

// agentTransport adds the bearer token and, for an abandoned session, drops the
// DELETE that ClientSession.Close would send: Close then only cuts the
// session's connections, as the TypeScript SDK's close() does.
type agentTransport struct {
	base       http.RoundTripper
	token      string
	dropDelete bool
}

func (t *agentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.dropDelete && r.Method == http.MethodDelete {
		return nil, errAbandoned
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// connect opens one MCP session over streamable HTTP.
func connect(ctx context.Context, base http.RoundTripper, url, token string, dropDelete bool) (*mcp.ClientSession, error) {
	tr := &mcp.StreamableClientTransport{
		Endpoint:   strings.TrimSuffix(url, "/") + "/mcp",
		HTTPClient: &http.Client{Transport: &agentTransport{base: base, token: token, dropDelete: dropDelete}},
		MaxRetries: -1, // a failure is counted, not hidden by a reconnect
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "jarvis-load", Version: "1"}, nil)
	return client.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: legacyProtocol})
}

// firstList connects and lists the tools: the answer a client waits for
// before it can do anything.
func firstList(ctx context.Context, base http.RoundTripper, url, token string) (int, error) {
	cs, err := connect(ctx, base, url, token, false)
	if err != nil {
		return 0, fmt.Errorf("opening an MCP session at %s/mcp: %w", url, err)
	}
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("tools/list: %w", err)
	}
	return len(res.Tools), nil
}

// Load is what the calls measured.
type Load struct {
	Tool        string       `json:"tool"`
	Calls       int          `json:"calls"` // counted: ok + errors
	OK          int          `json:"ok"`
	Errors      int          `json:"errors"`                 // failed calls
	CloseErrors int          `json:"close_errors,omitempty"` // with -close: DELETEs that failed
	ErrorKinds  []ErrorCount `json:"error_kinds,omitempty"`
	Sessions    int          `json:"sessions"`
	Agents      int          `json:"agents"` // tokens the sessions were spread over
	Concurrency int          `json:"concurrency"`
	Closed      bool         `json:"closed"` // sessions ended with DELETE; else abandoned
	Protocol    string       `json:"protocol"`
	Seconds     float64      `json:"seconds"`
	CallsPerSec float64      `json:"calls_per_second"`
	P50MS       float64      `json:"p50_ms"`
	P90MS       float64      `json:"p90_ms"`
	P99MS       float64      `json:"p99_ms"`
	MaxMS       float64      `json:"max_ms"`
	OpenP50MS   float64      `json:"session_open_p50_ms"`
	OpenP99MS   float64      `json:"session_open_p99_ms"`
	// CPU time spent during the run: the server's (0 when its pid is unknown)
	// and this tool's own, which shares the machine.
	ServerCPUS float64 `json:"server_cpu_seconds,omitempty"`
	ClientCPUS float64 `json:"client_cpu_seconds"`
}

// ErrorCount is one distinct error and how often it happened.
type ErrorCount struct {
	Error string `json:"error"`
	Count int    `json:"count"`
}

// runLoad makes cfg.calls calls over cfg.sessions sessions, session s as agent
// tokens[s % len(tokens)]. Workers take the sessions in turn; each opens its session, makes the session's share of the
// calls one after another, and abandons it (or closes it with -close).
func runLoad(ctx context.Context, cfg config, base http.RoundTripper, url string, tokens []string) (Load, error) {
	var arguments map[string]any
	if err := json.Unmarshal([]byte(cfg.args), &arguments); err != nil || arguments == nil {
		return Load{}, fmt.Errorf("-args must be a JSON object, e.g. '{\"node\":\"pve\"}': %q", cfg.args)
	}
	l := Load{Tool: cfg.tool, Sessions: cfg.sessions, Agents: len(tokens), Concurrency: cfg.concurrency, Closed: cfg.close, Protocol: legacyProtocol}

	var mu sync.Mutex
	var calls, opens []time.Duration
	errs := map[string]int{}
	fail := func(msg string, n int) {
		mu.Lock()
		errs[msg] += n
		l.Errors += n
		mu.Unlock()
	}
	closeFailed := func(msg string) {
		mu.Lock()
		errs[msg]++
		l.CloseErrors++
		mu.Unlock()
	}

	sessions := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(cfg.concurrency, cfg.sessions) {
		wg.Go(func() {
			var myCalls, myOpens []time.Duration
			defer func() {
				mu.Lock()
				calls = append(calls, myCalls...)
				opens = append(opens, myOpens...)
				mu.Unlock()
			}()
			for s := range sessions {
				share := cfg.calls / cfg.sessions
				if s < cfg.calls%cfg.sessions {
					share++
				}
				t0 := time.Now()
				cs, err := connect(ctx, base, url, tokens[s%len(tokens)], !cfg.close)
				if err != nil {
					fail("opening a session: "+err.Error(), share)
					continue
				}
				myOpens = append(myOpens, time.Since(t0))
				for range share {
					callCtx, cancel := context.WithTimeout(ctx, cfg.timeout)
					t := time.Now()
					res, err := cs.CallTool(callCtx, &mcp.CallToolParams{Name: cfg.tool, Arguments: arguments})
					d := time.Since(t)
					cancel()
					switch {
					case err != nil:
						fail("calling "+cfg.tool+": "+err.Error(), 1)
					case res.IsError:
						fail(cfg.tool+" answered an error: "+resultText(res), 1)
					default:
						myCalls = append(myCalls, d)
					}
				}
				// Abandoning: Close sends no DELETE (agentTransport drops it) and
				// only cuts the connections; the server keeps the session.
				if err := cs.Close(); err != nil && cfg.close && !errors.Is(err, errAbandoned) {
					closeFailed("closing a session (DELETE): " + err.Error())
				}
			}
		})
	}
	for s := range cfg.sessions {
		select {
		case sessions <- s:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(sessions)
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return l, fmt.Errorf("the run was interrupted: %w", ctx.Err())
	}

	l.OK = len(calls)
	l.Calls = l.OK + l.Errors
	l.Seconds = elapsed.Seconds()
	l.CallsPerSec = float64(l.OK) / elapsed.Seconds()
	slices.Sort(calls)
	slices.Sort(opens)
	l.P50MS, l.P90MS, l.P99MS = ms(percentile(calls, 0.50)), ms(percentile(calls, 0.90)), ms(percentile(calls, 0.99))
	if len(calls) > 0 {
		l.MaxMS = ms(calls[len(calls)-1])
	}
	l.OpenP50MS, l.OpenP99MS = ms(percentile(opens, 0.50)), ms(percentile(opens, 0.99))
	for msg, n := range errs {
		l.ErrorKinds = append(l.ErrorKinds, ErrorCount{Error: msg, Count: n})
	}
	sort.Slice(l.ErrorKinds, func(i, j int) bool { return l.ErrorKinds[i].Count > l.ErrorKinds[j].Count })
	return l, nil
}

// resultText is the first text of a tool result, shortened.
func resultText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			if len(t.Text) > 200 {
				return t.Text[:200] + "…"
			}
			return t.Text
		}
	}
	return "(no text)"
}

// percentile is the nearest-rank percentile of sorted durations; 0 for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
