package watch

// Several clusters: one watcher per cluster, the default's standing for all,
// each naming its cluster in what it publishes and in its alert keys.

import (
	"log/slog"
	"regexp"
	"strings"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// Cluster is one cluster to watch: its name and its API client (nil: not
// watched).
type Cluster struct {
	Name string
	PVE  *pve.Client
}

// NewClusters builds the watcher of several clusters, the default first:
// one poll per cluster, each publishing events that name its cluster, with
// alert keys and subjects that start with it ("lab/guest-crashed:101",
// "lab/guest/101"), so two clusters' guest 101 are two alerts. The watcher
// returned is the default cluster's and stands for all: Acquire, Release,
// SetUnattended, SetIntervals, Problems and Run act on every cluster's (the
// service check is set on each: Cluster). With one cluster it is New, and
// nothing names a cluster, as before clusters.
func NewClusters(clusters []Cluster, st *store.Store, log *slog.Logger) *Watcher {
	if len(clusters) == 0 {
		return New(nil, st, log)
	}
	if len(clusters) == 1 {
		w := New(clusters[0].PVE, st, log)
		w.name = clusters[0].Name
		return w
	}
	if log == nil {
		log = slog.Default()
	}
	w := New(clusters[0].PVE, st, log.With("cluster", clusters[0].Name))
	// The default cluster's alerts from before several clusters are its own.
	w.cluster, w.adopt, w.name = clusters[0].Name, true, clusters[0].Name
	for _, c := range clusters[1:] {
		p := New(c.PVE, st, log.With("cluster", c.Name))
		p.cluster, p.name = c.Name, c.Name
		w.peers = append(w.peers, p)
	}
	return w
}

// Cluster is the watcher of cluster name (of those NewClusters was given),
// to set its service check; nil when there is no such cluster.
func (w *Watcher) Cluster(name string) *Watcher {
	for _, x := range w.all() {
		if x.name == name {
			return x
		}
	}
	return nil
}

// all is this watcher and its peers.
func (w *Watcher) all() []*Watcher { return append([]*Watcher{w}, w.peers...) }

// named marks ev as about this watcher's cluster when there are several: its
// Cluster, and its summary, which is what a notification shows, starts with
// it (node names may be the same on each).
func (w *Watcher) named(ev *store.Event) *store.Event {
	if w.cluster != "" {
		ev.Cluster = w.cluster
		ev.Summary = "[cluster " + w.cluster + "] " + ev.Summary
	}
	return ev
}

// ours reports whether a stored event is this watcher's cluster's: one that
// names it, or, for the default cluster's, one from before several clusters.
func (w *Watcher) ours(ev store.Event) bool {
	return ev.Cluster == w.cluster || w.adopt && ev.Cluster == ""
}

// qualified is a key or subject as stored: after the cluster's name with
// several clusters ("lab/guest/101"), so no two clusters' alerts share one.
func (w *Watcher) qualified(s string) string {
	if w.cluster == "" || s == "" {
		return s
	}
	return w.cluster + "/" + s
}

// clusterSettings are the settings a Problem's Fix names that each cluster
// has its own of, with several clusters (cmd/jarvis/config_clusters.go).
var clusterSettings = regexp.MustCompile(`\b(JARVIS_NODES|PVE_TOKEN_ID|PVE_TOKEN_SECRET|PVE_TOKEN_SECRET_FILE|PVE_TLS_FINGERPRINT|PVE_CA_FILE)\b`)

// ForCluster is p with its Fix naming cluster name's own settings, as an
// installation with several clusters sets them: JARVIS_CLUSTER_LAB_NODES,
// JARVIS_CLUSTER_LAB_PVE_TOKEN_ID, … "" leaves it as it is (one cluster).
func (p Problem) ForCluster(name string) Problem {
	if name == "" {
		return p
	}
	prefix := "JARVIS_CLUSTER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
	p.Fix = clusterSettings.ReplaceAllStringFunc(p.Fix, func(v string) string {
		return prefix + strings.TrimPrefix(v, "JARVIS_")
	})
	return p
}
