package web

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A read over the real streamable HTTP transport (loopback, bearer token
// verified per request), to set beside server's in-memory benchmarks:
// go test ./server ./web -run '^$' -bench Read -benchmem
func BenchmarkReadOverStreamableHTTP(b *testing.B) {
	h := newWebHarness(b)
	cs := h.mcpSession(h.login())
	ctx := context.Background()
	for b.Loop() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
		if err != nil || res.IsError {
			b.Fatal(err)
		}
	}
}
