package tools

// Tests of the review's findings on migrate_guest, clone_guest,
// create_backup and restore_backup, and the fake answers they need where the
// simulator cannot say what Proxmox says.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// rewrite changes the data of one kind of GET answer; it answers nil for the
// requests it leaves alone.
type rewrite func(path string, q url.Values) func(data any) any

// fakeEnv is a tool environment on a fresh simulated cluster (tasks of
// taskDuration, the token holding acl, every privilege when nil) whose GET
// answers pass through rewrites: a fake answer for what the simulator cannot
// say. Other requests (the writes, with their injected faults) reach the
// simulator untouched.
func fakeEnv(t *testing.T, taskDuration time.Duration, acl []pvesim.ACL, rewrites ...rewrite) (*Env, *pvesim.Sim) {
	t.Helper()
	sim := pvesim.New(pvesim.Options{TokenID: outcomeTokenID, TokenSecret: outcomeSecret, TaskDuration: taskDuration, ACL: acl})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var change []func(any) any
		if r.Method == http.MethodGet {
			path := strings.TrimPrefix(r.URL.Path, "/api2/json")
			for _, rw := range rewrites {
				if f := rw(path, r.URL.Query()); f != nil {
					change = append(change, f)
				}
			}
		}
		if len(change) == 0 {
			sim.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			var env struct {
				Data any `json:"data"`
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&env); err != nil {
				t.Errorf("fake answer for %s: %v", r.URL.Path, err)
			}
			for _, f := range change {
				env.Data = f(env.Data)
			}
			body, _ = json.Marshal(env)
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(handler)
	t.Cleanup(func() { sim.ClearFaults(); srv.Close() })
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: srv.URL}}, AllowHTTP: true,
		TokenID: outcomeTokenID, TokenSecret: outcomeSecret, Timeout: 300 * time.Millisecond, Deadline: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &Env{PVE: client}, sim
}

// cloudInitDrive makes sure template 9000 answers with the cloud-init drive a
// cloud-init template has in Proxmox. pvesim gives it one (ide2), so this
// rewrite changes nothing there; it keeps the tests below about the drive
// independent of the demo's seed.
func cloudInitDrive(path string, q url.Values) func(any) any {
	if !strings.HasSuffix(path, "/qemu/9000/config") || q.Get("snapshot") != "" {
		return nil
	}
	return func(data any) any {
		if m, ok := data.(map[string]any); ok && !hasCloudInitDrive(m) {
			m["ide2"] = "local-lvm:vm-9000-cloudinit,media=cdrom"
		}
		return data
	}
}

// configDisks adds disks to the config of one guest.
func configDisks(vmid string, disks map[string]string) rewrite {
	return func(path string, q url.Values) func(any) any {
		if !strings.HasSuffix(path, "/"+vmid+"/config") || q.Get("snapshot") != "" {
			return nil
		}
		return func(data any) any {
			if m, ok := data.(map[string]any); ok {
				for k, v := range disks {
					m[k] = v
				}
			}
			return data
		}
	}
}

// haResources marks guests HA-managed in /cluster/resources, as PVE does
// (hastate). pvesim has HA resources (101 and 102, ops_read.go) but its
// cluster resources (handlers.go, guestResource) do not say so.
func haResources(vmids ...int) rewrite {
	return func(path string, _ url.Values) func(any) any {
		if path != "/cluster/resources" {
			return nil
		}
		return func(data any) any {
			list, _ := data.([]any)
			for _, item := range list {
				m, _ := item.(map[string]any)
				if n, ok := m["vmid"].(json.Number); ok {
					if id, _ := n.Int64(); slices.Contains(vmids, int(id)) {
						m["hastate"] = "started"
					}
				}
			}
			return data
		}
	}
}

// noHAState drops hastate from /cluster/resources: an HA-managed guest that
// the cluster resources do not show as one.
func noHAState(path string, _ url.Values) func(any) any {
	if path != "/cluster/resources" {
		return nil
	}
	return func(data any) any {
		list, _ := data.([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok {
				delete(m, "hastate")
			}
		}
		return data
	}
}

// extraStorage adds a storage to what GET /nodes/{node}/storage lists on
// every node: shared, for VM and container disks, with avail bytes free.
func extraStorage(name string, avail int64) rewrite {
	return func(path string, _ url.Values) func(any) any {
		if !regexp.MustCompile(`^/nodes/[^/]+/storage$`).MatchString(path) {
			return nil
		}
		return func(data any) any {
			list, _ := data.([]any)
			return append(list, map[string]any{"storage": name, "type": "nfs", "content": "images,rootdir", "active": 1, "enabled": 1,
				"shared": 1, "total": avail * 2, "used": avail, "avail": avail, "used_fraction": 0.5})
		}
	}
}

// localBackup puts one backup on storage local of the given nodes.
func localBackup(volid string, nodes ...string) rewrite {
	return func(path string, q url.Values) func(any) any {
		m := regexp.MustCompile(`^/nodes/([^/]+)/storage/local/content$`).FindStringSubmatch(path)
		if m == nil || !slices.Contains(nodes, m[1]) || q.Get("content") != "backup" {
			return nil
		}
		return func(data any) any {
			list, _ := data.([]any)
			return append(list, map[string]any{"volid": volid, "content": "backup", "format": "vma.zst", "size": 1 << 30,
				"ctime": 1767232800, "vmid": 150, "subtype": "qemu"})
		}
	}
}

// cloudInitCloneRun is the clone that sets cloud-init, for the privilege
// tests: privilegeRuns' clone leaves cloud-init out, because pvesim's template
// has no cloud-init drive (see cloudInitDrive).
var cloudInitCloneRun = map[string]any{"vmid": 9000, "name": "priv-clone", "full": true, "ci_user": "debian", "ip_config": "ip=dhcp"}

// runWith prepares and runs a call under a deadline, as dispatch does.
func runWith(t *testing.T, env *Env, tool string, args map[string]any, timeout time.Duration) (*Call, any, error) {
	t.Helper()
	call, err := prepCreate(t, env, tool, args)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := call.Run(ctx, noProgress)
	return call, out, err
}

// Finding 1: an HA-managed guest's migration is handed to the HA manager,
// whose task ends OK before the guest moves. The call ends ok only once the
// guest is on the target node and no longer locked by the migration; when it
// does not get there by the deadline the outcome is unknown.
func TestMigrateHAManagedGuest(t *testing.T) {
	const haWords = "; it is HA-managed, so the move goes through the HA manager"
	for _, c := range []struct {
		name     string
		rewrites []rewrite
		vmid     int
		target   string
		before   func(*pvesim.Sim) // between prepare and run
		haPlan   bool
		unknown  []string // what an unknown outcome says; nil: ok
	}{
		{name: "HA-managed: the plan says so, and the guest has moved when the call ends", rewrites: []rewrite{haResources(101, 102)},
			vmid: 101, target: "home", haPlan: true},
		{name: "HA-managed though the cluster resources do not say so: its hamigrate task does", rewrites: []rewrite{noHAState},
			vmid: 102, target: "home"},
		{name: "the HA manager never moves it", rewrites: []rewrite{haResources(101, 102)}, vmid: 101, target: "home", haPlan: true,
			before: func(sim *pvesim.Sim) { sim.SetNodeOffline("home", true) }, // the HA manager ignores the request
			unknown: []string{"Proxmox handed the migration of VM 101 'web01' from node pve to node home to the HA manager (task UPID:pve:",
				"but VM 101 'web01' was still on node pve when Jarvis stopped waiting",
				"Before retrying, check get_guest_status for VMID 101 (its node and HA state) and get_cluster_health", "the HA manager may still move it"}},
		{name: "not HA-managed: PVE moves it itself", rewrites: []rewrite{haResources(101, 102)}, vmid: 104, target: "home"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := fakeEnv(t, 30*time.Millisecond, nil, c.rewrites...)
			call, err := prepareOp(t, env, "migrate_guest", map[string]any{"vmid": c.vmid, "target_node": c.target})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.HasSuffix(call.Effect, haWords); got != c.haPlan {
				t.Errorf("plan %q: says it goes through the HA manager: %v, want %v", call.Effect, got, c.haPlan)
			}
			if c.before != nil {
				c.before(sim)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			out, err := call.Run(ctx, noProgress)
			g, _ := sim.Guest(c.vmid)
			if c.unknown != nil {
				unk := unknownOf(t, err)
				for _, w := range c.unknown {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to say %q", err, w)
					}
				}
				if !strings.Contains(unk.UPID, ":hamigrate:") {
					t.Errorf("the unknown outcome carries task %q, want the hamigrate task", unk.UPID)
				}
				if g.Node == c.target {
					t.Errorf("the guest moved: %+v", g)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			res := out.(MigrateResult)
			if g.Node != c.target || g.Lock != "" {
				t.Errorf("when the call ended ok the guest was %+v, want on %s and unlocked", g, c.target)
			}
			if !res.OK || res.Node != c.target || res.GuestStatus != g.Status {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// Finding 2: a clone or restore whose task outlasts the call's deadline ends
// unknown, and says that Jarvis's marks (and a clone's cloud-init settings)
// were not applied, what that means and what to do.
func TestCreateTaskOutlastsTheDeadline(t *testing.T) {
	for _, c := range []struct {
		name string
		tool string
		args func(*testing.T, *Env) map[string]any
		want []string
		not  []string
	}{
		{name: "clone", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "full": true}),
			want: []string{"it was still running when Jarvis stopped waiting",
				"Jarvis did NOT apply the jarvis-created and jarvis-id-… tags, so VM 107 'web02', if it appears, is not recorded as Jarvis's and delete_guest will refuse it",
				"Before retrying, check get_task_status with upid UPID:home:", "Jarvis's tags cannot be added afterwards", "remove it in Proxmox if it is not wanted"},
			not: []string{"cloud-init"}},
		{name: "clone with cloud-init", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "ci_user": "debian"}),
			want: []string{"Jarvis did NOT apply the jarvis-created and jarvis-id-… tags or the cloud-init settings, so VM 107 'web02'",
				"set its cloud-init user, SSH key and address by hand in Proxmox"}},
		{name: "restore into a new VMID", tool: "restore_backup", args: func(t *testing.T, env *Env) map[string]any {
			return map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 130}
		},
			want: []string{"Jarvis did NOT apply the jarvis-created and jarvis-id-… tags, so VM 130, if it appears, is not recorded as Jarvis's and delete_guest will refuse it",
				"Before retrying, check get_task_status with upid UPID:pve:"},
			not: []string{"cloud-init"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, _ := fakeEnv(t, 10*time.Second, nil, cloudInitDrive)
			_, out, err := runWith(t, env, c.tool, c.args(t, env), 400*time.Millisecond)
			if out != nil {
				t.Fatalf("Run returned %+v", out)
			}
			unknownOf(t, err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nsays %q", err, w)
				}
			}
		})
	}
}

// Finding 3: a backup in stop mode needs a person whatever state the guest is
// in when it is planned: it may be started before vzdump runs.
func TestBackupStopModeIsAlwaysRed(t *testing.T) {
	for _, c := range []struct {
		vmid       int
		mode, want string
		tier       safety.Tier
	}{
		{104, "stop", "Back up stopped VM 104 'win11' on node agent to storage local in stop mode: a running guest is shut down for the backup and started again after (it is stopped now), zstd-compressed; no older backup is removed", safety.Red},
		{101, "stop", "Back up running VM 101 'web01' on node pve to storage nfs-backup in stop mode: the guest is SHUT DOWN for the whole backup and started again afterwards; its services are down meanwhile, zstd-compressed; no older backup is removed", safety.Red},
		{104, "snapshot", "Back up stopped VM 104 'win11' on node agent to storage local (it stays stopped), zstd-compressed; no older backup is removed", safety.Yellow},
		{104, "suspend", "Back up stopped VM 104 'win11' on node agent to storage local (it stays stopped), zstd-compressed; no older backup is removed", safety.Yellow},
		{101, "suspend", "Back up running VM 101 'web01' on node pve to storage nfs-backup in suspend mode: the guest is paused for a short while as the backup starts, zstd-compressed; no older backup is removed", safety.Yellow},
	} {
		env, _ := createEnv(t)
		args := map[string]any{"vmid": c.vmid, "mode": c.mode}
		if c.vmid == 104 {
			args["storage"] = "local"
		}
		call, err := prepCreate(t, env, "create_backup", args)
		if err != nil {
			t.Fatalf("%d %s: %v", c.vmid, c.mode, err)
		}
		if call.Effect != c.want {
			t.Errorf("%d %s: plan\n got %q\nwant %q", c.vmid, c.mode, call.Effect, c.want)
		}
		if v := verdictOf(toolNamed(t, "create_backup"), call, safety.Policy{}, safety.Red); v.Tier != c.tier {
			t.Errorf("%d %s: tier %s, want %s", c.vmid, c.mode, v.Tier, c.tier)
		}
	}
}

// Finding 4: without storage, Proxmox keeps each disk of a full clone on its
// own storage: the plan names each with what it needs there, the space check
// is made on each, and the result names the boot disk's. With storage, all
// of it goes there.
func TestCloneStoragePerDisk(t *testing.T) {
	// VM 106 (home) and container 203 (agent) get a second storage's disks,
	// whose keys sort before their boot disks' (efidisk0 < scsi0, mp0 < rootfs).
	rewrites := []rewrite{extraStorage("nfs-vm", 500<<30),
		configDisks("106", map[string]string{"efidisk0": "nfs-vm:vm-106-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M", "scsi1": "nfs-vm:vm-106-disk-2,size=4G"}),
		configDisks("9000", map[string]string{"efidisk0": "nfs-vm:base-9000-disk-1,efitype=4m,size=4M"}),
		configDisks("203", map[string]string{"mp0": "nfs-vm:subvol-203-disk-1,mp=/srv,size=2G"})}
	free := `\d+\.\d GiB`
	for _, c := range []struct {
		name  string
		fill  int64 // bytes to take from local-lvm first
		args  map[string]any
		plan  string // a regexp the plan must match; "" for a refusal
		err   string
		store string // the result's storage, when run
	}{
		{name: "each disk on its own storage", args: map[string]any{"vmid": 106, "name": "t2", "full": true},
			plan:  `, full clone, each disk onto the storage it is on now: needs 16\.0 GiB on local-lvm \(` + free + ` free\) and 4\.0 GiB on nfs-vm \(500\.0 GiB free\); the clone is tagged`,
			store: "local-lvm"},
		{name: "a container's rootfs names the storage", args: map[string]any{"vmid": 203, "name": "w2", "full": true},
			plan: `, full clone, each disk onto the storage it is on now: needs 8\.0 GiB on local-lvm \(` + free + ` free\) and 2\.0 GiB on nfs-vm \(500\.0 GiB free\);`},
		{name: "the boot disk's storage is short of space", fill: 820 << 30, args: map[string]any{"vmid": 106, "name": "t2", "full": true},
			err: "a full clone of VM 106 'test-vm' needs 16.0 GiB on storage local-lvm, and it has only"},
		{name: "storage given: everything goes there", args: map[string]any{"vmid": 106, "name": "t2", "full": true, "storage": "local-lvm"},
			plan: `, full clone onto storage local-lvm \(needs 20\.0 GiB; ` + free + ` free\); the clone is tagged`, store: "local-lvm"},
		{name: "storage given: the space check is on it", args: map[string]any{"vmid": 106, "name": "t2", "full": true, "storage": "nfs-vm"},
			plan: `, full clone onto storage nfs-vm \(needs 20\.0 GiB; 500\.0 GiB free\); the clone is tagged`},
		{name: "linked clone of a template on two storages", args: map[string]any{"vmid": 9000, "name": "w3"},
			plan: `, linked clone on storages local-lvm and nfs-vm \(it shares the template's disks; ` + free + ` free on local-lvm, 500\.0 GiB free on nfs-vm\);`},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := fakeEnv(t, 30*time.Millisecond, nil, rewrites...)
			if c.fill > 0 {
				if err := sim.FillStorage("local-lvm", c.fill); err != nil {
					t.Fatal(err)
				}
			}
			call, err := prepCreate(t, env, "clone_guest", c.args)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(c.plan).MatchString(call.Effect) {
				t.Errorf("plan\n  %s\nwant it to match\n  %s", call.Effect, c.plan)
			}
			if c.store == "" {
				return
			}
			out, err := call.Run(context.Background(), noProgress)
			if err != nil {
				t.Fatal(err)
			}
			if res := out.(CloneGuestResult); res.Storage != c.store {
				t.Errorf("result names storage %s, want %s", res.Storage, c.store)
			}
		})
	}
}

// Finding 5: cloud-init settings on a VM without a cloud-init drive would do
// nothing: refused, saying how to add one.
func TestCloneCloudInitNeedsTheDrive(t *testing.T) {
	for _, c := range []struct {
		name     string
		rewrites []rewrite
		args     map[string]any
		err      string
	}{
		{name: "no drive, a user", args: map[string]any{"vmid": 106, "name": "w", "full": true, "ci_user": "debian"},
			err: "VM 106 'test-vm' has no cloud-init drive, so ci_user, ssh_public_key and ip_config would do nothing: add one in Proxmox first (the VM's Hardware → Add → CloudInit Drive, or qm set 106 --ide2 <storage>:cloudinit on its node), or leave those settings out"},
		{name: "no drive, a key", args: map[string]any{"vmid": 106, "name": "w", "full": true, "ssh_public_key": testKey}, err: "has no cloud-init drive"},
		{name: "no drive, an address", args: map[string]any{"vmid": 106, "name": "w", "full": true, "ip_config": "ip=dhcp"},
			err: "VM 106 'test-vm' has no cloud-init drive"},
		{name: "an empty CD-ROM drive is no cloud-init drive", rewrites: []rewrite{configDisks("106", map[string]string{"ide2": "none,media=cdrom"})},
			args: map[string]any{"vmid": 106, "name": "w", "full": true, "ci_user": "debian"}, err: "has no cloud-init drive"},
		{name: "no drive, no cloud-init asked", args: map[string]any{"vmid": 106, "name": "w", "full": true}},
		{name: "a drive on ide2", rewrites: []rewrite{cloudInitDrive}, args: map[string]any{"vmid": 9000, "name": "w", "ci_user": "debian", "ip_config": "ip=dhcp"}},
		{name: "a drive on scsi1", rewrites: []rewrite{configDisks("106", map[string]string{"scsi1": "local-lvm:vm-106-cloudinit,media=cdrom,size=4M"})},
			args: map[string]any{"vmid": 106, "name": "w", "full": true, "ssh_public_key": testKey}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := fakeEnv(t, 30*time.Millisecond, nil, c.rewrites...)
			call, err := prepCreate(t, env, "clone_guest", c.args)
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("err = %v, want %q", err, c.err)
			case c.err == "" && c.args["ci_user"] != nil && !strings.Contains(call.Effect, "; cloud-init: user debian"):
				t.Errorf("plan %q", call.Effect)
			}
			for _, r := range sim.Requests() {
				if r.Method != http.MethodGet {
					t.Errorf("preparing sent %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

// The clone with cloud-init runs with exactly the privileges the table lists
// (TestPrivilegesCoverWhatPVEChecks runs it without cloud-init).
func TestClonePrivilegesWithCloudInit(t *testing.T) {
	privs, _ := Privileges("clone_guest")
	var acl []pvesim.ACL
	for _, p := range privs {
		acl = append(acl, pvesim.ACL{Path: "/", Privileges: p.AnyOf[:1], Propagate: true})
	}
	env, sim := fakeEnv(t, 20*time.Millisecond, acl, cloudInitDrive)
	if err := runTool(t, env, "clone_guest", cloudInitCloneRun); err != nil {
		t.Fatalf("clone_guest with exactly %v: %v", privs, err)
	}
	if set, _ := sim.Settings(107); set.CIUser != "debian" || set.IPConfig0 != "ip=dhcp" {
		t.Errorf("clone's settings %+v", set)
	}
}

// A cloud-init drive on local storage is no CD-ROM to eject: Proxmox copies
// it with the guest (a template's included). An ISO on local storage is.
func TestMigrateWithCloudInitDrive(t *testing.T) {
	for _, c := range []struct {
		name, ide2, want, err string
	}{
		{name: "a cloud-init drive moves with the guest", ide2: "local-lvm:vm-106-cloudinit,media=cdrom",
			want: "Migrate stopped VM 106 'test-vm' from node home to node pve, copying its 16 GiB local disk (scsi0 on local-lvm)"},
		{name: "an ISO on local storage must be ejected", ide2: "local:iso/debian-13.1.0-amd64-netinst.iso,media=cdrom",
			err: "ide2 of VM 106 'test-vm' holds local:iso/debian-13.1.0-amd64-netinst.iso from storage local, which is local to node home; eject it first"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, _ := fakeEnv(t, 30*time.Millisecond, nil, configDisks("106", map[string]string{"ide2": c.ide2}))
			call, err := prepareOp(t, env, "migrate_guest", map[string]any{"vmid": 106, "target_node": "pve"})
			switch {
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("err = %v, want %q", err, c.err)
				}
			case err != nil:
				t.Errorf("refused: %v", err)
			case call.Effect != c.want:
				t.Errorf("plan\n got %q\nwant %q", call.Effect, c.want)
			}
		})
	}
}

// Finding 6: a backup on several nodes' own storage, restored on a node it is
// not on, is refused naming the nodes it is on.
func TestRestoreBackupOnOtherNodes(t *testing.T) {
	const volid = "local:backup/vzdump-qemu-150-2026_01_01-02_00_00.vma.zst"
	for _, c := range []struct {
		node, want, err string
	}{
		{node: "agent", err: "backup " + volid + " is not on node agent; it is on nodes home, pve (storage local is each node's own): restore it on one of those"},
		{node: "", err: "backup " + volid + " is on nodes home, pve (storage local is each node's own); say which with node"},
		{node: "home", want: "Restore backup " + volid + " (of VM 150, 2026-01-01 02:00 UTC) into new VM 151 on node home; the new guest is tagged jarvis-created"},
	} {
		env, _ := fakeEnv(t, 30*time.Millisecond, nil, localBackup(volid, "pve", "home"))
		args := map[string]any{"volid": volid, "vmid": 151}
		if c.node != "" {
			args["node"] = c.node
		}
		call, err := prepCreate(t, env, "restore_backup", args)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("node %q: err = %v\nwant %s", c.node, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("node %q: %v", c.node, err)
		} else if call.Effect != c.want {
			t.Errorf("node %q: plan\n got %q\nwant %q", c.node, call.Effect, c.want)
		}
	}
}
