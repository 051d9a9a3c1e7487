package sshsim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// poolDisks are the disks of the root pool: the first disk, mirrored with the
// second when it is the same size (as the installer sets up RAID1).
func (n *simNode) poolDisks() []Disk {
	d := n.facts.Disks
	if len(d) > 1 && d[1].SizeGiB == d[0].SizeGiB {
		return d[:2]
	}
	return d[:1]
}

// guestDiskGiB is what guests have written to their thin volumes.
func (n *simNode) guestDiskGiB() int {
	total := 0
	for _, g := range n.facts.Guests {
		total += g.DiskGB / 3
	}
	return total
}

func cmdZpool(p *proc) int {
	n := p.node
	if len(p.args) < 2 || (p.args[1] != "list" && p.args[1] != "status") {
		if len(p.args) < 2 {
			p.errorf("missing command")
			return 2
		}
		p.errorf("cannot %s: permission denied", p.args[1])
		return 1
	}
	if n.facts.Storage != "zfs" {
		p.printf("no pools available\n")
		return 0
	}
	disks := n.poolDisks()
	size := disks[0].SizeGiB - 1
	alloc := n.guestDiskGiB() + 9
	if p.args[1] == "list" {
		p.printf("NAME    SIZE  ALLOC   FREE  CKPOINT  EXPANDSZ   FRAG    CAP  DEDUP    HEALTH  ALTROOT\n")
		p.printf("rpool   %3dG  %4dG  %4dG        -         -     4%%    %2d%%  1.00x    ONLINE  -\n", size, alloc, size-alloc, alloc*100/size)
		return 0
	}
	scrub := time.Now().UTC().AddDate(0, 0, -int(time.Now().Weekday())).Truncate(24 * time.Hour).Add(26 * time.Minute)
	p.printf("  pool: rpool\n state: ONLINE\n  scan: scrub repaired 0B in 00:02:11 with 0 errors on %s\nconfig:\n\n", scrub.Format("Mon Jan _2 15:04:05 2006"))
	p.printf("\t%-52s %-8s %4s %5s %5s\n", "NAME", "STATE", "READ", "WRITE", "CKSUM")
	p.printf("\t%-52s %-8s %4d %5d %5d\n", "rpool", "ONLINE", 0, 0, 0)
	indent := "  "
	if len(disks) > 1 {
		p.printf("\t%-52s %-8s %4d %5d %5d\n", "  mirror-0", "ONLINE", 0, 0, 0)
		indent = "    "
	}
	for _, d := range disks {
		id := fmt.Sprintf("%s%s-%s_%s-part3", indent, diskBus(d), strings.ReplaceAll(d.Model, " ", "_"), d.Serial)
		p.printf("\t%-52s %-8s %4d %5d %5d\n", id, "ONLINE", 0, 0, 0)
	}
	p.printf("\nerrors: No known data errors\n")
	return 0
}

func diskBus(d Disk) string {
	if strings.HasPrefix(d.Name, "nvme") {
		return "nvme"
	}
	return "ata"
}

func cmdZfs(p *proc) int {
	n := p.node
	if len(p.args) < 2 || (p.args[1] != "list" && p.args[1] != "get") {
		p.errorf("cannot run zfs %s: permission denied", strings.Join(p.args[1:], " "))
		return 1
	}
	if n.facts.Storage != "zfs" {
		p.printf("no datasets available\n")
		return 0
	}
	if p.args[1] == "get" {
		p.printf("NAME   PROPERTY     VALUE  SOURCE\nrpool  compression  on     local\n")
		return 0
	}
	size := n.poolDisks()[0].SizeGiB - 1
	used := n.guestDiskGiB() + 9
	avail := size*9/10 - used
	p.printf("%-32s %6s %6s %6s %s\n", "NAME", "USED", "AVAIL", "REFER", "MOUNTPOINT")
	p.printf("%-32s %5dG %5dG %6s %s\n", "rpool", used, avail, "104K", "/rpool")
	p.printf("%-32s %5.1fG %5dG %6s %s\n", "rpool/ROOT", 4.4, avail, "96K", "/rpool/ROOT")
	p.printf("%-32s %5.1fG %5dG %5.1fG %s\n", "rpool/ROOT/pve-1", 4.4, avail, 4.4, "/")
	p.printf("%-32s %5dG %5dG %6s %s\n", "rpool/data", used-5, avail, "96K", "/rpool/data")
	for _, g := range n.facts.Guests {
		name, mount := fmt.Sprintf("rpool/data/vm-%d-disk-0", g.VMID), "-"
		if g.Kind == "lxc" {
			name, mount = fmt.Sprintf("rpool/data/subvol-%d-disk-0", g.VMID), "/"+name
		}
		p.printf("%-32s %5dG %5dG %5dG %s\n", name, g.DiskGB/3, avail, g.DiskGB/3, mount)
	}
	p.printf("%-32s %6s %5dG %6s %s\n", "rpool/var-lib-vz", "1.2G", avail, "1.2G", "/var/lib/vz")
	return 0
}

func cmdLvs(p *proc) int {
	n := p.node
	if n.facts.Storage != "lvm" {
		return 0
	}
	size := n.facts.Disks[0].SizeGiB
	p.printf("  %-14s %-3s %-10s %8s %-4s %-6s %6s %6s\n", "LV", "VG", "Attr", "LSize", "Pool", "Origin", "Data%", "Meta%")
	p.printf("  %-14s %-3s %-10s %7.2fg %-4s %-6s %6.2f %6.2f\n", "data", "pve", "twi-aotz--", float64(size*3/4), "", "", float64(n.guestDiskGiB())*100/float64(size*3/4), 1.62)
	p.printf("  %-14s %-3s %-10s %7.2fg\n", "root", "pve", "-wi-ao----", float64(size/10))
	p.printf("  %-14s %-3s %-10s %7.2fg\n", "swap", "pve", "-wi-ao----", 8.0)
	for _, g := range n.facts.Guests {
		p.printf("  %-14s %-3s %-10s %7.2fg %-4s %-6s %6.2f\n", fmt.Sprintf("vm-%d-disk-0", g.VMID), "pve", "Vwi-aotz--", float64(g.DiskGB), "data", "", 33.33)
	}
	return 0
}

func cmdVgs(p *proc) int {
	n := p.node
	if n.facts.Storage != "lvm" {
		return 0
	}
	p.printf("  VG  #PV #LV #SN Attr   VSize    VFree \n")
	p.printf("  pve   1 %3d   0 wz--n- <%d.76g 16.00g\n", 3+len(n.facts.Guests), n.facts.Disks[0].SizeGiB-1)
	return 0
}

func cmdPvs(p *proc) int {
	n := p.node
	if n.facts.Storage != "lvm" {
		return 0
	}
	p.printf("  PV             VG  Fmt  Attr PSize    PFree \n")
	p.printf("  /dev/%-9s pve lvm2 a--  <%d.76g 16.00g\n", partition(n.facts.Disks[0].Name, 3), n.facts.Disks[0].SizeGiB-1)
	return 0
}

const smartHeader = "smartctl 7.4 2024-10-15 r5620 [x86_64-linux-" + kernelRelease + "] (local build)\nCopyright (C) 2002-23, Bruce Allen, Christian Franke, www.smartmontools.org\n\n"

func cmdSmartctl(p *proc) int {
	var opts []string
	var dev string
	for _, a := range p.args[1:] {
		if strings.HasPrefix(a, "-") {
			opts = append(opts, a)
		} else {
			dev = a
		}
	}
	if slices.Contains(opts, "--scan") {
		for _, d := range p.node.facts.Disks {
			kind := "scsi"
			if strings.HasPrefix(d.Name, "nvme") {
				kind = "nvme"
			}
			p.printf("/dev/%s -d %s # /dev/%s, %s device\n", d.Name, kind, d.Name, strings.ToUpper(kind))
		}
		return 0
	}
	for _, o := range opts {
		if o == "-t" || strings.HasPrefix(o, "--test") || o == "-s" || o == "-X" {
			p.errorf("smartctl: starting self-tests is not permitted here")
			return 1
		}
	}
	p.stdout.WriteString(smartHeader)
	if dev == "" {
		p.printf("ERROR: smartctl requires a device name as the final command-line argument.\n")
		return 1
	}
	i := slices.IndexFunc(p.node.facts.Disks, func(d Disk) bool { return "/dev/"+d.Name == dev })
	if i < 0 {
		p.printf("Smartctl open device: %s failed: No such device\n", dev)
		return 2
	}
	d := p.node.facts.Disks[i]
	all := slices.Contains(opts, "-a") || slices.Contains(opts, "-x") || slices.Contains(opts, "--all")
	if all || slices.Contains(opts, "-i") || slices.Contains(opts, "--info") {
		p.printf("=== START OF INFORMATION SECTION ===\nDevice Model:     %s\nSerial Number:    %s\nUser Capacity:    %s bytes [%d GB]\n",
			d.Model, d.Serial, groupThousands(int64(d.SizeGiB)<<30), int64(d.SizeGiB)<<30/1e9)
		if d.Rotations > 0 {
			p.printf("Rotation Rate:    %d rpm\n", d.Rotations)
		} else {
			p.printf("Rotation Rate:    Solid State Device\n")
		}
		p.printf("SMART support is: Enabled\n\n")
	}
	health := "PASSED"
	code := 0
	if !d.Healthy {
		health, code = "FAILED!\nDrive failure expected in less than 24 hours. SAVE ALL DATA.", 8|16
	}
	if all || slices.Contains(opts, "-H") || slices.Contains(opts, "--health") {
		p.printf("=== START OF READ SMART DATA SECTION ===\nSMART overall-health self-assessment test result: %s\n", health)
	}
	if all {
		pending := 0
		if !d.Healthy {
			pending = 8
		}
		p.printf("\nID# ATTRIBUTE_NAME          FLAG     VALUE WORST THRESH TYPE      UPDATED  WHEN_FAILED RAW_VALUE\n")
		p.printf("  5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       %d\n", pending*3)
		p.printf("  9 Power_On_Hours          0x0032   091   091   000    Old_age   Always       -       %d\n", 8000+len(d.Serial)*311)
		p.printf("194 Temperature_Celsius     0x0022   064   049   000    Old_age   Always       -       %d\n", 36)
		p.printf("197 Current_Pending_Sector  0x0012   100   100   000    Old_age   Always       -       %d\n", pending)
	}
	return code
}

func groupThousands(v int64) string {
	s := strconv.FormatInt(v, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func cmdPvecm(p *proc) int {
	if len(p.args) < 2 || (p.args[1] != "status" && p.args[1] != "nodes") {
		p.errorf("sshsim: pvecm %s is not simulated", strings.Join(p.args[1:], " "))
		return 1
	}
	all := p.node.sim.order
	self := slices.Index(all, p.node.facts.Name) + 1
	if p.args[1] == "status" {
		p.printf("Cluster information\n-------------------\nName:             homelab\nConfig Version:   %d\nTransport:        knet\nSecure auth:      on\n\n", len(all))
		p.printf("Quorum information\n------------------\nDate:             %s\nQuorum provider:  corosync_votequorum\nNodes:            %d\nNode ID:          0x%08x\nRing ID:          1.2a\nQuorate:          Yes\n\n",
			time.Now().UTC().Format("Mon Jan _2 15:04:05 2006"), len(all), self)
		p.printf("Votequorum information\n----------------------\nExpected votes:   %d\nHighest expected: %d\nTotal votes:      %d\nQuorum:           %d  \nFlags:            Quorate \n\n",
			len(all), len(all), len(all), len(all)/2+1)
		p.printf("Membership information\n----------------------\n    Nodeid      Votes Name\n")
		for i, name := range all {
			local := ""
			if i+1 == self {
				local = " (local)"
			}
			p.printf("0x%08x          1 %s%s\n", i+1, ipOnly(p.node.sim.nodes[name].facts.Address), local)
		}
		return 0
	}
	p.printf("\nMembership information\n----------------------\n    Nodeid      Votes Name\n")
	for i, name := range all {
		local := ""
		if i+1 == self {
			local = " (local)"
		}
		p.printf("%10d %10d %s%s\n", i+1, 1, name, local)
	}
	return 0
}

func (n *simNode) guests(kind string) []Guest {
	var out []Guest
	for _, g := range n.facts.Guests {
		if g.Kind == kind {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b Guest) int { return a.VMID - b.VMID })
	return out
}

func cmdQm(p *proc) int  { return guestTool(p, "qemu") }
func cmdPct(p *proc) int { return guestTool(p, "lxc") }

// guestTool answers the read-only subcommands of qm and pct.
func guestTool(p *proc, kind string) int {
	tool := p.args[0]
	if len(p.args) < 2 {
		p.errorf("ERROR: no command specified")
		return 255
	}
	guests := p.node.guests(kind)
	switch sub := p.args[1]; sub {
	case "list":
		if kind == "qemu" {
			p.printf("      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID       \n")
			for _, g := range guests {
				pid := 0
				if g.Status == "running" {
					pid = guestPID(g)
				}
				p.printf("%10d %-20s %-10s %-10d %12.2f %-10d\n", g.VMID, g.Name, g.Status, g.MemMiB, float64(g.DiskGB), pid)
			}
		} else {
			p.printf("VMID       Status     Lock         Name                \n")
			for _, g := range guests {
				p.printf("%-10d %-10s %-12s %-20s\n", g.VMID, g.Status, "", g.Name)
			}
		}
		return 0
	case "status", "config":
		if len(p.args) < 3 {
			p.errorf("400 not enough arguments\n%s %s <vmid>", tool, sub)
			return 255
		}
		id, _ := strconv.Atoi(p.args[2])
		i := slices.IndexFunc(guests, func(g Guest) bool { return g.VMID == id })
		if i < 0 {
			p.errorf("Configuration file 'nodes/%s/%s/%s.conf' does not exist", p.node.facts.Name, map[string]string{"qemu": "qemu-server", "lxc": "lxc"}[kind], p.args[2])
			return 2
		}
		g := guests[i]
		if sub == "status" {
			p.printf("status: %s\n", g.Status)
			return 0
		}
		if kind == "qemu" {
			p.printf("boot: order=scsi0;net0\ncores: 2\nmemory: %d\nname: %s\nnet0: virtio=%s,bridge=vmbr0,firewall=1\nostype: l26\nscsi0: local-%s:vm-%d-disk-0,size=%dG\nscsihw: virtio-scsi-single\n",
				g.MemMiB, g.Name, strings.ToUpper(mac(p.node.facts.Name, strconv.Itoa(g.VMID))), storageName(p.node), g.VMID, g.DiskGB)
		} else {
			p.printf("arch: amd64\ncores: 1\nhostname: %s\nmemory: %d\nnet0: name=eth0,bridge=vmbr0,hwaddr=%s,ip=dhcp,type=veth\nostype: debian\nrootfs: local-%s:subvol-%d-disk-0,size=%dG\nunprivileged: 1\n",
				g.Name, g.MemMiB, strings.ToUpper(mac(p.node.facts.Name, strconv.Itoa(g.VMID))), storageName(p.node), g.VMID, g.DiskGB)
		}
		return 0
	}
	p.errorf("sshsim: %s %s is not simulated", tool, p.args[1])
	return 1
}

func storageName(n *simNode) string {
	if n.facts.Storage == "zfs" {
		return "zfs"
	}
	return "lvm"
}

func cmdPvesh(p *proc) int {
	if len(p.args) < 3 || p.args[1] != "get" {
		p.errorf("sshsim: only 'pvesh get' is simulated")
		return 1
	}
	asJSON := false
	for _, a := range p.args[3:] {
		if a == "--output-format=json" || a == "json" || a == "--output-format=json-pretty" || a == "json-pretty" {
			asJSON = true
		}
	}
	var data any
	switch strings.TrimSuffix(p.args[2], "/") {
	case "/version":
		data = map[string]any{"release": "9.0", "repoid": "025864202ebb6109", "version": pveVersion}
	case "/nodes":
		var nodes []map[string]any
		for _, name := range p.node.sim.order {
			f := p.node.sim.nodes[name].facts
			nodes = append(nodes, map[string]any{"node": name, "status": "online", "maxcpu": 2 * f.Cores, "maxmem": int64(f.MemTotalMiB) << 20, "type": "node"})
		}
		data = nodes
	default:
		p.errorf("No 'get' handler defined for '%s'", p.args[2])
		return 2
	}
	if asJSON {
		b, _ := json.Marshal(data)
		p.printf("%s\n", b)
		return 0
	}
	if m, ok := data.(map[string]any); ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p.printf("%-8s %v\n", k, m[k])
		}
		return 0
	}
	for _, row := range data.([]map[string]any) {
		p.printf("%-10v %-8v %4v cpus %6d MiB\n", row["node"], row["status"], row["maxcpu"], row["maxmem"].(int64)>>20)
	}
	return 0
}

func cmdPveversion(p *proc) int {
	p.printf("pve-manager/%s/025864202ebb6109 (running kernel: %s)\n", pveVersion, kernelRelease)
	if hasFlag(p.args[1:], "-v", "--verbose") {
		p.printf("proxmox-ve: 9.0.0 (running kernel: %s)\nqemu-server: 9.0.16\npve-container: 6.0.9\ncorosync: 3.1.9-pve2\nzfsutils-linux: 2.3.3-pve1\n", kernelRelease)
	}
	return 0
}
