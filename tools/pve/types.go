package pve

// Field names follow the PVE API; sizes are bytes, times are Unix seconds,
// CPU is a fraction of MaxCPU (0.25 = 25 % of the guest's or node's cores).

// ClusterStatusEntry is one row of /cluster/status: the cluster itself
// (Type "cluster") or a member node (Type "node").
type ClusterStatusEntry struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	IP      string `json:"ip,omitempty"`
	Level   string `json:"level,omitempty"`
	Local   Bool   `json:"local"`
	NodeID  Int    `json:"nodeid,omitempty"`
	Online  Bool   `json:"online"`
	Nodes   Int    `json:"nodes,omitempty"`
	Quorate Bool   `json:"quorate"`
	Version Int    `json:"version,omitempty"`
}

// Resource is one row of /cluster/resources (a node, guest, storage or SDN zone).
type Resource struct {
	ID         string `json:"id"`
	Type       string `json:"type"` // node, qemu, lxc, storage, sdn, pool
	Node       string `json:"node,omitempty"`
	Name       string `json:"name,omitempty"`
	Status     string `json:"status,omitempty"`
	VMID       Int    `json:"vmid,omitempty"`
	Template   Bool   `json:"template"`
	Tags       string `json:"tags,omitempty"`
	Lock       string `json:"lock,omitempty"`
	HAState    string `json:"hastate,omitempty"`
	Pool       string `json:"pool,omitempty"`
	Storage    string `json:"storage,omitempty"`
	PluginType string `json:"plugintype,omitempty"`
	Content    string `json:"content,omitempty"`
	Shared     Bool   `json:"shared"`
	SDN        string `json:"sdn,omitempty"`
	CPU        Num    `json:"cpu"`
	MaxCPU     Num    `json:"maxcpu"`
	Mem        Int    `json:"mem"`
	MaxMem     Int    `json:"maxmem"`
	Disk       Int    `json:"disk"`
	MaxDisk    Int    `json:"maxdisk"`
	Uptime     Int    `json:"uptime"`
	NetIn      Int    `json:"netin"`
	NetOut     Int    `json:"netout"`
	DiskRead   Int    `json:"diskread"`
	DiskWrite  Int    `json:"diskwrite"`
}

// NodeEntry is one row of /nodes.
type NodeEntry struct {
	Node           string `json:"node"`
	Status         string `json:"status"` // online, offline, unknown
	CPU            Num    `json:"cpu"`
	MaxCPU         Int    `json:"maxcpu"`
	Mem            Int    `json:"mem"`
	MaxMem         Int    `json:"maxmem"`
	Disk           Int    `json:"disk"`
	MaxDisk        Int    `json:"maxdisk"`
	Uptime         Int    `json:"uptime"`
	Level          string `json:"level,omitempty"`
	SSLFingerprint string `json:"ssl_fingerprint,omitempty"`
}

// NodeStatus is /nodes/{node}/status.
type NodeStatus struct {
	CPU           Num           `json:"cpu"`
	Wait          Num           `json:"wait"` // I/O wait fraction
	Uptime        Int           `json:"uptime"`
	LoadAvg       []Num         `json:"loadavg"` // 1, 5, 15 minutes (PVE sends strings)
	Memory        MemoryUsage   `json:"memory"`
	Swap          MemoryUsage   `json:"swap"`
	RootFS        DiskUsage     `json:"rootfs"`
	CPUInfo       CPUInfo       `json:"cpuinfo"`
	KVersion      string        `json:"kversion"`
	PVEVersion    string        `json:"pveversion"`
	CurrentKernel CurrentKernel `json:"current-kernel"`
	BootInfo      BootInfo      `json:"boot-info"`
}

// MemoryUsage is a node's RAM or swap.
type MemoryUsage struct {
	Total     Int `json:"total"`
	Used      Int `json:"used"`
	Free      Int `json:"free"`
	Available Int `json:"available,omitempty"`
}

// DiskUsage is a node's root file system.
type DiskUsage struct {
	Total Int `json:"total"`
	Used  Int `json:"used"`
	Free  Int `json:"free"`
	Avail Int `json:"avail"`
}

// CPUInfo describes a node's processors.
type CPUInfo struct {
	Model   string `json:"model"`
	Cores   Int    `json:"cores"`
	CPUs    Int    `json:"cpus"`
	Sockets Int    `json:"sockets"`
	MHz     Num    `json:"mhz"`
}

// CurrentKernel is the running kernel of a node.
type CurrentKernel struct {
	Sysname string `json:"sysname"`
	Release string `json:"release"`
	Version string `json:"version"`
	Machine string `json:"machine"`
}

// BootInfo says how a node booted.
type BootInfo struct {
	Mode       string `json:"mode"`
	SecureBoot Bool   `json:"secureboot"`
}

// StorageEntry is one row of /nodes/{node}/storage.
type StorageEntry struct {
	Storage      string `json:"storage"`
	Type         string `json:"type"`
	Content      string `json:"content"`
	Active       Bool   `json:"active"`
	Enabled      Bool   `json:"enabled"`
	Shared       Bool   `json:"shared"`
	Total        Int    `json:"total"`
	Used         Int    `json:"used"`
	Avail        Int    `json:"avail"`
	UsedFraction Num    `json:"used_fraction"`
}

// StorageItem is one volume in /nodes/{node}/storage/{storage}/content.
type StorageItem struct {
	VolID     string `json:"volid"`
	Content   string `json:"content,omitempty"` // backup, images, rootdir, iso, vztmpl, …
	Format    string `json:"format"`
	Size      Int    `json:"size"`
	Used      Int    `json:"used,omitempty"`
	CTime     Int    `json:"ctime,omitempty"`
	VMID      Int    `json:"vmid,omitempty"`
	Notes     string `json:"notes,omitempty"`
	Protected Bool   `json:"protected"`
	Parent    string `json:"parent,omitempty"`
	Subtype   string `json:"subtype,omitempty"` // qemu or lxc, for backups
	Encrypted string `json:"encrypted,omitempty"`
}

// Task is one row of /cluster/tasks. Status is the exit status of a
// finished task ("OK" or the error); it is empty while the task runs.
type Task struct {
	UPID      string `json:"upid"`
	Node      string `json:"node"`
	Type      string `json:"type"`
	ID        string `json:"id"`
	User      string `json:"user"`
	Status    string `json:"status,omitempty"`
	PID       Int    `json:"pid"`
	PStart    Int    `json:"pstart"`
	StartTime Int    `json:"starttime"`
	EndTime   Int    `json:"endtime,omitempty"`
}

// TaskStatus is /nodes/{node}/tasks/{upid}/status.
type TaskStatus struct {
	UPID       string `json:"upid"`
	Node       string `json:"node"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	User       string `json:"user"`
	Status     string `json:"status"`               // running or stopped
	ExitStatus string `json:"exitstatus,omitempty"` // set once stopped: "OK" or the error
	PID        Int    `json:"pid"`
	PStart     Int    `json:"pstart"`
	StartTime  Int    `json:"starttime"`
}

// Running reports whether the task has not finished yet.
func (t TaskStatus) Running() bool { return t.Status == "running" }

// Succeeded reports a finished task that ended OK (warnings count as success,
// as in the PVE GUI).
func (t TaskStatus) Succeeded() bool {
	return t.Status == "stopped" && (t.ExitStatus == "OK" || len(t.ExitStatus) >= 8 && t.ExitStatus[:8] == "WARNINGS")
}

// TaskLogLine is one line of a task log; N counts from 1.
type TaskLogLine struct {
	N Int    `json:"n"`
	T string `json:"t"`
}

// GuestStatus is /nodes/{node}/{qemu|lxc}/{vmid}/status/current.
type GuestStatus struct {
	VMID           Int            `json:"vmid"`
	Name           string         `json:"name,omitempty"`
	Status         string         `json:"status"`              // running or stopped
	QMPStatus      string         `json:"qmpstatus,omitempty"` // qemu: running, paused, prelaunch, …
	Lock           string         `json:"lock,omitempty"`
	Tags           string         `json:"tags,omitempty"`
	Template       Bool           `json:"template"`
	Agent          Bool           `json:"agent"`
	CPU            Num            `json:"cpu"`
	CPUs           Num            `json:"cpus"`
	Mem            Int            `json:"mem"`
	MaxMem         Int            `json:"maxmem"`
	MaxSwap        Int            `json:"maxswap,omitempty"`
	Disk           Int            `json:"disk"`
	MaxDisk        Int            `json:"maxdisk"`
	Uptime         Int            `json:"uptime"`
	NetIn          Int            `json:"netin"`
	NetOut         Int            `json:"netout"`
	DiskRead       Int            `json:"diskread"`
	DiskWrite      Int            `json:"diskwrite"`
	PID            Int            `json:"pid,omitempty"`
	HA             map[string]any `json:"ha,omitempty"`
	RunningMachine string         `json:"running-machine,omitempty"`
	RunningQemu    string         `json:"running-qemu,omitempty"`
}

// Snapshot is one row of /nodes/{node}/{kind}/{vmid}/snapshot. The row named
// "current" is the live state; its Parent is the snapshot it derives from.
type Snapshot struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Parent      string `json:"parent,omitempty"`
	SnapTime    Int    `json:"snaptime,omitempty"`
	VMState     Bool   `json:"vmstate"`
	Running     Bool   `json:"running"` // only on "current"
}
