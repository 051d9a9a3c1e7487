package tools

// update_guest_resources and resize_disk: RED, a person approves.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- update_guest_resources ----

type UpdateResourcesInput struct {
	VMID       int    `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	Cores      int    `json:"cores,omitempty" jsonschema:"CPU cores (1-512, at most the node's); leave out to keep"`
	MemoryMiB  int64  `json:"memory_mib,omitempty" jsonschema:"memory in MiB (VMs at least 64, containers 16); leave out to keep"`
	BalloonMiB *int64 `json:"balloon_mib,omitempty" jsonschema:"VMs only: the least memory ballooning may leave it, in MiB, at most memory_mib; 0 turns ballooning off; leave out to keep"`
	OnBoot     *bool  `json:"onboot,omitempty" jsonschema:"start the guest when its node boots; leave out to keep"`
}

// ResourceChange is one setting changed, old and new as Proxmox writes them.
type ResourceChange struct {
	Setting string `json:"setting" jsonschema:"cores, memory (MiB), balloon (MiB) or onboot"`
	Old     string `json:"old"`
	New     string `json:"new"`
}

type GuestResourcesResult struct {
	VMID    int64            `json:"vmid"`
	Node    string           `json:"node"`
	Kind    string           `json:"kind" jsonschema:"qemu or lxc"`
	Changes []ResourceChange `json:"changes"`
	// RestartNeeded lists the settings a running VM takes only at its next
	// restart (Proxmox keeps them pending until then).
	RestartNeeded []string `json:"restart_needed" jsonschema:"settings that take effect only at the guest's next restart; empty when all apply now"`
}

func updateGuestResources() *Tool {
	return define[UpdateResourcesInput, GuestResourcesResult](spec{
		name: "update_guest_resources", title: "Change cores and memory", tier: safety.Red,
		description: "Change a VM's or container's CPU cores, memory, balloon minimum (VMs) or start at boot, by VMID. The plan shows old → new and whether a restart is needed (a running VM takes cores and memory at its next restart). Needs a person's approval.",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			rangeSchema(property(s, "cores"), 1, 512)
			rangeSchema(property(s, "memory_mib"), 16, 4*1024*1024)
			rangeSchema(property(s, "balloon_mib"), 0, 4*1024*1024)
		},
	}, prepareUpdateResources)
}

// resourcePlan is what one update would change, decided in prepare.
type resourcePlan struct {
	ch      pve.GuestResources
	changes []ResourceChange
	words   []string // "cores 4 → 8"
	pending []string // settings a running VM takes at its next restart
	live    []string // settings applied at once on a running guest
	raises  bool     // memory goes up
}

func prepareUpdateResources(ctx context.Context, env *Env, in UpdateResourcesInput) (*Call, error) {
	if in.Cores == 0 && in.MemoryMiB == 0 && in.BalloonMiB == nil && in.OnBoot == nil {
		return nil, inputErrorf("nothing to change: give cores, memory_mib, balloon_mib or onboot")
	}
	if in.Cores != 0 && (in.Cores < 1 || in.Cores > 512) {
		return nil, inputErrorf("cores %d is out of range: 1..512", in.Cores)
	}
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	qemu := r.Type == "qemu"
	switch {
	case in.MemoryMiB != 0 && qemu && in.MemoryMiB < 64:
		return nil, inputErrorf("memory_mib %d is too little for a VM: at least 64", in.MemoryMiB)
	case in.MemoryMiB != 0 && in.MemoryMiB < 16:
		return nil, inputErrorf("memory_mib %d is too little for a container: at least 16", in.MemoryMiB)
	case in.BalloonMiB != nil && !qemu:
		return nil, inputErrorf("%s is a container; balloon_mib applies to VMs only", noun)
	case in.BalloonMiB != nil && *in.BalloonMiB < 0:
		return nil, inputErrorf("balloon_mib %d is negative; 0 turns ballooning off", *in.BalloonMiB)
	}
	if err := refuseLocked(r); err != nil {
		return nil, err
	}
	conf, err := readGuestConf(ctx, env, r)
	if err != nil {
		return nil, err
	}
	view, err := readClusterView(ctx, env)
	if err != nil {
		return nil, err
	}
	p, err := planResources(r, conf, view, in)
	if err != nil {
		return nil, err
	}
	return &Call{Target: guestTarget(r), Effect: resourceEffect(r, view, p), Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: "change of " + strings.Join(p.words, ", ") + " of " + noun, node: r.Node, vmid: in.VMID}
		progress("writing the config of "+noun, 0, 1)
		if err := env.PVE.ChangeGuestResources(ctx, r.Node, r.Type, in.VMID, p.ch); err != nil {
			return nil, w.sendError(err)
		}
		progress("config written", 1, 1)
		return GuestResourcesResult{VMID: int64(in.VMID), Node: r.Node, Kind: r.Type, Changes: p.changes,
			RestartNeeded: append([]string{}, p.pending...)}, nil
	}}, nil
}

// planResources checks the wanted values against the guest and its node and
// works out what changes, and when each change takes effect.
func planResources(r *pve.Resource, conf *guestConf, view *clusterView, in UpdateResourcesInput) (*resourcePlan, error) {
	noun := guestNoun(r)
	qemu, running := r.Type == "qemu", r.Status == "running"
	node, ok := view.nodes[r.Node]
	if !ok || node.MaxCPU <= 0 || node.MaxMem <= 0 {
		return nil, fmt.Errorf("cannot read the cores and memory of node %s (the API token needs Sys.Audit on /nodes/%s)", r.Node, r.Node)
	}
	p := &resourcePlan{ch: pve.GuestResources{Digest: conf.digest}}
	add := func(setting, old, new, unit string, applyLive bool) {
		p.changes = append(p.changes, ResourceChange{Setting: setting, Old: old, New: new})
		p.words = append(p.words, fmt.Sprintf("%s %s → %s%s", setting, old, new, unit))
		switch {
		case !running:
		case applyLive:
			p.live = append(p.live, setting)
		default:
			p.pending = append(p.pending, setting)
		}
	}
	hotplug := conf.text("hotplug")
	if hotplug == "" {
		hotplug = "network,disk,usb" // PVE's default
	}
	oldCores, _ := conf.number("cores")
	if oldCores == 0 {
		oldCores = 1
	}
	sockets, _ := conf.number("sockets")
	sockets = max(sockets, 1)
	if in.Cores != 0 {
		if !qemu {
			sockets = 1
		}
		if total := int64(in.Cores) * sockets; total > int64(node.MaxCPU) {
			return nil, inputErrorf("cores %d is more than node %s has: %d CPUs%s", in.Cores, r.Node, int64(node.MaxCPU),
				map[bool]string{true: fmt.Sprintf(" (%s has %d sockets: %d vCPUs)", noun, sockets, total)}[sockets > 1])
		}
		if int64(in.Cores) != oldCores {
			p.ch.Cores = &in.Cores
			// A VM's cores are never hot-plugged (only vcpus are); a container's are.
			add("cores", fmt.Sprint(oldCores), fmt.Sprint(in.Cores), "", !qemu)
		}
	}
	oldMem, _ := conf.number("memory")
	if oldMem == 0 {
		oldMem = int64(r.MaxMem) >> 20
	}
	newMem := oldMem
	if in.MemoryMiB != 0 {
		if in.MemoryMiB<<20 > int64(node.MaxMem) {
			return nil, inputErrorf("memory_mib %d is more than node %s has: %s", in.MemoryMiB, r.Node, humanBytes(int64(node.MaxMem)))
		}
		if in.MemoryMiB != oldMem {
			newMem = in.MemoryMiB
			p.ch.MemoryMiB = &in.MemoryMiB
			p.raises = newMem > oldMem
			add("memory", fmt.Sprint(oldMem), fmt.Sprint(newMem), " MiB", !qemu || strings.Contains(hotplug, "memory"))
		}
	}
	if in.BalloonMiB != nil {
		b := *in.BalloonMiB
		if b > newMem {
			return nil, inputErrorf("balloon_mib %d is more than the memory of %s (%d MiB): the balloon minimum is at most the memory", b, noun, newMem)
		}
		oldBalloon, set := conf.number("balloon")
		if !set || b != oldBalloon {
			old := fmt.Sprintf("%d MiB", oldBalloon)
			if !set {
				old = "unset (the memory)"
			}
			p.ch.BalloonMiB = &b
			// Turning the balloon device on or off is not hot-pluggable;
			// a new minimum for a device already there is.
			wasOn, isOn := !set || oldBalloon != 0, b != 0
			p.changes = append(p.changes, ResourceChange{Setting: "balloon", Old: strings.TrimSuffix(old, " MiB"), New: fmt.Sprint(b)})
			p.words = append(p.words, fmt.Sprintf("balloon %s → %d MiB%s", old, b, map[bool]string{true: " (ballooning off)"}[b == 0]))
			switch {
			case !running:
			case wasOn == isOn:
				p.live = append(p.live, "balloon")
			default:
				p.pending = append(p.pending, "balloon")
			}
		}
	}
	if in.OnBoot != nil {
		old := conf.flag("onboot", false)
		if *in.OnBoot != old {
			p.ch.OnBoot = in.OnBoot
			word := map[bool]string{true: "on", false: "off"}
			p.changes = append(p.changes, ResourceChange{Setting: "onboot", Old: word[old], New: word[*in.OnBoot]})
			p.words = append(p.words, fmt.Sprintf("start at boot %s → %s", word[old], word[*in.OnBoot]))
		}
	}
	if len(p.changes) == 0 {
		return nil, inputErrorf("%s already has these settings (cores %d, memory %d MiB%s); nothing to change", noun, oldCores, oldMem,
			map[bool]string{true: ", start at boot on", false: ", start at boot off"}[conf.flag("onboot", false)])
	}
	return p, nil
}

// resourceEffect is the sentence a person approves: old → new for each
// setting, and when the changes take effect.
func resourceEffect(r *pve.Resource, view *clusterView, p *resourcePlan) string {
	noun := guestNoun(r)
	s := fmt.Sprintf("Change %s on node %s: %s", noun, r.Node, strings.Join(p.words, ", "))
	var when []string
	if len(p.pending) > 0 {
		when = append(when, fmt.Sprintf("%s %s effect at the next restart of %s %d (it is running)",
			joinWords(p.pending), map[bool]string{true: "takes", false: "take"}[len(p.pending) == 1], kindWord(r.Type), int64(r.VMID)))
	}
	if len(p.live) > 0 {
		when = append(when, fmt.Sprintf("%s %s at once (it is running)", joinWords(p.live), map[bool]string{true: "applies", false: "apply"}[len(p.live) == 1]))
	}
	if len(when) > 0 {
		s += "; " + strings.Join(when, "; ")
	}
	if p.raises && r.Status == "running" {
		s += fmt.Sprintf("; node %s has %s", r.Node, view.memoryOnNode(r.Node))
	}
	return s
}

// joinWords joins "cores", "memory" and "balloon" as "cores, memory and balloon".
func joinWords(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// ---- resize_disk ----

type ResizeDiskInput struct {
	VMID int    `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	Disk string `json:"disk" jsonschema:"the disk as its config names it: scsi0, virtio0, sata0, ide0 (VMs), rootfs or mp0 (containers)"`
	Size string `json:"size" jsonschema:"the new size, e.g. 80G, or the growth, e.g. +16G; units K, M, G, T. Disks only grow"`
}

type DiskResizeResult struct {
	TaskResult
	Disk            string `json:"disk"`
	Storage         string `json:"storage"`
	OldSizeBytes    int64  `json:"old_size_bytes"`
	NewSizeBytes    int64  `json:"new_size_bytes"`
	OldSize         string `json:"old_size" jsonschema:"human readable (binary units)"`
	NewSize         string `json:"new_size" jsonschema:"human readable (binary units)"`
	FileSystemGrown bool   `json:"file_system_grown" jsonschema:"true for containers: Proxmox grows their file system; a VM's partition and file system must be grown inside it"`
}

var (
	resizeDiskRE = regexp.MustCompile(`^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0|rootfs|mp([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))$`)
	resizeSizeRE = regexp.MustCompile(`^\+?[0-9]{1,10}(\.[0-9]{1,3})?[KMGT]$`)
)

func resizeDisk() *Tool {
	return define[ResizeDiskInput, DiskResizeResult](spec{
		name: "resize_disk", title: "Grow a disk", tier: safety.Red,
		description: "Grow one disk of a VM or container by VMID to a size (80G) or by an amount (+16G). Disks can only grow: Jarvis refuses any size at or below the current one. Checks the storage has the space. Needs a person's approval.",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			property(s, "disk").Pattern = resizeDiskRE.String()
			p := property(s, "size")
			p.Pattern = resizeSizeRE.String()
			p.MaxLength = ptr(16)
		},
	}, prepareResizeDisk)
}

func prepareResizeDisk(ctx context.Context, env *Env, in ResizeDiskInput) (*Call, error) {
	if !resizeDiskRE.MatchString(in.Disk) {
		return nil, inputErrorf("disk %q is not a disk name: scsi0, virtio0, sata0, ide0, efidisk0 (VMs), rootfs or mp0 (containers)", in.Disk)
	}
	if !resizeSizeRE.MatchString(in.Size) {
		return nil, inputErrorf("size %q: give a size like 80G or a growth like +16G (units K, M, G, T)", in.Size)
	}
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	if !diskKeyRE[r.Type].MatchString(in.Disk) {
		return nil, inputErrorf("%s is a %s: its disks are %s", noun, kindWord(r.Type),
			map[string]string{"qemu": "scsi0, virtio0, sata0, ide0, …", "lxc": "rootfs and mp0, mp1, …"}[r.Type])
	}
	if err := refuseLocked(r); err != nil {
		return nil, err
	}
	conf, err := readGuestConf(ctx, env, r)
	if err != nil {
		return nil, err
	}
	var disk *confDisk
	var names []string
	for _, d := range conf.disks(r.Type) {
		if !d.cdrom {
			names = append(names, d.key)
		}
		if d.key == in.Disk {
			d := d
			disk = &d
		}
	}
	switch {
	case disk == nil:
		return nil, inputErrorf("%s has no disk %s (its disks: %s)", noun, in.Disk, orWord(strings.Join(names, ", "), "none"))
	case disk.cdrom:
		return nil, inputErrorf("%s of %s is a CD-ROM drive; only disks can grow", in.Disk, noun)
	case disk.storage == "":
		return nil, inputErrorf("%s of %s is not a volume on a Proxmox storage (a bind mount or a device); Proxmox cannot grow it", in.Disk, noun)
	case disk.size <= 0:
		return nil, fmt.Errorf("the config of %s gives no size for disk %s, so Jarvis cannot check that it would grow", noun, in.Disk)
	}
	want, _ := parseSizeBytes(strings.TrimPrefix(in.Size, "+"))
	newSize := want
	if strings.HasPrefix(in.Size, "+") {
		newSize = disk.size + want
	}
	switch {
	case newSize == disk.size:
		return nil, inputErrorf("disk %s of %s is already %s; nothing to do", in.Disk, noun, sizeWords(disk.size))
	case newSize < disk.size:
		return nil, inputErrorf("disk %s of %s is %s; shrinking is not possible in Proxmox and Jarvis refuses it (asked for %s)",
			in.Disk, noun, sizeWords(disk.size), sizeWords(newSize))
	}
	growth := newSize - disk.size
	storages, err := env.PVE.NodeStorage(ctx, r.Node)
	if err != nil {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	var st *pve.StorageEntry
	for i := range storages {
		if storages[i].Storage == disk.storage {
			st = &storages[i]
		}
	}
	switch {
	case st == nil:
		return nil, fmt.Errorf("storage %s of disk %s is not available on node %s, so its free space cannot be checked", disk.storage, in.Disk, r.Node)
	case growth > int64(st.Avail):
		return nil, inputErrorf("storage %s on node %s has %s free; growing disk %s of %s by %s needs more",
			disk.storage, r.Node, humanBytes(int64(st.Avail)), in.Disk, noun, sizeWords(growth))
	}
	effect := fmt.Sprintf("Grow disk %s of %s on node %s from %s to %s on storage %s (%s more; %s free). This cannot be undone: disks can grow, never shrink",
		in.Disk, noun, r.Node, sizeWords(disk.size), sizeWords(newSize), disk.storage, sizeWords(growth), freeWords(int64(st.Avail)))
	if r.Type == "qemu" {
		effect += "; the partition and file system inside the VM must then be grown from within it"
	}
	d := *disk
	return &Call{Target: guestTarget(r), Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: fmt.Sprintf("growth of disk %s of %s to %s", in.Disk, noun, sizeWords(newSize)), node: r.Node, vmid: in.VMID}
		// The absolute size, not the growth: were the request ever repeated,
		// the disk would not grow twice. The digest makes PVE refuse a config
		// changed since the plan was made.
		upid, err := env.PVE.ResizeGuestDisk(ctx, r.Node, r.Type, in.VMID, in.Disk, pveSize(newSize), conf.digest)
		if err != nil {
			return nil, w.sendError(err)
		}
		res, err := waitForTask(ctx, env, upid, 10*time.Minute, progress, w)
		if err != nil {
			return nil, err
		}
		res.Node, res.VMID, res.Kind, res.Action = r.Node, int64(in.VMID), r.Type, "resize"
		return DiskResizeResult{TaskResult: res, Disk: in.Disk, Storage: d.storage, OldSizeBytes: d.size, NewSizeBytes: newSize,
			OldSize: sizeWords(d.size), NewSize: sizeWords(newSize), FileSystemGrown: r.Type == "lxc"}, nil
	}}, nil
}

// pveSize writes bytes as PVE's resize takes them: "80G" when whole, else the
// largest unit that divides it, else bytes.
func pveSize(b int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if b%(int64(1)<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", b>>u.shift, u.suffix)
		}
	}
	return fmt.Sprint(b)
}
