package sshsim

// NodeFacts describes one simulated node; every command's answer is derived
// from these facts, so outputs agree with each other (free with
// /proc/meminfo, qm list with ps, df with mount, …).
type NodeFacts struct {
	Name        string
	CPUModel    string
	Cores       int // logical CPUs, as PVE reports them (maxcpu)
	MemTotalMiB int
	Disks       []Disk
	Guests      []Guest
	Services    map[string]string // unit name (without .service) → active|inactive|failed
	TempsC      []float64         // thermal zones; zone 0 is the CPU package

	// Optional; derived defaults are used when zero.
	ThreadsPerCore int        // 1 or 2 (SMT); default 1
	Address        string     // vmbr0 address in CIDR form, e.g. 192.168.1.10/24
	Storage        string     // "zfs" (root on pool rpool) or "lvm" (volume group pve)
	UptimeSeconds  int64      // at Start
	Load           [3]float64 // 1, 5, 15 minute load averages
}

// Disk is one block device.
type Disk struct {
	Name      string // kernel name: nvme0n1, sda
	Model     string
	Serial    string
	SizeGiB   int
	Healthy   bool // SMART overall health PASSED (else FAILED)
	Rotations int  // rpm; 0 for solid state
}

// Guest is a VM (qemu) or container (lxc) hosted on the node.
type Guest struct {
	VMID   int
	Name   string
	Kind   string // qemu | lxc
	Status string // running | stopped
	MemMiB int
	DiskGB int
}

// pveServices are the units every Proxmox VE node runs.
func pveServices(overrides map[string]string) map[string]string {
	s := map[string]string{
		"pveproxy": "active", "pvedaemon": "active", "pvestatd": "active", "pve-cluster": "active",
		"corosync": "active", "pve-firewall": "active", "pve-ha-lrm": "active", "pve-ha-crm": "active",
		"spiceproxy": "active", "ssh": "active", "cron": "active", "chrony": "active",
		"postfix": "active", "smartd": "active", "qmeventd": "active", "pvescheduler": "active",
	}
	for unit, state := range overrides {
		s[unit] = state
	}
	return s
}

// DemoFactsAt is DemoFacts named as pvesim.Site names the demo cluster: the
// prefix before every node name, the offset added to every VMID, so a second
// simulated cluster's shells agree with its API.
func DemoFactsAt(nodePrefix string, vmidOffset int) []NodeFacts {
	facts := DemoFacts()
	for i := range facts {
		facts[i].Name = nodePrefix + facts[i].Name
		for j := range facts[i].Guests {
			facts[i].Guests[j].VMID += vmidOffset
		}
	}
	return facts
}

// DemoFacts is the demo cluster "homelab": nodes home, pve, agent1 and agent,
// with the same hardware, addresses, uptimes and guests as the demo cluster
// of tools/sim/pvesim (VMID 103 "mgmt" runs on agent1).
func DemoFacts() []NodeFacts {
	return []NodeFacts{
		{
			Name: "home", CPUModel: "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz", Cores: 6, ThreadsPerCore: 1, MemTotalMiB: 32 * 1024,
			Disks: []Disk{
				{Name: "nvme0n1", Model: "Samsung SSD 970 EVO Plus 500GB", Serial: "S4EVNX0N612345A", SizeGiB: 465, Healthy: true},
				{Name: "sda", Model: "WDC WD40EFRX-68N32N0", Serial: "WD-WCC7K1234567", SizeGiB: 3726, Healthy: true, Rotations: 5400},
			},
			Guests: []Guest{
				{VMID: 100, Name: "opnsense", Kind: "qemu", Status: "running", MemMiB: 4096, DiskGB: 32},
				{VMID: 106, Name: "test-vm", Kind: "qemu", Status: "stopped", MemMiB: 2048, DiskGB: 16},
				{VMID: 9000, Name: "debian13-cloudinit", Kind: "qemu", Status: "stopped", MemMiB: 2048, DiskGB: 8},
				{VMID: 200, Name: "pihole", Kind: "lxc", Status: "running", MemMiB: 512, DiskGB: 8},
			},
			Services: pveServices(map[string]string{"docker": "active"}),
			TempsC:   []float64{41, 27.8},
			Address:  "10.0.0.10/24", Storage: "zfs", UptimeSeconds: 19 * 86400, Load: [3]float64{0.31, 0.42, 0.38},
		},
		{
			Name: "pve", CPUModel: "AMD Ryzen 7 5700G with Radeon Graphics", Cores: 16, ThreadsPerCore: 2, MemTotalMiB: 64 * 1024,
			Disks: []Disk{
				{Name: "nvme0n1", Model: "Samsung SSD 980 PRO 1TB", Serial: "S5GXNX0T123456B", SizeGiB: 931, Healthy: true},
				{Name: "nvme1n1", Model: "Samsung SSD 980 PRO 1TB", Serial: "S5GXNX0T123457C", SizeGiB: 931, Healthy: true},
			},
			Guests: []Guest{
				{VMID: 101, Name: "web01", Kind: "qemu", Status: "running", MemMiB: 8192, DiskGB: 64},
				{VMID: 102, Name: "db01", Kind: "qemu", Status: "running", MemMiB: 16384, DiskGB: 128},
				{VMID: 201, Name: "nginx-proxy", Kind: "lxc", Status: "running", MemMiB: 1024, DiskGB: 8},
			},
			Services: pveServices(nil),
			TempsC:   []float64{52.5, 38, 35.2},
			Address:  "10.0.0.11/24", Storage: "zfs", UptimeSeconds: 42 * 86400, Load: [3]float64{1.12, 0.97, 0.88},
		},
		{
			Name: "agent1", CPUModel: "Intel(R) N100", Cores: 4, ThreadsPerCore: 1, MemTotalMiB: 16 * 1024,
			Disks: []Disk{
				{Name: "nvme0n1", Model: "WD Blue SN570 500GB", Serial: "22123A456789", SizeGiB: 465, Healthy: true},
			},
			Guests: []Guest{
				{VMID: 103, Name: "mgmt", Kind: "qemu", Status: "running", MemMiB: 4096, DiskGB: 32},
				{VMID: 202, Name: "grafana", Kind: "lxc", Status: "running", MemMiB: 2048, DiskGB: 16},
				{VMID: 204, Name: "dev-ct", Kind: "lxc", Status: "stopped", MemMiB: 2048, DiskGB: 16},
			},
			Services: pveServices(map[string]string{"pve-ha-crm": "inactive"}),
			TempsC:   []float64{47, 30.5},
			Address:  "10.0.0.12/24", Storage: "lvm", UptimeSeconds: 7 * 86400, Load: [3]float64{0.52, 0.61, 0.57},
		},
		{
			Name: "agent", CPUModel: "Intel(R) Core(TM) i7-10710U CPU @ 1.10GHz", Cores: 12, ThreadsPerCore: 2, MemTotalMiB: 32 * 1024,
			Disks: []Disk{
				{Name: "sda", Model: "CT500MX500SSD1", Serial: "2049E4D1A2B3", SizeGiB: 465, Healthy: true},
				{Name: "sdb", Model: "ST2000DM008-2FR102", Serial: "ZFL1ABCD", SizeGiB: 1863, Healthy: false, Rotations: 7200},
			},
			Guests: []Guest{
				{VMID: 104, Name: "win11", Kind: "qemu", Status: "stopped", MemMiB: 8192, DiskGB: 96},
				{VMID: 105, Name: "k3s-worker", Kind: "qemu", Status: "running", MemMiB: 8192, DiskGB: 64},
				{VMID: 203, Name: "old-wiki", Kind: "lxc", Status: "stopped", MemMiB: 1024, DiskGB: 8},
			},
			Services: pveServices(map[string]string{"smartd": "failed", "pve-ha-crm": "inactive"}),
			TempsC:   []float64{58, 33},
			Address:  "10.0.0.13/24", Storage: "lvm", UptimeSeconds: 7*86400 + 3600, Load: [3]float64{0.08, 0.11, 0.09},
		},
	}
}
