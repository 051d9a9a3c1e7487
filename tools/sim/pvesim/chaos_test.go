package pvesim

import (
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// clusterTasks lists /cluster/tasks as the full token sees it.
func (h *harness) clusterTasks(auth string) []map[string]any {
	h.t.Helper()
	var tasks []map[string]any
	r := h.call(auth, "GET", "/cluster/tasks", nil)
	if r.status != 200 || json.Unmarshal(r.env.Data, &tasks) != nil {
		h.t.Fatalf("cluster tasks = %d %s", r.status, r.body)
	}
	return tasks
}

// guestRow is the guest's row of /cluster/resources.
func (h *harness) guestRow(vmid int) map[string]any {
	h.t.Helper()
	var rows []map[string]any
	_ = json.Unmarshal(h.get("/cluster/resources", url.Values{"type": {"vm"}}).env.Data, &rows)
	for _, r := range rows {
		if r["vmid"] == float64(vmid) {
			return r
		}
	}
	h.t.Fatalf("no row for guest %d", vmid)
	return nil
}

// A crash stops the guest and leaves no task behind: nothing in the API says
// who stopped it, which is what tells a crash from a stop.
func TestCrashGuest(t *testing.T) {
	h := newHarness(t)
	h.clock.Add(time.Minute)
	before := len(h.clusterTasks(fullAuth))
	if row := h.guestRow(101); row["status"] != "running" || row["uptime"] == float64(0) {
		t.Fatalf("101 before the crash: %v", row)
	}
	if err := h.sim.CrashGuest(101); err != nil {
		t.Fatal(err)
	}
	row := h.guestRow(101)
	if row["status"] != "stopped" || row["uptime"] != float64(0) || row["mem"] != float64(0) {
		t.Errorf("101 after the crash: %v", row)
	}
	var st map[string]any
	_ = json.Unmarshal(h.get("/nodes/pve/qemu/101/status/current", nil).env.Data, &st)
	if st["status"] != "stopped" || st["pid"] != nil && st["pid"] != float64(0) {
		t.Errorf("status/current after the crash: %v", st)
	}
	if after := len(h.clusterTasks(fullAuth)); after != before {
		t.Errorf("a crash recorded a task: %d tasks, was %d", after, before)
	}
	var nodeTasks []map[string]any
	_ = json.Unmarshal(h.get("/nodes/pve/tasks", url.Values{"vmid": {"101"}, "source": {"all"}}).env.Data, &nodeTasks)
	for _, task := range nodeTasks {
		if task["type"] != "qmsnapshot" { // the seeded history holds a snapshot of 101, nothing else
			t.Errorf("a task for 101 after its crash: %v", task)
		}
	}
	for _, c := range []struct {
		vmid int
		why  string
	}{{101, "crashed already"}, {104, "never ran"}, {4242, "unknown"}} {
		if err := h.sim.CrashGuest(c.vmid); err == nil {
			t.Errorf("CrashGuest(%d), %s: no error", c.vmid, c.why)
		}
	}
	// It starts again like any stopped guest.
	if exit := h.runTask("/nodes/pve/qemu/101/status/start", nil); exit != "OK" {
		t.Errorf("start after the crash: %s", exit)
	}
}

// Everything the simulator does to stop a guest is a task in /cluster/tasks
// (running or ended) naming the guest, so a reader can tell it from a crash.
func TestEveryStopIsATask(t *testing.T) {
	for _, c := range []struct {
		name, method, path string
		params             url.Values
		vmid               int
		typ                string
	}{
		{"stop VM", "POST", "/nodes/pve/qemu/102/status/stop", nil, 102, "qmstop"},
		{"shutdown VM", "POST", "/nodes/agent/qemu/105/status/shutdown", nil, 105, "qmshutdown"},
		{"reboot VM", "POST", "/nodes/agent/qemu/105/status/reboot", nil, 105, "qmreboot"},
		{"stop CT", "POST", "/nodes/pve/lxc/201/status/stop", nil, 201, "vzstop"},
		{"shutdown CT", "POST", "/nodes/home/lxc/200/status/shutdown", nil, 200, "vzshutdown"},
		{"migrate VM", "POST", "/nodes/agent/qemu/105/migrate", url.Values{"target": {"agent1"}, "online": {"1"}, "with-local-disks": {"1"}}, 105, "qmigrate"},
		{"migrate CT with restart", "POST", "/nodes/pve/lxc/201/migrate", url.Values{"target": {"agent1"}, "restart": {"1"}}, 201, "vzmigrate"},
		{"migrate HA VM", "POST", "/nodes/pve/qemu/101/migrate", url.Values{"target": {"agent"}, "online": {"1"}}, 101, "hamigrate"},
		{"rollback", "POST", "/nodes/pve/qemu/101/snapshot/before-php84/rollback", nil, 101, "qmrollback"},
		{"backup in stop mode", "POST", "/nodes/pve/vzdump", url.Values{"vmid": {"201"}, "storage": {"local"}, "mode": {"stop"}}, 201, "vzdump"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			upid := h.started(c.method, c.path, c.params)
			find := func() map[string]any {
				for _, task := range h.clusterTasks(fullAuth) {
					if task["upid"] == upid {
						return task
					}
				}
				return nil
			}
			task := find()
			if task == nil || task["type"] != c.typ || task["id"] != strconv.Itoa(c.vmid) || task["endtime"] != nil {
				t.Fatalf("running task in /cluster/tasks: %v, want %s for %d without an end", task, c.typ, c.vmid)
			}
			h.clock.Add(10 * time.Second)
			if task := find(); task == nil || task["endtime"] == nil || task["status"] == nil {
				t.Errorf("ended task in /cluster/tasks: %v", task)
			}
		})
	}
}

// A token without Sys.Audit on / sees only its own tasks, as in PVE: a reader
// that does not hold it cannot conclude that nobody stopped a guest.
func TestTaskListsNeedSysAudit(t *testing.T) {
	h := newACLHarness(t, []ACL{{Path: "/", Privileges: []string{"VM.Audit", "VM.PowerMgmt"}, Propagate: true}})
	upid := h.started("POST", "/nodes/pve/qemu/102/status/stop", nil)
	tasks := h.clusterTasks(fullAuth)
	if len(tasks) != 1 || tasks[0]["upid"] != upid {
		t.Errorf("without Sys.Audit /cluster/tasks = %v, want only the token's own stop", tasks)
	}
	var nodeTasks []map[string]any
	_ = json.Unmarshal(h.get("/nodes/pve/tasks", url.Values{"source": {"all"}}).env.Data, &nodeTasks)
	if len(nodeTasks) != 1 || nodeTasks[0]["upid"] != upid {
		t.Errorf("without Sys.Audit /nodes/pve/tasks = %v, want only the token's own stop", nodeTasks)
	}
	// The auditor token holds Sys.Audit: it sees everyone's, the seeded history too.
	if all := h.clusterTasks(roAuth); len(all) <= 1 {
		t.Errorf("the auditor sees %d tasks", len(all))
	}
}
