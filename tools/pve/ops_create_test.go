package pve

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const sshTestKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKZsv5oPG2Xv3cYqT0j1kqHqvI5z7uVbqjM0t5cX8G3x me@laptop"

// Every request the creating calls make, and every answer the simulator
// gives them, is what the official schema describes; the config write is
// exercised with the parameters both its users send.
func TestOpsCreateSchemaConformance(t *testing.T) {
	schema := loadSchema(t)
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := context.Background()
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
	newest := func(vmid int) string {
		t.Helper()
		items, err := c.StorageContent(ctx, "pve", "nfs-backup", "backup")
		must("StorageContent", err)
		best := StorageItem{}
		for _, it := range items {
			if int(it.VMID) == vmid && it.CTime >= best.CTime {
				best = it
			}
		}
		return best.VolID
	}

	id, err := c.NextID(ctx, 0)
	must("NextID", err)
	if id != 107 {
		t.Errorf("NextID = %d, want 107 (100-106 are taken)", id)
	}
	if id, err = c.NextID(ctx, 150); err != nil || id != 150 {
		t.Errorf("NextID(150) = %d, %v", id, err)
	}
	upid, err := c.CloneGuest(ctx, "home", "qemu", 9000, CloneOptions{NewID: 107, Name: "web02"})
	waitOK("linked clone", upid, err)
	upid, err = c.CloneGuest(ctx, "home", "qemu", 106, CloneOptions{NewID: 108, Name: "test2", Full: true, Storage: "local-lvm", Target: "home"})
	waitOK("full clone", upid, err)
	upid, err = c.CloneGuest(ctx, "agent", "lxc", 203, CloneOptions{NewID: 209, Name: "wiki2", Full: true})
	waitOK("container clone", upid, err)

	cfg, err := c.GuestConfig(ctx, "home", "qemu", 107)
	must("GuestConfig", err)
	must("SetGuestMeta qemu", c.SetGuestMeta(ctx, "home", "qemu", 107, url.Values{"tags": {"jarvis-created;template"},
		"ciuser": {"debian"}, "sshkeys": {EncodeSSHKeys(sshTestKey)}, "ipconfig0": {"ip=10.0.1.50/24,gw=10.0.1.1"}}, nil, cfg["digest"].(string)))
	must("SetGuestMeta lxc", c.SetGuestMeta(ctx, "agent", "lxc", 209, url.Values{"tags": {"archive;jarvis-created"}, "description": {"a copy\nof the wiki"}}, nil, ""))
	must("SetGuestMeta delete", c.SetGuestMeta(ctx, "agent", "lxc", 209, nil, []string{"description"}, ""))

	upid, err = c.Vzdump(ctx, "pve", VzdumpOptions{VMID: 101, Storage: "nfs-backup", Mode: "snapshot", Compress: "zstd", Notes: "{{guestname}}\nmanual"})
	waitOK("vzdump qemu", upid, err)
	upid, err = c.Vzdump(ctx, "pve", VzdumpOptions{VMID: 201, Storage: "local", Mode: "suspend", Compress: "gzip"})
	waitOK("vzdump lxc", upid, err)
	_, err = c.Vzdump(ctx, "home", VzdumpOptions{VMID: 101, Storage: "nfs-backup", Mode: "stop", Compress: "0"})
	var skipped *VzdumpSkippedError
	if !errors.As(err, &skipped) {
		t.Errorf("vzdump on a node without the guest = %v, want VzdumpSkippedError (PVE answers OK)", err)
	}

	upid, err = c.RestoreGuest(ctx, "pve", "qemu", RestoreOptions{Archive: newest(101), VMID: 130, Storage: "local-lvm", Unique: true})
	waitOK("restore qemu", upid, err)
	upid, err = c.RestoreGuest(ctx, "pve", "lxc", RestoreOptions{Archive: newest(201), VMID: 230, Start: true})
	waitOK("restore lxc", upid, err)
	upid, err = c.RestoreGuest(ctx, "agent", "qemu", RestoreOptions{Archive: newest(104), VMID: 104, Force: true})
	waitOK("restore over", upid, err)

	upid, err = c.DownloadURL(ctx, "home", "local", DownloadOptions{URL: "https://example.org/isos/alpine-3.22.iso", Content: "iso",
		Filename: "alpine-3.22.iso", Checksum: strings.Repeat("ab", 32), ChecksumAlgorithm: "sha256"})
	waitOK("download iso", upid, err)
	upid, err = c.DownloadURL(ctx, "home", "local", DownloadOptions{URL: "https://example.org/t/alpine-3.22-default.tar.xz", Content: "vztmpl",
		Filename: "alpine-3.22-default.tar.xz"})
	waitOK("download template", upid, err)
	_, err = c.StorageContent(ctx, "home", "local", "")
	must("content after the downloads", err)

	// The config write as update_guest_resources sends it, and the rest of
	// what the simulator accepts.
	for _, p := range []struct {
		method, path string
		params       url.Values
	}{
		{"PUT", "/nodes/pve/qemu/101/config", url.Values{"cores": {"6"}, "memory": {"12288"}, "balloon": {"4096"}, "onboot": {"0"}}},
		{"PUT", "/nodes/pve/qemu/101/config", url.Values{"sockets": {"1"}, "name": {"web01"}, "cipassword": {"s3cret"}, "delete": {"balloon,description"}}},
		{"PUT", "/nodes/pve/lxc/201/config", url.Values{"cores": {"3"}, "memory": {"2048"}, "swap": {"1024"}, "onboot": {"1"}, "hostname": {"nginx-proxy"}}},
	} {
		if status, body := rawCall(t, srv.URL, p.method, p.path, p.params); status != http.StatusOK {
			t.Fatalf("%s %s = %d %s", p.method, p.path, status, body)
		}
	}
	var upidPOST string
	status, body := rawCall(t, srv.URL, "POST", "/nodes/pve/qemu/102/config", url.Values{"memory": {"current=8192"}, "background_delay": {"5"}})
	if status != http.StatusOK {
		t.Fatalf("POST config = %d %s", status, body)
	}
	upidPOST = strings.Trim(strings.TrimSuffix(strings.TrimPrefix(string(body), `{"data":`), "}"), `"`)
	_, err = c.WaitTask(ctx, upidPOST, 10*time.Millisecond, nil)
	must("POST config task", err)

	covered := map[string]bool{}
	for _, r := range sim.Requests() {
		if r.Status != http.StatusOK {
			t.Errorf("%s %s answered %d during the run: %s", r.Method, r.Path, r.Status, r.Body)
		}
		for _, p := range append(schema.checkRequest(r), schema.checkResponse(r)...) {
			t.Error(p)
		}
		tmpl, _ := schema.template(r.Path)
		covered[r.Method+" "+tmpl] = true
	}
	for _, want := range []string{
		"GET /cluster/nextid", "POST /nodes/{node}/qemu/{vmid}/clone", "POST /nodes/{node}/lxc/{vmid}/clone",
		"PUT /nodes/{node}/qemu/{vmid}/config", "PUT /nodes/{node}/lxc/{vmid}/config", "POST /nodes/{node}/qemu/{vmid}/config",
		"POST /nodes/{node}/vzdump", "POST /nodes/{node}/qemu", "POST /nodes/{node}/lxc",
		"POST /nodes/{node}/storage/{storage}/download-url",
	} {
		if !covered[want] {
			t.Errorf("the run never exercised %s", want)
		}
	}
}

// The simulator's refusals of these calls keep PVE's error shape, and the
// client keeps PVE's words.
func TestOpsCreateErrors(t *testing.T) {
	schema := loadSchema(t)
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ro := newClient(t, roTokenID, roSecret, srv.URL)
	ctx := context.Background()
	backups, err := c.StorageContent(ctx, "pve", "nfs-backup", "backup")
	if err != nil || len(backups) == 0 {
		t.Fatalf("no backups: %v", err)
	}
	var of101 string
	for _, b := range backups {
		if b.VMID == 101 {
			of101 = b.VolID
		}
	}
	sim.ResetRequests()
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"VMID taken", func() error { _, err := c.NextID(ctx, 101); return err }, "VM 101 already exists"},
		{"clone onto a taken VMID", func() error {
			_, err := c.CloneGuest(ctx, "home", "qemu", 9000, CloneOptions{NewID: 102, Name: "x"})
			return err
		}, "unable to create VM 102: config file already exists"},
		{"linked clone of a guest", func() error {
			_, err := c.CloneGuest(ctx, "home", "qemu", 106, CloneOptions{NewID: 120, Name: "x"})
			return err
		}, "Linked clone feature is not supported for 'local-lvm:vm-106-disk-0' (scsi0)"},
		{"another node from local storage", func() error {
			_, err := c.CloneGuest(ctx, "home", "qemu", 9000, CloneOptions{NewID: 120, Name: "x", Full: true, Target: "pve"})
			return err
		}, "can't clone VM to node 'pve' (VM uses local storage)"},
		{"read-only token", func() error {
			return ro.SetGuestMeta(ctx, "pve", "qemu", 101, url.Values{"tags": {"x"}}, nil, "")
		}, "Permission check failed"},
		{"bad tag", func() error {
			return c.SetGuestMeta(ctx, "pve", "qemu", 101, url.Values{"tags": {"ok;not/ok"}}, nil, "")
		}, "invalid characters in tag"},
		{"stale digest", func() error {
			return c.SetGuestMeta(ctx, "pve", "qemu", 101, url.Values{"description": {"x"}}, nil, strings.Repeat("0", 40))
		}, "detected modified configuration"},
		{"storage without backups", func() error {
			_, err := c.Vzdump(ctx, "pve", VzdumpOptions{VMID: 101, Storage: "local-lvm", Mode: "snapshot", Compress: "zstd"})
			return err
		}, "storage 'local-lvm' does not support backups"},
		{"restore over without force", func() error {
			_, err := c.RestoreGuest(ctx, "pve", "qemu", RestoreOptions{Archive: of101, VMID: 101})
			return err
		}, "unable to restore VM 101 - VM 101 already exists on node 'pve'"},
		{"no such backup", func() error {
			_, err := c.RestoreGuest(ctx, "pve", "qemu", RestoreOptions{Archive: "nfs-backup:backup/vzdump-qemu-101-2020_01_01-02_00_00.vma.zst", VMID: 130})
			return err
		}, "volume 'nfs-backup:backup/vzdump-qemu-101-2020_01_01-02_00_00.vma.zst' does not exist"},
		{"download to a storage without ISOs", func() error {
			_, err := c.DownloadURL(ctx, "pve", "nfs-backup", DownloadOptions{URL: "https://example.org/a.iso", Content: "iso", Filename: "a.iso"})
			return err
		}, "storage 'nfs-backup' is not configured for content-type 'iso'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Requests the client refuses to send.
	for _, err := range []error{
		c.SetGuestMeta(ctx, "pve", "qemu", 101, url.Values{"cores": {"8"}}, nil, ""),
		c.SetGuestMeta(ctx, "pve", "lxc", 201, url.Values{"ciuser": {"x"}}, nil, ""),
		func() error {
			_, err := c.DownloadURL(ctx, "pve", "local", DownloadOptions{URL: "http://example.org/a.iso", Content: "iso", Filename: "a.iso"})
			return err
		}(),
		func() error {
			_, err := c.CloneGuest(ctx, "home", "qemu", 9000, CloneOptions{NewID: 120, Storage: "local-lvm"})
			return err
		}(),
	} {
		if err == nil {
			t.Error("the client sent a request it should refuse")
		}
	}
	for _, r := range sim.Requests() {
		if r.Status < 400 {
			t.Errorf("%s %s answered %d, want an error", r.Method, r.Path, r.Status)
		}
		for _, p := range schema.checkResponse(r) {
			t.Error(p)
		}
	}
}

func TestEncodeSSHKeys(t *testing.T) {
	got := EncodeSSHKeys(sshTestKey + "\n")
	want := "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIKZsv5oPG2Xv3cYqT0j1kqHqvI5z7uVbqjM0t5cX8G3x%20me%40laptop%0A"
	if got != want {
		t.Errorf("EncodeSSHKeys = %q\nwant %q", got, want)
	}
	if back, err := url.PathUnescape(got); err != nil || back != sshTestKey+"\n" {
		t.Errorf("decodes back to %q, %v", back, err)
	}
	if enc := EncodeSSHKeys("a+b/c="); enc != "a%2Bb%2Fc%3D" {
		t.Errorf("base64 characters: %q", enc)
	}
}

func TestEscapeNotesTemplate(t *testing.T) {
	if got := EscapeNotesTemplate("a\\b\r\nc\nd"); got != `a\\b\nc\nd` {
		t.Errorf("EscapeNotesTemplate = %q", got)
	}
}
