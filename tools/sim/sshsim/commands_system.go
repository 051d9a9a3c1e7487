package sshsim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

func hasFlag(args []string, flags ...string) bool {
	for _, a := range args {
		if slices.Contains(flags, a) {
			return true
		}
	}
	return false
}

func cmdHostname(p *proc) int {
	switch {
	case hasFlag(p.args[1:], "-I", "--all-ip-addresses"):
		p.printf("%s \n", ipOnly(p.node.facts.Address))
	case hasFlag(p.args[1:], "-f", "--fqdn", "--long"):
		p.printf("%s.lan\n", p.node.facts.Name)
	case len(p.args) > 1 && !strings.HasPrefix(p.args[1], "-"):
		p.errorf("hostname: you must be root to change the host name")
		return 1
	default:
		p.printf("%s\n", p.node.facts.Name)
	}
	return 0
}

func cmdUptime(p *proc) int {
	up := p.node.uptime()
	if hasFlag(p.args[1:], "-p", "--pretty") {
		p.printf("%s\n", prettyUptime(up))
		return 0
	}
	if hasFlag(p.args[1:], "-s", "--since") {
		p.printf("%s\n", p.node.bootTime().Format(time.DateTime))
		return 0
	}
	l := p.node.facts.Load
	p.printf(" %s %s,  1 user,  load average: %.2f, %.2f, %.2f\n", time.Now().UTC().Format(time.TimeOnly), upSince(up), l[0], l[1], l[2])
	return 0
}

// upSince is the "up …" part of uptime and top, as procps prints it: days
// only when there are any, then "H:MM", or "M min" within the first hour of a day.
func upSince(up time.Duration) string {
	days := int(up.Hours()) / 24
	hours, mins := int(up.Hours())%24, int(up.Minutes())%60
	s := "up "
	switch {
	case days == 1:
		s += "1 day, "
	case days > 1:
		s += fmt.Sprintf("%d days, ", days)
	}
	if hours > 0 {
		return s + fmt.Sprintf("%2d:%02d", hours, mins)
	}
	return s + fmt.Sprintf("%d min", mins)
}

// prettyUptime is `uptime -p` as procps-ng 4.0 writes it: the non-zero
// larger units, then always the minutes, even 0 ("up 9 hours, 0 minutes"),
// singular for one.
func prettyUptime(up time.Duration) string {
	mins := int(up.Minutes())
	units := []struct {
		name string
		n    int
	}{{"week", mins / (7 * 24 * 60)}, {"day", mins / (24 * 60) % 7}, {"hour", mins / 60 % 24}, {"minute", mins % 60}}
	var parts []string
	for i, u := range units {
		if u.n == 0 && i < len(units)-1 {
			continue
		}
		part := fmt.Sprintf("%d %s", u.n, u.name)
		if u.n != 1 {
			part += "s"
		}
		parts = append(parts, part)
	}
	return "up " + strings.Join(parts, ", ")
}

func cmdDate(p *proc) int {
	now := time.Now().UTC()
	for _, a := range p.args[1:] {
		switch {
		case a == "-s" || strings.HasPrefix(a, "--set"):
			p.errorf("date: cannot set date: Operation not permitted")
			return 1
		case a == "+%s":
			p.printf("%d\n", now.Unix())
			return 0
		case a == "-R" || a == "--rfc-email":
			p.printf("%s\n", now.Format(time.RFC1123Z))
			return 0
		case strings.HasPrefix(a, "-I") || strings.HasPrefix(a, "--iso-8601"):
			layout, ok := isoLayout(strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(a, "--iso-8601"), "-I"), "="))
			if !ok {
				p.errorf("date: invalid argument '%s' for '--iso-8601'", a)
				return 1
			}
			p.printf("%s\n", now.Format(layout))
			return 0
		}
	}
	p.printf("%s\n", now.Format("Mon Jan _2 15:04:05 MST 2006"))
	return 0
}

// isoLayout is the layout of date -I[TIMESPEC]; coreutils writes the zone
// as +00:00, never Z.
func isoLayout(spec string) (string, bool) {
	switch spec {
	case "", "date":
		return "2006-01-02", true
	case "hours":
		return "2006-01-02T15-07:00", true
	case "minutes":
		return "2006-01-02T15:04-07:00", true
	case "seconds":
		return "2006-01-02T15:04:05-07:00", true
	case "ns":
		return "2006-01-02T15:04:05,000000000-07:00", true
	}
	return "", false
}

func cmdUname(p *proc) int {
	f := p.node.facts
	parts := map[string]string{"s": "Linux", "n": f.Name, "r": kernelRelease, "v": kernelBuild, "m": "x86_64", "o": "GNU/Linux"}
	flags := ""
	for _, a := range p.args[1:] {
		if a == "--all" {
			a = "-a"
		}
		flags += strings.TrimPrefix(a, "-")
	}
	if flags == "" {
		flags = "s"
	}
	if strings.Contains(flags, "a") {
		flags = "snrvmo"
	}
	var out []string
	for _, k := range []string{"s", "n", "r", "v", "m", "o"} {
		if strings.Contains(flags, k) {
			out = append(out, parts[k])
		}
	}
	p.printf("%s\n", strings.Join(out, " "))
	return 0
}

func cmdNproc(p *proc) int {
	p.printf("%d\n", p.node.facts.Cores)
	return 0
}

func cmdWho(p *proc) int {
	login := time.Now().UTC().Add(-47 * time.Minute)
	if hasFlag(p.args[1:], "-b") {
		p.printf("         system boot  %s\n", p.node.bootTime().Format("2006-01-02 15:04"))
		return 0
	}
	p.printf("root     pts/0        %s (10.0.0.50)\n", login.Format("2006-01-02 15:04"))
	return 0
}

// human formats KiB the way df -h and free -h do.
func human(kib int64, freeStyle bool) string {
	if kib == 0 {
		if freeStyle {
			return "0B"
		}
		return "0" // df -h prints a bare 0
	}
	units := []string{"K", "M", "G", "T", "P"}
	if freeStyle {
		units = []string{"Ki", "Mi", "Gi", "Ti", "Pi"}
	}
	v := float64(kib)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 10 && i > 0 {
		return fmt.Sprintf("%.1f%s", v, units[i])
	}
	return fmt.Sprintf("%.0f%s", v, units[i])
}

func cmdFree(p *proc) int {
	m := p.node.memory()
	format := func(kib int64) string { return fmt.Sprint(kib) }
	for _, a := range p.args[1:] {
		switch a {
		case "-h", "--human":
			format = func(kib int64) string { return human(kib, true) }
		case "-m", "--mebi":
			format = func(kib int64) string { return fmt.Sprint(kib / 1024) }
		case "-g", "--gibi":
			format = func(kib int64) string { return fmt.Sprint(kib / 1024 / 1024) }
		case "-b", "--bytes":
			format = func(kib int64) string { return fmt.Sprint(kib * 1024) }
		case "-k", "--kibi", "-w", "--wide", "-t", "--total":
		default:
			p.errorf("free: invalid option -- '%s'", strings.TrimLeft(a, "-"))
			return 1
		}
	}
	p.printf("               total        used        free      shared  buff/cache   available\n")
	p.printf("Mem:    %12s%12s%12s%12s%12s%12s\n", format(m.total), format(m.used), format(m.free), format(m.shared), format(m.buffers+m.cached), format(m.available))
	p.printf("Swap:   %12s%12s%12s\n", format(m.swapTotal), format(m.swapUsed), format(m.swapTotal-m.swapUsed))
	return 0
}

// filesystem is one mounted filesystem, sizes in KiB.
type filesystem struct {
	source, fstype, target, options string
	size, used                      int64
}

func (n *simNode) filesystems() []filesystem {
	memKiB := int64(n.facts.MemTotalMiB) * 1024
	disk := int64(n.facts.Disks[0].SizeGiB) * 1024 * 1024
	var guestKiB int64
	for _, g := range n.facts.Guests {
		guestKiB += int64(g.DiskGB) * 1024 * 1024 / 3 // thin: a third written
	}
	fs := []filesystem{
		{"udev", "devtmpfs", "/dev", "rw,nosuid,relatime,mode=755,inode64", memKiB / 2, 0},
		{"tmpfs", "tmpfs", "/run", "rw,nosuid,nodev,noexec,relatime,size=10%,mode=755,inode64", memKiB / 10, 2124},
	}
	if n.facts.Storage == "zfs" {
		free := disk*9/10 - guestKiB - 9*1024*1024
		fs = append(fs,
			filesystem{"rpool/ROOT/pve-1", "zfs", "/", "rw,relatime,xattr,noacl,casesensitive", free + 4_600_000, 4_600_000},
			filesystem{"rpool", "zfs", "/rpool", "rw,relatime,xattr,noacl,casesensitive", free + 128, 128},
			filesystem{"rpool/ROOT", "zfs", "/rpool/ROOT", "rw,relatime,xattr,noacl,casesensitive", free + 128, 128},
			filesystem{"rpool/data", "zfs", "/rpool/data", "rw,relatime,xattr,noacl,casesensitive", free + 128, 128},
		)
	} else {
		root := disk / 10
		fs = append(fs,
			filesystem{"/dev/mapper/pve-root", "ext4", "/", "rw,relatime,errors=remount-ro", root, root * 9 / 40},
			filesystem{"/dev/" + partition(n.facts.Disks[0].Name, 2), "vfat", "/boot/efi", "rw,relatime,fmask=0022,dmask=0022,codepage=437", 1048576, 8912},
		)
	}
	fs = append(fs,
		filesystem{"tmpfs", "tmpfs", "/dev/shm", "rw,nosuid,nodev,inode64", memKiB / 2, 46 * 1024},
		filesystem{"/dev/fuse", "fuse", "/etc/pve", "rw,nosuid,nodev,relatime,user_id=0,group_id=0,default_permissions,allow_other", 131072, 36},
		filesystem{"tmpfs", "tmpfs", "/run/user/0", "rw,nosuid,nodev,relatime,size=10%,mode=700,inode64", memKiB / 10, 0},
	)
	return fs
}

func partition(disk string, n int) string {
	if strings.HasPrefix(disk, "nvme") {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

func cmdDf(p *proc) int {
	humanSizes, withType := false, false
	var targets []string
	for _, a := range p.args[1:] {
		switch {
		case a == "-h" || a == "--human-readable":
			humanSizes = true
		case a == "-T" || a == "--print-type":
			withType = true
		case a == "-hT" || a == "-Th":
			humanSizes, withType = true, true
		case strings.HasPrefix(a, "-"):
		default:
			targets = append(targets, a)
		}
	}
	size := func(kib int64) string {
		if humanSizes {
			return human(kib, false)
		}
		return fmt.Sprint(kib)
	}
	header, availHeader := "1K-blocks", "Available"
	if humanSizes {
		header, availHeader = "Size", "Avail"
	}
	typeCol := func(s string) string {
		if withType {
			return fmt.Sprintf(" %-8s", s)
		}
		return ""
	}
	p.printf("%-20s%s %10s %10s %10s %4s %s\n", "Filesystem", typeCol("Type"), header, "Used", availHeader, "Use%", "Mounted on")
	code := 0
	fss := p.node.filesystems()
	for _, t := range targets {
		if !slices.ContainsFunc(fss, func(f filesystem) bool { return f.target == t || f.source == t }) && t != "/" {
			p.errorf("df: %s: No such file or directory", t)
			code = 1
		}
	}
	for _, f := range fss {
		if len(targets) > 0 && !slices.Contains(targets, f.target) && !slices.Contains(targets, f.source) {
			continue
		}
		pct := "0%"
		if f.size > 0 {
			pct = fmt.Sprintf("%d%%", (f.used*100+f.size-1)/f.size)
		}
		p.printf("%-20s%s %10s %10s %10s %4s %s\n", f.source, typeCol(f.fstype), size(f.size), size(f.used), size(f.size-f.used), pct, f.target)
	}
	return code
}

func cmdMount(p *proc) int {
	if len(p.args) > 1 && !hasFlag(p.args[1:], "-l") {
		p.errorf("mount: only root can do that")
		return 1
	}
	for _, f := range p.node.filesystems() {
		p.printf("%s on %s type %s (%s)\n", f.source, f.target, f.fstype, f.options)
	}
	return 0
}

func cmdFindmnt(p *proc) int {
	fss := p.node.filesystems()
	// The root filesystem heads the tree.
	slices.SortStableFunc(fss, func(a, b filesystem) int { return boolCode(a.target == "/") - boolCode(b.target == "/") })
	var want string
	for _, a := range p.args[1:] {
		if !strings.HasPrefix(a, "-") {
			want = a
		}
	}
	p.printf("%-22s %-24s %-8s %s\n", "TARGET", "SOURCE", "FSTYPE", "OPTIONS")
	found := false
	for _, f := range fss {
		if want != "" && f.target != want && f.source != want {
			continue
		}
		found = true
		target := f.target
		if f.target != "/" && want == "" {
			target = "├─" + f.target
		}
		p.printf("%-22s %-24s %-8s %s\n", target, f.source, f.fstype, f.options)
	}
	return boolCode(found)
}

func cmdLsblk(p *proc) int {
	p.printf("NAME         MAJ:MIN RM   SIZE RO TYPE MOUNTPOINTS\n")
	for i, d := range p.node.facts.Disks {
		major := 8
		if strings.HasPrefix(d.Name, "nvme") {
			major = 259
		}
		p.printf("%-12s %3d:%-3d  0 %5dG  0 disk \n", d.Name, major, i*16, d.SizeGiB)
		if i > 0 {
			continue
		}
		p.printf("├─%-10s %3d:%-3d  0  1007K  0 part \n", partition(d.Name, 1), major, i*16+1)
		p.printf("├─%-10s %3d:%-3d  0     1G  0 part /boot/efi\n", partition(d.Name, 2), major, i*16+2)
		p.printf("└─%-10s %3d:%-3d  0 %5dG  0 part \n", partition(d.Name, 3), major, i*16+3, d.SizeGiB-1)
		if p.node.facts.Storage == "lvm" {
			p.printf("  ├─pve-swap   252:0    0     8G  0 lvm  [SWAP]\n")
			p.printf("  ├─pve-root   252:1    0 %5dG  0 lvm  /\n", d.SizeGiB/10)
			p.printf("  └─pve-data   252:2    0 %5dG  0 lvm  \n", d.SizeGiB*3/4)
		}
	}
	return 0
}

func cmdLscpu(p *proc) int {
	f := p.node.facts
	p.printf(`Architecture:                         x86_64
CPU op-mode(s):                       32-bit, 64-bit
Address sizes:                        39 bits physical, 48 bits virtual
Byte Order:                           Little Endian
CPU(s):                               %d
On-line CPU(s) list:                  0-%d
Vendor ID:                            %s
Model name:                           %s
Thread(s) per core:                   %d
Core(s) per socket:                   %d
Socket(s):                            1
CPU max MHz:                          4100.0000
CPU min MHz:                          800.0000
Virtualization:                       %s
L3 cache:                             12 MiB (1 instance)
NUMA node(s):                         1
NUMA node0 CPU(s):                    0-%d
`, f.Cores, f.Cores-1, cpuVendor(f.CPUModel), f.CPUModel, f.ThreadsPerCore, f.Cores/f.ThreadsPerCore, virtName(f.CPUModel), f.Cores-1)
	return 0
}

func virtName(model string) string {
	if strings.Contains(model, "AMD") {
		return "AMD-V"
	}
	return "VT-x"
}

// process is one row of ps/top.
type process struct {
	user    string
	pid     int
	cpu     float64
	memKiB  int64
	command string
}

func (n *simNode) processes() []process {
	procs := []process{
		{"root", 1, 0, 12_800, "/sbin/init"},
		{"root", 612, 0, 9_100, "/usr/sbin/sshd -D"},
		{"root", 1123, 0.1, 58_000, "/usr/bin/pmxcfs"},
	}
	n.mu.Lock()
	if n.services["corosync"] == "active" {
		procs = append(procs, process{"root", 1204, 0.6, 180_000, "/usr/sbin/corosync -f"})
	}
	if n.services["pvedaemon"] == "active" {
		procs = append(procs, process{"root", 1310, 0, 140_000, "pvedaemon"})
	}
	if n.services["pveproxy"] == "active" {
		procs = append(procs, process{"www-data", 1322, 0, 152_000, "pveproxy"}, process{"www-data", 48211, 0.2, 160_000, "pveproxy worker"})
	}
	if n.services["pvestatd"] == "active" {
		procs = append(procs, process{"root", 1290, 0.3, 120_000, "pvestatd"})
	}
	n.mu.Unlock()
	for _, g := range n.facts.Guests {
		if g.Status != "running" {
			continue
		}
		if g.Kind == "qemu" {
			procs = append(procs, process{"root", guestPID(g), 3.1, int64(g.MemMiB) * 1024 * 7 / 10,
				fmt.Sprintf("/usr/bin/kvm -id %d -name %s,debug-threads=on -no-shutdown -chardev socket,id=qmp,path=/var/run/qemu-server/%d.qmp,server=on,wait=off -smp 2,sockets=1,cores=2,maxcpus=2 -m %d", g.VMID, g.Name, g.VMID, g.MemMiB)})
		} else {
			procs = append(procs, process{"root", guestPID(g), 0.1, 6_000, fmt.Sprintf("/usr/bin/lxc-start -F -n %d", g.VMID)})
		}
	}
	return procs
}

func guestPID(g Guest) int { return 2000 + g.VMID*13 }

func cmdPs(p *proc) int {
	totalKiB := float64(p.node.memory().total)
	p.printf("USER         PID %%CPU %%MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n")
	for _, pr := range p.node.processes() {
		p.printf("%-8s %7d %4.1f %4.1f %6d %5d ?        Ss   %s   0:%02d %s\n", pr.user, pr.pid, pr.cpu,
			float64(pr.memKiB)*100/totalKiB, pr.memKiB*3, pr.memKiB, p.node.bootTime().Format("Jan02"), pr.pid%60, pr.command)
	}
	return 0
}

func cmdTop(p *proc) int {
	if !hasFlag(p.args[1:], "-b", "-bn1", "-bn", "-n1") && !slices.Contains(p.args, "-b") {
		p.errorf("top: failed tty get")
		return 1
	}
	m := p.node.memory()
	up := p.node.uptime()
	l := p.node.facts.Load
	procs := p.node.processes()
	p.printf("top - %s %s,  1 user,  load average: %.2f, %.2f, %.2f\n", time.Now().UTC().Format(time.TimeOnly), upSince(up), l[0], l[1], l[2])
	p.printf("Tasks: %d total,   1 running, %d sleeping,   0 stopped,   0 zombie\n", 280+len(procs), 279+len(procs))
	p.printf("%%Cpu(s):  %.1f us,  1.2 sy,  0.0 ni, %.1f id,  0.3 wa,  0.0 hi,  0.1 si,  0.0 st\n", l[0]*10, 98.4-l[0]*10)
	p.printf("MiB Mem : %8.1f total, %8.1f free, %8.1f used, %8.1f buff/cache\n", float64(m.total)/1024, float64(m.free)/1024, float64(m.used)/1024, float64(m.buffers+m.cached)/1024)
	p.printf("MiB Swap: %8.1f total, %8.1f free, %8.1f used. %8.1f avail Mem\n\n", float64(m.swapTotal)/1024, float64(m.swapTotal-m.swapUsed)/1024, float64(m.swapUsed)/1024, float64(m.available)/1024)
	p.printf("    PID USER      PR  NI    VIRT    RES    SHR S  %%CPU  %%MEM     TIME+ COMMAND\n")
	slices.SortFunc(procs, func(a, b process) int { return int((b.cpu - a.cpu) * 100) })
	for _, pr := range procs {
		name := strings.Fields(pr.command)[0]
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		p.printf("%7d %-8s  20   0 %7d %6d %6d S %5.1f %5.1f   0:%02d.%02d %s\n", pr.pid, pr.user, pr.memKiB*3, pr.memKiB, pr.memKiB/4, pr.cpu,
			float64(pr.memKiB)*100/float64(m.total), pr.pid%60, pr.pid%100, name)
	}
	return 0
}

func cmdSensors(p *proc) int {
	temps := p.node.facts.TempsC
	if len(temps) == 0 {
		p.errorf("No sensors found!")
		return 1
	}
	p.printf("coretemp-isa-0000\nAdapter: ISA adapter\n")
	p.printf("Package id 0:  %+.1f°C  (high = +80.0°C, crit = +100.0°C)\n", temps[0])
	for i := 0; i < p.node.facts.Cores/p.node.facts.ThreadsPerCore; i++ {
		p.printf("Core %d:        %+.1f°C  (high = +80.0°C, crit = +100.0°C)\n", i, temps[0]-float64(i%3))
	}
	for i, t := range temps[1:] {
		p.printf("\nacpitz-acpi-%d\nAdapter: ACPI interface\ntemp1:        %+.1f°C\n", i, t)
	}
	for _, d := range p.node.facts.Disks {
		if strings.HasPrefix(d.Name, "nvme") {
			p.printf("\nnvme-pci-0%s00\nAdapter: PCI adapter\nComposite:    %+.1f°C  (low  = -273.1°C, high = +81.8°C)\n", d.Name[4:5], temps[0]-8)
		}
	}
	return 0
}

func cmdDmesg(p *proc) int {
	for _, a := range p.args[1:] {
		if a == "-c" || a == "-C" || a == "-D" || a == "-n" || strings.HasPrefix(a, "--clear") {
			p.errorf("dmesg: klogctl failed: Operation not permitted")
			return 1
		}
	}
	f := p.node.facts
	lines := []string{
		"[    0.000000] Linux version " + kernelRelease + " (build@proxmox) " + kernelBuild,
		"[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-" + kernelRelease + " root=ZFS=rpool/ROOT/pve-1 ro quiet",
		fmt.Sprintf("[    0.112233] smpboot: CPU0: %s", f.CPUModel),
		fmt.Sprintf("[    0.201554] Memory: %dK/%dK available", f.MemTotalMiB*1024*97/100, f.MemTotalMiB*1024),
	}
	for i, d := range f.Disks {
		lines = append(lines, fmt.Sprintf("[    %d.%06d] %s: %s, %d GiB", 2+i, 104512+i*1117, d.Name, d.Model, d.SizeGiB))
	}
	lines = append(lines,
		"[    6.842113] vmbr0: port 1(enp1s0) entered forwarding state",
		"[   12.004512] igc 0000:01:00.0 enp1s0: NIC Link is Up 2500 Mbps Full Duplex, Flow Control: RX/TX",
	)
	for _, g := range f.Guests {
		if g.Status == "running" && g.Kind == "qemu" {
			lines = append(lines, fmt.Sprintf("[   %d.%06d] vmbr0: port 2(tap%di0) entered forwarding state", 30+g.VMID%20, g.VMID*917%1000000, g.VMID))
		}
	}
	for _, d := range f.Disks {
		if !d.Healthy {
			lines = append(lines, fmt.Sprintf("[86412.551902] ata2.00: failed command: READ FPDMA QUEUED"),
				fmt.Sprintf("[86412.551910] blk_update_request: I/O error, dev %s, sector 1953525000 op 0x0:(READ)", d.Name))
		}
	}
	p.printLines(lines)
	return 0
}
