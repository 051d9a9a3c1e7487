package pvesim

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// schemaPermissions reads the "permissions" of every method in the official
// API schema (../shared/pve-api/pve-api-flat.json beside the repo root); the
// test skips without it, and fails in CI.
func schemaPermissions(t *testing.T) map[string]map[string]struct {
	Permissions struct {
		Check []any  `json:"check"`
		User  string `json:"user"`
	} `json:"permissions"`
} {
	t.Helper()
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			raw, err := os.ReadFile(filepath.Join(d, "..", "shared", "pve-api", "pve-api-flat.json"))
			if err != nil {
				break
			}
			var s map[string]map[string]struct {
				Permissions struct {
					Check []any  `json:"check"`
					User  string `json:"user"`
				} `json:"permissions"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("pve-api-flat.json does not parse: %v", err)
			}
			return s
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("pve-api-flat.json not found beside the repo root (../shared/pve-api/)")
	}
	t.Skip("pve-api-flat.json not found beside the repo root (../shared/pve-api/)")
	return nil
}

// Every route has its permission check declared, and it is the one the
// official schema states.
func TestPermissionChecksMatchTheSchema(t *testing.T) {
	served := map[string]bool{}
	for _, rt := range routes {
		for method := range rt.methods {
			key := method + " /" + strings.Join(rt.pattern, "/")
			served[key] = true
			if _, ok := permChecks[key]; !ok {
				t.Errorf("%s: no permission check declared in permChecks (access.go)", key)
			}
		}
	}
	for key := range permChecks {
		if !served[key] {
			t.Errorf("permChecks declares %s, which the simulator does not serve", key)
		}
	}

	schema := schemaPermissions(t)
	for key, got := range permChecks {
		method, tmpl, _ := strings.Cut(key, " ")
		def, ok := schema[tmpl][method]
		if !ok {
			t.Errorf("%s: not in the PVE API", key)
			continue
		}
		check := def.Permissions.Check
		if len(check) == 0 {
			if len(got.privs) != 0 {
				t.Errorf("%s: the schema checks nothing up front (user %q), the simulator checks %v", key, def.Permissions.User, got.privs)
			}
			continue
		}
		if check[0] == "and" && len(check) > 1 {
			// An "and" (clone, download-url): its first check is made up front,
			// the rest by the handler, which needs the request's parameters.
			check, _ = check[1].([]any)
		}
		if len(check) < 3 || check[0] != "perm" {
			t.Errorf("%s: schema check %v is not a plain perm check; teach permCheck about it", key, check)
			continue
		}
		var privs []string
		for _, p := range check[2].([]any) {
			privs = append(privs, p.(string))
		}
		want := permCheck{path: check[1].(string), privs: privs, any: slices.Contains(check, any("any"))}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: simulator checks %+v, the schema says %+v", key, got, want)
		}
	}
}

// privilegesAt follows PVE's inheritance: entries on a path replace what came
// from above; only propagating ones reach the paths below.
func TestPrivilegesAt(t *testing.T) {
	for _, c := range []struct {
		name string
		acls []ACL
		path string
		want map[string]int
	}{
		{"root propagates", []ACL{{"/", []string{"VM.Audit"}, true}}, "/vms/101", map[string]int{"VM.Audit": 1}},
		{"root without propagation holds / only", []ACL{{"/", []string{"VM.Audit"}, false}}, "/vms", map[string]int{}},
		{"same, on / itself", []ACL{{"/", []string{"VM.Audit"}, false}}, "/", map[string]int{"VM.Audit": 0}},
		{"a deeper entry replaces", []ACL{{"/", []string{"VM.Audit", "VM.PowerMgmt"}, true}, {"/vms/101", []string{"VM.Audit"}, true}},
			"/vms/101", map[string]int{"VM.Audit": 1}},
		{"NoAccess below", []ACL{{"/", []string{"VM.Audit"}, true}, {"/vms/101", nil, true}}, "/vms/101", map[string]int{}},
		{"a non-propagating entry is skipped below it", []ACL{{"/", []string{"Sys.Audit"}, true}, {"/vms", []string{"VM.Audit"}, false}},
			"/vms/101", map[string]int{"Sys.Audit": 1}},
		{"sibling entries do not apply", []ACL{{"/vms/102", []string{"VM.PowerMgmt"}, true}}, "/vms/101", map[string]int{}},
	} {
		if got := privilegesAt(c.acls, c.path); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: privilegesAt(%s) = %v, want %v", c.name, c.path, got, c.want)
		}
	}
}

func permissionsOf(t *testing.T, r reply) map[string]map[string]int {
	t.Helper()
	var out map[string]map[string]int
	if r.status != 200 || json.Unmarshal(r.env.Data, &out) != nil {
		t.Fatalf("/access/permissions = %d %s", r.status, r.body)
	}
	return out
}

func TestAccessPermissions(t *testing.T) {
	all := map[string]int{}
	for _, p := range AllPrivileges() {
		all[p] = 1
	}

	t.Run("default token holds everything everywhere", func(t *testing.T) {
		h := newHarness(t)
		got := permissionsOf(t, h.get("/access/permissions", nil))
		for _, p := range topLevelPaths {
			if !reflect.DeepEqual(got[p], all) {
				t.Errorf("%s = %v, want every privilege, propagated", p, got[p])
			}
		}
		if len(got) != len(topLevelPaths) {
			t.Errorf("paths = %v, want the top-level ones only", got)
		}
	})

	t.Run("configured ACL", func(t *testing.T) {
		acl := []ACL{
			{Path: "/", Privileges: []string{"Sys.Audit", "VM.Audit"}, Propagate: true},
			{Path: "/vms/101", Privileges: []string{"VM.Audit", "VM.PowerMgmt"}, Propagate: false},
			{Path: "/storage", Privileges: nil, Propagate: true}, // NoAccess
		}
		sim := New(Options{ACL: acl, TaskDuration: time.Second})
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		h := &harness{t: t, sim: sim, srv: srv}
		got := permissionsOf(t, h.get("/access/permissions", nil))
		want := map[string]map[string]int{
			"/": {"Sys.Audit": 1, "VM.Audit": 1}, "/access": {"Sys.Audit": 1, "VM.Audit": 1}, "/access/groups": {"Sys.Audit": 1, "VM.Audit": 1},
			"/nodes": {"Sys.Audit": 1, "VM.Audit": 1}, "/pool": {"Sys.Audit": 1, "VM.Audit": 1}, "/sdn": {"Sys.Audit": 1, "VM.Audit": 1},
			"/vms": {"Sys.Audit": 1, "VM.Audit": 1}, "/vms/101": {"VM.Audit": 0, "VM.PowerMgmt": 0},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("permissions = %v\nwant %v", got, want)
		}
		one := permissionsOf(t, h.get("/access/permissions", url.Values{"path": {"/storage/local"}}))
		if !reflect.DeepEqual(one, map[string]map[string]int{"/storage/local": {}}) {
			t.Errorf("path=/storage/local = %v, want an empty map under the path (as PVE)", one)
		}

		// The checks follow the same ACL.
		for _, c := range []struct {
			method, path string
			status       int
			msg          string
		}{
			{"POST", "/nodes/pve/qemu/101/status/stop", 200, ""},
			{"POST", "/nodes/pve/qemu/102/status/stop", 403, "Permission check failed (/vms/102, VM.PowerMgmt)"},
			{"GET", "/nodes/pve/storage/local/content", 403, "Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)"},
			{"GET", "/cluster/status", 200, ""},
			{"POST", "/nodes/pve/qemu/101/snapshot/before-php84/rollback", 403, "Permission check failed (/vms/101, VM.Snapshot|VM.Snapshot.Rollback)"},
		} {
			r := h.call(fullAuth, c.method, c.path, nil)
			if r.status != c.status || (c.msg != "" && (r.reason != c.msg || strings.TrimSpace(r.env.Message) != c.msg)) {
				t.Errorf("%s %s = %d %q %q, want %d %q", c.method, c.path, r.status, r.reason, r.env.Message, c.status, c.msg)
			}
		}
	})

	t.Run("another token's permissions need Sys.Audit on /access", func(t *testing.T) {
		sim := New(Options{ACL: []ACL{{Path: "/vms", Privileges: []string{"VM.Audit"}, Propagate: true}}, TaskDuration: time.Second})
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		h := &harness{t: t, sim: sim, srv: srv}
		if r := h.get("/access/permissions", url.Values{"userid": {DemoReadOnlyTokenID}}); r.status != 403 ||
			r.reason != "Permission check failed (/access, Sys.Audit)" {
			t.Errorf("a token without Sys.Audit on /access reading another's = %d %q", r.status, r.reason)
		}
		own := permissionsOf(t, h.get("/access/permissions", url.Values{"userid": {DemoTokenID}}))
		if !reflect.DeepEqual(own, map[string]map[string]int{"/vms": {"VM.Audit": 1}}) {
			t.Errorf("own permissions by userid = %v", own)
		}
		// The auditor holds Sys.Audit on / with propagation, so /access too.
		got := permissionsOf(t, h.call(roAuth, "GET", "/access/permissions", url.Values{"userid": {DemoTokenID}}))
		if !reflect.DeepEqual(got, own) {
			t.Errorf("the auditor reading the token's = %v, want %v", got, own)
		}
		audit := permissionsOf(t, h.call(roAuth, "GET", "/access/permissions", nil))
		if !reflect.DeepEqual(audit["/vms"], map[string]int{"Datastore.Audit": 1, "Mapping.Audit": 1, "Pool.Audit": 1, "SDN.Audit": 1,
			"Sys.Audit": 1, "VM.Audit": 1, "VM.GuestAgent.Audit": 1}) {
			t.Errorf("read-only token's /vms = %v, want PVEAuditor's privileges", audit["/vms"])
		}
	})
}
