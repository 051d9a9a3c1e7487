package tools

// migrate_guest: RED, a person approves. Protection applies to the source
// node (the target) and to the node the guest moves to (Call.Also).

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// cloudInitVolRE is a cloud-init drive's volume, as QemuMigrate knows one.
var cloudInitVolRE = regexp.MustCompile(`vm-\d+-cloudinit`)

type MigrateInput struct {
	VMID       int    `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	TargetNode string `json:"target_node" jsonschema:"the node to move the guest to"`
	Online     *bool  `json:"online,omitempty" jsonschema:"VMs: live migration of a running VM (the default, and the only way Proxmox moves one). Containers cannot move live: a running one is stopped, moved and started again"`
}

type MigrateResult struct {
	TaskResult
	SourceNode string `json:"source_node"`
	TargetNode string `json:"target_node"`
	Mode       string `json:"mode" jsonschema:"online (live), restart (a container stopped, moved and started) or offline (a stopped guest)"`
}

// migrationTimeout is how long a container gets to shut down in a restart
// migration (PVE's default).
const migrationTimeout = 180

func migrateGuest() *Tool {
	return define[MigrateInput, MigrateResult](spec{
		name: "migrate_guest", title: "Migrate to another node", tier: safety.Red,
		description: "Move a VM or container by VMID to another node: a running VM live (its local disks copied while it runs), a running container by restart (down while it moves), a stopped guest offline. Refuses when a running guest does not fit in the target's free memory. Needs a person's approval.",
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			nodeSchema(property(s, "target_node"))
		},
	}, prepareMigrate)
}

func prepareMigrate(ctx context.Context, env *Env, in MigrateInput) (*Call, error) {
	if err := checkNode(in.TargetNode); err != nil {
		return nil, err
	}
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	if r.Node == in.TargetNode {
		return nil, inputErrorf("%s is already on node %s; choose another target_node", noun, r.Node)
	}
	if err := refuseLocked(r); err != nil {
		return nil, err
	}
	view, err := readClusterView(ctx, env)
	if err != nil {
		return nil, err
	}
	target, ok := view.nodes[in.TargetNode]
	switch {
	case !ok:
		return nil, inputErrorf("there is no node %q in this cluster (its nodes: %s)", in.TargetNode, view.nodeNames())
	case target.Status != "online":
		return nil, inputErrorf("node %s is %s; Proxmox can migrate only to an online node", in.TargetNode, orWord(target.Status, "not online"))
	}
	running := r.Status == "running"
	mode := "offline"
	switch {
	case running && r.Type == "qemu":
		if in.Online != nil && !*in.Online {
			return nil, inputErrorf("%s is running, and Proxmox moves a running VM only live: leave online out (or true), or shut the VM down first", noun)
		}
		mode = "online"
	case running:
		if in.Online != nil && *in.Online {
			return nil, inputErrorf("%s is a running container, and containers cannot be migrated live: leave online out, and Jarvis moves it by restart (stopped, moved, started again)", noun)
		}
		mode = "restart"
	case r.Status != "stopped":
		return nil, inputErrorf("%s is %s; migrate it when it is running or stopped", noun, orWord(r.Status, "in an unknown state"))
	}
	conf, err := readGuestConf(ctx, env, r)
	if err != nil {
		return nil, err
	}
	// Disks on storage the target does not share are copied; storage the
	// target does not have at all stops the migration.
	var local []confDisk
	for _, d := range conf.disks(r.Type) {
		if d.storage == "" {
			continue
		}
		src, ok := view.storageOn(r.Node, d.storage)
		// A cloud-init drive is no CD-ROM to eject: Proxmox copies it to the
		// same storage on the target (QemuMigrate: a "generated" volume, copied
		// before a live migration too, needing no with-local-disks).
		if d.cdrom && cloudInitVolRE.MatchString(d.volid) {
			if _, there := view.storageOn(in.TargetNode, d.storage); !there {
				return nil, inputErrorf("storage %s (the cloud-init drive %s of %s) is not available on node %s; Proxmox cannot migrate the guest there", d.storage, d.key, noun, in.TargetNode)
			}
			continue
		}
		if d.cdrom {
			if ok && !bool(src.Shared) {
				return nil, inputErrorf("%s of %s holds %s from storage %s, which is local to node %s; eject it first (Proxmox cannot migrate a local CD-ROM)", d.key, noun, d.volid, d.storage, r.Node)
			}
			continue
		}
		if _, there := view.storageOn(in.TargetNode, d.storage); !there {
			return nil, inputErrorf("storage %s (disk %s of %s) is not available on node %s; Proxmox cannot migrate the guest there", d.storage, d.key, noun, in.TargetNode)
		}
		if !ok || !bool(src.Shared) {
			local = append(local, d)
		}
	}
	guestMem := int64(r.MaxMem)
	if running {
		if target.MaxMem <= 0 {
			return nil, fmt.Errorf("cannot read the memory of node %s (the API token needs Sys.Audit on /nodes/%s)", in.TargetNode, in.TargetNode)
		}
		if free := int64(target.MaxMem) - int64(target.Mem); guestMem > free {
			return nil, inputErrorf("node %s has %s of memory free now; running %s (%s RAM) does not fit there",
				in.TargetNode, humanBytes(free), noun, humanBytes(guestMem))
		}
	}
	effect := migrateEffect(r, view, in.TargetNode, mode, local)
	ha := r.HAState != ""
	if ha {
		effect += "; it is HA-managed, so the move goes through the HA manager"
	}
	m := pve.Migration{Target: in.TargetNode}
	switch mode {
	case "online":
		m.Online, m.WithLocalDisks = true, len(local) > 0
	case "restart":
		m.Restart, m.Timeout = true, migrationTimeout
	}
	also := []safety.Target{{Node: in.TargetNode, VMID: in.VMID, Kind: r.Type, Name: r.Name, Status: r.Status}}
	return &Call{Target: guestTarget(r), Also: also, Effect: effect, Run: func(ctx context.Context, progress Progress) (any, error) {
		w := guestWrite{what: fmt.Sprintf("migration of %s from node %s to node %s", noun, r.Node, in.TargetNode), node: r.Node, vmid: in.VMID}
		upid, err := env.PVE.MigrateGuest(ctx, r.Node, r.Type, in.VMID, m)
		if err != nil {
			return nil, w.sendError(err)
		}
		// Copying disks takes as long as it takes; the call's own deadline
		// ends the wait first, and then the outcome is unknown, never failed.
		start := time.Now()
		res, err := waitForTask(ctx, env, upid, time.Hour, progress, w)
		if err != nil {
			return nil, err
		}
		// An HA-managed guest's migration is only handed to the HA manager:
		// its task ("hamigrate") ends OK at once, and the guest moves later.
		if id, _ := pve.ParseUPID(upid); ha || id.Type == "hamigrate" {
			if err := awaitHAMove(ctx, env, w, upid, r, in.TargetNode, start.Add(time.Hour), progress); err != nil {
				return nil, err
			}
			res.WaitedSeconds = round1(time.Since(start).Seconds())
		}
		res.Node, res.VMID, res.Kind, res.Action = in.TargetNode, int64(in.VMID), r.Type, "migrate"
		if st, err := env.PVE.GuestStatus(pve.WithFresh(ctx), in.TargetNode, r.Type, in.VMID); err == nil {
			res.GuestStatus = st.Status
		}
		return MigrateResult{TaskResult: res, SourceNode: r.Node, TargetNode: in.TargetNode, Mode: mode}, nil
	}}, nil
}

// awaitHAMove waits, on fresh reads with a short backoff as a task wait
// polls, until the HA manager has moved the guest: on node target and not
// locked for a migration. It gives up at the call's deadline (or until), and
// then the outcome is unknown: the HA manager was asked, and may still move
// the guest, or may have given up.
func awaitHAMove(ctx context.Context, env *Env, w guestWrite, upid string, r *pve.Resource, target string, until time.Time, progress Progress) error {
	start := time.Now()
	wctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	if d, ok := wctx.Deadline(); ok {
		until = d
	}
	noun := guestNoun(r)
	where, lastErr := fmt.Sprintf("on node %s", r.Node), error(nil)
	wait := 25 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-wctx.Done():
			why := fmt.Sprintf("Proxmox handed the %s to the HA manager (task %s ended OK), but %s was still %s when Jarvis stopped waiting after %.0f s",
				w.what, upid, noun, where, time.Since(start).Seconds())
			if lastErr != nil {
				why = fmt.Sprintf("Proxmox handed the %s to the HA manager (task %s ended OK), but where %s is could not be read before Jarvis stopped waiting after %.0f s",
					w.what, upid, noun, time.Since(start).Seconds())
			}
			return &OutcomeUnknownError{What: w.what, UPID: upid, Cause: lastErr, Why: why,
				Check: fmt.Sprintf("Before retrying, check get_guest_status for VMID %d (its node and HA state) and get_cluster_health (the HA manager's view): the HA manager may still move it, or may have given up", w.vmid)}
		case <-timer.C:
		}
		g, err := env.PVE.FindGuest(Fresh(wctx), w.vmid)
		switch {
		case err != nil && wctx.Err() != nil:
			continue // the deadline: answered above
		case err != nil:
			lastErr = err
		default:
			lastErr = nil
			if g.Node == target && g.Lock != "migrate" {
				return nil
			}
			where = "on node " + g.Node
			if g.Lock == "migrate" {
				where += ", locked by a migration under way"
			}
		}
		progress(fmt.Sprintf("the HA manager is moving %s to node %s: it is %s", noun, target, where), time.Since(start).Seconds(), until.Sub(start).Seconds())
		timer.Reset(wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// migrateEffect is the sentence a person approves.
func migrateEffect(r *pve.Resource, view *clusterView, target, mode string, local []confDisk) string {
	noun := guestNoun(r)
	var total int64
	var where []string
	for _, d := range local {
		total += d.size
		where = append(where, d.key+" on "+d.storage)
	}
	disks := "its disks are on shared storage and stay where they are"
	if len(local) == 1 {
		disks = fmt.Sprintf("its %s local disk (%s)", sizeWords(total), where[0])
	} else if len(local) > 1 {
		disks = fmt.Sprintf("its %d local disks, %s in all (%s)", len(local), sizeWords(total), strings.Join(where, ", "))
	}
	mem := fmt.Sprintf("(%s RAM)", humanBytes(int64(r.MaxMem)))
	switch mode {
	case "online":
		s := fmt.Sprintf("Live-migrate running %s %s from node %s to node %s (%s)", noun, mem, r.Node, target, view.memoryOnNode(target))
		if len(local) > 0 {
			return s + ", copying " + disks + " while it runs"
		}
		return s + "; " + disks
	case "restart":
		s := fmt.Sprintf("Restart-migrate running %s %s from node %s to node %s (%s): it is shut down (up to %d s), moved", noun, mem, r.Node, target,
			view.memoryOnNode(target), migrationTimeout)
		if len(local) > 0 {
			s += " with " + disks
		}
		return s + fmt.Sprintf(" and started again on %s; its services are down meanwhile", target)
	}
	s := fmt.Sprintf("Migrate stopped %s from node %s to node %s", noun, r.Node, target)
	if len(local) > 0 {
		return s + ", copying " + disks
	}
	return s + "; " + disks
}
