package tools

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

func init() {
	// What TestPrivilegesCoverWhatPVEChecks runs of these tools.
	privilegeRuns["get_guest_config"] = map[string]any{"vmid": 101}
	privilegeRuns["get_guest_agent_info"] = map[string]any{"vmid": 101}
	privilegeRuns["get_metrics_history"] = map[string]any{"vmid": 201, "timeframe": "day"}
	privilegeRuns["list_storage_content"] = map[string]any{"storage": "local-lvm", "node": "pve"}
	privilegeRuns["get_cluster_health"] = map[string]any{}
	// get_task_log needs a UPID of the test's own cluster, as get_task_status
	// does: TestOpsReadPrivileges runs it.
}

const (
	opsReadTokenID = "jarvis@pve!opsread"
	opsReadSecret  = "5e8d2c71-opsread-test-secret"
)

// readEnv is a tool environment on a simulated cluster whose token holds acl
// (nil: everything). front, when set, stands before the simulator and may
// answer in its place.
func readEnv(t *testing.T, acl []pvesim.ACL, front func(sim http.Handler) http.Handler) (*Env, *pvesim.Sim) {
	t.Helper()
	sim := pvesim.New(pvesim.Options{TokenID: opsReadTokenID, TokenSecret: opsReadSecret, TaskDuration: 20 * time.Millisecond, ACL: acl})
	return serveEnv(t, sim, front), sim
}

// serveEnv serves sim (behind front, when set) and gives a tool environment
// on it; sim must accept the opsRead token.
func serveEnv(t *testing.T, sim *pvesim.Sim, front func(sim http.Handler) http.Handler) *Env {
	t.Helper()
	var h http.Handler = sim
	if front != nil {
		h = front(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { sim.ClearFaults(); srv.Close() })
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: srv.URL}}, AllowHTTP: true,
		TokenID: opsReadTokenID, TokenSecret: opsReadSecret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &Env{PVE: client}
}

// answering stands before the simulator and answers the given API paths
// (without /api2/json) with the given bodies.
func answering(bodies map[string]string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if body, ok := bodies[strings.TrimPrefix(r.URL.Path, "/api2/json")]; ok {
				w.Header().Set("Content-Type", "application/json;charset=UTF-8")
				_, _ = io.WriteString(w, body)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// runRead prepares and runs a tool as dispatch does, and gives its output as
// the JSON a client gets.
func runRead(t *testing.T, env *Env, tool string, args map[string]any) (string, error) {
	t.Helper()
	raw, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tl := range Catalogue() {
		if tl.Name != tool {
			continue
		}
		call, err := prepareRaw(ctx, tl, env, raw)
		if err != nil {
			return "", err
		}
		if call.Target.Node == "" && tool != "get_cluster_health" {
			t.Errorf("%s: the call names no node in its target", tool)
		}
		out, err := call.Run(ctx, noProgress)
		if err != nil {
			return "", err
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatalf("%s: output does not encode: %v", tool, err)
		}
		return string(b), nil
	}
	t.Fatalf("no tool %s", tool)
	return "", nil
}

// readInto runs a tool that must succeed and decodes its output.
func readInto[T any](t *testing.T, env *Env, tool string, args map[string]any) (T, string) {
	t.Helper()
	var out T
	js, err := runRead(t, env, tool, args)
	if err != nil {
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out, js
}

// errorSays checks an error names what went wrong in the words given.
func errorSays(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one saying %q", what, words)
		return
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", what, err, w)
		}
	}
}

// Every one of these tools works with exactly the privileges it declares,
// and fails with PVE's own refusal without the one it needs, as doctor
// predicts.
func TestOpsReadPrivileges(t *testing.T) {
	exactly := func(tool string) []pvesim.ACL {
		privs, _ := Privileges(tool)
		var acl []pvesim.ACL
		for _, p := range privs {
			acl = append(acl, pvesim.ACL{Path: "/", Privileges: p.AnyOf[:1], Propagate: true})
		}
		return acl
	}
	for _, c := range []struct {
		tool    string
		args    map[string]any
		without []string // privileges taken away; "" runs with exactly the declared ones
		want    string
	}{
		{"get_guest_config", map[string]any{"vmid": 101}, nil, ""},
		{"get_guest_config", map[string]any{"vmid": 101}, []string{"VM.Audit"}, "Permission check failed (/vms/101, VM.Audit)"},
		{"get_guest_agent_info", map[string]any{"vmid": 101}, nil, ""},
		{"get_guest_agent_info", map[string]any{"vmid": 201}, nil, ""},
		{"get_guest_agent_info", map[string]any{"vmid": 101}, []string{"VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"},
			"Permission check failed (/vms/101, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)"},
		{"get_metrics_history", map[string]any{"vmid": 101}, nil, ""},
		{"get_metrics_history", map[string]any{"node": "pve"}, nil, ""},
		{"get_metrics_history", map[string]any{"node": "pve"}, []string{"Sys.Audit"}, "Permission check failed (/nodes/pve, Sys.Audit)"},
		{"list_storage_content", map[string]any{"storage": "nfs-backup"}, nil, ""},
		{"list_storage_content", map[string]any{"storage": "local", "node": "home"}, []string{"Datastore.Audit", "Datastore.AllocateSpace"},
			"Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)"},
		{"get_task_log", nil, nil, ""},
		{"get_cluster_health", map[string]any{}, nil, ""},
	} {
		name := c.tool
		if c.without != nil {
			name += " without " + strings.Join(c.without, ",")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			acl := exactly(c.tool)
			if c.without != nil {
				var held []string
				for _, p := range pvesim.AllPrivileges() {
					if !slices.Contains(c.without, p) {
						held = append(held, p)
					}
				}
				acl = []pvesim.ACL{{Path: "/", Privileges: held, Propagate: true}}
				perms := pve.Permissions{}
				for _, path := range []string{"/", "/nodes", "/vms", "/storage"} {
					perms[path] = map[string]pve.Bool{}
					for _, p := range held {
						perms[path][p] = true
					}
				}
				short := MissingPrivileges(c.tool, perms, []string{"pve"})
				if !slices.ContainsFunc(short, func(s Shortfall) bool { return strings.Contains(s.Privilege.Names(), c.without[0]) }) {
					t.Errorf("doctor does not predict that %s fails without %v: %+v", c.tool, c.without, short)
				}
			}
			env, _ := readEnv(t, acl, nil)
			args := c.args
			if c.tool == "get_task_log" {
				tasks, err := env.PVE.ClusterTasks(context.Background())
				if err != nil || len(tasks) == 0 {
					t.Fatalf("no task to read: %v", err)
				}
				args = map[string]any{"upid": tasks[0].UPID}
			}
			js, err := runRead(t, env, c.tool, args)
			if c.want != "" {
				errorSays(t, c.tool, err, c.want)
				return
			}
			if err != nil {
				t.Fatalf("%s with exactly its privileges: %v", c.tool, err)
			}
			if strings.Contains(js, "Permission check failed") {
				t.Errorf("%s with exactly its privileges reports a refusal: %s", c.tool, js)
			}
		})
	}
}
