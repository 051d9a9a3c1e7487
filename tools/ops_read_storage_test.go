package tools

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

func TestListStorageContent(t *testing.T) {
	env, sim := readEnv(t, nil, nil)
	for _, c := range []struct {
		name  string
		args  map[string]any
		node  string
		note  string // words of the note; "" for none
		total int
		first string // volid of the newest
		each  func(StorageItemOut) bool
	}{
		{"node-local storage on the first node", map[string]any{"storage": "local"}, "agent", "local to each of agent, agent1, home, pve", 2,
			"local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst", nil},
		{"one node's own", map[string]any{"storage": "local", "node": "pve", "content": "iso"}, "pve", "", 1,
			"local:iso/debian-13.1.0-amd64-netinst.iso", func(i StorageItemOut) bool {
				return i.Content == "iso" && i.Format == "iso" && i.SizeBytes == 754974720 && i.Size == "720.0 MiB" && i.Created != ""
			}},
		{"shared storage, one guest", map[string]any{"storage": "nfs-backup", "vmid": 101}, "agent", "", 3, "", func(i StorageItemOut) bool {
			return i.VMID == 101 && i.Content == "backup" && i.Notes == "web01"
		}},
		{"name filter ignores case", map[string]any{"storage": "nfs-backup", "name_contains": "VZDUMP-LXC-20"}, "agent", "", 15, "", func(i StorageItemOut) bool {
			return strings.Contains(i.VolID, "vzdump-lxc-20")
		}},
		{"guest disks", map[string]any{"storage": "local-lvm", "node": "pve", "content": "images"}, "pve", "", 2, "", func(i StorageItemOut) bool {
			return i.Content == "images" && (i.VMID == 101 || i.VMID == 102)
		}},
		{"nothing matches", map[string]any{"storage": "local", "node": "home", "name_contains": "windows"}, "home", "", 0, "", nil},
	} {
		got, js := readInto[StorageContentOut](t, env, "list_storage_content", c.args)
		if got.Node != c.node || got.TotalItems != c.total || got.Shown != len(got.Items) || got.Shown != c.total ||
			(c.note == "") != (got.Note == "") || !strings.Contains(got.Note, c.note) {
			t.Errorf("%s: %s", c.name, js)
			continue
		}
		if c.first != "" && got.Items[0].VolID != c.first {
			t.Errorf("%s: newest is %s, want %s", c.name, got.Items[0].VolID, c.first)
		}
		for i, it := range got.Items {
			if c.each != nil && !c.each(it) {
				t.Errorf("%s: item %+v", c.name, it)
			}
			if i > 0 && it.Created > got.Items[i-1].Created {
				t.Errorf("%s: %s is newer than the one before it", c.name, it.VolID)
			}
		}
	}

	for _, c := range []struct {
		args  map[string]any
		words []string
	}{
		{map[string]any{"storage": "nosuch"}, []string{`no storage "nosuch"`, "local, local-lvm, nfs-backup"}},
		{map[string]any{"storage": "local", "node": "nosuch"}, []string{`no node "nosuch"`}},
		{map[string]any{"storage": "local", "content": "movies"}, []string{"content"}},
		{map[string]any{"storage": "-bad"}, []string{"storage"}},
	} {
		_, err := runRead(t, env, "list_storage_content", c.args)
		errorSays(t, fmt.Sprint(c.args), err, c.words...)
	}
	sim.FailNext("/nodes/home/storage/local/content", 500, "storage 'local' is not online")
	_, err := runRead(t, env, "list_storage_content", map[string]any{"storage": "local", "node": "home"})
	errorSays(t, "storage offline", err, "500 storage 'local' is not online")
	sim.SetNodeOffline("agent", true)
	got, _ := readInto[StorageContentOut](t, env, "list_storage_content", map[string]any{"storage": "nfs-backup"})
	if got.Node != "agent1" {
		t.Errorf("with agent down, shared storage listed on %s, want the next node that has it, agent1", got.Node)
	}
}

func TestStorageContentCapAndOrder(t *testing.T) {
	var items []pve.StorageItem
	for i := range 250 {
		items = append(items, pve.StorageItem{VolID: fmt.Sprintf("nfs:backup/vzdump-qemu-%d.vma.zst", 100+i), Content: "backup",
			CTime: pve.Int(1_700_000_000 + i*3600), VMID: pve.Int(100 + i%3), Size: 1 << 30})
	}
	items = append(items, pve.StorageItem{VolID: "nfs:iso/undated.iso", Content: "iso"})
	out := storageContent(items, StorageContentInput{Storage: "nfs"})
	if out.TotalItems != 251 || out.Shown != maxStorageItems || len(out.Items) != maxStorageItems ||
		out.Items[0].VolID != "nfs:backup/vzdump-qemu-349.vma.zst" || out.Items[0].Size != "1.0 GiB" {
		t.Errorf("capped list: total %d, shown %d, first %+v", out.TotalItems, out.Shown, out.Items[0])
	}
	out = storageContent(items, StorageContentInput{Storage: "nfs", VMID: 101})
	if out.TotalItems != 83 || out.Items[len(out.Items)-1].VolID != "nfs:backup/vzdump-qemu-101.vma.zst" {
		t.Errorf("vmid 101: total %d, oldest %s", out.TotalItems, out.Items[len(out.Items)-1].VolID)
	}
	out = storageContent(items, StorageContentInput{Storage: "nfs", NameContains: "ISO/"})
	if out.TotalItems != 1 || out.Items[0].Created != "" {
		t.Errorf("undated ISO: %+v", out)
	}
}
