package tools

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// snapshotRE is a snapshot name: a letter, then letters, digits, '_' or '-' (2-40).
var snapshotRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{1,39}$`)

// ---- list_snapshots ----

type SnapshotOut struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Parent      string `json:"parent,omitempty"`
	Created     string `json:"created,omitempty" jsonschema:"RFC 3339, UTC"`
	WithRAM     bool   `json:"with_ram" jsonschema:"true when the VM's memory was saved too"`
}

type SnapshotList struct {
	VMID      int64         `json:"vmid"`
	Node      string        `json:"node"`
	Kind      string        `json:"kind"`
	Current   string        `json:"current_parent,omitempty" jsonschema:"the snapshot the live state derives from"`
	Snapshots []SnapshotOut `json:"snapshots"`
}

func listSnapshots() *Tool {
	return define[VMIDInput, SnapshotList](spec{
		name: "list_snapshots", title: "Snapshots", tier: safety.Green,
		description: "Snapshots of one VM or container by VMID: name, description, parent, creation time and whether RAM was saved.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in VMIDInput) (*Call, error) {
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		return read(guestTarget(r), "List snapshots of "+guestNoun(r), func(ctx context.Context) (any, error) {
			snaps, err := env.PVE.Snapshots(ctx, r.Node, r.Type, in.VMID)
			if err != nil {
				return nil, nodeError(ctx, env, r.Node, err)
			}
			return snapshotList(r, snaps), nil
		}), nil
	})
}

func snapshotList(r *pve.Resource, snaps []pve.Snapshot) SnapshotList {
	out := SnapshotList{VMID: int64(r.VMID), Node: r.Node, Kind: r.Type, Snapshots: []SnapshotOut{}}
	for _, s := range snaps {
		if s.Name == "current" {
			out.Current = s.Parent
			continue
		}
		out.Snapshots = append(out.Snapshots, SnapshotOut{Name: s.Name, Description: strings.TrimSpace(s.Description),
			Parent: s.Parent, Created: unixTime(int64(s.SnapTime)), WithRAM: bool(s.VMState)})
	}
	sort.Slice(out.Snapshots, func(i, j int) bool { return out.Snapshots[i].Created < out.Snapshots[j].Created })
	return out
}

// ---- create_snapshot / rollback_snapshot / delete_snapshot ----

type CreateSnapshotInput struct {
	VMID        int    `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	Name        string `json:"name" jsonschema:"snapshot name: a letter, then letters, digits, '_' or '-' (2-40)"`
	Description string `json:"description,omitempty" jsonschema:"free text shown in Proxmox (up to 500 characters)"`
	IncludeRAM  bool   `json:"include_ram,omitempty" jsonschema:"VMs only: also save the running VM's memory"`
}

type SnapshotNameInput struct {
	VMID int    `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	Name string `json:"name" jsonschema:"name of an existing snapshot (see list_snapshots)"`
}

func snapshotNameSchema(s *jsonschema.Schema) {
	p := property(s, "name")
	p.Pattern = snapshotRE.String()
	p.MaxLength = ptr(40)
}

func createSnapshot() *Tool {
	return define[CreateSnapshotInput, TaskResult](spec{
		name: "create_snapshot", title: "Create snapshot", tier: safety.Yellow,
		description: "Take a snapshot of a VM or container by VMID, optionally with the VM's RAM. Low risk and reversible (delete it later); rate-limited and audited.",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			snapshotNameSchema(s)
			property(s, "description").MaxLength = ptr(500)
		},
	}, func(ctx context.Context, env *Env, in CreateSnapshotInput) (*Call, error) {
		if !snapshotRE.MatchString(in.Name) {
			return nil, inputErrorf("snapshot name %q: start with a letter, then letters, digits, '_' or '-' (2-40 characters)", in.Name)
		}
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		noun := guestNoun(r)
		if in.IncludeRAM && r.Type != "qemu" {
			return nil, inputErrorf("%s is a container; include_ram applies to VMs only", noun)
		}
		snaps, err := env.PVE.Snapshots(ctx, r.Node, r.Type, in.VMID)
		if err != nil {
			return nil, nodeError(ctx, env, r.Node, err)
		}
		for _, s := range snaps {
			if s.Name == in.Name {
				return nil, inputErrorf("%s already has a snapshot named %q; choose another name", noun, in.Name)
			}
		}
		effect := fmt.Sprintf("Create snapshot '%s' of %s on node %s", in.Name, noun, r.Node)
		if in.IncludeRAM {
			effect += ", including its RAM"
		}
		return &Call{Target: guestTarget(r), Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
			w := guestWrite{what: fmt.Sprintf("snapshot '%s' of %s", in.Name, noun), node: r.Node, vmid: in.VMID}
			upid, err := env.PVE.CreateSnapshot(ctx, r.Node, r.Type, in.VMID, in.Name, in.Description, in.IncludeRAM)
			if err != nil {
				return nil, w.sendError(err)
			}
			return finishTask(ctx, env, upid, "snapshot", r.Type, progress, w)
		}}, nil
	})
}

func rollbackSnapshot() *Tool {
	return snapshotChange("rollback_snapshot", "Roll back to snapshot", "rollback",
		"Roll a VM or container back to a snapshot by VMID and name. Everything since the snapshot is LOST. Needs a person's approval.",
		func(name, noun, node string) string {
			return fmt.Sprintf("Roll %s on node %s back to snapshot '%s'; every change made since that snapshot is lost", noun, node, name)
		})
}

func deleteSnapshot() *Tool {
	return snapshotChange("delete_snapshot", "Delete snapshot", "delsnapshot",
		"Delete one snapshot of a VM or container by VMID and name; it cannot be restored afterwards. Needs a person's approval.",
		func(name, noun, node string) string {
			return fmt.Sprintf("Delete snapshot '%s' of %s on node %s; it cannot be recovered", name, noun, node)
		})
}

func snapshotChange(name, title, action, description string, effect func(name, noun, node string) string) *Tool {
	return define[SnapshotNameInput, TaskResult](spec{
		name: name, title: title, tier: safety.Red, description: description,
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			snapshotNameSchema(s)
		},
	}, func(ctx context.Context, env *Env, in SnapshotNameInput) (*Call, error) {
		if !snapshotRE.MatchString(in.Name) {
			return nil, inputErrorf("snapshot name %q is not valid (see list_snapshots)", in.Name)
		}
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		noun := guestNoun(r)
		snaps, err := env.PVE.Snapshots(ctx, r.Node, r.Type, in.VMID)
		if err != nil {
			return nil, nodeError(ctx, env, r.Node, err)
		}
		found := false
		for _, s := range snaps {
			found = found || (s.Name == in.Name && s.Name != "current")
		}
		if !found {
			return nil, inputErrorf("%s has no snapshot named %q (see list_snapshots)", noun, in.Name)
		}
		return &Call{Target: guestTarget(r), Effect: effect(in.Name, noun, r.Node), Run: func(ctx context.Context, progress Progress) (any, error) {
			var upid string
			var err error
			w := guestWrite{what: fmt.Sprintf("rollback of %s to snapshot '%s'", noun, in.Name), node: r.Node, vmid: in.VMID}
			if action == "rollback" {
				upid, err = env.PVE.RollbackSnapshot(ctx, r.Node, r.Type, in.VMID, in.Name)
			} else {
				w.what = fmt.Sprintf("deletion of snapshot '%s' of %s", in.Name, noun)
				upid, err = env.PVE.DeleteSnapshot(ctx, r.Node, r.Type, in.VMID, in.Name)
			}
			if err != nil {
				return nil, w.sendError(err)
			}
			return finishTask(ctx, env, upid, action, r.Type, progress, w)
		}}, nil
	})
}

// finishTask waits for a snapshot task and gives its outcome (see waitForTask).
func finishTask(ctx context.Context, env *Env, upid, action, kind string, progress Progress, w guestWrite) (any, error) {
	res, err := waitForTask(ctx, env, upid, 120*time.Second, progress, w)
	if err != nil {
		return nil, err
	}
	res.Node, res.VMID, res.Kind, res.Action = w.node, int64(w.vmid), kind, action
	return res, nil
}
