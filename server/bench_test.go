package server

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/tools"
)

// The cost of the safety layer, side by side in one run (BENCHMARKS.md):
//
//	go test ./server -run '^$' -bench 'GreenCall|ApprovalRoundTrip' -benchmem
//
// GreenCall/bare registers the same tool handler on a plain go-sdk server
// (decode, prepare, run; no policy, audit or events), GreenCall/jarvis is the
// whole dispatch path. Both talk to the same simulated cluster over the
// in-memory transport, so the difference is what Jarvis adds.
//
// The simulator answers in-process within microseconds, which makes the ratio
// as unkind to Jarvis as it can be. The +2ms variants give the simulated API
// a 2 ms answer time, still faster than a real pveproxy on a LAN.
func BenchmarkGreenCall(b *testing.B) {
	for _, c := range []struct {
		tool    string
		latency time.Duration
	}{{"get_vms", 0}, {"get_cluster_status", 0}, {"get_vms", 2 * time.Millisecond}} {
		name := c.tool
		if c.latency > 0 {
			name += "+" + c.latency.String()
		}
		b.Run(name+"/bare", func(b *testing.B) {
			h := newHarness(b)
			h.sim.SetLatency(c.latency)
			benchCalls(b, bareSession(b, h, c.tool), c.tool)
		})
		b.Run(name+"/jarvis", func(b *testing.B) {
			h := newHarness(b)
			h.sim.SetLatency(c.latency)
			benchCalls(b, h.connect(operator, nil), c.tool)
		})
	}
}

func benchCalls(b *testing.B, cs *mcp.ClientSession, tool string) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
		if err != nil || res.IsError {
			b.Fatal(err, res)
		}
	}
}

// bareSession serves one tool with nothing but its own handler on a go-sdk
// server: the baseline Jarvis's dispatch is measured against.
func bareSession(b *testing.B, h *harness, name string) *mcp.ClientSession {
	var tool *tools.Tool
	for _, t := range tools.Catalogue() {
		if t.Name == name {
			tool = t
		}
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "bare", Version: "1"}, nil)
	env := h.srv.defaultCluster().Env
	srv.AddTool(mcpTool(tool), func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
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
		return successResult(out), nil
	})
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	return cs
}

// BenchmarkReadThroughDispatch is the dispatch path without MCP around it.
func BenchmarkReadThroughDispatch(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	args := json.RawMessage(`{}`)
	for b.Loop() {
		if res := h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "get_vms", Args: args}); res.IsError {
			b.Fatal(textOf(res))
		}
	}
}

func BenchmarkRefusalThroughDispatch(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	args := json.RawMessage(`{"node":"pve"}`)
	for b.Loop() {
		if res := h.srv.Dispatch(ctx, Call{Principal: agentRed, Tool: "reboot_node", Args: args}); !res.IsError {
			b.Fatal("reboot_node ran")
		}
	}
}

// BenchmarkApprovalRoundTrip is a RED call's whole life on the simulator: the
// agent asks (needs_approval with an id), a person approves, the agent repeats
// the call with approval_id, and the task runs to its end. The simulator's
// tasks take 50 ms, so that much of each round trip is the "cluster"; the
// rest is Jarvis (two decisions, approval rows, four audit rows, the events).
func BenchmarkApprovalRoundTrip(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	for b.Loop() {
		if err := h.sim.SetGuestStatus(101, "running"); err != nil {
			b.Fatal(err)
		}
		ask := h.srv.Dispatch(ctx, Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101}`)})
		r, ok := ask.StructuredContent.(Refusal)
		if !ok || r.Decision != "needs_approval" {
			b.Fatalf("first call: %s", textOf(ask))
		}
		if _, err := h.srv.DecideApproval(ctx, r.ApprovalID, true, "operator:bench"); err != nil {
			b.Fatal(err)
		}
		done := h.srv.Dispatch(ctx, Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":101,"approval_id":"` + r.ApprovalID + `"}`)})
		if done.IsError {
			b.Fatalf("approved call: %s", textOf(done))
		}
	}
}
