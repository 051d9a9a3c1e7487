package tools

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/safety"
)

// No schema a client sees may carry a ["null", …] type union.
func TestSchemasArePortable(t *testing.T) {
	for _, tool := range Catalogue() {
		for name, s := range map[string]any{"input": tool.InputSchema, "output": tool.OutputSchema} {
			b, _ := json.Marshal(s)
			if strings.Contains(string(b), `"null"`) {
				t.Errorf("%s %s schema has a null type: %s", tool.Name, name, b)
			}
		}
	}
}

func TestPrepareRejectsBadArgumentsBeforeTouchingTheCluster(t *testing.T) {
	env := &Env{} // no cluster: anything that reached it would panic
	byName := map[string]*Tool{}
	for _, tl := range Catalogue() {
		byName[tl.Name] = tl
	}
	for _, c := range []struct{ tool, args, want string }{
		{"get_node_status", `{}`, "node"},
		{"get_node_status", `{"node":"x","extra":1}`, "extra"},
		{"get_node_status", `[1,2]`, "object"},
		{"get_node_status", `{"node":`, "JSON"},
		{"stop_vm", `{"vmid":50}`, "vmid"},
		{"stop_vm", `{"vmid":101,"confirmed":true}`, "confirmed"},
		{"get_recent_tasks", `{"limit":100000}`, "limit"},
		{"get_node_logs", `{"node":"pve","priority":"everything"}`, "priority"},
		{"create_snapshot", `{"vmid":101,"name":"1bad"}`, "name"},
	} {
		_, err := prepareRaw(t.Context(), byName[c.tool], env, json.RawMessage(c.args))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err = %v, want mention of %q", c.tool, c.args, err, c.want)
		}
	}
}

// A tool's MinTier decides who sees it; only a tool whose calls are judged one
// by one may be listed below its tier: execute_ssh's commands, a backup that
// stops a running guest (RED) or does not (YELLOW), a restore over an existing
// guest (RED) or into a new VMID (YELLOW).
func TestMinTier(t *testing.T) {
	want := map[string]safety.Tier{"execute_ssh": safety.Yellow, "create_backup": safety.Yellow, "restore_backup": safety.Yellow}
	for _, tool := range Catalogue() {
		min, ok := want[tool.Name]
		if !ok {
			min = tool.Tier
		}
		if tool.MinTier != min {
			t.Errorf("%s: MinTier %s, want %s (tier %s)", tool.Name, tool.MinTier, min, tool.Tier)
		}
	}
}
