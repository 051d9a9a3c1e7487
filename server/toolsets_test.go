package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

func names(list []*mcp.Tool) []string {
	var out []string
	for _, tl := range list {
		out = append(out, tl.Name)
	}
	return out
}

// A caller sees exactly the tools of its toolsets (its own, else the server's),
// and a call outside them is refused with a reason that says how to get it —
// before anything is prepared or asked.
func TestToolsetsShapeTheListAndTheCalls(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Toolsets = []string{"cluster", "snapshots"} })

	serverDefault := names(listAs(t, h, agentRed))
	if !slices.Contains(serverDefault, "get_vms") || !slices.Contains(serverDefault, "create_snapshot") {
		t.Fatalf("the server's toolsets are not listed: %v", serverDefault)
	}
	if slices.Contains(serverDefault, "start_vm") || slices.Contains(serverDefault, "execute_ssh") {
		t.Fatalf("tools outside the server's toolsets are listed: %v", serverDefault)
	}

	own := agentRed
	own.ID = "agent:powerbot"
	own.Toolsets = "power"
	listed := names(listAs(t, h, own))
	want := slices.Sorted(slices.Values(tools.Toolsets[1].Tools)) // clients get them by name
	if tools.Toolsets[1].Name != "power" || !slices.Equal(listed, want) {
		t.Fatalf("a token with its own toolsets lists %v, want the power toolset %v", listed, want)
	}

	cases := []struct {
		p          safety.Principal
		tool       string
		args       map[string]any
		refused    bool
		reasonHint string
	}{
		{p: agentRed, tool: "start_vm", args: map[string]any{"vmid": 106}, refused: true, reasonHint: "JARVIS_TOOLSETS"},
		{p: own, tool: "get_vms", refused: true, reasonHint: "--toolsets"},
		{p: own, tool: "create_snapshot", args: map[string]any{"vmid": 106, "name": "x1"}, refused: true, reasonHint: "power"},
		{p: agentRed, tool: "get_vms"},
	}
	for _, c := range cases {
		res := h.call(c.p, c.tool, c.args)
		if !c.refused {
			if res.IsError {
				t.Errorf("%s as %s: refused: %s", c.tool, c.p.ID, textOf(res))
			}
			continue
		}
		r := refusalOf(t, res)
		if r.Decision != safety.Blocked || !strings.Contains(r.Reason, "toolset") || !strings.Contains(r.Reason, c.reasonHint) {
			t.Errorf("%s as %s: %+v, want blocked with a reason naming the toolset and %q", c.tool, c.p.ID, r, c.reasonHint)
		}
	}
	// Nothing ran and nobody was asked.
	if got := h.guestStatus(106); got != "stopped" {
		t.Errorf("VM 106 is %s after refused calls", got)
	}
	if n, err := h.store.CountApprovals(context.Background(), store.ApprovalPending); err != nil || n != 0 {
		t.Errorf("approvals = %d, %v; a call outside the toolsets must not ask anyone", n, err)
	}

	// Over MCP the refusal has the same shape, not "unknown tool".
	cs := h.connect(own, nil)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_vms", Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if r := refusalOf(t, res); !strings.Contains(r.Reason, "cluster toolset") {
		t.Errorf("over MCP: %+v", r)
	}

	// A resource read is not a tool from the list: the toolsets do not limit it.
	rr, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "jarvis://cluster/summary"})
	if err != nil || len(rr.Contents) == 0 {
		t.Errorf("resource read outside the toolsets: %v", err)
	}
}
