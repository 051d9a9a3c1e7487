package tools

import (
	"fmt"
	"slices"
	"strings"
)

// A Toolset is a group of tools offered together. Every tool is in exactly
// one. The tool list costs every model context on every turn, so Jarvis offers
// the everyday sets unless told otherwise (JARVIS_TOOLSETS, or a token's own
// toolsets).
type Toolset struct {
	Name        string
	Description string
	// Default sets are offered when nothing else is configured.
	Default bool
	Tools   []string
}

// AllToolsets is the word that enables every toolset.
const AllToolsets = "all"

// Toolsets lists the toolsets in the order they are documented. The defaults
// are what a home-labber does with guests every day and stay within 40 KB of
// tool list (server/catalogue_test.go); the nodes toolset needs SSH set up, so
// it is offered when asked for (the demo offers every toolset).
var Toolsets = []Toolset{
	{Name: "cluster", Default: true, Description: "see the cluster: nodes, guests, storage, backups, tasks, a guest's config",
		Tools: []string{"get_cluster_status", "get_node_status", "get_vms", "get_containers", "get_storage",
			"get_cluster_resources", "get_guest_status", "get_backups", "get_recent_tasks", "get_task_status", "get_task_log", "get_guest_config"}},
	{Name: "power", Default: true, Description: "start, stop, shut down and restart VMs and containers",
		Tools: []string{"start_vm", "stop_vm", "shutdown_vm", "restart_vm",
			"start_container", "stop_container", "shutdown_container", "restart_container"}},
	{Name: "snapshots", Default: true, Description: "list, take, roll back and delete snapshots",
		Tools: []string{"list_snapshots", "create_snapshot", "rollback_snapshot", "delete_snapshot"}},
	{Name: "nodes", Description: "the nodes themselves: commands over SSH, temperatures, services, logs, Wake-on-LAN",
		Tools: []string{"execute_ssh", "get_node_temperature", "get_service_status", "get_node_logs", "restart_service", "wake_node"}},
	{Name: "monitoring", Description: "open alerts, metrics history, guest agent answers, cluster health (HA, replication, updates, certificates)",
		Tools: []string{"list_alerts", "get_metrics_history", "get_guest_agent_info", "get_cluster_health"}},
	{Name: "backups", Description: "run, restore and delete backups",
		Tools: []string{"create_backup", "restore_backup", "delete_backup"}},
	{Name: "provisioning", Description: "storage content, downloads, clones, templates, notes and tags; delete guests Jarvis created",
		Tools: []string{"list_storage_content", "download_to_storage", "clone_guest", "set_guest_notes_tags",
			"convert_to_template", "delete_guest"}},
	{Name: "resources", Description: "change a guest's cores and memory, grow a disk, migrate to another node",
		Tools: []string{"update_guest_resources", "resize_disk", "migrate_guest"}},
}

// toolsetOf names the toolset a tool is in; "" for a tool in none (a test
// refuses that).
func toolsetOf(tool string) string {
	for _, ts := range Toolsets {
		if slices.Contains(ts.Tools, tool) {
			return ts.Name
		}
	}
	return ""
}

// DefaultToolsets are the names of the toolsets offered when none are configured.
func DefaultToolsets() []string {
	var out []string
	for _, ts := range Toolsets {
		if ts.Default {
			out = append(out, ts.Name)
		}
	}
	return out
}

// ParseToolsets reads a comma-separated list of toolset names ("cluster,power",
// "all", "default,backups"). The word "default" stands for the default sets. An
// empty list means the defaults. Unknown names are an error that lists the
// known ones.
func ParseToolsets(list string) ([]string, error) {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, raw := range strings.Split(list, ",") {
		name := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case name == "":
		case name == AllToolsets:
			for _, ts := range Toolsets {
				add(ts.Name)
			}
		case name == "default":
			add(DefaultToolsets()...)
		case toolsetNamed(name) != nil:
			add(name)
		default:
			return nil, fmt.Errorf("unknown toolset %q; the toolsets are %s, or %q for every one, or \"default\"", raw, strings.Join(ToolsetNames(), ", "), AllToolsets)
		}
	}
	if len(out) == 0 {
		return DefaultToolsets(), nil
	}
	// Documented order, so that the tool list does not depend on how the
	// list was written.
	slices.SortFunc(out, func(a, b string) int { return toolsetIndex(a) - toolsetIndex(b) })
	return out, nil
}

// ToolsetNames lists every toolset's name in documented order.
func ToolsetNames() []string {
	out := make([]string, len(Toolsets))
	for i, ts := range Toolsets {
		out[i] = ts.Name
	}
	return out
}

func toolsetNamed(name string) *Toolset {
	for i := range Toolsets {
		if Toolsets[i].Name == name {
			return &Toolsets[i]
		}
	}
	return nil
}

func toolsetIndex(name string) int {
	for i, ts := range Toolsets {
		if ts.Name == name {
			return i
		}
	}
	return len(Toolsets)
}
