package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// The runs TestPrivilegesCoverWhatPVEChecks makes of these tools: each does
// its whole job on a fresh demo cluster with exactly the privileges
// opsCreateAccess lists (cloud-init and the tag included).
func init() {
	// Without cloud-init: pvesim's template has no cloud-init drive (the run
	// with it is TestClonePrivilegesWithCloudInit's).
	privilegeRuns["clone_guest"] = map[string]any{"vmid": 9000, "name": "priv-clone", "full": true}
	privilegeRuns["create_backup"] = map[string]any{"vmid": 101}
	privilegeRuns["restore_backup"] = map[string]any{"volid": nightlyVolid{vmid: 101, index: 1}, "vmid": 130}
	privilegeRuns["download_to_storage"] = map[string]any{"url": "https://example.org/images/alpine-3.22.iso", "storage": "local", "content": "iso"}
	privilegeRuns["set_guest_notes_tags"] = map[string]any{"vmid": 101, "tags": []string{"prod", "web", "www"}, "notes": "front end"}
}

// nightlyVolid is the volume id of the demo's newest nightly backup of a VM
// (its index-th guest, 97 s apart), worked out when the arguments are
// marshalled: right after the simulator seeded it, on the same day.
type nightlyVolid struct{ vmid, index int }

func (v nightlyVolid) MarshalJSON() ([]byte, error) {
	now := time.Now()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	ct := midnight.Add(-24 * time.Hour).Add(2*time.Hour + time.Duration(v.index)*97*time.Second)
	return json.Marshal(fmt.Sprintf("nfs-backup:backup/vzdump-qemu-%d-%s.vma.zst", v.vmid, ct.Format("2006_01_02-15_04_05")))
}

// createEnv is a tool environment on a fresh simulated cluster, its
// template 9000 with the cloud-init drive it has in Proxmox (cloudInitDrive).
func createEnv(t *testing.T) (*Env, *pvesim.Sim) {
	t.Helper()
	return fakeEnv(t, 40*time.Millisecond, nil, cloudInitDrive)
}

// prepCreate prepares a call as dispatch does, and returns its error.
func prepCreate(t *testing.T, env *Env, tool string, args map[string]any) (*Call, error) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return prepareRaw(context.Background(), toolNamed(t, tool), env, raw)
}

// newestBackup is the newest backup of a guest on nfs-backup.
func newestBackup(t *testing.T, env *Env, vmid int) pve.StorageItem {
	t.Helper()
	items, err := env.PVE.StorageContent(context.Background(), "pve", "nfs-backup", "backup")
	if err != nil {
		t.Fatal(err)
	}
	var best pve.StorageItem
	for _, it := range items {
		if int(it.VMID) == vmid && it.CTime > best.CTime {
			best = it
		}
	}
	if best.VolID == "" {
		t.Fatalf("no backup of %d", vmid)
	}
	return best
}

func backupDate(it pve.StorageItem) string {
	return time.Unix(int64(it.CTime), 0).UTC().Format("2006-01-02 15:04 UTC")
}

// verdictOf decides a prepared call as dispatch does, for a caller whose
// ceiling is ceiling.
func verdictOf(tool *Tool, call *Call, p safety.Policy, ceiling safety.Tier) safety.Verdict {
	tier := tool.Tier
	if call.Tier != 0 && (call.Tier < tier || call.Tier == safety.Black) {
		tier = call.Tier
	}
	return p.Decide(safety.Request{Principal: safety.Principal{ID: "agent:create", Kind: safety.Agent, MaxTier: ceiling},
		Tool: tool.Name, Tier: tier, Target: call.Target, Also: call.Also, Effect: call.Effect, TierReason: call.TierReason}, safety.State{})
}

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZsv5oPG2Xv3cYqT0j1kqHqvI5z7uVbqjM0t5cX8G3x me@laptop"

// What a person approves: each tool's plan, and the tier of the call.
func TestCreatePlans(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(*testing.T, *pvesim.Sim)
		tool  string
		args  func(*testing.T, *Env) map[string]any
		want  func(*testing.T, *Env) string // a regexp the whole plan must match
		tier  safety.Tier
	}{
		{name: "full clone of a template", tool: "clone_guest",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 9000, "name": "web02", "full": true}
			},
			want: func(*testing.T, *Env) string {
				return `^Clone template VM 9000 'debian13-cloudinit' on node home into new VM 107 'web02' on node home, full clone onto storage local-lvm \(needs 8\.0 GiB; \d+\.\d GiB free\); the clone is tagged jarvis-created$`
			}, tier: safety.Yellow},
		{name: "linked clone with cloud-init and a VMID of choice", tool: "clone_guest",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 9000, "new_vmid": 120, "name": "web02", "ci_user": "debian", "ssh_public_key": testKey,
					"ip_config": "ip=10.0.1.50/24,gw=10.0.1.1"}
			},
			want: func(*testing.T, *Env) string {
				return `^Clone template VM 9000 'debian13-cloudinit' on node home into new VM 120 'web02' on node home, linked clone on storage local-lvm \(it shares the template's disks; \d+\.\d GiB free\); cloud-init: user debian, SSH key ssh-ed25519 me@laptop, ip=10\.0\.1\.50/24,gw=10\.0\.1\.1; the clone is tagged jarvis-created$`
			}, tier: safety.Yellow},
		{name: "full clone of a stopped container", tool: "clone_guest",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 203, "name": "wiki2", "full": true}
			},
			want: func(*testing.T, *Env) string {
				return `^Clone stopped container 203 'old-wiki' on node agent into new container 107 'wiki2' on node agent, full clone onto storage local-lvm \(needs 8\.0 GiB; .*`
			}, tier: safety.Yellow},
		{name: "live backup", tool: "create_backup",
			args: func(*testing.T, *Env) map[string]any { return map[string]any{"vmid": 101} },
			want: func(*testing.T, *Env) string {
				return `^Back up running VM 101 'web01' on node pve to storage nfs-backup in snapshot mode \(live: the guest keeps running\), zstd-compressed; no older backup is removed$`
			}, tier: safety.Yellow},
		{name: "backup that stops a running guest", tool: "create_backup",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 201, "mode": "stop", "compress": "none", "notes": "before the upgrade"}
			},
			want: func(*testing.T, *Env) string {
				return `^Back up running container 201 'nginx-proxy' on node pve to storage nfs-backup in stop mode: the guest is SHUT DOWN for the whole backup and started again afterwards; its services are down meanwhile, uncompressed, with notes "before the upgrade"; no older backup is removed$`
			}, tier: safety.Red},
		{name: "stop mode on a stopped guest needs a person too: it may be started first", tool: "create_backup",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 104, "mode": "stop", "storage": "local"}
			},
			want: func(*testing.T, *Env) string {
				return `^Back up stopped VM 104 'win11' on node agent to storage local in stop mode: a running guest is shut down for the backup and started again after \(it is stopped now\), zstd-compressed; no older backup is removed$`
			}, tier: safety.Red},
		{name: "a stopped guest in snapshot mode stays stopped", tool: "create_backup",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 104, "storage": "local"}
			},
			want: func(*testing.T, *Env) string {
				return `^Back up stopped VM 104 'win11' on node agent to storage local \(it stays stopped\), zstd-compressed; no older backup is removed$`
			}, tier: safety.Yellow},
		{name: "restore over a stopped guest", tool: "restore_backup",
			setup: func(t *testing.T, sim *pvesim.Sim) {
				if err := sim.SetGuestStatus(101, "stopped"); err != nil {
					t.Fatal(err)
				}
			},
			args: func(t *testing.T, env *Env) map[string]any {
				return map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 101}
			},
			want: func(t *testing.T, env *Env) string {
				b := newestBackup(t, env, 101)
				return "^" + regexp.QuoteMeta(fmt.Sprintf("Restore VM 101 'web01' on node pve from backup %s (%s), REPLACING its current disks and config; everything written since that backup and its 2 snapshots (pre-upgrade, before-php84) are lost", b.VolID, backupDate(b))) + "$"
			}, tier: safety.Red},
		{name: "restore into a new VMID", tool: "restore_backup",
			args: func(t *testing.T, env *Env) map[string]any {
				return map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 130}
			},
			want: func(t *testing.T, env *Env) string {
				b := newestBackup(t, env, 101)
				return "^" + regexp.QuoteMeta(fmt.Sprintf("Restore backup %s (of VM 101 'web01', %s) into new VM 130 on node pve, with new MAC addresses (VM 101 'web01' still exists); the new guest is tagged jarvis-created", b.VolID, backupDate(b))) + "$"
			}, tier: safety.Yellow},
		{name: "restore into a new VMID and start it beside the running original", tool: "restore_backup",
			args: func(t *testing.T, env *Env) map[string]any {
				return map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 130, "start": true}
			},
			want: func(t *testing.T, env *Env) string {
				b := newestBackup(t, env, 101)
				return "^" + regexp.QuoteMeta(fmt.Sprintf("Restore backup %s (of VM 101 'web01', %s) into new VM 130 on node pve, with new MAC addresses (VM 101 'web01' still exists), while VM 101 'web01' is running (the copy may claim the same IP addresses inside its OS); then it is started; the new guest is tagged jarvis-created", b.VolID, backupDate(b))) + "$"
			}, tier: safety.Red},
		{name: "restore into a new VMID and start it, the original stopped", tool: "restore_backup",
			args: func(t *testing.T, env *Env) map[string]any {
				return map[string]any{"volid": newestBackup(t, env, 104).VolID, "vmid": 131, "start": true}
			},
			want: func(t *testing.T, env *Env) string {
				b := newestBackup(t, env, 104)
				return "^" + regexp.QuoteMeta(fmt.Sprintf("Restore backup %s (of VM 104 'win11', %s) into new VM 131 on node agent, with new MAC addresses (VM 104 'win11' still exists); then it is started; the new guest is tagged jarvis-created", b.VolID, backupDate(b))) + "$"
			}, tier: safety.Yellow},
		{name: "download", tool: "download_to_storage",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"url": "https://cdimage.debian.org/debian-cd/current/amd64/iso-cd/debian-13.2.0-amd64-netinst.iso", "storage": "local", "content": "iso",
					"checksum": strings.Repeat("ab", 32), "checksum_algorithm": "sha256"}
			},
			want: func(*testing.T, *Env) string {
				return `^Download https://cdimage\.debian\.org/debian-cd/current/amd64/iso-cd/debian-13\.2\.0-amd64-netinst\.iso into storage local on node agent as local:iso/debian-13\.2\.0-amd64-netinst\.iso; the node fetches it itself over https, checking the server's certificate, and Proxmox keeps it only if its sha256 checksum is (ab){32}$`
			}, tier: safety.Yellow},
		{name: "tags", tool: "set_guest_notes_tags",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 101, "tags": []string{"web", "prod", "www"}}
			},
			want: func(*testing.T, *Env) string {
				return `^Set VM 101 'web01' on node pve: tags \[prod, web\] → \[prod, web, www\]; notes unchanged; nothing else changes$`
			}, tier: safety.Yellow},
		{name: "notes", tool: "set_guest_notes_tags",
			args: func(*testing.T, *Env) map[string]any {
				return map[string]any{"vmid": 201, "notes": "reverse proxy\nfor *.lab"}
			},
			want: func(*testing.T, *Env) string {
				return `^Set container 201 'nginx-proxy' on node pve: notes set \(23 characters: "reverse proxy for \*\.lab"\); tags unchanged; nothing else changes$`
			}, tier: safety.Yellow},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := createEnv(t)
			if c.setup != nil {
				c.setup(t, sim)
			}
			call, err := prepCreate(t, env, c.tool, c.args(t, env))
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want(t, env); !regexp.MustCompile(want).MatchString(call.Effect) {
				t.Errorf("plan:\n  %s\nwant it to match\n  %s", call.Effect, want)
			}
			v := verdictOf(toolNamed(t, c.tool), call, safety.Policy{}, safety.Red)
			if v.Tier != c.tier {
				t.Errorf("tier %s, want %s", v.Tier, c.tier)
			}
			if want := map[safety.Tier]safety.Decision{safety.Yellow: safety.Allow, safety.Red: safety.NeedsApproval}[c.tier]; v.Decision != want {
				t.Errorf("decision %s, want %s", v.Decision, want)
			}
			// A YELLOW agent may make the call when it is YELLOW, never when RED.
			yellow := verdictOf(toolNamed(t, c.tool), call, safety.Policy{}, safety.Yellow)
			if (c.tier == safety.Yellow) != (yellow.Decision == safety.Allow) {
				t.Errorf("a yellow caller gets %s for a %s call", yellow.Decision, c.tier)
			}
			for _, r := range sim.Requests() {
				if r.Method != http.MethodGet {
					t.Errorf("preparing sent %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

// Everything is checked before anyone is asked: a refusal says why, and
// nothing but reads reached Proxmox.
func TestCreateRefusals(t *testing.T) {
	full := func(n int64) func(*testing.T, *pvesim.Sim) {
		return func(t *testing.T, sim *pvesim.Sim) {
			if err := sim.FillStorage("local-lvm", n); err != nil {
				t.Fatal(err)
			}
		}
	}
	status := func(vmid int, s string) func(*testing.T, *pvesim.Sim) {
		return func(t *testing.T, sim *pvesim.Sim) {
			if err := sim.SetGuestStatus(vmid, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name  string
		setup func(*testing.T, *pvesim.Sim)
		tool  string
		args  func(*testing.T, *Env) map[string]any
		want  string
	}{
		// clone_guest
		{name: "running source", tool: "clone_guest", args: fixed(map[string]any{"vmid": 101, "name": "web02", "full": true}),
			want: "VM 101 'web01' is running; Jarvis clones only templates and stopped guests"},
		{name: "linked clone of a guest that is not a template", tool: "clone_guest", args: fixed(map[string]any{"vmid": 106, "name": "t2"}),
			want: "VM 106 'test-vm' is not a template, and Proxmox makes linked clones only from templates: set full to true"},
		{name: "not enough space", setup: full(810 << 30), tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "full": true}),
			want: "needs 8.0 GiB on storage local-lvm, and it has only"},
		{name: "VMID taken, in Proxmox's words", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "new_vmid": 102}),
			want: `VMID 102 cannot be used: Proxmox says "VM 102 already exists"`},
		{name: "another node from local storage", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "full": true, "target_node": "pve"}),
			want: "Proxmox clones to another node only from shared storage"},
		{name: "unknown target node", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "target_node": "nas"}),
			want: `no node "nas" in this cluster`},
		{name: "storage for a linked clone", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "storage": "local-lvm"}),
			want: "a linked clone stays on its template's storage"},
		{name: "storage without disks", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web02", "full": true, "storage": "nfs-backup"}),
			want: "storage nfs-backup on node home does not hold VM disks"},
		{name: "cloud-init on a container", tool: "clone_guest", args: fixed(map[string]any{"vmid": 203, "name": "w2", "full": true, "ci_user": "debian"}),
			want: "cloud-init settings of VMs"},
		{name: "name", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "web_02"}), want: "name"},
		{name: "two keys", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "w", "ssh_public_key": testKey + "\n" + testKey}),
			want: "one key on one line"},
		{name: "a private key", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "w", "ssh_public_key": "-----BEGIN OPENSSH PRIVATE KEY----- b3Blbn"}),
			want: "is a private key"},
		{name: "not a key", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "w", "ssh_public_key": "ssh-ed25519 AAAAB3NzaC1yc2E= me"}),
			want: "the key data is not a ssh-ed25519 key"},
		{name: "gateway without a static address", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "w", "ip_config": "ip=dhcp,gw=10.0.1.1"}),
			want: "a gateway needs a static ip"},
		{name: "gateway off the subnet", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "w", "ip_config": "ip=10.0.1.50/24,gw=10.0.2.1"}),
			want: "gateway 10.0.2.1 is not in 10.0.1.0/24"},
		{name: "address without a prefix", tool: "clone_guest", args: fixed(map[string]any{"vmid": 9000, "name": "w", "ip_config": "ip=10.0.1.50"}),
			want: "ip must be dhcp or an IPv4 address with its prefix length"},

		// create_backup
		{name: "backup of a locked guest", setup: func(t *testing.T, sim *pvesim.Sim) {
			if err := sim.LockGuest(101, "snapshot"); err != nil {
				t.Fatal(err)
			}
		}, tool: "create_backup", args: fixed(map[string]any{"vmid": 101}), want: "VM 101 'web01' is locked (snapshot)"},
		{name: "storage that takes no backups", tool: "create_backup", args: fixed(map[string]any{"vmid": 101, "storage": "local-lvm"}),
			want: "storage local-lvm does not take backups on node pve"},
		{name: "backup mode", tool: "create_backup", args: fixed(map[string]any{"vmid": 101, "mode": "hibernate"}), want: "mode"},

		// restore_backup
		{name: "restore over a running guest", tool: "restore_backup", args: func(t *testing.T, env *Env) map[string]any {
			return map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 101}
		}, want: "VM 101 'web01' is running; shut it down first (shutdown_vm), then restore over it"},
		{name: "restore a container's backup over a VM", setup: status(104, "stopped"), tool: "restore_backup", args: func(t *testing.T, env *Env) map[string]any {
			return map[string]any{"volid": newestBackup(t, env, 201).VolID, "vmid": 104}
		}, want: "VM 104 'win11' is a VM, and"},
		{name: "restore over a guest elsewhere", setup: status(101, "stopped"), tool: "restore_backup", args: func(t *testing.T, env *Env) map[string]any {
			return map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 101, "node": "home"}
		}, want: "VM 101 'web01' is on node pve: a restore over it runs there"},
		{name: "no such backup", tool: "restore_backup",
			args: fixed(map[string]any{"volid": "nfs-backup:backup/vzdump-qemu-101-2020_01_01-02_00_00.vma.zst", "vmid": 130}),
			want: "there is no backup nfs-backup:backup/vzdump-qemu-101-2020_01_01-02_00_00.vma.zst on storage nfs-backup"},
		{name: "not a backup volume", tool: "restore_backup", args: fixed(map[string]any{"volid": "local:iso/debian-13.1.0-amd64-netinst.iso", "vmid": 130}),
			want: "volid"},

		// download_to_storage
		{name: "http", tool: "download_to_storage", args: fixed(map[string]any{"url": "http://example.org/a.iso", "storage": "local", "content": "iso"}), want: "url"},
		{name: "credentials", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://me:secret@example.org/a.iso", "storage": "local", "content": "iso"}),
			want: "carries a credential"},
		{name: "wrong extension", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/a.tar.gz", "storage": "local", "content": "iso"}),
			want: `file name "a.tar.gz": iso files must end in .iso, .img`},
		{name: "template extension", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/a.iso", "storage": "local", "content": "vztmpl"}),
			want: "vztmpl files must end in .tar.gz, .tar.xz, .tar.zst"},
		{name: "no file name in the URL", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/", "storage": "local", "content": "iso"}),
			want: "set filename when the URL does not end in one"},
		{name: "storage without ISOs", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/a.iso", "storage": "nfs-backup", "content": "iso"}),
			want: "storage nfs-backup does not take iso files (its content: backup)"},
		{name: "file exists", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/debian-13.1.0-amd64-netinst.iso", "storage": "local", "content": "iso", "node": "pve"}),
			want: "storage local already has local:iso/debian-13.1.0-amd64-netinst.iso"},
		{name: "checksum without algorithm", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/a.iso", "storage": "local", "content": "iso", "checksum": "abcd"}),
			want: "checksum needs checksum_algorithm"},
		{name: "checksum of the wrong length", tool: "download_to_storage", args: fixed(map[string]any{"url": "https://example.org/a.iso", "storage": "local", "content": "iso",
			"checksum": strings.Repeat("a", 40), "checksum_algorithm": "sha256"}), want: "want 64 hex digits"},

		// set_guest_notes_tags
		{name: "upper-case tag", tool: "set_guest_notes_tags", args: fixed(map[string]any{"vmid": 101, "tags": []string{"Prod"}}), want: "tags"},
		{name: "tag with a space", tool: "set_guest_notes_tags", args: fixed(map[string]any{"vmid": 101, "tags": []string{"a b"}}), want: "tags"},
		{name: "the created tag by hand", tool: "set_guest_notes_tags", args: fixed(map[string]any{"vmid": 101, "tags": []string{"prod", "jarvis-created"}}),
			want: "jarvis-created is one of the tags that mark guests Jarvis created; it cannot be set by hand (VM 101 'web01' does not have it)"},
		{name: "an id tag by hand", tool: "set_guest_notes_tags", args: fixed(map[string]any{"vmid": 101, "tags": []string{"prod", "jarvis-id-00aa11bb22cc33dd"}}),
			want: "jarvis-id-00aa11bb22cc33dd is one of the tags that mark guests Jarvis created; it cannot be set by hand"},
		{name: "nothing to change", tool: "set_guest_notes_tags", args: fixed(map[string]any{"vmid": 101, "tags": []string{"web", "prod"}}),
			want: "already has these notes and tags; nothing would change"},
		{name: "nothing given", tool: "set_guest_notes_tags", args: fixed(map[string]any{"vmid": 101}), want: "give notes, tags or both"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, sim := createEnv(t)
			if c.setup != nil {
				c.setup(t, sim)
			}
			call, err := prepCreate(t, env, c.tool, c.args(t, env))
			if err == nil {
				t.Fatalf("prepared %q, want a refusal saying %q", call.Effect, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v\nwant it to say %q", err, c.want)
			}
			for _, r := range sim.Requests() {
				if r.Method != http.MethodGet {
					t.Errorf("a refused call sent %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

func fixed(args map[string]any) func(*testing.T, *Env) map[string]any {
	return func(*testing.T, *Env) map[string]any { return args }
}

// The URL rule itself, beyond what the input schema catches.
func TestDownloadURLs(t *testing.T) {
	for _, c := range []struct {
		url, want string
	}{
		{"https://cdimage.debian.org/debian-cd/current/amd64/iso-cd/debian-13.2.0-amd64-netinst.iso", ""},
		{"https://10.0.0.5:8443/isos/a.iso", ""},
		{"https://[fd00::5]/a.iso", ""},
		{"http://example.org/a.iso", "only https URLs"},
		{"HTTP://example.org/a.iso", "only https URLs"},
		{"ftp://example.org/a.iso", "only https URLs"},
		{"file:///etc/passwd", "only https URLs"},
		{"data:text/plain;base64,SGVsbG8=", "only https URLs"},
		{"//example.org/a.iso", "only https URLs"},
		{"https://user:pass@example.org/a.iso", "carries a credential"},
		{"https://user@example.org/a.iso", "carries credentials"},
		{"https://b.s3.example/a.iso?X-Amz-Credential=AKIA&X-Amz-Signature=abc", "carries a credential"},
		{"https://dl.example/a.iso?token=s3cr3t", "carries a credential"},
		{"https://mirror.example/a.iso?arch=amd64", ""},
		{"https:///a.iso", "has no host"},
		{"https:a.iso", "has no host"},
		{"https://exa_mple.org/a.iso", "neither a DNS name nor an IP address"},
		{"https://example.org:99999/a.iso", "is not a port"},
		{"https://example.org/a b.iso", "spaces or control characters"},
		{"https://example.org/" + strings.Repeat("a", maxURLLen) + ".iso", "at most 2048"},
	} {
		_, err := checkDownloadURL(c.url)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.url, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "pass@") {
			t.Errorf("%s: the error repeats the password: %v", c.url, err)
		}
	}
}

// A clone ends with a guest tagged jarvis-created, its cloud-init set, and a
// result the server records as created by Jarvis.
func TestCloneCreatesAndMarks(t *testing.T) {
	env, sim := createEnv(t)
	call, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02", "full": true,
		"ci_user": "debian", "ssh_public_key": testKey, "ip_config": "ip=dhcp"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var steps []string
	out, err := call.Run(context.Background(), func(msg string, done, total float64) {
		mu.Lock()
		steps = append(steps, msg)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := out.(GuestCreated)
	if !ok {
		t.Fatalf("result %T does not tell the server a guest was created", out)
	}
	node, vmid, marker := g.CreatedGuest()
	if node != "home" || vmid != 107 || !regexp.MustCompile(`^jarvis-id-[0-9a-f]{16}$`).MatchString(marker) {
		t.Errorf("CreatedGuest = %s, %d, %q", node, vmid, marker)
	}
	res := out.(CloneGuestResult)
	if res.Tags != "jarvis-created;"+marker+";template" || !res.CloudInit || res.GuestStatus != "stopped" || !strings.HasPrefix(res.UPID, "UPID:home:") {
		t.Errorf("result %+v", res)
	}
	set, ok := sim.Settings(107)
	if !ok {
		t.Fatal("no guest 107")
	}
	if set.Tags != "jarvis-created;"+marker+";template" || set.CIUser != "debian" || set.IPConfig0 != "ip=dhcp" || set.Storage != "local-lvm" {
		t.Errorf("clone's settings %+v", set)
	}
	if keys, err := url.PathUnescape(set.SSHKeys); err != nil || keys != testKey || strings.ContainsAny(set.SSHKeys, " +") {
		t.Errorf("sshkeys stored as %q (decoded %q, %v); want the key URL-encoded, spaces as %%20", set.SSHKeys, keys, err)
	}
	if info, _ := sim.Guest(107); info.Status != "stopped" || info.Lock != "" || info.Template {
		t.Errorf("clone %+v", info)
	}
	if len(steps) == 0 {
		t.Error("no progress reported")
	}
}

// A clone that was made but could not be tagged is a failure that names the
// new guest; nothing tells the server it was created.
func TestCloneWithoutTheMark(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		var privs []string
		for _, p := range pvesim.AllPrivileges() {
			if p != "VM.Config.Options" {
				privs = append(privs, p)
			}
		}
		env := privilegeEnv(t, []pvesim.ACL{{Path: "/", Privileges: privs, Propagate: true}})
		call, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := call.Run(context.Background(), noProgress)
		if out != nil {
			t.Fatalf("Run returned %+v with an untagged clone", out)
		}
		var unk *OutcomeUnknownError
		if err == nil || errors.As(err, &unk) {
			t.Fatalf("err = %v, want failed", err)
		}
		for _, want := range []string{"VM 107 'web02' was created on node home", "could not tag it jarvis-created",
			"Permission check failed (/vms/107, VM.Config.Options)", "delete_guest will refuse it"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant it to say %q", err, want)
			}
		}
		if upidOfErr(err) == "" {
			t.Error("the error does not carry the clone's task id for the audit log")
		}
	})
	t.Run("no answer", func(t *testing.T) {
		env, sim := createEnv(t)
		call, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02", "ci_user": "debian"})
		if err != nil {
			t.Fatal(err)
		}
		sim.InjectFault(http.MethodPut, "/nodes/home/qemu/107/config", pvesim.FaultReset, 1)
		out, err := call.Run(context.Background(), noProgress)
		if out != nil {
			t.Fatalf("Run returned %+v", out)
		}
		unk := unknownOf(t, err)
		if !strings.Contains(err.Error(), "VM 107 'web02' was created") || !strings.Contains(unk.Check, "get_guest_config for VM 107 'web02'") {
			t.Errorf("unknown outcome %v does not name the clone", err)
		}
	})
}

func upidOfErr(err error) string {
	var u interface{ TaskUPID() string }
	if errors.As(err, &u) {
		return u.TaskUPID()
	}
	return ""
}

// Proxmox's refusals keep its words; a write whose answer never came is
// unknown, never failed.
func TestCreateOutcomes(t *testing.T) {
	t.Run("403", func(t *testing.T) {
		var privs []string
		for _, p := range pvesim.AllPrivileges() {
			if p != "VM.Clone" {
				privs = append(privs, p)
			}
		}
		env := privilegeEnv(t, []pvesim.ACL{{Path: "/", Privileges: privs, Propagate: true}})
		err := runTool(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02"})
		if err == nil || !strings.Contains(err.Error(), "Proxmox refused the clone") || !strings.Contains(err.Error(), "Permission check failed (/vms/9000, VM.Clone)") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("VMID taken meanwhile", func(t *testing.T) {
		env, _ := createEnv(t)
		call, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02", "new_vmid": 150})
		if err != nil {
			t.Fatal(err)
		}
		other, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 106, "name": "first", "new_vmid": 150, "full": true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Run(context.Background(), noProgress); err != nil {
			t.Fatal(err)
		}
		_, err = call.Run(context.Background(), noProgress)
		var unk *OutcomeUnknownError
		if err == nil || errors.As(err, &unk) || !strings.Contains(err.Error(), "unable to create VM 150: config file already exists") {
			t.Fatalf("err = %v, want failed in Proxmox's words", err)
		}
	})
	for _, c := range []struct {
		tool   string
		args   map[string]any
		method string
		path   string
	}{
		{"clone_guest", map[string]any{"vmid": 9000, "name": "web02"}, http.MethodPost, "/nodes/home/qemu/9000/clone"},
		{"create_backup", map[string]any{"vmid": 101}, http.MethodPost, "/nodes/pve/vzdump"},
		{"download_to_storage", map[string]any{"url": "https://example.org/a.iso", "storage": "local", "content": "iso"}, http.MethodPost, "/nodes/agent/storage/local/download-url"},
		{"set_guest_notes_tags", map[string]any{"vmid": 101, "notes": "x"}, http.MethodPut, "/nodes/pve/qemu/101/config"},
		{"restore_backup", nil, http.MethodPost, "/nodes/pve/qemu"},
	} {
		t.Run("no answer to "+c.tool, func(t *testing.T) {
			env, sim := createEnv(t)
			args := c.args
			if args == nil {
				args = map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 130}
			}
			call, err := prepCreate(t, env, c.tool, args)
			if err != nil {
				t.Fatal(err)
			}
			sim.InjectFault(c.method, c.path, pvesim.FaultReset, 1)
			out, err := call.Run(context.Background(), noProgress)
			if out != nil {
				t.Fatalf("Run returned %+v", out)
			}
			unknownOf(t, err)
			if n := sim.RequestCount(c.method, c.path); n != 1 {
				t.Errorf("the write was sent %d times; never retried", n)
			}
		})
	}
	t.Run("backup task fails", func(t *testing.T) {
		env, sim := createEnv(t)
		call, err := prepCreate(t, env, "create_backup", map[string]any{"vmid": 101})
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.LockGuest(101, "migrate"); err != nil { // taken meanwhile
			t.Fatal(err)
		}
		_, err = call.Run(context.Background(), noProgress)
		var failed *pve.TaskFailedError
		if !errors.As(err, &failed) || !strings.Contains(err.Error(), "job errors") || !strings.Contains(err.Error(), "Backup of VM 101 failed - VM is locked (migrate)") {
			t.Fatalf("err = %v, want the task's failure with its ERROR line", err)
		}
	})
}

// A backup reports vzdump's progress and names the archive it wrote.
func TestBackupRun(t *testing.T) {
	env, sim := outcomeEnv(t, 400*time.Millisecond)
	call, err := prepCreate(t, env, "create_backup", map[string]any{"vmid": 101, "notes": "manual {{guestname}}"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var pcts []float64
	out, err := call.Run(context.Background(), func(msg string, done, total float64) {
		mu.Lock()
		defer mu.Unlock()
		if total == 100 && strings.HasPrefix(msg, "backing up: ") {
			pcts = append(pcts, done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	res, ok := out.(CreateBackupResult)
	if !ok || !res.OK || res.Action != "vzdump" || res.Storage != "nfs-backup" || res.GuestStatus != "running" {
		t.Fatalf("result %+v", out)
	}
	if _, created := out.(GuestCreated); created {
		t.Error("a backup claims to have created a guest")
	}
	if !regexp.MustCompile(`^nfs-backup:backup/vzdump-qemu-101-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.vma\.zst$`).MatchString(res.VolID) || res.SizeBytes <= 0 {
		t.Errorf("volid %q, size %d", res.VolID, res.SizeBytes)
	}
	if b := newestBackup(t, env, 101); b.VolID != res.VolID || b.Notes != "manual web01" {
		t.Errorf("newest backup %+v", b)
	}
	if len(pcts) == 0 {
		t.Error("no progress from the task log")
	}
	if info, _ := sim.Guest(101); info.Lock != "" {
		t.Errorf("guest still locked (%s)", info.Lock)
	}
}

// A restore into a new VMID creates a tagged guest the server records; one
// over an existing guest replaces it, snapshots and all, and records nothing.
func TestRestoreRuns(t *testing.T) {
	t.Run("new guest", func(t *testing.T) {
		env, sim := createEnv(t)
		call, err := prepCreate(t, env, "restore_backup", map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 130})
		if err != nil {
			t.Fatal(err)
		}
		if call.Target.VMID != 130 || call.Target.Node != "pve" {
			t.Errorf("target %+v", call.Target)
		}
		out, err := call.Run(context.Background(), noProgress)
		if err != nil {
			t.Fatal(err)
		}
		g, ok := out.(GuestCreated)
		if !ok {
			t.Fatalf("result %T does not tell the server a guest was created", out)
		}
		node, vmid, marker := g.CreatedGuest()
		if node != "pve" || vmid != 130 || !strings.HasPrefix(marker, "jarvis-id-") {
			t.Errorf("CreatedGuest = %s, %d, %q", node, vmid, marker)
		}
		set, _ := sim.Settings(130)
		if set.Tags != "jarvis-created;"+marker+";prod;web" {
			t.Errorf("tags %q", set.Tags)
		}
		if info, _ := sim.Guest(130); info.Name != "web01" || info.Status != "stopped" || len(info.Snapshots) != 0 {
			t.Errorf("restored %+v", info)
		}
	})
	t.Run("over an existing guest", func(t *testing.T) {
		env, sim := createEnv(t)
		if err := sim.SetGuestStatus(101, "stopped"); err != nil {
			t.Fatal(err)
		}
		call, err := prepCreate(t, env, "restore_backup", map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 101, "start": true})
		if err != nil {
			t.Fatal(err)
		}
		out, err := call.Run(context.Background(), noProgress)
		if err != nil {
			t.Fatal(err)
		}
		if _, created := out.(GuestCreated); created {
			t.Fatal("a restore over an existing guest claims to have created it")
		}
		res := out.(RestoreBackupResult)
		if res.NewGuest || !res.OK || res.GuestStatus != "running" || strings.Join(res.SnapshotsLost, ",") != "pre-upgrade,before-php84" {
			t.Errorf("result %+v", res)
		}
		if info, _ := sim.Guest(101); len(info.Snapshots) != 0 || info.SnapshotParent != "" || info.Status != "running" {
			t.Errorf("restored guest %+v", info)
		}
	})
}

// Protection applies to every resource a call touches: the source, the new
// VMID, the node it lands on.
func TestCreateProtection(t *testing.T) {
	env, _ := createEnv(t)
	clone, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02", "new_vmid": 120})
	if err != nil {
		t.Fatal(err)
	}
	restore, err := prepCreate(t, env, "restore_backup", map[string]any{"volid": newestBackup(t, env, 101).VolID, "vmid": 130})
	if err != nil {
		t.Fatal(err)
	}
	download, err := prepCreate(t, env, "download_to_storage", map[string]any{"url": "https://example.org/a.iso", "storage": "local", "content": "iso", "node": "home"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		tool   string
		call   *Call
		policy safety.Policy
		want   safety.Decision
	}{
		{"unprotected", "clone_guest", clone, safety.Policy{ProtectedVMIDs: []int{101}, ProtectedNodes: []string{"pve"}}, safety.Allow},
		{"the source VMID", "clone_guest", clone, safety.Policy{ProtectedVMIDs: []int{9000}}, safety.Protected},
		{"the new VMID", "clone_guest", clone, safety.Policy{ProtectedVMIDs: []int{120}}, safety.Protected},
		{"the node", "clone_guest", clone, safety.Policy{ProtectedNodes: []string{"home"}}, safety.Protected},
		{"a restore's new VMID", "restore_backup", restore, safety.Policy{ProtectedVMIDs: []int{130}}, safety.Protected},
		{"a restore's node", "restore_backup", restore, safety.Policy{ProtectedNodes: []string{"pve"}}, safety.Protected},
		{"a download's node", "download_to_storage", download, safety.Policy{ProtectedNodes: []string{"home"}}, safety.Protected},
	} {
		if v := verdictOf(toolNamed(t, c.tool), c.call, c.policy, safety.Red); v.Decision != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, v.Decision, v.Reason, c.want)
		}
	}
}

// set_guest_notes_tags keeps jarvis-created on a guest that has it, and
// changes nothing but notes and tags.
func TestNotesTagsKeepTheMark(t *testing.T) {
	env, sim := createEnv(t)
	clone, err := prepCreate(t, env, "clone_guest", map[string]any{"vmid": 9000, "name": "web02"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clone.Run(context.Background(), noProgress); err != nil {
		t.Fatal(err)
	}
	before, _ := sim.Settings(107)
	_, id := createdMarks(guestTags(before.Tags))
	if id == "" {
		t.Fatalf("the clone has no id tag: %q", before.Tags)
	}
	// Neither mark can be dropped: "web" alone keeps both.
	call, err := prepCreate(t, env, "set_guest_notes_tags", map[string]any{"vmid": 107, "tags": []string{"web"}, "notes": "front end"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "tags [jarvis-created, " + id + ", template] → [jarvis-created, " + id + ", web] (Jarvis's jarvis-created, " + id + " kept)"; !strings.Contains(call.Effect, want) {
		t.Errorf("plan %q, want it to contain %q", call.Effect, want)
	}
	out, err := call.Run(context.Background(), noProgress)
	if err != nil {
		t.Fatal(err)
	}
	if res := out.(NotesTagsResult); strings.Join(res.TagsAfter, ";") != "jarvis-created;"+id+";web" || !res.NotesChanged {
		t.Errorf("result %+v", res)
	}
	after, _ := sim.Settings(107)
	if after.Tags != "jarvis-created;"+id+";web" || after.Description != "front end" {
		t.Errorf("settings %+v", after)
	}
	after.Tags, after.Description = before.Tags, before.Description
	if after != before {
		t.Errorf("something else changed:\n%+v\n%+v", before, after)
	}
	// Clearing: [] leaves only the mark; "" clears the notes.
	call, err = prepCreate(t, env, "set_guest_notes_tags", map[string]any{"vmid": 107, "tags": []string{}, "notes": ""})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Run(context.Background(), noProgress); err != nil {
		t.Fatal(err)
	}
	if s, _ := sim.Settings(107); s.Tags != "jarvis-created;"+id || s.Description != "" {
		t.Errorf("after clearing: %+v", s)
	}
	// A guest without the mark loses all its tags with [].
	call, err = prepCreate(t, env, "set_guest_notes_tags", map[string]any{"vmid": 201, "tags": []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Run(context.Background(), noProgress); err != nil {
		t.Fatal(err)
	}
	if s, _ := sim.Settings(201); s.Tags != "" {
		t.Errorf("tags left: %q", s.Tags)
	}
}

// A config write sent on a digest that is no longer current is refused by
// Proxmox: what a person saw in the plan is what changes.
func TestNotesTagsDigest(t *testing.T) {
	env, sim := createEnv(t)
	call, err := prepCreate(t, env, "set_guest_notes_tags", map[string]any{"vmid": 101, "notes": "mine"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.TagGuest(101, "prod;web;changed"); err != nil {
		t.Fatal(err)
	}
	_, err = call.Run(context.Background(), noProgress)
	if err == nil || !strings.Contains(err.Error(), "detected modified configuration") {
		t.Fatalf("err = %v", err)
	}
}

func TestLogPercent(t *testing.T) {
	for _, c := range []struct {
		line string
		want float64
		ok   bool
	}{
		{"INFO:  12% (7.7 GiB of 64.0 GiB) in 3s, read: 2.6 GiB/s, write: 280.9 MiB/s", 12, true},
		{"INFO: 100% (64.0 GiB of 64.0 GiB) in 2m 10s, read: 1.0 GiB/s, write: 1.0 GiB/s", 100, true},
		{"INFO: backup is sparse: 38.4 GiB (59%) total zero data", 0, false},
		{"transferred 2.0 GiB of 8.0 GiB (25.00%)", 25, true},
		{"drive-scsi0: transferred 1.2 GiB of 8.0 GiB (15.00%) in 3s", 15, true},
		{"progress 40% (read 27487790694 bytes, duration 1 sec)", 40, true},
		{"    98304K ........ ........ ........ ........ ........ ........ 23% 98.6M 5s", 23, true},
		{"Length: 659554304 (629M) [application/x-iso9660-image]", 0, false},
	} {
		got, ok := logPercent(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("logPercent(%q) = %v, %v; want %v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

// The two tools whose calls are YELLOW or RED are offered from YELLOW.
func TestCreateTiers(t *testing.T) {
	for name, want := range map[string][2]safety.Tier{
		"clone_guest": {safety.Yellow, safety.Yellow}, "create_backup": {safety.Red, safety.Yellow}, "restore_backup": {safety.Red, safety.Yellow},
		"download_to_storage": {safety.Yellow, safety.Yellow}, "set_guest_notes_tags": {safety.Yellow, safety.Yellow},
	} {
		tl := toolNamed(t, name)
		if tl.Tier != want[0] || tl.MinTier != want[1] {
			t.Errorf("%s: tier %s, min tier %s; want %s, %s", name, tl.Tier, tl.MinTier, want[0], want[1])
		}
		if tl.Toolset != map[bool]string{true: "backups", false: "provisioning"}[strings.Contains(name, "backup")] {
			t.Errorf("%s is in toolset %q", name, tl.Toolset)
		}
	}
}

// What doctor predicts is what happens: without a privilege opsCreateAccess
// names, the tool fails with PVE's permission error naming it.
func TestCreateMissingPrivilegeFails(t *testing.T) {
	for _, c := range []struct {
		tool, without, path string
	}{
		{"clone_guest", "VM.Allocate", "/vms/107"},
		{"clone_guest", "VM.Config.Cloudinit", "/vms/107"},
		{"create_backup", "VM.Backup", "/vms/101"},
		{"restore_backup", "VM.Allocate", "/vms/130"},
		{"download_to_storage", "Datastore.AllocateTemplate", "/storage/local"},
		{"set_guest_notes_tags", "VM.Config.Options", "/vms/101"},
	} {
		t.Run(c.tool+" without "+c.without, func(t *testing.T) {
			t.Parallel()
			var held []string
			perms := pve.Permissions{}
			for _, p := range pvesim.AllPrivileges() {
				// VM.Config.Network would stand in for VM.Config.Cloudinit.
				if p != c.without && !(c.without == "VM.Config.Cloudinit" && p == "VM.Config.Network") {
					held = append(held, p)
				}
			}
			for _, path := range []string{"/", "/nodes", "/vms", "/storage"} {
				perms[path] = map[string]pve.Bool{}
				for _, p := range held {
					perms[path][p] = true
				}
			}
			short := MissingPrivileges(c.tool, perms, []string{"pve"})
			if len(short) == 0 || !strings.Contains(short[0].Privilege.Names(), c.without) {
				t.Fatalf("MissingPrivileges(%s) without %s = %+v", c.tool, c.without, short)
			}
			env, _ := fakeEnv(t, 20*time.Millisecond, []pvesim.ACL{{Path: "/", Privileges: held, Propagate: true}}, cloudInitDrive)
			args := privilegeRuns[c.tool]
			if c.tool == "clone_guest" {
				args = cloudInitCloneRun
			}
			err := runTool(t, env, c.tool, args)
			if err == nil || !strings.Contains(err.Error(), "Permission check failed ("+c.path) || !strings.Contains(err.Error(), c.without) {
				t.Errorf("err = %v, want PVE's permission error on %s naming %s", err, c.path, c.without)
			}
		})
	}
}
