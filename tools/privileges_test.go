package tools

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// A new tool cannot be forgotten: every tool in the catalogue has an entry,
// and every entry is a tool.
func TestEveryToolHasPrivileges(t *testing.T) {
	inCatalogue := map[string]bool{}
	aclPath := regexp.MustCompile(`^(/|/nodes/\{node\}|/vms/\{vmid\}|/storage/\{storage\})$`)
	privName := regexp.MustCompile(`^[A-Z][A-Za-z]+(\.[A-Z][A-Za-z]+)+$`)
	for _, tool := range Catalogue() {
		inCatalogue[tool.Name] = true
		privs, ok := Privileges(tool.Name)
		if !ok {
			t.Errorf("%s has no entry in toolPrivileges (privileges.go): add the Proxmox privileges it needs, or none for SSH-only tools", tool.Name)
			continue
		}
		if PrivilegeGroup(tool.Name) == "" {
			t.Errorf("%s has no group in toolPrivileges", tool.Name)
		}
		for _, p := range privs {
			if !aclPath.MatchString(p.Path) || len(p.AnyOf) == 0 || p.For == "" {
				t.Errorf("%s: privilege %+v needs an ACL path (/, /nodes/{node}, /vms/{vmid}, /storage/{storage}), names and a reason", tool.Name, p)
			}
			for _, n := range p.AnyOf {
				if !privName.MatchString(n) {
					t.Errorf("%s: %q is not a privilege name", tool.Name, n)
				}
			}
		}
	}
	for name := range toolPrivileges {
		if !inCatalogue[name] {
			t.Errorf("toolPrivileges lists %s, which is not in the catalogue", name)
		}
	}
}

func TestMissingPrivileges(t *testing.T) {
	all := func(privs ...string) map[string]pve.Bool {
		m := map[string]pve.Bool{}
		for _, p := range privs {
			m[p] = true
		}
		return m
	}
	top := func(privs map[string]pve.Bool) pve.Permissions {
		out := pve.Permissions{}
		for _, p := range []string{"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"} {
			out[p] = privs
		}
		return out
	}
	auditor := top(all("Sys.Audit", "VM.Audit", "Datastore.Audit"))
	operator := top(all("Sys.Audit", "VM.Audit", "Datastore.Audit", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback"))
	type want struct {
		missing, heldOnly []string
		partial           bool
	}
	for _, c := range []struct {
		name  string
		tool  string
		perms pve.Permissions
		nodes []string
		want  map[string]want // privilege (Names on Base) → where
	}{
		{"README's read role cannot power guests", "start_vm", auditor, nil,
			map[string]want{"VM.PowerMgmt on /vms": {missing: []string{"/vms"}}}},
		{"operator role can", "restart_container", operator, nil, nil},
		{"any of two privileges suffices", "rollback_snapshot",
			top(all("VM.Audit", "VM.Snapshot.Rollback")), nil, nil},
		{"neither of them", "rollback_snapshot", auditor, nil,
			map[string]want{"VM.Snapshot or VM.Snapshot.Rollback on /vms": {missing: []string{"/vms"}}}},
		{"backups are hidden from Datastore.Audit alone", "get_backups", operator, nil, map[string]want{
			"Datastore.AllocateSpace on /storage": {missing: []string{"/storage"}},
			"VM.Backup on /vms":                   {missing: []string{"/vms"}}}},
		{"Datastore.Allocate shows every backup", "get_backups", top(all("Datastore.Audit", "Datastore.Allocate")), nil, nil},
		{"PVEDatastoreUser and VM.Backup", "get_backups", top(all("Datastore.Audit", "Datastore.AllocateSpace", "VM.Backup")), nil, nil},
		{"power to one pool's guests only", "stop_vm",
			pve.Permissions{"/": all("VM.Audit"), "/vms": all("VM.Audit"), "/vms/101": all("VM.Audit", "VM.PowerMgmt"), "/vms/102": all("VM.Audit", "VM.PowerMgmt")},
			nil, map[string]want{"VM.PowerMgmt on /vms": {missing: []string{"/vms"}, heldOnly: []string{"/vms/101", "/vms/102"}, partial: true}}},
		{"every guest but one", "stop_vm",
			pve.Permissions{"/": all("VM.Audit", "VM.PowerMgmt"), "/vms": all("VM.Audit", "VM.PowerMgmt"), "/vms/105": all("VM.Audit")},
			nil, map[string]want{"VM.PowerMgmt on /vms": {missing: []string{"/vms/105"}, partial: true}}},
		{"one node without Sys.Audit", "get_node_status",
			pve.Permissions{"/nodes/pve": all("Sys.Audit"), "/nodes/home": all("Sys.Audit")}, []string{"home", "pve", "agent"},
			map[string]want{"Sys.Audit on /nodes": {missing: []string{"/nodes/agent"}, partial: true}}},
		{"no node", "get_node_status", pve.Permissions{"/": {"Sys.Audit": false}}, []string{"home", "pve"},
			map[string]want{"Sys.Audit on /nodes": {missing: []string{"/nodes"}}}},
		{"Sys.Audit on / without propagation still reads the cluster status", "get_cluster_status",
			pve.Permissions{"/": {"Sys.Audit": false}, "/vms": {"VM.Audit": true}}, nil, nil},
		{"without VM.Audit the cluster status counts no guest", "get_cluster_status",
			pve.Permissions{"/": {"Sys.Audit": true}}, nil, map[string]want{"VM.Audit on /vms": {missing: []string{"/vms"}}}},
		{"SSH-only tools need nothing", "get_node_logs", pve.Permissions{}, nil, nil},
	} {
		got := map[string]want{}
		for _, s := range MissingPrivileges(c.tool, c.perms, c.nodes) {
			got[s.Privilege.String()] = want{missing: s.Missing, heldOnly: s.HeldOnly, partial: s.Partial()}
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: MissingPrivileges(%s) = %+v, want %+v", c.name, c.tool, got, c.want)
		}
	}
}

// privilegeEnv is a tool environment on a simulated cluster whose token holds
// the given ACL; the simulator answers 403 like PVE when a check fails.
func privilegeEnv(t *testing.T, acl []pvesim.ACL) *Env {
	t.Helper()
	const id, secret = "jarvis@pve!privileges", "3f6c1d2e-privileges-test-secret"
	sim := pvesim.New(pvesim.Options{TokenID: id, TokenSecret: secret, TaskDuration: 20 * time.Millisecond, ACL: acl})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: srv.URL}}, AllowHTTP: true,
		TokenID: id, TokenSecret: secret, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &Env{PVE: client}
}

// runTool prepares and runs a tool as dispatch would, and returns its error.
func runTool(t *testing.T, env *Env, tool string, args map[string]any) error {
	t.Helper()
	for _, tl := range Catalogue() {
		if tl.Name != tool {
			continue
		}
		raw, _ := json.Marshal(args)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		call, err := prepareRaw(ctx, tl, env, raw)
		if err != nil {
			return err
		}
		_, err = call.Run(ctx, noProgress)
		return err
	}
	t.Fatalf("no tool %s", tool)
	return nil
}

// Arguments that make each Proxmox tool do its whole job on the demo cluster.
var privilegeRuns = map[string]map[string]any{
	"get_cluster_status": {}, "get_node_status": {"node": "pve"}, "get_vms": {}, "get_containers": {},
	"get_guest_status": {"vmid": 101}, "get_storage": {}, "get_cluster_resources": {}, "get_backups": {},
	"get_recent_tasks": {}, "get_task_status": nil, "get_task_log": nil, // a UPID from the cluster, filled in below
	"list_snapshots": {"vmid": 101}, "create_snapshot": {"vmid": 101, "name": "privileges"},
	"rollback_snapshot": {"vmid": 101, "name": "before-php84"}, "delete_snapshot": {"vmid": 102, "name": "weekly"},
	"start_vm": {"vmid": 104}, "stop_vm": {"vmid": 101}, "shutdown_vm": {"vmid": 102}, "restart_vm": {"vmid": 105},
	"start_container": {"vmid": 203}, "stop_container": {"vmid": 201}, "shutdown_container": {"vmid": 202},
	"restart_container": {"vmid": 200},
}

// A token holding exactly what the table lists for a tool can run it: the
// table misses no permission check PVE makes on the way (the simulator
// enforces the schema's checks; pvesim's access_test.go holds it to them).
func TestPrivilegesCoverWhatPVEChecks(t *testing.T) {
	for _, tool := range Catalogue() {
		args, ok := privilegeRuns[tool.Name]
		if !ok {
			privs, _ := Privileges(tool.Name)
			if PrivilegeGroup(tool.Name) != "node commands" && len(privs) > 0 {
				t.Errorf("%s needs Proxmox privileges but has no run in privilegeRuns", tool.Name)
			}
			continue
		}
		t.Run(tool.Name, func(t *testing.T) {
			t.Parallel()
			privs, _ := Privileges(tool.Name)
			var acl []pvesim.ACL
			for _, p := range privs {
				// The first of several is enough; Unless stands for nothing here.
				acl = append(acl, pvesim.ACL{Path: "/", Privileges: p.AnyOf[:1], Propagate: true})
			}
			env := privilegeEnv(t, acl)
			if tool.Name == "get_task_status" || tool.Name == "get_task_log" {
				tasks, err := env.PVE.ClusterTasks(context.Background())
				if err != nil || len(tasks) == 0 {
					t.Fatalf("no task to ask about: %v", err)
				}
				args = map[string]any{"upid": tasks[0].UPID}
			}
			if err := runTool(t, env, tool.Name, args); err != nil {
				t.Errorf("%s with exactly %v: %v", tool.Name, privs, err)
			}
		})
	}
}

// What doctor predicts is what happens: a token without a privilege the table
// names gets PVE's 403 from the tool, naming that privilege.
func TestMissingPrivilegeFailsTheTool(t *testing.T) {
	for _, c := range []struct {
		tool    string
		without string
	}{
		{"start_vm", "VM.PowerMgmt"},
		{"stop_container", "VM.PowerMgmt"},
		{"create_snapshot", "VM.Snapshot"},
		{"get_cluster_status", "Sys.Audit"},
		{"get_node_status", "Sys.Audit"},
		{"list_snapshots", "VM.Audit"},
	} {
		t.Run(c.tool, func(t *testing.T) {
			t.Parallel()
			var held []string
			perms := pve.Permissions{}
			for _, p := range pvesim.AllPrivileges() {
				if p != c.without {
					held = append(held, p)
				}
			}
			for _, path := range []string{"/", "/nodes", "/vms", "/storage"} {
				perms[path] = map[string]pve.Bool{}
				for _, p := range held {
					perms[path][p] = true
				}
			}
			short := MissingPrivileges(c.tool, perms, []string{"pve"})
			if len(short) == 0 || !strings.Contains(short[0].Privilege.Names(), c.without) {
				t.Fatalf("MissingPrivileges(%s) without %s = %+v", c.tool, c.without, short)
			}
			env := privilegeEnv(t, []pvesim.ACL{{Path: "/", Privileges: held, Propagate: true}})
			err := runTool(t, env, c.tool, privilegeRuns[c.tool])
			if err == nil || !strings.Contains(err.Error(), "Permission check failed") || !strings.Contains(err.Error(), c.without) {
				t.Errorf("%s without %s: err = %v, want PVE's permission error", c.tool, c.without, err)
			}
		})
	}
}
