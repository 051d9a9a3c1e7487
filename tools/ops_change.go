package tools

// The weekly operations that change or remove what exists, every one RED (a
// person approves): a guest's cores and memory, growing a disk, migrating a
// guest (ops_change_resources.go, ops_change_migrate.go), deleting a backup,
// turning a guest into a template and deleting a guest Jarvis created
// (ops_change_remove.go). This file holds what they share.

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

func opsChangeTools() []*Tool {
	return []*Tool{updateGuestResources(), resizeDisk(), migrateGuest(), deleteBackup(), convertToTemplate(), deleteGuest()}
}

var (
	configCPU     = priv("/vms/{vmid}", "to change a guest's cores (PVE checks it for the cores setting)", "VM.Config.CPU")
	configMemory  = priv("/vms/{vmid}", "to change a guest's memory and ballooning (PVE checks it for those settings)", "VM.Config.Memory")
	configOptions = priv("/vms/{vmid}", "to change whether a guest starts at boot (PVE checks it for onboot)", "VM.Config.Options")
	nodeFigures   = priv("/nodes/{node}", "to read a node's cores and memory: PVE leaves them out of /cluster/resources without Sys.Audit", "Sys.Audit")
	allocateGuest = priv("/vms/{vmid}", "to turn a guest into a template or delete it (VM.Allocate on the guest)", "VM.Allocate")
)

// opsChangeAccess is the Proxmox privileges of these tools (see privileges.go).
var opsChangeAccess = map[string]toolAccess{
	"update_guest_resources": {"guest resources", []Privilege{seeGuests, readGuest, nodeFigures, configCPU, configMemory, configOptions}},
	"resize_disk": {"guest resources", []Privilege{seeGuests, readGuest,
		priv("/vms/{vmid}", "to grow a guest's disk (PUT …/resize)", "VM.Config.Disk"),
		priv("/storage/{storage}", "to grow a disk: PVE checks it on the disk's storage before it grows it", "Datastore.AllocateSpace")}},
	"migrate_guest": {"guest resources", []Privilege{seeGuests, readGuest, nodeFigures,
		priv("/storage/{storage}", "to tell shared storage from a node's local storage: PVE lists only storage with Datastore.Audit", "Datastore.Audit"),
		priv("/vms/{vmid}", "to migrate a guest to another node", "VM.Migrate")}},
	"delete_backup": {"backups", []Privilege{seeGuests, seeStorage,
		priv("/storage/{storage}", "to list and delete backups: PVE deletes a guest's backup with it and VM.Backup on the guest", "Datastore.AllocateSpace"),
		priv("/vms/{vmid}", "to delete a guest's backup: PVE checks it on the guest the backup is of", "VM.Backup")}},
	"convert_to_template": {"templates and deletion", []Privilege{seeGuests, readGuest, allocateGuest}},
	"delete_guest":        {"templates and deletion", []Privilege{seeGuests, readGuest, allocateGuest}},
}

// ---- a guest's config, as PVE returns it ----

// guestConf is a guest's config with the digest PVE gave it.
type guestConf struct {
	values map[string]any
	digest string
}

// readGuestConf reads a guest's config (fresh, for a changing call).
func readGuestConf(ctx context.Context, env *Env, r *pve.Resource) (*guestConf, error) {
	cfg, err := env.PVE.GuestConfig(ctx, r.Node, r.Type, int(r.VMID))
	if err != nil {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	c := &guestConf{values: cfg}
	c.digest = c.text("digest")
	return c, nil
}

// text is a config value as text; PVE sends some numbers as strings, some not.
func (c *guestConf) text(key string) string {
	switch v := c.values[key].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// number is a config value as an integer; ok is false when it is not set or
// not a number. "current=8192" (a VM's memory) reads as 8192.
func (c *guestConf) number(key string) (int64, bool) {
	s := strings.TrimPrefix(c.text(key), "current=")
	if i := strings.IndexByte(s, ','); i >= 0 {
		s = s[:i]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil
}

// flag is a 0/1 config value; unset is def.
func (c *guestConf) flag(key string, def bool) bool {
	switch c.text(key) {
	case "":
		return def
	case "1":
		return true
	}
	return false
}

// diskKeyRE names the config keys that hold a guest's disks.
var diskKeyRE = map[string]*regexp.Regexp{
	"qemu": regexp.MustCompile(`^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$`),
	"lxc":  regexp.MustCompile(`^(rootfs|mp([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))$`),
}

// confDisk is one disk of a guest's config.
type confDisk struct {
	key     string // scsi0, rootfs, mp0, …
	volid   string // local-lvm:vm-101-disk-0; "" for an empty CD-ROM
	storage string
	size    int64 // bytes; 0 when the config does not say
	cdrom   bool
}

// disks lists a guest's disks in key order: the drives of a VM, the root and
// mount points of a container. Bind mounts (a path, not a volume) have no storage.
func (c *guestConf) disks(kind string) []confDisk {
	re := diskKeyRE[kind]
	var out []confDisk
	for key := range c.values {
		if re == nil || !re.MatchString(key) {
			continue
		}
		out = append(out, parseGuestDisk(key, c.text(key)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// parseGuestDisk reads "local-lvm:vm-101-disk-0,iothread=1,size=64G" (or a
// container's "volume=…,mp=/data,size=8G").
func parseGuestDisk(key, value string) confDisk {
	d := confDisk{key: key}
	for i, part := range strings.Split(value, ",") {
		k, v, hasEq := strings.Cut(part, "=")
		switch {
		case i == 0 && !hasEq:
			d.volid = part
		case k == "file" || k == "volume":
			d.volid = v
		case k == "size":
			d.size, _ = parseSizeBytes(v)
		case k == "media" && v == "cdrom":
			d.cdrom = true
		}
	}
	if d.volid == "none" || d.volid == "cdrom" {
		d.volid = ""
	}
	if sid, _, ok := strings.Cut(d.volid, ":"); ok && !strings.HasPrefix(d.volid, "/") {
		d.storage = sid
	}
	return d
}

// sizeRE is a size as Proxmox writes it: a number and a unit (K, M, G, T);
// bytes without one.
var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)([KMGT]?)$`)

// parseSizeBytes reads "64G", "512M", "1.5T" or "1024" (bytes).
func parseSizeBytes(s string) (int64, bool) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m[2]]
	return int64(f * float64(int64(1)<<shift)), true
}

const gibibyte = int64(1) << 30

// sizeWords says a disk size as a person reads it: "64 GiB" when whole, else
// with one decimal ("1.5 GiB").
func sizeWords(b int64) string {
	if b > 0 && b%gibibyte == 0 {
		return fmt.Sprintf("%d GiB", b/gibibyte)
	}
	return humanBytes(b)
}

// freeWords says free space in whole GiB, rounded down ("612 GiB free"): the
// plan a person approves must read the same a moment later.
func freeWords(b int64) string {
	if b < gibibyte {
		return humanBytes(max(b, 0))
	}
	return fmt.Sprintf("%d GiB", b/gibibyte)
}

// refuseLocked refuses a guest that holds a lock: PVE would refuse the change too.
func refuseLocked(r *pve.Resource) error {
	if r.Lock == "" {
		return nil
	}
	return inputErrorf("%s is locked (%s) by a task under way; wait until it has finished (get_recent_tasks for node %s)", guestNoun(r), r.Lock, r.Node)
}

// clusterView is /cluster/resources in one read: the nodes, the guests and
// each node's storage.
type clusterView struct {
	nodes   map[string]pve.Resource
	guests  []pve.Resource
	storage []pve.Resource
}

func readClusterView(ctx context.Context, env *Env) (*clusterView, error) {
	all, err := env.PVE.ClusterResources(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's nodes, guests and storage: %w", err)
	}
	v := &clusterView{nodes: map[string]pve.Resource{}}
	for _, r := range all {
		switch r.Type {
		case "node":
			v.nodes[r.Node] = r
		case "qemu", "lxc":
			v.guests = append(v.guests, r)
		case "storage":
			v.storage = append(v.storage, r)
		}
	}
	return v, nil
}

func (v *clusterView) nodeNames() string {
	names := make([]string, 0, len(v.nodes))
	for n := range v.nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// unassignedMemory is a node's memory less what its running guests are
// given (their maximum, not their use of the moment): a figure that stays the
// same while nothing starts or stops, so a plan that names it reads the same
// when a person approves it and when it runs.
func (v *clusterView) unassignedMemory(node string) (unassigned, total int64) {
	total = int64(v.nodes[node].MaxMem)
	unassigned = total
	for _, g := range v.guests {
		if g.Node == node && g.Status == "running" {
			unassigned -= int64(g.MaxMem)
		}
	}
	return unassigned, total
}

// memoryOnNode says how much of a node's memory its running guests leave:
// "27.5 GiB of its 32.0 GiB RAM not assigned to running guests".
func (v *clusterView) memoryOnNode(node string) string {
	unassigned, total := v.unassignedMemory(node)
	if unassigned < 0 {
		return fmt.Sprintf("its running guests are already assigned %s more than its %s RAM", humanBytes(-unassigned), humanBytes(total))
	}
	return fmt.Sprintf("%s of its %s RAM not assigned to running guests", humanBytes(unassigned), humanBytes(total))
}

// storageOn finds a storage's row for one node.
func (v *clusterView) storageOn(node, storage string) (pve.Resource, bool) {
	for _, s := range v.storage {
		if s.Node == node && s.Storage == storage {
			return s, true
		}
	}
	return pve.Resource{}, false
}
