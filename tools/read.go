package tools

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// readTools are the GREEN tools: they only read the cluster.
func readTools() []*Tool {
	return []*Tool{
		getClusterStatus(), getNodeStatus(), getVMs(), getContainers(), getStorage(),
		getClusterResources(), getRecentTasks(), getBackups(), getGuestStatus(), getTaskStatus(), listSnapshots(),
	}
}

// read wraps a read-only fetch into a Call.
func read(target safety.Target, effect string, fetch func(ctx context.Context) (any, error)) *Call {
	return &Call{Target: target, Effect: effect, Run: func(ctx context.Context, _ Progress) (any, error) { return fetch(ctx) }}
}

// ---- get_cluster_status ----

type NoInput struct{}

type ClusterNode struct {
	Name   string `json:"name"`
	Online bool   `json:"online"`
	IP     string `json:"ip,omitempty"`
	NodeID int64  `json:"node_id,omitempty"`
	Local  bool   `json:"local" jsonschema:"true for the node whose API answered"`
}

type ClusterStatus struct {
	ClusterName string        `json:"cluster_name" jsonschema:"empty for a single node without a cluster"`
	Quorate     bool          `json:"quorate" jsonschema:"true when the cluster has quorum and can change state"`
	NodesTotal  int           `json:"nodes_total"`
	NodesOnline int           `json:"nodes_online"`
	Nodes       []ClusterNode `json:"nodes"`
}

func getClusterStatus() *Tool {
	return define[NoInput, ClusterStatus](spec{
		name: "get_cluster_status", title: "Cluster status", tier: safety.Green,
		description: "Cluster name, whether it has quorum, and which nodes are online. Start here to see if the cluster is healthy.",
	}, func(ctx context.Context, env *Env, _ NoInput) (*Call, error) {
		return read(safety.Target{}, "Read the cluster's quorum and node membership", func(ctx context.Context) (any, error) {
			entries, err := env.PVE.ClusterStatus(ctx)
			if err != nil {
				return nil, err
			}
			out := ClusterStatus{Nodes: []ClusterNode{}}
			standalone := true
			for _, e := range entries {
				switch e.Type {
				case "cluster":
					standalone = false
					out.ClusterName = e.Name
					out.Quorate = bool(e.Quorate)
				case "node":
					out.Nodes = append(out.Nodes, ClusterNode{Name: e.Name, Online: bool(e.Online), IP: e.IP, NodeID: int64(e.NodeID), Local: bool(e.Local)})
					out.NodesTotal++
					if e.Online {
						out.NodesOnline++
					}
				}
			}
			if standalone {
				out.Quorate = out.NodesOnline > 0
			}
			sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Name < out.Nodes[j].Name })
			return out, nil
		}), nil
	})
}

// ---- get_node_status ----

type NodeInput struct {
	Node string `json:"node" jsonschema:"node name as in get_cluster_status, e.g. pve"`
}

type NodeStatusOut struct {
	Node          string    `json:"node"`
	CPUPercent    float64   `json:"cpu_percent" jsonschema:"CPU use across all cores, 0-100"`
	IOWaitPercent float64   `json:"io_wait_percent"`
	CPUModel      string    `json:"cpu_model"`
	CPUCores      int64     `json:"cpu_cores" jsonschema:"logical CPUs"`
	LoadAverage   []float64 `json:"load_average" jsonschema:"1, 5 and 15 minute load averages"`
	Memory        Usage     `json:"memory"`
	Swap          Usage     `json:"swap"`
	RootDisk      Usage     `json:"root_disk"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	Uptime        string    `json:"uptime" jsonschema:"uptime in words, e.g. 3d 4h 5m"`
	Kernel        string    `json:"kernel"`
	PVEVersion    string    `json:"pve_version"`
}

func getNodeStatus() *Tool {
	return define[NodeInput, NodeStatusOut](spec{
		name: "get_node_status", title: "Node status", tier: safety.Green,
		description: "CPU (percent), memory, swap and root disk use (bytes and human units, percent), load, uptime, kernel and Proxmox version of one node.",
		adjust:      func(s *jsonschema.Schema) { nodeSchema(property(s, "node")) },
	}, func(ctx context.Context, env *Env, in NodeInput) (*Call, error) {
		if err := checkNode(in.Node); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node}, "Read the status of node "+in.Node, func(ctx context.Context) (any, error) {
			st, err := env.PVE.NodeStatus(ctx, in.Node)
			if err != nil {
				return nil, nodeError(in.Node, err)
			}
			load := []float64{}
			for _, l := range st.LoadAvg {
				load = append(load, float64(l))
			}
			cores := int64(st.CPUInfo.CPUs)
			return NodeStatusOut{
				Node: in.Node, CPUPercent: round1(float64(st.CPU) * 100), IOWaitPercent: round1(float64(st.Wait) * 100),
				CPUModel: st.CPUInfo.Model, CPUCores: cores, LoadAverage: load,
				Memory: usage(int64(st.Memory.Used), int64(st.Memory.Total)), Swap: usage(int64(st.Swap.Used), int64(st.Swap.Total)),
				RootDisk: usage(int64(st.RootFS.Used), int64(st.RootFS.Total)), UptimeSeconds: int64(st.Uptime),
				Uptime: humanDuration(int64(st.Uptime)), Kernel: st.KVersion, PVEVersion: st.PVEVersion,
			}, nil
		}), nil
	})
}

// nodeError turns PVE's answers about a node into words a model can act on.
func nodeError(node string, err error) error {
	switch {
	case pve.IsUnreachable(err):
		return fmt.Errorf("node %s is offline or unreachable from the cluster: %w", node, err)
	case pve.IsNotFound(err), pve.IsBadRequest(err):
		return fmt.Errorf("node %s is not part of this cluster (see get_cluster_status for node names): %w", node, err)
	}
	return err
}

// ---- get_vms / get_containers ----

type GuestListInput struct {
	Node   string `json:"node,omitempty" jsonschema:"only guests on this node"`
	Status string `json:"status,omitempty" jsonschema:"only guests in this state: running, stopped or paused"`
}

type GuestSummary struct {
	VMID          int64   `json:"vmid"`
	Name          string  `json:"name"`
	Node          string  `json:"node"`
	Kind          string  `json:"kind" jsonschema:"qemu (virtual machine) or lxc (container)"`
	Status        string  `json:"status" jsonschema:"running, stopped, paused, …"`
	CPUPercent    float64 `json:"cpu_percent" jsonschema:"CPU use as percent of the guest's own vCPUs"`
	CPUs          float64 `json:"cpus" jsonschema:"vCPUs (cores) given to the guest"`
	Memory        Usage   `json:"memory"`
	Disk          Usage   `json:"disk" jsonschema:"root disk (containers); VMs report 0 used without a guest agent"`
	UptimeSeconds int64   `json:"uptime_seconds"`
	Uptime        string  `json:"uptime"`
	Tags          string  `json:"tags,omitempty"`
	Template      bool    `json:"template"`
	Lock          string  `json:"lock,omitempty" jsonschema:"set while a backup, migration or snapshot holds the guest"`
}

type GuestList struct {
	Count   int            `json:"count"`
	Running int            `json:"running"`
	Guests  []GuestSummary `json:"guests"`
}

func guestSummary(r pve.Resource) GuestSummary {
	return GuestSummary{
		VMID: int64(r.VMID), Name: r.Name, Node: r.Node, Kind: r.Type, Status: r.Status,
		CPUPercent: round1(float64(r.CPU) * 100), CPUs: float64(r.MaxCPU),
		Memory: usage(int64(r.Mem), int64(r.MaxMem)), Disk: usage(int64(r.Disk), int64(r.MaxDisk)),
		UptimeSeconds: int64(r.Uptime), Uptime: humanDuration(int64(r.Uptime)), Tags: r.Tags,
		Template: bool(r.Template), Lock: r.Lock,
	}
}

func listGuests(kind, name, title, noun string) *Tool {
	return define[GuestListInput, GuestList](spec{
		name: name, title: title, tier: safety.Green,
		description: fmt.Sprintf("Every %s in the cluster with node, state, CPU (percent), memory and disk (bytes, human units, percent) and uptime. Filter by node or status.", noun),
		adjust: func(s *jsonschema.Schema) {
			nodeSchema(property(s, "node"))
			enumSchema(property(s, "status"), "running", "stopped", "paused")
		},
	}, func(ctx context.Context, env *Env, in GuestListInput) (*Call, error) {
		if err := checkOptionalNode(in.Node); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node}, "List "+noun+"s", func(ctx context.Context) (any, error) {
			res, err := env.PVE.ClusterResources(ctx, "vm")
			if err != nil {
				return nil, err
			}
			out := GuestList{Guests: []GuestSummary{}}
			for _, r := range res {
				if r.Type != kind || (in.Node != "" && r.Node != in.Node) || (in.Status != "" && r.Status != in.Status) {
					continue
				}
				out.Guests = append(out.Guests, guestSummary(r))
				if r.Status == "running" {
					out.Running++
				}
			}
			sort.Slice(out.Guests, func(i, j int) bool { return out.Guests[i].VMID < out.Guests[j].VMID })
			out.Count = len(out.Guests)
			return out, nil
		}), nil
	})
}

func getVMs() *Tool {
	return listGuests("qemu", "get_vms", "Virtual machines", "virtual machine (QEMU)")
}

func getContainers() *Tool {
	return listGuests("lxc", "get_containers", "Containers", "LXC container")
}

// ---- get_storage ----

type StorageInput struct {
	Node string `json:"node,omitempty" jsonschema:"only storage seen from this node"`
}

type StorageOut struct {
	Storage string `json:"storage"`
	Node    string `json:"node"`
	Type    string `json:"type" jsonschema:"dir, lvmthin, zfspool, nfs, cifs, pbs, …"`
	Shared  bool   `json:"shared" jsonschema:"true when every node sees the same storage"`
	Content string `json:"content" jsonschema:"comma-separated content types: images, rootdir, backup, iso, vztmpl, snippets"`
	Status  string `json:"status" jsonschema:"available, or unknown when the node cannot reach it"`
	Usage   Usage  `json:"usage"`
}

type StorageList struct {
	Storages []StorageOut `json:"storages"`
}

func getStorage() *Tool {
	return define[StorageInput, StorageList](spec{
		name: "get_storage", title: "Storage", tier: safety.Green,
		description: "Every storage on every node (or one node): type, content types, shared or not, and use in bytes, human units and percent.",
		adjust:      func(s *jsonschema.Schema) { nodeSchema(property(s, "node")) },
	}, func(ctx context.Context, env *Env, in StorageInput) (*Call, error) {
		if err := checkOptionalNode(in.Node); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node}, "List storage", func(ctx context.Context) (any, error) {
			res, err := env.PVE.ClusterResources(ctx, "storage")
			if err != nil {
				return nil, err
			}
			out := StorageList{Storages: []StorageOut{}}
			for _, r := range res {
				if in.Node != "" && r.Node != in.Node {
					continue
				}
				out.Storages = append(out.Storages, StorageOut{
					Storage: r.Storage, Node: r.Node, Type: r.PluginType, Shared: bool(r.Shared), Content: r.Content,
					Status: r.Status, Usage: usage(int64(r.Disk), int64(r.MaxDisk)),
				})
			}
			sort.Slice(out.Storages, func(i, j int) bool {
				a, b := out.Storages[i], out.Storages[j]
				return a.Node < b.Node || a.Node == b.Node && a.Storage < b.Storage
			})
			return out, nil
		}), nil
	})
}

// ---- get_cluster_resources ----

type ResourcesInput struct {
	Type string `json:"type,omitempty" jsonschema:"vm (VMs and containers), storage, node or sdn; all when omitted"`
}

type ResourceOut struct {
	ID         string  `json:"id"`
	Type       string  `json:"type" jsonschema:"node, qemu, lxc, storage, sdn, pool"`
	Node       string  `json:"node,omitempty"`
	Name       string  `json:"name,omitempty"`
	Status     string  `json:"status,omitempty"`
	VMID       int64   `json:"vmid,omitempty"`
	CPUPercent float64 `json:"cpu_percent"`
	Memory     Usage   `json:"memory"`
	Disk       Usage   `json:"disk"`
	Uptime     string  `json:"uptime,omitempty"`
}

type ResourceList struct {
	Count     int           `json:"count"`
	Resources []ResourceOut `json:"resources"`
}

func getClusterResources() *Tool {
	return define[ResourcesInput, ResourceList](spec{
		name: "get_cluster_resources", title: "Cluster resources", tier: safety.Green,
		description: "Everything the cluster knows in one list (nodes, guests, storage, SDN), with CPU percent and memory/disk in bytes, human units and percent. Filter with type.",
		adjust:      func(s *jsonschema.Schema) { enumSchema(property(s, "type"), "vm", "storage", "node", "sdn") },
	}, func(ctx context.Context, env *Env, in ResourcesInput) (*Call, error) {
		return read(safety.Target{}, "List cluster resources", func(ctx context.Context) (any, error) {
			res, err := env.PVE.ClusterResources(ctx, in.Type)
			if err != nil {
				return nil, err
			}
			out := ResourceList{Resources: []ResourceOut{}}
			for _, r := range res {
				name := r.Name
				if name == "" {
					name = r.Storage
				}
				if name == "" {
					name = r.Node
				}
				ro := ResourceOut{ID: r.ID, Type: r.Type, Node: r.Node, Name: name, Status: r.Status, VMID: int64(r.VMID),
					CPUPercent: round1(float64(r.CPU) * 100), Memory: usage(int64(r.Mem), int64(r.MaxMem)), Disk: usage(int64(r.Disk), int64(r.MaxDisk))}
				if r.Uptime > 0 {
					ro.Uptime = humanDuration(int64(r.Uptime))
				}
				out.Resources = append(out.Resources, ro)
			}
			out.Count = len(out.Resources)
			return out, nil
		}), nil
	})
}

// ---- get_recent_tasks ----

type TasksInput struct {
	Limit      int    `json:"limit,omitempty" jsonschema:"how many tasks, newest first (1-500, default 20)"`
	Node       string `json:"node,omitempty" jsonschema:"only tasks of this node"`
	FailedOnly bool   `json:"failed_only,omitempty" jsonschema:"only tasks that ended with an error"`
}

type TaskOut struct {
	UPID            string `json:"upid" jsonschema:"task id; pass it to get_task_status"`
	Node            string `json:"node"`
	Type            string `json:"type" jsonschema:"qmstart, qmshutdown, vzdump (backup), …"`
	ID              string `json:"id" jsonschema:"object the task worked on, usually a VMID"`
	User            string `json:"user"`
	Running         bool   `json:"running"`
	OK              bool   `json:"ok" jsonschema:"finished successfully"`
	Status          string `json:"status" jsonschema:"PVE's exit status: OK, or the error text; empty while running"`
	StartTime       string `json:"start_time" jsonschema:"RFC 3339, UTC"`
	EndTime         string `json:"end_time,omitempty"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
}

type TaskList struct {
	Tasks []TaskOut `json:"tasks"`
}

func getRecentTasks() *Tool {
	return define[TasksInput, TaskList](spec{
		name: "get_recent_tasks", title: "Recent tasks", tier: safety.Green,
		description: "Recent cluster tasks (backups, starts, migrations…), newest first, with success or PVE's error text and duration in seconds.",
		adjust: func(s *jsonschema.Schema) {
			rangeSchema(property(s, "limit"), 1, 500)
			nodeSchema(property(s, "node"))
		},
	}, func(ctx context.Context, env *Env, in TasksInput) (*Call, error) {
		if in.Limit == 0 {
			in.Limit = 20
		}
		if err := checkOptionalNode(in.Node); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node}, "List recent tasks", func(ctx context.Context) (any, error) {
			tasks, err := env.PVE.ClusterTasks(ctx)
			if err != nil {
				return nil, err
			}
			sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].StartTime > tasks[j].StartTime })
			out := TaskList{Tasks: []TaskOut{}}
			for _, t := range tasks {
				if len(out.Tasks) >= in.Limit {
					break
				}
				if in.Node != "" && t.Node != in.Node {
					continue
				}
				to := taskOut(t)
				if in.FailedOnly && (to.Running || to.OK) {
					continue
				}
				out.Tasks = append(out.Tasks, to)
			}
			return out, nil
		}), nil
	})
}

func taskOut(t pve.Task) TaskOut {
	running := t.EndTime == 0 && t.Status == ""
	ok := !running && (t.Status == "OK" || strings.HasPrefix(t.Status, "WARNINGS"))
	to := TaskOut{UPID: t.UPID, Node: t.Node, Type: t.Type, ID: t.ID, User: t.User, Running: running, OK: ok,
		Status: t.Status, StartTime: unixTime(int64(t.StartTime)), EndTime: unixTime(int64(t.EndTime))}
	if t.EndTime > 0 && t.EndTime >= t.StartTime {
		to.DurationSeconds = int64(t.EndTime - t.StartTime)
	}
	return to
}

// ---- get_backups ----

type BackupsInput struct {
	Node    string `json:"node,omitempty" jsonschema:"only backup storage seen from this node"`
	Storage string `json:"storage,omitempty" jsonschema:"only this storage"`
	VMID    int    `json:"vmid,omitempty" jsonschema:"only backups of this guest"`
}

type BackupOut struct {
	VolID     string `json:"volid" jsonschema:"volume id, e.g. nfs-backup:backup/vzdump-qemu-101-….vma.zst"`
	Storage   string `json:"storage"`
	Node      string `json:"node" jsonschema:"node the listing came from (shared storage is listed once)"`
	VMID      int64  `json:"vmid"`
	Kind      string `json:"kind,omitempty" jsonschema:"qemu or lxc"`
	Created   string `json:"created" jsonschema:"RFC 3339, UTC"`
	AgeHours  int64  `json:"age_hours"`
	SizeBytes int64  `json:"size_bytes"`
	Size      string `json:"size"`
	Format    string `json:"format"`
	Notes     string `json:"notes,omitempty"`
	Protected bool   `json:"protected"`
}

type BackupList struct {
	Count   int         `json:"count"`
	Backups []BackupOut `json:"backups"`
}

func getBackups() *Tool {
	return define[BackupsInput, BackupList](spec{
		name: "get_backups", title: "Backups", tier: safety.Green,
		description: "Backups (vzdump archives) on every backup storage, newest first, with guest, creation time, age in hours and size (bytes and human units). Filter by node, storage or vmid.",
		adjust: func(s *jsonschema.Schema) {
			nodeSchema(property(s, "node"))
			property(s, "storage").Pattern = storageRE.String()
			vmidSchema(property(s, "vmid"))
		},
	}, func(ctx context.Context, env *Env, in BackupsInput) (*Call, error) {
		if err := checkOptionalNode(in.Node); err != nil {
			return nil, err
		}
		if in.VMID != 0 {
			if err := checkVMID(in.VMID); err != nil {
				return nil, err
			}
		}
		return read(safety.Target{Node: in.Node, VMID: in.VMID}, "List backups", func(ctx context.Context) (any, error) {
			return listBackups(ctx, env.PVE, in)
		}), nil
	})
}

func listBackups(ctx context.Context, c *pve.Client, in BackupsInput) (BackupList, error) {
	storages, err := c.ClusterResources(ctx, "storage")
	if err != nil {
		return BackupList{}, err
	}
	out := BackupList{Backups: []BackupOut{}}
	seen := map[string]bool{}
	now := time.Now()
	var lastErr error
	for _, s := range storages {
		if !strings.Contains(s.Content, "backup") || s.Status != "available" {
			continue
		}
		if (in.Node != "" && s.Node != in.Node) || (in.Storage != "" && s.Storage != in.Storage) {
			continue
		}
		if bool(s.Shared) && seen["storage:"+s.Storage] {
			continue
		}
		items, err := c.StorageContent(ctx, s.Node, s.Storage, "backup")
		if err != nil {
			lastErr = err
			continue
		}
		seen["storage:"+s.Storage] = true
		for _, it := range items {
			if seen[it.VolID] || (in.VMID != 0 && int(it.VMID) != in.VMID) {
				continue
			}
			seen[it.VolID] = true
			created := time.Unix(int64(it.CTime), 0)
			out.Backups = append(out.Backups, BackupOut{
				VolID: it.VolID, Storage: s.Storage, Node: s.Node, VMID: int64(it.VMID), Kind: it.Subtype,
				Created: unixTime(int64(it.CTime)), AgeHours: int64(now.Sub(created).Hours()),
				SizeBytes: int64(it.Size), Size: humanBytes(int64(it.Size)), Format: it.Format, Notes: it.Notes, Protected: bool(it.Protected),
			})
		}
	}
	if len(out.Backups) == 0 && lastErr != nil {
		return out, lastErr
	}
	sort.Slice(out.Backups, func(i, j int) bool { return out.Backups[i].Created > out.Backups[j].Created })
	out.Count = len(out.Backups)
	return out, nil
}

// ---- get_guest_status ----

type VMIDInput struct {
	VMID int `json:"vmid" jsonschema:"the guest's numeric id, e.g. 101; Jarvis finds its node and whether it is a VM or a container"`
}

type GuestStatusOut struct {
	GuestSummary
	QMPStatus   string `json:"qmp_status,omitempty" jsonschema:"QEMU's own state: running, paused, prelaunch, …"`
	HAState     string `json:"ha_state,omitempty"`
	NetInBytes  int64  `json:"net_in_bytes"`
	NetOutBytes int64  `json:"net_out_bytes"`
}

// resolveGuest finds a guest's real node and kind from its VMID.
func resolveGuest(ctx context.Context, env *Env, vmid int) (*pve.Resource, error) {
	if err := checkVMID(vmid); err != nil {
		return nil, err
	}
	r, err := env.PVE.FindGuest(ctx, vmid)
	if errors.Is(err, pve.ErrGuestNotFound) {
		return nil, inputErrorf("there is no guest with VMID %d in this cluster (see get_vms and get_containers)", vmid)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up VMID %d: %w", vmid, err)
	}
	return r, nil
}

func guestTarget(r *pve.Resource) safety.Target {
	return safety.Target{Node: r.Node, VMID: int(r.VMID), Kind: r.Type, Name: r.Name, Status: r.Status}
}

// guestNoun names a guest for sentences: "VM 101 'web01'" or "container 200 'dns'".
func guestNoun(r *pve.Resource) string {
	noun := "VM"
	if r.Type == "lxc" {
		noun = "container"
	}
	if r.Name != "" {
		return fmt.Sprintf("%s %d '%s'", noun, int64(r.VMID), r.Name)
	}
	return fmt.Sprintf("%s %d", noun, int64(r.VMID))
}

func getGuestStatus() *Tool {
	return define[VMIDInput, GuestStatusOut](spec{
		name: "get_guest_status", title: "Guest status", tier: safety.Green,
		description: "Live state of one VM or container, by VMID alone: node, kind, state, CPU (percent), memory and disk (bytes, human units, percent), uptime, network totals.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in VMIDInput) (*Call, error) {
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		return read(guestTarget(r), "Read the status of "+guestNoun(r), func(ctx context.Context) (any, error) {
			st, err := env.PVE.GuestStatus(ctx, r.Node, r.Type, in.VMID)
			if err != nil {
				return nil, nodeError(r.Node, err)
			}
			sum := guestSummary(*r)
			sum.Status = st.Status
			sum.CPUPercent = round1(float64(st.CPU) * 100)
			sum.CPUs = float64(st.CPUs)
			sum.Memory = usage(int64(st.Mem), int64(st.MaxMem))
			sum.Disk = usage(int64(st.Disk), int64(st.MaxDisk))
			sum.UptimeSeconds, sum.Uptime = int64(st.Uptime), humanDuration(int64(st.Uptime))
			if st.Name != "" {
				sum.Name = st.Name
			}
			ha := ""
			if s, ok := st.HA["state"].(string); ok {
				ha = s
			}
			return GuestStatusOut{GuestSummary: sum, QMPStatus: st.QMPStatus, HAState: ha,
				NetInBytes: int64(st.NetIn), NetOutBytes: int64(st.NetOut)}, nil
		}), nil
	})
}

// ---- get_task_status ----

type TaskStatusInput struct {
	UPID        string `json:"upid" jsonschema:"task id as returned by a lifecycle tool or get_recent_tasks"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds (0-300) for the task to finish, with progress notifications"`
}

type TaskStatusOut struct {
	TaskOut
	Log []string `json:"log" jsonschema:"the last lines of the task log (up to 20)"`
}

func getTaskStatus() *Tool {
	return define[TaskStatusInput, TaskStatusOut](spec{
		name: "get_task_status", title: "Task status", tier: safety.Green,
		description: "State of one task by its UPID: running or finished, OK or PVE's error text, duration in seconds and the last log lines. Can wait up to 300 s for it to finish.",
		adjust: func(s *jsonschema.Schema) {
			p := property(s, "upid")
			p.Pattern = `^UPID:[a-zA-Z0-9-]+:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$`
			p.MaxLength = ptr(512)
			rangeSchema(property(s, "wait_seconds"), 0, 300)
		},
	}, func(ctx context.Context, env *Env, in TaskStatusInput) (*Call, error) {
		id, err := pve.ParseUPID(in.UPID)
		if err != nil {
			return nil, inputErrorf("%v", err)
		}
		return &Call{Target: safety.Target{Node: id.Node}, Effect: "Read task " + in.UPID,
			Run: func(ctx context.Context, progress Progress) (any, error) {
				var st *pve.TaskStatus
				if in.WaitSeconds > 0 {
					wctx, cancel := context.WithTimeout(ctx, time.Duration(in.WaitSeconds)*time.Second)
					defer cancel()
					start := time.Now()
					st, err = env.PVE.WaitTask(wctx, in.UPID, time.Second, func(s pve.TaskStatus) {
						progress(fmt.Sprintf("task %s: %s", s.Type, s.Status), time.Since(start).Seconds(), float64(in.WaitSeconds))
					})
					var failed *pve.TaskFailedError
					if err != nil && !errors.As(err, &failed) && wctx.Err() == nil {
						return nil, err
					}
				}
				if st == nil || st.Running() {
					st, err = env.PVE.TaskStatus(ctx, id.Node, in.UPID)
					if err != nil {
						return nil, nodeError(id.Node, err)
					}
				}
				return taskStatusOut(ctx, env.PVE, id, st), nil
			}}, nil
	})
}

func taskStatusOut(ctx context.Context, c *pve.Client, id pve.UPID, st *pve.TaskStatus) TaskStatusOut {
	t := pve.Task{UPID: id.Raw, Node: id.Node, Type: id.Type, ID: id.ID, User: id.User, Status: st.ExitStatus, StartTime: st.StartTime}
	to := taskOut(t)
	to.Running = st.Running()
	to.OK = st.Succeeded()
	if !to.Running {
		to.Status = st.ExitStatus
	} else {
		to.Status = ""
		to.EndTime = ""
	}
	out := TaskStatusOut{TaskOut: to, Log: []string{}}
	if lines, err := c.TaskLog(ctx, id.Node, id.Raw, 0, 500); err == nil {
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		for _, l := range lines {
			out.Log = append(out.Log, l.T)
		}
	}
	return out
}

// ---- list_snapshots ----

type SnapshotOut struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Parent      string `json:"parent,omitempty"`
	Created     string `json:"created,omitempty" jsonschema:"RFC 3339, UTC"`
	WithRAM     bool   `json:"with_ram" jsonschema:"true when the VM's memory was saved too"`
}

type SnapshotList struct {
	VMID      int64         `json:"vmid"`
	Node      string        `json:"node"`
	Kind      string        `json:"kind"`
	Current   string        `json:"current_parent,omitempty" jsonschema:"the snapshot the live state derives from"`
	Snapshots []SnapshotOut `json:"snapshots"`
}

func listSnapshots() *Tool {
	return define[VMIDInput, SnapshotList](spec{
		name: "list_snapshots", title: "Snapshots", tier: safety.Green,
		description: "Snapshots of one VM or container by VMID: name, description, parent, creation time and whether RAM was saved.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in VMIDInput) (*Call, error) {
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		return read(guestTarget(r), "List snapshots of "+guestNoun(r), func(ctx context.Context) (any, error) {
			snaps, err := env.PVE.Snapshots(ctx, r.Node, r.Type, in.VMID)
			if err != nil {
				return nil, nodeError(r.Node, err)
			}
			return snapshotList(r, snaps), nil
		}), nil
	})
}

func snapshotList(r *pve.Resource, snaps []pve.Snapshot) SnapshotList {
	out := SnapshotList{VMID: int64(r.VMID), Node: r.Node, Kind: r.Type, Snapshots: []SnapshotOut{}}
	for _, s := range snaps {
		if s.Name == "current" {
			out.Current = s.Parent
			continue
		}
		out.Snapshots = append(out.Snapshots, SnapshotOut{Name: s.Name, Description: strings.TrimSpace(s.Description),
			Parent: s.Parent, Created: unixTime(int64(s.SnapTime)), WithRAM: bool(s.VMState)})
	}
	sort.Slice(out.Snapshots, func(i, j int) bool { return out.Snapshots[i].Created < out.Snapshots[j].Created })
	return out
}
