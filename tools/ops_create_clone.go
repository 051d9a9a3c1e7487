package tools

// clone_guest: a new guest from a template or a stopped guest, tagged
// jarvis-created, with a VM's cloud-init user, key and address set.

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

type CloneGuestInput struct {
	VMID         int    `json:"vmid" jsonschema:"the source: a template, or a stopped VM or container"`
	NewVMID      int    `json:"new_vmid,omitempty" jsonschema:"VMID of the clone; Proxmox's next free one when left out"`
	Name         string `json:"name" jsonschema:"the clone's name (a VM's name, a container's hostname): DNS labels of letters, digits and '-' (1-63 each), joined by '.'"`
	TargetNode   string `json:"target_node,omitempty" jsonschema:"node to create the clone on (default: the source's); another node needs the source's disks on shared storage"`
	Storage      string `json:"storage,omitempty" jsonschema:"full clones: one storage for all the clone's disks (default: each disk onto the storage it is on now)"`
	Full         bool   `json:"full,omitempty" jsonschema:"true: an independent full copy; false (default): a linked clone, which Proxmox makes only from a template"`
	CIUser       string `json:"ci_user,omitempty" jsonschema:"VMs with cloud-init: the user to set up"`
	SSHPublicKey string `json:"ssh_public_key,omitempty" jsonschema:"VMs with cloud-init: one OpenSSH public key, e.g. 'ssh-ed25519 AAAAC3… me@laptop'"`
	IPConfig     string `json:"ip_config,omitempty" jsonschema:"VMs with cloud-init: the first NIC's address: 'ip=dhcp' or 'ip=10.0.1.50/24,gw=10.0.1.1' (ip6=, gw6= too)"`
}

// CloneGuestResult is a clone that was made and tagged jarvis-created; the
// server records it as created by Jarvis (GuestCreated).
type CloneGuestResult struct {
	UPID          string  `json:"upid" jsonschema:"the clone task's id"`
	Node          string  `json:"node" jsonschema:"the source's node, where the clone task ran"`
	SourceVMID    int64   `json:"source_vmid"`
	NewVMID       int64   `json:"new_vmid"`
	NewNode       string  `json:"new_node" jsonschema:"the node the clone is on"`
	Name          string  `json:"name"`
	Kind          string  `json:"kind" jsonschema:"qemu or lxc"`
	Full          bool    `json:"full" jsonschema:"false for a linked clone"`
	Storage       string  `json:"storage" jsonschema:"the storage of the clone's disks (of its boot disk, when they are on several)"`
	Tags          string  `json:"tags" jsonschema:"the clone's tags; jarvis-created marks it as made by Jarvis"`
	CloudInit     bool    `json:"cloud_init" jsonschema:"true when the cloud-init user, key or address were set"`
	GuestStatus   string  `json:"guest_status" jsonschema:"the clone's state: stopped, until started"`
	ExitStatus    string  `json:"exit_status"`
	WaitedSeconds float64 `json:"waited_seconds"`
	// marker is the clone's id tag, for the server's record.
	marker string
}

// TaskUPID lets the audit log record the task id.
func (r CloneGuestResult) TaskUPID() string { return r.UPID }

// CreatedGuest tells the server which guest Jarvis created. Only a clone that
// was made and tagged is ever returned.
func (r CloneGuestResult) CreatedGuest() (string, int, string) {
	return r.NewNode, int(r.NewVMID), r.marker
}

var (
	// dnsNameRE is PVE's dns-name: labels of letters, digits and inner '-'.
	dnsNameRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)
	ciUserRE  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// sshKeyTypes are the OpenSSH public key types cloud-init takes.
	sshKeyTypes = []string{"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
		"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}
)

func cloneGuest() *Tool {
	return define[CloneGuestInput, CloneGuestResult](spec{
		name: "clone_guest", title: "Clone a guest", tier: safety.Yellow,
		description: "Create a new VM or container as a clone of a template (linked or full) or of a stopped guest (full), optionally on another node or storage, with a VM's cloud-init user, SSH key and address. It changes nothing that exists; the clone is created stopped and tagged jarvis-created. Refused when the target storage lacks the space.",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			vmidSchema(property(s, "new_vmid"))
			p := property(s, "name")
			p.Pattern, p.MaxLength = dnsNameRE.String(), ptr(253)
			nodeSchema(property(s, "target_node"))
			property(s, "storage").Pattern = storageRE.String()
			property(s, "ci_user").Pattern = ciUserRE.String()
			property(s, "ssh_public_key").MaxLength = ptr(8192)
			property(s, "ip_config").MaxLength = ptr(256)
		},
	}, prepareClone)
}

// cloneDisk is one disk of the source's config.
type cloneDisk struct {
	key, storage string
	size         int64
}

var cloneDiskKeyRE = map[string]*regexp.Regexp{
	"qemu": regexp.MustCompile(`^((ide|sata|scsi|virtio)\d+|efidisk0|tpmstate0)$`),
	"lxc":  regexp.MustCompile(`^(rootfs|mp\d+)$`),
}

// cloneDisks lists the disks a clone copies: not CD-ROMs, cloud-init drives
// (Proxmox makes them anew) or bind mounts.
func cloneDisks(kind string, cfg map[string]any) []cloneDisk {
	var out []cloneDisk
	for key := range cfg {
		if !cloneDiskKeyRE[kind].MatchString(key) {
			continue
		}
		value := confText(cfg, key)
		volid, opts, _ := strings.Cut(value, ",")
		volid = strings.TrimPrefix(volid, "volume=")
		sid, name, ok := strings.Cut(volid, ":")
		if !ok || strings.HasPrefix(volid, "/") || strings.Contains(name, "cloudinit") || strings.Contains(","+opts+",", ",media=cdrom,") {
			continue
		}
		d := cloneDisk{key: key, storage: sid}
		for _, o := range strings.Split(opts, ",") {
			if v, ok := strings.CutPrefix(o, "size="); ok {
				d.size = cloneSizeBytes(v)
			}
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b cloneDisk) int { return strings.Compare(a.key, b.key) })
	return out
}

// cloneSizeBytes reads a disk size as PVE writes it: "8G", "512M", "1T", bytes bare.
func cloneSizeBytes(s string) int64 {
	units := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	mult := int64(1)
	if n := len(s); n > 0 && units[s[n-1]] != 0 {
		mult, s = units[s[n-1]], s[:n-1]
	}
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil || f < 0 {
		return 0
	}
	return int64(f * float64(mult))
}

// clonePlace is a storage the clone's disks go to: what they need there and
// what it has free on the target node.
type clonePlace struct {
	storage     string
	need, avail int64
}

// cloneStorageWords says in the plan where the clone's disks go.
func cloneStorageWords(full bool, places []clonePlace) string {
	if len(places) == 1 {
		pl := places[0]
		if full {
			return fmt.Sprintf("full clone onto storage %s (needs %s; %s free)", pl.storage, humanBytes(pl.need), humanBytes(pl.avail))
		}
		return fmt.Sprintf("linked clone on storage %s (it shares the template's disks; %s free)", pl.storage, humanBytes(pl.avail))
	}
	var names, needs, free []string
	for _, pl := range places {
		names = append(names, pl.storage)
		needs = append(needs, fmt.Sprintf("%s on %s (%s free)", humanBytes(pl.need), pl.storage, humanBytes(pl.avail)))
		free = append(free, fmt.Sprintf("%s free on %s", humanBytes(pl.avail), pl.storage))
	}
	if full {
		return "full clone, each disk onto the storage it is on now: needs " + andWords(needs)
	}
	return fmt.Sprintf("linked clone on storages %s (it shares the template's disks; %s)", andWords(names), strings.Join(free, ", "))
}

// andWords joins "a", "b" and "c" as "a, b and c".
func andWords(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// bootDisk is the disk named when one storage stands for the source's: a
// container's rootfs; a VM's first disk in its boot order, else its
// bootdisk, else the first of scsi0, virtio0, sata0 and ide0 it has, else
// its first disk that is neither an EFI disk nor a TPM state.
func bootDisk(kind string, cfg map[string]any, disks []cloneDisk) cloneDisk {
	find := func(key string) (cloneDisk, bool) {
		for _, d := range disks {
			if d.key == key {
				return d, true
			}
		}
		return cloneDisk{}, false
	}
	var keys []string
	if kind == "lxc" {
		keys = []string{"rootfs"}
	} else {
		for _, o := range strings.Split(confText(cfg, "boot"), ",") {
			if order, ok := strings.CutPrefix(strings.TrimSpace(o), "order="); ok {
				keys = append(keys, strings.Split(order, ";")...)
			}
		}
		keys = append(keys, confText(cfg, "bootdisk"), "scsi0", "virtio0", "sata0", "ide0")
	}
	for _, k := range keys {
		if d, ok := find(strings.TrimSpace(k)); ok {
			return d
		}
	}
	for _, d := range disks {
		if d.key != "efidisk0" && d.key != "tpmstate0" {
			return d
		}
	}
	return disks[0]
}

// hasCloudInitDrive reports whether a VM's config has a cloud-init drive
// ("ide2: local-lvm:vm-9000-cloudinit,media=cdrom"): without one, Proxmox
// keeps cloud-init settings but no guest ever reads them.
func hasCloudInitDrive(cfg map[string]any) bool {
	for key := range cfg {
		if cloneDiskKeyRE["qemu"].MatchString(key) {
			volid, _, _ := strings.Cut(confText(cfg, key), ",")
			if strings.Contains(strings.TrimPrefix(volid, "volume="), "cloudinit") {
				return true
			}
		}
	}
	return false
}

func prepareClone(ctx context.Context, env *Env, in CloneGuestInput) (*Call, error) {
	if !dnsNameRE.MatchString(in.Name) || len(in.Name) > 253 {
		return nil, inputErrorf("name %q is not a DNS name: letters, digits and '-' (not first or last), up to 63 per label, labels joined by '.'", in.Name)
	}
	if in.NewVMID != 0 {
		if err := checkVMID(in.NewVMID); err != nil {
			return nil, err
		}
		if in.NewVMID == in.VMID {
			return nil, inputErrorf("new_vmid %d is the source's own VMID; a clone needs a VMID of its own", in.NewVMID)
		}
	}
	if err := checkOptionalNode(in.TargetNode); err != nil {
		return nil, err
	}
	if in.Storage != "" && !storageRE.MatchString(in.Storage) {
		return nil, inputErrorf("storage %q is not a storage name (see get_storage)", in.Storage)
	}
	cloudInit := in.CIUser != "" || in.SSHPublicKey != "" || in.IPConfig != ""
	ci := url.Values{}
	if in.CIUser != "" {
		if !ciUserRE.MatchString(in.CIUser) {
			return nil, inputErrorf("ci_user %q is not a user name: lower-case letters, digits, '_' and '-', starting with a letter or '_' (up to 32)", in.CIUser)
		}
		ci.Set("ciuser", in.CIUser)
	}
	if in.SSHPublicKey != "" {
		key, err := checkSSHPublicKey(in.SSHPublicKey)
		if err != nil {
			return nil, err
		}
		ci.Set("sshkeys", pve.EncodeSSHKeys(key))
	}
	if in.IPConfig != "" {
		if err := checkCloudInitIP(in.IPConfig); err != nil {
			return nil, err
		}
		ci.Set("ipconfig0", in.IPConfig)
	}

	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	template := bool(r.Template)
	switch {
	case !template && r.Status == "running":
		return nil, inputErrorf("%s is running; Jarvis clones only templates and stopped guests: shut it down first, or clone a template", noun)
	case !template && r.Status != "stopped":
		return nil, inputErrorf("%s is %s; only a template or a stopped guest can be cloned", noun, orWord(r.Status, "in an unknown state"))
	case r.Lock != "":
		return nil, inputErrorf("%s is locked (%s) by a task under way; wait until it has finished (get_recent_tasks for node %s)", noun, r.Lock, r.Node)
	case cloudInit && r.Type != "qemu":
		return nil, inputErrorf("%s is a container; ci_user, ssh_public_key and ip_config are cloud-init settings of VMs", noun)
	case !in.Full && !template:
		return nil, inputErrorf("%s is not a template, and Proxmox makes linked clones only from templates: set full to true for a full copy", noun)
	case !in.Full && in.Storage != "":
		return nil, inputErrorf("a linked clone stays on its template's storage; storage is for full clones (set full to true, or leave storage out)")
	}

	online, names, err := onlineNodes(ctx, env)
	if err != nil {
		return nil, err
	}
	if err := needOnline(r.Node, online, names, "the source's node"); err != nil {
		return nil, err
	}
	target := in.TargetNode
	if target == "" {
		target = r.Node
	}
	if err := needOnline(target, online, names, "the target node"); err != nil {
		return nil, err
	}
	cfg, err := env.PVE.GuestConfig(ctx, r.Node, r.Type, in.VMID)
	if err != nil {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	disks := cloneDisks(r.Type, cfg)
	if len(disks) == 0 {
		return nil, inputErrorf("%s has no disk Jarvis can read in its config; clone it in the Proxmox UI", noun)
	}
	if cloudInit && !hasCloudInitDrive(cfg) {
		return nil, inputErrorf("%s has no cloud-init drive, so ci_user, ssh_public_key and ip_config would do nothing: add one in Proxmox first (the VM's Hardware → Add → CloudInit Drive, or qm set %d --ide2 <storage>:cloudinit on its node), or leave those settings out",
			noun, in.VMID)
	}
	boot := bootDisk(r.Type, cfg, disks)

	// Another node: Proxmox copies only from and to shared storage.
	if target != r.Node {
		_, srcList, err := storageOnNode(ctx, env, r.Node, boot.storage)
		if err != nil {
			return nil, err
		}
		for _, d := range disks {
			shared := false
			for _, s := range srcList {
				shared = shared || (s.Storage == d.storage && bool(s.Shared))
			}
			if !shared {
				return nil, inputErrorf("%s's disk %s is on %s, storage local to node %s: Proxmox clones to another node only from shared storage. Clone it on node %s, then move the clone with migrate_guest",
					noun, d.key, d.storage, r.Node, r.Node)
			}
		}
	}

	// Where the clone's disks go: all onto storage when it is given, else
	// each onto the storage of the source's disk (as Proxmox does), the boot
	// disk's first.
	dest := in.Storage
	if dest == "" {
		dest = boot.storage
	}
	var places []clonePlace
	placeOf := func(name string) *clonePlace {
		for i := range places {
			if places[i].storage == name {
				return &places[i]
			}
		}
		places = append(places, clonePlace{storage: name})
		return &places[len(places)-1]
	}
	placeOf(dest)
	for _, d := range disks {
		name := in.Storage
		if name == "" {
			name = d.storage
		}
		placeOf(name).need += d.size
	}
	slices.SortStableFunc(places[1:], func(a, b clonePlace) int { return strings.Compare(a.storage, b.storage) })

	content := map[string]string{"qemu": "images", "lxc": "rootdir"}[r.Type]
	_, list, err := storageOnNode(ctx, env, target, dest)
	if err != nil {
		return nil, err
	}
	for i := range places {
		pl := &places[i]
		var st *pve.StorageEntry
		for j := range list {
			if list[j].Storage == pl.storage {
				st = &list[j]
			}
		}
		switch {
		case st == nil:
			return nil, inputErrorf("storage %s is not available on node %s; storages there for %s disks: %s", pl.storage, target, kindWord(r.Type), storagesFor(list, content))
		case !storageHolds(st.Content, content):
			return nil, inputErrorf("storage %s on node %s does not hold %s disks (its content: %s); choose one of: %s", pl.storage, target, kindWord(r.Type), st.Content, storagesFor(list, content))
		case !bool(st.Enabled) || !bool(st.Active):
			return nil, inputErrorf("storage %s is not active on node %s now", pl.storage, target)
		case target != r.Node && !bool(st.Shared):
			return nil, inputErrorf("storage %s is local to node %s: Proxmox clones to another node only onto shared storage", pl.storage, target)
		}
		pl.avail = int64(st.Avail)
		if in.Full && pl.need > pl.avail {
			return nil, inputErrorf("a full clone of %s needs %s on storage %s, and it has only %s free on node %s; choose another storage, or free space first",
				noun, humanBytes(pl.need), pl.storage, humanBytes(pl.avail), target)
		}
	}

	newID := in.NewVMID
	if newID == 0 {
		if newID, err = env.PVE.NextID(Fresh(ctx), 0); err != nil {
			return nil, fmt.Errorf("asking Proxmox for a free VMID: %w", err)
		}
	} else if err := vmidFree(ctx, env, newID); err != nil {
		return nil, err
	}

	source := "stopped " + noun
	if template {
		source = "template " + noun
	}
	newNoun := fmt.Sprintf("%s %d '%s'", kindWord(r.Type), newID, in.Name)
	effect := fmt.Sprintf("Clone %s on node %s into new %s on node %s, ", source, r.Node, newNoun, target)
	effect += cloneStorageWords(in.Full, places)
	if cloudInit {
		var set []string
		if in.CIUser != "" {
			set = append(set, "user "+in.CIUser)
		}
		if in.SSHPublicKey != "" {
			set = append(set, "SSH key "+keyWords(in.SSHPublicKey))
		}
		if in.IPConfig != "" {
			set = append(set, in.IPConfig)
		}
		effect += "; cloud-init: " + strings.Join(set, ", ")
	}
	effect += "; the clone is tagged " + createdTag

	return &Call{
		Target: guestTarget(r),
		Also:   []safety.Target{{Node: target, VMID: newID, Kind: r.Type, Name: in.Name}},
		Effect: effect,
		Run: func(ctx context.Context, progress Progress) (any, error) {
			w := guestWrite{what: fmt.Sprintf("clone of %s into %s", noun, newNoun), node: r.Node, vmid: newID}
			upid, err := env.PVE.CloneGuest(ctx, r.Node, r.Type, in.VMID, pve.CloneOptions{NewID: newID, Name: in.Name,
				Target: target, Storage: in.Storage, Full: in.Full})
			if err != nil {
				return nil, withCheck(w.sendError(err), fmt.Sprintf(
					"Before retrying, check get_recent_tasks for node %s (a clone task of VMID %d) and get_guest_status for VMID %d to see whether the clone was made", r.Node, in.VMID, newID))
			}
			res, err := waitForTask(ctx, env, upid, 30*time.Minute, logProgress(ctx, env, upid, "cloning", progress), w)
			if err != nil {
				return nil, notMarked(err, newNoun, upid, cloudInit)
			}
			tags, marker, err := markCreated(ctx, env, target, r.Type, newID, ci)
			if err != nil {
				return nil, markError(err, newNoun, target, upid, cloudInit)
			}
			out := CloneGuestResult{UPID: upid, Node: r.Node, SourceVMID: int64(in.VMID), NewVMID: int64(newID), NewNode: target,
				Name: in.Name, Kind: r.Type, Full: in.Full, Storage: dest, Tags: tags, CloudInit: cloudInit, GuestStatus: "stopped",
				ExitStatus: res.ExitStatus, WaitedSeconds: res.WaitedSeconds, marker: marker}
			if st, err := env.PVE.GuestStatus(Fresh(ctx), target, r.Type, newID); err == nil {
				out.GuestStatus = st.Status
			}
			return out, nil
		},
	}, nil
}

// notMarked adds to the unknown outcome of a task that creates a guest (a
// clone, a restore into a new VMID) what Jarvis did not do because it never
// saw the task end: the marks that make the guest Jarvis's and, for a clone,
// the cloud-init settings; and what to do about them. Other errors pass.
func notMarked(err error, noun, upid string, cloudInit bool) error {
	var unk *OutcomeUnknownError
	if !errors.As(err, &unk) {
		return err
	}
	missing, fix := fmt.Sprintf("the %s and %s… tags", createdTag, createdIDPrefix), ""
	if cloudInit {
		missing += " or the cloud-init settings"
		fix = " set its cloud-init user, SSH key and address by hand in Proxmox (its Cloud-Init tab), and"
	}
	unk.Why += fmt.Sprintf("; Jarvis did NOT apply %s, so %s, if it appears, is not recorded as Jarvis's and delete_guest will refuse it", missing, noun)
	unk.Check = fmt.Sprintf("Before retrying, check get_task_status with upid %s; if the task ended OK,%s know that Jarvis's tags cannot be added afterwards (set_guest_notes_tags does not set them): keep the guest as your own, or remove it in Proxmox if it is not wanted", upid, fix)
	return err
}

// checkSSHPublicKey accepts one OpenSSH public key on one line: its type,
// base64 whose first field names the same type, an optional comment. It
// answers the key without surrounding space.
func checkSSHPublicKey(key string) (string, error) {
	key = strings.TrimSpace(key)
	if strings.ContainsAny(key, "\r\n") {
		return "", inputErrorf("ssh_public_key must be one key on one line")
	}
	if strings.Contains(key, "PRIVATE KEY") {
		return "", inputErrorf("ssh_public_key is a private key; pass the public key (the .pub file), and keep the private one secret")
	}
	f := strings.Fields(key)
	if len(f) < 2 || !slices.Contains(sshKeyTypes, f[0]) {
		return "", inputErrorf("ssh_public_key does not look like an OpenSSH public key: want '<type> <base64> [comment]' with type one of %s", strings.Join(sshKeyTypes, ", "))
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4 {
		return "", inputErrorf("ssh_public_key: the key data after %s is not base64", f[0])
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != f[0] {
		return "", inputErrorf("ssh_public_key: the key data is not a %s key", f[0])
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return "", inputErrorf("ssh_public_key contains control characters")
		}
	}
	return key, nil
}

// keyWords names a public key in a plan: its type and comment, or the end
// of its data.
func keyWords(key string) string {
	f := strings.Fields(key)
	if len(f) > 2 {
		return f[0] + " " + strings.Join(f[2:], " ")
	}
	if len(f) == 2 && len(f[1]) > 8 {
		return f[0] + " …" + f[1][len(f[1])-8:]
	}
	return f[0]
}

// checkCloudInitIP checks ip_config as PVE's ipconfig: ip=dhcp or an IPv4
// address/prefix, gw= an IPv4 address (with a static ip), ip6=dhcp|auto or an
// IPv6 address/prefix, gw6=.
func checkCloudInitIP(v string) error {
	bad := func(format string, args ...any) error {
		return inputErrorf("ip_config %q: %s (e.g. 'ip=dhcp' or 'ip=10.0.1.50/24,gw=10.0.1.1')", v, fmt.Sprintf(format, args...))
	}
	seen := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		if !ok || val == "" {
			return bad("%q is not key=value", part)
		}
		if _, dup := seen[k]; dup {
			return bad("%s is given twice", k)
		}
		seen[k] = val
		switch k {
		case "ip":
			if val == "dhcp" {
				continue
			}
			if p, err := netip.ParsePrefix(val); err != nil || !p.Addr().Is4() {
				return bad("ip must be dhcp or an IPv4 address with its prefix length, like 10.0.1.50/24")
			}
		case "gw":
			if a, err := netip.ParseAddr(val); err != nil || !a.Is4() {
				return bad("gw must be an IPv4 address")
			}
		case "ip6":
			if val == "dhcp" || val == "auto" {
				continue
			}
			if p, err := netip.ParsePrefix(val); err != nil || !p.Addr().Is6() {
				return bad("ip6 must be dhcp, auto or an IPv6 address with its prefix length")
			}
		case "gw6":
			if a, err := netip.ParseAddr(val); err != nil || !a.Is6() {
				return bad("gw6 must be an IPv6 address")
			}
		default:
			return bad("unknown key %s: use ip, gw, ip6 and gw6", k)
		}
	}
	if gw := seen["gw"]; gw != "" {
		ip := seen["ip"]
		if ip == "" || ip == "dhcp" {
			return bad("a gateway needs a static ip")
		}
		if p, _ := netip.ParsePrefix(ip); !p.Masked().Contains(netip.MustParseAddr(gw)) {
			return bad("gateway %s is not in %s", gw, p.Masked())
		}
	}
	if seen["gw6"] != "" && (seen["ip6"] == "" || seen["ip6"] == "dhcp" || seen["ip6"] == "auto") {
		return bad("an IPv6 gateway needs a static ip6")
	}
	return nil
}
