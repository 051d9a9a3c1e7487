package pve

// What the API token may do, and each configured endpoint on its own: the
// questions `jarvis doctor` asks before anyone relies on a tool.

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"
)

// Permissions is what GET /access/permissions answers for the calling token:
// ACL path → privilege → whether it propagates to the paths below. PVE has
// already applied inheritance, user/group/token precedence, pools and, for a
// privilege-separated token, the intersection with its user's privileges. It
// lists the top-level paths (/, /nodes, /vms, /storage, …) and every path that
// has an ACL entry or is a pool member, leaving out paths where nothing is held.
type Permissions map[string]map[string]Bool

// Permissions reads the calling token's effective permissions. Without the
// userid and path parameters PVE answers for the caller, over the whole tree.
func (c *Client) Permissions(ctx context.Context) (Permissions, error) {
	out := Permissions{}
	if err := c.do(ctx, http.MethodGet, "/access/permissions", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// alwaysListed are the paths PVE evaluates for every answer
// (RPCEnvironment::get_effective_permissions); when one is missing, nothing is
// held there, so nothing propagates from it either.
var alwaysListed = map[string]bool{"/": true, "/access": true, "/access/groups": true, "/nodes": true,
	"/pool": true, "/sdn": true, "/storage": true, "/vms": true}

// Has reports whether priv is in effect on a concrete ACL path ("/",
// "/nodes/pve", "/vms/101", "/storage/local"). A listed path holds exactly
// what is listed for it. Any other path has no ACL of its own and inherits what
// propagates from the nearest listed ancestor (see Below).
//
// One case /access/permissions cannot show: a path below a listed one with an
// ACL that removes everything (NoAccess) is left out like a path without an
// ACL, so Has reports the inherited privileges for it.
func (p Permissions) Has(aclPath, priv string) bool {
	aclPath = cleanACLPath(aclPath)
	if privs, ok := p[aclPath]; ok {
		_, held := privs[priv]
		return held
	}
	if aclPath == "/" {
		return false
	}
	return p.Below(parentACLPath(aclPath), priv)
}

// Below reports whether priv reaches the paths below aclPath that have no ACL
// of their own: every guest under "/vms", every node under "/nodes".
func (p Permissions) Below(aclPath, priv string) bool {
	for a := cleanACLPath(aclPath); ; a = parentACLPath(a) {
		privs, listed := p[a]
		switch {
		case listed && propagatesAny(privs):
			return bool(privs[priv])
		case listed:
			// Only non-propagating ACLs here: PVE skips them for the paths
			// below, which keep what came from further up.
		case alwaysListed[a]:
			return false
		}
		if a == "/" {
			return false
		}
	}
}

// ListedUnder returns the listed paths strictly below aclPath ("/vms/101",
// "/vms/102" under "/vms"), sorted: the ones with an ACL or a pool of their own.
func (p Permissions) ListedUnder(aclPath string) []string {
	prefix := strings.TrimSuffix(cleanACLPath(aclPath), "/") + "/"
	var out []string
	for a := range p {
		if strings.HasPrefix(a, prefix) && a != prefix {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func propagatesAny(privs map[string]Bool) bool {
	for _, propagate := range privs {
		if propagate {
			return true
		}
	}
	return false
}

func cleanACLPath(p string) string {
	if p == "" {
		return "/"
	}
	return path.Clean("/" + p)
}

func parentACLPath(p string) string { return path.Dir(p) }

// Endpoints returns the configured API endpoints in order, each URL the
// origin only (https://10.0.0.5:8006), for messages.
func (c *Client) Endpoints() []Endpoint {
	out := make([]Endpoint, len(c.endpoints))
	for i, ep := range c.endpoints {
		out[i] = Endpoint{Name: ep.Name, URL: Origin(ep.URL)}
	}
	return out
}

// VersionAt asks one endpoint alone, without failover, for the PVE version
// (GET /version): each configured address is checked on its own — reachable,
// its certificate trusted, the token accepted.
func (c *Client) VersionAt(ctx context.Context, endpoint string) (string, error) {
	for _, ep := range c.endpoints {
		if ep.Name != endpoint {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, c.deadline)
		defer cancel()
		ans, err := c.roundTrip(ctx, ep, http.MethodGet, "/version", nil)
		if err != nil {
			return "", &EndpointError{Endpoint: ep.Name, URL: Origin(ep.URL), Err: err}
		}
		if ans.status < 200 || ans.status > 299 {
			return "", c.apiError(http.MethodGet, "/version", ans)
		}
		var v struct {
			Version string `json:"version"`
			Release string `json:"release"`
		}
		if err := decodeData(http.MethodGet, "/version", ans.body, &v); err != nil {
			return "", err
		}
		return v.Version, nil
	}
	return "", fmt.Errorf("pve: no endpoint named %q is configured", endpoint)
}
