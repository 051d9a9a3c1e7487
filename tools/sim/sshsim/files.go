package sshsim

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// withDefaults fills the optional facts.
func withDefaults(f NodeFacts) NodeFacts {
	if f.Cores <= 0 {
		f.Cores = 4
	}
	if f.ThreadsPerCore <= 0 || f.Cores%f.ThreadsPerCore != 0 {
		f.ThreadsPerCore = 1
	}
	if f.MemTotalMiB <= 0 {
		f.MemTotalMiB = 16 * 1024
	}
	if f.CPUModel == "" {
		f.CPUModel = "QEMU Virtual CPU version 2.5+"
	}
	if f.Address == "" {
		f.Address = "192.168.1.100/24"
	}
	if f.Storage == "" {
		f.Storage = "lvm"
	}
	if f.UptimeSeconds <= 0 {
		f.UptimeSeconds = 3*86400 + 3600
	}
	if len(f.Disks) == 0 {
		f.Disks = []Disk{{Name: "sda", Model: "QEMU HARDDISK", Serial: "QM00001", SizeGiB: 64, Healthy: true}}
	}
	if f.Services == nil {
		f.Services = pveServices(nil)
	}
	return f
}

const (
	kernelRelease = "6.14.8-2-pve"
	kernelBuild   = "#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2 (2025-07-22T10:04Z)"
	pveVersion    = "9.0.3"
)

// uptime is how long the node has been up now.
func (n *simNode) uptime() time.Duration {
	return time.Duration(n.facts.UptimeSeconds)*time.Second + time.Since(n.sim.start)
}

func (n *simNode) bootTime() time.Time { return time.Now().Add(-n.uptime()).UTC() }

// memory is the node's memory use in KiB, derived from its running guests.
type memory struct{ total, used, free, shared, buffers, cached, available, swapTotal, swapUsed int64 }

func (n *simNode) memory() memory {
	total := int64(n.facts.MemTotalMiB) * 1024
	used := int64(1800 * 1024) // host services
	for _, g := range n.facts.Guests {
		if g.Status == "running" {
			used += int64(g.MemMiB) * 1024 * 7 / 10
		}
	}
	used = min(used, total*9/10)
	cached := (total - used) * 2 / 5
	buffers := total / 200
	free := total - used - cached - buffers
	return memory{
		total: total, used: used, free: free, shared: 52 * 1024, buffers: buffers, cached: cached,
		available: free + cached*9/10, swapTotal: 8 * 1024 * 1024, swapUsed: 0,
	}
}

// files returns the node's readable files and their content now.
func (n *simNode) files() map[string]string {
	f := n.facts
	m := n.memory()
	load := f.Load
	files := map[string]string{
		"/etc/hostname": f.Name + "\n",
		"/etc/os-release": `PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.0
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`,
		"/etc/debian_version": "13.0\n",
		"/etc/hosts":          fmt.Sprintf("127.0.0.1 localhost.localdomain localhost\n%s %s.lan %s\n", ipOnly(f.Address), f.Name, f.Name),
		"/proc/loadavg":       fmt.Sprintf("%.2f %.2f %.2f %d/%d %d\n", load[0], load[1], load[2], 1+int(load[0]), 480+40*len(f.Guests), 98765),
		"/proc/uptime":        fmt.Sprintf("%.2f %.2f\n", n.uptime().Seconds(), n.uptime().Seconds()*float64(f.Cores)*0.93),
		"/proc/version":       fmt.Sprintf("Linux version %s (build@proxmox) (gcc (Debian 14.2.0-19) 14.2.0, GNU ld (GNU Binutils for Debian) 2.44) %s\n", kernelRelease, kernelBuild),
		"/proc/meminfo": fmt.Sprintf(`MemTotal:       %8d kB
MemFree:        %8d kB
MemAvailable:   %8d kB
Buffers:        %8d kB
Cached:         %8d kB
SwapCached:            0 kB
Active:         %8d kB
Inactive:       %8d kB
Shmem:          %8d kB
SwapTotal:      %8d kB
SwapFree:       %8d kB
Dirty:               148 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`, m.total, m.free, m.available, m.buffers, m.cached, m.used, m.cached, m.shared, m.swapTotal, m.swapTotal-m.swapUsed),
	}
	var cpuinfo strings.Builder
	physical := f.Cores / f.ThreadsPerCore
	for i := 0; i < f.Cores; i++ {
		fmt.Fprintf(&cpuinfo, "processor\t: %d\nvendor_id\t: %s\nmodel name\t: %s\ncpu MHz\t\t: %.3f\ncache size\t: 12288 KB\nphysical id\t: 0\ncore id\t\t: %d\ncpu cores\t: %d\n\n",
			i, cpuVendor(f.CPUModel), f.CPUModel, 2100.0+float64(i%3)*137.5, i%physical, physical)
	}
	files["/proc/cpuinfo"] = cpuinfo.String()
	for i, t := range f.TempsC {
		zone := fmt.Sprintf("/sys/class/thermal/thermal_zone%d/", i)
		kind := "acpitz"
		if i == 0 {
			kind = "x86_pkg_temp"
		}
		files[zone+"type"] = kind + "\n"
		files[zone+"temp"] = fmt.Sprintf("%d\n", int(t*1000))
	}
	return files
}

// glob matches an unquoted pattern against the node's files, sorted as the
// shell would.
func (n *simNode) glob(pattern string) []string {
	var out []string
	for name := range n.files() {
		if ok, _ := path.Match(pattern, name); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func ipOnly(cidr string) string {
	ip, _, _ := strings.Cut(cidr, "/")
	return ip
}

func cpuVendor(model string) string {
	if strings.Contains(model, "AMD") {
		return "AuthenticAMD"
	}
	return "GenuineIntel"
}
