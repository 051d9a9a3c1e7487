package pve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// Has and Below read /access/permissions the way PVE computed it: a listed path
// holds what is listed; others inherit what propagates from above.
func TestPermissionsHas(t *testing.T) {
	admin := Permissions{"/": {"VM.Audit": true, "Sys.Audit": true}, "/vms": {"VM.Audit": true, "Sys.Audit": true},
		"/nodes": {"VM.Audit": true, "Sys.Audit": true}}
	for _, c := range []struct {
		name  string
		perms Permissions
		path  string
		priv  string
		want  bool
	}{
		{"listed path", admin, "/vms", "VM.Audit", true},
		{"inherited by a guest", admin, "/vms/101", "VM.Audit", true},
		{"inherited two levels down", admin, "/nodes/pve/x", "Sys.Audit", true},
		{"not held at all", admin, "/vms/101", "VM.PowerMgmt", false},
		{"top-level path missing: nothing held there", Permissions{"/": {"Datastore.Audit": true}}, "/storage/local", "Datastore.Audit", false},
		{"held on / without propagation", Permissions{"/": {"Sys.Audit": false}}, "/", "Sys.Audit", true},
		{"… does not reach a node", Permissions{"/": {"Sys.Audit": false}}, "/nodes/pve", "Sys.Audit", false},
		{"pool member listed without propagation", Permissions{"/vms/101": {"VM.PowerMgmt": false}}, "/vms/101", "VM.PowerMgmt", true},
		{"… its sibling gets nothing", Permissions{"/vms/101": {"VM.PowerMgmt": false}}, "/vms/102", "VM.PowerMgmt", false},
		{"a listed guest holds only what is listed", Permissions{"/vms": {"VM.Audit": true, "VM.PowerMgmt": true}, "/vms/101": {"VM.Audit": true}},
			"/vms/101", "VM.PowerMgmt", false},
		{"a non-propagating ACL on /vms is skipped below it", Permissions{"/": {"VM.Audit": true}, "/vms": {"VM.PowerMgmt": false}},
			"/vms/101", "VM.Audit", true},
		{"… and its own privilege stays on /vms", Permissions{"/": {"VM.Audit": true}, "/vms": {"VM.PowerMgmt": false}},
			"/vms/101", "VM.PowerMgmt", false},
		{"empty answer", Permissions{}, "/", "Sys.Audit", false},
		{"path written loosely", admin, "vms/101/", "VM.Audit", true},
	} {
		if got := c.perms.Has(c.path, c.priv); got != c.want {
			t.Errorf("%s: Has(%s, %s) = %v, want %v", c.name, c.path, c.priv, got, c.want)
		}
	}
	if got := (Permissions{"/vms/7": {}, "/vms/101": {}, "/vmsx": {}, "/vms": {}}).ListedUnder("/vms"); !reflect.DeepEqual(got, []string{"/vms/101", "/vms/7"}) {
		t.Errorf("ListedUnder(/vms) = %v", got)
	}
}

// The client reads the simulator's answer, and the answer has the shape the
// schema describes: path → privilege → 0/1.
func TestPermissionsFromTheSimulator(t *testing.T) {
	sim := pvesim.New(pvesim.Options{TokenID: testTokenID, TokenSecret: testSecret, ACL: []pvesim.ACL{
		{Path: "/", Privileges: []string{"Sys.Audit", "VM.Audit"}, Propagate: true},
		{Path: "/vms/101", Privileges: []string{"VM.Audit", "VM.PowerMgmt"}},
	}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	perms, err := c.Permissions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		path, priv string
		want       bool
	}{
		{"/", "Sys.Audit", true}, {"/nodes/pve", "Sys.Audit", true}, {"/vms/101", "VM.PowerMgmt", true},
		{"/vms/102", "VM.PowerMgmt", false}, {"/vms/102", "VM.Audit", true}, {"/storage/local", "Datastore.Audit", false},
	} {
		if got := perms.Has(q.path, q.priv); got != q.want {
			t.Errorf("Has(%s, %s) = %v, want %v (answer %v)", q.path, q.priv, got, q.want, perms)
		}
	}

	schema := loadSchema(t)
	for _, r := range sim.Requests() {
		for _, p := range append(schema.checkRequest(r), schema.checkResponse(r)...) {
			t.Error(p)
		}
		var env struct {
			Data map[string]map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &env); err != nil || len(env.Data) == 0 {
			t.Fatalf("%s: data is not a map of maps: %s", r.Path, r.Body)
		}
		for p, privs := range env.Data {
			for priv, v := range privs {
				if s := string(v); s != "0" && s != "1" {
					t.Errorf("%s %s: propagate flag %s, want 0 or 1", p, priv, s)
				}
			}
		}
	}
}

// Each endpoint is asked on its own: a dead one does not hide behind failover.
func TestVersionAt(t *testing.T) {
	_, good := startSim(t)
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	c := newClient(t, testTokenID, testSecret, good.URL, deadURL)
	eps := c.Endpoints()
	if len(eps) != 2 || eps[0].URL != good.URL || eps[1].URL != deadURL {
		t.Fatalf("Endpoints() = %+v", eps)
	}
	ctx := context.Background()
	if v, err := c.VersionAt(ctx, eps[0].Name); err != nil || v != "9.1.1" {
		t.Errorf("VersionAt(good) = %q, %v", v, err)
	}
	var epErr *EndpointError
	if _, err := c.VersionAt(ctx, eps[1].Name); !errors.As(err, &epErr) || epErr.URL != deadURL {
		t.Errorf("VersionAt(dead) = %v, want an EndpointError naming %s", err, deadURL)
	}
	if _, err := c.VersionAt(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("VersionAt(unknown) = %v", err)
	}
	wrong := newClient(t, testTokenID, "wrong-secret", good.URL)
	var apiErr *APIError
	if _, err := wrong.VersionAt(ctx, wrong.Endpoints()[0].Name); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("VersionAt with a wrong secret = %v, want a 401", err)
	}
}
