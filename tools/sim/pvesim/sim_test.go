package pvesim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a hand-advanced clock so task timing is exact.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	t     *testing.T
	sim   *Sim
	srv   *httptest.Server
	clock *fakeClock
}

func newHarness(t *testing.T) *harness {
	clock := &fakeClock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	sim := New(Options{TaskDuration: 2 * time.Second, Now: clock.Now})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{t: t, sim: sim, srv: srv, clock: clock}
}

type reply struct {
	status int
	reason string
	body   []byte
	env    struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
}

func (h *harness) call(auth, method, path string, params url.Values) reply {
	h.t.Helper()
	target := h.srv.URL + "/api2/json" + path
	var body io.Reader
	if method == "GET" || method == "DELETE" {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, reason: strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode)))}
	r.body, _ = io.ReadAll(resp.Body)
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &r.env); err != nil {
			h.t.Fatalf("%s %s: body is not JSON: %s", method, path, r.body)
		}
	}
	return r
}

var (
	fullAuth = "PVEAPIToken=" + DemoTokenID + "=" + DemoTokenSecret
	roAuth   = "PVEAPIToken=" + DemoReadOnlyTokenID + "=" + DemoReadOnlyTokenSecret
)

func (h *harness) get(path string, params url.Values) reply {
	return h.call(fullAuth, "GET", path, params)
}
func (h *harness) post(path string, params url.Values) reply {
	return h.call(fullAuth, "POST", path, params)
}

func (h *harness) taskStatus(upid string) map[string]any {
	h.t.Helper()
	node := strings.Split(upid, ":")[1]
	r := h.get("/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", nil)
	var st map[string]any
	if r.status != 200 || json.Unmarshal(r.env.Data, &st) != nil {
		h.t.Fatalf("task status %s = %d %s", upid, r.status, r.body)
	}
	return st
}

// runTask posts and lets the task finish, returning its exit status.
func (h *harness) runTask(path string, params url.Values) string {
	h.t.Helper()
	r := h.post(path, params)
	var upid string
	if r.status != 200 || json.Unmarshal(r.env.Data, &upid) != nil {
		h.t.Fatalf("POST %s = %d %s", path, r.status, r.body)
	}
	if st := h.taskStatus(upid); st["status"] != "running" {
		h.t.Fatalf("fresh task %s is %v, want running", upid, st["status"])
	}
	h.clock.Add(2 * time.Second)
	st := h.taskStatus(upid)
	if st["status"] != "stopped" {
		h.t.Fatalf("task %s still %v after its duration", upid, st["status"])
	}
	return st["exitstatus"].(string)
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 401},
		{"wrong secret", "PVEAPIToken=" + DemoTokenID + "=nope", 401},
		{"unknown token", "PVEAPIToken=x@pve!y=" + DemoTokenSecret, 401},
		{"ticket style header", "Bearer " + DemoTokenSecret, 401},
		{"full token", fullAuth, 200},
		{"space form", "PVEAPIToken " + DemoTokenID + "=" + DemoTokenSecret, 200},
		{"read-only token reads", roAuth, 200},
	}
	for _, tc := range cases {
		r := h.call(tc.auth, "GET", "/version", nil)
		if r.status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, r.status, tc.want)
		}
		if tc.want == 401 && (len(r.body) != 0 || r.reason != "authentication failure") {
			t.Errorf("%s: 401 must have an empty body and reason 'authentication failure', got %q %q", tc.name, r.reason, r.body)
		}
	}
}

func TestErrorAnswers(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, auth, method, path string
		params                   url.Values
		status                   int
		message                  string
		errField                 string
	}{
		{"unknown path", fullAuth, "GET", "/foo", nil, 501, "Method 'GET /foo' not implemented", ""},
		{"unknown method", fullAuth, "PUT", "/nodes", nil, 501, "Method 'PUT /nodes' not implemented", ""},
		{"bad resource type", fullAuth, "GET", "/cluster/resources", url.Values{"type": {"qemu"}}, 400, "Parameter verification failed.", "type"},
		{"undeclared parameter", fullAuth, "GET", "/nodes/pve/status", url.Values{"verbose": {"1"}}, 400, "Parameter verification failed.", "verbose"},
		{"bad vmid", fullAuth, "GET", "/nodes/pve/qemu/abc/status/current", nil, 400, "Parameter verification failed.", "vmid"},
		{"vmid too small", fullAuth, "GET", "/nodes/pve/qemu/99/status/current", nil, 400, "Parameter verification failed.", "vmid"},
		{"missing snapname", fullAuth, "POST", "/nodes/pve/qemu/101/snapshot", nil, 400, "Parameter verification failed.", "snapname"},
		{"bad boolean", fullAuth, "POST", "/nodes/pve/qemu/101/status/shutdown", url.Values{"forceStop": {"maybe"}}, 400, "Parameter verification failed.", "forceStop"},
		{"vmstate on a container", fullAuth, "POST", "/nodes/pve/lxc/201/snapshot", url.Values{"snapname": {"s1"}, "vmstate": {"1"}}, 400, "Parameter verification failed.", "vmstate"},
		{"bad snapshot name", fullAuth, "POST", "/nodes/pve/qemu/101/snapshot", url.Values{"snapname": {"1bad"}}, 400, "Parameter verification failed.", "snapname"},
		{"missing guest", fullAuth, "GET", "/nodes/pve/qemu/999/status/current", nil, 500, "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist", ""},
		{"guest on another node", fullAuth, "GET", "/nodes/home/qemu/101/config", nil, 500, "Configuration file 'nodes/home/qemu-server/101.conf' does not exist", ""},
		{"container as qemu", fullAuth, "GET", "/nodes/pve/qemu/201/config", nil, 500, "Configuration file 'nodes/pve/qemu-server/201.conf' does not exist", ""},
		{"missing lxc", fullAuth, "GET", "/nodes/pve/lxc/999/config", nil, 500, "Configuration file 'nodes/pve/lxc/999.conf' does not exist", ""},
		{"unknown node", fullAuth, "GET", "/nodes/nope/status", nil, 500, "hostname lookup 'nope' failed - failed to get address info for: nope: Name or service not known", ""},
		{"missing storage", fullAuth, "GET", "/nodes/pve/storage/tank/content", nil, 500, "storage 'tank' does not exist", ""},
		{"read-only power", roAuth, "POST", "/nodes/pve/qemu/101/status/stop", nil, 403, "Permission check failed (/vms/101, VM.PowerMgmt)", ""},
		{"read-only snapshot", roAuth, "POST", "/nodes/pve/qemu/101/snapshot", url.Values{"snapname": {"x1"}}, 403, "Permission check failed (/vms/101, VM.Snapshot)", ""},
		{"read-only delete", roAuth, "DELETE", "/nodes/pve/lxc/201/snapshot/clean", nil, 403, "Permission check failed (/vms/201, VM.Snapshot)", ""},
		{"lxc start running", fullAuth, "POST", "/nodes/home/lxc/200/status/start", nil, 500, "CT 200 already running", ""},
		{"lxc stop stopped", fullAuth, "POST", "/nodes/agent/lxc/203/status/stop", nil, 500, "CT 203 not running", ""},
		{"qemu reboot stopped", fullAuth, "POST", "/nodes/agent/qemu/104/status/reboot", nil, 500, "VM 104 not running", ""},
		{"template start", fullAuth, "POST", "/nodes/home/qemu/9000/status/start", nil, 500, "VM 9000 is a template, cannot start", ""},
		{"unknown task", fullAuth, "GET", "/nodes/pve/tasks/UPID:pve:00000001:00000001:00000001:qmstart:101:root@pam:/status", nil, 400, "Parameter verification failed.", "upid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(tc.auth, tc.method, tc.path, tc.params)
			if r.status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.status)
			}
			if r.reason != tc.message || strings.TrimSpace(r.env.Message) != tc.message {
				t.Fatalf("reason %q / message %q, want %q", r.reason, r.env.Message, tc.message)
			}
			if string(r.env.Data) != "null" {
				t.Fatalf("error data = %s, want null", r.env.Data)
			}
			if tc.errField != "" && r.env.Errors[tc.errField] == "" {
				t.Fatalf("errors = %v, want an entry for %q", r.env.Errors, tc.errField)
			}
		})
	}
}

func TestLifecycleStateMachine(t *testing.T) {
	h := newHarness(t)
	status := func(vmid int) string { g, _ := h.sim.Guest(vmid); return g.Status }

	// A state change shows only once the task ends.
	r := h.post("/nodes/agent/qemu/104/status/start", nil)
	if status(104) != "stopped" {
		t.Fatal("guest changed state before its task finished")
	}
	var upid string
	_ = json.Unmarshal(r.env.Data, &upid)
	h.clock.Add(2 * time.Second)
	if status(104) != "running" {
		t.Fatal("guest did not start when its task finished")
	}
	log := h.get("/nodes/agent/tasks/"+url.PathEscape(upid)+"/log", nil)
	if !strings.Contains(string(log.env.Data), "TASK OK") {
		t.Fatalf("task log = %s", log.env.Data)
	}

	cases := []struct {
		name, path string
		params     url.Values
		exit       string
		vmid       int
		after      string
	}{
		{"start running qemu fails in the task", "/nodes/pve/qemu/101/status/start", nil, "VM 101 already running", 101, "running"},
		{"shutdown qemu", "/nodes/pve/qemu/101/status/shutdown", url.Values{"timeout": {"60"}}, "OK", 101, "stopped"},
		{"stop stopped qemu is OK", "/nodes/pve/qemu/101/status/stop", nil, "OK", 101, "stopped"},
		{"start qemu", "/nodes/pve/qemu/101/status/start", nil, "OK", 101, "running"},
		{"reboot qemu", "/nodes/pve/qemu/101/status/reboot", nil, "OK", 101, "running"},
		{"stop lxc", "/nodes/home/lxc/200/status/stop", nil, "OK", 200, "stopped"},
		{"start lxc", "/nodes/home/lxc/200/status/start", nil, "OK", 200, "running"},
		{"shutdown lxc", "/nodes/home/lxc/200/status/shutdown", url.Values{"forceStop": {"1"}}, "OK", 200, "stopped"},
		{"duplicate snapshot name", "/nodes/pve/qemu/101/snapshot", url.Values{"snapname": {"pre-upgrade"}}, "snapshot name 'pre-upgrade' already used", 101, "running"},
		{"rollback to a missing snapshot", "/nodes/pve/qemu/101/snapshot/nope/rollback", nil, "snapshot 'nope' does not exist", 101, "running"},
		{"rollback stops the VM", "/nodes/pve/qemu/101/snapshot/pre-upgrade/rollback", nil, "OK", 101, "stopped"},
		{"rollback to a RAM snapshot leaves it running", "/nodes/pve/qemu/102/snapshot/weekly/rollback", nil, "OK", 102, "running"},
		{"rollback with start", "/nodes/pve/lxc/201/snapshot/clean/rollback", url.Values{"start": {"1"}}, "OK", 201, "running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if exit := h.runTask(tc.path, tc.params); exit != tc.exit {
				t.Fatalf("exit status %q, want %q", exit, tc.exit)
			}
			if got := status(tc.vmid); got != tc.after {
				t.Fatalf("guest %d is %s, want %s", tc.vmid, got, tc.after)
			}
		})
	}
}

func TestSnapshotChain(t *testing.T) {
	h := newHarness(t)
	if exit := h.runTask("/nodes/pve/qemu/101/snapshot", url.Values{"snapname": {"third"}, "description": {"t"}}); exit != "OK" {
		t.Fatalf("create: %s", exit)
	}
	g, _ := h.sim.Guest(101)
	if strings.Join(g.Snapshots, ",") != "pre-upgrade,before-php84,third" || g.SnapshotParent != "third" {
		t.Fatalf("after create: %+v", g)
	}
	// Deleting the middle snapshot re-parents its child.
	req, _ := http.NewRequest("DELETE", h.srv.URL+"/api2/json/nodes/pve/qemu/101/snapshot/before-php84", nil)
	req.Header.Set("Authorization", fullAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	h.clock.Add(2 * time.Second)
	var snaps []map[string]any
	_ = json.Unmarshal(h.get("/nodes/pve/qemu/101/snapshot", nil).env.Data, &snaps)
	parents := map[string]any{}
	for _, s := range snaps {
		parents[s["name"].(string)] = s["parent"]
	}
	if parents["third"] != "pre-upgrade" || parents["current"] != "third" || len(snaps) != 3 {
		t.Fatalf("after delete: %v", snaps)
	}
	// A second snapshot job while one runs hits the lock.
	h.post("/nodes/pve/qemu/101/snapshot", url.Values{"snapname": {"a1"}})
	if exit := h.runTask("/nodes/pve/qemu/101/snapshot", url.Values{"snapname": {"a2"}}); exit != "VM 101 is locked (snapshot)" {
		t.Fatalf("concurrent snapshot exit = %q", exit)
	}
}

func TestOfflineNodeAndHooks(t *testing.T) {
	h := newHarness(t)
	h.sim.SetNodeOffline("agent", true)
	h.sim.SetNodeOffline("agent1", true)
	r := h.get("/nodes/agent/status", nil)
	if r.status != 595 || r.reason != "No route to host" {
		t.Fatalf("offline node status = %d %q", r.status, r.reason)
	}
	var cs []map[string]any
	_ = json.Unmarshal(h.get("/cluster/status", nil).env.Data, &cs)
	if cs[0]["quorate"] != float64(0) {
		t.Fatalf("two of four nodes down must lose quorum: %v", cs[0])
	}
	var res []map[string]any
	_ = json.Unmarshal(h.get("/cluster/resources", url.Values{"type": {"vm"}}).env.Data, &res)
	for _, g := range res {
		if g["node"] == "agent1" && g["status"] != "unknown" {
			t.Fatalf("guest on an offline node shows %v", g)
		}
	}
	h.sim.SetNodeOffline("agent1", false)
	_ = json.Unmarshal(h.get("/cluster/status", nil).env.Data, &cs)
	if cs[0]["quorate"] != float64(1) {
		t.Fatalf("three of four nodes up must be quorate: %v", cs[0])
	}

	h.sim.FailNext("/nodes", 500, "boom")
	if r := h.get("/version", nil); r.status != 200 {
		t.Fatal("FailNext hit a path outside its prefix")
	}
	if r := h.get("/nodes", nil); r.status != 500 || r.reason != "boom" {
		t.Fatalf("FailNext: %d %q", r.status, r.reason)
	}
	if r := h.get("/nodes", nil); r.status != 200 {
		t.Fatal("FailNext fired twice")
	}
	h.sim.FailNext("/version", 401, "authentication failure")
	if r := h.get("/version", nil); r.status != 401 || len(r.body) != 0 {
		t.Fatalf("injected 401: %d %q", r.status, r.body)
	}
	h.sim.MalformNext("/cluster")
	resp, _ := http.Get(h.srv.URL + "/api2/json/cluster/tasks") // unauthenticated: 401 before the fault
	resp.Body.Close()
	req, _ := http.NewRequest("GET", h.srv.URL+"/api2/json/cluster/tasks", nil)
	req.Header.Set("Authorization", fullAuth)
	resp, _ = http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if json.Valid(body) || resp.StatusCode != 200 {
		t.Fatalf("MalformNext: %d %s", resp.StatusCode, body)
	}

	h.sim.ResetRequests()
	h.post("/nodes/pve/qemu/101/status/shutdown", url.Values{"timeout": {"30"}})
	reqs := h.sim.Requests()
	if len(reqs) != 1 || reqs[0].Form.Get("timeout") != "30" || reqs[0].Path != "/nodes/pve/qemu/101/status/shutdown" || reqs[0].TokenID != DemoTokenID {
		t.Fatalf("recorded %+v", reqs)
	}
	if strings.Contains(fmt.Sprint(reqs), DemoTokenSecret) {
		t.Fatal("the request log holds the token secret")
	}

	if err := h.sim.SetGuestStatus(104, "running"); err != nil {
		t.Fatal(err)
	}
	if g, _ := h.sim.Guest(104); g.Status != "running" {
		t.Fatal("SetGuestStatus did not stick")
	}
	if h.sim.SetGuestStatus(104, "paused") == nil || h.sim.SetGuestStatus(5, "running") == nil {
		t.Fatal("SetGuestStatus accepted nonsense")
	}
}

func TestLatency(t *testing.T) {
	h := newHarness(t)
	h.sim.SetLatency(80 * time.Millisecond)
	start := time.Now()
	h.get("/version", nil)
	if took := time.Since(start); took < 80*time.Millisecond {
		t.Fatalf("answer took %s, latency is 80ms", took)
	}
}

func TestDemoCluster(t *testing.T) {
	s := NewDemo()
	g, ok := s.Guest(103)
	if !ok || g.Node != "agent1" || g.Kind != "qemu" || g.Status != "running" || g.Name != "mgmt" {
		t.Fatalf("VMID 103 = %+v", g)
	}
	counts := map[string]int{}
	for _, id := range s.sortedVMIDs() {
		g := s.guests[id]
		counts[g.kind]++
		if g.status == "running" {
			counts[g.kind+" running"]++
		}
		counts["node "+g.node]++
	}
	if counts["qemu"] < 6 || counts["qemu running"] < 4 || counts["lxc"] < 4 {
		t.Fatalf("demo cluster too small: %v", counts)
	}
	for _, n := range []string{"home", "pve", "agent1", "agent"} {
		if counts["node "+n] == 0 {
			t.Fatalf("no guest on node %s", n)
		}
	}
}

// A Site names the demo cluster apart: nodes, VMIDs, the cluster's name and
// what the handlers name by them (HA, replication, task history) move together.
func TestSiteRenamesTheDemoCluster(t *testing.T) {
	s := New(Options{Site: Site{Name: "lab", NodePrefix: "lab-", VMIDOffset: 1000}})
	if g, ok := s.Guest(1103); !ok || g.Node != "lab-agent1" || g.Name != "mgmt" {
		t.Fatalf("VMID 1103 = %+v", g)
	}
	if _, ok := s.Guest(103); ok {
		t.Fatal("VMID 103 exists at a site 1000 up")
	}
	if g, _ := s.Guest(1101); len(g.Snapshots) != 2 {
		t.Errorf("web01's snapshots did not move with it: %+v", g)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	h := &harness{t: t, sim: s, srv: srv}
	body := func(path string) string {
		r := h.get(path, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		return string(r.env.Data)
	}
	for path, want := range map[string][]string{
		"/cluster/status":            {`"name":"lab"`, `"name":"lab-home"`, `"local":1`},
		"/cluster/ha/status/current": {`"sid":"vm:1101"`, `lab-pve (active`},
		"/cluster/replication":       {`"guest":1102`, `"target":"lab-home"`},
		"/nodes/lab-agent1/tasks":    {`:qmstart:1103:`},
	} {
		got := body(path)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("GET %s does not say %s: %s", path, w, got)
			}
		}
		if strings.Contains(got, `"home"`) || strings.Contains(got, `:103:`) {
			t.Errorf("GET %s names the demo cluster's own node or VMID: %s", path, got)
		}
	}
}

// Many clients at once: run with -race.
func TestConcurrentUse(t *testing.T) {
	sim := New(Options{TaskDuration: 5 * time.Millisecond})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				path := []string{"/cluster/resources", "/nodes/pve/qemu/101/status/current", "/cluster/tasks"}[j%3]
				method := "GET"
				if j%4 == 0 {
					method, path = "POST", "/nodes/pve/qemu/102/status/reboot"
				}
				req, _ := http.NewRequest(method, srv.URL+"/api2/json"+path, nil)
				req.Header.Set("Authorization", fullAuth)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if i == 0 {
					sim.SetNodeOffline("agent", j%2 == 0)
					sim.Requests()
				}
			}
		}(i)
	}
	wg.Wait()
}

// Disk use as PVE reports it: 0 for every VM, running or not (qemu-server
// does not look into the guest), the root file system's use for a running
// container, 0 for a stopped one.
func TestGuestDiskUseAsPVEReportsIt(t *testing.T) {
	h := newHarness(t)
	var resources []struct {
		VMID    int    `json:"vmid"`
		Type    string `json:"type"`
		Status  string `json:"status"`
		Disk    int64  `json:"disk"`
		MaxDisk int64  `json:"maxdisk"`
	}
	if r := h.get("/cluster/resources", url.Values{"type": {"vm"}}); json.Unmarshal(r.env.Data, &resources) != nil {
		t.Fatalf("resources: %s", r.body)
	}
	for _, g := range resources {
		measured := g.Type == "lxc" && g.Status == "running"
		if (g.Disk > 0) != measured || g.MaxDisk <= 0 {
			t.Errorf("%s %d (%s): disk %d of %d", g.Type, g.VMID, g.Status, g.Disk, g.MaxDisk)
		}
	}
	for path, want := range map[string]bool{"/nodes/pve/qemu/101/status/current": false, "/nodes/pve/lxc/201/status/current": true} {
		var st struct {
			Disk int64 `json:"disk"`
		}
		if r := h.get(path, nil); json.Unmarshal(r.env.Data, &st) != nil || (st.Disk > 0) != want {
			t.Errorf("%s: disk %d, want measured=%t", path, st.Disk, want)
		}
	}
}
