package tools

// VMs and containers: the GREEN reads, and how every guest tool finds a guest by VMID.

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- finding a guest: every tool that takes a VMID ----

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
	noun := kindWord(r.Type)
	if r.Name != "" {
		return fmt.Sprintf("%s %d '%s'", noun, int64(r.VMID), r.Name)
	}
	return fmt.Sprintf("%s %d", noun, int64(r.VMID))
}

// kindWord names a guest kind for sentences: "VM" (qemu) or "container" (lxc).
func kindWord(kind string) string {
	if kind == "lxc" {
		return "container"
	}
	return "VM"
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
	Disk          DiskUse `json:"disk" jsonschema:"root disk: size, and use where Proxmox reports it (running containers; never VMs)"`
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
		CPUPercent: FractionPercent(float64(r.CPU)), CPUs: float64(r.MaxCPU),
		Memory: usage(int64(r.Mem), int64(r.MaxMem)), Disk: guestDisk(r.Type, r.Status, int64(r.Disk), int64(r.MaxDisk)),
		UptimeSeconds: int64(r.Uptime), Uptime: HumanDuration(int64(r.Uptime)), Tags: r.Tags,
		Template: bool(r.Template), Lock: r.Lock,
	}
}

func listGuests(kind, name, title, noun string) *Tool {
	return define[GuestListInput, GuestList](spec{
		name: name, title: title, tier: safety.Green,
		description: fmt.Sprintf("Every %s in the cluster with node, state, CPU (percent), memory (bytes, human units, percent), disk size and use where Proxmox reports it, and uptime. Filter by node or status.", noun),
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
			if len(out.Guests) == 0 {
				if err := unknownFilterNode(ctx, env, in.Node); err != nil {
					return nil, err
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

func getGuestStatus() *Tool {
	return define[VMIDInput, GuestStatusOut](spec{
		name: "get_guest_status", title: "Guest status", tier: safety.Green,
		description: "Live state of one VM or container, by VMID alone: node, kind, state, CPU (percent), memory (bytes, human units, percent), disk size and use where Proxmox reports it (running containers, never VMs), uptime, network totals.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in VMIDInput) (*Call, error) {
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		return read(guestTarget(r), "Read the status of "+guestNoun(r), func(ctx context.Context) (any, error) {
			st, err := env.PVE.GuestStatus(ctx, r.Node, r.Type, in.VMID)
			if err != nil {
				return nil, nodeError(ctx, env, r.Node, err)
			}
			sum := guestSummary(*r)
			sum.Status = st.Status
			sum.CPUPercent = FractionPercent(float64(st.CPU))
			sum.CPUs = float64(st.CPUs)
			sum.Memory = usage(int64(st.Mem), int64(st.MaxMem))
			sum.Disk = guestDisk(r.Type, st.Status, int64(st.Disk), int64(st.MaxDisk))
			sum.UptimeSeconds, sum.Uptime = int64(st.Uptime), HumanDuration(int64(st.Uptime))
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
