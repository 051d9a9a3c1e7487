package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
)

var update = flag.Bool("update", false, "rewrite testdata/toolsets/*.golden.json from the current catalogue")

// TestToolsListGolden fails when a tool's name, tier, annotations, description or
// schemas change without its toolset's golden file being updated
// (go test ./server -run Golden -update). One file per toolset, as a client
// offered only that toolset lists it.
func TestToolsListGolden(t *testing.T) {
	h := newHarness(t)
	for _, ts := range tools.Toolsets {
		t.Run(ts.Name, func(t *testing.T) {
			p := operator
			p.Toolsets = ts.Name
			list := listAs(t, h, p)
			// min_tier, the lowest ceiling that sees the tool, is written only
			// where it differs from the tier.
			type entry struct {
				Tier    string    `json:"tier"`
				MinTier string    `json:"min_tier,omitempty"`
				Tool    *mcp.Tool `json:"tool"`
			}
			var entries []entry
			for _, tl := range list {
				e := entry{Tool: tl}
				for _, c := range h.srv.AllTools() {
					if c.Name == tl.Name {
						e.Tier = c.Tier.String()
						if c.MinTier != c.Tier {
							e.MinTier = c.MinTier.String()
						}
					}
				}
				entries = append(entries, e)
			}
			got, err := json.MarshalIndent(entries, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			checkGolden(t, filepath.Join("testdata", "toolsets", ts.Name+".golden.json"), got)
		})
	}
}

// checkGolden compares got with the golden file at path, rewriting it first
// with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s changed; review the difference and run `go test ./server -run Golden -update`.\n%s", path, firstDiff(string(want), string(got)))
	}
}

// listAs lists the tools as p sees them over MCP.
func listAs(t *testing.T, h *harness, p safety.Principal) []*mcp.Tool {
	t.Helper()
	cs := h.connect(p, nil)
	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return list.Tools
}

// TestToolsListSize keeps the default tool list within what it may cost every
// model's context (40 KB as sent), and reports each toolset's size
// (go test ./server -run ToolsListSize -v).
func TestToolsListSize(t *testing.T) {
	h := newHarness(t)
	size := func(sets string) int {
		p := operator
		p.Toolsets = sets
		raw, err := json.Marshal(&mcp.ListToolsResult{Tools: listAs(t, h, p)})
		if err != nil {
			t.Fatal(err)
		}
		return len(raw)
	}
	for _, ts := range tools.Toolsets {
		t.Logf("toolset %-13s %2d tools %6d bytes", ts.Name, len(ts.Tools), size(ts.Name))
	}
	all := size(strings.Join(tools.ToolsetNames(), ","))
	def := size(strings.Join(tools.DefaultToolsets(), ","))
	t.Logf("default (%s): %d bytes; all: %d bytes", strings.Join(tools.DefaultToolsets(), ","), def, all)
	if def > 40_000 {
		t.Errorf("the default tools/list is %d bytes; it must stay within 40,000: tighten descriptions and schemas, or move a toolset out of the defaults", def)
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + itoa(i+1) + ":\n  golden:  " + x + "\n  current: " + y
		}
	}
	return ""
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestEveryToolDeclaresItsContract checks what clients rely on: a title, all four
// annotations set explicitly and derived from the tier, schemas, and no
// confirmation argument a model could fill in itself.
func TestEveryToolDeclaresItsContract(t *testing.T) {
	h := newHarness(t)
	cs := h.connect(operator, nil)
	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tiers := map[string]safety.Tier{}
	for _, c := range h.srv.AllTools() {
		tiers[c.Name] = c.Tier
	}
	if len(list.Tools) != len(tiers) || len(list.Tools) < 25 {
		t.Fatalf("listed %d tools, catalogue has %d", len(list.Tools), len(tiers))
	}
	for _, tl := range list.Tools {
		t.Run(tl.Name, func(t *testing.T) {
			tier := tiers[tl.Name]
			a := tl.Annotations
			if tl.Title == "" || a == nil || a.Title == "" || len(tl.Description) < 40 {
				t.Fatalf("title/annotations/description missing: %+v", tl)
			}
			if a.DestructiveHint == nil || a.OpenWorldHint == nil {
				t.Fatal("destructiveHint and openWorldHint must be set explicitly")
			}
			want := map[safety.Tier][3]bool{
				safety.Green:  {true, false, true},
				safety.Yellow: {false, false, false},
				safety.Red:    {false, true, false},
			}[tier]
			got := [3]bool{a.ReadOnlyHint, *a.DestructiveHint, a.IdempotentHint}
			if got != want {
				t.Errorf("%s tier %s: (readOnly, destructive, idempotent) = %v, want %v", tl.Name, tier, got, want)
			}
			raw, _ := json.Marshal(tl.InputSchema)
			var schema struct {
				Type                 string         `json:"type"`
				Properties           map[string]any `json:"properties"`
				AdditionalProperties any            `json:"additionalProperties"`
			}
			if err := json.Unmarshal(raw, &schema); err != nil {
				t.Fatal(err)
			}
			if schema.Type != "object" || schema.AdditionalProperties == nil {
				t.Errorf("input schema must be a closed object: %s", raw)
			}
			for name := range schema.Properties {
				if strings.Contains(strings.ToLower(name), "confirm") {
					t.Errorf("argument %q lets the model confirm itself", name)
				}
			}
			_, hasApproval := schema.Properties["approval_id"]
			if (tier == safety.Red) != hasApproval {
				t.Errorf("approval_id present=%t for a %s tool", hasApproval, tier)
			}
			if tl.OutputSchema == nil {
				t.Error("no output schema")
			}
		})
	}
}

// TestProtocolErrorsVersusToolErrors: malformed requests are protocol errors;
// everything about a tool call's content is a tool result.
func TestProtocolErrorsVersusToolErrors(t *testing.T) {
	h := newHarness(t)
	cs := h.connect(operator, nil)
	ctx := context.Background()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_node_status", Arguments: map[string]any{"node": 42}})
	if err != nil || !res.IsError {
		t.Fatalf("bad argument type: err=%v res=%+v; want an isError result", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "no_such_tool"})
	if err != nil {
		t.Fatalf("unknown tool must be a refusal result: %v", err)
	}
	if r := refusalOf(t, res); r.Decision != safety.Blocked {
		t.Fatalf("unknown tool: %+v", r)
	}
	h.sim.FailNext("/cluster/resources", 500, "backend exploded")
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_vms"})
	if err != nil || !res.IsError || !strings.Contains(textOf(res), "backend exploded") {
		t.Fatalf("backend failure: err=%v text=%q", err, textOf(res))
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "jarvis://cluster/summary"}); err != nil {
		t.Fatalf("cluster summary resource: %v", err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "jarvis://nodes/pve/status"}); err != nil {
		t.Fatalf("node status resource: %v", err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "jarvis://nodes/nope!/status"}); err == nil {
		t.Fatal("bad node name in a resource URI must fail")
	}
	p, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "cluster_health_check", Arguments: map[string]string{"focus": "storage"}})
	if err != nil || len(p.Messages) != 1 {
		t.Fatalf("prompt: %v %+v", err, p)
	}
}
