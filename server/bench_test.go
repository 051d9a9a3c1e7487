package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The cost of the safety layer on a read, side by side: the PVE client alone,
// the same read through Dispatch (validation, decision, two audit rows, two
// feed events), and the whole MCP round trip over an in-memory transport.
// go test ./server -run '^$' -bench . -benchmem

func BenchmarkReadDirectClient(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.srv.opts.Env.PVE.ClusterStatus(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadThroughDispatch(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	args := json.RawMessage(`{}`)
	for b.Loop() {
		if res := h.srv.Dispatch(ctx, Call{Principal: operator, Tool: "get_cluster_status", Args: args}); res.IsError {
			b.Fatal(textOf(res))
		}
	}
}

func BenchmarkReadOverMCP(b *testing.B) {
	h := newHarness(b)
	cs := h.connect(operator, nil)
	ctx := context.Background()
	for b.Loop() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
		if err != nil || res.IsError {
			b.Fatal(err)
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
