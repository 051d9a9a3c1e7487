package tools

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHumanBytes(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{64 << 30, "64.0 GiB"}, {3725 << 30, "3.6 TiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := humanBytes(c.in); got != c.want {
			t.Errorf("humanBytes(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0s"}, {-5, "0s"}, {59, "59s"}, {61, "1m 1s"}, {3600, "1h 0m"}, {86400*3 + 3600*4 + 60*5, "3d 4h 5m"},
	} {
		if got := humanDuration(c.in); got != c.want {
			t.Errorf("humanDuration(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUsage(t *testing.T) {
	u := usage(512<<20, 2<<30)
	if u.UsedPercent != 25 || u.Used != "512.0 MiB" || u.Total != "2.0 GiB" {
		t.Errorf("usage = %+v", u)
	}
	if z := usage(5, 0); z.UsedPercent != 0 {
		t.Errorf("usage of nothing = %+v", z)
	}
}

// Percentages round to one decimal (25.36 → 25.4, not truncated to 25.3), the
// same whether a tool or the cluster watcher computes them.
func TestPercentRounds(t *testing.T) {
	for _, c := range []struct {
		part, whole int64
		want        float64
	}{{2536, 10000, 25.4}, {2534, 10000, 25.3}, {1, 3, 33.3}, {2, 3, 66.7}, {5, 0, 0}, {5, -1, 0}} {
		if got := Percent(c.part, c.whole); got != c.want {
			t.Errorf("Percent(%d, %d) = %v, want %v", c.part, c.whole, got, c.want)
		}
		if got := usage(c.part, c.whole).UsedPercent; got != c.want {
			t.Errorf("usage(%d, %d).UsedPercent = %v, want %v", c.part, c.whole, got, c.want)
		}
	}
	for _, c := range []struct{ in, want float64 }{{0.2536, 25.4}, {0.2534, 25.3}, {0.99999, 100}, {0, 0}} {
		if got := CPUPercent(c.in); got != c.want {
			t.Errorf("CPUPercent(%v) = %v, want %v", c.in, got, c.want)
		}
		if got := CPUPercent(c.in); got != round1(c.in*100) {
			t.Errorf("CPUPercent(%v) = %v, the tools say %v", c.in, got, round1(c.in*100))
		}
	}
}

func TestArgumentRules(t *testing.T) {
	for _, c := range []struct {
		node string
		ok   bool
	}{{"pve", true}, {"agent1", true}, {"pve-2", true}, {"", false}, {"a b", false}, {"pve;reboot", false}, {strings.Repeat("a", 64), false}} {
		if err := checkNode(c.node); (err == nil) != c.ok {
			t.Errorf("checkNode(%q) = %v", c.node, err)
		}
	}
	for _, c := range []struct {
		vmid int
		ok   bool
	}{{100, true}, {999999999, true}, {99, false}, {1000000000, false}, {-1, false}} {
		if err := checkVMID(c.vmid); (err == nil) != c.ok {
			t.Errorf("checkVMID(%d) = %v", c.vmid, err)
		}
	}
	for _, c := range []struct {
		unit string
		ok   bool
	}{{"pveproxy", true}, {"pveproxy.service", true}, {"getty@tty1.service", true}, {"-H", false}, {"a b", false}, {"x;y", false}, {"$(id)", false}} {
		if unitRE.MatchString(c.unit) != c.ok {
			t.Errorf("unit %q accepted=%t", c.unit, !c.ok)
		}
	}
	for _, c := range []struct {
		since string
		ok    bool
	}{{"1 hour ago", true}, {"2 days ago", true}, {"today", true}, {"2026-11-26 08:00:00", true}, {"yesterday; reboot", false}, {"-1h", false}} {
		if sinceRE.MatchString(c.since) != c.ok {
			t.Errorf("since %q accepted=%t", c.since, !c.ok)
		}
	}
}

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
