package pve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// Every request the weekly operations' reads make, and every answer the
// simulator gives them, keeps to the official schema.
func TestOpsReadSchemaConformance(t *testing.T) {
	schema := loadSchema(t)
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	nodes := []string{"home", "pve", "agent1", "agent"}
	for _, n := range nodes {
		for _, tf := range slices.Concat(RRDTimeframes, []string{"decade"}) {
			for _, cf := range []string{"", "AVERAGE", "MAX"} {
				rows, err := c.RRDData(ctx, n, "", 0, tf, cf)
				must("RRDData "+n+" "+tf, err)
				if len(rows) != 70 {
					t.Errorf("RRDData %s %s: %d rows, want PVE's 70", n, tf, len(rows))
				}
			}
		}
		_, err := c.NodeReplication(ctx, n)
		must("NodeReplication "+n, err)
		_, err = c.AptUpdates(ctx, n)
		must("AptUpdates "+n, err)
		_, err = c.CertificatesInfo(ctx, n)
		must("CertificatesInfo "+n, err)
	}
	for _, g := range []struct {
		node, kind string
		vmid       int
	}{{"pve", "qemu", 101}, {"pve", "lxc", 201}, {"agent", "qemu", 104}, {"agent", "lxc", 203}} {
		for _, tf := range RRDTimeframes {
			_, err := c.RRDData(ctx, g.node, g.kind, g.vmid, tf, "MAX")
			must(fmt.Sprintf("RRDData %s %d %s", g.kind, g.vmid, tf), err)
		}
	}
	ifaces, err := c.AgentNetworkInterfaces(ctx, "pve", 101)
	must("AgentNetworkInterfaces", err)
	if len(ifaces) < 2 || len(ifaces[1].IPAddresses) == 0 {
		t.Errorf("AgentNetworkInterfaces = %+v, want lo and a LAN interface with addresses", ifaces)
	}
	host, err := c.AgentHostName(ctx, "pve", 101)
	must("AgentHostName", err)
	if host != "web01" {
		t.Errorf("AgentHostName = %q, want web01", host)
	}
	osInfo, err := c.AgentOSInfo(ctx, "pve", 101)
	must("AgentOSInfo", err)
	if osInfo.PrettyName == "" {
		t.Errorf("AgentOSInfo = %+v, want a pretty name", osInfo)
	}
	cts, running, err := c.ContainerInterfaces(ctx, "pve", 201)
	must("ContainerInterfaces", err)
	if !running || len(cts) != 2 {
		t.Errorf("ContainerInterfaces(201) = %+v, %v; want lo and eth0 of a running container", cts, running)
	}
	_, err = c.HAStatus(ctx)
	must("HAStatus", err)
	_, err = c.HAResources(ctx)
	must("HAResources", err)
	_, err = c.ReplicationJobs(ctx)
	must("ReplicationJobs", err)
	tasks, err := c.ClusterTasks(ctx)
	must("ClusterTasks", err)
	w, err := c.TaskLogWindow(ctx, tasks[0].Node, tasks[0].UPID, 3, false)
	must("TaskLogWindow", err)
	if w.Total == 0 || w.Incomplete {
		t.Errorf("TaskLogWindow = %+v", w)
	}
	for _, p := range []struct {
		path   string
		params url.Values
	}{
		{"/cluster/ha/resources", url.Values{"type": {"vm"}}},
		{"/cluster/ha/resources", url.Values{"type": {"ct"}}},
		{"/nodes/pve/replication", url.Values{"guest": {"102"}}},
	} {
		if status, body := rawCall(t, srv.URL, "GET", p.path, p.params); status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", p.path, status, body)
		}
	}

	// Answers that are errors in PVE, and facts for the tools.
	_, err = c.AgentNetworkInterfaces(ctx, "home", 100)
	if reason, ok := AgentUnavailable(err); !ok || reason != "QEMU guest agent is not running" {
		t.Errorf("agent of VM 100: %v, want PVE's 500 \"QEMU guest agent is not running\"", err)
	}
	_, err = c.AgentHostName(ctx, "agent", 104)
	if reason, ok := AgentUnavailable(err); !ok || reason != "VM 104 is not running" {
		t.Errorf("agent of stopped VM 104: %v, want PVE's 500 \"VM 104 is not running\"", err)
	}
	_, err = c.CephStatus(ctx)
	if !CephNotInstalled(err) {
		t.Errorf("CephStatus without Ceph: %v, want PVE's 500 \"binary not installed\"", err)
	}
	// A stopped container has no interfaces to read: PVE answers null, which
	// the schema does not foresee; it is checked apart.
	_, running, err = c.ContainerInterfaces(ctx, "agent", 203)
	if err != nil || running {
		t.Errorf("ContainerInterfaces of stopped 203 = running %v, %v; want not running", running, err)
	}
	expectedErrors := map[string]bool{"/nodes/home/qemu/100/agent/network-get-interfaces": true,
		"/nodes/agent/qemu/104/agent/get-host-name": true, "/cluster/ceph/status": true}

	covered := map[string]bool{}
	for _, r := range sim.Requests() {
		tmpl, _ := schema.template(r.Path)
		covered[r.Method+" "+tmpl] = true
		if r.Path == "/nodes/agent/lxc/203/interfaces" {
			if string(r.Body) != `{"data":null}` {
				t.Errorf("stopped container's interfaces: %s, want {\"data\":null}", r.Body)
			}
			continue
		}
		if r.Status != http.StatusOK && !expectedErrors[r.Path] {
			t.Errorf("%s %s answered %d: %s", r.Method, r.Path, r.Status, r.Body)
		}
		for _, p := range append(schema.checkRequest(r), schema.checkResponse(r)...) {
			t.Error(p)
		}
	}
	for _, want := range []string{
		"GET /nodes/{node}/rrddata", "GET /nodes/{node}/qemu/{vmid}/rrddata", "GET /nodes/{node}/lxc/{vmid}/rrddata",
		"GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", "GET /nodes/{node}/qemu/{vmid}/agent/get-host-name",
		"GET /nodes/{node}/qemu/{vmid}/agent/get-osinfo", "GET /nodes/{node}/lxc/{vmid}/interfaces",
		"GET /cluster/ha/status/current", "GET /cluster/ha/resources", "GET /cluster/replication", "GET /nodes/{node}/replication",
		"GET /cluster/ceph/status", "GET /nodes/{node}/apt/update", "GET /nodes/{node}/certificates/info",
		"GET /nodes/{node}/tasks/{upid}/log",
	} {
		if !covered[want] {
			t.Errorf("conformance run never exercised %s", want)
		}
	}
}

// The new routes check their parameters with PVE's messages.
func TestOpsReadParameters(t *testing.T) {
	_, srv := startSim(t)
	for _, c := range []struct {
		path   string
		params url.Values
		param  string
		msg    string
	}{
		{"/nodes/pve/rrddata", nil, "timeframe", "property is missing and it is not optional"},
		{"/nodes/pve/rrddata", url.Values{"timeframe": {"minute"}}, "timeframe", "value 'minute' does not have a value in the enumeration 'hour, day, week, month, year, decade'"},
		{"/nodes/pve/qemu/101/rrddata", url.Values{"timeframe": {"decade"}}, "timeframe", "value 'decade' does not have a value in the enumeration 'hour, day, week, month, year'"},
		{"/nodes/pve/lxc/201/rrddata", url.Values{"timeframe": {"hour"}, "cf": {"MIN"}}, "cf", "value 'MIN' does not have a value in the enumeration 'AVERAGE, MAX'"},
		{"/cluster/ha/resources", url.Values{"type": {"qemu"}}, "type", "value 'qemu' does not have a value in the enumeration 'ct, vm'"},
		{"/nodes/pve/replication", url.Values{"guest": {"5"}}, "guest", "value must have a minimum value of 100"},
		{"/nodes/pve/apt/update", url.Values{"refresh": {"1"}}, "refresh", "property is not defined in schema and the schema does not allow additional properties"},
	} {
		status, body := rawCall(t, srv.URL, "GET", c.path, c.params)
		var env struct {
			Errors map[string]string `json:"errors"`
		}
		_ = json.Unmarshal(body, &env)
		if status != http.StatusBadRequest || strings.TrimSpace(env.Errors[c.param]) != c.msg {
			t.Errorf("GET %s %v = %d %s, want 400 with %s: %q", c.path, c.params, status, body, c.param, c.msg)
		}
	}
}

// The simulator refuses these reads, or filters them, as PVE does.
func TestOpsReadPermissions(t *testing.T) {
	everything := func(except ...string) []string {
		var out []string
		for _, p := range pvesim.AllPrivileges() {
			if !strings.Contains(strings.Join(except, " "), p) {
				out = append(out, p)
			}
		}
		return out
	}
	for _, c := range []struct {
		without []string
		path    string
		want    string // 403 message, or the body of a 200
	}{
		{[]string{"VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"}, "/nodes/pve/qemu/101/agent/get-osinfo",
			"Permission check failed (/vms/101, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)"},
		{[]string{"Sys.Modify"}, "/nodes/pve/apt/update", "Permission check failed (/nodes/pve, Sys.Modify)"},
		{[]string{"Sys.Audit"}, "/nodes/pve/rrddata?timeframe=hour", "Permission check failed (/nodes/pve, Sys.Audit)"},
		{[]string{"Sys.Audit"}, "/cluster/ha/status/current", "Permission check failed (/, Sys.Audit)"},
		{[]string{"Sys.Audit", "Datastore.Audit"}, "/cluster/ceph/status", "Permission check failed (/, Sys.Audit|Datastore.Audit)"},
		{[]string{"VM.Audit"}, "/nodes/pve/lxc/201/rrddata?timeframe=day", "Permission check failed (/vms/201, VM.Audit)"},
		{[]string{"VM.Audit"}, "/cluster/replication", `{"data":[]}`},
		{[]string{"VM.Audit"}, "/nodes/pve/replication", `{"data":[]}`},
		{[]string{"Sys.Audit", "Sys.Modify"}, "/nodes/agent/certificates/info", ""}, // no check: any answer
		// Ceph's check wants either privilege.
		{[]string{"Sys.Audit"}, "/cluster/ceph/status", "binary not installed: /usr/bin/ceph-mon"},
	} {
		sim := pvesim.New(pvesim.Options{TokenID: testTokenID, TokenSecret: testSecret,
			ACL: []pvesim.ACL{{Path: "/", Privileges: everything(c.without...), Propagate: true}}})
		srv := httptest.NewServer(sim)
		path, query, _ := strings.Cut(c.path, "?")
		params, _ := url.ParseQuery(query)
		status, body := rawCall(t, srv.URL, "GET", path, params)
		srv.Close()
		var env struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &env)
		switch {
		case strings.HasPrefix(c.want, "Permission"):
			if status != http.StatusForbidden || strings.TrimSpace(env.Message) != c.want {
				t.Errorf("GET %s without %v = %d %s, want 403 %q", c.path, c.without, status, body, c.want)
			}
		case strings.HasPrefix(c.want, "{"):
			if status != http.StatusOK || string(body) != c.want {
				t.Errorf("GET %s without %v = %d %s, want %s", c.path, c.without, status, body, c.want)
			}
		case c.want != "":
			if strings.TrimSpace(env.Message) != c.want {
				t.Errorf("GET %s without %v = %d %s, want past the check to %q", c.path, c.without, status, body, c.want)
			}
		default:
			if status != http.StatusOK {
				t.Errorf("GET %s without %v = %d %s, want 200", c.path, c.without, status, body)
			}
		}
	}
}

// A task log's length comes from reading it to the end, in pages; the window
// holds the lines asked for.
func TestTaskLogWindow(t *testing.T) {
	for _, c := range []struct {
		name      string
		total     int
		lines     int
		fromStart bool
		first     int // number of the first line returned
		returned  int
		requests  int
	}{
		{"tail of a short log", 8, 3, false, 6, 3, 1},
		{"head of a short log", 8, 3, true, 1, 3, 1},
		{"window larger than the log", 8, 50, false, 1, 8, 1},
		{"tail across pages", 2500, 5, false, 2496, 5, 3},
		{"head of a long log", 2500, 5, true, 1, 5, 3},
		{"a whole number of pages needs one empty page", 2000, 10, false, 1991, 10, 3},
		{"an empty log is PVE's one line", 0, 50, false, 1, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				start, _ := strconv.Atoi(r.URL.Query().Get("start"))
				limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
				lines := []TaskLogLine{}
				if c.total == 0 && start == 0 {
					lines = append(lines, TaskLogLine{N: 1, T: "no content"})
				}
				for n := start + 1; n <= c.total && len(lines) < limit; n++ {
					lines = append(lines, TaskLogLine{N: Int(n), T: fmt.Sprintf("line %d", n)})
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"data": lines, "total": max(c.total, 1)})
			}))
			defer srv.Close()
			cl := newClient(t, testTokenID, testSecret, srv.URL)
			w, err := cl.TaskLogWindow(context.Background(), "pve", "UPID:pve:000B2F5A:0354A1E2:6745C2D1:vzdump::root@pam:", c.lines, c.fromStart)
			if err != nil {
				t.Fatal(err)
			}
			if w.Total != max(c.total, 1) || len(w.Lines) != c.returned || int(w.Lines[0].N) != c.first || w.Incomplete {
				t.Errorf("window = total %d, %d lines from %d, incomplete %v; want total %d, %d lines from %d",
					w.Total, len(w.Lines), w.Lines[0].N, w.Incomplete, max(c.total, 1), c.returned, c.first)
			}
			for i, l := range w.Lines {
				if int(l.N) != c.first+i {
					t.Fatalf("line %d is number %d, want %d", i, l.N, c.first+i)
				}
			}
			if int(requests.Load()) != c.requests {
				t.Errorf("%d requests, want %d", requests.Load(), c.requests)
			}
		})
	}
}

func TestAgentUnavailableAndCephNotInstalled(t *testing.T) {
	for _, c := range []struct {
		err         error
		agent, ceph bool
	}{
		{&APIError{Status: 500, Message: "QEMU guest agent is not running"}, true, false},
		{&APIError{Status: 500, Message: "No QEMU guest agent configured"}, true, false},
		{&APIError{Status: 500, Message: "VM 104 is not running"}, true, false},
		{&APIError{Status: 500, Message: "binary not installed: /usr/bin/ceph-mon"}, false, true},
		{&APIError{Status: 500, Message: "pveceph configuration not initialized"}, false, true},
		{&APIError{Status: 403, Message: "Permission check failed (/vms/101, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)"}, false, false},
		{&APIError{Status: 500, Message: "got timeout"}, false, false},
		{&UnreachableError{Method: "GET", Path: "/cluster/ceph/status"}, false, false},
		{nil, false, false},
	} {
		if _, ok := AgentUnavailable(c.err); ok != c.agent {
			t.Errorf("AgentUnavailable(%v) = %v, want %v", c.err, ok, c.agent)
		}
		if got := CephNotInstalled(c.err); got != c.ceph {
			t.Errorf("CephNotInstalled(%v) = %v, want %v", c.err, got, c.ceph)
		}
	}
}

// The client refuses what PVE would refuse before sending it.
func TestRRDDataChecksArguments(t *testing.T) {
	c := newClient(t, testTokenID, testSecret, "http://127.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, bad := range []func() error{
		func() error { _, err := c.RRDData(ctx, "pve", "qemu", 101, "decade", ""); return err },
		func() error { _, err := c.RRDData(ctx, "pve", "", 0, "minute", ""); return err },
		func() error { _, err := c.RRDData(ctx, "pve", "", 0, "hour", "MIN"); return err },
		func() error { _, err := c.RRDData(ctx, "pve", "vm", 101, "hour", ""); return err },
	} {
		if err := bad(); err == nil || !strings.HasPrefix(err.Error(), "pve: ") || IsUnreachable(err) {
			t.Errorf("err = %v, want the client's own refusal", err)
		}
	}
}
