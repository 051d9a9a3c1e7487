package pvesim

// Backups and restores: POST /nodes/{node}/vzdump (a "vzdump" task whose log
// reads like real vzdump's, with percentages for VMs) and POST
// /nodes/{node}/{qemu|lxc} with a backup archive ("qmrestore"/"vzrestore"),
// which creates the guest or replaces it, snapshots and all.

import (
	"crypto/sha1"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var vzdumpParams = map[string]param{
	"vmid": str, "storage": str, "notes-template": str, "remove": flag, "node": str,
	"mode":     {typ: "string", enum: []string{"snapshot", "suspend", "stop"}},
	"compress": {typ: "string", enum: []string{"0", "1", "gzip", "lzo", "zstd"}},
}

// backupDir is where a storage keeps vzdump archives.
func backupDir(st *storage) string {
	if st.name == "local" {
		return "/var/lib/vz/dump"
	}
	return "/mnt/pve/" + st.name + "/dump"
}

// archiveExt is the extension vzdump gives an archive of kind compressed so.
func archiveExt(kind, compress string) string {
	ext := map[string]string{"qemu": "vma", "lxc": "tar"}[kind]
	switch compress {
	case "zstd":
		ext += ".zst"
	case "lzo", "1":
		ext += ".lzo"
	case "gzip":
		ext += ".gz"
	}
	return ext
}

func (s *Sim) postVzdump(c *call) response {
	n := s.node(c.vars["node"])
	p := c.params
	if v := p["node"]; v != "" && v != n.name {
		return badRequest(map[string]string{"node": "option is only allowed on the command line interface."})
	}
	var ids []int
	for _, f := range pveList(p["vmid"]) {
		id, err := strconv.Atoi(f)
		if err != nil || id < minVMID {
			return badRequest(map[string]string{"vmid": "invalid format - value does not look like a valid VM ID"})
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return errorResponse(http.StatusInternalServerError, "no guests specified: use 'vmid' or 'all'")
	}
	if _, ok := p["notes-template"]; ok && p["storage"] == "" {
		return badRequest(map[string]string{"notes-template": "missing property - 'storage' is required with 'notes-template'"})
	}
	name := p["storage"]
	if name == "" {
		name = "local"
	}
	st := s.storage(name)
	if st == nil {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("storage '%s' does not exist", name))
	}
	if !hasContent(st.content, "backup") {
		return errorResponse(http.StatusInternalServerError, fmt.Sprintf("storage '%s' does not support backups", name))
	}
	// Guests on other nodes are skipped; when none is left, vzdump does
	// nothing and answers OK instead of a task.
	var local []int
	for _, id := range ids {
		if g := s.guests[id]; g == nil || g.node == n.name {
			local = append(local, id)
		}
	}
	if len(local) == 0 {
		return dataResponse("OK")
	}
	if path := "/storage/" + name; !s.held(c.user, path, "Datastore.AllocateSpace") {
		return permDenied(path, "Datastore.AllocateSpace")
	}
	mode, compress := p["mode"], p["compress"]
	if mode == "" {
		mode = "snapshot"
	}
	if compress == "" {
		compress = "0"
	}
	cmd := fmt.Sprintf("vzdump %s --storage %s --mode %s --compress %s --remove %s --node %s", strings.Trim(fmt.Sprint(local), "[]"),
		name, mode, compress, vzdumpOr(p["remove"], "1"), n.name)
	if notes, ok := p["notes-template"]; ok {
		cmd += fmt.Sprintf(" --notes-template '%s'", notes)
	}
	startLog := []string{"INFO: starting new backup job: " + cmd}
	id := ""
	if len(local) == 1 {
		id = strconv.Itoa(local[0])
	}
	// The job stops at the first guest the token may not back up.
	for _, vmid := range local {
		if path := fmt.Sprintf("/vms/%d", vmid); s.guests[vmid] != nil && !s.held(c.user, path, "VM.Backup") {
			t := s.startTask(n, "vzdump", id, c.user, startLog, func() (string, []string) {
				return fmt.Sprintf("Permission check failed (%s, VM.Backup)", path), nil
			})
			return taskResponse(t)
		}
	}
	d := s.scale(2)
	var jobs []*backupJob
	for _, vmid := range local {
		jobs = append(jobs, s.startBackup(n, st, vmid, mode, compress, p["notes-template"], d))
	}
	// The first guest's lines show while the task runs; the others' come at the end.
	startLog = append(startLog, jobs[0].startLog...)
	t := s.startLongTask(n, "vzdump", id, c.user, d, startLog, jobs[0].progress, func() (string, []string) {
		var log []string
		failed := 0
		for i, j := range jobs {
			if i > 0 {
				log = append(log, j.startLog...)
				log = append(log, j.progress...)
			}
			lines, ok := j.finish()
			log = append(log, lines...)
			if !ok {
				failed++
			}
		}
		if failed > 0 {
			return "job errors", append(log, "INFO: Backup job finished with errors")
		}
		return "OK", append(log, "INFO: Backup job finished successfully")
	})
	return taskResponse(t)
}

func vzdumpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// backupJob is one guest's part of a vzdump task.
type backupJob struct {
	startLog, progress []string
	finish             func() (log []string, ok bool)
}

// startBackup locks (and, in stop mode, stops) the guest and says what its
// backup will print; finish writes the archive and gives the guest back.
func (s *Sim) startBackup(n *node, st *storage, vmid int, mode, compress, notes string, d time.Duration) *backupJob {
	g := s.guests[vmid]
	if g == nil {
		return &backupJob{finish: func() ([]string, bool) {
			return []string{fmt.Sprintf("ERROR: Backup of VM %d failed - unable to find configuration file for VM %d on node '%s'", vmid, vmid, n.name)}, false
		}}
	}
	start := s.now()
	j := &backupJob{startLog: []string{
		fmt.Sprintf("INFO: Starting Backup of VM %d (%s)", vmid, g.kind),
		"INFO: Backup started at " + start.Format("2006-01-02 15:04:05"),
		"INFO: status = " + g.status,
	}}
	if lock := g.lock; lock != "" {
		j.finish = func() ([]string, bool) {
			return []string{fmt.Sprintf("ERROR: Backup of VM %d failed - %s is locked (%s)", vmid, g.guestWord(), lock)}, false
		}
		return j
	}
	running := g.status == "running"
	if !running {
		mode = "stop"
	}
	saved := backupOfGuest(g)
	g.lock = "backup"
	ext := archiveExt(g.kind, compress)
	file := fmt.Sprintf("vzdump-%s-%d-%s.%s", g.kind, vmid, start.UTC().Format("2006_01_02-15_04_05"), ext)
	word := map[string]string{"qemu": "VM", "lxc": "CT"}[g.kind]
	j.startLog = append(j.startLog, fmt.Sprintf("INFO: %s Name: %s", word, g.name))
	if g.kind == "qemu" {
		j.startLog = append(j.startLog, fmt.Sprintf("INFO: include disk 'scsi0' '%s' %dG", diskVolume(g), g.maxdisk/gib))
	} else {
		j.startLog = append(j.startLog, "INFO: including mount point rootfs ('/') in backup")
	}
	j.startLog = append(j.startLog, "INFO: backup mode: "+mode, "INFO: ionice priority: 7")
	switch {
	case mode == "stop" && running:
		j.startLog = append(j.startLog, "INFO: stopping virtual guest")
		g.setStatus("stopped", start)
	case mode == "suspend":
		j.startLog = append(j.startLog, "INFO: suspending guest")
	case g.kind == "lxc" && mode == "snapshot":
		j.startLog = append(j.startLog, "INFO: create storage snapshot 'vzdump'")
	}
	j.startLog = append(j.startLog, fmt.Sprintf("INFO: creating vzdump archive '%s/%s'", backupDir(st), file))
	secs := max(1, int(d.Round(time.Second)/time.Second))
	if g.kind == "qemu" {
		j.startLog = append(j.startLog, fmt.Sprintf("INFO: started backup task '%s'", uuidOf(vmid+int(start.Unix()%100000))))
		for _, pct := range []int{0, 12, 31, 54, 78, 100} {
			done := g.maxdisk * int64(pct) / 100
			in := max(1, secs*pct/100)
			j.progress = append(j.progress, fmt.Sprintf("INFO: %3d%% (%s of %s) in %ds, read: %s/s, write: %s/s",
				pct, gibText(done), gibText(g.maxdisk), in, gibText(done/int64(in)), gibText(done/int64(in)/3)))
		}
	}
	size := g.maxdisk/5 + int64(vmid)*mib
	if compress == "0" {
		size = g.maxdisk * 41 / 100
	}
	j.finish = func() ([]string, bool) {
		now := s.now()
		var log []string
		if g.kind == "qemu" {
			log = append(log, fmt.Sprintf("INFO: backup is sparse: %s (59%%) total zero data", gibText(g.maxdisk*59/100)),
				fmt.Sprintf("INFO: transferred %s in %d seconds", gibText(g.maxdisk), secs))
		} else {
			log = append(log, fmt.Sprintf("INFO: Total bytes written: %d (%s)", g.maxdisk*37/100, gibText(g.maxdisk*37/100)))
		}
		log = append(log, fmt.Sprintf("INFO: archive file size: %.2fGB", float64(size)/float64(gib)))
		v := volume{storage: st.name, volid: st.name + ":backup/" + file, content: "backup", format: ext, size: size,
			ctime: start.Unix(), vmid: vmid, subtype: g.kind}
		if !st.shared {
			v.node = n.name
		}
		if notes != "" {
			v.notes = renderNotes(notes, g, n, s.clusterName())
			log = append(log, "INFO: adding notes to backup")
		}
		s.volumes = append(s.volumes, v)
		s.createState().backups[v.volid] = saved
		if g.lock == "backup" {
			g.lock = ""
		}
		switch {
		case mode == "stop" && running:
			g.setStatus("running", now)
			log = append(log, "INFO: restarting vm")
		case mode == "suspend":
			log = append(log, "INFO: resuming VM again")
		case g.kind == "lxc" && mode == "snapshot":
			log = append(log, "INFO: cleanup temporary 'vzdump' snapshot")
		}
		took := now.Sub(start).Round(time.Second)
		log = append(log, fmt.Sprintf("INFO: Finished Backup of VM %d (%02d:%02d:%02d)", vmid, int(took.Hours()), int(took.Minutes())%60, int(took.Seconds())%60),
			"INFO: Backup finished at "+now.Format("2006-01-02 15:04:05"))
		return log, true
	}
	return j
}

// renderNotes fills vzdump's notes-template: {{guestname}}, {{vmid}},
// {{node}}, {{cluster}}, with \n and \\ unescaped.
func renderNotes(tmpl string, g *guest, n *node, cluster string) string {
	r := strings.NewReplacer("{{guestname}}", g.name, "{{vmid}}", strconv.Itoa(g.vmid), "{{node}}", n.name, "{{cluster}}", cluster,
		`\\`, `\`, `\n`, "\n")
	return r.Replace(tmpl)
}

// ---- restore ----

func restoreParams(kind string) map[string]param {
	p := map[string]param{"vmid": {typ: "integer", required: true, min: &minVMID}, "storage": str, "force": flag,
		"unique": flag, "start": flag, "bwlimit": {typ: "integer", min: &minZero}}
	if kind == "qemu" {
		p["archive"] = str
		p["live-restore"] = flag
	} else {
		p["ostemplate"] = param{typ: "string", required: true}
		p["restore"] = flag
	}
	return p
}

var backupVolidRE = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9._-]*):backup/vzdump-(qemu|lxc)-(\d+)-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.(?:vma|tar)(?:\.(?:zst|lzo|gz))?$`)

// postCreateGuest serves POST /nodes/{node}/{qemu|lxc}: only restores from a
// backup are simulated.
func (s *Sim) postCreateGuest(c *call) response {
	n := s.node(c.vars["node"])
	kind := strings.Split(c.path, "/")[3]
	p := c.params
	vmid, _ := strconv.Atoi(p["vmid"])
	word := map[string]string{"qemu": "VM", "lxc": "CT"}[kind]
	fail := func(msg string) response { return errorResponse(http.StatusInternalServerError, msg) }
	archive := p["archive"]
	if kind == "lxc" {
		archive = p["ostemplate"]
		if p["restore"] != "1" {
			return fail("pvesim: creating a container from a template is not simulated; only restores are")
		}
	} else if archive == "" {
		return fail("pvesim: creating a VM from scratch is not simulated; only restores (archive) are")
	}
	force := p["force"] == "1"
	existing := s.guests[vmid]
	user := c.user
	vmPath := fmt.Sprintf("/vms/%d", vmid)
	if name := p["storage"]; name != "" && !s.held(user, "/storage/"+name, "Datastore.AllocateSpace") {
		return permDenied("/storage/"+name, "Datastore.AllocateSpace")
	}
	if p["start"] == "1" && !s.held(user, vmPath, "VM.PowerMgmt") {
		return permDenied(vmPath, "VM.PowerMgmt")
	}
	// VM.Allocate, or VM.Backup to restore over a guest that exists.
	if !s.held(user, vmPath, "VM.Allocate") && !(force && existing != nil && s.held(user, vmPath, "VM.Backup")) {
		return permDenied(vmPath, "VM.Allocate")
	}
	m := backupVolidRE.FindStringSubmatch(archive)
	if m == nil {
		return fail(fmt.Sprintf("unable to parse volume ID '%s'", archive))
	}
	archStorage, archKind := m[1], m[2]
	owner, _ := strconv.Atoi(m[3])
	// check_volume_access: Datastore.Allocate on the storage, or
	// Datastore.AllocateSpace there and VM.Backup on the backed-up guest.
	if sp := "/storage/" + archStorage; !s.held(user, sp, "Datastore.Allocate") {
		if !s.held(user, sp, "Datastore.AllocateSpace") {
			return permDenied(sp, "Datastore.AllocateSpace")
		}
		if op := fmt.Sprintf("/vms/%d", owner); !s.held(user, op, "VM.Backup") {
			return permDenied(op, "VM.Backup")
		}
	}
	emsg := fmt.Sprintf("unable to restore %s %d -", word, vmid)
	if existing != nil && (!force || existing.node != n.name || existing.kind != kind) {
		msg := fmt.Sprintf("%s %d already exists on node '%s'", existing.guestWord(), vmid, existing.node)
		if kind == "qemu" {
			msg = emsg + " " + msg
		}
		return fail(msg)
	}
	if existing != nil && kind == "lxc" && existing.status == "running" {
		return fail("can't overwrite running container")
	}
	st := s.storage(archStorage)
	var vol *volume
	for i := range s.volumes {
		v := &s.volumes[i]
		if v.volid == archive && st != nil && (st.shared || v.node == n.name) {
			vol = v
		}
	}
	if vol == nil {
		return fail(fmt.Sprintf("volume '%s' does not exist", archive))
	}
	if archKind != kind {
		return fail(fmt.Sprintf("%s archive '%s' is not a %s backup", emsg, archive, map[string]string{"qemu": "VM", "lxc": "container"}[kind]))
	}
	if existing != nil && existing.lock != "" {
		return fail(fmt.Sprintf("%s %s is locked (%s)", emsg, existing.guestWord(), existing.lock))
	}
	saved, ok := s.createState().backups[archive]
	if !ok {
		saved = s.guessBackup(vol, owner, kind)
	}
	dest := saved.storage
	if name := p["storage"]; name != "" {
		dest = name
	}
	dst := s.storage(dest)
	need := map[string]string{"qemu": "images", "lxc": "rootdir"}[kind]
	if dst == nil {
		return fail(fmt.Sprintf("storage '%s' does not exist", dest))
	}
	if !hasContent(dst.content, need) {
		what := map[string]string{"qemu": "vm images", "lxc": "container directories"}[kind]
		return badRequest(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support %s", dest, what)})
	}

	g := existing
	if g == nil {
		g = &guest{vmid: vmid, node: n.name, kind: kind, status: "stopped", name: saved.name}
		s.guests[vmid] = g
	}
	g.lock = "create"
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[kind]
	path := strings.TrimPrefix(archive, archStorage+":backup/")
	if st != nil {
		path = backupDir(st) + "/" + path
	}
	var startLog, progress []string
	if kind == "qemu" {
		startLog = []string{
			fmt.Sprintf("restore vma archive: zstd -q -d -c %s | vma extract -v -r /var/tmp/vzdumptmp%d.fifo - /var/tmp/vzdumptmp%d", path, vmid*7, vmid*7),
			"CFG: size: 612 name: qemu-server.conf",
			fmt.Sprintf("DEV: dev_id=1 size: %d devname: drive-scsi0", saved.maxdisk),
			"CTIME: " + time.Unix(vol.ctime, 0).UTC().Format("Mon Jan _2 15:04:05 2006"),
			fmt.Sprintf(`  Logical volume "vm-%d-disk-0" created.`, vmid),
			fmt.Sprintf("new volume ID is '%s:vm-%d-disk-0'", dest, vmid),
			fmt.Sprintf("map 'drive-scsi0' to '/dev/pve/vm-%d-disk-0' (write zeros = 0)", vmid),
		}
		for _, pct := range []int{1, 20, 40, 60, 80, 100} {
			progress = append(progress, fmt.Sprintf("progress %d%% (read %d bytes, duration %d sec)", pct, saved.maxdisk*int64(pct)/100, pct/25))
		}
	} else {
		startLog = []string{
			fmt.Sprintf(`  Logical volume "vm-%d-disk-0" created.`, vmid),
			"Creating filesystem with 2097152 4k blocks and 524288 inodes",
			"restoring '" + path + "' now..",
		}
	}
	start, unique := p["start"] == "1", p["unique"] == "1"
	t := s.startLongTask(n, prefix+"restore", strconv.Itoa(vmid), user, s.scale(2), startLog, progress, func() (string, []string) {
		g.lock = ""
		if existing != nil && kind == "qemu" && g.status == "running" {
			return emsg + " vm is running", nil
		}
		g.name, g.tags, g.description, g.ostype, g.storage = saved.name, saved.tags, saved.description, saved.ostype, dest
		g.cores, g.maxmem, g.maxdisk, g.balloon, g.onboot = saved.cores, saved.maxmem, saved.maxdisk, saved.balloon, saved.onboot
		g.ciuser, g.cipassword, g.sshkeys, g.ipconfig0, g.cloudinit = saved.ciuser, saved.cipassword, saved.sshkeys, saved.ipconfig0, saved.cloudinit
		g.memFrac, g.cpuBase = saved.memFrac, saved.cpuBase
		if g.memFrac == 0 {
			g.memFrac, g.cpuBase = 0.35, 0.04
		}
		// A restore brings back the backup's disks: no snapshot survives it.
		g.snapshots, g.parent = nil, ""
		if unique || g.mac == "" {
			sum := sha1.Sum(fmt.Appendf(nil, "restore/%d/%s", vmid, archive))
			g.mac = fmt.Sprintf("BC:24:11:%02X:%02X:%02X", sum[0], sum[1], sum[2])
		}
		log := []string{"rescan volumes..."}
		if kind == "lxc" {
			log = append(log, "Total bytes read: "+strconv.FormatInt(saved.maxdisk*37/100, 10), "Detected container architecture: amd64")
		}
		if start {
			g.setStatus("running", s.now())
			log = append(log, "Execute autostart")
		}
		return "OK", log
	})
	return taskResponse(t)
}

// guessBackup is what a backup this simulator did not make holds (the
// seeded nightly ones): the guest it was made of as it is now, or, when that
// guest is gone, what the volume tells.
func (s *Sim) guessBackup(v *volume, owner int, kind string) backupOf {
	if g := s.guests[owner]; g != nil && g.kind == kind {
		return backupOfGuest(g)
	}
	b := backupOf{kind: kind, name: v.notes, storage: "local-lvm", cores: 2, maxmem: 2 * gib, ostype: "l26",
		maxdisk: max(gib, (v.size*5+gib-1)/gib*gib)}
	if kind == "lxc" {
		b.maxmem, b.ostype = 512*mib, "debian"
	}
	if b.name == "" || !dnsNameRE.MatchString(b.name) {
		b.name = fmt.Sprintf("restored-%d", owner)
	}
	return b
}

// backupVolumes lists the backups a storage holds, for tests.
func (s *Sim) backupVolumes(storage string) []string {
	var out []string
	for _, v := range s.volumes {
		if v.storage == storage && v.content == "backup" {
			out = append(out, v.volid)
		}
	}
	slices.Sort(out)
	return out
}
