package pvesim

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// started posts a request that starts a task and returns its UPID.
func (h *harness) started(method, path string, params url.Values) string {
	h.t.Helper()
	r := h.call(fullAuth, method, path, params)
	var upid string
	if r.status != 200 || json.Unmarshal(r.env.Data, &upid) != nil || !strings.HasPrefix(upid, "UPID:") {
		h.t.Fatalf("%s %s = %d %s", method, path, r.status, r.body)
	}
	return upid
}

// finish lets a task's time pass and returns its exit status and log.
func (h *harness) finish(upid string, d time.Duration) (string, string) {
	h.t.Helper()
	h.clock.Add(d)
	st := h.taskStatus(upid)
	if st["status"] != "stopped" {
		h.t.Fatalf("task %s still %v after %s", upid, st["status"], d)
	}
	node := strings.Split(upid, ":")[1]
	var lines []struct {
		T string `json:"t"`
	}
	r := h.get("/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/log", url.Values{"limit": {"1000"}})
	_ = json.Unmarshal(r.env.Data, &lines)
	var log []string
	for _, l := range lines {
		log = append(log, l.T)
	}
	return st["exitstatus"].(string), strings.Join(log, "\n")
}

// refused checks an error answer: its status and PVE's message.
func (h *harness) refused(r reply, status int, want string) {
	h.t.Helper()
	msg := r.env.Message
	for _, e := range r.env.Errors {
		msg += " " + e
	}
	if r.status != status || !strings.Contains(msg, want) {
		h.t.Errorf("answer %d %s, want %d %q", r.status, r.body, status, want)
	}
}

func TestNextID(t *testing.T) {
	h := newHarness(t)
	var id int
	if r := h.get("/cluster/nextid", nil); json.Unmarshal(r.env.Data, &id) != nil || id != 107 {
		t.Errorf("nextid = %s", r.body)
	}
	h.refused(h.get("/cluster/nextid", url.Values{"vmid": {"101"}}), 400, "VM 101 already exists")
	if r := h.get("/cluster/nextid", url.Values{"vmid": {"150"}}); string(r.env.Data) != "150" {
		t.Errorf("nextid 150 = %s", r.body)
	}
}

func TestClone(t *testing.T) {
	h := newHarness(t)
	upid := h.started("POST", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"120"}, "name": {"web02"}})
	// The new config exists, locked, while the disks are copied.
	if g, ok := h.sim.Guest(120); !ok || g.Lock != "clone" || g.Status != "stopped" {
		t.Fatalf("clone while copying: %+v %v", g, ok)
	}
	var id int
	if r := h.get("/cluster/nextid", nil); json.Unmarshal(r.env.Data, &id) != nil || id != 107 {
		t.Errorf("nextid = %s", r.body)
	}
	h.refused(h.get("/cluster/nextid", url.Values{"vmid": {"120"}}), 400, "VM 120 already exists")
	exit, log := h.finish(upid, 2*time.Second)
	if exit != "OK" || !strings.Contains(log, "create linked clone of drive scsi0 (local-lvm:base-9000-disk-0)") {
		t.Errorf("exit %q, log:\n%s", exit, log)
	}
	g, _ := h.sim.Guest(120)
	set, _ := h.sim.Settings(120)
	if g.Lock != "" || g.Name != "web02" || g.Node != "home" || g.Template || set.Tags != "template" || set.DiskBytes != 8<<30 {
		t.Errorf("clone %+v %+v", g, set)
	}
	// A container, full, onto a named storage.
	upid = h.started("POST", "/nodes/agent/lxc/203/clone", url.Values{"newid": {"121"}, "hostname": {"wiki2"}, "full": {"1"}, "storage": {"local-lvm"}})
	if src, _ := h.sim.Guest(203); src.Lock != "disk" {
		t.Errorf("source container lock %q while it is cloned, want disk", src.Lock)
	}
	if exit, log := h.finish(upid, 2*time.Second); exit != "OK" || !strings.Contains(log, "create full clone of mount point rootfs") {
		t.Errorf("exit %q, log:\n%s", exit, log)
	}
	if src, _ := h.sim.Guest(203); src.Lock != "" {
		t.Errorf("source still locked (%s)", src.Lock)
	}

	for _, c := range []struct {
		name   string
		path   string
		params url.Values
		status int
		want   string
	}{
		{"taken VMID", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"101"}}, 500, "unable to create VM 101: config file already exists"},
		{"taken VMID, container", "/nodes/agent/lxc/203/clone", url.Values{"newid": {"101"}, "full": {"1"}}, 500, "VM 101 already exists on node 'pve'"},
		{"linked clone of a guest", "/nodes/home/qemu/106/clone", url.Values{"newid": {"130"}, "full": {"0"}}, 500, "Linked clone feature is not supported for 'local-lvm:vm-106-disk-0' (scsi0)"},
		{"storage for a linked clone", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}, "storage": {"local-lvm"}}, 500, "parameter 'storage' not allowed for linked clones"},
		{"storage without images", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}, "full": {"1"}, "storage": {"nfs-backup"}}, 400, "storage 'nfs-backup' does not support vm images"},
		{"another node from local storage", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}, "full": {"1"}, "target": {"pve"}}, 500, "can't clone VM to node 'pve' (VM uses local storage)"},
		{"onto local storage of another node", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}, "full": {"1"}, "target": {"pve"}, "storage": {"local-lvm"}}, 500, "can't clone to non-shared storage 'local-lvm'"},
		{"unknown node", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}, "target": {"nas"}}, 500, "no such cluster node 'nas'"},
		{"name", "/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}, "name": {"web_02"}}, 400, "value does not look like a valid DNS name"},
		{"running container, full", "/nodes/pve/lxc/201/clone", url.Values{"newid": {"130"}, "full": {"1"}}, 500, "Full clone of a running container is only possible from a snapshot"},
		{"missing newid", "/nodes/home/qemu/9000/clone", nil, 400, "property is missing"},
	} {
		t.Run(c.name, func(t *testing.T) { h.refused(h.post(c.path, c.params), c.status, c.want) })
	}
	// clone_vm's check is an "and": VM.Clone on the source, VM.Allocate on the new VMID.
	acl := newACLHarness(t, []ACL{{Path: "/", Privileges: []string{"VM.Audit", "VM.Clone", "Datastore.AllocateSpace"}, Propagate: true},
		{Path: "/vms/131", Privileges: []string{"VM.Allocate"}}})
	acl.refused(acl.post("/nodes/home/qemu/9000/clone", url.Values{"newid": {"130"}}), 403, "Permission check failed (/vms/130, VM.Allocate)")
	if r := acl.post("/nodes/home/qemu/9000/clone", url.Values{"newid": {"131"}}); r.status != 200 {
		t.Errorf("clone with VM.Allocate on the new VMID = %d %s", r.status, r.body)
	}
}

func newACLHarness(t *testing.T, acl []ACL) *harness {
	clock := &fakeClock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	sim := New(Options{ACL: acl, TaskDuration: 2 * time.Second, Now: clock.Now})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{t: t, sim: sim, srv: srv, clock: clock}
}

func TestVzdump(t *testing.T) {
	h := newHarness(t)
	upid := h.started("POST", "/nodes/pve/vzdump", url.Values{"vmid": {"101"}, "storage": {"nfs-backup"}, "mode": {"snapshot"},
		"compress": {"zstd"}, "remove": {"0"}, "notes-template": {`{{guestname}} on {{node}}\nby hand`}})
	if g, _ := h.sim.Guest(101); g.Lock != "backup" {
		t.Errorf("lock %q during the backup", g.Lock)
	}
	exit, log := h.finish(upid, 4*time.Second)
	file := "vzdump-qemu-101-2026_11_26-09_00_00.vma.zst"
	for _, want := range []string{
		"INFO: starting new backup job: vzdump 101 --storage nfs-backup --mode snapshot --compress zstd --remove 0 --node pve",
		"INFO: Starting Backup of VM 101 (qemu)", "INFO: VM Name: web01", "INFO: include disk 'scsi0' 'local-lvm:vm-101-disk-0' 64G",
		"INFO: creating vzdump archive '/mnt/pve/nfs-backup/dump/" + file + "'",
		"INFO:  12% (7.7 GiB of 64.0 GiB) in 1s", "INFO: 100% (64.0 GiB of 64.0 GiB) in 4s",
		"INFO: adding notes to backup", "INFO: Finished Backup of VM 101 (00:00:04)", "INFO: Backup job finished successfully", "TASK OK",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if exit != "OK" {
		t.Errorf("exit %q", exit)
	}
	var items []map[string]any
	r := h.get("/nodes/home/storage/nfs-backup/content", url.Values{"vmid": {"101"}})
	_ = json.Unmarshal(r.env.Data, &items)
	found := false
	for _, it := range items {
		if it["volid"] == "nfs-backup:backup/"+file {
			found = it["notes"] == "web01 on pve\nby hand" && it["subtype"] == "qemu"
		}
	}
	if !found {
		t.Errorf("the new backup is not on nfs-backup as expected: %s", r.body)
	}
	if g, _ := h.sim.Guest(101); g.Lock != "" {
		t.Errorf("lock %q after the backup", g.Lock)
	}

	// Stop mode stops a running guest for the backup, then starts it again.
	upid = h.started("POST", "/nodes/pve/vzdump", url.Values{"vmid": {"201"}, "storage": {"local"}, "mode": {"stop"}})
	if g, _ := h.sim.Guest(201); g.Status != "stopped" {
		t.Errorf("container %s during a stop-mode backup", g.Status)
	}
	if exit, log := h.finish(upid, 4*time.Second); exit != "OK" || !strings.Contains(log, "INFO: stopping virtual guest") || !strings.Contains(log, "INFO: restarting vm") {
		t.Errorf("exit %q, log:\n%s", exit, log)
	}
	if g, _ := h.sim.Guest(201); g.Status != "running" {
		t.Errorf("container %s after a stop-mode backup", g.Status)
	}
	if got := h.sim.backupVolumes("local"); len(got) != 1 || got[0] != "local:backup/vzdump-lxc-201-2026_11_26-09_00_04.tar" {
		t.Errorf("local's backups: %v", got)
	}

	// A locked guest fails the job; a guest elsewhere is skipped with "OK".
	if err := h.sim.LockGuest(102, "snapshot"); err != nil {
		t.Fatal(err)
	}
	upid = h.started("POST", "/nodes/pve/vzdump", url.Values{"vmid": {"102"}, "storage": {"nfs-backup"}})
	if exit, log := h.finish(upid, 4*time.Second); exit != "job errors" || !strings.Contains(log, "ERROR: Backup of VM 102 failed - VM is locked (snapshot)") {
		t.Errorf("exit %q, log:\n%s", exit, log)
	}
	if r := h.post("/nodes/home/vzdump", url.Values{"vmid": {"101"}, "storage": {"nfs-backup"}}); r.status != 200 || string(r.env.Data) != `"OK"` {
		t.Errorf("vzdump of a guest on another node = %d %s, want OK", r.status, r.body)
	}
	h.refused(h.post("/nodes/pve/vzdump", url.Values{"vmid": {"101"}, "storage": {"local-lvm"}}), 500, "storage 'local-lvm' does not support backups")

	// VM.Backup is checked by the worker, as vzdump does.
	acl := newACLHarness(t, []ACL{{Path: "/", Privileges: []string{"VM.Audit", "Datastore.AllocateSpace"}, Propagate: true}})
	upid = acl.started("POST", "/nodes/pve/vzdump", url.Values{"vmid": {"101"}, "storage": {"nfs-backup"}})
	if exit, _ := acl.finish(upid, 4*time.Second); exit != "Permission check failed (/vms/101, VM.Backup)" {
		t.Errorf("exit %q", exit)
	}
}

// A running vzdump prints its percentages as it goes, not only at its end.
func TestVzdumpProgressWhileRunning(t *testing.T) {
	sim := New(Options{TaskDuration: time.Second})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	h := &harness{t: t, sim: sim, srv: srv}
	upid := h.started("POST", "/nodes/pve/vzdump", url.Values{"vmid": {"101"}, "storage": {"nfs-backup"}})
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		st := h.taskStatus(upid)
		r := h.get("/nodes/pve/tasks/"+url.PathEscape(upid)+"/log", nil)
		if st["status"] == "running" && strings.Contains(string(r.env.Data), "% (") {
			return
		}
		if st["status"] != "running" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("no percentage in the log while the backup ran")
}

func TestRestore(t *testing.T) {
	h := newHarness(t)
	// A backup made here brings back the guest as it was then.
	upid := h.started("POST", "/nodes/pve/vzdump", url.Values{"vmid": {"101"}, "storage": {"nfs-backup"}})
	h.finish(upid, 4*time.Second)
	volid := "nfs-backup:backup/vzdump-qemu-101-2026_11_26-09_00_00.vma"
	if r := h.call(fullAuth, "PUT", "/nodes/pve/qemu/101/config", url.Values{"cores": {"8"}, "tags": {"changed"}}); r.status != 200 {
		t.Fatalf("config = %d %s", r.status, r.body)
	}

	upid = h.started("POST", "/nodes/pve/qemu", url.Values{"vmid": {"130"}, "archive": {volid}, "unique": {"1"}})
	if g, ok := h.sim.Guest(130); !ok || g.Lock != "create" {
		t.Fatalf("new guest while restoring: %+v", g)
	}
	exit, log := h.finish(upid, 4*time.Second)
	if exit != "OK" || !strings.Contains(log, "progress 100% (read") || !strings.Contains(log, "new volume ID is 'local-lvm:vm-130-disk-0'") {
		t.Errorf("exit %q, log:\n%s", exit, log)
	}
	set, _ := h.sim.Settings(130)
	if g, _ := h.sim.Guest(130); g.Name != "web01" || g.Lock != "" || g.Status != "stopped" || set.Cores != 4 || set.Tags != "prod;web" {
		t.Errorf("restored guest %+v %+v", g, set)
	}

	// Over an existing guest: refused while it runs, its snapshots gone after.
	h.refused(h.post("/nodes/pve/qemu", url.Values{"vmid": {"101"}, "archive": {volid}}), 500, "unable to restore VM 101 - VM 101 already exists on node 'pve'")
	upid = h.started("POST", "/nodes/pve/qemu", url.Values{"vmid": {"101"}, "archive": {volid}, "force": {"1"}})
	if exit, _ := h.finish(upid, 4*time.Second); exit != "unable to restore VM 101 - vm is running" {
		t.Errorf("restore over a running VM: %q", exit)
	}
	if err := h.sim.SetGuestStatus(101, "stopped"); err != nil {
		t.Fatal(err)
	}
	upid = h.started("POST", "/nodes/pve/qemu", url.Values{"vmid": {"101"}, "archive": {volid}, "force": {"1"}, "start": {"1"}})
	if exit, _ := h.finish(upid, 4*time.Second); exit != "OK" {
		t.Errorf("restore over a stopped VM: %q", exit)
	}
	g, _ := h.sim.Guest(101)
	set, _ = h.sim.Settings(101)
	if len(g.Snapshots) != 0 || g.SnapshotParent != "" || g.Status != "running" || set.Cores != 4 || set.Tags != "prod;web" {
		t.Errorf("restored over: %+v %+v", g, set)
	}

	// Containers.
	h.refused(h.post("/nodes/pve/lxc", url.Values{"vmid": {"201"}, "ostemplate": {backupOfGuest201(h)}, "restore": {"1"}, "force": {"1"}}),
		500, "can't overwrite running container")
	h.refused(h.post("/nodes/pve/lxc", url.Values{"vmid": {"231"}, "ostemplate": {"local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"}}),
		500, "only restores are")
	h.refused(h.post("/nodes/pve/lxc", url.Values{"vmid": {"231"}, "ostemplate": {volid}, "restore": {"1"}}), 500, "is not a container backup")
	h.refused(h.post("/nodes/pve/qemu", url.Values{"vmid": {"131"}, "archive": {volid}, "storage": {"local"}}), 400, "storage 'local' does not support vm images")

	// VM.Backup is enough to restore over a guest that exists; a new one needs VM.Allocate.
	acl := newACLHarness(t, []ACL{{Path: "/", Privileges: []string{"VM.Audit", "VM.Backup", "Datastore.AllocateSpace"}, Propagate: true}})
	var seeded string
	for _, v := range acl.sim.backupVolumes("nfs-backup") {
		if strings.Contains(v, "vzdump-qemu-100-") {
			seeded = v
		}
	}
	acl.refused(acl.post("/nodes/home/qemu", url.Values{"vmid": {"140"}, "archive": {seeded}}), 403, "Permission check failed (/vms/140, VM.Allocate)")
	if err := acl.sim.SetGuestStatus(100, "stopped"); err != nil {
		t.Fatal(err)
	}
	if r := acl.post("/nodes/home/qemu", url.Values{"vmid": {"100"}, "archive": {seeded}, "force": {"1"}}); r.status != 200 {
		t.Errorf("restore over with VM.Backup = %d %s", r.status, r.body)
	}
}

func backupOfGuest201(h *harness) string {
	for _, v := range h.sim.backupVolumes("nfs-backup") {
		if strings.Contains(v, "vzdump-lxc-201-") {
			return v
		}
	}
	h.t.Fatal("no backup of 201")
	return ""
}

func TestDownloadURL(t *testing.T) {
	h := newHarness(t)
	params := url.Values{"url": {"https://example.org/isos/alpine-3.22.iso"}, "content": {"iso"}, "filename": {"alpine-3.22.iso"}, "verify-certificates": {"1"}}
	upid := h.started("POST", "/nodes/home/storage/local/download-url", params)
	if !strings.Contains(upid, ":download:alpine-3.22.iso:") {
		t.Errorf("upid %s", upid)
	}
	exit, log := h.finish(upid, 4*time.Second)
	if exit != "OK" || !strings.Contains(log, "downloading https://example.org/isos/alpine-3.22.iso to /var/lib/vz/template/iso/alpine-3.22.iso") ||
		!strings.Contains(log, "100%") {
		t.Errorf("exit %q, log:\n%s", exit, log)
	}
	var items []map[string]any
	_ = json.Unmarshal(h.get("/nodes/home/storage/local/content", url.Values{"content": {"iso"}}).env.Data, &items)
	size := 0.0
	for _, it := range items {
		if it["volid"] == "local:iso/alpine-3.22.iso" {
			size = it["size"].(float64)
		}
	}
	if size < 100<<20 {
		t.Errorf("downloaded iso not listed on home, or too small: %v", items)
	}
	_ = json.Unmarshal(h.get("/nodes/pve/storage/local/content", url.Values{"content": {"iso"}}).env.Data, &items)
	for _, it := range items {
		if it["volid"] == "local:iso/alpine-3.22.iso" {
			t.Error("a node-local download shows on another node")
		}
	}
	// Again: PVE refuses to override the file.
	upid = h.started("POST", "/nodes/home/storage/local/download-url", params)
	if exit, _ := h.finish(upid, 4*time.Second); exit != "refusing to override existing file '/var/lib/vz/template/iso/alpine-3.22.iso'" {
		t.Errorf("second download: %q", exit)
	}
	// A checksum that does not match.
	bad := url.Values{"url": {"https://example.org/b.iso"}, "content": {"iso"}, "filename": {"b.iso"}, "checksum": {strings.Repeat("0", 64)}, "checksum-algorithm": {"sha256"}}
	upid = h.started("POST", "/nodes/home/storage/local/download-url", bad)
	if exit, _ := h.finish(upid, 4*time.Second); !strings.HasPrefix(exit, "checksum mismatch: got '") {
		t.Errorf("mismatching checksum: %q", exit)
	}
	for _, c := range []struct {
		name    string
		storage string
		params  url.Values
		status  int
		want    string
	}{
		{"http is allowed by PVE, the pattern is https?://", "local", url.Values{"url": {"ftp://x/a.iso"}, "content": {"iso"}, "filename": {"a.iso"}}, 400, "value does not match the regex pattern"},
		{"content", "nfs-backup", url.Values{"url": {"https://x/a.iso"}, "content": {"iso"}, "filename": {"a.iso"}}, 500, "storage 'nfs-backup' is not configured for content-type 'iso'"},
		{"block storage", "local-lvm", url.Values{"url": {"https://x/a.iso"}, "content": {"iso"}, "filename": {"a.iso"}}, 500, "can't upload to storage type 'lvmthin', not a file based storage!"},
		{"extension", "local", url.Values{"url": {"https://x/a.iso"}, "content": {"vztmpl"}, "filename": {"a.iso"}}, 400, "wrong file extension"},
		{"checksum alone", "local", url.Values{"url": {"https://x/a.iso"}, "content": {"iso"}, "filename": {"a.iso"}, "checksum": {"ab"}}, 400, "go together"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.refused(h.post("/nodes/home/storage/"+c.storage+"/download-url", c.params), c.status, c.want)
		})
	}
	// The "or" of download-url: Sys.AccessNetwork on the node, or Sys.Audit and Sys.Modify on /.
	for _, c := range []struct {
		privs []string
		ok    bool
	}{
		{[]string{"Datastore.AllocateTemplate"}, false},
		{[]string{"Datastore.AllocateTemplate", "Sys.Modify"}, false},
		{[]string{"Datastore.AllocateTemplate", "Sys.Modify", "Sys.Audit"}, true},
		{[]string{"Datastore.AllocateTemplate", "Sys.AccessNetwork"}, true},
		{[]string{"Sys.AccessNetwork"}, false},
	} {
		acl := newACLHarness(t, []ACL{{Path: "/", Privileges: c.privs, Propagate: true}})
		if r := acl.post("/nodes/home/storage/local/download-url", params); (r.status == 200) != c.ok {
			t.Errorf("%v: %d %s", c.privs, r.status, r.body)
		}
	}
}

func TestConfigWrite(t *testing.T) {
	h := newHarness(t)
	put := func(path string, params url.Values) reply { return h.call(fullAuth, "PUT", path, params) }
	if r := put("/nodes/pve/qemu/101/config", url.Values{"tags": {"web;Prod,prod a"}, "description": {"front end"}, "cores": {"6"},
		"memory": {"12288"}, "balloon": {"4096"}, "onboot": {"0"}, "sshkeys": {"ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIKZsv5oPG2Xv3cYqT0j1kqHqvI5z7uVbqjM0t5cX8G3x%20me"},
		"ipconfig0": {"ip=10.0.1.5/24,gw=10.0.1.1"}, "ciuser": {"debian"}}); r.status != 200 || string(r.env.Data) != "null" {
		t.Fatalf("PUT = %d %s", r.status, r.body)
	}
	set, _ := h.sim.Settings(101)
	if set.Tags != "a;Prod;web" || set.Description != "front end" || set.Cores != 6 || set.MemoryBytes != 12288<<20 || set.BalloonBytes != 4096<<20 ||
		set.OnBoot || set.CIUser != "debian" || set.IPConfig0 != "ip=10.0.1.5/24,gw=10.0.1.1" {
		t.Errorf("settings %+v", set)
	}
	if r := put("/nodes/pve/qemu/101/config", url.Values{"delete": {"tags,description,balloon"}}); r.status != 200 {
		t.Fatalf("delete = %d %s", r.status, r.body)
	}
	if set, _ := h.sim.Settings(101); set.Tags != "" || set.Description != "" || set.BalloonBytes != 0 {
		t.Errorf("after delete %+v", set)
	}
	var cfg map[string]any
	_ = json.Unmarshal(h.get("/nodes/pve/qemu/102/config", nil).env.Data, &cfg)
	if r := put("/nodes/pve/qemu/102/config", url.Values{"description": {"db"}, "digest": {cfg["digest"].(string)}}); r.status != 200 {
		t.Errorf("PUT with the current digest = %d %s", r.status, r.body)
	}
	if err := h.sim.LockGuest(201, "backup"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		params     url.Values
		status     int
		want       string
	}{
		{"stale digest", "/nodes/pve/qemu/102/config", url.Values{"description": {"x"}, "digest": {cfg["digest"].(string)}}, 500, "detected modified configuration - file changed by other user? Try again."},
		{"locked", "/nodes/pve/lxc/201/config", url.Values{"description": {"x"}}, 500, "CT is locked (backup)"},
		{"balloon above memory", "/nodes/pve/qemu/102/config", url.Values{"memory": {"2048"}, "balloon": {"4096"}}, 500, "balloon value too large (must be smaller than assigned memory)"},
		{"set and delete", "/nodes/pve/qemu/102/config", url.Values{"tags": {"a"}, "delete": {"tags"}}, 400, "at the same time"},
		{"bad tag", "/nodes/pve/qemu/102/config", url.Values{"tags": {"a/b"}}, 400, "invalid characters in tag"},
		{"bad key", "/nodes/pve/qemu/102/config", url.Values{"sshkeys": {"not%20a%20key"}}, 500, "SSH public key validation error"},
		{"bad ipconfig", "/nodes/pve/qemu/102/config", url.Values{"ipconfig0": {"ip=dhcp,gw=10.0.0.1"}}, 400, "gateway specified without specifying an IP address"},
		{"memory too small", "/nodes/pve/qemu/102/config", url.Values{"memory": {"8"}}, 400, "does not match format '[current=]<integer>' with a minimum of 16"},
		{"cloud-init on a container", "/nodes/pve/lxc/201/config", url.Values{"ciuser": {"x"}}, 400, "property is not defined in schema"},
		{"POST on a container", "/nodes/pve/lxc/201/config", nil, 501, "not implemented"},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := "PUT"
			if c.name == "POST on a container" {
				method = "POST"
			}
			h.refused(h.call(fullAuth, method, c.path, c.params), c.status, c.want)
		})
	}
	// POST writes in a task: the change shows when it ends, its errors in its exit status.
	upid := h.started("POST", "/nodes/pve/qemu/102/config", url.Values{"cores": {"2"}})
	if set, _ := h.sim.Settings(102); set.Cores != 4 {
		t.Errorf("cores %d before the task ended", set.Cores)
	}
	if exit, _ := h.finish(upid, time.Second); exit != "OK" {
		t.Errorf("exit %q", exit)
	}
	if set, _ := h.sim.Settings(102); set.Cores != 2 {
		t.Errorf("cores %d after the task", set.Cores)
	}
	if err := h.sim.LockGuest(102, "migrate"); err != nil {
		t.Fatal(err)
	}
	upid = h.started("POST", "/nodes/pve/qemu/102/config", url.Values{"cores": {"3"}})
	if exit, _ := h.finish(upid, time.Second); exit != "VM is locked (migrate)" {
		t.Errorf("exit %q", exit)
	}

	// A privilege per option.
	acl := newACLHarness(t, []ACL{{Path: "/", Privileges: []string{"VM.Audit", "VM.Config.CPU"}, Propagate: true}})
	if r := acl.call(fullAuth, "PUT", "/nodes/pve/qemu/101/config", url.Values{"cores": {"2"}}); r.status != 200 {
		t.Errorf("cores with VM.Config.CPU = %d %s", r.status, r.body)
	}
	acl.refused(acl.call(fullAuth, "PUT", "/nodes/pve/qemu/101/config", url.Values{"tags": {"x"}}), 403, "Permission check failed (/vms/101, VM.Config.Options)")
	acl.refused(acl.call(fullAuth, "PUT", "/nodes/pve/qemu/101/config", url.Values{"ciuser": {"x"}}), 403, "Permission check failed (/vms/101, VM.Config.Cloudinit|VM.Config.Network)")
	acl.refused(acl.call(fullAuth, "PUT", "/nodes/pve/qemu/101/config", url.Values{"delete": {"balloon"}}), 403, "Permission check failed (/vms/101, VM.Config.Memory)")
	none := newACLHarness(t, []ACL{{Path: "/", Privileges: []string{"VM.Audit"}, Propagate: true}})
	none.refused(none.call(fullAuth, "PUT", "/nodes/pve/qemu/101/config", url.Values{"cores": {"2"}}), 403, "Permission check failed")
}
