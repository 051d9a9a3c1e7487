package server

// Several clusters: one Jarvis serving more than one Proxmox cluster. Each
// has its own tools.Env (API client, SSH, Wake-on-LAN) and its own policy
// (protected nodes, VMIDs, services); everything else — the store, the
// switches, the rate limits, the callers — is shared. Dispatch resolves the
// cluster right after parsing the arguments and uses that cluster's Env and
// Policy for the rest of the call.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

// DefaultClusterName names the one cluster built from Options.Env and
// Options.Policy (JARVIS_CLUSTER_NAME's default).
const DefaultClusterName = "pve"

// Cluster is one Proxmox cluster Jarvis serves: what its tools use and the
// policy that protects it.
type Cluster struct {
	Name   string
	Env    *tools.Env
	Policy safety.Policy
}

// setUpClusters checks the clusters of opts and gives each Env what it reads
// from the server. Options.Env and Policy are the one cluster when Clusters
// is empty: most tests and the host commands build it that way.
func (s *Server) setUpClusters(opts Options) error {
	list := opts.Clusters
	switch {
	case len(list) == 0 && opts.Env == nil:
		return errors.New("server: Env (or Clusters) is required")
	case len(list) == 0:
		list = []Cluster{{Name: DefaultClusterName, Env: opts.Env, Policy: opts.Policy}}
	// Each of Clusters has its own Policy: one beside them would be
	// silently ignored, a protection that never applied.
	case opts.Env != nil || !reflect.ValueOf(opts.Policy).IsZero():
		return errors.New("server: set Env and Policy for one cluster, or Clusters, not both")
	}
	for i := range list {
		c := &list[i]
		if c.Name == "" || c.Env == nil || slices.ContainsFunc(s.clusters, func(o *Cluster) bool { return o.Name == c.Name }) {
			return fmt.Errorf("server: cluster %d needs a name of its own and an Env", i+1)
		}
		s.clusters = append(s.clusters, c)
	}
	for i, c := range s.clusters {
		// Each cluster has its own VMIDs, so its own record of the guests
		// Jarvis created there (guestCluster).
		if c.Env.Created == nil {
			c.Env.Created = opts.Store.CreatedGuestsOn(s.guestCluster(c))
		}
		// list_alerts lists every cluster's alerts, wherever it is called;
		// where the watcher does not watch, it says so instead.
		if c.Env.Alerts == nil {
			c.Env.Alerts = s
			if i > 0 && !opts.WatchEveryCluster {
				c.Env.Alerts = unwatched{cluster: c.Name, watched: s.clusters[0].Name}
			}
		}
	}
	return nil
}

// several reports whether callers must say which cluster a call is for.
func (s *Server) several() bool { return len(s.clusters) > 1 }

// defaultCluster is the first cluster: resources, the console and the
// watcher act on it, and it is the only one when there is one.
func (s *Server) defaultCluster() *Cluster { return s.clusters[0] }

// ClusterNames lists the clusters served, the default first.
func (s *Server) ClusterNames() []string {
	out := make([]string, len(s.clusters))
	for i, c := range s.clusters {
		out[i] = c.Name
	}
	return out
}

// clusterOf resolves the cluster a call is for from its cluster argument,
// and leaves the arguments as every later step needs them: with one
// cluster, without the argument (the audit row, approvals and rules see the
// arguments exactly as before clusters existed); with several, with the
// cluster named, so the audit row says which and an approval or a
// confirmation for one cluster never matches a call on another. A Direct
// call (a resource read, the console) that names none is for the default
// cluster. The refusal reason is "" when the cluster was found.
func (s *Server) clusterOf(c *Call) (*Cluster, string) {
	raw, given := c.args.Object[tools.ClusterArg]
	name, isString := raw.(string)
	choices := "one of " + strings.Join(s.ClusterNames(), ", ")
	var found *Cluster
	switch {
	case given && !isString:
		return nil, fmt.Sprintf("cluster must be a name: %s", choices)
	case given:
		i := slices.IndexFunc(s.clusters, func(o *Cluster) bool { return o.Name == name })
		if i < 0 {
			return nil, fmt.Sprintf("no cluster %s: %s", name, choices)
		}
		found = s.clusters[i]
	case s.several() && !c.Direct:
		return nil, "cluster is required: " + choices
	default:
		found = s.defaultCluster()
	}
	if !s.several() {
		if given {
			delete(c.args.Object, tools.ClusterArg)
			c.auditArgs = redactedArgs(c.args.Object)
		}
		return found, ""
	}
	if !given {
		c.args.Object[tools.ClusterArg] = found.Name
		c.auditArgs = redactedArgs(c.args.Object)
	}
	return found, ""
}

// decode checks the arguments against the tool's own schema, which has no
// cluster argument, and decodes them. The cluster stays in the arguments
// the call is bound by (audit, approval, confirmation, rules).
func (s *Server) decode(t *tools.Tool, c Call) (*tools.Input, error) {
	cluster, named := c.args.Object[tools.ClusterArg]
	if !named {
		return t.Decode(c.args)
	}
	delete(c.args.Object, tools.ClusterArg)
	defer func() { c.args.Object[tools.ClusterArg] = cluster }()
	return t.Decode(c.args)
}

// InputSchema is a tool's input schema as callers see it (and a rule may
// constrain it): with the cluster argument when there are several clusters.
func (s *Server) InputSchema(t *tools.Tool) *jsonschema.Schema {
	if !s.several() {
		return t.InputSchema
	}
	return tools.ClusterSchema(t.InputSchema, s.ClusterNames())
}

// ruleOnCluster reports whether a rule can let calls on cluster through:
// with several clusters a call always names its cluster, and a rule allows
// only the arguments it names.
func (s *Server) ruleOnCluster(r store.Rule, cluster string) bool {
	if !s.several() {
		return true
	}
	vals := r.Args[tools.ClusterArg]
	return slices.Contains(vals, "*") || slices.Contains(vals, cluster)
}

// watched reports whether the watcher raises alerts for c.
func (s *Server) watched(c *Cluster) bool {
	return c == s.defaultCluster() || s.opts.WatchEveryCluster
}

// guestCluster is the cluster c's created-guest records are kept under:
// "" for the default cluster, its name for the others. Records made before
// several clusters (and with one) are under "", and they are the default
// cluster's: that is why the first name must stay the installation's
// original cluster.
func (s *Server) guestCluster(c *Cluster) string {
	if c == s.defaultCluster() {
		return ""
	}
	return c.Name
}

// callCluster is the cluster a call's events and approval name: its
// cluster's name with several clusters, "" with one (as before clusters, so
// a single-cluster installation's rows and feed stay as they were) or when
// the call was refused before its cluster was known.
func (s *Server) callCluster(c Call) string {
	if !s.several() || c.cluster == nil {
		return ""
	}
	return c.cluster.Name
}

// unwatched answers list_alerts on a cluster the watcher does not watch yet.
type unwatched struct{ cluster, watched string }

func (u unwatched) OpenAlertsFor(context.Context, safety.Principal) (*tools.AlertList, error) {
	return &tools.AlertList{Alerts: []tools.OpenAlert{},
		Note: fmt.Sprintf("Jarvis watches cluster %s only so far: no alerts are raised for %s", u.watched, u.cluster)}, nil
}
