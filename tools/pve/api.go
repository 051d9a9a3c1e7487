package pve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// Ping checks that some endpoint answers and accepts the token (GET /version),
// always upstream: a cached answer would hide an outage from health checks.
func (c *Client) Ping(ctx context.Context) error {
	var v map[string]any
	return c.do(WithFresh(ctx), http.MethodGet, "/version", nil, &v)
}

// ClusterStatus lists the cluster entry and one entry per member node.
func (c *Client) ClusterStatus(ctx context.Context) ([]ClusterStatusEntry, error) {
	var out []ClusterStatusEntry
	return out, c.do(ctx, http.MethodGet, "/cluster/status", nil, list(&out))
}

// ClusterResources lists resources cluster-wide; typ is "vm", "storage",
// "node", "sdn" or "" for all (PVE rejects "qemu"/"lxc": filter on Type).
func (c *Client) ClusterResources(ctx context.Context, typ string) ([]Resource, error) {
	var params url.Values
	if typ != "" {
		params = url.Values{"type": {typ}}
	}
	var out []Resource
	return out, c.do(ctx, http.MethodGet, "/cluster/resources", params, list(&out))
}

// Nodes lists the cluster's nodes with their status.
func (c *Client) Nodes(ctx context.Context) ([]NodeEntry, error) {
	var out []NodeEntry
	return out, c.do(ctx, http.MethodGet, "/nodes", nil, list(&out))
}

// NodeStatus reads one node's CPU, memory, root fs, load and versions.
func (c *Client) NodeStatus(ctx context.Context, node string) (*NodeStatus, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	var out NodeStatus
	if err := c.do(ctx, http.MethodGet, apiPath("nodes", node, "status"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// NodeStorage lists the storages a node can use, with usage.
func (c *Client) NodeStorage(ctx context.Context, node string) ([]StorageEntry, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	var out []StorageEntry
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "storage"), nil, list(&out))
}

// StorageContent lists volumes on a storage; content ("backup", "images",
// "iso", …) filters, "" lists everything.
func (c *Client) StorageContent(ctx context.Context, node, storage, content string) ([]StorageItem, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if storage == "" {
		return nil, errors.New("pve: storage name is empty")
	}
	var params url.Values
	if content != "" {
		params = url.Values{"content": {content}}
	}
	var out []StorageItem
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "storage", storage, "content"), params, list(&out))
}

// GuestStatus reads the live status of a VM (kind "qemu") or container ("lxc").
func (c *Client) GuestStatus(ctx context.Context, node, kind string, vmid int) (*GuestStatus, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return nil, err
	}
	var out GuestStatus
	if err := c.do(ctx, http.MethodGet, apiPath("nodes", node, kind, strconv.Itoa(vmid), "status", "current"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GuestConfig reads a guest's current configuration as PVE returns it.
func (c *Client) GuestConfig(ctx context.Context, node, kind string, vmid int) (map[string]any, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return nil, err
	}
	var out map[string]any
	if err := c.do(ctx, http.MethodGet, apiPath("nodes", node, kind, strconv.Itoa(vmid), "config"), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Snapshots lists a guest's snapshots plus the "current" pseudo-snapshot.
func (c *Client) Snapshots(ctx context.Context, node, kind string, vmid int) ([]Snapshot, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return nil, err
	}
	var out []Snapshot
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, kind, strconv.Itoa(vmid), "snapshot"), nil, list(&out))
}

// FindGuest locates a guest by VMID cluster-wide; Type tells qemu from lxc and
// Node where it lives. A missing guest gives an error wrapping ErrGuestNotFound.
func (c *Client) FindGuest(ctx context.Context, vmid int) (*Resource, error) {
	resources, err := c.ClusterResources(ctx, "vm")
	if err != nil {
		return nil, err
	}
	for i := range resources {
		r := resources[i]
		if int(r.VMID) == vmid && (r.Type == "qemu" || r.Type == "lxc") {
			return &r, nil
		}
	}
	return nil, fmt.Errorf("pve: VMID %d: %w", vmid, ErrGuestNotFound)
}

// guestActions are the power actions both qemu and lxc accept.
var guestActions = map[string]bool{"start": true, "stop": true, "shutdown": true, "reboot": true}

// GuestAction starts, stops, shuts down or reboots a guest and returns the
// task's UPID; params carries optional PVE parameters (timeout, forceStop, …).
func (c *Client) GuestAction(ctx context.Context, node, kind string, vmid int, action string, params url.Values) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if !guestActions[action] {
		return "", fmt.Errorf("pve: unsupported guest action %q (want start, stop, shutdown or reboot)", action)
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, kind, strconv.Itoa(vmid), "status", action), params)
}

// CreateSnapshot snapshots a guest; vmstate (qemu only) also saves RAM.
func (c *Client) CreateSnapshot(ctx context.Context, node, kind string, vmid int, name, description string, vmstate bool) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if name == "" {
		return "", errors.New("pve: snapshot name is empty")
	}
	if vmstate && kind != "qemu" {
		return "", errors.New("pve: only VMs (qemu) can save RAM state in a snapshot")
	}
	params := url.Values{"snapname": {name}}
	if description != "" {
		params.Set("description", description)
	}
	if vmstate {
		params.Set("vmstate", "1")
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, kind, strconv.Itoa(vmid), "snapshot"), params)
}

// RollbackSnapshot returns a guest to a snapshot (the current state is lost).
func (c *Client) RollbackSnapshot(ctx context.Context, node, kind string, vmid int, name string) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if name == "" {
		return "", errors.New("pve: snapshot name is empty")
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, kind, strconv.Itoa(vmid), "snapshot", name, "rollback"), nil)
}

// DeleteSnapshot removes a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, node, kind string, vmid int, name string) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if name == "" {
		return "", errors.New("pve: snapshot name is empty")
	}
	return c.postTask(ctx, http.MethodDelete, apiPath("nodes", node, kind, strconv.Itoa(vmid), "snapshot", name), nil)
}

// postTask sends a write that starts a worker and returns its UPID.
func (c *Client) postTask(ctx context.Context, method, path string, params url.Values) (string, error) {
	var upid string
	if err := c.do(ctx, method, path, params, &upid); err != nil {
		return "", err
	}
	id, err := ParseUPID(upid)
	if err != nil {
		return "", &DecodeError{Method: method, Path: path, Err: fmt.Errorf("expected a task id: %w", err)}
	}
	c.noteTaskStarted(id.Node, upid)
	return upid, nil
}

func checkNode(node string) error {
	if node == "" {
		return errors.New("pve: node name is empty")
	}
	return nil
}

func checkGuest(node, kind string, vmid int) error {
	if err := checkNode(node); err != nil {
		return err
	}
	if kind != "qemu" && kind != "lxc" {
		return fmt.Errorf("pve: guest kind %q is neither qemu nor lxc", kind)
	}
	if !pveid.ValidVMID(vmid) {
		return fmt.Errorf("pve: VMID %d is outside %d..%d", vmid, pveid.MinVMID, pveid.MaxVMID)
	}
	return nil
}
