package watch

// A guest that was running and is now stopped: did a task stop it (a person,
// Jarvis, the HA manager, a backup in stop mode, a node shutting down), or did
// it stop by itself (a crash, the OOM killer, a poweroff from inside)? The
// cluster's tasks tell: a crash leaves none. Only when the tasks could be read,
// and the token may see everyone's, does the watcher say "unexpectedly"; a
// check that could not run is not a pass.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// taskSlack widens the window a stopping task is looked for in, before the
// poll that last saw the guest running: that answer may come from the read
// cache (JARVIS_READ_CACHE, up to 10 s old), a task's times are whole seconds
// of the node's clock, and the clocks of Jarvis and the nodes differ a little.
// Erring wide costs at most a crash reported as an ordinary stop.
const taskSlack = 15 * time.Second

// guestStopTasks are the task types (PVE's worker types) that stop a guest, or
// may leave it stopped for a while, named by its VMID in the task's id.
var guestStopTasks = map[string]bool{
	// qemu-server
	"qmstop": true, "qmshutdown": true, "qmreboot": true, "qmsuspend": true, // qmsuspend: hibernate too (todisk)
	"qmigrate": true, "qmrollback": true, "qmdestroy": true, "qmrestore": true,
	// pve-container
	"vzstop": true, "vzshutdown": true, "vzreboot": true, "vzsuspend": true,
	"vzmigrate": true, "vzrollback": true, "vzdestroy": true, "vzrestore": true,
	// a backup in stop mode stops the guest while it runs
	"vzdump": true,
	// the HA stack: a request handed to the HA manager (the node then runs the
	// stop or migration itself, as another task)
	"hastop": true, "hashutdown": true, "hamigrate": true, "harelocate": true,
}

// nodeStopTasks stop every guest of their node, with an empty id: a node
// shutting down (pve-guests runs stopall), bulk actions, a backup job of
// several guests.
var nodeStopTasks = map[string]bool{"stopall": true, "migrateall": true, "suspendall": true, "vzdump": true}

// guestSeen is what the watcher last knew of a guest.
type guestSeen struct {
	status  string    // the last definite state: running or stopped
	node    string    // where it was then
	running time.Time // when a poll last saw it running (zero: never)
}

func guestStoppedKey(vmid int64) string { return fmt.Sprintf("guest-stopped:%d", vmid) }
func guestCrashedKey(vmid int64) string { return fmt.Sprintf("guest-crashed:%d", vmid) }

// noteGuest compares a guest's row with what the watcher last knew of it and
// raises or resolves its alerts. A guest not seen before (the first poll after
// start) is only learnt. A status other than running or stopped (unknown while
// its node is offline) is no state to compare with: the last definite one is
// kept, so a guest a node's crash took down is noticed when the node is back.
func (w *Watcher) noteGuest(ctx context.Context, r pve.Resource, polled time.Time, tasks *taskView) {
	id := int64(r.VMID)
	prev, seen := w.guests[id]
	stopped := w.guestAlert(r, guestStoppedKey(id), store.AlertGuestStopped)
	crashed := w.guestAlert(r, guestCrashedKey(id), store.AlertGuestStoppedUnexpectedly)
	switch r.Status {
	case "running":
		w.guests[id] = guestSeen{status: "running", node: r.Node, running: polled}
		w.alert(ctx, stopped, false)
		w.alert(ctx, crashed, false)
	case "stopped":
		w.guests[id] = guestSeen{status: "stopped", node: r.Node, running: prev.running}
		if !seen || prev.status != "running" {
			return
		}
		nodes := []string{r.Node}
		if prev.node != "" && prev.node != r.Node {
			nodes = append(nodes, prev.node)
		}
		c := tasks.stopCause(ctx, id, nodes, prev.running)
		switch {
		case c.task != nil:
			stopped.severity = store.SeverityWarning
			stopped.raise = fmt.Sprintf("guest %d '%s' on %s stopped (task %s by %s)", id, r.Name, r.Node, c.task.Type, c.task.User)
			w.alert(ctx, stopped, true)
		case c.unknown != "":
			w.log.Warn("cannot tell whether a task stopped a guest", "vmid", id, "cause", c.unknown)
			stopped.severity = store.SeverityWarning
			stopped.raise = fmt.Sprintf("guest %d '%s' on %s stopped; it could not be told whether a task stopped it (%s)", id, r.Name, r.Node, c.unknown)
			w.alert(ctx, stopped, true)
		default:
			// Critical: a service that was up is down and nobody asked for it.
			// An ordinary stop was someone's decision and stays a warning.
			crashed.severity = store.SeverityCritical
			crashed.raise = fmt.Sprintf("guest %d '%s' on %s stopped unexpectedly (no task stopped it)", id, r.Name, r.Node)
			w.alert(ctx, crashed, true)
		}
	}
}

// guestAlert is the guest's alert of kind under key, its resolution notice filled in.
func (w *Watcher) guestAlert(r pve.Resource, key, kind string) alertSpec {
	id := int64(r.VMID)
	return alertSpec{key: key, kind: kind, subject: store.GuestSubject(id), vmid: id, node: r.Node,
		resolve: fmt.Sprintf("guest %d '%s' is running again", id, r.Name)}
}

// stopCause is what the tasks say about a guest that stopped: the task that
// stopped it; or why that could not be told; or, both empty, that no task did.
type stopCause struct {
	task    *pve.Task
	unknown string
}

// taskView reads the cluster's tasks for one guests poll, each read at most
// once and only when a guest stopped. Reads skip the read cache: a task that
// started a moment ago must be seen.
type taskView struct {
	pve *pve.Client

	clusterRead bool
	cluster     []pve.Task
	clusterErr  error

	permsRead bool
	perms     pve.Permissions
	permsErr  error
}

// stopCause looks for a task that stopped guest vmid (on nodes, where it is
// and where it was) and was running at, or ended after, the moment it was
// last seen running (less taskSlack). It reads the cluster's task list, then
// each node's own list for the guest (a node's list is its task index itself;
// the cluster's is what the nodes broadcast). "No task" is only concluded when
// every read worked and the token may see every user's tasks: without
// Sys.Audit PVE lists only the token's own.
func (v *taskView) stopCause(ctx context.Context, vmid int64, nodes []string, since time.Time) stopCause {
	var unread []string
	if !v.clusterRead {
		v.clusterRead = true
		v.cluster, v.clusterErr = v.pve.ClusterTasks(pve.WithFresh(ctx))
	}
	if v.clusterErr != nil {
		unread = append(unread, "the cluster's tasks could not be read: "+cause(v.clusterErr))
	} else if t := findStopTask(v.cluster, vmid, nodes, since); t != nil {
		return stopCause{task: t}
	}
	for _, node := range nodes {
		list, err := v.pve.RecentGuestTasks(pve.WithFresh(ctx), node, int(vmid), "")
		if err != nil {
			unread = append(unread, fmt.Sprintf("node %s's tasks could not be read: %s", node, cause(err)))
			continue
		}
		if t := findStopTask(list, vmid, nodes, since); t != nil {
			return stopCause{task: t}
		}
	}
	if len(unread) > 0 {
		return stopCause{unknown: unread[0]}
	}
	if !v.permsRead {
		v.permsRead = true
		v.perms, v.permsErr = v.pve.Permissions(ctx)
	}
	if v.permsErr != nil {
		return stopCause{unknown: "the API token's permissions could not be read, so whether it sees every task is not known: " + cause(v.permsErr)}
	}
	if !v.perms.Has("/", "Sys.Audit") {
		return stopCause{unknown: "the API token lacks Sys.Audit on /, so it sees only the tasks it started itself"}
	}
	for _, node := range nodes {
		if !v.perms.Has("/nodes/"+node, "Sys.Audit") {
			return stopCause{unknown: fmt.Sprintf("the API token lacks Sys.Audit on /nodes/%s, so it sees only the tasks it started there", node)}
		}
	}
	return stopCause{}
}

// findStopTask returns the newest task in list (newest first, as PVE lists
// them) that stops guest vmid and was running at, or ended after, since less
// taskSlack; nil when none does.
func findStopTask(list []pve.Task, vmid int64, nodes []string, since time.Time) *pve.Task {
	id := strconv.FormatInt(vmid, 10)
	from := since.Add(-taskSlack)
	for i := range list {
		t := &list[i]
		switch {
		case t.ID == id && guestStopTasks[t.Type]:
		case t.ID == "" && nodeStopTasks[t.Type] && slices.Contains(nodes, t.Node):
		default:
			continue
		}
		running := t.EndTime == 0 && t.Status == ""
		if running || !time.Unix(int64(t.EndTime), 0).Before(from) {
			return t
		}
	}
	return nil
}
