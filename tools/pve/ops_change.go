package pve

// The client calls behind the tools that change or remove what exists: a
// guest's cores and memory, a disk's size, the node a guest runs on, a backup,
// a guest turned template, a guest deleted.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// GuestResources is a change of a guest's cores, memory and start at boot;
// a nil field is left as it is.
type GuestResources struct {
	Cores      *int
	MemoryMiB  *int64
	BalloonMiB *int64 // VMs (qemu) only; 0 turns ballooning off
	OnBoot     *bool
	// Digest is the config digest the change was decided on: PVE refuses
	// the change when the config has changed since.
	Digest string
}

// ChangeGuestResources writes a resource change to a guest's config
// (PUT /nodes/{node}/{kind}/{vmid}/config, synchronous: PVE answers when it
// is written, with no task). A VM's change that cannot be hot-plugged is kept
// pending until the VM restarts.
func (c *Client) ChangeGuestResources(ctx context.Context, node, kind string, vmid int, ch GuestResources) error {
	if err := checkGuest(node, kind, vmid); err != nil {
		return err
	}
	params := url.Values{}
	if ch.Cores != nil {
		params.Set("cores", strconv.Itoa(*ch.Cores))
	}
	if ch.MemoryMiB != nil {
		params.Set("memory", strconv.FormatInt(*ch.MemoryMiB, 10))
	}
	if ch.BalloonMiB != nil {
		if kind != "qemu" {
			return errors.New("pve: only VMs (qemu) have a balloon device")
		}
		params.Set("balloon", strconv.FormatInt(*ch.BalloonMiB, 10))
	}
	if ch.OnBoot != nil {
		params.Set("onboot", map[bool]string{false: "0", true: "1"}[*ch.OnBoot])
	}
	if len(params) == 0 {
		return errors.New("pve: no resource to change")
	}
	if ch.Digest != "" {
		params.Set("digest", ch.Digest)
	}
	return c.do(ctx, http.MethodPut, apiPath("nodes", node, kind, strconv.Itoa(vmid), "config"), params, nil)
}

// ResizeGuestDisk grows one disk of a guest (PUT /nodes/{node}/{kind}/{vmid}/resize)
// and returns the task's UPID. size is PVE's: "80G" sets it, "+16G" adds; PVE
// refuses to shrink. digest, when set, makes PVE refuse a changed config.
func (c *Client) ResizeGuestDisk(ctx context.Context, node, kind string, vmid int, disk, size, digest string) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if disk == "" || size == "" {
		return "", errors.New("pve: resize needs a disk and a size")
	}
	params := url.Values{"disk": {disk}, "size": {size}}
	if digest != "" {
		params.Set("digest", digest)
	}
	return c.postTask(ctx, http.MethodPut, apiPath("nodes", node, kind, strconv.Itoa(vmid), "resize"), params)
}

// Migration says how a guest moves to another node.
type Migration struct {
	Target string
	// Online live-migrates a running VM (qemu); WithLocalDisks lets it copy
	// disks on storage the target does not share while it runs.
	Online         bool
	WithLocalDisks bool
	// Restart moves a running container by stopping it, moving it and
	// starting it again (lxc); Timeout is how long it gets to shut down.
	Restart bool
	Timeout int
}

// MigrateGuest moves a guest to another node of the cluster
// (POST /nodes/{node}/{kind}/{vmid}/migrate) and returns the task's UPID.
func (c *Client) MigrateGuest(ctx context.Context, node, kind string, vmid int, m Migration) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	if err := checkNode(m.Target); err != nil {
		return "", err
	}
	params := url.Values{"target": {m.Target}}
	switch kind {
	case "qemu":
		if m.Restart || m.Timeout != 0 {
			return "", errors.New("pve: restart migration is for containers (lxc) only")
		}
		if m.Online {
			params.Set("online", "1")
		}
		if m.WithLocalDisks {
			params.Set("with-local-disks", "1")
		}
	case "lxc":
		if m.Online || m.WithLocalDisks {
			return "", errors.New("pve: containers (lxc) move by restart migration, not online")
		}
		if m.Restart {
			params.Set("restart", "1")
		}
		if m.Timeout > 0 {
			params.Set("timeout", strconv.Itoa(m.Timeout))
		}
	}
	return c.postTask(ctx, http.MethodPost, apiPath("nodes", node, kind, strconv.Itoa(vmid), "migrate"), params)
}

// DeleteVolume removes one volume (a backup, an ISO, …) from a storage
// (DELETE /nodes/{node}/storage/{storage}/content/{volume}) and returns the
// task's UPID. The node is any node that reaches the storage.
func (c *Client) DeleteVolume(ctx context.Context, node, storage, volid string) (string, error) {
	if err := checkNode(node); err != nil {
		return "", err
	}
	if storage == "" || volid == "" {
		return "", errors.New("pve: deleting a volume needs its storage and volume id")
	}
	return c.postTask(ctx, http.MethodDelete, apiPath("nodes", node, "storage", storage, "content", volid), nil)
}

// ConvertToTemplate turns a stopped guest into a template
// (POST /nodes/{node}/{kind}/{vmid}/template). A VM's conversion answers with
// its task's UPID; a container's answers null, though PVE still runs a
// "vztemplate" task: upid is then "" (see RecentGuestTasks).
func (c *Client) ConvertToTemplate(ctx context.Context, node, kind string, vmid int) (upid string, err error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	path := apiPath("nodes", node, kind, strconv.Itoa(vmid), "template")
	if kind == "qemu" {
		return c.postTask(ctx, http.MethodPost, path, nil)
	}
	// null or, should a later PVE send one, a UPID.
	if err := c.do(ctx, http.MethodPost, path, nil, list(&upid)); err != nil {
		return "", err
	}
	if upid == "" {
		return "", nil
	}
	id, err := ParseUPID(upid)
	if err != nil {
		return "", &DecodeError{Method: http.MethodPost, Path: path, Err: fmt.Errorf("expected a task id or null: %w", err)}
	}
	c.noteTaskStarted(id.Node, upid)
	return upid, nil
}

// DestroyGuest deletes a stopped guest with its disks
// (DELETE /nodes/{node}/{kind}/{vmid}) and returns the task's UPID. purge also
// removes it from backup and replication jobs and HA; destroyUnreferenced also
// deletes disks with its VMID that its config does not name. It never skips
// the guest's lock and never forces a running container down.
func (c *Client) DestroyGuest(ctx context.Context, node, kind string, vmid int, purge, destroyUnreferenced bool) (string, error) {
	if err := checkGuest(node, kind, vmid); err != nil {
		return "", err
	}
	params := url.Values{}
	if purge {
		params.Set("purge", "1")
	}
	if destroyUnreferenced {
		params.Set("destroy-unreferenced-disks", "1")
	}
	return c.postTask(ctx, http.MethodDelete, apiPath("nodes", node, kind, strconv.Itoa(vmid)), params)
}

// RecentGuestTasks lists a node's tasks for one VMID, running ones included,
// newest first; typ ("vztemplate", "qmigrate", …) filters, "" lists all.
func (c *Client) RecentGuestTasks(ctx context.Context, node string, vmid int, typ string) ([]Task, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	params := url.Values{"vmid": {strconv.Itoa(vmid)}, "source": {"all"}, "limit": {"50"}}
	if typ != "" {
		params.Set("typefilter", typ)
	}
	var out []Task
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "tasks"), params, list(&out))
}
