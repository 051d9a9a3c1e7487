package pve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// apiSchema is pve-api-flat.json: path template → HTTP method → definition.
type apiSchema map[string]map[string]struct {
	Parameters map[string]any `json:"parameters"`
	Returns    map[string]any `json:"returns"`
}

// loadSchema finds ../shared/pve-api/pve-api-flat.json beside the repo root.
// Without it the test skips locally and fails in CI.
func loadSchema(t *testing.T) apiSchema {
	t.Helper()
	var candidates []string
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			candidates = append(candidates, filepath.Join(d, "..", "shared", "pve-api", "pve-api-flat.json"))
		}
		candidates = append(candidates, filepath.Join(d, "shared", "pve-api", "pve-api-flat.json"))
		if filepath.Dir(d) == d {
			break
		}
	}
	for _, p := range candidates {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var s apiSchema
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s does not parse: %v", p, err)
		}
		return s
	}
	msg := "pve-api-flat.json not found (looked for ../shared/pve-api/ beside the repo root)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// template finds the schema path for a concrete API path; literal segments
// beat variables. It returns the template and its variables.
func (s apiSchema) template(path string) (string, map[string]string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestLiterals := "", -1
	var bestVars map[string]string
	for tmpl := range s {
		tsegs := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		vars, literals, ok := map[string]string{}, 0, true
		for i, ts := range tsegs {
			switch {
			case strings.HasPrefix(ts, "{"):
				vars[strings.Trim(ts, "{}")] = segs[i]
			case ts == segs[i]:
				literals++
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok && literals > bestLiterals {
			best, bestLiterals, bestVars = tmpl, literals, vars
		}
	}
	return best, bestVars
}

var (
	indexedParam = regexp.MustCompile(`^([a-z_\-]+?)(\d+)$`)
	integerText  = regexp.MustCompile(`^-?\d+$`)
)

// checkRequest lists the ways a recorded request breaks the schema.
func (s apiSchema) checkRequest(r pvesim.Request) []string {
	tmpl, vars := s.template(r.Path)
	if tmpl == "" {
		return []string{fmt.Sprintf("%s %s: no such path in the PVE API", r.Method, r.Path)}
	}
	def, ok := s[tmpl][r.Method]
	if !ok {
		return []string{fmt.Sprintf("%s %s: the PVE API has no %s on %s", r.Method, r.Path, r.Method, tmpl)}
	}
	props, _ := def.Parameters["properties"].(map[string]any)
	var problems []string
	sent := map[string]bool{}
	for _, vals := range []url.Values{r.Query, r.Form} {
		for name, v := range vals {
			sent[name] = true
			decl, ok := props[name].(map[string]any)
			if !ok {
				if m := indexedParam.FindStringSubmatch(name); m != nil {
					decl, ok = props[m[1]+"[n]"].(map[string]any)
				}
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s %s: parameter %q is not declared for %s", r.Method, r.Path, name, tmpl))
				continue
			}
			if msg := checkParamValue(decl, v[0]); msg != "" {
				problems = append(problems, fmt.Sprintf("%s %s: parameter %q=%q: %s", r.Method, r.Path, name, v[0], msg))
			}
		}
	}
	for name, d := range props {
		decl, _ := d.(map[string]any)
		if isOptional(decl) {
			continue
		}
		if _, isVar := vars[name]; !isVar && !sent[name] {
			problems = append(problems, fmt.Sprintf("%s %s: required parameter %q missing", r.Method, r.Path, name))
		}
	}
	return problems
}

func isOptional(decl map[string]any) bool {
	v, _ := decl["optional"].(float64)
	return v == 1
}

func checkParamValue(decl map[string]any, v string) string {
	switch decl["type"] {
	case "boolean":
		if v != "0" && v != "1" {
			return "booleans go on the wire as 0/1"
		}
	case "integer":
		if !integerText.MatchString(v) {
			return "not an integer"
		}
	}
	if enum, ok := decl["enum"].([]any); ok {
		for _, e := range enum {
			if e == v {
				return ""
			}
		}
		return fmt.Sprintf("not one of %v", enum)
	}
	return ""
}

// checkResponse lists the ways a recorded answer breaks the schema: success
// data against "returns", errors against PVE's error envelope.
func (s apiSchema) checkResponse(r pvesim.Request) []string {
	where := fmt.Sprintf("%s %s → %d", r.Method, r.Path, r.Status)
	if r.Status >= 400 {
		if len(r.Body) == 0 {
			if r.Status == http.StatusUnauthorized {
				return nil
			}
			return []string{where + ": empty error body (only 401 has one)"}
		}
		var env map[string]any
		if err := json.Unmarshal(r.Body, &env); err != nil {
			return []string{where + ": error body is not JSON"}
		}
		if d, ok := env["data"]; !ok || d != nil {
			return []string{where + `: error body must carry "data": null`}
		}
		return nil
	}
	tmpl, _ := s.template(r.Path)
	def, ok := s[tmpl][r.Method]
	if !ok {
		return []string{where + ": path not in schema"}
	}
	var env map[string]any
	if err := json.Unmarshal(r.Body, &env); err != nil {
		return []string{where + ": body is not JSON: " + err.Error()}
	}
	data, ok := env["data"]
	if !ok {
		return []string{where + `: no "data" member`}
	}
	var problems []string
	checkData(where+" data", def.Returns, data, &problems)
	return problems
}

func checkData(where string, schema map[string]any, v any, problems *[]string) {
	if schema == nil {
		return
	}
	typ, _ := schema["type"].(string)
	bad := func(format string, args ...any) {
		*problems = append(*problems, where+": "+fmt.Sprintf(format, args...))
	}
	if v == nil {
		if typ != "null" && typ != "" {
			bad("null where the schema says %s", typ)
		}
		return
	}
	switch typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("want an object, got %T", v)
			return
		}
		props, _ := schema["properties"].(map[string]any)
		names := make([]string, 0, len(props))
		for name := range props {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			sub, _ := props[name].(map[string]any)
			val, present := obj[name]
			if !present {
				if !isOptional(sub) {
					bad("required property %q missing", name)
				}
				continue
			}
			checkData(where+"."+name, sub, val, problems)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			bad("want an array, got %T", v)
			return
		}
		items, _ := schema["items"].(map[string]any)
		for i, item := range arr {
			checkData(fmt.Sprintf("%s[%d]", where, i), items, item, problems)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("want a string, got %v", v)
			return
		}
		if enum, ok := schema["enum"].([]any); ok {
			for _, e := range enum {
				if e == str {
					return
				}
			}
			bad("%q is not one of %v", str, enum)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			bad("want an integer, got %v", v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			bad("want a number, got %v", v)
		}
	case "boolean":
		if f, ok := v.(float64); !ok || (f != 0 && f != 1) {
			bad("want a 0/1 boolean, got %v", v)
		}
	}
}

// rawCall sends a request the client has no method for.
func rawCall(t *testing.T, base, method, path string, params url.Values) (int, []byte) {
	t.Helper()
	target := base + "/api2/json" + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+testTokenID+"="+testSecret)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestSchemaConformance(t *testing.T) {
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
	waitOK := func(what string, upid string, err error) {
		t.Helper()
		must(what, err)
		_, err = c.WaitTask(ctx, upid, 10*time.Millisecond, nil)
		must(what+" task", err)
	}

	// Every client method, against every kind of guest.
	must("Ping", c.Ping(ctx))
	_, err := c.ClusterStatus(ctx)
	must("ClusterStatus", err)
	for _, typ := range []string{"", "vm", "storage", "node", "sdn"} {
		_, err = c.ClusterResources(ctx, typ)
		must("ClusterResources "+typ, err)
	}
	_, err = c.Nodes(ctx)
	must("Nodes", err)
	for _, n := range []string{"home", "pve", "agent1", "agent"} {
		_, err = c.NodeStatus(ctx, n)
		must("NodeStatus", err)
		_, err = c.NodeStorage(ctx, n)
		must("NodeStorage", err)
	}
	for _, content := range []string{"backup", "", "iso"} {
		_, err = c.StorageContent(ctx, "pve", "nfs-backup", content)
		must("StorageContent", err)
	}
	_, err = c.StorageContent(ctx, "pve", "local-lvm", "images")
	must("StorageContent local-lvm", err)
	tasks, err := c.ClusterTasks(ctx)
	must("ClusterTasks", err)
	if len(tasks) == 0 {
		t.Fatal("the simulator has no task history")
	}
	for _, g := range []struct {
		node, kind string
		vmid       int
	}{{"pve", "qemu", 101}, {"pve", "lxc", 201}, {"agent1", "qemu", 103}} {
		_, err = c.FindGuest(ctx, g.vmid)
		must("FindGuest", err)
		_, err = c.GuestStatus(ctx, g.node, g.kind, g.vmid)
		must("GuestStatus", err)
		_, err = c.GuestConfig(ctx, g.node, g.kind, g.vmid)
		must("GuestConfig", err)
		_, err = c.Snapshots(ctx, g.node, g.kind, g.vmid)
		must("Snapshots", err)
	}
	upid, err := c.GuestAction(ctx, "agent", "qemu", 104, "start", url.Values{"timeout": {"30"}, "skiplock": {"0"}})
	waitOK("qemu start", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "qemu", 104, "reboot", url.Values{"timeout": {"30"}})
	waitOK("qemu reboot", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "qemu", 104, "shutdown", url.Values{"timeout": {"60"}, "forceStop": {"1"}})
	waitOK("qemu shutdown", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "qemu", 104, "stop", url.Values{"overrule-shutdown": {"1"}})
	waitOK("qemu stop", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "lxc", 203, "start", nil)
	waitOK("lxc start", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "lxc", 203, "reboot", nil)
	waitOK("lxc reboot", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "lxc", 203, "shutdown", url.Values{"timeout": {"30"}, "forceStop": {"1"}})
	waitOK("lxc shutdown", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "lxc", 203, "start", nil)
	waitOK("lxc start again", upid, err)
	upid, err = c.GuestAction(ctx, "agent", "lxc", 203, "stop", nil)
	waitOK("lxc stop", upid, err)
	for _, g := range []struct {
		kind    string
		vmid    int
		vmstate bool
	}{{"qemu", 101, true}, {"lxc", 201, false}} {
		upid, err = c.CreateSnapshot(ctx, "pve", g.kind, g.vmid, "schema-check", "conformance", g.vmstate)
		waitOK("CreateSnapshot", upid, err)
		upid, err = c.RollbackSnapshot(ctx, "pve", g.kind, g.vmid, "schema-check")
		waitOK("RollbackSnapshot", upid, err)
		upid, err = c.DeleteSnapshot(ctx, "pve", g.kind, g.vmid, "schema-check")
		waitOK("DeleteSnapshot", upid, err)
	}
	_, err = c.TaskLog(ctx, "pve", upid, 1, 5)
	must("TaskLog", err)

	// Simulator paths the client has no method for, which tools may call.
	for _, p := range []struct {
		method, path string
		params       url.Values
	}{
		{"GET", "/nodes/pve/qemu", url.Values{"full": {"1"}}},
		{"GET", "/nodes/pve/lxc", nil},
		{"GET", "/nodes/pve/tasks", url.Values{"vmid": {"101"}, "limit": {"5"}, "source": {"all"}}},
		{"GET", "/nodes/pve/tasks", url.Values{"errors": {"1"}}},
		{"GET", "/nodes/pve/storage", url.Values{"content": {"backup"}}},
		{"GET", "/nodes/home/storage/local/content", url.Values{"content": {"iso"}}},
		{"GET", "/nodes/home/storage/nfs-backup/content", url.Values{"vmid": {"100"}}},
		{"GET", "/nodes/pve/qemu/101/config", url.Values{"snapshot": {"pre-upgrade"}}},
		{"GET", "/nodes/pve/qemu/101/snapshot/pre-upgrade", nil},
		{"GET", "/nodes/pve/lxc/201/snapshot/clean", nil},
		{"GET", "/nodes/pve/lxc/201/config", url.Values{"current": {"1"}}},
		{"POST", "/nodes/pve/qemu/102/snapshot/weekly/rollback", url.Values{"start": {"1"}}},
		{"DELETE", "/nodes/pve/lxc/201/snapshot/clean", url.Values{"force": {"1"}}},
	} {
		if status, body := rawCall(t, srv.URL, p.method, p.path, p.params); status != http.StatusOK {
			t.Fatalf("%s %s = %d %s", p.method, p.path, status, body)
		}
	}

	requests := sim.Requests()
	covered := map[string]bool{}
	for _, r := range requests {
		if r.Status != http.StatusOK {
			t.Errorf("%s %s answered %d during the conformance run: %s", r.Method, r.Path, r.Status, r.Body)
		}
		for _, p := range append(schema.checkRequest(r), schema.checkResponse(r)...) {
			t.Error(p)
		}
		tmpl, _ := schema.template(r.Path)
		covered[r.Method+" "+tmpl] = true
	}
	for _, want := range []string{
		"GET /version", "GET /cluster/status", "GET /cluster/resources", "GET /cluster/tasks", "GET /nodes",
		"GET /nodes/{node}/status", "GET /nodes/{node}/storage", "GET /nodes/{node}/storage/{storage}/content",
		"GET /nodes/{node}/tasks", "GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks/{upid}/log",
		"GET /nodes/{node}/qemu", "GET /nodes/{node}/lxc",
		"GET /nodes/{node}/qemu/{vmid}/status/current", "GET /nodes/{node}/lxc/{vmid}/status/current",
		"GET /nodes/{node}/qemu/{vmid}/config", "GET /nodes/{node}/lxc/{vmid}/config",
		"GET /nodes/{node}/qemu/{vmid}/snapshot", "GET /nodes/{node}/lxc/{vmid}/snapshot",
		"POST /nodes/{node}/qemu/{vmid}/snapshot", "POST /nodes/{node}/lxc/{vmid}/snapshot",
		"POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", "POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
		"DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
		"GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "GET /nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
		"POST /nodes/{node}/qemu/{vmid}/status/start", "POST /nodes/{node}/qemu/{vmid}/status/stop",
		"POST /nodes/{node}/qemu/{vmid}/status/shutdown", "POST /nodes/{node}/qemu/{vmid}/status/reboot",
		"POST /nodes/{node}/lxc/{vmid}/status/start", "POST /nodes/{node}/lxc/{vmid}/status/stop",
		"POST /nodes/{node}/lxc/{vmid}/status/shutdown", "POST /nodes/{node}/lxc/{vmid}/status/reboot",
	} {
		if !covered[want] {
			t.Errorf("conformance run never exercised %s", want)
		}
	}
	t.Logf("checked %d requests over %d path/method pairs", len(requests), len(covered))
}

// The simulator's error answers keep PVE's envelope too.
func TestSchemaErrorShapes(t *testing.T) {
	schema := loadSchema(t)
	sim, srv := startSim(t)
	rawCall(t, srv.URL, "GET", "/cluster/resources", url.Values{"type": {"qemu"}})
	rawCall(t, srv.URL, "GET", "/nodes/pve/qemu/999/status/current", nil)
	rawCall(t, srv.URL, "POST", "/nodes/pve/lxc/201/status/start", nil)
	rawCall(t, srv.URL, "GET", "/nodes/pve/nonsense", nil)
	sim.SetNodeOffline("agent", true)
	rawCall(t, srv.URL, "GET", "/nodes/agent/status", nil)
	for _, r := range sim.Requests() {
		if r.Status < 400 {
			t.Errorf("%s %s answered %d, want an error", r.Method, r.Path, r.Status)
		}
		for _, p := range schema.checkResponse(r) {
			t.Error(p)
		}
	}
}

// The checker must catch what it is meant to catch.
func TestSchemaCheckerFindsProblems(t *testing.T) {
	schema := loadSchema(t)
	cases := []struct {
		name string
		req  pvesim.Request
		want string
	}{
		{"unknown path", pvesim.Request{Method: "GET", Path: "/nodes/pve/bogus"}, "no such path"},
		{"unknown method", pvesim.Request{Method: "PUT", Path: "/cluster/resources"}, "has no PUT"},
		{"undeclared parameter", pvesim.Request{Method: "GET", Path: "/cluster/resources", Query: url.Values{"kind": {"vm"}}}, `"kind" is not declared`},
		{"bad enum", pvesim.Request{Method: "GET", Path: "/cluster/resources", Query: url.Values{"type": {"qemu"}}}, "not one of"},
		{"boolean as word", pvesim.Request{Method: "POST", Path: "/nodes/pve/qemu/101/snapshot", Form: url.Values{"snapname": {"a1"}, "vmstate": {"true"}}}, "0/1"},
		{"missing required", pvesim.Request{Method: "POST", Path: "/nodes/pve/qemu/101/snapshot"}, `required parameter "snapname"`},
		{"missing property", pvesim.Request{Method: "GET", Path: "/cluster/resources", Status: 200, Body: []byte(`{"data":[{"type":"qemu"}]}`)}, `required property "id" missing`},
		{"true instead of 1", pvesim.Request{Method: "GET", Path: "/cluster/status", Status: 200, Body: []byte(`{"data":[{"id":"c","name":"c","type":"cluster","quorate":true}]}`)}, "0/1 boolean"},
		{"wrong type", pvesim.Request{Method: "GET", Path: "/nodes/pve/tasks/x/status", Status: 200, Body: []byte(`{"data":{"pid":"12"}}`)}, "want an integer"},
		{"error without data null", pvesim.Request{Method: "GET", Path: "/nodes", Status: 500, Body: []byte(`{"message":"x"}`)}, `"data": null`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problems := schema.checkRequest(tc.req)
			if tc.req.Status != 0 {
				problems = schema.checkResponse(tc.req)
			}
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Fatalf("problems %q do not mention %q", problems, tc.want)
			}
		})
	}
	// The same request, well-formed, passes: the checker is not just noisy.
	ok := pvesim.Request{Method: "POST", Path: "/nodes/pve/qemu/101/snapshot", Form: url.Values{"snapname": {"a1"}, "vmstate": {"1"}, "net0": {"x"}}}
	if p := schema.checkRequest(ok); len(p) != 1 || !strings.Contains(p[0], "net0") {
		t.Fatalf("checkRequest(%v) = %q, want only the net0 complaint", ok, p)
	}
}
