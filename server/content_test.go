package server

// What the tools say on the demo cluster, read as a model reads it: no number
// that means "unknown" shown as 0, no promise a resource or prompt cannot keep,
// no list that repeats itself or has no end, no raw PVE error for a typo.

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
)

// rawOf is a result's structured content as a JSON object, to see which
// fields are there at all.
func rawOf(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool failed: %s", textOf(res))
	}
	b, _ := json.Marshal(res.StructuredContent)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// PVE reports 0 B used for every VM (it does not look inside the guest) and
// for stopped containers: that is "unknown", never "empty".
func TestGuestDiskUseIsUnknownRatherThanZero(t *testing.T) {
	h := newHarness(t)
	type disk struct {
		Known bool   `json:"used_known"`
		Used  string `json:"used"`
		Total int64  `json:"total_bytes"`
		UsedB *int64 `json:"used_bytes"`
	}
	type guest struct {
		VMID   int64  `json:"vmid"`
		Kind   string `json:"kind"`
		Type   string `json:"type"`
		Status string `json:"status"`
		Disk   disk   `json:"disk"`
	}
	check := func(t *testing.T, g guest) {
		t.Helper()
		kind := g.Kind + g.Type
		wantKnown := kind == "lxc" && g.Status == "running" || kind == "node" || kind == "storage"
		if g.Disk.Known != wantKnown {
			t.Errorf("%s %d (%s): used_known %t, want %t: %+v", kind, g.VMID, g.Status, g.Disk.Known, wantKnown, g.Disk)
		}
		if !wantKnown && (g.Disk.UsedB != nil || !strings.HasPrefix(g.Disk.Used, "unknown")) {
			t.Errorf("%s %d: disk use PVE does not know is shown as %q (%v bytes)", kind, g.VMID, g.Disk.Used, g.Disk.UsedB)
		}
		if wantKnown && (g.Disk.UsedB == nil || *g.Disk.UsedB <= 0) {
			t.Errorf("%s %d: known disk use missing: %+v", kind, g.VMID, g.Disk)
		}
		if g.Disk.Total <= 0 {
			t.Errorf("%s %d: the disk's size is always known: %+v", kind, g.VMID, g.Disk)
		}
	}
	for _, tool := range []string{"get_vms", "get_containers"} {
		t.Run(tool, func(t *testing.T) {
			l := structured[struct{ Guests []guest }](t, h.call(agentRed, tool, nil))
			if len(l.Guests) < 4 {
				t.Fatalf("%d guests", len(l.Guests))
			}
			for _, g := range l.Guests {
				check(t, g)
			}
		})
	}
	t.Run("get_guest_status", func(t *testing.T) {
		for _, vmid := range []int{101, 104, 200, 203} {
			check(t, structured[guest](t, h.call(agentRed, "get_guest_status", map[string]any{"vmid": vmid})))
		}
		if msg := structured[guest](t, h.call(agentRed, "get_guest_status", map[string]any{"vmid": 101})).Disk.Used; !strings.Contains(msg, "VM") {
			t.Errorf("the reason should say it is a VM's disk PVE cannot see into: %q", msg)
		}
	})
	t.Run("get_cluster_resources", func(t *testing.T) {
		l := structured[struct{ Resources []guest }](t, h.call(agentRed, "get_cluster_resources", nil))
		for _, r := range l.Resources {
			if r.Type != "sdn" {
				check(t, r)
			}
		}
	})
}

// Every tool a prompt names exists, every field it asks about is in that tool's
// output, and every argument it suggests is valid input for that tool.
func TestPromptsAskOnlyForWhatToolsReturn(t *testing.T) {
	h := newHarness(t)
	byName := map[string]*tools.Tool{}
	for _, tl := range h.srv.AllTools() {
		byName[tl.Name] = tl
	}
	if len(healthCheckSteps) < 5 {
		t.Fatalf("the health check has %d steps", len(healthCheckSteps))
	}
	for _, st := range healthCheckSteps {
		tl, ok := byName[st.tool]
		if !ok {
			t.Errorf("the prompt names %s, which is no tool", st.tool)
			continue
		}
		if st.tool != "" && tl.MinTier != safety.Green {
			t.Errorf("the health check reads only, but %s is %s", st.tool, tl.MinTier)
		}
		for _, f := range st.fields {
			if !hasField(tl.OutputSchema, strings.Split(f, ".")) {
				t.Errorf("the prompt asks about %s.%s, which the tool does not return", st.tool, f)
			}
		}
		if st.args != nil {
			raw, _ := json.Marshal(st.args)
			args, err := tools.ParseArgs(raw)
			if err == nil {
				_, err = tl.Decode(args)
			}
			if err != nil {
				t.Errorf("the prompt calls %s with %s: %v", st.tool, raw, err)
			}
		}
	}
	// What no tool returns yet must not be asked for (issue 13 adds a guest's
	// configuration; then onboot may come back into the prompt).
	text := promptText(t, h)
	for field, words := range map[string][]string{"onboot": {"boot"}, "ha_group": {"HA group"}, "replication": {"replicat"}} {
		if anyToolReturns(byName, field) {
			continue
		}
		for _, w := range words {
			if strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
				t.Errorf("the prompt asks about %q, but no tool returns %s:\n%s", w, field, text)
			}
		}
	}
	// Every snake_case word in the text is a tool, or a field or argument of one.
	for _, w := range regexp.MustCompile(`\b[a-z]+(?:_[a-z]+)+(?:\.[a-z_]+)*\b`).FindAllString(text, -1) {
		if _, ok := byName[w]; ok {
			continue
		}
		if !anyToolReturns(byName, w) && !anyToolTakes(byName, w) {
			t.Errorf("the prompt names %q, which is no tool, field or argument", w)
		}
	}
}

func promptText(t *testing.T, h *harness) string {
	t.Helper()
	p, err := h.connect(operator, nil).GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "cluster_health_check"})
	if err != nil || len(p.Messages) != 1 {
		t.Fatalf("prompt: %v %+v", err, p)
	}
	return p.Messages[0].Content.(*mcp.TextContent).Text
}

// hasField reports whether a dotted path names a property of an object
// schema, looking through arrays and anyOf.
func hasField(s *jsonschema.Schema, path []string) bool {
	if s == nil {
		return false
	}
	if len(path) == 0 {
		return true
	}
	if s.Items != nil {
		return hasField(s.Items, path)
	}
	for _, alt := range s.AnyOf {
		if hasField(alt, path) {
			return true
		}
	}
	p, ok := s.Properties[path[0]]
	return ok && hasField(p, path[1:])
}

func anyToolReturns(byName map[string]*tools.Tool, path string) bool {
	for _, tl := range byName {
		if hasFieldAnywhere(tl.OutputSchema, strings.Split(path, ".")) {
			return true
		}
	}
	return false
}

// hasFieldAnywhere is hasField starting at any depth.
func hasFieldAnywhere(s *jsonschema.Schema, path []string) bool {
	if s == nil {
		return false
	}
	if hasField(s, path) {
		return true
	}
	if hasFieldAnywhere(s.Items, path) {
		return true
	}
	for _, p := range s.Properties {
		if hasFieldAnywhere(p, path) {
			return true
		}
	}
	return false
}

func anyToolTakes(byName map[string]*tools.Tool, name string) bool {
	for _, tl := range byName {
		if _, ok := tl.InputSchema.Properties[name]; ok {
			return true
		}
	}
	return false
}

// The cluster summary resource delivers what its description promises: quorum,
// nodes online and guest counts by state, live.
func TestClusterSummaryResourceHasGuestCounts(t *testing.T) {
	h := newHarness(t)
	cs := h.connect(agentRed, nil)
	type counts struct {
		Total, Running, Stopped, Templates int
	}
	read := func() (out struct {
		Quorate     bool   `json:"quorate"`
		NodesOnline int    `json:"nodes_online"`
		VMs         counts `json:"vms"`
		Containers  counts `json:"containers"`
	}) {
		t.Helper()
		res, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "jarvis://cluster/summary"})
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(res.Contents[0].Text), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := read()
	// The demo: VMs 100-106 (104 and 106 stopped) and the template 9000;
	// containers 200-204 (203 and 204 stopped).
	if !got.Quorate || got.NodesOnline != 4 ||
		got.VMs != (counts{Total: 7, Running: 5, Stopped: 2, Templates: 1}) ||
		got.Containers != (counts{Total: 5, Running: 3, Stopped: 2}) {
		t.Fatalf("cluster summary = %+v", got)
	}
	if err := h.sim.SetGuestStatus(101, "stopped"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got.VMs.Running != 4 || got.VMs.Stopped != 3 {
		t.Fatalf("after stopping 101: %+v", got.VMs)
	}
	list, err := cs.ListResources(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Resources {
		if r.URI == "jarvis://cluster/summary" && !strings.Contains(r.Description, "running") {
			t.Errorf("the description should say which counts it gives: %q", r.Description)
		}
	}
}

// Shared storage is one storage however many nodes see it; local storage is
// one per node.
func TestStorageListsSharedStorageOnce(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		name      string
		args      map[string]any
		wantLocal int // rows of "local", one per node
	}{
		{"all nodes", nil, 4},
		{"one node", map[string]any{"node": "pve"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := structured[tools.StorageList](t, h.call(agentRed, "get_storage", c.args))
			var nfs []tools.StorageOut
			local := 0
			for _, s := range l.Storages {
				switch s.Storage {
				case "nfs-backup":
					nfs = append(nfs, s)
				case "local":
					local++
					if s.Node == "" || s.Shared || len(s.Nodes) > 0 {
						t.Errorf("node-local storage: %+v", s)
					}
					if c.args != nil && s.Node != "pve" {
						t.Errorf("filter leaked %+v", s)
					}
				}
			}
			if len(nfs) != 1 {
				t.Fatalf("shared nfs-backup listed %d times", len(nfs))
			}
			if s := nfs[0]; !s.Shared || s.Node != "" || !slices.Equal(s.Nodes, []string{"agent", "agent1", "home", "pve"}) || s.Usage.TotalBytes == 0 {
				t.Errorf("shared storage should name the nodes that see it: %+v", s)
			}
			if local != c.wantLocal {
				t.Errorf("local listed %d times, want %d", local, c.wantLocal)
			}
		})
	}
	// A node that cannot reach a shared storage is named.
	h.sim.SetNodeOffline("agent", true)
	l := structured[tools.StorageList](t, h.call(agentRed, "get_storage", nil))
	for _, s := range l.Storages {
		if s.Storage == "nfs-backup" && (!slices.Equal(s.Nodes, []string{"agent1", "home", "pve"}) || !slices.Equal(s.UnavailableOn, []string{"agent"})) {
			t.Errorf("with agent offline: %+v", s)
		}
	}
}

// get_backups returns the newest ones up to a limit and says how many it left out.
func TestBackupsHaveALimit(t *testing.T) {
	h := newHarness(t)
	all := structured[tools.BackupList](t, h.call(agentRed, "get_backups", nil))
	// The demo: 12 guests (the template is not backed up), three nights.
	if all.Count != 36 || all.Total != 36 || all.LeftOut != 0 {
		t.Fatalf("all backups: count %d, total %d, left out %d", all.Count, all.Total, all.LeftOut)
	}
	some := structured[tools.BackupList](t, h.call(agentRed, "get_backups", map[string]any{"limit": 5}))
	if some.Count != 5 || len(some.Backups) != 5 || some.Total != 36 || some.LeftOut != 31 || !strings.Contains(some.Note, "limit") {
		t.Fatalf("limit 5: count %d, total %d, left out %d, note %q", some.Count, some.Total, some.LeftOut, some.Note)
	}
	for i, b := range some.Backups {
		if b != all.Backups[i] {
			t.Errorf("backup %d is not the %d. newest: %+v", i, i+1, b)
		}
	}
	for _, bad := range []int{0, 501} {
		if res := h.call(agentRed, "get_backups", map[string]any{"limit": bad}); !res.IsError || !strings.Contains(textOf(res), "limit") {
			t.Errorf("limit %d: %s", bad, textOf(res))
		}
	}
}

// A node name that is no member of the cluster gets an answer naming the
// members, not PVE's 500 about a hostname lookup.
func TestUnknownNodeNamesTheNodes(t *testing.T) {
	h := newHarness(t)
	const want = `no node "nas" in this cluster; nodes are: agent, agent1, home, pve`
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"get_node_status", map[string]any{"node": "nas"}},
		{"get_vms", map[string]any{"node": "nas"}},
		{"get_containers", map[string]any{"node": "nas"}},
		{"get_storage", map[string]any{"node": "nas"}},
		{"get_backups", map[string]any{"node": "nas"}},
		{"get_recent_tasks", map[string]any{"node": "nas"}},
		// A task id names its node; PVE's own answer is mapped.
		{"get_task_status", map[string]any{"upid": "UPID:nas:0002F1A0:0A1B2C3D:67000000:qmstart:101:root@pam:"}},
	} {
		t.Run(c.tool, func(t *testing.T) {
			res := h.call(agentRed, c.tool, c.args)
			if !res.IsError || !strings.Contains(textOf(res), want) {
				t.Errorf("%s %v: %s", c.tool, c.args, textOf(res))
			}
			if strings.Contains(textOf(res), "hostname lookup") || strings.Contains(textOf(res), "500") {
				t.Errorf("%s passes PVE's raw answer on: %s", c.tool, textOf(res))
			}
		})
	}
	if _, err := h.connect(agentRed, nil).ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "jarvis://nodes/nas/status"}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("node status resource: %v", err)
	}
}
