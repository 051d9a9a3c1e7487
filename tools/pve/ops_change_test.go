package pve

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// schemaPath gives the recorded path as PVE routes it: a volume id is one
// path segment ("/" in it escaped), though the simulator records it decoded.
func schemaPath(r pvesim.Request) pvesim.Request {
	parts := strings.SplitN(r.Path, "/", 7) // "", nodes, N, storage, S, content, volume…
	if len(parts) == 7 && parts[1] == "nodes" && parts[3] == "storage" && parts[5] == "content" {
		r.Path = strings.Join(parts[:6], "/") + "/" + strings.ReplaceAll(parts[6], "/", "%2F")
	}
	return r
}

// Every request the change-and-remove client methods send, and every answer
// the simulator gives them, keeps to the official API schema.
func TestOpsChangeSchemaConformance(t *testing.T) {
	schema := loadSchema(t)
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := WithFresh(context.Background())
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitOK := func(what, upid string, err error) {
		t.Helper()
		must(what, err)
		_, err = c.WaitTask(ctx, upid, 10*time.Millisecond, nil)
		must(what+" task", err)
	}
	digestOf := func(node, kind string, vmid int) string {
		t.Helper()
		cfg, err := c.GuestConfig(ctx, node, kind, vmid)
		must("GuestConfig", err)
		d, _ := cfg["digest"].(string)
		if d == "" {
			t.Fatalf("no digest in the config of %d", vmid)
		}
		return d
	}
	cores, mem, balloon, off := 6, int64(12288), int64(4096), false
	must("ChangeGuestResources qemu", c.ChangeGuestResources(ctx, "pve", "qemu", 101,
		GuestResources{Cores: &cores, MemoryMiB: &mem, BalloonMiB: &balloon, OnBoot: &off, Digest: digestOf("pve", "qemu", 101)}))
	// The config read after it carries the balloon as PVE does (checked
	// against the schema with every other answer here).
	_ = digestOf("pve", "qemu", 101)
	ctMem := int64(2048)
	must("ChangeGuestResources lxc", c.ChangeGuestResources(ctx, "pve", "lxc", 201,
		GuestResources{Cores: &cores, MemoryMiB: &ctMem, OnBoot: &off, Digest: digestOf("pve", "lxc", 201)}))

	upid, err := c.ResizeGuestDisk(ctx, "pve", "qemu", 101, "scsi0", "80G", digestOf("pve", "qemu", 101))
	waitOK("ResizeGuestDisk qemu", upid, err)
	upid, err = c.ResizeGuestDisk(ctx, "pve", "lxc", 201, "rootfs", "+4G", digestOf("pve", "lxc", 201))
	waitOK("ResizeGuestDisk lxc", upid, err)

	upid, err = c.MigrateGuest(ctx, "agent", "qemu", 105, Migration{Target: "home", Online: true, WithLocalDisks: true})
	waitOK("MigrateGuest qemu online", upid, err)
	upid, err = c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{Target: "home", Online: true, WithLocalDisks: true})
	waitOK("MigrateGuest qemu online through the HA manager", upid, err)
	upid, err = c.MigrateGuest(ctx, "pve", "lxc", 201, Migration{Target: "home", Restart: true, Timeout: 180})
	waitOK("MigrateGuest lxc restart", upid, err)
	upid, err = c.MigrateGuest(ctx, "agent", "qemu", 104, Migration{Target: "pve"})
	waitOK("MigrateGuest qemu offline", upid, err)

	upid, err = c.ConvertToTemplate(ctx, "home", "qemu", 106)
	waitOK("ConvertToTemplate qemu", upid, err)
	upid, err = c.ConvertToTemplate(ctx, "agent1", "lxc", 204)
	if err != nil || upid != "" {
		t.Fatalf("ConvertToTemplate lxc = %q, %v; want PVE's null", upid, err)
	}
	tasks, err := c.RecentGuestTasks(ctx, "agent1", 204, "vztemplate")
	must("RecentGuestTasks", err)
	if len(tasks) != 1 {
		t.Fatalf("vztemplate tasks of 204: %+v", tasks)
	}
	waitOK("vztemplate", tasks[0].UPID, nil)
	_, err = c.RecentGuestTasks(ctx, "agent1", 204, "")
	must("RecentGuestTasks all", err)

	upid, err = c.DestroyGuest(ctx, "home", "qemu", 106, false, false)
	waitOK("DestroyGuest qemu", upid, err)
	upid, err = c.DestroyGuest(ctx, "agent", "lxc", 203, true, true)
	waitOK("DestroyGuest lxc", upid, err)

	backups, err := c.StorageContent(ctx, "pve", "nfs-backup", "backup")
	must("StorageContent", err)
	upid, err = c.DeleteVolume(ctx, "pve", "nfs-backup", backups[0].VolID)
	waitOK("DeleteVolume", upid, err)
	if sim.VolumeExists(backups[0].VolID) {
		t.Errorf("%s is still there", backups[0].VolID)
	}

	covered := map[string]bool{}
	for _, r := range sim.Requests() {
		r = schemaPath(r)
		if r.Status != http.StatusOK {
			t.Errorf("%s %s answered %d: %s", r.Method, r.Path, r.Status, r.Body)
		}
		for _, p := range append(schema.checkRequest(r), schema.checkResponse(r)...) {
			t.Error(p)
		}
		tmpl, _ := schema.template(r.Path)
		covered[r.Method+" "+tmpl] = true
	}
	for _, want := range []string{
		"PUT /nodes/{node}/qemu/{vmid}/config", "PUT /nodes/{node}/lxc/{vmid}/config",
		"PUT /nodes/{node}/qemu/{vmid}/resize", "PUT /nodes/{node}/lxc/{vmid}/resize",
		"POST /nodes/{node}/qemu/{vmid}/migrate", "POST /nodes/{node}/lxc/{vmid}/migrate",
		"POST /nodes/{node}/qemu/{vmid}/template", "POST /nodes/{node}/lxc/{vmid}/template",
		"DELETE /nodes/{node}/qemu/{vmid}", "DELETE /nodes/{node}/lxc/{vmid}",
		"DELETE /nodes/{node}/storage/{storage}/content/{volume}", "GET /nodes/{node}/tasks",
	} {
		if !covered[want] {
			t.Errorf("conformance run never exercised %s", want)
		}
	}
}

// The simulator answers what PVE answers when it refuses, in PVE's envelope
// and words.
func TestOpsChangeSimulatorRefusals(t *testing.T) {
	schema := loadSchema(t)
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ro := newClient(t, roTokenID, roSecret, srv.URL)
	ctx := WithFresh(context.Background())
	apiErr := func(what string, err error, status int, msg string) {
		t.Helper()
		var e *APIError
		if !errors.As(err, &e) || e.Status != status || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err = %v, want %d %q", what, err, status, msg)
		}
	}
	taskErr := func(what, upid string, err error, msg string) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		_, err = c.WaitTask(ctx, upid, 10*time.Millisecond, nil)
		var failed *TaskFailedError
		if !errors.As(err, &failed) || !strings.Contains(failed.ExitStatus, msg) {
			t.Errorf("%s: task ended %v, want %q", what, err, msg)
		}
	}

	upid, err := c.ResizeGuestDisk(ctx, "pve", "qemu", 101, "scsi0", "32G", "")
	taskErr("shrink a VM disk", upid, err, "shrinking disks is not supported")
	upid, err = c.ResizeGuestDisk(ctx, "pve", "qemu", 101, "scsi0", "+1G", strings.Repeat("0", 40))
	taskErr("a stale digest", upid, err, "checksum mismatch (file change by other user?)")
	upid, err = c.ResizeGuestDisk(ctx, "pve", "qemu", 101, "scsi1", "+1G", "")
	taskErr("no such disk", upid, err, "disk 'scsi1' does not exist")
	_, err = c.ResizeGuestDisk(ctx, "pve", "lxc", 201, "rootfs", "4G", "")
	apiErr("shrink a CT disk", err, 500, "unable to shrink disk size")
	_, err = c.ResizeGuestDisk(ctx, "pve", "lxc", 201, "rootfs", "8G", "")
	apiErr("a CT disk of the same size", err, 500, "disk is already at specified size")

	_, err = c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{Target: "pve", Online: true})
	apiErr("migrate to itself", err, 400, "target is local node.")
	_, err = c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{Target: "nosuch", Online: true})
	apiErr("migrate to nowhere", err, 500, "no such cluster node 'nosuch'")
	_, err = c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{Target: "home"})
	apiErr("migrate a running VM offline", err, 500, "can't migrate running VM without --online")
	_, err = c.MigrateGuest(ctx, "pve", "lxc", 201, Migration{Target: "home"})
	apiErr("migrate a running CT", err, 500, "can't migrate running container without --online or --restart")
	// 105 is not under HA: PVE migrates it itself (101 and 102 go through
	// the HA manager, TestHAMigration).
	upid, err = c.MigrateGuest(ctx, "agent", "qemu", 105, Migration{Target: "home", Online: true})
	taskErr("live migration without local disks", upid, err, "can't live migrate attached local disks without with-local-disks option")
	if g, _ := sim.Guest(105); g.Node != "agent" || g.Lock != "" {
		t.Errorf("after an aborted migration the guest is %+v", g)
	}
	upid, err = c.MigrateGuest(ctx, "agent", "qemu", 105, Migration{Target: "home", Online: true, WithLocalDisks: true})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(err)
	if g, _ := sim.Guest(105); g.Lock != "migrate" {
		t.Errorf("a migrating guest is locked %q, want migrate", g.Lock)
	}
	_, err = c.WaitTask(ctx, upid, 10*time.Millisecond, nil)
	must(err)
	lines, err := c.TaskLog(ctx, "agent", upid, 0, 50)
	must(err)
	if len(lines) < 3 || !strings.Contains(lines[0].T, "starting migration of VM 105 to node 'home'") ||
		!strings.HasPrefix(lines[len(lines)-2].T, "migration finished successfully") {
		t.Errorf("migration log %+v", lines)
	}

	_, err = c.ConvertToTemplate(ctx, "home", "lxc", 200)
	apiErr("template of a running CT", err, 500, "you can't convert a CT to template if the CT is running")
	_, err = c.ConvertToTemplate(ctx, "pve", "lxc", 201)
	apiErr("snapshots are checked first", err, 500, "unable to create template, because CT contains snapshots")
	must(sim.SetGuestStatus(102, "stopped"))
	_, err = c.ConvertToTemplate(ctx, "pve", "qemu", 102)
	apiErr("template of a VM with snapshots", err, 500, "unable to create template, because VM contains snapshots")
	_, err = c.ConvertToTemplate(ctx, "home", "qemu", 9000)
	apiErr("template of a template", err, 500, "you can't convert a template to a template")

	_, err = c.DestroyGuest(ctx, "home", "qemu", 100, false, false)
	apiErr("destroy a running VM", err, 500, "VM 100 is running - destroy failed")
	_, err = c.DestroyGuest(ctx, "home", "lxc", 200, false, false)
	apiErr("destroy a running CT", err, 500, "unable to destroy CT 200 - container is running")
	_, err = c.DestroyGuest(ctx, "pve", "qemu", 104, false, false)
	apiErr("destroy on the wrong node", err, 500, "Configuration file 'nodes/pve/qemu-server/104.conf' does not exist")
	must(sim.LockGuest(104, "backup"))
	upid, err = c.DestroyGuest(ctx, "agent", "qemu", 104, false, false)
	taskErr("destroy a locked VM", upid, err, "VM is locked (backup)")
	if _, ok := sim.Guest(104); !ok {
		t.Error("a locked VM was destroyed")
	}

	backups, err := c.StorageContent(ctx, "pve", "nfs-backup", "backup")
	must(err)
	_, err = ro.DeleteVolume(ctx, "pve", "nfs-backup", backups[0].VolID)
	apiErr("the auditor deletes a backup", err, 403, "Permission check failed (/storage/nfs-backup, Datastore.AllocateSpace)")
	upid, err = c.DeleteVolume(ctx, "pve", "nfs-backup", "nfs-backup:backup/vzdump-qemu-101-2000_01_01-00_00_00.vma.zst")
	taskErr("delete a backup that is not there", upid, err, "No such file or directory")
	_, err = c.DeleteVolume(ctx, "pve", "nfs-backup", "local:backup/vzdump-qemu-101-2000_01_01-00_00_00.vma.zst")
	apiErr("a volume of another storage", err, 400, "storage ID mismatch")

	for _, r := range sim.Requests() {
		for _, p := range schema.checkResponse(schemaPath(r)) {
			t.Error(p)
		}
	}
}

// An HA resource's migration answers an "hamigrate" task that ends OK while
// the guest is still where it was: the HA manager moves it afterwards.
func TestHAMigration(t *testing.T) {
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := WithFresh(context.Background())
	upid, err := c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{Target: "home", Online: true, WithLocalDisks: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err := ParseUPID(upid)
	if err != nil || id.Type != "hamigrate" || id.Node != "pve" {
		t.Fatalf("upid %q (%v), want an hamigrate task on pve", upid, err)
	}
	if _, err := c.WaitTask(ctx, upid, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if g, _ := sim.Guest(101); g.Node != "pve" {
		t.Fatalf("when the hamigrate task ended the guest was already %+v", g)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := c.FindGuest(ctx, 101)
		if err == nil && r.Node == "home" && r.Lock == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the HA manager never moved the guest: %+v, %v", r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PVE checks a backup's privileges in the handler: Datastore.AllocateSpace on
// the storage and VM.Backup on the guest it is of.
func TestDeleteVolumePrivileges(t *testing.T) {
	for _, c := range []struct {
		name string
		acl  []pvesim.ACL
		want string // "" for allowed
	}{
		{"space and backup", []pvesim.ACL{{Path: "/", Privileges: []string{"Datastore.AllocateSpace", "VM.Backup", "Datastore.Audit"}, Propagate: true}}, ""},
		{"no VM.Backup on the guest", []pvesim.ACL{{Path: "/", Privileges: []string{"Datastore.AllocateSpace", "Datastore.Audit"}, Propagate: true},
			{Path: "/vms/102", Privileges: []string{"VM.Backup"}, Propagate: true}}, "Permission check failed (/vms/101, VM.Backup)"},
		{"Datastore.Allocate alone is not enough for a guest's backup", []pvesim.ACL{{Path: "/", Privileges: []string{"Datastore.Allocate", "Datastore.Audit"}, Propagate: true}},
			"Permission check failed (/storage/nfs-backup, Datastore.AllocateSpace)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sim := pvesim.New(pvesim.Options{TokenID: testTokenID, TokenSecret: testSecret, TaskDuration: fastTaskDelay, ACL: c.acl})
			srv := startServer(t, sim)
			cl := newClient(t, testTokenID, testSecret, srv)
			volid := ""
			for _, v := range mustContent(t, cl) {
				if int(v.VMID) == 101 {
					volid = v.VolID
				}
			}
			_, err := cl.DeleteVolume(context.Background(), "pve", "nfs-backup", volid)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func startServer(t *testing.T, sim *pvesim.Sim) string {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv.URL
}

func mustContent(t *testing.T, c *Client) []StorageItem {
	t.Helper()
	items, err := c.StorageContent(context.Background(), "pve", "nfs-backup", "backup")
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// The client refuses what PVE would, before sending anything.
func TestOpsChangeClientChecks(t *testing.T) {
	c := newClient(t, testTokenID, testSecret, "http://127.0.0.1:1")
	ctx := context.Background()
	balloon := int64(1)
	for what, err := range map[string]error{
		"no change":             c.ChangeGuestResources(ctx, "pve", "qemu", 101, GuestResources{Digest: "x"}),
		"a container's balloon": c.ChangeGuestResources(ctx, "pve", "lxc", 201, GuestResources{BalloonMiB: &balloon}),
		"restart for a VM": func() error {
			_, err := c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{Target: "home", Restart: true})
			return err
		}(),
		"online for a container": func() error {
			_, err := c.MigrateGuest(ctx, "pve", "lxc", 201, Migration{Target: "home", Online: true})
			return err
		}(),
		"no target":  func() error { _, err := c.MigrateGuest(ctx, "pve", "qemu", 101, Migration{}); return err }(),
		"no size":    func() error { _, err := c.ResizeGuestDisk(ctx, "pve", "qemu", 101, "scsi0", "", ""); return err }(),
		"no volume":  func() error { _, err := c.DeleteVolume(ctx, "pve", "nfs-backup", ""); return err }(),
		"a bad kind": func() error { _, err := c.DestroyGuest(ctx, "pve", "vm", 101, false, false); return err }(),
	} {
		var unreachable *UnreachableError
		if err == nil || errors.As(err, &unreachable) {
			t.Errorf("%s: err = %v, want a refusal before sending", what, err)
		}
	}
}
