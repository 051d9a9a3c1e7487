package tools

// create_backup and restore_backup. A backup is YELLOW, but one in stop mode
// is RED (it shuts down the guest if it runs when vzdump starts); a restore
// into a new VMID is YELLOW, one over an existing guest RED: both tools are
// RED with YELLOW calls.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- create_backup ----

type CreateBackupInput struct {
	VMID     int    `json:"vmid" jsonschema:"the guest to back up"`
	Storage  string `json:"storage,omitempty" jsonschema:"the backup storage; default: one the guest's node can use for backups, shared storage first"`
	Mode     string `json:"mode,omitempty" jsonschema:"snapshot (default; live, the guest keeps running), suspend (pauses it briefly) or stop (shuts a running guest down for the backup and starts it again: needs a person's approval)"`
	Compress string `json:"compress,omitempty" jsonschema:"zstd (default), lzo, gzip or none"`
	Notes    string `json:"notes,omitempty" jsonschema:"notes shown with the backup in Proxmox (up to 1000 characters); {{guestname}}, {{vmid}} and {{node}} are filled in"`
}

type CreateBackupResult struct {
	TaskResult
	Storage   string `json:"storage"`
	Mode      string `json:"mode"`
	VolID     string `json:"volid,omitempty" jsonschema:"the new backup's volume id (restore_backup takes it)"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
	Size      string `json:"size,omitempty"`
	Note      string `json:"note,omitempty" jsonschema:"when the new backup could not be found afterwards: where to look"`
}

func createBackup() *Tool {
	return define[CreateBackupInput, CreateBackupResult](spec{
		name: "create_backup", title: "Back up a guest now", tier: safety.Red, minTier: safety.Yellow,
		description: "Back up one VM or container by VMID now (vzdump) to a backup storage, reporting progress; older backups are never pruned. Snapshot mode (default) keeps the guest running; mode stop shuts a running guest down for the backup, and always needs a person's approval (a stopped guest may be started before the backup runs).",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			property(s, "storage").Pattern = storageRE.String()
			enumSchema(property(s, "mode"), "snapshot", "suspend", "stop")
			enumSchema(property(s, "compress"), "zstd", "lzo", "gzip", "none")
			property(s, "notes").MaxLength = ptr(1000)
		},
	}, prepareBackup)
}

func prepareBackup(ctx context.Context, env *Env, in CreateBackupInput) (*Call, error) {
	if in.Mode == "" {
		in.Mode = "snapshot"
	}
	if in.Compress == "" {
		in.Compress = "zstd"
	}
	if !slices.Contains([]string{"snapshot", "suspend", "stop"}, in.Mode) {
		return nil, inputErrorf("mode %q: use snapshot, suspend or stop", in.Mode)
	}
	compress := map[string]string{"zstd": "zstd", "lzo": "lzo", "gzip": "gzip", "none": "0"}[in.Compress]
	if compress == "" {
		return nil, inputErrorf("compress %q: use zstd, lzo, gzip or none", in.Compress)
	}
	if in.Storage != "" && !storageRE.MatchString(in.Storage) {
		return nil, inputErrorf("storage %q is not a storage name (see get_storage)", in.Storage)
	}
	if len([]rune(in.Notes)) > 1000 || strings.ContainsFunc(in.Notes, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return nil, inputErrorf("notes: up to 1000 characters, no control characters but newlines and tabs")
	}
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	switch {
	case r.Lock != "":
		return nil, inputErrorf("%s is locked (%s) by a task under way; wait until it has finished (get_recent_tasks for node %s)", noun, r.Lock, r.Node)
	case r.Status != "running" && r.Status != "stopped":
		return nil, inputErrorf("%s is %s; Jarvis backs up running or stopped guests only", noun, orWord(r.Status, "in an unknown state"))
	}
	online, names, err := onlineNodes(ctx, env)
	if err != nil {
		return nil, err
	}
	if err := needOnline(r.Node, online, names, "the guest's node"); err != nil {
		return nil, err
	}
	list, err := env.PVE.NodeStorage(ctx, r.Node)
	if err != nil {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	st, err := backupStorage(list, in.Storage, r.Node)
	if err != nil {
		return nil, err
	}

	running := r.Status == "running"
	what := "running " + noun
	switch {
	case bool(r.Template):
		what = "template " + noun
	case !running:
		what = "stopped " + noun
	}
	effect := fmt.Sprintf("Back up %s on node %s to storage %s", what, r.Node, st.Storage)
	tier := safety.Yellow
	switch {
	case in.Mode == "stop" && !running:
		// vzdump shuts down whatever runs when it starts: the guest may have
		// been started since this plan, so stop mode always needs a person.
		effect += " in stop mode: a running guest is shut down for the backup and started again after (it is stopped now)"
		tier = safety.Red
	case !running:
		effect += " (it stays stopped)"
	case in.Mode == "snapshot":
		effect += " in snapshot mode (live: the guest keeps running)"
	case in.Mode == "suspend":
		effect += " in suspend mode: the guest is paused for a short while as the backup starts"
	case in.Mode == "stop":
		effect += " in stop mode: the guest is SHUT DOWN for the whole backup and started again afterwards; its services are down meanwhile"
		tier = safety.Red
	}
	if compress == "0" {
		effect += ", uncompressed"
	} else {
		effect += ", " + in.Compress + "-compressed"
	}
	if in.Notes != "" {
		effect += fmt.Sprintf(", with notes %q", shorten(in.Notes, 80))
	}
	effect += "; no older backup is removed"

	return &Call{Target: guestTarget(r), Effect: effect, Tier: tier, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: "backup of " + noun, node: r.Node, vmid: in.VMID}
		upid, err := env.PVE.Vzdump(ctx, r.Node, pve.VzdumpOptions{VMID: in.VMID, Storage: st.Storage, Mode: in.Mode, Compress: compress, Notes: in.Notes})
		var skipped *pve.VzdumpSkippedError
		if errors.As(err, &skipped) {
			return nil, fmt.Errorf("no backup was made: %s moved away from node %s since it was looked up (%w); call create_backup again", noun, r.Node, err)
		}
		if err != nil {
			return nil, w.sendError(err)
		}
		started := time.Now()
		res, err := waitForTask(ctx, env, upid, 12*time.Hour, logProgress(ctx, env, upid, "backing up", progress), w)
		if err != nil {
			return nil, taskErrors(ctx, env, r.Node, upid, err)
		}
		res.Node, res.VMID, res.Kind, res.Action = r.Node, int64(in.VMID), r.Type, "vzdump"
		if gs, err := env.PVE.GuestStatus(Fresh(ctx), r.Node, r.Type, in.VMID); err == nil {
			res.GuestStatus = gs.Status
		}
		out := CreateBackupResult{TaskResult: res, Storage: st.Storage, Mode: in.Mode}
		item, err := newBackup(ctx, env, r.Node, st.Storage, upid, in.VMID, started)
		switch {
		case err != nil:
			out.Note = fmt.Sprintf("the backup finished, but storage %s could not be read to find it (%v); see get_backups", st.Storage, err)
		case item == nil:
			out.Note = fmt.Sprintf("the backup finished, but its archive was not found on storage %s; see get_backups and the task log (get_task_status)", st.Storage)
		default:
			out.VolID, out.SizeBytes, out.Size = item.VolID, int64(item.Size), humanBytes(int64(item.Size))
		}
		return out, nil
	}}, nil
}

// backupStorage picks the storage a backup goes to: the one asked for, if the
// node can write backups to it, else a shared one, else a local one; the one
// with most space among them.
func backupStorage(list []pve.StorageEntry, want, node string) (*pve.StorageEntry, error) {
	var usable []pve.StorageEntry
	for _, s := range list {
		if storageHolds(s.Content, "backup") && bool(s.Enabled) && bool(s.Active) {
			usable = append(usable, s)
		}
	}
	if want != "" {
		for i := range usable {
			if usable[i].Storage == want {
				return &usable[i], nil
			}
		}
		for _, s := range list {
			if s.Storage == want {
				return nil, inputErrorf("storage %s does not take backups on node %s (its content: %s); backup storages there: %s", want, node, s.Content, storagesFor(list, "backup"))
			}
		}
		return nil, inputErrorf("storage %s is not available on node %s; backup storages there: %s", want, node, storagesFor(list, "backup"))
	}
	if len(usable) == 0 {
		return nil, inputErrorf("node %s has no storage for backups (content \"backup\"); add one in Proxmox first", node)
	}
	sort.SliceStable(usable, func(i, j int) bool {
		a, b := usable[i], usable[j]
		if a.Shared != b.Shared {
			return bool(a.Shared)
		}
		if a.Avail != b.Avail {
			return a.Avail > b.Avail
		}
		return a.Storage < b.Storage
	})
	return &usable[0], nil
}

var archiveLineRE = regexp.MustCompile(`creating (?:vzdump )?archive '([^']+)'`)

// newBackup finds the archive a vzdump task wrote: the file its log names,
// or else the guest's newest backup on the storage made since the task began.
func newBackup(ctx context.Context, env *Env, node, storage, upid string, vmid int, started time.Time) (*pve.StorageItem, error) {
	file := ""
	if lines, err := env.PVE.TaskLog(ctx, node, upid, 0, 5000); err == nil {
		for _, l := range lines {
			if m := archiveLineRE.FindStringSubmatch(l.T); m != nil {
				file = m[1][strings.LastIndex(m[1], "/")+1:]
			}
		}
	}
	items, err := env.PVE.StorageContent(Fresh(ctx), node, storage, "backup")
	if err != nil {
		return nil, err
	}
	var best *pve.StorageItem
	for i := range items {
		it := &items[i]
		if int(it.VMID) != vmid {
			continue
		}
		if file != "" && strings.HasSuffix(it.VolID, "/"+file) {
			return it, nil
		}
		if file == "" && int64(it.CTime) >= started.Add(-time.Minute).Unix() && (best == nil || it.CTime > best.CTime) {
			best = it
		}
	}
	return best, nil
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// ---- restore_backup ----

type RestoreBackupInput struct {
	VolID   string `json:"volid" jsonschema:"the backup's volume id (see get_backups): storage:backup/vzdump-qemu-101-2026_12_03-02_00_00.vma.zst"`
	VMID    int    `json:"vmid" jsonschema:"the guest to restore into: a free VMID creates a new guest; an existing, stopped guest of the same kind is REPLACED (needs a person's approval)"`
	Node    string `json:"node,omitempty" jsonschema:"a new guest's node (default: the backed-up guest's node, or the node of a node-local backup storage); an existing guest is restored where it is"`
	Storage string `json:"storage,omitempty" jsonschema:"storage for the restored disks (default: the storages named in the backup)"`
	Start   bool   `json:"start,omitempty" jsonschema:"start the guest once it is restored"`
}

type RestoreBackupResult struct {
	TaskResult
	VolID         string   `json:"volid"`
	NewGuest      bool     `json:"new_guest" jsonschema:"true when the restore created a new guest (tagged jarvis-created)"`
	Tags          string   `json:"tags,omitempty" jsonschema:"a new guest's tags"`
	SnapshotsLost []string `json:"snapshots_lost,omitempty" jsonschema:"the snapshots the replaced guest had: a restore removes them"`
}

// restoredGuest is the result of a restore that created a guest and tagged
// it: the server records it as created by Jarvis (GuestCreated). A restore
// over an existing guest returns the plain RestoreBackupResult.
type restoredGuest struct {
	RestoreBackupResult
	marker string
}

// CreatedGuest tells the server which guest Jarvis created.
func (r restoredGuest) CreatedGuest() (string, int, string) { return r.Node, int(r.VMID), r.marker }

// vzdumpVolRE is a vzdump archive's volume id.
var vzdumpVolRE = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9._-]{0,99}):backup/vzdump-(qemu|lxc)-(\d{3,9})-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.(vma|tar)(\.(zst|lzo|gz))?$`)

func restoreBackup() *Tool {
	return define[RestoreBackupInput, RestoreBackupResult](spec{
		name: "restore_backup", title: "Restore a backup", tier: safety.Red, minTier: safety.Yellow,
		description: "Restore a vzdump backup by its volume id (see get_backups) into a VMID. Into a free VMID it creates a new guest, tagged jarvis-created (low risk). Over an existing guest it REPLACES that guest's disks and config, losing everything since the backup and all its snapshots: that needs the guest stopped and a person's approval.",
		adjust: func(s *jsonschema.Schema) {
			p := property(s, "volid")
			p.Pattern, p.MaxLength = vzdumpVolRE.String(), ptr(255)
			vmidSchema(property(s, "vmid"))
			nodeSchema(property(s, "node"))
			property(s, "storage").Pattern = storageRE.String()
		},
	}, prepareRestore)
}

func prepareRestore(ctx context.Context, env *Env, in RestoreBackupInput) (*Call, error) {
	m := vzdumpVolRE.FindStringSubmatch(in.VolID)
	if m == nil {
		return nil, inputErrorf("volid %q is not a vzdump backup's volume id (storage:backup/vzdump-qemu-101-2026_12_03-02_00_00.vma.zst; see get_backups); restore other archives (Proxmox Backup Server) in the Proxmox UI", in.VolID)
	}
	sid, kind := m[1], m[2]
	var owner int
	fmt.Sscan(m[3], &owner)
	if err := checkVMID(in.VMID); err != nil {
		return nil, err
	}
	if err := checkOptionalNode(in.Node); err != nil {
		return nil, err
	}
	if in.Storage != "" && !storageRE.MatchString(in.Storage) {
		return nil, inputErrorf("storage %q is not a storage name (see get_storage)", in.Storage)
	}
	all, err := env.PVE.ClusterResources(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's nodes, guests and storage: %w", err)
	}
	online := map[string]bool{}
	var names []string
	var existing, ownerGuest *pve.Resource
	for i := range all {
		switch res := &all[i]; res.Type {
		case "node":
			online[res.Node] = res.Status == "online"
			names = append(names, res.Node)
		case "qemu", "lxc":
			if int(res.VMID) == in.VMID {
				existing = res
			}
			if int(res.VMID) == owner {
				ownerGuest = res
			}
		}
	}
	sort.Strings(names)
	arch, err := findBackupCopy(ctx, env, all, func(n string) bool { return online[n] }, sid, in.VolID, in.Node, "restore")
	if err != nil {
		return nil, err
	}
	backupOf := fmt.Sprintf("%s %d", kindWord(kind), owner)
	if ownerGuest != nil && ownerGuest.Type == kind {
		backupOf = guestNoun(ownerGuest)
	} else if arch.item.Notes != "" {
		backupOf += fmt.Sprintf(" '%s'", shorten(arch.item.Notes, 40))
	}
	when := time.Unix(int64(arch.item.CTime), 0).UTC().Format("2006-01-02 15:04 UTC")

	var target string
	var call *Call
	if existing != nil {
		call, target, err = restoreOver(ctx, env, in, existing, arch, kind, owner, when, online, names)
	} else {
		call, target, err = restoreNew(ctx, env, in, ownerGuest, arch, kind, backupOf, when, online, names, all)
	}
	if err != nil {
		return nil, err
	}
	if in.Storage != "" {
		content := map[string]string{"qemu": "images", "lxc": "rootdir"}[kind]
		st, list, err := storageOnNode(ctx, env, target, in.Storage)
		if err != nil {
			return nil, err
		}
		if st == nil || !storageHolds(st.Content, content) || !bool(st.Active) || !bool(st.Enabled) {
			return nil, inputErrorf("storage %s cannot hold %s disks on node %s; storages there that can: %s", in.Storage, kindWord(kind), target, storagesFor(list, content))
		}
		call.Effect += fmt.Sprintf("; its disks go to storage %s", in.Storage)
	}
	if in.Start {
		call.Effect += "; then it is started"
	}
	if existing == nil {
		call.Effect += "; the new guest is tagged " + createdTag
	}
	return call, nil
}

// restoreOver prepares a restore that replaces an existing guest: RED.
func restoreOver(ctx context.Context, env *Env, in RestoreBackupInput, g *pve.Resource, arch *backupCopy, kind string, owner int,
	when string, online map[string]bool, names []string) (*Call, string, error) {
	noun := guestNoun(g)
	switch {
	case g.Type != kind:
		return nil, "", inputErrorf("%s is a %s, and %s is a backup of a %s; restore it into a free VMID instead", noun, kindWord(g.Type), in.VolID, kindWord(kind))
	case in.Node != "" && in.Node != g.Node:
		return nil, "", inputErrorf("%s is on node %s: a restore over it runs there; leave node out (or restore into a free VMID on node %s)", noun, g.Node, in.Node)
	case g.Status == "running":
		return nil, "", inputErrorf("%s is running; shut it down first (shutdown_%s), then restore over it", noun, map[string]string{"qemu": "vm", "lxc": "container"}[g.Type])
	case g.Status != "stopped":
		return nil, "", inputErrorf("%s is %s; only a stopped guest can be restored over", noun, orWord(g.Status, "in an unknown state"))
	case g.Lock != "":
		return nil, "", inputErrorf("%s is locked (%s) by a task under way; wait until it has finished (get_recent_tasks for node %s)", noun, g.Lock, g.Node)
	}
	if err := needOnline(g.Node, online, names, "the guest's node"); err != nil {
		return nil, "", err
	}
	if !arch.shared && arch.node != g.Node {
		return nil, "", inputErrorf("backup %s is on node %s's own storage, which node %s (where %s is) cannot read", in.VolID, arch.node, g.Node, noun)
	}
	cfg, err := env.PVE.GuestConfig(ctx, g.Node, g.Type, in.VMID)
	if err != nil {
		return nil, "", nodeError(ctx, env, g.Node, err)
	}
	if confText(cfg, "protection") == "1" {
		return nil, "", inputErrorf("%s is protected in Proxmox (protection); Proxmox refuses to replace it until that is turned off", noun)
	}
	snaps, err := env.PVE.Snapshots(ctx, g.Node, g.Type, in.VMID)
	if err != nil {
		return nil, "", nodeError(ctx, env, g.Node, err)
	}
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].SnapTime < snaps[j].SnapTime })
	var lost []string
	for _, s := range snaps {
		if s.Name != "current" {
			lost = append(lost, s.Name)
		}
	}
	from := "backup " + in.VolID
	if owner != in.VMID {
		from += fmt.Sprintf(" (a backup of %s %d)", kindWord(kind), owner)
	}
	effect := fmt.Sprintf("Restore %s on node %s from %s (%s), REPLACING its current disks and config; everything written since that backup", noun, g.Node, from, when)
	switch len(lost) {
	case 0:
		effect += " is lost"
	case 1:
		effect += fmt.Sprintf(" and its snapshot '%s' are lost", lost[0])
	default:
		effect += fmt.Sprintf(" and its %d snapshots (%s) are lost", len(lost), strings.Join(lost, ", "))
	}
	call := &Call{Target: guestTarget(g), Tier: safety.Red, Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		res, err := runRestore(ctx, env, g.Node, kind, in, pve.RestoreOptions{Archive: in.VolID, VMID: in.VMID, Storage: in.Storage, Force: true, Start: in.Start}, progress)
		if err != nil {
			return nil, err
		}
		res.SnapshotsLost = lost
		return res, nil
	}}
	return call, g.Node, nil
}

// restoreNew prepares a restore into a free VMID: YELLOW, it creates a guest.
func restoreNew(ctx context.Context, env *Env, in RestoreBackupInput, ownerGuest *pve.Resource, arch *backupCopy, kind, backupOf, when string,
	online map[string]bool, names []string, all []pve.Resource) (*Call, string, error) {
	if err := vmidFree(ctx, env, in.VMID); err != nil {
		return nil, "", err
	}
	target := in.Node
	if target == "" {
		switch {
		case !arch.shared:
			target = arch.node
		case ownerGuest != nil && online[ownerGuest.Node] && storageAvailable(all, arch.item.VolID, ownerGuest.Node):
			target = ownerGuest.Node
		default:
			target = arch.node
		}
	}
	if err := needOnline(target, online, names, "the restore's node"); err != nil {
		return nil, "", err
	}
	if !arch.shared && arch.node != target {
		return nil, "", inputErrorf("backup %s is on node %s's own storage, which node %s cannot read; restore it on node %s", in.VolID, arch.node, target, arch.node)
	}
	if arch.shared && !storageAvailable(all, in.VolID, target) {
		return nil, "", inputErrorf("node %s does not reach the backup's storage now; leave node out, or pick a node that has it", target)
	}
	unique := ownerGuest != nil
	newNoun := fmt.Sprintf("%s %d", kindWord(kind), in.VMID)
	effect := fmt.Sprintf("Restore backup %s (of %s, %s) into new %s on node %s", in.VolID, backupOf, when, newNoun, target)
	if unique {
		effect += fmt.Sprintf(", with new MAC addresses (%s still exists)", guestNoun(ownerGuest))
	}
	tier := safety.Yellow
	if in.Start && ownerGuest != nil && ownerGuest.Status == "running" {
		// A second copy of a running guest boots on the same network, most
		// likely with the same addresses configured inside it: a person decides.
		tier = safety.Red
		effect += fmt.Sprintf(", while %s is running (the copy may claim the same IP addresses inside its OS)", guestNoun(ownerGuest))
	}
	call := &Call{Target: safety.Target{Node: target, VMID: in.VMID, Kind: kind}, Tier: tier, Effect: effect,
		Run: func(ctx context.Context, progress Progress) (any, error) {
			res, err := runRestore(ctx, env, target, kind, in, pve.RestoreOptions{Archive: in.VolID, VMID: in.VMID, Storage: in.Storage, Unique: unique, Start: in.Start}, progress)
			if unk := (*OutcomeUnknownError)(nil); errors.As(err, &unk) && unk.UPID != "" {
				// The restore task could not be followed to its end.
				return nil, notMarked(err, newNoun, unk.UPID, false)
			}
			if err != nil {
				return nil, err
			}
			res.NewGuest = true
			tags, marker, err := markCreated(ctx, env, target, kind, in.VMID, nil)
			if err != nil {
				return nil, markError(err, newNoun, target, res.UPID, false)
			}
			res.Tags = tags
			return restoredGuest{res, marker}, nil
		}}
	return call, target, nil
}

// storageAvailable reports whether node reaches the storage of volid.
func storageAvailable(all []pve.Resource, volid, node string) bool {
	sid, _, _ := strings.Cut(volid, ":")
	for _, s := range all {
		if s.Type == "storage" && s.Storage == sid && s.Node == node && s.Status == "available" {
			return true
		}
	}
	return false
}

// runRestore sends the restore, waits for it with progress, and reads the
// guest's state after it.
func runRestore(ctx context.Context, env *Env, node, kind string, in RestoreBackupInput, o pve.RestoreOptions, progress Progress) (RestoreBackupResult, error) {
	w := guestWrite{what: fmt.Sprintf("restore of %s into %s %d", in.VolID, kindWord(kind), in.VMID), node: node, vmid: in.VMID}
	upid, err := env.PVE.RestoreGuest(ctx, node, kind, o)
	if err != nil {
		return RestoreBackupResult{}, w.sendError(err)
	}
	res, err := waitForTask(ctx, env, upid, 12*time.Hour, logProgress(ctx, env, upid, "restoring", progress), w)
	if err != nil {
		return RestoreBackupResult{}, taskErrors(ctx, env, node, upid, err)
	}
	res.Node, res.VMID, res.Kind, res.Action = node, int64(in.VMID), kind, map[string]string{"qemu": "qmrestore", "lxc": "vzrestore"}[kind]
	if gs, err := env.PVE.GuestStatus(Fresh(ctx), node, kind, in.VMID); err == nil {
		res.GuestStatus = gs.Status
	}
	return RestoreBackupResult{TaskResult: res, VolID: in.VolID}, nil
}
