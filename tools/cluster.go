package tools

// GREEN reads of the cluster as a whole: quorum, nodes, storage, every resource, backups.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- get_cluster_status ----

type NoInput struct{}

type ClusterNode struct {
	Name   string `json:"name"`
	Online bool   `json:"online"`
	IP     string `json:"ip,omitempty"`
	NodeID int64  `json:"node_id,omitempty"`
	Local  bool   `json:"local" jsonschema:"true for the node whose API answered"`
}

// GuestCounts counts the guests of one kind by state.
type GuestCounts struct {
	Total     int `json:"total" jsonschema:"guests of this kind, templates not included"`
	Running   int `json:"running"`
	Stopped   int `json:"stopped"`
	Other     int `json:"other" jsonschema:"paused, or in no known state while their node does not answer"`
	Templates int `json:"templates" jsonschema:"templates, counted apart: they never run"`
}

func (c *GuestCounts) add(r pve.Resource) {
	switch {
	case bool(r.Template):
		c.Templates++
		return
	case r.Status == "running":
		c.Running++
	case r.Status == "stopped":
		c.Stopped++
	default:
		c.Other++
	}
	c.Total++
}

type ClusterStatus struct {
	ClusterName string        `json:"cluster_name" jsonschema:"empty for a single node without a cluster"`
	Quorate     bool          `json:"quorate" jsonschema:"true when the cluster has quorum and can change state"`
	NodesTotal  int           `json:"nodes_total"`
	NodesOnline int           `json:"nodes_online"`
	Nodes       []ClusterNode `json:"nodes"`
	VMs         *GuestCounts  `json:"vms,omitempty" jsonschema:"virtual machines (QEMU) by state; absent when the guests could not be read (see guests_note)"`
	Containers  *GuestCounts  `json:"containers,omitempty" jsonschema:"LXC containers by state; absent when the guests could not be read"`
	GuestsNote  string        `json:"guests_note,omitempty" jsonschema:"why the guest counts are missing"`
}

func getClusterStatus() *Tool {
	return define[NoInput, ClusterStatus](spec{
		name: "get_cluster_status", title: "Cluster status", tier: safety.Green,
		description: "Cluster name, whether it has quorum, which nodes are online, and how many VMs and containers are running or stopped. Start here to see if the cluster is healthy.",
	}, func(ctx context.Context, env *Env, _ NoInput) (*Call, error) {
		return read(safety.Target{}, "Read the cluster's quorum, node membership and guest counts", func(ctx context.Context) (any, error) {
			entries, err := env.PVE.ClusterStatus(ctx)
			if err != nil {
				return nil, err
			}
			out := ClusterStatus{Nodes: []ClusterNode{}}
			// Quorum and membership are worth having even when the guests
			// cannot be read; the counts are then left out, never shown as 0.
			guests, err := env.PVE.ClusterResources(ctx, "vm")
			if err != nil {
				out.GuestsNote = fmt.Sprintf("guest counts unavailable: %v", err)
			} else {
				out.VMs, out.Containers = &GuestCounts{}, &GuestCounts{}
			}
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
			for _, r := range guests {
				switch r.Type {
				case "qemu":
					out.VMs.add(r)
				case "lxc":
					out.Containers.add(r)
				}
			}
			if err == nil && len(guests) == 0 {
				out.GuestsNote = "no guests visible: either there are none, or the API token lacks VM.Audit (jarvis doctor checks)"
			}
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
				return nil, nodeError(ctx, env, in.Node, err)
			}
			load := []float64{}
			for _, l := range st.LoadAvg {
				load = append(load, float64(l))
			}
			cores := int64(st.CPUInfo.CPUs)
			return NodeStatusOut{
				Node: in.Node, CPUPercent: FractionPercent(float64(st.CPU)), IOWaitPercent: FractionPercent(float64(st.Wait)),
				CPUModel: st.CPUInfo.Model, CPUCores: cores, LoadAverage: load,
				Memory: usage(int64(st.Memory.Used), int64(st.Memory.Total)), Swap: usage(int64(st.Swap.Used), int64(st.Swap.Total)),
				RootDisk: usage(int64(st.RootFS.Used), int64(st.RootFS.Total)), UptimeSeconds: int64(st.Uptime),
				Uptime: HumanDuration(int64(st.Uptime)), Kernel: st.KVersion, PVEVersion: st.PVEVersion,
			}, nil
		}), nil
	})
}

// nodeError turns PVE's answers about a node into words a model can act on.
func nodeError(ctx context.Context, env *Env, node string, err error) error {
	switch {
	case pve.IsUnknownNode(err):
		if nodes, lerr := clusterNodes(ctx, env); lerr == nil && len(nodes) > 0 {
			return unknownNodeError(node, nodes)
		}
		return fmt.Errorf("node %s is not part of this cluster (see get_cluster_status for node names): %w", node, err)
	case pve.IsUnreachable(err):
		return fmt.Errorf("node %s is offline or unreachable from the cluster: %w", node, err)
	case pve.IsNotFound(err), pve.IsBadRequest(err):
		// A 400 or 404 may be about the node, or about another argument
		// (a task that does not exist): only the member list tells.
		nodes, lerr := clusterNodes(ctx, env)
		if lerr == nil && !slices.Contains(nodes, node) {
			return unknownNodeError(node, nodes)
		}
		if lerr != nil {
			return fmt.Errorf("node %s may not be part of this cluster (see get_cluster_status for node names): %w", node, err)
		}
	}
	return err
}

// ---- node names the cluster does not know ----

// clusterNodes lists the names of the cluster's member nodes, sorted.
func clusterNodes(ctx context.Context, env *Env) ([]string, error) {
	entries, err := env.PVE.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, e := range entries {
		if e.Type == "node" {
			nodes = append(nodes, e.Name)
		}
	}
	slices.Sort(nodes)
	return nodes, nil
}

// unknownFilterNode is asked when a node filter matched nothing: a node the
// cluster does not know is a mistake to name, not an empty node. Asked only
// then, it costs nothing on the usual path; when the members cannot be read,
// the empty answer stands.
func unknownFilterNode(ctx context.Context, env *Env, node string) error {
	if node == "" {
		return nil
	}
	nodes, err := clusterNodes(ctx, env)
	if err != nil || len(nodes) == 0 || slices.Contains(nodes, node) {
		return nil
	}
	return unknownNodeError(node, nodes)
}

func unknownNodeError(node string, nodes []string) error {
	return inputErrorf("no node %q in this cluster; nodes are: %s", node, strings.Join(nodes, ", "))
}

// ---- get_storage ----

type StorageInput struct {
	Node string `json:"node,omitempty" jsonschema:"only storage seen from this node"`
}

type StorageOut struct {
	Storage       string   `json:"storage"`
	Node          string   `json:"node,omitempty" jsonschema:"the node of node-local storage; left out for shared storage (see nodes)"`
	Shared        bool     `json:"shared" jsonschema:"true when the nodes share one storage (NFS, CIFS, Ceph, PBS, …); it is listed once"`
	Nodes         []string `json:"nodes,omitempty" jsonschema:"shared storage: the nodes that can use it now"`
	UnavailableOn []string `json:"unavailable_on,omitempty" jsonschema:"shared storage: the nodes that cannot reach it now"`
	Type          string   `json:"type" jsonschema:"dir, lvmthin, zfspool, nfs, cifs, pbs, …"`
	Content       string   `json:"content" jsonschema:"comma-separated content types: images, rootdir, backup, iso, vztmpl, snippets"`
	Status        string   `json:"status" jsonschema:"available, or unknown when its node (for shared storage: every node) cannot reach it"`
	Usage         Usage    `json:"usage"`
}

type StorageList struct {
	Storages []StorageOut `json:"storages" jsonschema:"shared storage first, then each node's own"`
}

func getStorage() *Tool {
	return define[StorageInput, StorageList](spec{
		name: "get_storage", title: "Storage", tier: safety.Green,
		description: "Every storage of the cluster (or those one node sees): shared storage once, with the nodes that can use it, and each node's local storage; type, content types, and use in bytes, human units and percent.",
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
			out := storageList(res, in.Node)
			if len(out.Storages) == 0 {
				if err := unknownFilterNode(ctx, env, in.Node); err != nil {
					return nil, err
				}
			}
			return out, nil
		}), nil
	})
}

// storageList folds PVE's rows (one per storage and node) into one entry per
// shared storage and one per node-local storage; node, when set, keeps what
// that node sees.
func storageList(res []pve.Resource, node string) StorageList {
	out := StorageList{Storages: []StorageOut{}}
	shared := map[string]int{} // storage name → index in out.Storages
	// With a node filter, a shared storage's status is the one that node sees.
	statusOnNode := map[string]string{}
	for _, r := range res {
		if r.Type != "" && r.Type != "storage" {
			continue
		}
		available := r.Status == "available"
		if !bool(r.Shared) {
			if node == "" || r.Node == node {
				out.Storages = append(out.Storages, StorageOut{Storage: r.Storage, Node: r.Node, Type: r.PluginType,
					Content: r.Content, Status: r.Status, Usage: usage(int64(r.Disk), int64(r.MaxDisk))})
			}
			continue
		}
		if r.Node == node {
			statusOnNode[r.Storage] = r.Status
		}
		i, seen := shared[r.Storage]
		if !seen {
			i = len(out.Storages)
			shared[r.Storage] = i
			out.Storages = append(out.Storages, StorageOut{Storage: r.Storage, Shared: true, Type: r.PluginType,
				Content: r.Content, Status: r.Status, Usage: usage(int64(r.Disk), int64(r.MaxDisk))})
		}
		s := &out.Storages[i]
		if available {
			s.Nodes = append(s.Nodes, r.Node)
			if s.Status != "available" {
				// Its use as a node that reaches it sees it.
				s.Status, s.Usage = r.Status, usage(int64(r.Disk), int64(r.MaxDisk))
			}
		} else {
			s.UnavailableOn = append(s.UnavailableOn, r.Node)
		}
	}
	kept := out.Storages[:0]
	for _, s := range out.Storages {
		if s.Shared && node != "" && !slices.Contains(s.Nodes, node) && !slices.Contains(s.UnavailableOn, node) {
			continue
		}
		if st, ok := statusOnNode[s.Storage]; ok && s.Shared && node != "" {
			s.Status = st
		}
		slices.Sort(s.Nodes)
		slices.Sort(s.UnavailableOn)
		kept = append(kept, s)
	}
	out.Storages = kept
	sort.SliceStable(out.Storages, func(i, j int) bool {
		a, b := out.Storages[i], out.Storages[j]
		if a.Shared != b.Shared {
			return a.Shared
		}
		return a.Node < b.Node || a.Node == b.Node && a.Storage < b.Storage
	})
	return out
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
	Disk       DiskUse `json:"disk" jsonschema:"a node's root disk, a storage's space, a guest's root disk (use unknown for VMs and stopped containers)"`
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
					CPUPercent: FractionPercent(float64(r.CPU)), Memory: usage(int64(r.Mem), int64(r.MaxMem)), Disk: guestDisk(r.Type, r.Status, int64(r.Disk), int64(r.MaxDisk))}
				if r.Uptime > 0 {
					ro.Uptime = HumanDuration(int64(r.Uptime))
				}
				out.Resources = append(out.Resources, ro)
			}
			out.Count = len(out.Resources)
			return out, nil
		}), nil
	})
}

// ---- get_backups ----

// storageRE is a storage id as PVE allows it.
var storageRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9._-]{0,99}$`)

type BackupsInput struct {
	Node    string `json:"node,omitempty" jsonschema:"only backup storage seen from this node"`
	Storage string `json:"storage,omitempty" jsonschema:"only this storage"`
	VMID    int    `json:"vmid,omitempty" jsonschema:"only backups of this guest"`
	Limit   int    `json:"limit,omitempty" jsonschema:"how many backups, newest first (1-500, default 50)"`
}

// Backups accumulate: a cluster keeps thousands. A model needs the newest, and
// to know when there are more.
const (
	defaultBackupLimit = 50
	maxBackupLimit     = 500
)

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
	Count   int         `json:"count" jsonschema:"backups returned"`
	Total   int         `json:"total" jsonschema:"backups matching the filters"`
	LeftOut int         `json:"left_out" jsonschema:"older backups matching the filters that are not returned because of limit"`
	Note    string      `json:"note,omitempty" jsonschema:"how to see the backups left out"`
	Backups []BackupOut `json:"backups"`
}

func getBackups() *Tool {
	return define[BackupsInput, BackupList](spec{
		name: "get_backups", title: "Backups", tier: safety.Green,
		description: "Backups (vzdump archives) on every backup storage, newest first (50 unless limit says otherwise, at most 500), with guest, creation time, age in hours and size (bytes and human units); says how many older ones were left out. Filter by node, storage or vmid.",
		adjust: func(s *jsonschema.Schema) {
			nodeSchema(property(s, "node"))
			property(s, "storage").Pattern = storageRE.String()
			vmidSchema(property(s, "vmid"))
			rangeSchema(property(s, "limit"), 1, maxBackupLimit)
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
			out, err := listBackups(ctx, env.PVE, in)
			if err == nil && out.Total == 0 {
				err = unknownFilterNode(ctx, env, in.Node)
			}
			return out, err
		}), nil
	})
}

func listBackups(ctx context.Context, c *pve.Client, in BackupsInput) (BackupList, error) {
	if in.Limit <= 0 {
		in.Limit = defaultBackupLimit
	}
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
	sort.SliceStable(out.Backups, func(i, j int) bool { return out.Backups[i].Created > out.Backups[j].Created })
	out.Total = len(out.Backups)
	if len(out.Backups) > in.Limit {
		out.LeftOut = len(out.Backups) - in.Limit
		out.Backups = out.Backups[:in.Limit]
		out.Note = fmt.Sprintf("%d older backups were left out; raise limit (up to %d) or filter by vmid or storage", out.LeftOut, maxBackupLimit)
	}
	out.Count = len(out.Backups)
	return out, nil
}
