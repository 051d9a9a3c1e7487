package tools

// delete_backup, convert_to_template and delete_guest: RED, a person
// approves; delete_guest is BLACK for every guest Jarvis did not create.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- delete_backup ----

type DeleteBackupInput struct {
	VolID string `json:"volid" jsonschema:"the backup's volume id, as get_backups lists it: storage:backup/vzdump-qemu-101-….vma.zst"`
	Node  string `json:"node,omitempty" jsonschema:"for a backup on storage local to each node: the node it is on; Jarvis finds it when only one node has it"`
}

type DeleteBackupResult struct {
	TaskResult
	VolID   string `json:"volid"`
	Storage string `json:"storage"`
}

// backupVolRE is a backup's volume id: storage:backup/<name>.
var backupVolRE = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9._-]{0,99}):backup/([A-Za-z0-9_.:+/-]{1,400})$`)

// backupNameRE reads the guest kind and VMID out of a vzdump file name.
var backupNameRE = regexp.MustCompile(`vzdump-(qemu|lxc)-(\d+)-`)

func deleteBackup() *Tool {
	return define[DeleteBackupInput, DeleteBackupResult](spec{
		name: "delete_backup", title: "Delete a backup", tier: safety.Red,
		description: "Delete one backup by its volume id (see get_backups). It cannot be recovered; the plan says when it is the guest's only or newest backup. Needs a person's approval.",
		adjust: func(s *jsonschema.Schema) {
			p := property(s, "volid")
			p.Pattern = backupVolRE.String()
			p.MaxLength = ptr(512)
			nodeSchema(property(s, "node"))
		},
	}, prepareDeleteBackup)
}

func prepareDeleteBackup(ctx context.Context, env *Env, in DeleteBackupInput) (*Call, error) {
	m := backupVolRE.FindStringSubmatch(in.VolID)
	if m == nil || strings.Contains(in.VolID, "..") {
		return nil, inputErrorf("volid %q is not a backup's volume id: storage:backup/<file> (see get_backups)", in.VolID)
	}
	if err := checkOptionalNode(in.Node); err != nil {
		return nil, err
	}
	sid := m[1]
	view, err := readClusterView(ctx, env)
	if err != nil {
		return nil, err
	}
	online := func(n string) bool { return view.nodes[n].Status == "online" }
	b, err := findBackupCopy(ctx, env, view.storage, online, sid, in.VolID, in.Node, "delete")
	if err != nil {
		return nil, err
	}
	if b.item.Protected {
		return nil, inputErrorf("backup %s is protected in Proxmox; remove its protection there first if it really should go", in.VolID)
	}
	owner, kind := int(b.item.VMID), b.item.Subtype
	if nm := backupNameRE.FindStringSubmatch(in.VolID); nm != nil {
		if owner == 0 {
			owner, _ = strconv.Atoi(nm[2])
		}
		if kind == "" {
			kind = nm[1]
		}
	}
	target := safety.Target{VMID: owner, Kind: kind}
	noun := fmt.Sprintf("%s %d", kindWord(kind), owner)
	if owner == 0 {
		noun = "no guest"
	} else if g, err := env.PVE.FindGuest(ctx, owner); err == nil {
		target = guestTarget(g)
		noun = guestNoun(g)
	} else if !errors.Is(err, pve.ErrGuestNotFound) {
		return nil, fmt.Errorf("looking up VMID %d: %w", owner, err)
	} else {
		noun += " (no longer in the cluster)"
	}
	var also []safety.Target
	where := "storage " + sid
	if !b.shared {
		// The backup lies on that node's own disk: protection of the node applies.
		where += " on node " + b.node
		if target.Node == "" {
			target.Node = b.node
		} else if target.Node != b.node {
			also = append(also, safety.Target{Node: b.node})
		}
	}
	effect := fmt.Sprintf("Delete backup %s of %s (%s, %s) from %s; it cannot be recovered",
		in.VolID, noun, backupTime(int64(b.item.CTime)), humanBytes(int64(b.item.Size)), where)
	if owner > 0 {
		if s := backupStanding(ctx, env, view, b, owner, kind); s != "" {
			effect += "; " + s
		}
	}
	return &Call{Target: target, Also: also, Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: "deletion of backup " + in.VolID, node: b.node, vmid: owner}
		upid, err := env.PVE.DeleteVolume(ctx, b.node, sid, in.VolID)
		if err != nil {
			return nil, w.sendError(err)
		}
		res, err := waitForTask(ctx, env, upid, 5*time.Minute, progress, w)
		if err != nil {
			return nil, err
		}
		res.Node, res.VMID, res.Kind, res.Action = b.node, int64(owner), kind, "delete_backup"
		return DeleteBackupResult{TaskResult: res, VolID: in.VolID, Storage: sid}, nil
	}}, nil
}

// backupStanding says where the backup stands among the guest's backups in
// the cluster: its only one, or the newest of several. "" when that is not
// worth saying, or when not every backup storage could be read.
func backupStanding(ctx context.Context, env *Env, view *clusterView, b *backupCopy, owner int, kind string) string {
	seen := map[string]bool{}
	count, newer := 0, 0
	for _, s := range view.storage {
		if !contentListHas(s.Content, "backup") {
			continue
		}
		if n, ok := view.nodes[s.Node]; !ok || n.Status != "online" {
			continue
		}
		key := s.Storage
		if !bool(s.Shared) {
			key += "@" + s.Node
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		items, err := env.PVE.StorageContent(ctx, s.Node, s.Storage, "backup")
		if err != nil {
			return ""
		}
		for _, it := range items {
			if int(it.VMID) != owner {
				continue
			}
			count++
			if it.CTime > b.item.CTime {
				newer++
			}
		}
	}
	who := fmt.Sprintf("%s %d", kindWord(kind), owner)
	switch {
	case count <= 1:
		return "it is the only backup of " + who
	case newer == 0:
		return fmt.Sprintf("it is the newest of %d backups of %s", count, who)
	}
	return fmt.Sprintf("%d other backups of %s remain, %d of them newer", count-1, who, newer)
}

func contentListHas(list, want string) bool {
	for _, c := range strings.Split(list, ",") {
		if strings.TrimSpace(c) == want {
			return true
		}
	}
	return false
}

// backupTime says when a backup was made: "2026-12-03 02:00 UTC".
func backupTime(ctime int64) string {
	if ctime <= 0 {
		return "time unknown"
	}
	return time.Unix(ctime, 0).UTC().Format("2006-01-02 15:04 UTC")
}

// ---- convert_to_template ----

func convertToTemplate() *Tool {
	return define[GuestActionInput, TaskResult](spec{
		name: "convert_to_template", title: "Convert to template", tier: safety.Red,
		description: "Turn a stopped VM or container by VMID into a template. It cannot be undone: a template can never be started again, only cloned. Proxmox refuses guests with snapshots. Needs a person's approval.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, prepareConvertToTemplate)
}

func prepareConvertToTemplate(ctx context.Context, env *Env, in GuestActionInput) (*Call, error) {
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	switch {
	case bool(r.Template):
		return nil, inputErrorf("%s is already a template; nothing to do", noun)
	case r.Status == "running":
		return nil, inputErrorf("%s is running; shut it down first (shutdown_%s), then convert it", noun, map[string]string{"qemu": "vm", "lxc": "container"}[r.Type])
	case r.Status != "stopped":
		return nil, inputErrorf("%s is %s; only a stopped guest can become a template", noun, orWord(r.Status, "in an unknown state"))
	}
	if err := refuseLocked(r); err != nil {
		return nil, err
	}
	snaps, err := env.PVE.Snapshots(ctx, r.Node, r.Type, in.VMID)
	if err != nil {
		return nil, nodeError(ctx, env, r.Node, err)
	}
	var names []string
	for _, s := range snaps {
		if s.Name != "current" {
			names = append(names, "'"+s.Name+"'")
		}
	}
	if len(names) > 0 {
		return nil, inputErrorf("%s has %d snapshot(s) (%s); Proxmox cannot make a template of a guest with snapshots: delete them first (delete_snapshot)",
			noun, len(names), strings.Join(names, ", "))
	}
	effect := fmt.Sprintf("Convert stopped %s on node %s into a template; this cannot be undone — it can never be started again, only cloned", noun, r.Node)
	return &Call{Target: guestTarget(r), Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: "conversion of " + noun + " into a template", node: r.Node, vmid: in.VMID}
		var before []pve.Task
		if r.Type == "lxc" {
			// PVE answers a container's conversion with null, not the task:
			// the task is the new "vztemplate" task of the guest.
			before, _ = env.PVE.RecentGuestTasks(pve.WithFresh(ctx), r.Node, in.VMID, "vztemplate")
		}
		upid, err := env.PVE.ConvertToTemplate(ctx, r.Node, r.Type, in.VMID)
		if err != nil {
			return nil, w.sendError(err)
		}
		if upid == "" {
			if upid, err = newGuestTask(ctx, env, r, "vztemplate", before); err != nil {
				return nil, &OutcomeUnknownError{What: w.what, Check: w.check(""), Cause: err,
					Why: fmt.Sprintf("Proxmox accepted the %s but did not say which task does it, and Jarvis could not find the task", w.what)}
			}
		}
		res, err := waitForTask(ctx, env, upid, 5*time.Minute, progress, w)
		if err != nil {
			return nil, err
		}
		res.Node, res.VMID, res.Kind, res.Action = r.Node, int64(in.VMID), r.Type, "template"
		return res, nil
	}}, nil
}

// newGuestTask finds the task of type typ for a guest that was not among
// before: the one a write answered with null has started.
func newGuestTask(ctx context.Context, env *Env, r *pve.Resource, typ string, before []pve.Task) (string, error) {
	known := map[string]bool{}
	for _, t := range before {
		known[t.UPID] = true
	}
	var lastErr error
	for wait := 50 * time.Millisecond; wait < 3*time.Second; wait *= 2 {
		tasks, err := env.PVE.RecentGuestTasks(pve.WithFresh(ctx), r.Node, int(r.VMID), typ)
		lastErr = err
		for _, t := range tasks {
			if !known[t.UPID] && t.Type == typ {
				return t.UPID, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
	if lastErr != nil {
		return "", lastErr
	}
	return "", fmt.Errorf("no new %s task for VMID %d on node %s", typ, int64(r.VMID), r.Node)
}

// ---- delete_guest ----

type DeleteGuestInput struct {
	VMID                     int  `json:"vmid" jsonschema:"the guest's numeric id; only a guest Jarvis created can be deleted"`
	Purge                    bool `json:"purge,omitempty" jsonschema:"also remove it from backup jobs, replication jobs and HA"`
	DestroyUnreferencedDisks bool `json:"destroy_unreferenced_disks,omitempty" jsonschema:"also delete disks with its VMID that its config does not name, on every enabled storage"`
}

// DeleteGuestResult is delete_guest's outcome; the server forgets its
// record of the guest (GuestDeleted).
type DeleteGuestResult struct {
	TaskResult
}

// DeletedGuest tells the server which guest is gone.
func (r DeleteGuestResult) DeletedGuest() int { return int(r.VMID) }

// createdGuestDetails is what Env.Created may also tell for delete_guest's
// plan: which tool created a guest, and when.
type createdGuestDetails interface {
	CreatedGuestDetails(ctx context.Context, vmid int) (tool string, at time.Time, err error)
}

func deleteGuest() *Tool {
	return define[DeleteGuestInput, DeleteGuestResult](spec{
		name: "delete_guest", title: "Delete a guest Jarvis created", tier: safety.Red,
		description: "Delete a stopped VM or container by VMID with its disks. Only guests Jarvis itself created (tagged jarvis-created and in Jarvis's records) can be deleted; every other guest is refused. Cannot be undone. Needs a person's approval.",
		adjust:      func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, prepareDeleteGuest)
}

func prepareDeleteGuest(ctx context.Context, env *Env, in DeleteGuestInput) (*Call, error) {
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	switch {
	case r.Status == "running":
		return nil, inputErrorf("%s is running; stop it first (shutdown_%s), then delete it", noun, map[string]string{"qemu": "vm", "lxc": "container"}[r.Type])
	case r.Status != "stopped":
		return nil, inputErrorf("%s is %s; only a stopped guest can be deleted", noun, orWord(r.Status, "in an unknown state"))
	}
	if err := refuseLocked(r); err != nil {
		return nil, err
	}
	conf, err := readGuestConf(ctx, env, r)
	if err != nil {
		return nil, err
	}
	tags := conf.text("tags")
	if tags == "" {
		tags = r.Tags
	}
	tagged, id := createdMarks(guestTags(tags))
	recorded, recordErr := false, error(nil)
	if env.Created != nil && id != "" {
		recorded, recordErr = env.Created.CreatedByJarvis(ctx, in.VMID, id)
		recorded = recorded && recordErr == nil
	}
	// The plan says "created by Jarvis" only of a guest that was.
	created := ""
	if tagged && recorded {
		created = ", created by Jarvis"
		if d, ok := env.Created.(createdGuestDetails); ok {
			if tool, at, err := d.CreatedGuestDetails(ctx, in.VMID); err == nil && tool != "" {
				created = fmt.Sprintf(", created by Jarvis on %s (%s)", at.UTC().Format("2006-01-02"), tool)
			}
		}
	}
	effect := fmt.Sprintf("Delete %s on node %s%s, with its disks (%s); this cannot be undone", noun, r.Node, created, diskSummary(conf.disks(r.Type)))
	if in.DestroyUnreferencedDisks {
		effect += fmt.Sprintf("; every other disk with VMID %d on the enabled storages is deleted too", in.VMID)
	}
	if in.Purge {
		effect += "; it is also removed from backup jobs, replication jobs and HA"
	}
	call := &Call{Target: guestTarget(r), Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: "deletion of " + noun, node: r.Node, vmid: in.VMID}
		upid, err := env.PVE.DestroyGuest(ctx, r.Node, r.Type, in.VMID, in.Purge, in.DestroyUnreferencedDisks)
		if err != nil {
			return nil, w.sendError(err)
		}
		res, err := waitForTask(ctx, env, upid, 5*time.Minute, progress, w)
		if err != nil {
			return nil, err
		}
		res.Node, res.VMID, res.Kind, res.Action = r.Node, int64(in.VMID), r.Type, "destroy"
		return DeleteGuestResult{TaskResult: res}, nil
	}}
	// Jarvis deletes only what it made: both marks are needed. Any other
	// guest is BLACK, refused by the policy as blocked; no one is asked.
	why := ""
	switch {
	case !tagged && recorded:
		why = fmt.Sprintf("%s was not created by Jarvis as far as Proxmox shows: it has no %s tag, though Jarvis has a record of creating VMID %d", noun, createdTag, in.VMID)
	case !tagged:
		why = fmt.Sprintf("%s was not created by Jarvis (it has no %s tag)", noun, createdTag)
	case recordErr != nil:
		why = fmt.Sprintf("%s has the %s tag, but Jarvis could not read its own records to confirm it created it (%v)", noun, createdTag, recordErr)
	case id == "":
		why = fmt.Sprintf("%s was not created by Jarvis: it has the %s tag but not the one %s… id tag Jarvis gives each guest it creates (a tag copied by a clone made in Proxmox?)", noun, createdTag, createdIDPrefix)
	case !recorded:
		why = fmt.Sprintf("%s was not created by Jarvis: its tags say so, but Jarvis has no record of creating this guest (its id tag %s is not the one recorded for VMID %d)", noun, id, in.VMID)
	}
	if why != "" {
		call.Tier, call.TierReason = safety.Black, why
	}
	return call, nil
}

// diskSummary says how much disk a deletion removes, per storage:
// "8 GiB on local-lvm", or "no disks".
func diskSummary(disks []confDisk) string {
	per := map[string]int64{}
	var order []string
	for _, d := range disks {
		if d.cdrom || d.storage == "" {
			continue
		}
		if _, ok := per[d.storage]; !ok {
			order = append(order, d.storage)
		}
		per[d.storage] += d.size
	}
	if len(order) == 0 {
		return "no disks"
	}
	parts := make([]string, 0, len(order))
	for _, s := range order {
		parts = append(parts, sizeWords(per[s])+" on "+s)
	}
	return strings.Join(parts, ", ")
}
