package pvesim

// POST /nodes/{node}/{qemu|lxc}/{vmid}/clone, with the checks qemu-server and
// pve-container make before they fork the worker (clone_vm).

import (
	"crypto/sha1"
	"fmt"
	"net/http"
	"strconv"
)

func cloneParams(kind string) map[string]param {
	p := map[string]param{"newid": {typ: "integer", required: true, min: &minVMID}, "description": str, "full": flag,
		"storage": str, "target": str, "snapname": str, "bwlimit": {typ: "integer", min: &minZero}}
	if kind == "qemu" {
		p["name"] = str
		p["format"] = param{typ: "string", enum: []string{"raw", "qcow2", "vmdk"}}
	} else {
		p["hostname"] = str
	}
	return p
}

// diskVolume is the volume id of a guest's disk.
func diskVolume(g *guest) string { return g.storage + ":" + diskName(g) }

func (s *Sim) postClone(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	p := c.params
	newid, _ := strconv.Atoi(p["newid"])
	nameKey := map[string]string{"qemu": "name", "lxc": "hostname"}[g.kind]
	if v, ok := p[nameKey]; ok && !dnsNameRE.MatchString(v) {
		return badRequest(map[string]string{nameKey: "invalid format - value does not look like a valid DNS name"})
	}
	fail := func(msg string) response { return errorResponse(http.StatusInternalServerError, msg) }
	target := p["target"]
	if target == n.name || target == "localhost" {
		target = ""
	}
	if target != "" && s.node(target) == nil {
		return fail(fmt.Sprintf("no such cluster node '%s'", target))
	}
	if name := p["storage"]; name != "" {
		st := s.storage(name)
		if st == nil {
			return fail(fmt.Sprintf("storage '%s' does not exist", name))
		}
		if g.kind == "qemu" && !hasContent(st.content, "images") {
			return badRequest(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support vm images", name)})
		}
		if g.kind == "lxc" && !hasContent(st.content, "rootdir") {
			return badRequest(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support container directories", name)})
		}
		if target != "" && !st.shared {
			return fail(fmt.Sprintf("can't clone to non-shared storage '%s'", name))
		}
	}
	if g.lock != "" {
		return fail(fmt.Sprintf("%s is locked (%s)", g.guestWord(), g.lock))
	}
	if sn := p["snapname"]; sn != "" && g.snapshot(sn) == nil {
		return fail(fmt.Sprintf("snapshot '%s' does not exist", sn))
	}
	full := !g.template
	if v, ok := p["full"]; ok {
		full = v == "1"
	}
	if p["storage"] != "" && !full {
		return fail("parameter 'storage' not allowed for linked clones")
	}
	if !full && !g.template {
		// Only a template's base volumes can be cloned by reference.
		if g.kind == "qemu" {
			return fail(fmt.Sprintf("Linked clone feature is not supported for '%s' (scsi0)", diskVolume(g)))
		}
		return fail(fmt.Sprintf("Linked clone feature for '%s' is not available", diskVolume(g)))
	}
	if g.kind == "lxc" && full && g.status == "running" && p["snapname"] == "" {
		return fail("Full clone of a running container is only possible from a snapshot")
	}
	dest := g.storage
	if p["storage"] != "" {
		dest = p["storage"]
	}
	if path := "/storage/" + dest; !s.held(c.user, path, "Datastore.AllocateSpace") {
		return permDenied(path, "Datastore.AllocateSpace")
	}
	if path := fmt.Sprintf("/vms/%d", newid); !s.held(c.user, path, "VM.Allocate") {
		return permDenied(path, "VM.Allocate")
	}
	if src := s.storage(g.storage); target != "" && (src == nil || !src.shared) {
		return fail(fmt.Sprintf("can't clone %s to node '%s' (%s uses local storage)", g.guestWord(), target, g.guestWord()))
	}
	if other, taken := s.guests[newid]; taken {
		if g.kind == "qemu" {
			return fail(fmt.Sprintf("unable to create VM %d: config file already exists", newid))
		}
		return fail(fmt.Sprintf("%s %d already exists on node '%s'", other.guestWord(), newid, other.node))
	}

	// The new guest's config exists, locked, from the start: no one else can
	// take its VMID while the disks are copied.
	name := p[nameKey]
	if name == "" {
		name = g.name
		if g.kind == "qemu" {
			name = "Copy-of-VM-" + g.name
		}
	}
	dstNode := n.name
	if target != "" {
		dstNode = target
	}
	sum := sha1.Sum(fmt.Appendf(nil, "%s/%d", name, newid))
	clone := &guest{vmid: newid, name: name, node: dstNode, kind: g.kind, status: "stopped", tags: g.tags, cores: g.cores,
		maxmem: g.maxmem, maxdisk: g.maxdisk, memFrac: g.memFrac, cpuBase: g.cpuBase, ostype: g.ostype,
		description: g.description, onboot: g.onboot, balloon: g.balloon, storage: dest,
		ciuser: g.ciuser, cipassword: g.cipassword, sshkeys: g.sshkeys, ipconfig0: g.ipconfig0, cloudinit: g.cloudinit,
		mac: fmt.Sprintf("BC:24:11:%02X:%02X:%02X", sum[0], sum[1], sum[2]), lock: "clone"}
	if clone.memFrac == 0 {
		clone.memFrac, clone.cpuBase = 0.35, 0.04
	}
	if v, ok := p["description"]; ok {
		clone.description = v
	}
	if g.kind == "lxc" {
		clone.lock = "create"
		g.lock = "disk"
	}
	s.guests[newid] = clone

	how := "full clone"
	if !full {
		how = "linked clone"
	}
	volume := fmt.Sprintf("%s:vm-%d-disk-0", dest, newid)
	var startLog, progress []string
	prefix := "qm"
	if g.kind == "qemu" {
		startLog = []string{fmt.Sprintf("create %s of drive scsi0 (%s)", how, diskVolume(g))}
		if full {
			startLog = append(startLog, fmt.Sprintf(`  Logical volume "vm-%d-disk-0" created.`, newid))
			for _, pct := range []int{0, 25, 50, 75, 100} {
				done := g.maxdisk * int64(pct) / 100
				progress = append(progress, fmt.Sprintf("transferred %s of %s (%d.00%%)", gibText(done), gibText(g.maxdisk), pct))
			}
		}
	} else {
		prefix = "vz"
		startLog = []string{fmt.Sprintf("create %s of mount point rootfs (%s)", how, diskVolume(g))}
		if full {
			startLog = append(startLog, fmt.Sprintf(`  Logical volume "vm-%d-disk-0" created.`, newid), "Creating filesystem with 2097152 4k blocks and 524288 inodes")
			progress = []string{"Number of files: 42,318", fmt.Sprintf("sent %d bytes  received 812,544 bytes", g.maxdisk*37/100)}
		}
	}
	t := s.startLongTask(n, prefix+"clone", strconv.Itoa(g.vmid), c.user, s.scale(1), startLog, progress, func() (string, []string) {
		if g.kind == "lxc" && g.lock == "disk" {
			g.lock = ""
		}
		clone.lock = ""
		return "OK", []string{fmt.Sprintf("new volume ID is '%s'", volume)}
	})
	return taskResponse(t)
}

// gibText is a size as qemu-img and PVE logs print it: "8.0 GiB".
func gibText(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/float64(gib)) }
