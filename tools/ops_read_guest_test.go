package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

func TestGetGuestConfig(t *testing.T) {
	env, _ := readEnv(t, nil, nil)
	for _, c := range []struct {
		vmid   int
		want   GuestConfigOut
		absent []string // JSON members that must not be there
	}{
		{101, GuestConfigOut{VMID: 101, Node: "pve", Kind: "qemu", Name: "web01", Cores: 4, Sockets: 1, MemoryMiB: 8192,
			OnBoot: true, Tags: []string{"prod", "web"}, OSType: "l26",
			Disks: []GuestDiskOut{{Slot: "scsi0", Storage: "local-lvm", Volume: "vm-101-disk-0", Size: "64G", SizeBytes: 64 << 30}},
			NICs:  []GuestNICOut{{Slot: "net0", Model: "virtio", MAC: "BC:24:11:7F:1F:96", Bridge: "vmbr0", Firewall: true}}},
			[]string{"balloon_mib", "swap_mib", "cloud_init", "lock"}},
		{201, GuestConfigOut{VMID: 201, Node: "pve", Kind: "lxc", Name: "nginx-proxy", Cores: 2, MemoryMiB: 1024, SwapMiB: ptr(int64(1024)),
			OnBoot: true, Tags: []string{"prod", "web"}, OSType: "debian",
			Disks: []GuestDiskOut{{Slot: "rootfs", Storage: "local-lvm", Volume: "vm-201-disk-0", Size: "8G", SizeBytes: 8 << 30}},
			NICs:  []GuestNICOut{{Slot: "net0", Model: "veth", MAC: "BC:24:11:B5:82:C3", Bridge: "vmbr0", IP: "dhcp", Firewall: true}}},
			[]string{"sockets", "balloon_mib", "cloud_init"}},
		{9000, GuestConfigOut{VMID: 9000, Node: "home", Kind: "qemu", Name: "debian13-cloudinit", Template: true, Cores: 2, Sockets: 1,
			MemoryMiB: 2048, Tags: []string{"template"}, OSType: "l26",
			Disks:     []GuestDiskOut{{Slot: "scsi0", Storage: "local-lvm", Volume: "base-9000-disk-0", Size: "8G", SizeBytes: 8 << 30}},
			NICs:      []GuestNICOut{{Slot: "net0", Model: "virtio", MAC: "BC:24:11:2B:1A:0E", Bridge: "vmbr0", Firewall: true}},
			CloudInit: &CloudInitOut{IPConfig: []string{}}}, // its cloud-init drive, nothing set yet
			nil},
	} {
		got, js := readInto[GuestConfigOut](t, env, "get_guest_config", map[string]any{"vmid": c.vmid})
		if len(got.NICs) == 1 && strings.HasPrefix(got.NICs[0].MAC, "BC:24:11:") {
			c.want.NICs[0].MAC = got.NICs[0].MAC // the simulator derives it from the name
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("config of %d =\n%+v\nwant\n%+v", c.vmid, got, c.want)
		}
		var members map[string]any
		_ = json.Unmarshal([]byte(js), &members)
		for _, m := range c.absent {
			if _, ok := members[m]; ok {
				t.Errorf("config of %d has %s: %s", c.vmid, m, js)
			}
		}
	}
}

// Secrets set in Proxmox never reach the answer; that they are set does.
func TestGuestConfigKeepsSecrets(t *testing.T) {
	env, sim := readEnv(t, nil, nil)
	const (
		password = "Tr0ub4dor&3-never-shown"
		keyBody  = "AAAAC3NzaC1lZDI1NTE5AAAAIHNlY3JldGtleW1hdGVyaWFsbmV2ZXJzaG93bg"
	)
	sshkeys := "ssh-ed25519%20" + keyBody + "%20ops%40laptop%0A"
	if err := sim.SetGuestCloudInit(101, "admin", password, sshkeys, "ip=10.0.1.50/24,gw=10.0.1.1"); err != nil {
		t.Fatal(err)
	}
	// As PVE does, the simulator masks the password and hands out the keys.
	raw, err := env.PVE.GuestConfig(context.Background(), "pve", "qemu", 101)
	if err != nil || raw["cipassword"] != "**********" || !strings.Contains(fmt.Sprint(raw["sshkeys"]), keyBody) {
		t.Fatalf("the simulator's config does not hold what the test set: %v %v %v", raw["cipassword"], raw["sshkeys"], err)
	}
	got, js := readInto[GuestConfigOut](t, env, "get_guest_config", map[string]any{"vmid": 101})
	for _, secret := range []string{password, "Tr0ub4dor", keyBody, "ops%40laptop", "ops@laptop", "ssh-ed25519"} {
		if strings.Contains(js, secret) {
			t.Errorf("the answer holds %q: %s", secret, js)
		}
	}
	want := &CloudInitOut{User: "admin", IPConfig: []string{"ip=10.0.1.50/24,gw=10.0.1.1"}, SSHKeysSet: true, PasswordSet: true}
	if !reflect.DeepEqual(got.CloudInit, want) {
		t.Errorf("cloud_init = %+v, want %+v", got.CloudInit, want)
	}
}

// What PVE writes in a config, read setting by setting.
func TestGuestConfigOut(t *testing.T) {
	vm := &pve.Resource{VMID: 300, Node: "pve", Type: "qemu", Name: "from-resources"}
	got := guestConfigOut(vm, map[string]any{
		"memory": "current=4096", "balloon": "0", "cores": float64(2), "sockets": "2", "onboot": float64(1),
		"tags": "b;a, c", "description": "line one\nline two", "lock": "backup",
		"scsi10": "local-lvm:vm-300-disk-2,size=1T", "scsi2": "nfs:300/vm-300-disk-1.qcow2,size=512M",
		"efidisk0": "local-lvm:vm-300-disk-3,efitype=4m,size=528K", "ide2": "local:iso/debian.iso,media=cdrom",
		"ide0": "local-lvm:vm-300-cloudinit,media=cdrom", "unused0": "local-lvm:vm-300-disk-9",
		"net1": "e1000=AA:BB:CC:00:11:22,bridge=vmbr1,tag=20", "net0": "model=virtio,macaddr=AA:BB:CC:00:11:33,bridge=vmbr0",
		"ipconfig1": "ip=dhcp", "ipconfig0": "ip=10.0.0.5/24", "cipassword": "**********",
	})
	wantDisks := []GuestDiskOut{
		{Slot: "efidisk0", Storage: "local-lvm", Volume: "vm-300-disk-3", Size: "528K", SizeBytes: 528 << 10},
		{Slot: "scsi2", Storage: "nfs", Volume: "300/vm-300-disk-1.qcow2", Size: "512M", SizeBytes: 512 << 20},
		{Slot: "scsi10", Storage: "local-lvm", Volume: "vm-300-disk-2", Size: "1T", SizeBytes: 1 << 40},
		{Slot: "unused0", Storage: "local-lvm", Volume: "vm-300-disk-9"},
	}
	wantNICs := []GuestNICOut{
		{Slot: "net0", Model: "virtio", MAC: "AA:BB:CC:00:11:33", Bridge: "vmbr0"},
		{Slot: "net1", Model: "e1000", MAC: "AA:BB:CC:00:11:22", Bridge: "vmbr1"},
	}
	if !reflect.DeepEqual(got.Disks, wantDisks) || !reflect.DeepEqual(got.NICs, wantNICs) {
		t.Errorf("disks = %+v\nnics = %+v", got.Disks, got.NICs)
	}
	if got.MemoryMiB != 4096 || got.BalloonMiB == nil || *got.BalloonMiB != 0 || got.Sockets != 2 || got.Cores != 2 || !got.OnBoot ||
		got.Name != "from-resources" || got.Lock != "backup" || !reflect.DeepEqual(got.Tags, []string{"b", "a", "c"}) || got.Notes != "line one\nline two" {
		t.Errorf("config = %+v", got)
	}
	if ci := got.CloudInit; ci == nil || !ci.PasswordSet || ci.SSHKeysSet || !reflect.DeepEqual(ci.IPConfig, []string{"ip=10.0.0.5/24", "ip=dhcp"}) {
		t.Errorf("cloud_init = %+v", got.CloudInit)
	}
	// A cloud-init drive alone is cloud-init too; none at all is no section.
	if guestConfigOut(vm, map[string]any{"ide2": "local-lvm:vm-300-cloudinit,media=cdrom"}).CloudInit == nil ||
		guestConfigOut(vm, map[string]any{"ide2": "none,media=cdrom"}).CloudInit != nil {
		t.Error("a cloud-init drive alone must make a cloud_init section, a plain CD-ROM must not")
	}

	ct := &pve.Resource{VMID: 301, Node: "pve", Type: "lxc"}
	got = guestConfigOut(ct, map[string]any{"hostname": "ct", "memory": float64(256), "swap": float64(0),
		"rootfs": "local-lvm:subvol-301-disk-0,size=4G", "mp0": "/mnt/bulk,mp=/data", "mp1": "local-lvm:vm-301-disk-1,mp=/srv,size=2G",
		"net0": "name=eth0,bridge=vmbr0,hwaddr=AA:BB:CC:00:11:44,ip=10.0.1.9/24,type=veth", "cipassword": "ignored for containers"})
	wantDisks = []GuestDiskOut{
		{Slot: "rootfs", Storage: "local-lvm", Volume: "subvol-301-disk-0", Size: "4G", SizeBytes: 4 << 30},
		{Slot: "mp0", Volume: "/mnt/bulk"},
		{Slot: "mp1", Storage: "local-lvm", Volume: "vm-301-disk-1", Size: "2G", SizeBytes: 2 << 30},
	}
	if !reflect.DeepEqual(got.Disks, wantDisks) || got.SwapMiB == nil || *got.SwapMiB != 0 || got.MemoryMiB != 256 ||
		got.NICs[0].IP != "10.0.1.9/24" || got.NICs[0].Model != "veth" || got.CloudInit != nil || got.Sockets != 0 {
		t.Errorf("container config = %+v", got)
	}

	for in, want := range map[string]int64{"64G": 64 << 30, "1.5T": 3 << 39, "4096": 4096, "528K": 528 << 10, "": 0, "x": 0, "-1G": 0} {
		if got := configSizeBytes(in); got != want {
			t.Errorf("configSizeBytes(%q) = %d, want %d", in, got, want)
		}
	}
}

// createdRecord is Jarvis's record of the guests it created: VMID → id tag.
type createdRecord map[int]string

func (r createdRecord) CreatedByJarvis(_ context.Context, vmid int, marker string) (bool, error) {
	if vmid == 666 {
		return true, errors.New("store unreadable")
	}
	return r[vmid] != "" && r[vmid] == marker, nil
}

// Jarvis made a guest only when the guest says so and Jarvis's record agrees.
func TestGuestConfigCreatedByJarvis(t *testing.T) {
	// The simulator gives VM 101 the marker tag when asked to.
	tagged := func(tags string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/qemu/101/config") {
					next.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				var env map[string]map[string]any
				_ = json.Unmarshal(rec.Body.Bytes(), &env)
				env["data"]["tags"] = tags
				_ = json.NewEncoder(w).Encode(env)
			})
		}
	}
	for _, c := range []struct {
		name    string
		tags    string
		created CreatedGuests
		want    bool
	}{
		{"tags and record", createdTag + ";jarvis-id-0a0b;web", createdRecord{101: "jarvis-id-0a0b"}, true},
		{"tags without record", createdTag + ";jarvis-id-0a0b", createdRecord{}, false},
		{"record without tags", "web", createdRecord{101: "jarvis-id-0a0b"}, false},
		{"the created tag without the id tag", createdTag, createdRecord{101: "jarvis-id-0a0b"}, false},
		{"another guest's id tag (a copy made in Proxmox)", createdTag + ";jarvis-id-ffff", createdRecord{101: "jarvis-id-0a0b"}, false},
		{"tags, no record kept", createdTag + ";jarvis-id-0a0b", nil, false},
	} {
		env, _ := readEnv(t, nil, tagged(c.tags))
		env.Created = c.created
		got, _ := readInto[GuestConfigOut](t, env, "get_guest_config", map[string]any{"vmid": 101})
		if got.CreatedByJarvis != c.want {
			t.Errorf("%s: created_by_jarvis = %v, want %v", c.name, got.CreatedByJarvis, c.want)
		}
	}
}

func TestGetGuestAgentInfo(t *testing.T) {
	for _, c := range []struct {
		name    string
		vmid    int
		fail    func(*pvesim.Sim)
		running bool
		host    string
		os      string
		ifaces  map[string]string // name → first address
		message []string          // words the message holds
	}{
		{"VM with agent", 101, nil, true, "web01", "Debian GNU/Linux 13 (trixie)", map[string]string{"ens18": "10.0.1.101/24"}, nil},
		{"VM without agent is an answer", 100, nil, false, "", "", nil,
			[]string{"QEMU guest agent is not running in VM 100 'opnsense'", "install and start qemu-guest-agent"}},
		{"stopped VM", 104, nil, false, "", "", nil, []string{"VM 104 'win11' is stopped", "only while the VM runs"}},
		{"agent not enabled", 102, func(s *pvesim.Sim) {
			s.FailNext("/nodes/pve/qemu/102/agent/", 500, "No QEMU guest agent configured")
		}, false, "", "", nil, []string{"not enabled in the options of VM 102 'db01'"}},
		{"VM stopped since it was looked up", 105, func(s *pvesim.Sim) {
			s.FailNext("/nodes/agent/qemu/105/agent/", 500, "VM 105 is not running")
		}, false, "", "", nil, []string{"VM 105 'k3s-worker' is not running", "VM 105 is not running"}},
		{"old agent without get-osinfo", 103, func(s *pvesim.Sim) {
			s.FailNext("/nodes/agent1/qemu/103/agent/get-osinfo", 500, "Agent error: The command guest-get-osinfo has not been found")
		}, true, "mgmt", "", map[string]string{"ens18": "10.0.1.103/24"}, nil},
		{"container", 201, nil, true, "nginx-proxy", "", map[string]string{"eth0": "10.0.1.201/24"}, nil},
		{"stopped container", 203, nil, false, "old-wiki", "", nil, []string{"container 203 'old-wiki' is stopped"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := readEnv(t, nil, nil)
			if c.fail != nil {
				c.fail(sim)
			}
			got, js := readInto[GuestAgentOut](t, env, "get_guest_agent_info", map[string]any{"vmid": c.vmid})
			if got.AgentRunning != c.running || got.Hostname != c.host || got.OS != c.os || len(got.Interfaces) != len(c.ifaces) {
				t.Errorf("answer = %s", js)
			}
			for _, i := range got.Interfaces {
				if len(i.IPs) == 0 || i.IPs[0] != c.ifaces[i.Name] || i.MAC == "" {
					t.Errorf("interface %+v, want %s first", i, c.ifaces[i.Name])
				}
			}
			for _, w := range c.message {
				if !strings.Contains(got.Message, w) {
					t.Errorf("message %q does not say %q", got.Message, w)
				}
			}
			if len(c.message) == 0 && got.Message != "" {
				t.Errorf("message %q for an answering guest", got.Message)
			}
		})
	}
}

// PVE's refusals come through in its words; a guest gone from its node is
// said to be gone, not its node.
func TestGuestReadErrors(t *testing.T) {
	env, sim := readEnv(t, nil, nil)
	sim.FailNext("/nodes/pve/qemu/101/config", 500, "Configuration file 'nodes/pve/qemu-server/101.conf' does not exist")
	_, err := runRead(t, env, "get_guest_config", map[string]any{"vmid": 101})
	errorSays(t, "config gone", err, "VM 101 'web01' is no longer on node pve", "does not exist")
	if err != nil && strings.Contains(err.Error(), "not part of this cluster") {
		t.Errorf("a missing guest is blamed on its node: %v", err)
	}
	sim.FailNext("/nodes/pve/qemu/101/agent/", 403, "Permission check failed (/vms/101, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)")
	_, err = runRead(t, env, "get_guest_agent_info", map[string]any{"vmid": 101})
	errorSays(t, "agent refused", err, "403", "VM.GuestAgent.Audit")
	sim.SetNodeOffline("pve", true)
	_, err = runRead(t, env, "get_guest_config", map[string]any{"vmid": 201})
	errorSays(t, "node down", err, "node pve is offline or unreachable")
	_, err = runRead(t, env, "get_guest_config", map[string]any{"vmid": 999})
	errorSays(t, "no such guest", err, "no guest with VMID 999")
}

// Settings left out of a config take PVE's defaults.
func TestGuestConfigDefaults(t *testing.T) {
	vm := guestConfigOut(&pve.Resource{VMID: 300, Type: "qemu"}, map[string]any{})
	ct := guestConfigOut(&pve.Resource{VMID: 301, Type: "lxc", MaxCPU: 12}, map[string]any{})
	if vm.MemoryMiB != 512 || vm.Cores != 1 || vm.Sockets != 1 || vm.BalloonMiB != nil || vm.OnBoot ||
		ct.MemoryMiB != 512 || *ct.SwapMiB != 512 || ct.Cores != 12 || vm.Tags == nil || vm.Disks == nil || ct.NICs == nil {
		t.Errorf("defaults: VM %+v, container %+v", vm, ct)
	}
}
