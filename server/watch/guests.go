package watch

// A guest that was running and is now stopped: did a task stop it (a person,
// Jarvis, the HA manager, a backup in stop mode, a node shutting down), or did
// it stop by itself (a crash, the OOM killer, a poweroff from inside)? The
// cluster's tasks tell: a crash leaves none. Only when the tasks could be read,
// and the token may see everyone's, does the watcher say "unexpectedly"; a
// check that could not run is not a pass.
//
// The same holds for an alert that outlived what the watcher knew: after a
// restart, or a pause in polling, the guest is learnt afresh, and a stop alert
// still open for it stays open only while the tasks show nobody acted on the
// guest since it was raised (reconfirm). Otherwise a standing approval
// triggered by "stopped unexpectedly" could start a guest a person has since
// started and stopped on purpose.

import (
	"context"
	"fmt"
	"maps"
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
// start or after a pause) is only learnt, and a stop alert still open for it
// re-checked (reconfirm). A status other than running or stopped (unknown while
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
		if !seen {
			w.reconfirm(ctx, r, tasks, stopped, crashed)
			return
		}
		if prev.status != "running" {
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

// reconfirm re-checks the stop alerts left open for a stopped guest the
// watcher sees for the first time in this run or since a pause (loadOpenAlerts
// keeps them): they describe a stop nobody has watched since. An alert stays
// open only when the tasks show that none acted on the guest since it was
// raised, and the guest is where it was: still the same stop. A task that did
// (a person started it and stopped it again, a migration, a restore) means the
// alert no longer describes it; tasks that cannot be read, or a token that may
// not see everyone's, mean it cannot be re-confirmed. Either way it is resolved,
// with a notice that says why.
func (w *Watcher) reconfirm(ctx context.Context, r pve.Resource, tasks *taskView, alerts ...alertSpec) {
	id := int64(r.VMID)
	for _, a := range alerts {
		o, open := w.open[a.key]
		if !open {
			continue
		}
		what := map[string]string{store.AlertGuestStoppedUnexpectedly: "crash", store.AlertGuestStopped: "stop"}[a.kind]
		var why string
		if o.node != "" && o.node != r.Node {
			why = fmt.Sprintf("guest %d '%s' is on %s now, not on %s; the %s alert no longer describes it", id, r.Name, r.Node, o.node, what)
		} else {
			c := tasks.touchedSince(ctx, id, []string{r.Node}, o.at)
			switch {
			case c.task != nil:
				why = fmt.Sprintf("guest %d '%s' was acted on by a task since the alert (task %s by %s); the %s alert no longer describes it",
					id, r.Name, c.task.Type, c.task.User, what)
			case c.unknown != "":
				w.log.Warn("cannot re-confirm a guest's open stop alert; it is resolved", "vmid", id, "key", a.key, "cause", c.unknown)
				why = fmt.Sprintf("whether a task acted on guest %d '%s' since the alert could not be told (%s); the %s alert cannot be re-confirmed",
					id, r.Name, c.unknown, what)
			default:
				continue // no task touched it: still the same stop
			}
		}
		a.resolve = why
		w.alert(ctx, a, false)
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
	return v.look(ctx, vmid, nodes, func(list []pve.Task) *pve.Task { return findStopTask(list, vmid, nodes, since) })
}

// touchedSince looks, as stopCause does, for any task that acted on guest vmid
// (on nodes) and was running at, or ended after, the moment at: in its answer
// the task is one that did, unknown why that could not be told, and both
// empty mean none did.
func (v *taskView) touchedSince(ctx context.Context, vmid int64, nodes []string, at time.Time) stopCause {
	return v.look(ctx, vmid, nodes, func(list []pve.Task) *pve.Task { return findTouchTask(list, vmid, nodes, at) })
}

// look searches the tasks of guest vmid for one find returns; "none" is only
// concluded when every read worked and the token may see every user's tasks.
func (v *taskView) look(ctx context.Context, vmid int64, nodes []string, find func([]pve.Task) *pve.Task) stopCause {
	var unread []string
	if !v.clusterRead {
		v.clusterRead = true
		v.cluster, v.clusterErr = v.pve.ClusterTasks(pve.WithFresh(ctx))
	}
	if v.clusterErr != nil {
		unread = append(unread, "the cluster's tasks could not be read: "+cause(v.clusterErr))
	} else if t := find(v.cluster); t != nil {
		return stopCause{task: t}
	}
	for _, node := range nodes {
		list, err := v.pve.RecentGuestTasks(pve.WithFresh(ctx), node, int(vmid), "")
		if err != nil {
			unread = append(unread, fmt.Sprintf("node %s's tasks could not be read: %s", node, cause(err)))
			continue
		}
		if t := find(list); t != nil {
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
	return findTask(list, vmid, nodes, since.Add(-taskSlack), guestStopTasks, nodeStopTasks)
}

// findTouchTask returns the newest task in list that acted on guest vmid —
// any task naming it, or a task of a whole node (nodes) that may have stopped
// or started it — and was running at, or ended after, at (to the second: a
// task's times are whole seconds). No slack: at is when an alert was raised,
// after the stop it describes, and a task that stopped the guest then is no
// news; a task ending in that same second counts all the same, which errs
// towards resolving an alert, never towards keeping one.
func findTouchTask(list []pve.Task, vmid int64, nodes []string, at time.Time) *pve.Task {
	return findTask(list, vmid, nodes, at.Truncate(time.Second), nil, nodeTouchTasks)
}

// nodeTouchTasks are the tasks of a whole node, with an empty id, that may
// have stopped or started any of its guests: nodeStopTasks, and the start of
// the guests to start at boot.
var nodeTouchTasks = func() map[string]bool {
	m := map[string]bool{"startall": true}
	maps.Copy(m, nodeStopTasks)
	return m
}()

// findTask returns the newest task in list (newest first, as PVE lists them)
// that names guest vmid and is of a type in guestTypes (nil: of any type), or
// runs over a whole node of nodes and is of a type in nodeTypes, and was
// running at, or ended after, from; nil when none does.
func findTask(list []pve.Task, vmid int64, nodes []string, from time.Time, guestTypes, nodeTypes map[string]bool) *pve.Task {
	id := strconv.FormatInt(vmid, 10)
	for i := range list {
		t := &list[i]
		switch {
		case t.ID == id && (guestTypes == nil || guestTypes[t.Type]):
		case t.ID == "" && nodeTypes[t.Type] && slices.Contains(nodes, t.Node):
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
