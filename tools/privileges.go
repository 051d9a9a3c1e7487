package tools

// Which Proxmox privileges each tool needs, and on which ACL path, so that
// `jarvis doctor` can tell before anyone relies on a tool what would fail with
// the configured API token.
//
// Sources: the "permissions" of each endpoint in the official API schema
// (pve-api-flat.json; privileges_test.go checks every tool against the
// simulator, which enforces them), and for the lists PVE filters without an
// error, PVE's own code: /cluster/resources shows a guest only with VM.Audit on
// it and a storage only with Datastore.Audit (pve-manager API2/Cluster.pm),
// /cluster/tasks shows other users' tasks only with Sys.Audit on /, a task's
// status and log of another user need Sys.Audit on its node, and a storage's
// content shows a backup only with Datastore.Allocate on the storage, or
// Datastore.AllocateSpace on it and VM.Backup on the guest
// (pve-storage Storage.pm, check_volume_access).

import (
	"slices"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// Privilege is one Proxmox privilege a tool needs on an ACL path.
type Privilege struct {
	// Path is the ACL path: "/", or "/nodes/{node}", "/vms/{vmid}",
	// "/storage/{storage}" for every node, guest or storage the tool may touch.
	Path string
	// AnyOf names the privileges of which one suffices (PVE's "any" checks);
	// most have a single one.
	AnyOf []string
	// Unless, when held, makes this privilege unnecessary.
	Unless *Privilege
	// For says, for a person, what needs it.
	For string
}

// Names is the privilege as a person reads it: "VM.Snapshot or VM.Snapshot.Rollback".
func (p Privilege) Names() string { return strings.Join(p.AnyOf, " or ") }

// Base is the path every node, guest or storage of Path hangs under: "/vms"
// for "/vms/{vmid}", "/" for "/".
func (p Privilege) Base() string {
	if i := strings.Index(p.Path, "/{"); i > 0 {
		return p.Path[:i]
	}
	return p.Path
}

func (p Privilege) String() string { return p.Names() + " on " + p.Base() }

func priv(path, forWhat string, anyOf ...string) Privilege {
	return Privilege{Path: path, AnyOf: anyOf, For: forWhat}
}

var (
	seeGuests   = priv("/vms/{vmid}", "to see guests: PVE lists only those with VM.Audit", "VM.Audit")
	readGuest   = priv("/vms/{vmid}", "to read a guest's status, config and snapshots", "VM.Audit")
	seeStorage  = priv("/storage/{storage}", "to see storage: PVE lists only storage with Datastore.Audit", "Datastore.Audit")
	allocate    = priv("/storage/{storage}", "", "Datastore.Allocate")
	backupSpace = Privilege{Path: "/storage/{storage}", AnyOf: []string{"Datastore.AllocateSpace"}, Unless: &allocate,
		For: "PVE shows backups in a storage's content only with it and VM.Backup, or with Datastore.Allocate on the storage"}
	backupGuest = Privilege{Path: "/vms/{vmid}", AnyOf: []string{"VM.Backup"}, Unless: &allocate,
		For: "PVE shows a guest's backups only with it and Datastore.AllocateSpace on the storage, or with Datastore.Allocate there"}
	powerMgmt = priv("/vms/{vmid}", "to start, stop, shut down and reboot guests", "VM.PowerMgmt")
	snapshot  = priv("/vms/{vmid}", "to take and delete snapshots", "VM.Snapshot")
)

// toolAccess is a tool's group (what doctor reports together) and privileges.
type toolAccess struct {
	group string
	privs []Privilege
}

var toolPrivileges = func() map[string]toolAccess {
	m := map[string]toolAccess{
		"get_cluster_status": {"cluster status", []Privilege{priv("/", "to read quorum and members (GET /cluster/status)", "Sys.Audit"), seeGuests}},
		"get_node_status":    {"node status", []Privilege{priv("/nodes/{node}", "to read a node's status", "Sys.Audit")}},
		"get_vms":            {"guest lists", []Privilege{seeGuests}},
		"get_containers":     {"guest lists", []Privilege{seeGuests}},
		"get_guest_status":   {"guest lists", []Privilege{seeGuests, readGuest}},
		"get_storage":        {"storage", []Privilege{seeStorage}},
		"get_cluster_resources": {"cluster resources", []Privilege{seeGuests, seeStorage,
			priv("/nodes/{node}", "to see a node's usage: PVE hides it without Sys.Audit", "Sys.Audit")}},
		"get_backups":      {"backups", []Privilege{seeStorage, backupSpace, backupGuest}},
		"get_recent_tasks": {"tasks", []Privilege{priv("/", "to see every task, not only the token's own (GET /cluster/tasks)", "Sys.Audit")}},
		"get_task_status":  {"tasks", []Privilege{priv("/nodes/{node}", "to read the status and log of tasks the token did not start", "Sys.Audit")}},
		"list_snapshots":   {"snapshots", []Privilege{seeGuests, readGuest}},
		"create_snapshot":  {"snapshots", []Privilege{seeGuests, readGuest, snapshot}},
		"delete_snapshot":  {"snapshots", []Privilege{seeGuests, readGuest, snapshot}},
		"rollback_snapshot": {"snapshots", []Privilege{seeGuests, readGuest,
			priv("/vms/{vmid}", "to roll a guest back to a snapshot", "VM.Snapshot", "VM.Snapshot.Rollback")}},
		// execute_ssh runs over SSH; it asks PVE only where the guests a
		// changing command names live, so that protection applies to them.
		"execute_ssh": {"node commands", []Privilege{priv("/vms/{vmid}",
			"to find the node of a guest a changing command names, for protection: PVE lists only guests with VM.Audit", "VM.Audit")}},
		// SSH only.
		"get_node_temperature": {"node tools over SSH", nil},
		"get_service_status":   {"node tools over SSH", nil},
		"get_node_logs":        {"node tools over SSH", nil},
		"restart_service":      {"node tools over SSH", nil},
		// Wake-on-LAN; it reads /cluster/status only to refuse waking a node
		// that is online, and sends the packet when it cannot.
		"wake_node": {"wake-on-LAN", nil},
		// Jarvis's own alerts and rules: nothing is asked of PVE.
		"list_alerts": {"alerts", nil},
	}
	for _, kind := range []string{"vm", "container"} {
		for _, action := range []string{"start", "stop", "shutdown", "restart"} {
			m[action+"_"+kind] = toolAccess{"power actions", []Privilege{seeGuests, readGuest, powerMgmt}}
		}
	}
	// The weekly operations declare theirs beside the tools.
	for _, ops := range []map[string]toolAccess{opsReadAccess, opsCreateAccess, opsChangeAccess} {
		for name, a := range ops {
			m[name] = a
		}
	}
	return m
}()

// Privileges returns the Proxmox privileges a tool needs; ok is false for a
// name this table does not know. Tools that only use SSH need none.
func Privileges(tool string) (privs []Privilege, ok bool) {
	a, ok := toolPrivileges[tool]
	return slices.Clone(a.privs), ok
}

// PrivilegeGroup names the group doctor reports a tool in ("power actions").
func PrivilegeGroup(tool string) string { return toolPrivileges[tool].group }

// Shortfall is a privilege a tool lacks, and where.
type Shortfall struct {
	Privilege Privilege
	// Missing lists the ACL paths without it: the base ("/vms") when nothing
	// below holds it, else the nodes, guests or storages that lack it.
	Missing []string
	// HeldOnly, when set, lists the only paths that hold it ("/vms/101"): a
	// grant scoped to some guests or storages (a pool, say).
	HeldOnly []string
}

// Partial reports a privilege held on some of its paths but not all, often
// on purpose (a pool, some storages); otherwise the tool fails everywhere.
func (s Shortfall) Partial() bool {
	return len(s.HeldOnly) > 0 || (len(s.Missing) > 0 && s.Missing[0] != s.Privilege.Base())
}

// MissingPrivileges checks what tool needs against the token's effective
// permissions. nodes are the cluster's node names; a node-scoped privilege is
// checked on each of them (on /nodes as a whole when nodes is empty).
func MissingPrivileges(tool string, perms pve.Permissions, nodes []string) []Shortfall {
	var out []Shortfall
	for _, p := range toolPrivileges[tool].privs {
		if p.Unless != nil && shortfall(*p.Unless, perms, nodes) == nil {
			continue
		}
		if s := shortfall(p, perms, nodes); s != nil {
			out = append(out, *s)
		}
	}
	return out
}

func shortfall(p Privilege, perms pve.Permissions, nodes []string) *Shortfall {
	heldAt := func(path string) bool {
		return slices.ContainsFunc(p.AnyOf, func(name string) bool { return perms.Has(path, name) })
	}
	base := p.Base()
	if base == p.Path {
		if heldAt(p.Path) {
			return nil
		}
		return &Shortfall{Privilege: p, Missing: []string{p.Path}}
	}
	if base == "/nodes" && len(nodes) > 0 {
		var missing []string
		for _, n := range nodes {
			if !heldAt("/nodes/" + n) {
				missing = append(missing, "/nodes/"+n)
			}
		}
		switch len(missing) {
		case 0:
			return nil
		case len(nodes):
			return &Shortfall{Privilege: p, Missing: []string{base}}
		}
		return &Shortfall{Privilege: p, Missing: missing}
	}
	// Guests and storages: what reaches every one of them from above, and the
	// ones PVE lists because they have an ACL or a pool of their own.
	everywhere := slices.ContainsFunc(p.AnyOf, func(name string) bool { return perms.Below(base, name) })
	var missing, held []string
	for _, path := range perms.ListedUnder(base) {
		if heldAt(path) {
			held = append(held, path)
		} else {
			missing = append(missing, path)
		}
	}
	switch {
	case everywhere && len(missing) == 0:
		return nil
	case everywhere:
		return &Shortfall{Privilege: p, Missing: missing}
	case len(held) > 0:
		return &Shortfall{Privilege: p, Missing: []string{base}, HeldOnly: held}
	}
	return &Shortfall{Privilege: p, Missing: []string{base}}
}
