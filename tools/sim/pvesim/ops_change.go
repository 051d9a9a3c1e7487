package pvesim

// Changing and removing what exists, as PVE 9.1 does it: growing a disk,
// migrating a guest to another node (an HA resource through the HA manager),
// deleting a volume (a backup), turning a guest into a template and
// destroying a guest. The config write (cores,
// memory, …) is ops_create.go's.

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func opsChangeRoutes() []route {
	var r []route
	for _, kind := range []string{"qemu", "lxc"} {
		g := "nodes/{node}/" + kind + "/{vmid}"
		resize := map[string]param{"disk": {typ: "string", required: true}, "size": {typ: "string", required: true}, "digest": str}
		migrate := map[string]param{"target": {typ: "string", required: true}, "online": flag, "bwlimit": str}
		template := map[string]param{}
		destroy := map[string]param{"purge": flag, "destroy-unreferenced-disks": flag}
		if kind == "qemu" {
			resize["skiplock"] = flag
			for name, p := range map[string]param{"force": flag, "migration_type": {typ: "string", enum: []string{"secure", "insecure"}},
				"migration_network": str, "with-local-disks": flag, "targetstorage": str, "with-conntrack-state": flag} {
				migrate[name] = p
			}
			template["disk"] = str
			destroy["skiplock"] = flag
		} else {
			for name, p := range map[string]param{"restart": flag, "timeout": num, "target-storage": str} {
				migrate[name] = p
			}
			destroy["force"] = flag
		}
		r = append(r,
			route{pattern: seg(g + "/resize"), methods: map[string]endpoint{"PUT": {params: resize, privs: "VM.Config.Disk", handler: (*Sim).putResize}}},
			route{pattern: seg(g + "/migrate"), methods: map[string]endpoint{"POST": {params: migrate, privs: "VM.Migrate", handler: (*Sim).postMigrate}}},
			route{pattern: seg(g + "/template"), methods: map[string]endpoint{"POST": {params: template, privs: "VM.Allocate", handler: (*Sim).postTemplate}}},
			route{pattern: seg(g), methods: map[string]endpoint{"DELETE": {params: destroy, privs: "VM.Allocate", handler: (*Sim).deleteGuest}}},
		)
	}
	// PVE checks a volume's privileges in the handler (below), not up front.
	r = append(r, route{pattern: seg("nodes/{node}/storage/{storage}/content/{volume}"), methods: map[string]endpoint{
		"DELETE": {params: map[string]param{"delay": num}, handler: (*Sim).deleteVolume}}})
	return r
}

// The permission checks of these routes, as the API schema states them
// (access_test.go holds every route to the schema).
func init() {
	for _, kind := range []string{"qemu", "lxc"} {
		g := "/nodes/{node}/" + kind + "/{vmid}"
		permChecks["PUT "+g+"/resize"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Config.Disk"}, any: kind == "lxc"}
		permChecks["POST "+g+"/migrate"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Migrate"}}
		permChecks["POST "+g+"/template"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Allocate"}}
		permChecks["DELETE "+g] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Allocate"}}
	}
	permChecks["DELETE /nodes/{node}/storage/{storage}/content/{volume}"] = permCheck{}
}

// lockedMessage is PVE's check_lock: "VM is locked (backup)".
func lockedMessage(g *guest) string {
	return fmt.Sprintf("%s is locked (%s)", g.guestWord(), g.lock)
}

// ---- resize ----

var (
	resizeSizePattern = regexp.MustCompile(`^(\+)?(\d+(?:\.\d+)?)([KMGT])?$`)
	qemuDiskPattern   = regexp.MustCompile(`^(ide[0-3]|sata[0-5]|scsi([0-9]|[1-2][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$`)
	lxcDiskPattern    = regexp.MustCompile(`^(rootfs|mp([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))$`)
)

// diskKey is the config key of the sim's one disk of g.
func diskKey(g *guest) string {
	if g.kind == "lxc" {
		return "rootfs"
	}
	return "scsi0"
}

// resizeTarget computes the new size PVE would: "+" adds to the current size.
func resizeTarget(size string, current int64) int64 {
	m := resizeSizePattern.FindStringSubmatch(size)
	f, _ := strconv.ParseFloat(m[2], 64)
	switch m[3] {
	case "K":
		f *= 1 << 10
	case "M":
		f *= 1 << 20
	case "G":
		f *= 1 << 30
	case "T":
		f *= 1 << 40
	}
	n := int64(f)
	if m[1] == "+" {
		n += current
	}
	return n
}

func (s *Sim) putResize(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	disk, size, want := c.params["disk"], c.params["size"], c.params["digest"]
	valid := qemuDiskPattern
	if g.kind == "lxc" {
		valid = lxcDiskPattern
	}
	if !valid.MatchString(disk) {
		return badRequest(map[string]string{"disk": fmt.Sprintf("value '%s' does not have a value in the enumeration", disk)})
	}
	if !resizeSizePattern.MatchString(size) {
		return badRequest(map[string]string{"size": "value does not match the regex pattern"})
	}
	if c.params["skiplock"] == "1" {
		return badRequest(map[string]string{"skiplock": "Only root may use this option."})
	}
	storagePath := "/storage/" + g.storage
	grow := func() (string, []string) {
		old := g.maxdisk
		newSize := resizeTarget(size, old)
		g.maxdisk = newSize
		vol := fmt.Sprintf("pve/%s", diskName(g))
		return "OK", []string{fmt.Sprintf("  Size of logical volume %s changed from %s to %s.", vol, lvmSize(old), lvmSize(newSize)),
			fmt.Sprintf("  Logical volume %s successfully resized.", vol)}
	}
	if g.kind == "lxc" {
		// pve-container checks everything before it forks the worker.
		switch {
		case g.lock != "":
			return errorResponse(http.StatusInternalServerError, lockedMessage(g))
		case want != "" && want != s.currentDigest(g):
			return errorResponse(http.StatusInternalServerError, "detected modified configuration - file changed by other user? Try again.")
		case disk != diskKey(g):
			return errorResponse(http.StatusInternalServerError, fmt.Sprintf("unable to parse volume ID for mount point '%s'", disk))
		case !s.held(c.user, storagePath, "Datastore.AllocateSpace"):
			return permDenied(storagePath, "Datastore.AllocateSpace")
		}
		newSize := resizeTarget(size, g.maxdisk)
		switch {
		case newSize < g.maxdisk:
			return errorResponse(http.StatusInternalServerError, "unable to shrink disk size")
		case newSize == g.maxdisk:
			return errorResponse(http.StatusInternalServerError, "disk is already at specified size")
		}
		return taskResponse(s.startTask(n, "resize", strconv.Itoa(g.vmid), c.user, nil, grow))
	}
	// qemu-server forks at once and checks in the worker.
	user := c.user
	return taskResponse(s.startTask(n, "resize", strconv.Itoa(g.vmid), c.user, nil, func() (string, []string) {
		switch {
		case s.guests[g.vmid] != g:
			return fmt.Sprintf("Configuration file '%s' does not exist", confPath(n.name, "qemu", g.vmid)), nil
		case want != "" && want != s.currentDigest(g):
			return "checksum mismatch (file change by other user?)", nil
		case g.lock != "":
			return lockedMessage(g), nil
		case disk != diskKey(g):
			return fmt.Sprintf("disk '%s' does not exist", disk), nil
		case !s.held(user, storagePath, "Datastore.AllocateSpace"):
			return fmt.Sprintf("Permission check failed (%s, Datastore.AllocateSpace)", storagePath), nil
		}
		newSize := resizeTarget(size, g.maxdisk)
		switch {
		case newSize < g.maxdisk:
			return "shrinking disks is not supported", nil
		case newSize == g.maxdisk:
			return "OK", nil
		}
		return grow()
	}))
}

// lvmSize is how lvextend prints a size: "64.00 GiB".
func lvmSize(b int64) string {
	return fmt.Sprintf("%.2f GiB", float64(b)/float64(gib))
}

// ---- migrate ----

func migrationDuration(d time.Duration) string {
	sec := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

func (s *Sim) postMigrate(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	target := c.params["target"]
	if target == n.name {
		return badRequest(map[string]string{"target": "target is local node."})
	}
	tn := s.node(target)
	if tn == nil {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("no such cluster node '%s'", target))
	}
	// An API token is never root@pam.
	for _, name := range []string{"force", "migration_type", "migration_network"} {
		if v := c.params[name]; v != "" && v != "0" {
			return badRequest(map[string]string{name: "Only root may use this option."})
		}
	}
	running := g.status == "running"
	online, restart := c.params["online"] == "1", c.params["restart"] == "1"
	typ := "qmigrate"
	if g.kind == "lxc" {
		typ = "vzmigrate"
		if running && !online && !restart {
			return errorResponse(http.StatusInternalServerError, "can't migrate running container without --online or --restart")
		}
	} else {
		if g.lock != "" {
			return errorResponse(http.StatusInternalServerError, lockedMessage(g))
		}
		if running && !online {
			return errorResponse(http.StatusInternalServerError, "can't migrate running VM without --online")
		}
	}
	if s.haManaged(g) {
		// PVE hands an HA resource's migration to the HA manager.
		return taskResponse(s.haMigrate(g, n, tn, c.user))
	}
	return taskResponse(s.migrationTask(g, n, tn, typ, c.user, online, c.params["with-local-disks"] == "1"))
}

// migrationTask is the worker that moves g from n to tn (qmigrate or
// vzmigrate): it holds the guest's lock while it runs and moves the guest
// when it ends.
func (s *Sim) migrationTask(g *guest, n, tn *node, typ, user string, online, localDisks bool) *task {
	word := g.guestWord()
	lockBefore := g.lock
	if lockBefore == "" {
		g.lock = "migrate"
	}
	volid := fmt.Sprintf("%s:%s", g.storage, diskName(g))
	startLog := []string{fmt.Sprintf("starting migration of %s %d to node '%s' (%s)", word, g.vmid, tn.name, tn.ip)}
	if g.kind == "qemu" {
		startLog = append(startLog, fmt.Sprintf("found local disk '%s' (attached)", volid))
	}
	start := s.now()
	t := s.startTask(n, typ, strconv.Itoa(g.vmid), user, startLog, func() (string, []string) {
		took := migrationDuration(s.now().Sub(start))
		aborted := func(why string) (string, []string) {
			if lockBefore == "" {
				g.lock = ""
			}
			return fmt.Sprintf("migration aborted (duration %s): %s", took, why), []string{"ERROR: " + why}
		}
		switch {
		case lockBefore != "":
			return aborted(fmt.Sprintf("%s is locked (%s)", word, lockBefore))
		case s.offline[tn.name]:
			return aborted(fmt.Sprintf("Can't connect to destination address (%s) using public key authentication", tn.ip))
		case g.kind == "lxc" && g.status == "running" && online:
			return aborted("lxc live migration is currently not implemented")
		case g.kind == "qemu" && g.status == "running" && !localDisks:
			return aborted("can't live migrate attached local disks without with-local-disks option")
		}
		g.lock = ""
		var log []string
		switch {
		case g.kind == "lxc" && g.status == "running":
			log = append(log, fmt.Sprintf("shutdown CT %d", g.vmid), fmt.Sprintf("volume '%s' is '%s' on the target", volid, volid),
				"start container on target node")
		case g.kind == "qemu" && g.status == "running":
			log = append(log, "starting VM "+strconv.Itoa(g.vmid)+" on remote node '"+tn.name+"'", "starting storage migration",
				"scsi0: mirror-job finished", "starting online/live migration on unix:/run/qemu-server/"+strconv.Itoa(g.vmid)+".migrate",
				"migration status: completed")
		default:
			log = append(log, "copying local disk images", fmt.Sprintf("volume '%s' is '%s' on the target", volid, volid))
		}
		g.node = tn.name
		return "OK", append(log, fmt.Sprintf("migration finished successfully (duration %s)", took))
	})
	// A migration takes longer than the other tasks.
	t.end = t.start.Add(2 * s.opts.TaskDuration)
	return t
}

// haManaged reports whether g is an HA resource (haVMIDs, ops_read.go).
func (s *Sim) haManaged(g *guest) bool {
	return slices.Contains(haVMIDs, g.vmid-s.opts.Site.VMIDOffset) && s.guests[g.vmid] == g
}

// haMigrate is what PVE does with a migration of an HA resource: the API
// forks an "hamigrate" worker that only hands the request to the HA manager
// (ha-manager migrate) and ends OK at once. The guest moves later, when the
// HA manager has the guest's node run the migration itself (as root@pam,
// live for a running VM, with its local disks, as pve-ha-manager asks): a
// migration task that starts when the request has been handed over. The HA
// manager ignores a request for a node that is not online.
func (s *Sim) haMigrate(g *guest, n, tn *node, user string) *task {
	typ := "qmigrate"
	if g.kind == "lxc" {
		typ = "vzmigrate"
	}
	t := s.startTask(n, "hamigrate", strconv.Itoa(g.vmid), user,
		[]string{fmt.Sprintf("Requesting HA migration for %s %d to node %s", g.guestWord(), g.vmid, tn.name)},
		func() (string, []string) {
			src := s.node(g.node)
			if s.guests[g.vmid] != g || src == nil || src == tn || s.offline[tn.name] {
				return "OK", nil
			}
			s.migrationTask(g, src, tn, typ, "root@pam", g.kind == "qemu" && g.status == "running", true)
			return "OK", nil
		})
	t.end = t.start.Add(s.opts.TaskDuration / 5)
	return t
}

// ---- template ----

func (s *Sim) postTemplate(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	word := g.guestWord()
	check := func() string {
		switch {
		case g.lock != "":
			return lockedMessage(g)
		case len(g.snapshots) > 0:
			return fmt.Sprintf("unable to create template, because %s contains snapshots", word)
		case g.template:
			return "you can't convert a template to a template"
		case g.status == "running" && g.kind == "lxc":
			return "you can't convert a CT to template if the CT is running"
		case g.status == "running":
			return "you can't convert a VM to template if VM is running"
		}
		return ""
	}
	if msg := check(); msg != "" {
		return errorResponse(http.StatusInternalServerError, msg)
	}
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[g.kind]
	t := s.startTask(n, prefix+"template", strconv.Itoa(g.vmid), c.user, nil, func() (string, []string) {
		if msg := check(); msg != "" {
			return msg, nil
		}
		old := diskName(g)
		g.template = true
		g.onboot = false
		return "OK", []string{fmt.Sprintf(`  Renamed "%s" to "%s" in volume group "pve"`, old, diskName(g)),
			fmt.Sprintf("  Logical volume pve/%s changed.", diskName(g))}
	})
	if g.kind == "lxc" {
		// pve-container forks the worker but answers null.
		return dataResponse(nil)
	}
	return taskResponse(t)
}

// ---- destroy ----

func (s *Sim) deleteGuest(c *call) response {
	g, n, errRes := s.guestFor(c)
	if errRes != nil {
		return *errRes
	}
	if c.params["skiplock"] == "1" {
		return badRequest(map[string]string{"skiplock": "Only root may use this option."})
	}
	purge := c.params["purge"] == "1"
	force := c.params["force"] == "1"
	running := func() string {
		if g.status != "running" {
			return ""
		}
		if g.kind == "lxc" {
			if force {
				return ""
			}
			return fmt.Sprintf("unable to destroy CT %d - container is running", g.vmid)
		}
		return fmt.Sprintf("VM %d is running - destroy failed", g.vmid)
	}
	if g.kind == "lxc" && g.lock != "" {
		return errorResponse(http.StatusInternalServerError, lockedMessage(g))
	}
	if msg := running(); msg != "" {
		return errorResponse(http.StatusInternalServerError, msg)
	}
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[g.kind]
	return taskResponse(s.startTask(n, prefix+"destroy", strconv.Itoa(g.vmid), c.user, nil, func() (string, []string) {
		if s.guests[g.vmid] != g {
			return fmt.Sprintf("Configuration file '%s' does not exist", confPath(n.name, g.kind, g.vmid)), nil
		}
		if g.lock != "" {
			return lockedMessage(g), nil
		}
		if msg := running(); msg != "" {
			return msg, nil
		}
		var log []string
		if g.status == "running" {
			log = append(log, fmt.Sprintf("forced to stop CT %d before destroying!", g.vmid))
		}
		log = append(log, fmt.Sprintf(`  Logical volume "%s" successfully removed.`, diskName(g)))
		if purge {
			log = append(log, fmt.Sprintf("purging %s %d from related configurations..", g.guestWord(), g.vmid))
		}
		delete(s.guests, g.vmid)
		return "OK", log
	}))
}

// ---- delete a volume ----

// backupOwner is the VMID a backup's file name names (vzdump-qemu-101-…).
var backupOwner = regexp.MustCompile(`(?:^|/)vzdump-(?:qemu|lxc|openvz)-(\d+)-`)

// volumePath is where a volume's file lies, as PVE names it in messages.
func volumePath(st *storage, volname string) string {
	base := "/var/lib/vz"
	if st.typ == "nfs" {
		base = "/mnt/pve/" + st.name
	}
	if rest, ok := strings.CutPrefix(volname, "backup/"); ok {
		return base + "/dump/" + rest
	}
	return base + "/" + volname
}

func (s *Sim) deleteVolume(c *call) response {
	nodeName, storeID, volume := c.vars["node"], c.vars["storage"], c.vars["volume"]
	volid := volume
	if sid, _, ok := strings.Cut(volume, ":"); ok {
		if sid != storeID {
			return badRequest(map[string]string{"volume": fmt.Sprintf("storage ID mismatch (%s != %s)", sid, storeID)})
		}
	} else {
		volid = storeID + ":" + volume
	}
	st := s.storage(storeID)
	if st == nil {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("storage '%s' does not exist", storeID))
	}
	_, volname, _ := strings.Cut(volid, ":")
	owner := 0
	isBackup := strings.HasPrefix(volname, "backup/")
	if m := backupOwner.FindStringSubmatch(volname); m != nil && isBackup {
		owner, _ = strconv.Atoi(m[1])
	}
	storagePath := "/storage/" + storeID
	if isBackup && owner > 0 {
		if !s.held(c.user, storagePath, "Datastore.AllocateSpace") {
			return permDenied(storagePath, "Datastore.AllocateSpace")
		}
		if vmPath := fmt.Sprintf("/vms/%d", owner); !s.held(c.user, vmPath, "VM.Backup") {
			return permDenied(vmPath, "VM.Backup")
		}
	} else if !s.held(c.user, storagePath, "Datastore.Allocate") {
		return permDenied(storagePath, "Datastore.Allocate")
	}
	id := storeID
	if owner > 0 {
		id = fmt.Sprintf("%d@%s", owner, storeID)
	}
	return taskResponse(s.startTask(s.node(nodeName), "imgdel", id, c.user, nil, func() (string, []string) {
		for i, v := range s.volumes {
			if v.volid == volid && v.storage == storeID && (st.shared || v.node == nodeName) {
				s.volumes = append(s.volumes[:i:i], s.volumes[i+1:]...)
				return "OK", []string{fmt.Sprintf("Removed volume '%s'", volid)}
			}
		}
		return fmt.Sprintf("unlink '%s' failed - No such file or directory", volumePath(st, volname)), nil
	}))
}

// ---- for tests ----

// LockGuest sets or clears (lock "") a guest's lock, as a running backup would.
func (s *Sim) LockGuest(vmid int, lock string) error {
	return s.changeGuest(vmid, false, func(g *guest) { g.lock = lock })
}

// TagGuest replaces a guest's tags ("lab;jarvis-created").
func (s *Sim) TagGuest(vmid int, tags string) error {
	return s.changeGuest(vmid, false, func(g *guest) { g.tags = tags })
}

// GuestDiskBytes is the size of a guest's disk (scsi0 or rootfs).
func (s *Sim) GuestDiskBytes(vmid int) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	g, ok := s.guests[vmid]
	if !ok {
		return 0, false
	}
	return g.maxdisk, true
}

// VolumeExists reports whether a volume (an ISO, a template, a backup) is
// still on its storage, on any node.
func (s *Sim) VolumeExists(volid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	for _, v := range s.volumes {
		if v.volid == volid {
			return true
		}
	}
	return false
}
