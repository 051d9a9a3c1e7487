package tools

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// backupCopy is a backup volume found on its storage, and a node that reads it
// (restore_backup, delete_backup).
type backupCopy struct {
	item pve.StorageItem
	node string
	// shared: every node with the storage reads it; otherwise the storage
	// is each node's own and the backup lies on node alone.
	shared bool
}

// findBackupCopy finds backup volid on storage sid. storages are the cluster's
// storage entries (one per node that has it); online says which nodes are.
// Shared storage is read on one node (node, when given); storage each node has
// its own is read on every node that has it, and node, when given, picks the
// copy on it. verb names what the caller does with it ("restore", "delete").
func findBackupCopy(ctx context.Context, env *Env, storages []pve.Resource, online func(node string) bool, sid, volid, node, verb string) (*backupCopy, error) {
	var nodes []string
	known, shared := false, false
	for _, s := range storages {
		if s.Type != "storage" || s.Storage != sid {
			continue
		}
		known = true
		shared = shared || bool(s.Shared)
		if online(s.Node) && s.Status == "available" {
			nodes = append(nodes, s.Node)
		}
	}
	sort.Strings(nodes)
	switch {
	case !known:
		return nil, inputErrorf("there is no storage %q in this cluster (see get_storage)", sid)
	case len(nodes) == 0:
		return nil, inputErrorf("no online node reaches storage %s now", sid)
	case shared && node != "":
		if !slices.Contains(nodes, node) {
			return nil, inputErrorf("storage %s is not available on an online node %s (it is on: %s)", sid, node, strings.Join(nodes, ", "))
		}
		nodes = []string{node}
	case shared:
		nodes = nodes[:1]
	}
	var found []*backupCopy
	for _, n := range nodes {
		items, err := env.PVE.StorageContent(ctx, n, sid, "backup")
		if err != nil {
			return nil, nodeError(ctx, env, n, err)
		}
		for _, it := range items {
			if it.VolID == volid {
				found = append(found, &backupCopy{item: it, node: n, shared: shared})
			}
		}
	}
	switch {
	case len(found) == 0:
		return nil, inputErrorf("there is no backup %s on storage %s (see get_backups)", volid, sid)
	case shared || (len(found) == 1 && node == ""):
		return found[0], nil
	}
	var on []string
	for _, f := range found {
		if f.node == node {
			return f, nil
		}
		on = append(on, f.node)
	}
	if node != "" {
		return nil, inputErrorf("backup %s is not on node %s; it is on nodes %s (storage %s is each node's own): %s it on one of those", volid, node, strings.Join(on, ", "), sid, verb)
	}
	return nil, inputErrorf("backup %s is on nodes %s (storage %s is each node's own); say which with node", volid, strings.Join(on, ", "), sid)
}
