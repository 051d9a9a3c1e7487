package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// The runs TestPrivilegesCoverWhatPVEChecks makes of these tools: each one
// does its whole job on a fresh demo cluster with exactly the privileges
// opsChangeAccess lists. (delete_guest runs although the call is BLACK there:
// the privilege test runs the call without asking the policy.)
func init() {
	privilegeRuns["update_guest_resources"] = map[string]any{"vmid": 101, "cores": 6, "memory_mib": 12288, "balloon_mib": 4096, "onboot": false}
	privilegeRuns["resize_disk"] = map[string]any{"vmid": 101, "disk": "scsi0", "size": "+8G"}
	privilegeRuns["migrate_guest"] = map[string]any{"vmid": 101, "target_node": "home"}
	privilegeRuns["delete_backup"] = map[string]any{"volid": seededBackup(time.Now(), 1, "qemu", 100, 0)}
	privilegeRuns["convert_to_template"] = map[string]any{"vmid": 106}
	privilegeRuns["delete_guest"] = map[string]any{"vmid": 204}
}

// seededBackup is the volume id of a backup the demo cluster seeds: nights
// ago at 02:00 UTC, the index-th guest of that night (97 s apart).
func seededBackup(now time.Time, night int, kind string, vmid, index int) string {
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	ct := midnight.Add(-time.Duration(night) * 24 * time.Hour).Add(2*time.Hour + time.Duration(index)*97*time.Second)
	ext := map[string]string{"qemu": "vma.zst", "lxc": "tar.zst"}[kind]
	return fmt.Sprintf("nfs-backup:backup/vzdump-%s-%d-%s.%s", kind, vmid, ct.Format("2006_01_02-15_04_05"), ext)
}

// changeEnv is a tool environment on a fresh simulated cluster.
func changeEnv(t *testing.T) (*Env, *pvesim.Sim) {
	t.Helper()
	return outcomeEnv(t, 30*time.Millisecond)
}

// prepareOp prepares a call as dispatch does, and returns its error.
func prepareOp(t *testing.T, env *Env, tool string, args map[string]any) (*Call, error) {
	t.Helper()
	for _, tl := range Catalogue() {
		if tl.Name == tool {
			raw, _ := json.Marshal(args)
			return prepareRaw(context.Background(), tl, env, raw)
		}
	}
	t.Fatalf("no tool %s", tool)
	return nil, nil
}

// testCreatedID is the id tag the fake records below hold for every guest.
const testCreatedID = "jarvis-id-00aa11bb22cc33dd"

// createdRecords stands in for the store's records of created guests: with
// yes, a record of every VMID with testCreatedID as its id tag.
type createdRecords struct {
	yes bool
	err error
}

func (c createdRecords) CreatedByJarvis(_ context.Context, _ int, marker string) (bool, error) {
	return c.yes && marker == testCreatedID, c.err
}

// createdRecordsWithDetails also tells which tool created a guest, and when.
type createdRecordsWithDetails struct{ createdRecords }

func (createdRecordsWithDetails) CreatedGuestDetails(context.Context, int) (string, time.Time, error) {
	return "clone_guest", time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC), nil
}

// backupOf finds a seeded backup of vmid on the shared NFS storage: the
// newest when newest, else the oldest.
func backupOf(t *testing.T, env *Env, vmid int, newest bool) pve.StorageItem {
	t.Helper()
	items, err := env.PVE.StorageContent(context.Background(), "pve", "nfs-backup", "backup")
	if err != nil {
		t.Fatal(err)
	}
	var pick *pve.StorageItem
	for i := range items {
		it := &items[i]
		if int(it.VMID) != vmid {
			continue
		}
		if pick == nil || (newest && it.CTime > pick.CTime) || (!newest && it.CTime < pick.CTime) {
			pick = it
		}
	}
	if pick == nil {
		t.Fatalf("no backup of %d in the demo cluster", vmid)
	}
	return *pick
}

// Each tool says in one sentence what a person approves.
func TestOpsChangePlans(t *testing.T) {
	for _, c := range []struct {
		name  string
		tool  string
		args  map[string]any
		setup func(t *testing.T, env *Env, sim *pvesim.Sim)
		want  string
	}{
		{"cores of a running VM wait for its restart", "update_guest_resources", map[string]any{"vmid": 101, "cores": 8}, nil,
			"Change VM 101 'web01' on node pve: cores 4 → 8; cores takes effect at the next restart of VM 101 (it is running)"},
		{"raising a running VM's memory names the node's memory", "update_guest_resources", map[string]any{"vmid": 101, "memory_mib": 16384}, nil,
			"Change VM 101 'web01' on node pve: memory 8192 → 16384 MiB; memory takes effect at the next restart of VM 101 (it is running); node pve has 39.0 GiB of its 64.0 GiB RAM not assigned to running guests"},
		{"a running container takes cores and memory at once", "update_guest_resources", map[string]any{"vmid": 201, "cores": 3, "memory_mib": 2048}, nil,
			"Change container 201 'nginx-proxy' on node pve: cores 2 → 3, memory 1024 → 2048 MiB; cores and memory apply at once (it is running); node pve has 39.0 GiB of its 64.0 GiB RAM not assigned to running guests"},
		{"start at boot never needs a restart", "update_guest_resources", map[string]any{"vmid": 101, "onboot": false}, nil,
			"Change VM 101 'web01' on node pve: start at boot on → off"},
		{"a new balloon minimum applies at once", "update_guest_resources", map[string]any{"vmid": 101, "balloon_mib": 4096}, nil,
			"Change VM 101 'web01' on node pve: balloon unset (the memory) → 4096 MiB; balloon applies at once (it is running)"},
		{"turning ballooning off waits for a restart", "update_guest_resources", map[string]any{"vmid": 101, "balloon_mib": 0, "cores": 6}, nil,
			"Change VM 101 'web01' on node pve: cores 4 → 6, balloon unset (the memory) → 0 MiB (ballooning off); cores and balloon take effect at the next restart of VM 101 (it is running)"},
		{"a stopped VM", "update_guest_resources", map[string]any{"vmid": 106, "cores": 2, "memory_mib": 4096, "onboot": true}, nil,
			"Change VM 106 'test-vm' on node home: cores 1 → 2, memory 2048 → 4096 MiB, start at boot off → on"},
		{"grow a VM's disk to a size", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "80G"}, nil,
			"Grow disk scsi0 of VM 101 'web01' on node pve from 64 GiB to 80 GiB on storage local-lvm (16 GiB more; 750 GiB free). This cannot be undone: disks can grow, never shrink; the partition and file system inside the VM must then be grown from within it"},
		{"grow a container's disk by an amount", "resize_disk", map[string]any{"vmid": 201, "disk": "rootfs", "size": "+8G"}, nil,
			"Grow disk rootfs of container 201 'nginx-proxy' on node pve from 8 GiB to 16 GiB on storage local-lvm (8 GiB more; 750 GiB free). This cannot be undone: disks can grow, never shrink"},
		{"live migration copies local disks", "migrate_guest", map[string]any{"vmid": 105, "target_node": "home"}, nil,
			"Live-migrate running VM 105 'k3s-worker' (8.0 GiB RAM) from node agent to node home (27.5 GiB of its 32.0 GiB RAM not assigned to running guests), copying its 64 GiB local disk (scsi0 on local-lvm) while it runs"},
		{"a running container moves by restart", "migrate_guest", map[string]any{"vmid": 201, "target_node": "home"}, nil,
			"Restart-migrate running container 201 'nginx-proxy' (1.0 GiB RAM) from node pve to node home (27.5 GiB of its 32.0 GiB RAM not assigned to running guests): it is shut down (up to 180 s), moved with its 8 GiB local disk (rootfs on local-lvm) and started again on home; its services are down meanwhile"},
		{"a stopped VM moves offline", "migrate_guest", map[string]any{"vmid": 104, "target_node": "home"}, nil,
			"Migrate stopped VM 104 'win11' from node agent to node home, copying its 96 GiB local disk (scsi0 on local-lvm)"},
		{"a template moves offline too", "migrate_guest", map[string]any{"vmid": 9000, "target_node": "pve"}, nil,
			"Migrate stopped VM 9000 'debian13-cloudinit' from node home to node pve, copying its 8 GiB local disk (scsi0 on local-lvm)"},
		{"convert a stopped VM", "convert_to_template", map[string]any{"vmid": 106}, nil,
			"Convert stopped VM 106 'test-vm' on node home into a template; this cannot be undone — it can never be started again, only cloned"},
		{"convert a stopped container", "convert_to_template", map[string]any{"vmid": 204}, nil,
			"Convert stopped container 204 'dev-ct' on node agent1 into a template; this cannot be undone — it can never be started again, only cloned"},
		{"delete a guest Jarvis created", "delete_guest", map[string]any{"vmid": 106},
			func(t *testing.T, env *Env, sim *pvesim.Sim) {
				_ = sim.TagGuest(106, "lab;jarvis-created;"+testCreatedID)
				env.Created = createdRecords{yes: true}
			},
			"Delete VM 106 'test-vm' on node home, created by Jarvis, with its disks (16 GiB on local-lvm); this cannot be undone"},
		{"the store tells when and how", "delete_guest", map[string]any{"vmid": 204, "purge": true, "destroy_unreferenced_disks": true},
			func(t *testing.T, env *Env, sim *pvesim.Sim) {
				_ = sim.TagGuest(204, "jarvis-created;"+testCreatedID)
				env.Created = createdRecordsWithDetails{createdRecords{yes: true}}
			},
			"Delete container 204 'dev-ct' on node agent1, created by Jarvis on 2026-12-06 (clone_guest), with its disks (16 GiB on local-lvm); this cannot be undone; every other disk with VMID 204 on the enabled storages is deleted too; it is also removed from backup jobs, replication jobs and HA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := changeEnv(t)
			if c.setup != nil {
				c.setup(t, env, sim)
			}
			call, err := prepareOp(t, env, c.tool, c.args)
			if err != nil {
				t.Fatalf("prepare: %v", err)
			}
			if call.Effect != c.want {
				t.Errorf("effect\n got %q\nwant %q", call.Effect, c.want)
			}
			if call.Tier != 0 {
				t.Errorf("tier %s (%s), want the tool's RED", call.Tier, call.TierReason)
			}
			// A plan read again a moment later is the same plan: the
			// approval is bound to it.
			again, err := prepareOp(t, env, c.tool, c.args)
			if err != nil || again.Effect != call.Effect {
				t.Errorf("prepared again: %v, %q", err, again.Effect)
			}
		})
	}
}

// delete_backup says where the backup stands among the guest's backups.
func TestDeleteBackupPlans(t *testing.T) {
	env, sim := changeEnv(t)
	newest, oldest := backupOf(t, env, 101, true), backupOf(t, env, 101, false)
	when := time.Unix(int64(newest.CTime), 0).UTC().Format("2006-01-02 15:04")
	want := fmt.Sprintf("Delete backup %s of VM 101 'web01' (%s UTC, %s) from storage nfs-backup; it cannot be recovered; it is the newest of 3 backups of VM 101",
		newest.VolID, when, humanBytes(int64(newest.Size)))
	call, err := prepareOp(t, env, "delete_backup", map[string]any{"volid": newest.VolID})
	if err != nil || call.Effect != want {
		t.Fatalf("newest: %v\n got %q\nwant %q", err, call.Effect, want)
	}
	if call.Target.VMID != 101 || call.Target.Node != "pve" {
		t.Errorf("target %+v, want the backup's guest 101 on pve, so protection applies", call.Target)
	}
	call, err = prepareOp(t, env, "delete_backup", map[string]any{"volid": oldest.VolID})
	if err != nil || !strings.HasSuffix(call.Effect, "; it cannot be recovered; 2 other backups of VM 101 remain, 2 of them newer") {
		t.Fatalf("oldest: %v, %+v", err, call)
	}
	// Delete two of the three; the third is then the only one.
	for _, b := range []pve.StorageItem{newest, oldest} {
		call, err := prepareOp(t, env, "delete_backup", map[string]any{"volid": b.VolID})
		if err != nil {
			t.Fatal(err)
		}
		out, err := call.Run(context.Background(), noProgress)
		res, ok := out.(DeleteBackupResult)
		if err != nil || !ok || !res.OK || res.VMID != 101 || res.VolID != b.VolID {
			t.Fatalf("deleting %s: %+v, %v", b.VolID, out, err)
		}
		if sim.VolumeExists(b.VolID) {
			t.Fatalf("%s is still there after an ok delete", b.VolID)
		}
	}
	last := backupOf(t, env, 101, true)
	call, err = prepareOp(t, env, "delete_backup", map[string]any{"volid": last.VolID})
	if err != nil || !strings.HasSuffix(call.Effect, "; it is the only backup of VM 101") {
		t.Fatalf("last: %v, %q", err, call.Effect)
	}
	// A backup of a guest that is gone still names its VMID.
	gone := backupOf(t, env, 106, true)
	env2, sim2 := changeEnv(t)
	_ = sim2.TagGuest(106, "jarvis-created;"+testCreatedID)
	env2.Created = createdRecords{yes: true}
	del, err := prepareOp(t, env2, "delete_guest", map[string]any{"vmid": 106})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.Run(context.Background(), noProgress); err != nil {
		t.Fatal(err)
	}
	call, err = prepareOp(t, env2, "delete_backup", map[string]any{"volid": gone.VolID})
	if err != nil || !strings.Contains(call.Effect, "of VM 106 (no longer in the cluster)") || call.Target.VMID != 106 {
		t.Fatalf("backup of a deleted guest: %v, %+v", err, call)
	}
}

// What Jarvis refuses before anyone is asked, in a sentence that says why.
func TestOpsChangeRefusals(t *testing.T) {
	for _, c := range []struct {
		name  string
		tool  string
		args  map[string]any
		setup func(sim *pvesim.Sim)
		want  string
	}{
		{"shrink", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "32G"}, nil,
			"disk scsi0 of VM 101 'web01' is 64 GiB; shrinking is not possible in Proxmox and Jarvis refuses it"},
		{"the same size", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "64G"}, nil,
			"disk scsi0 of VM 101 'web01' is already 64 GiB; nothing to do"},
		{"growth of nothing", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+0G"}, nil, "already 64 GiB"},
		{"no such disk", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi1", "size": "+1G"}, nil,
			"VM 101 'web01' has no disk scsi1 (its disks: scsi0)"},
		{"a container's disk name on a VM", "resize_disk", map[string]any{"vmid": 101, "disk": "rootfs", "size": "+1G"}, nil, "its disks are scsi0"},
		{"a CD-ROM", "resize_disk", map[string]any{"vmid": 101, "disk": "ide2", "size": "+1G"}, nil, "CD-ROM"},
		{"not enough space", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+800G"}, nil,
			"storage local-lvm on node pve has 750.0 GiB free; growing disk scsi0 of VM 101 'web01' by 800 GiB needs more"},
		{"a size without unit", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "80"}, nil, "size"},
		{"a size in words", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "80GB"}, nil, "size"},
		{"a locked guest", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+1G"},
			func(sim *pvesim.Sim) { _ = sim.LockGuest(101, "backup") }, "VM 101 'web01' is locked (backup)"},
		{"nothing asked", "update_guest_resources", map[string]any{"vmid": 101}, nil, "nothing to change: give cores"},
		{"no-op", "update_guest_resources", map[string]any{"vmid": 101, "cores": 4, "onboot": true}, nil,
			"VM 101 'web01' already has these settings (cores 4, memory 8192 MiB, start at boot on); nothing to change"},
		{"more cores than the node", "update_guest_resources", map[string]any{"vmid": 100, "cores": 8}, nil,
			"cores 8 is more than node home has: 6 CPUs"},
		{"more memory than the node", "update_guest_resources", map[string]any{"vmid": 100, "memory_mib": 40000}, nil,
			"memory_mib 40000 is more than node home has: 32.0 GiB"},
		{"too little memory for a VM", "update_guest_resources", map[string]any{"vmid": 101, "memory_mib": 32}, nil, "at least 64"},
		{"too little memory for anything", "update_guest_resources", map[string]any{"vmid": 201, "memory_mib": 8}, nil, "memory_mib"},
		{"balloon on a container", "update_guest_resources", map[string]any{"vmid": 201, "balloon_mib": 256}, nil, "applies to VMs only"},
		{"balloon above memory", "update_guest_resources", map[string]any{"vmid": 101, "balloon_mib": 9000}, nil,
			"balloon_mib 9000 is more than the memory of VM 101 'web01' (8192 MiB)"},
		{"too many cores", "update_guest_resources", map[string]any{"vmid": 101, "cores": 1024}, nil, "cores"},
		{"same node", "migrate_guest", map[string]any{"vmid": 101, "target_node": "pve"}, nil, "VM 101 'web01' is already on node pve"},
		{"unknown node", "migrate_guest", map[string]any{"vmid": 101, "target_node": "nosuch"}, nil,
			`there is no node "nosuch" in this cluster (its nodes: agent, agent1, home, pve)`},
		{"offline target", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"},
			func(sim *pvesim.Sim) { sim.SetNodeOffline("home", true) }, "node home is offline"},
		{"not enough memory", "migrate_guest", map[string]any{"vmid": 102, "target_node": "agent1"}, nil,
			"of memory free now; running VM 102 'db01' (16.0 GiB RAM) does not fit there"},
		{"a running VM moves only live", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home", "online": false}, nil,
			"moves a running VM only live"},
		{"containers do not move live", "migrate_guest", map[string]any{"vmid": 201, "target_node": "home", "online": true}, nil,
			"containers cannot be migrated live"},
		{"a bad node name", "migrate_guest", map[string]any{"vmid": 101, "target_node": "no de"}, nil, "target_node"},
		{"template of a running guest", "convert_to_template", map[string]any{"vmid": 101}, nil, "VM 101 'web01' is running; shut it down first"},
		{"template of a template", "convert_to_template", map[string]any{"vmid": 9000}, nil, "already a template"},
		{"template of a guest with snapshots", "convert_to_template", map[string]any{"vmid": 102},
			func(sim *pvesim.Sim) { _ = sim.SetGuestStatus(102, "stopped") },
			"VM 102 'db01' has 1 snapshot(s) ('weekly'); Proxmox cannot make a template of a guest with snapshots"},
		{"delete a running guest", "delete_guest", map[string]any{"vmid": 201}, nil, "container 201 'nginx-proxy' is running; stop it first"},
		{"no such backup", "delete_backup", map[string]any{"volid": "nfs-backup:backup/vzdump-qemu-101-2000_01_01-00_00_00.vma.zst"}, nil,
			"there is no backup nfs-backup:backup/vzdump-qemu-101-2000_01_01-00_00_00.vma.zst on storage nfs-backup"},
		{"no such storage", "delete_backup", map[string]any{"volid": "nas:backup/vzdump-qemu-101-2000_01_01-00_00_00.vma.zst"}, nil,
			`there is no storage "nas" in this cluster`},
		{"not a backup", "delete_backup", map[string]any{"volid": "local:iso/debian-13.1.0-amd64-netinst.iso"}, nil, "volid"},
		{"a path out", "delete_backup", map[string]any{"volid": "local:backup/../../etc/passwd"}, nil, "not a backup's volume id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := changeEnv(t)
			if c.setup != nil {
				c.setup(sim)
			}
			call, err := prepareOp(t, env, c.tool, c.args)
			if err == nil {
				t.Fatalf("prepared %q, want a refusal mentioning %q", call.Effect, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v\nwant it to say %q", err, c.want)
			}
			if len(sim.Requests()) > 0 {
				for _, r := range sim.Requests() {
					if r.Method != http.MethodGet {
						t.Errorf("a refused call sent %s %s", r.Method, r.Path)
					}
				}
			}
		})
	}
}

// decideAs runs the policy on a prepared call as dispatch does (server.decide).
func decideAs(tool *Tool, call *Call, p safety.Policy) safety.Verdict {
	tier := tool.Tier
	if call.Tier != 0 && (call.Tier < tier || call.Tier == safety.Black) {
		tier = call.Tier
	}
	return p.Decide(safety.Request{
		Principal: safety.Principal{ID: "agent:test", Kind: safety.Agent, MaxTier: safety.Red},
		Tool:      tool.Name, Tier: tier, Target: call.Target, Also: call.Also, Effect: call.Effect, TierReason: call.TierReason,
	}, safety.State{})
}

func toolNamed(t *testing.T, name string) *Tool {
	t.Helper()
	for _, tl := range Catalogue() {
		if tl.Name == name {
			return tl
		}
	}
	t.Fatalf("no tool %s", name)
	return nil
}

// delete_guest deletes only what Jarvis made: a guest needs the tag and the
// store's record, both. Every other guest is BLACK — blocked, never an approval.
func TestDeleteGuestOnlyWhatJarvisCreated(t *testing.T) {
	tool := toolNamed(t, "delete_guest")
	for _, c := range []struct {
		name    string
		tags    string
		created CreatedGuests
		black   string // TierReason; "" for RED
	}{
		{"neither", "lab", nil, "VM 106 'test-vm' was not created by Jarvis (it has no jarvis-created tag)"},
		{"record only", "lab", createdRecords{yes: true}, "VM 106 'test-vm' was not created by Jarvis (it has no jarvis-created tag)"},
		{"id tag only", "lab;" + testCreatedID, createdRecords{yes: true}, "has no jarvis-created tag, though Jarvis has a record of creating VMID 106"},
		{"tags only", "lab;jarvis-created;" + testCreatedID, createdRecords{yes: false},
			"VM 106 'test-vm' was not created by Jarvis: its tags say so, but Jarvis has no record of creating this guest (its id tag " + testCreatedID + " is not the one recorded for VMID 106)"},
		{"tags only, no store", "jarvis-created;" + testCreatedID, nil, "Jarvis has no record of creating this guest"},
		// A clone made in Proxmox of a guest Jarvis made copies its tags, and
		// may get a VMID Jarvis once used: the id tag is another guest's.
		{"another guest's id tag", "jarvis-created;jarvis-id-ffffffffffffffff", createdRecords{yes: true},
			"its id tag jarvis-id-ffffffffffffffff is not the one recorded for VMID 106"},
		{"the created tag without an id tag", "lab;jarvis-created", createdRecords{yes: true},
			"it has the jarvis-created tag but not the one jarvis-id-… id tag Jarvis gives each guest it creates"},
		{"two id tags", "jarvis-created;" + testCreatedID + ";jarvis-id-0123456789abcdef", createdRecords{yes: true},
			"not the one jarvis-id-… id tag"},
		{"tags, and the store fails", "jarvis-created;" + testCreatedID, createdRecords{yes: true, err: errors.New("database is locked")},
			"Jarvis could not read its own records to confirm it created it (database is locked)"},
		{"a tag that only looks alike", "jarvis-created-not;" + testCreatedID, createdRecords{yes: true}, "has no jarvis-created tag"},
		{"both", "lab;jarvis-created;" + testCreatedID, createdRecords{yes: true}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := changeEnv(t)
			_ = sim.TagGuest(106, c.tags)
			env.Created = c.created
			call, err := prepareOp(t, env, "delete_guest", map[string]any{"vmid": 106})
			if err != nil {
				t.Fatal(err)
			}
			v := decideAs(tool, call, safety.Policy{})
			if c.black == "" {
				if call.Tier != 0 || v.Decision != safety.NeedsApproval || v.Tier != safety.Red {
					t.Fatalf("a guest Jarvis created: tier %s, verdict %+v, want RED needing approval", call.Tier, v)
				}
				return
			}
			if strings.Contains(call.Effect, "created by Jarvis") {
				t.Errorf("the plan of a guest Jarvis did not create says it did: %q", call.Effect)
			}
			if call.Tier != safety.Black || !strings.Contains(call.TierReason, c.black) {
				t.Fatalf("tier %s, reason %q; want BLACK saying %q", call.Tier, call.TierReason, c.black)
			}
			if v.Decision != safety.Blocked || v.Tier != safety.Black || !strings.Contains(v.Reason, c.black) {
				t.Fatalf("verdict %+v, want blocked with the reason", v)
			}
		})
	}
}

// Protection applies to the guest, to the node it is on, and to everything
// else a call touches: the node a guest migrates to, the guest a backup is of.
func TestOpsChangeProtection(t *testing.T) {
	for _, c := range []struct {
		name   string
		tool   string
		args   map[string]any
		policy safety.Policy
		want   safety.Decision
		reason string
	}{
		{"migrate: nothing protected", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"}, safety.Policy{}, safety.NeedsApproval, ""},
		{"migrate: the source node", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"},
			safety.Policy{ProtectedNodes: []string{"pve"}}, safety.Protected, "Node pve is protected"},
		{"migrate: the target node", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"},
			safety.Policy{ProtectedNodes: []string{"home"}}, safety.Protected, "Node home is protected"},
		{"migrate: the guest", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"},
			safety.Policy{ProtectedVMIDs: []int{101}}, safety.Protected, "VM 101 is protected"},
		{"migrate: another node", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"},
			safety.Policy{ProtectedNodes: []string{"agent"}}, safety.NeedsApproval, ""},
		{"resize: the guest", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+1G"},
			safety.Policy{ProtectedVMIDs: []int{101}}, safety.Protected, "VM 101 is protected"},
		{"resources: the node", "update_guest_resources", map[string]any{"vmid": 201, "cores": 1},
			safety.Policy{ProtectedNodes: []string{"pve"}}, safety.Protected, "Node pve is protected"},
		{"template: the guest", "convert_to_template", map[string]any{"vmid": 106},
			safety.Policy{ProtectedVMIDs: []int{106}}, safety.Protected, "VM 106 is protected"},
		{"backup: the guest it is of", "delete_backup", map[string]any{"volid": ""},
			safety.Policy{ProtectedVMIDs: []int{102}}, safety.Protected, "VM 102 is protected"},
		{"backup: the node of its guest", "delete_backup", map[string]any{"volid": ""},
			safety.Policy{ProtectedNodes: []string{"pve"}}, safety.Protected, "Node pve is protected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, _ := changeEnv(t)
			if c.tool == "delete_backup" {
				c.args["volid"] = backupOf(t, env, 102, true).VolID
			}
			call, err := prepareOp(t, env, c.tool, c.args)
			if err != nil {
				t.Fatal(err)
			}
			v := decideAs(toolNamed(t, c.tool), call, c.policy)
			if v.Decision != c.want || !strings.Contains(v.Reason, c.reason) {
				t.Fatalf("verdict %+v, want %s (%q)", v, c.want, c.reason)
			}
		})
	}
}

// The calls do what their plan says, and wait for PVE's task.
func TestOpsChangeRuns(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, env *Env, tool string, args map[string]any) any {
		t.Helper()
		call, err := prepareOp(t, env, tool, args)
		if err != nil {
			t.Fatalf("prepare: %v", err)
		}
		out, err := call.Run(ctx, noProgress)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return out
	}

	t.Run("update_guest_resources", func(t *testing.T) {
		env, _ := changeEnv(t)
		out := run(t, env, "update_guest_resources", map[string]any{"vmid": 101, "cores": 6, "memory_mib": 12288, "onboot": false})
		res := out.(GuestResourcesResult)
		if len(res.Changes) != 3 || strings.Join(res.RestartNeeded, ",") != "cores,memory" {
			t.Errorf("result %+v", res)
		}
		cfg, err := env.PVE.GuestConfig(pve.WithFresh(ctx), "pve", "qemu", 101)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(cfg["cores"]) != "6" || fmt.Sprint(cfg["memory"]) != "12288" || fmt.Sprint(cfg["onboot"]) != "0" {
			t.Errorf("config after the change: cores %v memory %v onboot %v", cfg["cores"], cfg["memory"], cfg["onboot"])
		}
	})
	t.Run("resize_disk", func(t *testing.T) {
		env, sim := changeEnv(t)
		res := run(t, env, "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+16G"}).(DiskResizeResult)
		if size, _ := sim.GuestDiskBytes(101); size != 80<<30 || !res.OK || res.NewSize != "80 GiB" || res.Action != "resize" {
			t.Errorf("disk is %d bytes after %+v", size, res)
		}
		res = run(t, env, "resize_disk", map[string]any{"vmid": 201, "disk": "rootfs", "size": "10G"}).(DiskResizeResult)
		if size, _ := sim.GuestDiskBytes(201); size != 10<<30 || !res.FileSystemGrown {
			t.Errorf("container disk is %d bytes after %+v", size, res)
		}
	})
	t.Run("migrate_guest", func(t *testing.T) {
		env, sim := changeEnv(t)
		for _, c := range []struct {
			vmid         int
			target, mode string
		}{{101, "home", "online"}, {201, "home", "restart"}, {104, "pve", "offline"}} {
			res := run(t, env, "migrate_guest", map[string]any{"vmid": c.vmid, "target_node": c.target}).(MigrateResult)
			g, _ := sim.Guest(c.vmid)
			if g.Node != c.target || g.Lock != "" || res.Mode != c.mode || res.TargetNode != c.target || !res.OK {
				t.Errorf("after migrating %d: guest %+v, result %+v", c.vmid, g, res)
			}
			if res.Node != c.target || res.GuestStatus != g.Status {
				t.Errorf("result names node %s and status %s, want %s and %s", res.Node, res.GuestStatus, c.target, g.Status)
			}
		}
	})
	t.Run("convert_to_template", func(t *testing.T) {
		env, sim := changeEnv(t)
		for _, c := range []struct {
			vmid int
			typ  string
		}{{106, "qmtemplate"}, {204, "vztemplate"}} {
			res := run(t, env, "convert_to_template", map[string]any{"vmid": c.vmid}).(TaskResult)
			g, _ := sim.Guest(c.vmid)
			id, err := pve.ParseUPID(res.UPID)
			if !g.Template || !res.OK || err != nil || id.Type != c.typ {
				t.Errorf("after converting %d: template %v, result %+v (%v)", c.vmid, g.Template, res, err)
			}
		}
	})
	t.Run("delete_guest", func(t *testing.T) {
		env, sim := changeEnv(t)
		_ = sim.TagGuest(204, "jarvis-created;"+testCreatedID)
		env.Created = createdRecords{yes: true}
		out := run(t, env, "delete_guest", map[string]any{"vmid": 204, "purge": true})
		deleted, ok := out.(GuestDeleted)
		if !ok || deleted.DeletedGuest() != 204 {
			t.Fatalf("result %+v does not tell the server guest 204 is gone", out)
		}
		if _, still := sim.Guest(204); still {
			t.Error("guest 204 is still there")
		}
	})
}

// PVE's own words reach the caller: a refusal, a task that failed.
func TestOpsChangeKeepsPVEsWords(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		tool   string
		args   map[string]any
		before func(env *Env, sim *pvesim.Sim) // between prepare and run
		want   []string
	}{
		{"403 on the config", "update_guest_resources", map[string]any{"vmid": 101, "cores": 6},
			func(_ *Env, sim *pvesim.Sim) {
				sim.FailNext("/nodes/pve/qemu/101/config", 403, "Permission check failed (/vms/101, VM.Config.CPU)")
			}, []string{"Proxmox refused", "Permission check failed (/vms/101, VM.Config.CPU)"}},
		{"the config changed after the plan", "update_guest_resources", map[string]any{"vmid": 101, "cores": 6},
			func(_ *Env, sim *pvesim.Sim) { _ = sim.TagGuest(101, "prod;web;changed") },
			[]string{"Proxmox refused", "detected modified configuration - file changed by other user? Try again."}},
		{"a VM's config changed before its disk grew", "resize_disk", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+1G"},
			func(_ *Env, sim *pvesim.Sim) { _ = sim.TagGuest(101, "changed") },
			[]string{"failed", "checksum mismatch (file change by other user?)"}},
		{"a container's config changed before its disk grew", "resize_disk", map[string]any{"vmid": 201, "disk": "rootfs", "size": "+1G"},
			func(_ *Env, sim *pvesim.Sim) { _ = sim.TagGuest(201, "changed") },
			[]string{"Proxmox refused", "detected modified configuration"}},
		{"403 on a migration", "migrate_guest", map[string]any{"vmid": 101, "target_node": "home"},
			func(_ *Env, sim *pvesim.Sim) {
				sim.FailNext("/nodes/pve/qemu/101/migrate", 403, "Permission check failed (/vms/101, VM.Migrate)")
			}, []string{"Proxmox refused", "Permission check failed (/vms/101, VM.Migrate)"}},
		{"the target went offline", "migrate_guest", map[string]any{"vmid": 104, "target_node": "home"},
			func(_ *Env, sim *pvesim.Sim) { sim.SetNodeOffline("home", true) },
			[]string{"failed", "migration aborted", "Can't connect to destination address"}},
		{"the guest is gone", "delete_guest", map[string]any{"vmid": 106},
			func(_ *Env, sim *pvesim.Sim) {
				sim.FailNext("/nodes/home/qemu/106", 500, "Configuration file 'nodes/home/qemu-server/106.conf' does not exist")
			}, []string{"Proxmox refused", "does not exist"}},
		{"the guest was started after the plan", "delete_guest", map[string]any{"vmid": 106},
			func(_ *Env, sim *pvesim.Sim) { _ = sim.SetGuestStatus(106, "running") },
			[]string{"Proxmox refused", "VM 106 is running - destroy failed"}},
		{"the backup was deleted meanwhile", "delete_backup", map[string]any{"vmid": 0},
			nil, []string{"failed", "No such file or directory"}},
		{"a snapshot was taken after the plan", "convert_to_template", map[string]any{"vmid": 204},
			func(env *Env, _ *pvesim.Sim) {
				upid, _ := env.PVE.CreateSnapshot(ctx, "agent1", "lxc", 204, "late", "", false)
				_, _ = env.PVE.WaitTask(ctx, upid, 10*time.Millisecond, nil)
			}, []string{"Proxmox refused", "unable to create template, because CT contains snapshots"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := changeEnv(t)
			for _, vmid := range []int{106, 204} {
				_ = sim.TagGuest(vmid, "jarvis-created;"+testCreatedID)
			}
			env.Created = createdRecords{yes: true}
			if c.tool == "delete_backup" {
				volid := backupOf(t, env, 101, false).VolID
				c.args = map[string]any{"volid": volid}
				c.before = func(env *Env, _ *pvesim.Sim) {
					upid, _ := env.PVE.DeleteVolume(ctx, "home", "nfs-backup", volid)
					_, _ = env.PVE.WaitTask(ctx, upid, 10*time.Millisecond, nil)
				}
			}
			call, err := prepareOp(t, env, c.tool, c.args)
			if err != nil {
				t.Fatal(err)
			}
			c.before(env, sim)
			_, err = call.Run(ctx, noProgress)
			var unk *OutcomeUnknownError
			if err == nil || errors.As(err, &unk) {
				t.Fatalf("err = %v, want a failed outcome", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

// A write whose answer never came may or may not have happened: unknown,
// never failed, never sent twice.
func TestOpsChangeLostAnswerIsUnknown(t *testing.T) {
	for _, c := range []struct {
		tool, method, path string
		args               map[string]any
	}{
		{"update_guest_resources", http.MethodPut, "/nodes/pve/qemu/101/config", map[string]any{"vmid": 101, "cores": 6}},
		{"resize_disk", http.MethodPut, "/nodes/pve/qemu/101/resize", map[string]any{"vmid": 101, "disk": "scsi0", "size": "+1G"}},
		{"migrate_guest", http.MethodPost, "/nodes/pve/qemu/101/migrate", map[string]any{"vmid": 101, "target_node": "home"}},
		{"convert_to_template", http.MethodPost, "/nodes/agent1/lxc/204/template", map[string]any{"vmid": 204}},
		{"delete_guest", http.MethodDelete, "/nodes/home/qemu/106", map[string]any{"vmid": 106}},
		{"delete_backup", http.MethodDelete, "/nodes/", nil},
	} {
		for _, f := range []pvesim.Fault{pvesim.FaultReset, pvesim.FaultHangAfter} {
			t.Run(c.tool+"/"+f.String(), func(t *testing.T) {
				env, sim := changeEnv(t)
				_ = sim.TagGuest(106, "jarvis-created;"+testCreatedID)
				env.Created = createdRecords{yes: true}
				if c.args == nil {
					c.args = map[string]any{"volid": backupOf(t, env, 101, true).VolID}
				}
				call, err := prepareOp(t, env, c.tool, c.args)
				if err != nil {
					t.Fatal(err)
				}
				sim.InjectFault(c.method, c.path, f, 0)
				_, err = call.Run(context.Background(), noProgress)
				unknownOf(t, err)
				writes := 0
				for _, r := range sim.Requests() {
					if r.Method == c.method {
						writes++
					}
				}
				if writes > 1 {
					t.Fatalf("the write was sent %d times; a write is never retried", writes)
				}
			})
		}
	}
	// The write got through, but the task could not be checked to its end.
	t.Run("migration task unreadable", func(t *testing.T) {
		env, sim := changeEnv(t)
		call, err := prepareOp(t, env, "migrate_guest", map[string]any{"vmid": 104, "target_node": "home"})
		if err != nil {
			t.Fatal(err)
		}
		sim.InjectFault(http.MethodGet, "/nodes/agent/tasks/", pvesim.FaultReset, 0)
		_, err = call.Run(context.Background(), noProgress)
		if unk := unknownOf(t, err); !strings.HasPrefix(unk.UPID, "UPID:agent:") || !strings.Contains(unk.UPID, ":qmigrate:104:") {
			t.Errorf("unknown outcome without the migration's task id: %q", unk.UPID)
		}
	})
}

func TestPVESizes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{{"64G", 64 << 30, true}, {"512M", 512 << 20, true}, {"1.5T", 3 << 39, true}, {"1024", 1024, true}, {"4K", 4096, true}, {"8GB", 0, false}, {"", 0, false}} {
		if got, ok := parseSizeBytes(c.in); got != c.want || ok != c.ok {
			t.Errorf("parseSizeBytes(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	for b, want := range map[int64]string{80 << 30: "80G", 1 << 40: "1T", 1536 << 20: "1536M", 4097 << 10: "4097K", 1000: "1000"} {
		if got := pveSize(b); got != want {
			t.Errorf("pveSize(%d) = %q, want %q", b, got, want)
		}
	}
	d := parseGuestDisk("mp0", "local-lvm:vm-201-disk-1,mp=/data,size=32G")
	if d.storage != "local-lvm" || d.size != 32<<30 || d.cdrom {
		t.Errorf("mount point %+v", d)
	}
	if d := parseGuestDisk("ide2", "local:iso/debian.iso,media=cdrom"); !d.cdrom || d.storage != "local" {
		t.Errorf("cdrom %+v", d)
	}
	if d := parseGuestDisk("mp1", "/srv/data,mp=/data"); d.storage != "" {
		t.Errorf("bind mount %+v has a storage", d)
	}
	for _, c := range []struct {
		tags   string
		tagged bool
		id     string
	}{
		{"lab;jarvis-created;jarvis-id-00aa", true, "jarvis-id-00aa"},
		{"jarvis-created-x;jarvis-id-00aa", false, "jarvis-id-00aa"},
		{"a, Jarvis-Created b", true, ""},
		{"jarvis-created;jarvis-id-01;jarvis-id-02", true, ""},
		{"", false, ""},
	} {
		if tagged, id := createdMarks(guestTags(c.tags)); tagged != c.tagged || id != c.id {
			t.Errorf("createdMarks(%q) = %v, %q; want %v, %q", c.tags, tagged, id, c.tagged, c.id)
		}
	}
}

// What doctor predicts is what happens: without one privilege the table
// names, the tool fails with PVE's 403 naming it (for a disk's storage, the
// resize task fails with it).
func TestOpsChangeMissingPrivilegeFails(t *testing.T) {
	for _, c := range []struct {
		tool    string
		without string
		args    map[string]any
	}{
		{"update_guest_resources", "VM.Config.CPU", map[string]any{"vmid": 101, "cores": 6}},
		{"update_guest_resources", "VM.Config.Memory", map[string]any{"vmid": 101, "memory_mib": 4096}},
		{"update_guest_resources", "VM.Config.Options", map[string]any{"vmid": 101, "onboot": false}},
		{"resize_disk", "VM.Config.Disk", nil},
		{"resize_disk", "Datastore.AllocateSpace", nil},
		{"migrate_guest", "VM.Migrate", nil},
		{"delete_backup", "VM.Backup", nil},
		{"convert_to_template", "VM.Allocate", nil},
		{"delete_guest", "VM.Allocate", nil},
	} {
		t.Run(c.tool+" without "+c.without, func(t *testing.T) {
			t.Parallel()
			privs, _ := Privileges(c.tool)
			named := false
			for _, p := range privs {
				named = named || slices.Contains(p.AnyOf, c.without)
			}
			if !named {
				t.Fatalf("privileges of %s do not name %s", c.tool, c.without)
			}
			var held []string
			for _, p := range pvesim.AllPrivileges() {
				if p != c.without {
					held = append(held, p)
				}
			}
			env := privilegeEnv(t, []pvesim.ACL{{Path: "/", Privileges: held, Propagate: true}})
			args := c.args
			if args == nil {
				args = privilegeRuns[c.tool]
			}
			err := runTool(t, env, c.tool, args)
			if err == nil || !strings.Contains(err.Error(), "Permission check failed") || !strings.Contains(err.Error(), c.without) {
				t.Errorf("err = %v, want PVE's permission error naming %s", err, c.without)
			}
		})
	}
}
