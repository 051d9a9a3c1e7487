package tools

// get_guest_config and get_guest_agent_info: a guest's configuration, read
// without its secrets, and what the guest itself says about its network.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- get_guest_config ----

type GuestDiskOut struct {
	Slot      string `json:"slot" jsonschema:"scsi0, virtio1, efidisk0, rootfs, mp0, unused0, …"`
	Storage   string `json:"storage" jsonschema:"empty for a path on the host (bind mount, passed-through device)"`
	Volume    string `json:"volume"`
	Size      string `json:"size" jsonschema:"as Proxmox writes it, e.g. 64G"`
	SizeBytes int64  `json:"size_bytes"`
}

type GuestNICOut struct {
	Slot     string `json:"slot"`
	Model    string `json:"model" jsonschema:"virtio, e1000, … for VMs; veth for containers"`
	MAC      string `json:"mac"`
	Bridge   string `json:"bridge"`
	IP       string `json:"ip,omitempty" jsonschema:"containers: dhcp, manual or address/prefix"`
	Firewall bool   `json:"firewall"`
}

type CloudInitOut struct {
	User        string   `json:"user,omitempty"`
	IPConfig    []string `json:"ip_config" jsonschema:"ipconfig0, ipconfig1, … in order"`
	SSHKeysSet  bool     `json:"ssh_keys_set"`
	PasswordSet bool     `json:"password_set"`
}

type GuestConfigOut struct {
	VMID       int64          `json:"vmid"`
	Node       string         `json:"node"`
	Kind       string         `json:"kind" jsonschema:"qemu or lxc"`
	Name       string         `json:"name"`
	Template   bool           `json:"template"`
	Cores      int64          `json:"cores"`
	Sockets    int64          `json:"sockets,omitempty"`
	MemoryMiB  int64          `json:"memory_mib"`
	BalloonMiB *int64         `json:"balloon_mib,omitempty" jsonschema:"VMs: the least memory ballooning leaves; 0 means ballooning is off"`
	SwapMiB    *int64         `json:"swap_mib,omitempty"`
	OnBoot     bool           `json:"onboot"`
	Tags       []string       `json:"tags"`
	Notes      string         `json:"notes"`
	OSType     string         `json:"ostype"`
	Disks      []GuestDiskOut `json:"disks"`
	NICs       []GuestNICOut  `json:"nics"`
	// Never a password or key: only whether one is set.
	CloudInit       *CloudInitOut `json:"cloud_init,omitempty"`
	CreatedByJarvis bool          `json:"created_by_jarvis" jsonschema:"tagged jarvis-created and in Jarvis's own record of the guests it created"`
	Lock            string        `json:"lock,omitempty"`
}

func getGuestConfig() *Tool {
	return define[VMIDInput, GuestConfigOut](spec{
		name: "get_guest_config", title: "Guest configuration", tier: safety.Green,
		description: "Configuration of one VM or container by VMID: cores, memory, disks, NICs, tags, notes, cloud-init (never passwords or keys), onboot, lock.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in VMIDInput) (*Call, error) {
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		return read(guestTarget(r), "Read the configuration of "+guestNoun(r), func(ctx context.Context) (any, error) {
			cfg, err := env.PVE.GuestConfig(ctx, r.Node, r.Type, in.VMID)
			if err != nil {
				return nil, guestReadError(ctx, env, r, err)
			}
			out := guestConfigOut(r, cfg)
			if tagged, id := createdMarks(out.Tags); tagged && id != "" && env.Created != nil {
				// An unreadable record counts as no record, as for delete_guest.
				out.CreatedByJarvis, _ = env.Created.CreatedByJarvis(ctx, in.VMID, id)
			}
			return out, nil
		}), nil
	})
}

// guestReadError says what PVE's refusal to read a guest it was found on
// means: gone from that node since (migrated, deleted), or the node's trouble.
func guestReadError(ctx context.Context, env *Env, r *pve.Resource, err error) error {
	if pve.IsNotFound(err) && !pve.IsUnknownNode(err) {
		return fmt.Errorf("%s is no longer on node %s (migrated or deleted since Jarvis looked it up; ask again): %w", guestNoun(r), r.Node, err)
	}
	return nodeError(ctx, env, r.Node, err)
}

// guestConfigOut reads PVE's config of a guest. It copies named settings
// only, so a secret (cipassword, sshkeys) can never pass through: those are
// reported as set or not.
func guestConfigOut(r *pve.Resource, cfg map[string]any) GuestConfigOut {
	lxc := r.Type == "lxc"
	out := GuestConfigOut{VMID: int64(r.VMID), Node: r.Node, Kind: r.Type, Name: cfgText(cfg, "name"),
		Template: cfgBool(cfg, "template"), Cores: cfgInt(cfg, "cores", 1), OnBoot: cfgBool(cfg, "onboot"),
		Tags: configTags(cfgText(cfg, "tags")), Notes: cfgText(cfg, "description"), OSType: cfgText(cfg, "ostype"),
		Lock: cfgText(cfg, "lock"), Disks: []GuestDiskOut{}, NICs: []GuestNICOut{}}
	if lxc {
		out.Name = cfgText(cfg, "hostname")
		// Without a limit a container may use every core of its node.
		out.Cores = cfgInt(cfg, "cores", int64(r.MaxCPU))
		out.MemoryMiB = cfgInt(cfg, "memory", 512)
		out.SwapMiB = ptr(cfgInt(cfg, "swap", 512))
	} else {
		out.Sockets = cfgInt(cfg, "sockets", 1)
		// PVE 8.1+ may write memory as a property string, "current=4096".
		mem, _, _ := strings.Cut(strings.TrimPrefix(cfgText(cfg, "memory"), "current="), ",")
		out.MemoryMiB = 512 // qemu-server's default
		if n, err := strconv.ParseInt(mem, 10, 64); err == nil {
			out.MemoryMiB = n
		}
		if _, ok := cfg["balloon"]; ok {
			out.BalloonMiB = ptr(cfgInt(cfg, "balloon", 0))
		}
	}
	if out.Name == "" {
		out.Name = r.Name
	}
	var ci CloudInitOut
	hasCI := false
	ipConfigs := map[int]string{}
	for k := range cfg {
		v := cfgText(cfg, k)
		switch {
		case diskSlot(k, lxc):
			if d, ok := configDisk(k, v); ok {
				out.Disks = append(out.Disks, d)
			} else if strings.Contains(v, "cloudinit") {
				hasCI = true // the cloud-init drive
			}
		case netSlot.MatchString(k):
			out.NICs = append(out.NICs, configNIC(k, v, lxc))
		case lxc:
		case k == "ciuser":
			ci.User, hasCI = v, true
		case k == "cipassword":
			ci.PasswordSet, hasCI = v != "", true
		case k == "sshkeys":
			ci.SSHKeysSet, hasCI = v != "", true
		case ipConfigSlot.MatchString(k):
			n, _ := strconv.Atoi(strings.TrimPrefix(k, "ipconfig"))
			ipConfigs[n], hasCI = v, true
		case strings.HasPrefix(k, "ci") || k == "nameserver" || k == "searchdomain":
			hasCI = true
		}
	}
	sort.Slice(out.Disks, func(i, j int) bool { return slotLess(out.Disks[i].Slot, out.Disks[j].Slot) })
	sort.Slice(out.NICs, func(i, j int) bool { return slotLess(out.NICs[i].Slot, out.NICs[j].Slot) })
	ci.IPConfig = []string{}
	for _, n := range slices.Sorted(maps.Keys(ipConfigs)) {
		ci.IPConfig = append(ci.IPConfig, ipConfigs[n])
	}
	if hasCI {
		out.CloudInit = &ci
	}
	return out
}

var (
	netSlot      = regexp.MustCompile(`^net\d+$`)
	ipConfigSlot = regexp.MustCompile(`^ipconfig\d+$`)
	qemuDiskSlot = regexp.MustCompile(`^(ide|sata|scsi|virtio|efidisk|tpmstate|unused)\d+$`)
	lxcDiskSlot  = regexp.MustCompile(`^(rootfs|(mp|unused)\d+)$`)
	slotParts    = regexp.MustCompile(`^([a-z_]+?)(\d*)$`)
)

func diskSlot(key string, lxc bool) bool {
	if lxc {
		return lxcDiskSlot.MatchString(key)
	}
	return qemuDiskSlot.MatchString(key)
}

// slotOrder ranks the kinds of slot: a container's root first, then its
// mount points; a VM's disks by bus; unused volumes last.
var slotOrder = []string{"rootfs", "mp", "efidisk", "ide", "sata", "scsi", "virtio", "tpmstate", "unused", "net"}

// slotLess orders disk and NIC slots as a person reads them: scsi2 before
// scsi10, rootfs before mp0.
func slotLess(a, b string) bool {
	ma, mb := slotParts.FindStringSubmatch(a), slotParts.FindStringSubmatch(b)
	if ma == nil || mb == nil {
		return a < b
	}
	if ra, rb := slices.Index(slotOrder, ma[1]), slices.Index(slotOrder, mb[1]); ra != rb {
		return ra < rb
	}
	na, _ := strconv.Atoi(ma[2])
	nb, _ := strconv.Atoi(mb[2])
	return na < nb
}

// configDisk reads "local-lvm:vm-101-disk-0,iothread=1,size=64G"; CD-ROM
// drives (media=cdrom, the cloud-init drive among them) are not disks.
func configDisk(slot, value string) (GuestDiskOut, bool) {
	parts := strings.Split(value, ",")
	d := GuestDiskOut{Slot: slot}
	for i, p := range parts {
		k, v, found := strings.Cut(p, "=")
		switch {
		case i == 0 && (!found || k == "file" || k == "volume"):
			if !found {
				v = p
			}
			if storage, volume, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(v, "/") {
				d.Storage, d.Volume = storage, volume
			} else {
				d.Volume = v
			}
		case k == "media" && v == "cdrom":
			return GuestDiskOut{}, false
		case k == "size":
			d.Size, d.SizeBytes = v, configSizeBytes(v)
		}
	}
	return d, d.Volume != "" && d.Volume != "none"
}

// configSizeBytes reads a size as Proxmox writes it: bytes, or a number with K, M,
// G or T (binary units).
func configSizeBytes(s string) int64 {
	s = strings.TrimSpace(s)
	mult := 1.0
	if s != "" {
		switch strings.ToUpper(s[len(s)-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		case "T":
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0
	}
	return int64(math.Round(f * mult))
}

// qemuNICOptions are the settings of a VM's netN other than "model=MAC".
var qemuNICOptions = map[string]bool{"bridge": true, "firewall": true, "link_down": true, "macaddr": true, "model": true,
	"mtu": true, "queues": true, "rate": true, "tag": true, "trunks": true}

// configNIC reads a VM's "virtio=BC:24:11:…,bridge=vmbr0,firewall=1" or a
// container's "name=eth0,bridge=vmbr0,hwaddr=…,ip=dhcp,type=veth".
func configNIC(slot, value string, lxc bool) GuestNICOut {
	n := GuestNICOut{Slot: slot}
	if lxc {
		n.Model = "veth"
	}
	for _, p := range strings.Split(value, ",") {
		k, v, _ := strings.Cut(p, "=")
		switch {
		case k == "bridge":
			n.Bridge = v
		case k == "firewall":
			n.Firewall = v == "1"
		case lxc && k == "hwaddr":
			n.MAC = v
		case lxc && k == "ip":
			n.IP = v
		case lxc && k == "type":
			n.Model = v
		case !lxc && k == "model":
			n.Model = v
		case !lxc && k == "macaddr":
			n.MAC = v
		case !lxc && !qemuNICOptions[k] && n.Model == "":
			n.Model, n.MAC = k, v
		}
	}
	return n
}

// configTags reads PVE's tag list; ';' separates them, ',' and spaces are accepted.
func configTags(s string) []string {
	tags := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
	if tags == nil {
		return []string{}
	}
	return tags
}

// cfgText is a config value as text; PVE sends numbers for some keys.
func cfgText(cfg map[string]any, key string) string {
	switch v := cfg[key].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		if v {
			return "1"
		}
		return "0"
	}
	return ""
}

func cfgInt(cfg map[string]any, key string, def int64) int64 {
	n, err := strconv.ParseFloat(cfgText(cfg, key), 64)
	if err != nil {
		return def
	}
	return int64(n)
}

func cfgBool(cfg map[string]any, key string) bool { return cfgInt(cfg, key, 0) != 0 }

// ---- get_guest_agent_info ----

type AgentInterfaceOut struct {
	Name string   `json:"name"`
	MAC  string   `json:"mac,omitempty"`
	IPs  []string `json:"ips" jsonschema:"address/prefix, e.g. 10.0.1.21/24"`
}

type GuestAgentOut struct {
	VMID         int64               `json:"vmid"`
	Node         string              `json:"node"`
	Kind         string              `json:"kind"`
	AgentRunning bool                `json:"agent_running" jsonschema:"VMs: the QEMU guest agent answered; containers: the container runs"`
	Message      string              `json:"message,omitempty" jsonschema:"why nothing was read from inside the guest, and what to do"`
	Hostname     string              `json:"hostname"`
	OS           string              `json:"os,omitempty"`
	Interfaces   []AgentInterfaceOut `json:"interfaces" jsonschema:"without the loopback"`
}

func getGuestAgentInfo() *Tool {
	return define[VMIDInput, GuestAgentOut](spec{
		name: "get_guest_agent_info", title: "Guest agent info", tier: safety.Green,
		description: "What a running guest reports from inside: host name, OS and IP addresses per interface (VMs through the QEMU guest agent). Says so when the agent is not running.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in VMIDInput) (*Call, error) {
		r, err := resolveGuest(ctx, env, in.VMID)
		if err != nil {
			return nil, err
		}
		effect := "Ask the QEMU guest agent of " + guestNoun(r) + " for its host name, OS and addresses"
		if r.Type == "lxc" {
			effect = "Read the interfaces of " + guestNoun(r)
		}
		return read(guestTarget(r), effect, func(ctx context.Context) (any, error) {
			out := GuestAgentOut{VMID: int64(r.VMID), Node: r.Node, Kind: r.Type, Interfaces: []AgentInterfaceOut{}}
			if r.Type == "lxc" {
				return containerAgentInfo(ctx, env, r, out)
			}
			return vmAgentInfo(ctx, env, r, out)
		}), nil
	})
}

func vmAgentInfo(ctx context.Context, env *Env, r *pve.Resource, out GuestAgentOut) (any, error) {
	noun := guestNoun(r)
	if r.Status != "running" {
		out.Message = fmt.Sprintf("%s is %s; its QEMU guest agent answers only while the VM runs", noun, orWord(r.Status, "not running"))
		return out, nil
	}
	ifaces, err := env.PVE.AgentNetworkInterfaces(ctx, r.Node, int(r.VMID))
	if reason, ok := pve.AgentUnavailable(err); ok {
		out.Message = agentMessage(noun, reason)
		return out, nil
	}
	if err != nil {
		return nil, guestReadError(ctx, env, r, err)
	}
	out.AgentRunning = true
	for _, i := range ifaces {
		if i.Name == "lo" {
			continue
		}
		o := AgentInterfaceOut{Name: i.Name, MAC: i.HardwareAddress, IPs: []string{}}
		for _, a := range i.IPAddresses {
			o.IPs = append(o.IPs, fmt.Sprintf("%s/%d", a.Address, int64(a.Prefix)))
		}
		out.Interfaces = append(out.Interfaces, o)
	}
	// An agent too old for a command says so with a 500; the interfaces
	// are worth having without the name or OS.
	host, err := env.PVE.AgentHostName(ctx, r.Node, int(r.VMID))
	if err != nil && !agentCommandFailed(err) {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	out.Hostname = host
	osInfo, err := env.PVE.AgentOSInfo(ctx, r.Node, int(r.VMID))
	if err != nil && !agentCommandFailed(err) {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	if osInfo != nil {
		out.OS = orWord(osInfo.PrettyName, osInfo.Name)
	}
	return out, nil
}

// agentCommandFailed is PVE's 500 for one agent command that failed.
func agentCommandFailed(err error) bool {
	var apiErr *pve.APIError
	return errors.As(err, &apiErr) && apiErr.Status == 500
}

// agentMessage turns PVE's reason the agent cannot be asked into what to do.
func agentMessage(noun, reason string) string {
	switch low := strings.ToLower(reason); {
	case strings.Contains(low, "no qemu guest agent configured"):
		return fmt.Sprintf("the QEMU guest agent is not enabled in the options of %s; enable it (Options, QEMU Guest Agent), install qemu-guest-agent in the guest and restart the VM", noun)
	case strings.Contains(low, "guest agent is not running"):
		return fmt.Sprintf("the QEMU guest agent is not running in %s (Proxmox: %q); install and start qemu-guest-agent inside the guest", noun, reason)
	}
	return fmt.Sprintf("%s is not running (Proxmox: %q); its QEMU guest agent answers only while the VM runs", noun, reason)
}

func containerAgentInfo(ctx context.Context, env *Env, r *pve.Resource, out GuestAgentOut) (any, error) {
	noun := guestNoun(r)
	// A container's name is its host name.
	out.Hostname = r.Name
	stopped := fmt.Sprintf("%s is %s; Proxmox reads a container's interfaces only while it runs", noun, orWord(r.Status, "not running"))
	if r.Status != "running" {
		out.Message = stopped
		return out, nil
	}
	ifaces, running, err := env.PVE.ContainerInterfaces(ctx, r.Node, int(r.VMID))
	if err != nil {
		return nil, guestReadError(ctx, env, r, err)
	}
	if !running {
		out.Message = stopped
		return out, nil
	}
	out.AgentRunning = true
	for _, i := range ifaces {
		if i.Name == "lo" {
			continue
		}
		o := AgentInterfaceOut{Name: i.Name, MAC: orWord(i.HardwareAddress, i.HWAddr), IPs: []string{}}
		for _, a := range i.IPAddresses {
			o.IPs = append(o.IPs, fmt.Sprintf("%s/%d", a.Address, int64(a.Prefix)))
		}
		if len(i.IPAddresses) == 0 {
			for _, a := range []string{i.Inet, i.Inet6} {
				if a != "" {
					o.IPs = append(o.IPs, a)
				}
			}
		}
		out.Interfaces = append(out.Interfaces, o)
	}
	return out, nil
}
