package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
)

type node struct {
	name     string
	id       int
	ip       string
	model    string
	cores    int
	maxmem   int64
	rootfs   int64
	cpuBase  float64
	bootedAt time.Time
}

type snapshot struct {
	name        string
	description string
	parent      string
	snaptime    int64
	vmstate     bool
}

type guest struct {
	vmid      int
	name      string
	node      string
	kind      string // qemu or lxc
	status    string // running or stopped
	template  bool
	tags      string
	cores     int
	maxmem    int64
	maxdisk   int64
	memFrac   float64 // share of maxmem in use while running
	cpuBase   float64 // typical CPU fraction while running
	startedAt time.Time
	lock      string
	pid       int
	parent    string // snapshot the current state derives from
	snapshots []*snapshot
	mac       string
	ostype    string
	// What the weekly operations read and change (config, clone, resize).
	description string
	onboot      bool
	balloon     int64  // qemu: minimum memory in bytes; 0 means ballooning off
	storage     string // the storage of its disk (scsi0 or rootfs)
	// cloud-init (qemu): set on clones from the template.
	ciuser, cipassword, sshkeys, ipconfig0 string
	cloudinit                              bool // qemu: has a cloud-init drive (ide2)
}

func (g *guest) setStatus(status string, now time.Time) {
	if g.status == status {
		return
	}
	g.status = status
	if status == "running" {
		g.startedAt = now
		g.pid = 100000 + g.vmid*7
	} else {
		g.pid = 0
	}
}

func (g *guest) snapshot(name string) *snapshot {
	for _, sn := range g.snapshots {
		if sn.name == name {
			return sn
		}
	}
	return nil
}

// guestWord is how PVE names the guest kind in messages.
func (g *guest) guestWord() string {
	if g.kind == "lxc" {
		return "CT"
	}
	return "VM"
}

// confPath is the config file PVE names in "does not exist" errors.
func confPath(node, kind string, vmid int) string {
	dir := "qemu-server"
	if kind == "lxc" {
		dir = "lxc"
	}
	return fmt.Sprintf("nodes/%s/%s/%d.conf", node, dir, vmid)
}

type storage struct {
	name    string
	typ     string // dir, lvmthin, nfs
	content string
	shared  bool
	total   int64
	baseUse int64 // space used by things other than listed volumes
}

type volume struct {
	storage string
	node    string // "" for shared storage
	volid   string
	content string
	format  string
	size    int64
	ctime   int64
	vmid    int
	notes   string
	subtype string
}

func (s *Sim) seed(now time.Time) {
	s.created = now
	s.nextPID = 0x2F1A0
	s.nodes = []*node{
		{name: s.nodeName("home"), id: 1, ip: "10.0.0.10", model: "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz", cores: 6, maxmem: 32 * gib, rootfs: 94 * gib, cpuBase: 0.11, bootedAt: now.Add(-19 * 24 * time.Hour)},
		{name: s.nodeName("pve"), id: 2, ip: "10.0.0.11", model: "AMD Ryzen 7 5700G with Radeon Graphics", cores: 16, maxmem: 64 * gib, rootfs: 94 * gib, cpuBase: 0.18, bootedAt: now.Add(-42 * 24 * time.Hour)},
		{name: s.nodeName("agent1"), id: 3, ip: "10.0.0.12", model: "Intel(R) N100", cores: 4, maxmem: 16 * gib, rootfs: 58 * gib, cpuBase: 0.07, bootedAt: now.Add(-7 * 24 * time.Hour)},
		{name: s.nodeName("agent"), id: 4, ip: "10.0.0.13", model: "Intel(R) Core(TM) i7-10710U CPU @ 1.10GHz", cores: 12, maxmem: 32 * gib, rootfs: 94 * gib, cpuBase: 0.09, bootedAt: now.Add(-7 * 24 * time.Hour)},
	}
	day := 24 * time.Hour
	// Guests are named by their demo VMID and node; the site renames both.
	qemu := func(vmid int, name, nodeName, status string, cores int, memGiB, diskGiB int64, cpu, memFrac float64, up time.Duration, tags string) *guest {
		return &guest{vmid: vmid, name: name, node: nodeName, kind: "qemu", status: status, cores: cores,
			maxmem: memGiB * gib, maxdisk: diskGiB * gib, cpuBase: cpu, memFrac: memFrac, startedAt: now.Add(-up), tags: tags, ostype: "l26"}
	}
	lxc := func(vmid int, name, nodeName, status string, cores int, memMiB, diskGiB int64, cpu, memFrac float64, up time.Duration, tags string) *guest {
		return &guest{vmid: vmid, name: name, node: nodeName, kind: "lxc", status: status, cores: cores,
			maxmem: memMiB * mib, maxdisk: diskGiB * gib, cpuBase: cpu, memFrac: memFrac, startedAt: now.Add(-up), tags: tags, ostype: "debian"}
	}
	guests := []*guest{
		qemu(s.vmid(100), "opnsense", s.nodeName("home"), "running", 2, 4, 32, 0.06, 0.45, 19*day, "network"),
		qemu(s.vmid(101), "web01", s.nodeName("pve"), "running", 4, 8, 64, 0.22, 0.61, 12*day, "prod;web"),
		qemu(s.vmid(102), "db01", s.nodeName("pve"), "running", 4, 16, 128, 0.31, 0.78, 12*day, "prod;db"),
		qemu(s.vmid(103), "mgmt", s.nodeName("agent1"), "running", 2, 4, 32, 0.04, 0.52, 7*day, "jarvis;mgmt"),
		qemu(s.vmid(104), "win11", s.nodeName("agent"), "stopped", 4, 8, 96, 0, 0, 0, "desktop"),
		qemu(s.vmid(105), "k3s-worker", s.nodeName("agent"), "running", 4, 8, 64, 0.27, 0.66, 6*day, "k8s"),
		qemu(s.vmid(106), "test-vm", s.nodeName("home"), "stopped", 1, 2, 16, 0, 0, 0, "lab"),
		qemu(s.vmid(9000), "debian13-cloudinit", s.nodeName("home"), "stopped", 2, 2, 8, 0, 0, 0, "template"),
		lxc(s.vmid(200), "pihole", s.nodeName("home"), "running", 1, 512, 8, 0.02, 0.38, 19*day, "network;dns"),
		lxc(s.vmid(201), "nginx-proxy", s.nodeName("pve"), "running", 2, 1024, 8, 0.03, 0.29, 12*day, "prod;web"),
		lxc(s.vmid(202), "grafana", s.nodeName("agent1"), "running", 2, 2048, 16, 0.05, 0.44, 7*day, "monitoring"),
		lxc(s.vmid(203), "old-wiki", s.nodeName("agent"), "stopped", 1, 1024, 8, 0, 0, 0, "archive"),
		lxc(s.vmid(204), "dev-ct", s.nodeName("agent1"), "stopped", 2, 2048, 16, 0, 0, 0, "lab"),
	}
	guests[7].template = true
	guests[7].cloudinit = true
	s.guests = map[int]*guest{}
	for _, g := range guests {
		if g.status == "running" {
			g.pid = 100000 + g.vmid*7
		}
		sum := sha1.Sum([]byte(g.name))
		g.mac = fmt.Sprintf("BC:24:11:%02X:%02X:%02X", sum[0], sum[1], sum[2])
		g.storage = "local-lvm"
		g.onboot = !g.template && g.vmid != s.vmid(106) && g.vmid != s.vmid(204)
		s.guests[g.vmid] = g
	}
	// Snapshot chains: web01 has two (current derives from the newer one),
	// nginx-proxy one, db01 one with RAM state.
	s.guests[s.vmid(101)].snapshots = []*snapshot{
		{name: "pre-upgrade", description: "before the Debian 13 upgrade", snaptime: now.Add(-30 * day).Unix()},
		{name: "before-php84", description: "PHP 8.4 rollout", parent: "pre-upgrade", snaptime: now.Add(-3 * day).Unix()},
	}
	s.guests[s.vmid(101)].parent = "before-php84"
	s.guests[s.vmid(102)].snapshots = []*snapshot{
		{name: "weekly", description: "weekly safety snapshot", snaptime: now.Add(-5 * day).Unix(), vmstate: true},
	}
	s.guests[s.vmid(102)].parent = "weekly"
	s.guests[s.vmid(201)].snapshots = []*snapshot{
		{name: "clean", description: "fresh install", snaptime: now.Add(-60 * day).Unix()},
	}
	s.guests[s.vmid(201)].parent = "clean"

	s.storages = []*storage{
		{name: "local", typ: "dir", content: "backup,iso,vztmpl", total: 94 * gib, baseUse: 9 * gib},
		{name: "local-lvm", typ: "lvmthin", content: "images,rootdir", total: 832 * gib},
		{name: "nfs-backup", typ: "nfs", content: "backup", shared: true, total: 3725 * gib, baseUse: 1210 * gib},
	}
	for _, n := range s.nodes {
		s.volumes = append(s.volumes,
			volume{storage: "local", node: n.name, volid: "local:iso/debian-13.1.0-amd64-netinst.iso", content: "iso", format: "iso", size: 754974720, ctime: now.Add(-50 * day).Unix()},
			volume{storage: "local", node: n.name, volid: "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst", content: "vztmpl", format: "tzst", size: 129720842, ctime: now.Add(-48 * day).Unix()},
		)
	}
	// Nightly vzdump at 02:00 for the last three nights, on the shared NFS.
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	vmids := s.sortedVMIDs()
	for night := 3; night >= 1; night-- {
		start := midnight.Add(-time.Duration(night) * day).Add(2 * time.Hour)
		offset := time.Duration(0)
		for _, vmid := range vmids {
			g := s.guests[vmid]
			if g.template {
				continue
			}
			ct := start.Add(offset)
			offset += 97 * time.Second
			format, ext := "vma.zst", "vma.zst"
			if g.kind == "lxc" {
				format, ext = "tar.zst", "tar.zst"
			}
			size := g.maxdisk/5 + int64(vmid)*1_048_576 + int64(night)*12_582_912
			s.volumes = append(s.volumes, volume{
				storage: "nfs-backup",
				volid:   fmt.Sprintf("nfs-backup:backup/vzdump-%s-%d-%s.%s", g.kind, vmid, ct.Format("2006_01_02-15_04_05"), ext),
				content: "backup", format: format, size: size, ctime: ct.Unix(), vmid: vmid, notes: g.name, subtype: g.kind,
			})
		}
		s.seedBackupTasks(start, offset)
	}
	s.seedHistory(now)
}

// seedBackupTasks records one finished vzdump task per node for a night.
func (s *Sim) seedBackupTasks(start time.Time, took time.Duration) {
	for _, n := range s.nodes {
		var log []string
		var ids []int
		for _, vmid := range s.sortedVMIDs() {
			if g := s.guests[vmid]; g.node == n.name && !g.template {
				ids = append(ids, vmid)
			}
		}
		for _, vmid := range ids {
			log = append(log,
				fmt.Sprintf("INFO: Starting Backup of VM %d (%s)", vmid, s.guests[vmid].kind),
				fmt.Sprintf("INFO: Finished Backup of VM %d (00:01:37)", vmid))
		}
		log = append(log, "INFO: Backup job finished successfully", "TASK OK")
		s.addFinishedTask(n, "vzdump", "", "root@pam", start, start.Add(took), "OK", log)
	}
}

func (s *Sim) seedHistory(now time.Time) {
	byName := map[string]*node{}
	for _, n := range s.nodes {
		byName[strings.TrimPrefix(n.name, s.opts.Site.NodePrefix)] = n
	}
	id := func(demo int) string { return strconv.Itoa(s.vmid(demo)) }
	hour := time.Hour
	s.addFinishedTask(byName["pve"], "qmsnapshot", id(101), "root@pam", now.Add(-72*hour), now.Add(-72*hour+4*time.Second), "OK",
		[]string{fmt.Sprintf("snapshotting 'drive-scsi0' (local-lvm:vm-%s-disk-0)", id(101)), fmt.Sprintf(`  Logical volume "snap_vm-%s-disk-0_before-php84" created.`, id(101)), "TASK OK"})
	s.addFinishedTask(byName["agent"], "qmstart", id(104), "root@pam", now.Add(-26*hour), now.Add(-26*hour+2*time.Second),
		"start failed: QEMU exited with code 1",
		[]string{"kvm: -device vfio-pci,host=0000:01:00.0: vfio 0000:01:00.0: failed to open /dev/vfio/1: No such file or directory", "TASK ERROR: start failed: QEMU exited with code 1"})
	s.addFinishedTask(byName["agent"], "vzshutdown", id(203), "root@pam", now.Add(-20*hour), now.Add(-20*hour+6*time.Second), "OK", []string{"TASK OK"})
	s.addFinishedTask(byName["home"], "aptupdate", "", "root@pam", now.Add(-5*hour), now.Add(-5*hour+11*time.Second), "OK",
		[]string{"starting apt-get update", "Hit:1 http://deb.debian.org/debian trixie InRelease", "TASK OK"})
	s.addFinishedTask(byName["agent1"], "qmstart", id(103), "root@pam", now.Add(-168*hour+90*time.Second), now.Add(-168*hour+93*time.Second), "OK", []string{"TASK OK"})
}

func (s *Sim) sortedVMIDs() []int {
	ids := make([]int, 0, len(s.guests))
	for id := range s.guests {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func (s *Sim) node(name string) *node {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (s *Sim) storage(name string) *storage {
	for _, st := range s.storages {
		if st.name == name {
			return st
		}
	}
	return nil
}

// wave is a slow, deterministic wobble in [-1, 1] so usage figures move a
// little between polls without randomness.
func wave(now time.Time, seed int) float64 {
	return math.Sin(float64(now.Unix())/240 + float64(seed))
}

// guestUsage is what a running guest reports now.
type guestUsage struct {
	cpu                          float64
	mem, disk                    int64
	uptime                       int64
	netin, netout, dread, dwrite int64
}

func (g *guest) usage(now time.Time) guestUsage {
	if g.status != "running" {
		return guestUsage{}
	}
	up := int64(now.Sub(g.startedAt).Seconds())
	if up < 0 {
		up = 0
	}
	u := guestUsage{
		cpu:    math.Max(0, g.cpuBase*(1+0.25*wave(now, g.vmid))),
		mem:    int64(float64(g.maxmem) * g.memFrac * (1 + 0.03*wave(now, g.vmid+7))),
		uptime: up,
		netin:  up * int64(2000+g.vmid*3),
		netout: up * int64(900+g.vmid*2),
		dread:  up * int64(4096+g.vmid),
		dwrite: up * int64(8192+g.vmid),
	}
	if g.kind == "lxc" {
		u.disk = g.maxdisk * 37 / 100
	}
	return u
}

// nodeUsage sums what the node's running guests use, plus the host's own share.
func (s *Sim) nodeUsage(n *node, now time.Time) (cpu float64, mem int64) {
	cpu = n.cpuBase * (1 + 0.2*wave(now, n.id*31))
	mem = 3*gib + int64(n.id)*211*mib
	for _, g := range s.guests {
		if g.node != n.name || g.status != "running" {
			continue
		}
		u := g.usage(now)
		cpu += u.cpu * float64(g.cores) / float64(n.cores)
		mem += u.mem
	}
	return math.Min(cpu, 1), min(mem, n.maxmem)
}

// storageUsed is the used bytes of a storage on a node.
func (s *Sim) storageUsed(st *storage, nodeName string) int64 {
	used := st.baseUse
	if st.name == "local-lvm" {
		for _, g := range s.guests {
			if g.node == nodeName {
				used += g.maxdisk * 41 / 100
			}
		}
	}
	for _, v := range s.volumes {
		if v.storage == st.name && (st.shared || v.node == nodeName) {
			used += v.size
		}
	}
	return min(used, st.total)
}

// digest is the config digest PVE returns (SHA-1 of the config text).
func digest(parts ...any) string {
	sum := sha1.Sum(fmt.Append(nil, parts...))
	return hex.EncodeToString(sum[:])
}
