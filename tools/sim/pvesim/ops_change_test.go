package pvesim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Routes of the same path declared in different files are merged into one
// (ops_create.go's mergeRoutes): match would never reach a second one.
func TestEveryPatternServedOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range routes {
		key := strings.Join(rt.pattern, "/")
		if seen[key] {
			t.Errorf("route %s is declared twice: the second one is never reached", key)
		}
		seen[key] = true
	}
}

// A migration holds the guest's lock while it runs and moves it when it ends.
func TestMigrationTakesItsTime(t *testing.T) {
	h := newHarness(t)
	r := h.post("/nodes/agent/qemu/105/migrate", url.Values{"target": {"home"}, "online": {"1"}, "with-local-disks": {"1"}})
	var upid string
	if r.status != 200 || json.Unmarshal(r.env.Data, &upid) != nil || !strings.Contains(upid, ":qmigrate:105:") {
		t.Fatalf("migrate = %d %s", r.status, r.body)
	}
	h.clock.Add(2 * time.Second)
	if g, _ := h.sim.Guest(105); g.Node != "agent" || g.Lock != "migrate" {
		t.Fatalf("half-way the guest is %+v, want still on agent, locked migrate", g)
	}
	if r := h.post("/nodes/agent/qemu/105/migrate", url.Values{"target": {"pve"}, "online": {"1"}}); r.status != 500 || r.reason != "VM is locked (migrate)" {
		t.Errorf("a second migration = %d %q", r.status, r.reason)
	}
	h.clock.Add(2 * time.Second)
	if st := h.taskStatus(upid); st["exitstatus"] != "OK" {
		t.Fatalf("migration ended %v", st)
	}
	if g, _ := h.sim.Guest(105); g.Node != "home" || g.Lock != "" || g.Status != "running" {
		t.Fatalf("after the migration the guest is %+v", g)
	}
	if r := h.get("/nodes/agent/qemu/105/status/current", nil); r.status != 500 || !strings.Contains(r.reason, "does not exist") {
		t.Errorf("the guest still answers on its old node: %d %q", r.status, r.reason)
	}

	// A container's restart migration: down while it moves, running after.
	if exit := h.runTaskFor("/nodes/pve/lxc/201/migrate", url.Values{"target": {"home"}, "restart": {"1"}}, 4*time.Second); exit != "OK" {
		t.Fatalf("restart migration = %s", exit)
	}
	if g, _ := h.sim.Guest(201); g.Node != "home" || g.Status != "running" {
		t.Fatalf("after the restart migration the container is %+v", g)
	}
	if exit := h.runTaskFor("/nodes/home/lxc/200/migrate", url.Values{"target": {"pve"}, "online": {"1"}}, 4*time.Second); !strings.Contains(exit, "lxc live migration is currently not implemented") {
		t.Errorf("online container migration = %s", exit)
	}
}

// An HA resource's migration is handed to the HA manager, as PVE does: an
// "hamigrate" task that ends OK at once, then the HA manager's own migration
// (by root@pam, live, with the local disks) that moves the guest later. A
// request for a node that is not online is ignored: the guest never moves.
func TestHAMigrationMovesTheGuestLater(t *testing.T) {
	h := newHarness(t) // tasks of 2 s
	r := h.post("/nodes/pve/qemu/101/migrate", url.Values{"target": {"home"}, "online": {"1"}})
	var upid string
	if r.status != 200 || json.Unmarshal(r.env.Data, &upid) != nil || !strings.Contains(upid, ":hamigrate:101:") {
		t.Fatalf("migrate = %d %s", r.status, r.body)
	}
	if g, _ := h.sim.Guest(101); g.Node != "pve" || g.Lock != "" {
		t.Fatalf("with the request only queued the guest is %+v", g)
	}
	h.clock.Add(400 * time.Millisecond)
	if st := h.taskStatus(upid); st["exitstatus"] != "OK" {
		t.Fatalf("hamigrate ended %v", st)
	}
	if g, _ := h.sim.Guest(101); g.Node != "pve" || g.Lock != "migrate" {
		t.Fatalf("after the hamigrate task the guest is %+v, want still on pve, locked migrate by the HA manager's migration", g)
	}
	var tasks []map[string]any
	h.readData("/nodes/pve/tasks", url.Values{"vmid": {"101"}, "source": {"all"}}, &tasks)
	found := false
	for _, tk := range tasks {
		found = found || (tk["type"] == "qmigrate" && tk["user"] == "root@pam")
	}
	if !found {
		t.Errorf("no migration by the HA manager among the tasks of 101: %v", tasks)
	}
	h.clock.Add(4 * time.Second)
	if g, _ := h.sim.Guest(101); g.Node != "home" || g.Lock != "" || g.Status != "running" {
		t.Fatalf("after the HA manager's migration the guest is %+v", g)
	}

	h.sim.SetNodeOffline("agent", true)
	r = h.post("/nodes/pve/qemu/102/migrate", url.Values{"target": {"agent"}, "online": {"1"}})
	if r.status != 200 || json.Unmarshal(r.env.Data, &upid) != nil || !strings.Contains(upid, ":hamigrate:102:") {
		t.Fatalf("migrate = %d %s", r.status, r.body)
	}
	h.clock.Add(time.Second)
	if st := h.taskStatus(upid); st["exitstatus"] != "OK" {
		t.Fatalf("hamigrate to an offline node ended %v", st)
	}
	h.clock.Add(10 * time.Second)
	if g, _ := h.sim.Guest(102); g.Node != "pve" || g.Lock != "" {
		t.Fatalf("a request for an offline node moved the guest: %+v", g)
	}
}

// runTaskFor posts, lets the task run for d and returns its exit status.
func (h *harness) runTaskFor(path string, params url.Values, d time.Duration) string {
	h.t.Helper()
	r := h.post(path, params)
	var upid string
	if r.status != 200 || json.Unmarshal(r.env.Data, &upid) != nil {
		h.t.Fatalf("POST %s = %d %s", path, r.status, r.body)
	}
	h.clock.Add(d)
	st := h.taskStatus(upid)
	if st["status"] != "stopped" {
		h.t.Fatalf("task %s still %v", upid, st["status"])
	}
	return st["exitstatus"].(string)
}

// A container becomes a template through a task PVE does not name.
func TestContainerTemplateAnswersNull(t *testing.T) {
	h := newHarness(t)
	r := h.post("/nodes/agent1/lxc/204/template", nil)
	if r.status != 200 || string(r.env.Data) != "null" {
		t.Fatalf("template = %d %s, want data null", r.status, r.body)
	}
	h.clock.Add(2 * time.Second)
	if g, _ := h.sim.Guest(204); !g.Template {
		t.Fatal("container 204 is no template after its task")
	}
	cfg := h.get("/nodes/agent1/lxc/204/config", nil)
	if !strings.Contains(string(cfg.body), "base-204-disk-0") {
		t.Errorf("a template's disk is a base image: %s", cfg.body)
	}
	if r := h.call(roAuth, "POST", "/nodes/home/qemu/106/template", nil); r.status != 403 {
		t.Errorf("the auditor converts a VM: %d %q", r.status, r.reason)
	}
}
