package tools

import (
	"slices"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

func TestStorageList(t *testing.T) {
	row := func(storage, node string, shared bool, status string, used int64) pve.Resource {
		r := pve.Resource{Type: "storage", Storage: storage, Node: node, Shared: pve.Bool(shared), Status: status, PluginType: "dir"}
		if status == "available" {
			r.Disk, r.MaxDisk = pve.Int(used), 100
		}
		return r
	}
	rows := []pve.Resource{
		row("local", "pve", false, "available", 10),
		row("nfs", "pve", true, "unknown", 0), // first seen where it is unreachable
		row("local", "home", false, "available", 20),
		row("nfs", "home", true, "available", 60),
		row("nfs", "agent", true, "available", 60),
		row("local", "agent", false, "unknown", 0),
	}
	type entry struct {
		storage, node      string
		nodes, unavailable []string
		status             string
		usedPercent        float64
	}
	for _, c := range []struct {
		node string
		want []entry
	}{
		{"", []entry{
			{"nfs", "", []string{"agent", "home"}, []string{"pve"}, "available", 60},
			{"local", "agent", nil, nil, "unknown", 0},
			{"local", "home", nil, nil, "available", 20},
			{"local", "pve", nil, nil, "available", 10},
		}},
		// Asked about pve, the shared storage has the status pve sees.
		{"pve", []entry{
			{"nfs", "", []string{"agent", "home"}, []string{"pve"}, "unknown", 60},
			{"local", "pve", nil, nil, "available", 10},
		}},
		{"home", []entry{
			{"nfs", "", []string{"agent", "home"}, []string{"pve"}, "available", 60},
			{"local", "home", nil, nil, "available", 20},
		}},
	} {
		got := storageList(rows, c.node).Storages
		if len(got) != len(c.want) {
			t.Fatalf("node %q: %d entries, want %d: %+v", c.node, len(got), len(c.want), got)
		}
		for i, w := range c.want {
			g := got[i]
			if g.Storage != w.storage || g.Node != w.node || !slices.Equal(g.Nodes, w.nodes) || !slices.Equal(g.UnavailableOn, w.unavailable) ||
				g.Status != w.status || g.Usage.UsedPercent != w.usedPercent || g.Shared != (w.node == "") {
				t.Errorf("node %q entry %d = %+v, want %+v", c.node, i, g, w)
			}
		}
	}
}

func TestGuestCounts(t *testing.T) {
	var c GuestCounts
	for _, r := range []pve.Resource{
		{Status: "running"}, {Status: "running"}, {Status: "stopped"}, {Status: "paused"},
		{Status: "unknown"}, {Status: "stopped", Template: true},
	} {
		c.add(r)
	}
	if want := (GuestCounts{Total: 5, Running: 2, Stopped: 1, Other: 2, Templates: 1}); c != want {
		t.Errorf("counts = %+v, want %+v", c, want)
	}
}
