package pvesim

// Permissions as PVE keeps and checks them: ACL entries per token, privileges
// inherited down the path tree, GET /access/permissions, and the 403 an endpoint
// answers when its permission check fails.

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
)

// ACL is one access-control entry of the full-access token, as
// `pveum acl modify PATH --tokens ID --roles ROLE [--propagate 0]` keeps it: the
// privileges of the role on Path, and whether they reach the paths below.
// An entry with no privileges is the NoAccess role.
type ACL struct {
	Path       string
	Privileges []string
	Propagate  bool
}

// AllPrivileges returns every privilege PVE 9.1 knows: what the Administrator
// role holds.
func AllPrivileges() []string {
	return []string{
		"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
		"Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
		"Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser",
		"SDN.Allocate", "SDN.Audit", "SDN.Use",
		"Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
		"User.Modify",
		"VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit",
		"VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console",
		"VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite",
		"VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.PowerMgmt", "VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback",
	}
}

// AuditorPrivileges returns what the PVEAuditor role holds; the read-only token
// has it on /.
func AuditorPrivileges() []string {
	return []string{"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit", "VM.GuestAgent.Audit"}
}

// acls returns the ACL entries of a token; an unknown one has none.
func (s *Sim) acls(tokenID string) []ACL {
	switch tokenID {
	case s.opts.TokenID:
		if s.opts.ACL == nil {
			return []ACL{{Path: "/", Privileges: AllPrivileges(), Propagate: true}}
		}
		return s.opts.ACL
	case s.opts.ReadOnlyTokenID:
		return []ACL{{Path: "/", Privileges: AuditorPrivileges(), Propagate: true}}
	}
	return nil
}

// privilegesAt follows PVE's AccessControl::roles: walking from / down to p,
// the entries on each level replace what came from above — on p itself all of
// them, above it only those that propagate. The answer maps each privilege to
// whether it propagates further.
func privilegesAt(acls []ACL, p string) map[string]int {
	p = path.Clean("/" + p)
	levels := []string{"/"}
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			levels = append(levels, p[:i])
		}
	}
	if p != "/" {
		levels = append(levels, p)
	}
	privs := map[string]int{}
	for i, level := range levels {
		final := i == len(levels)-1
		var next map[string]int
		for _, a := range acls {
			if path.Clean("/"+a.Path) != level || !(final || a.Propagate) {
				continue
			}
			if next == nil {
				next = map[string]int{}
			}
			for _, priv := range a.Privileges {
				if a.Propagate {
					next[priv] = 1
				} else if _, ok := next[priv]; !ok {
					next[priv] = 0
				}
			}
		}
		if next != nil {
			privs = next
		}
	}
	return privs
}

// topLevelPaths are the paths PVE always evaluates for /access/permissions
// (RPCEnvironment::get_effective_permissions).
var topLevelPaths = []string{"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}

// effectivePermissions is the answer of /access/permissions without a path:
// every top-level and ACL path, leaving out those where nothing is held.
func effectivePermissions(acls []ACL) map[string]map[string]int {
	paths := slices.Clone(topLevelPaths)
	for _, a := range acls {
		paths = append(paths, path.Clean("/"+a.Path))
	}
	out := map[string]map[string]int{}
	for _, p := range paths {
		if privs := privilegesAt(acls, p); len(privs) > 0 {
			out[p] = privs
		}
	}
	return out
}

func (s *Sim) getPermissions(c *call) response {
	userid := c.params["userid"]
	if userid == "" {
		userid = c.user
	}
	// A token may read its own permissions; anything else needs Sys.Audit on
	// /access (an API token owns no other token).
	if userid != c.user {
		if _, ok := privilegesAt(s.acls(c.user), "/access")["Sys.Audit"]; !ok {
			return errorResponse(http.StatusForbidden, "Permission check failed (/access, Sys.Audit)")
		}
	}
	acls := s.acls(userid)
	if p := c.params["path"]; p != "" {
		return dataResponse(map[string]any{p: privilegesAt(acls, p)})
	}
	return dataResponse(effectivePermissions(acls))
}

// permCheck is the permission check of one endpoint, as the API schema's
// "permissions" → "check" states it; an empty one means PVE checks nothing
// up front ("user": "all"), though the answer may leave out what the caller
// may not see.
type permCheck struct {
	path  string   // ACL path template, e.g. /vms/{vmid}
	privs []string // all of them, or any one when any is set
	any   bool
}

// permChecks maps "METHOD /path/template" to its check, for every route the
// simulator serves (access_test.go holds them against the schema).
var permChecks = func() map[string]permCheck {
	m := map[string]permCheck{
		"GET /version":                                {},
		"GET /access/permissions":                     {},
		"GET /cluster/status":                         {path: "/", privs: []string{"Sys.Audit"}},
		"GET /cluster/resources":                      {},
		"GET /cluster/tasks":                          {},
		"GET /nodes":                                  {},
		"GET /nodes/{node}/status":                    {path: "/nodes/{node}", privs: []string{"Sys.Audit"}},
		"GET /nodes/{node}/storage":                   {},
		"GET /nodes/{node}/storage/{storage}/content": {path: "/storage/{storage}", privs: []string{"Datastore.Audit", "Datastore.AllocateSpace"}, any: true},
		"GET /nodes/{node}/tasks":                     {},
		"GET /nodes/{node}/tasks/{upid}/status":       {},
		"GET /nodes/{node}/tasks/{upid}/log":          {},
	}
	audit := permCheck{path: "/vms/{vmid}", privs: []string{"VM.Audit"}}
	for _, kind := range []string{"qemu", "lxc"} {
		g := "/nodes/{node}/" + kind + "/{vmid}"
		m["GET /nodes/{node}/"+kind] = permCheck{}
		m["GET "+g+"/status/current"] = audit
		m["GET "+g+"/config"] = audit
		m["GET "+g+"/snapshot"] = audit
		m["POST "+g+"/snapshot"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Snapshot"}}
		m["GET "+g+"/snapshot/{snapname}"] = permCheck{}
		m["DELETE "+g+"/snapshot/{snapname}"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Snapshot"}}
		m["POST "+g+"/snapshot/{snapname}/rollback"] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.Snapshot", "VM.Snapshot.Rollback"}, any: true}
		for _, action := range []string{"start", "stop", "shutdown", "reboot"} {
			m["POST "+g+"/status/"+action] = permCheck{path: "/vms/{vmid}", privs: []string{"VM.PowerMgmt"}}
		}
	}
	return m
}()

// accessRoutes are the routes of this file.
func accessRoutes() []route {
	return []route{{pattern: seg("access/permissions"), methods: map[string]endpoint{"GET": {
		params: map[string]param{"userid": str, "path": str}, handler: (*Sim).getPermissions}}}}
}

// denied answers like PVE when the calling token fails the endpoint's
// permission check: 403 "Permission check failed (PATH, PRIV)".
func (s *Sim) denied(method string, rt *route, vars map[string]string, tokenID string) (response, bool) {
	// A route without a declared check checks nothing; access_test.go makes
	// sure every route has one.
	check := permChecks[method+" /"+strings.Join(rt.pattern, "/")]
	if len(check.privs) == 0 {
		return response{}, false
	}
	p := check.path
	for name, v := range vars {
		p = strings.ReplaceAll(p, "{"+name+"}", v)
	}
	held := privilegesAt(s.acls(tokenID), p)
	for _, priv := range check.privs {
		_, ok := held[priv]
		switch {
		case ok && check.any:
			return response{}, false
		case !ok && !check.any:
			return errorResponse(http.StatusForbidden, fmt.Sprintf("Permission check failed (%s, %s)", p, priv)), true
		}
	}
	if check.any {
		return errorResponse(http.StatusForbidden, fmt.Sprintf("Permission check failed (%s, %s)", p, strings.Join(check.privs, "|"))), true
	}
	return response{}, false
}
