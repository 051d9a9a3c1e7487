package pvesim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// task is a worker like PVE's fork_worker: it runs for a while, then its
// outcome (computed by finish at that moment) is applied.
type task struct {
	seq      int
	upid     string
	node     string
	pid      int
	pstart   int64
	typ      string
	id       string
	user     string
	start    time.Time
	end      time.Time
	done     bool
	exit     string
	log      []string
	startLog []string                           // lines visible while running
	finish   func() (exit string, log []string) // runs under s.mu when the task ends
}

func (s *Sim) newTask(n *node, typ, id, user string, start time.Time) *task {
	s.nextPID += 0x1F3
	t := &task{
		seq: len(s.tasks), node: n.name, pid: s.nextPID, typ: typ, id: id, user: user, start: start,
		pstart: int64(start.Sub(n.bootedAt).Seconds() * 100), // clock ticks since boot, as in /proc
	}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", n.name, t.pid, t.pstart, start.Unix(), typ, id, user)
	return t
}

func (s *Sim) addFinishedTask(n *node, typ, id, user string, start, end time.Time, exit string, log []string) {
	t := s.newTask(n, typ, id, user, start)
	t.end, t.done, t.exit, t.log = end, true, exit, log
	s.tasks = append(s.tasks, t)
}

// startTask queues a running task that calls finish after TaskDuration.
func (s *Sim) startTask(n *node, typ, id, user string, startLog []string, finish func() (string, []string)) *task {
	now := s.now()
	t := s.newTask(n, typ, id, user, now)
	t.end = now.Add(s.opts.TaskDuration)
	t.startLog = startLog
	t.finish = finish
	s.tasks = append(s.tasks, t)
	return t
}

// advance finishes every task whose time has come, in end-time order, so a
// guest's state only changes when its task ends. Called under s.mu.
func (s *Sim) advance() {
	now := s.now()
	var due []*task
	for _, t := range s.tasks {
		if !t.done && !now.Before(t.end) {
			due = append(due, t)
		}
	}
	sort.SliceStable(due, func(i, j int) bool {
		if due[i].end.Equal(due[j].end) {
			return due[i].seq < due[j].seq
		}
		return due[i].end.Before(due[j].end)
	})
	for _, t := range due {
		exit, log := t.finish()
		t.done, t.exit = true, exit
		t.log = append(append([]string{}, t.startLog...), log...)
		if exit == "OK" {
			t.log = append(t.log, "TASK OK")
		} else {
			t.log = append(t.log, "TASK ERROR: "+exit)
		}
		t.finish = nil
	}
}

func (s *Sim) findTask(upid string) *task {
	for _, t := range s.tasks {
		if t.upid == upid {
			return t
		}
	}
	return nil
}

func (t *task) statusJSON() map[string]any {
	m := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
		"type": t.typ, "id": t.id, "user": t.user, "status": "running",
	}
	if t.done {
		m["status"] = "stopped"
		m["exitstatus"] = t.exit
	}
	return m
}

func (t *task) listJSON() map[string]any {
	m := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.start.Unix(),
		"type": t.typ, "id": t.id, "user": t.user,
	}
	if t.done {
		m["endtime"] = t.end.Unix()
		m["status"] = t.exit
	}
	return m
}

func (t *task) lines() []string {
	if t.done {
		return t.log
	}
	return t.startLog
}

// --- lifecycle workers ---------------------------------------------------

// powerTask starts a start/stop/shutdown/reboot worker for g. It returns an
// error response instead when PVE's API itself refuses (before forking).
func (s *Sim) powerTask(g *guest, n *node, action, user string, params map[string]string) (*task, *response) {
	word := g.guestWord()
	if g.template && action == "start" {
		r := errorResponse(500, fmt.Sprintf("%s %d is a template, cannot start", word, g.vmid))
		return nil, &r
	}
	running := g.status == "running"
	// qemu checks "already running" inside the worker, lxc and reboots in the API.
	if g.kind == "lxc" {
		switch {
		case action == "start" && running:
			r := errorResponse(500, fmt.Sprintf("CT %d already running", g.vmid))
			return nil, &r
		case action != "start" && !running:
			r := errorResponse(500, fmt.Sprintf("CT %d not running", g.vmid))
			return nil, &r
		}
	} else if action == "reboot" && !running {
		r := errorResponse(500, fmt.Sprintf("VM %d not running", g.vmid))
		return nil, &r
	}
	prefix := "qm"
	if g.kind == "lxc" {
		prefix = "vz"
	}
	lock := g.lock
	t := s.startTask(n, prefix+action, fmt.Sprint(g.vmid), user, nil, func() (string, []string) {
		if lock != "" && params["skiplock"] != "1" {
			return fmt.Sprintf("%s %d is locked (%s)", word, g.vmid, lock), nil
		}
		now := s.now()
		switch action {
		case "start":
			if g.status == "running" {
				return fmt.Sprintf("VM %d already running", g.vmid), nil
			}
			g.setStatus("running", now)
			return "OK", nil
		case "stop", "shutdown":
			g.setStatus("stopped", now)
			return "OK", nil
		case "reboot":
			if g.status != "running" {
				return fmt.Sprintf("%s %d not running", word, g.vmid), nil
			}
			g.startedAt = now
			return "OK", []string{"Requesting reboot of " + strings.ToLower(word) + " " + fmt.Sprint(g.vmid)}
		}
		return "unknown action " + action, nil
	})
	return t, nil
}

func (s *Sim) snapshotTask(g *guest, n *node, name, description string, vmstate bool, user string) *task {
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[g.kind]
	lockBefore := g.lock
	if lockBefore == "" {
		g.lock = "snapshot"
	}
	disk := fmt.Sprintf("local-lvm:vm-%d-disk-0", g.vmid)
	startLog := []string{fmt.Sprintf("snapshotting 'drive-scsi0' (%s)", disk)}
	if g.kind == "lxc" {
		startLog = []string{"create storage snapshot '" + name + "'"}
	}
	return s.startTask(n, prefix+"snapshot", fmt.Sprint(g.vmid), user, startLog, func() (string, []string) {
		if lockBefore != "" {
			return fmt.Sprintf("%s %d is locked (%s)", g.guestWord(), g.vmid, lockBefore), nil
		}
		g.lock = ""
		if g.snapshot(name) != nil {
			return fmt.Sprintf("snapshot name '%s' already used", name), nil
		}
		g.snapshots = append(g.snapshots, &snapshot{name: name, description: description, parent: g.parent,
			snaptime: s.now().Unix(), vmstate: vmstate && g.status == "running"})
		g.parent = name
		return "OK", []string{fmt.Sprintf(`  Logical volume "snap_vm-%d-disk-0_%s" created.`, g.vmid, name)}
	})
}

func (s *Sim) rollbackTask(g *guest, n *node, name string, start bool, user string) *task {
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[g.kind]
	lockBefore := g.lock
	if lockBefore == "" {
		g.lock = "rollback"
	}
	return s.startTask(n, prefix+"rollback", fmt.Sprint(g.vmid), user, nil, func() (string, []string) {
		if lockBefore != "" {
			return fmt.Sprintf("%s %d is locked (%s)", g.guestWord(), g.vmid, lockBefore), nil
		}
		g.lock = ""
		sn := g.snapshot(name)
		if sn == nil {
			return fmt.Sprintf("snapshot '%s' does not exist", name), nil
		}
		now := s.now()
		g.setStatus("stopped", now)
		if sn.vmstate || start {
			g.setStatus("running", now)
		}
		g.parent = name
		return "OK", []string{fmt.Sprintf(`  Logical volume "vm-%d-disk-0" successfully removed.`, g.vmid),
			fmt.Sprintf(`  Logical volume "vm-%d-disk-0" created.`, g.vmid)}
	})
}

func (s *Sim) deleteSnapshotTask(g *guest, n *node, name string, force bool, user string) *task {
	prefix := map[string]string{"qemu": "qm", "lxc": "vz"}[g.kind]
	lockBefore := g.lock
	if lockBefore == "" {
		g.lock = "snapshot-delete"
	}
	return s.startTask(n, prefix+"delsnapshot", fmt.Sprint(g.vmid), user, nil, func() (string, []string) {
		if lockBefore != "" && !force {
			return fmt.Sprintf("%s %d is locked (%s)", g.guestWord(), g.vmid, lockBefore), nil
		}
		g.lock = ""
		sn := g.snapshot(name)
		if sn == nil {
			return fmt.Sprintf("snapshot '%s' does not exist", name), nil
		}
		kept := g.snapshots[:0]
		for _, other := range g.snapshots {
			if other == sn {
				continue
			}
			if other.parent == name {
				other.parent = sn.parent
			}
			kept = append(kept, other)
		}
		g.snapshots = kept
		if g.parent == name {
			g.parent = sn.parent
		}
		return "OK", []string{fmt.Sprintf(`  Logical volume "snap_vm-%d-disk-0_%s" successfully removed.`, g.vmid, name)}
	})
}
