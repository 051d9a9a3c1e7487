// Package watch reads the cluster while anyone follows the feed (and pings it
// once at start, to say at once whether it can be read) and publishes
// what it sees into the store: snapshots of nodes, guests and storage, alerts
// raised once and resolved when their condition clears, and a system event when
// the cluster cannot be read (and when it can again). The web app only serves
// those events; it never talks to the cluster itself, except for the health
// check's ping.
package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// Intervals say how often each part of the cluster is read while anyone listens.
type Intervals struct{ Nodes, Guests, Storage time.Duration }

// DefaultIntervals: nodes every 10 s, guests every 15 s, storage every 30 s.
var DefaultIntervals = Intervals{Nodes: 10 * time.Second, Guests: 15 * time.Second, Storage: 30 * time.Second}

// Alert thresholds.
const (
	storageAlertPercent = 90
	memoryAlertPercent  = 95
)

// source is the Source of every event the watcher publishes.
const source = "poller"

// Watcher publishes cluster snapshots while at least one feed subscriber listens —
// one shared poll, whatever the number of subscribers — and raises alerts once,
// resolving them when the condition clears.
type Watcher struct {
	pve   *pve.Client
	store *store.Store
	log   *slog.Logger
	every Intervals
	tick  time.Duration

	mu        sync.Mutex
	listeners int
	wake      chan struct{}

	// alert key → id of the open alert event
	open map[string]uint64
	// last seen state of each guest, to notice a guest that stopped
	guests map[int64]string

	// What the polls found wrong, by part (start, nodes, guests, storage), and
	// the causes last reported; guarded by mu, as health reads them (Problems).
	failing  map[string]Problem
	checked  bool   // a check has ended in this run
	reported string // problemKey of what was last reported; "" when all is well
	// The open failing system event, this run's or a previous run's, and its
	// problemKey. Only Run touches them.
	problemEvent uint64
	eventKey     string
	// failingSaid: a failure was logged and not yet its recovery, whether or
	// not its event could be stored.
	failingSaid bool
}

// New builds a watcher; c may be nil (no cluster), then it does nothing.
func New(c *pve.Client, st *store.Store, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{pve: c, store: st, log: log, every: DefaultIntervals, tick: time.Second,
		wake: make(chan struct{}, 1), open: map[string]uint64{}, guests: map[int64]string{}, failing: map[string]Problem{}}
}

// SetIntervals changes the poll intervals (tests use short ones). Call before Run.
func (w *Watcher) SetIntervals(every Intervals) {
	w.every = every
	w.tick = min(every.Nodes, every.Guests, every.Storage, time.Second)
}

// Acquire registers a listener; polling starts with the first.
func (w *Watcher) Acquire() {
	w.mu.Lock()
	w.listeners++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Release unregisters a listener.
func (w *Watcher) Release() {
	w.mu.Lock()
	w.listeners--
	w.mu.Unlock()
}

func (w *Watcher) listening() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.listeners > 0
}

// Run polls until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	if w.pve == nil {
		return
	}
	w.loadOpenAlerts(ctx)
	w.loadOpenProblem(ctx)
	w.checkAtStart(ctx)
	var nextNodes, nextGuests, nextStorage time.Time
	tick := time.NewTicker(w.tick)
	defer tick.Stop()
	// A call that changed the cluster makes the guests poll sooner, so the
	// console shows a stopped VM as stopped right after the approval.
	sub := w.store.Subscribe(64)
	defer func() { sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.wake:
		case ev, ok := <-sub.C():
			if !ok {
				sub = w.store.Subscribe(64) // dropped for being slow: follow again
				continue
			}
			if !changedCluster(ev) {
				continue
			}
			// The change may come from another process sharing the database
			// (jarvis stdio, jarvis approve): this process's read cache never
			// saw that write, so it goes, and the guests are read now.
			w.pve.Invalidate()
			nextGuests = time.Time{}
		}
		if !w.listening() {
			continue
		}
		now := time.Now()
		if now.After(nextNodes) {
			nextNodes = now.Add(w.every.Nodes)
			w.pollNodes(ctx)
		}
		if now.After(nextGuests) {
			nextGuests = now.Add(w.every.Guests)
			w.pollGuests(ctx)
		}
		if now.After(nextStorage) {
			nextStorage = now.Add(w.every.Storage)
			w.pollStorage(ctx)
		}
	}
}

// changedCluster reports a tool event for a call that ended after changing state.
func changedCluster(ev *store.Event) bool {
	if ev.Type != store.EventTool {
		return false
	}
	var d store.ToolDetails
	if json.Unmarshal(ev.Details, &d) != nil {
		return false
	}
	return d.Phase == store.ToolEnded && d.Outcome == store.OutcomeOK && d.Tier != safety.Green.String()
}

// The snapshot rows use the tools' own rounding (tools.Percent, tools.FractionPercent),
// so the console never shows a number a tool call would report differently.

func nodeSnapshot(n pve.NodeEntry) store.NodeSnapshot {
	return store.NodeSnapshot{Node: n.Node, Status: n.Status, CPUPercent: tools.FractionPercent(float64(n.CPU)),
		MemPercent: tools.Percent(int64(n.Mem), int64(n.MaxMem)), DiskPercent: tools.Percent(int64(n.Disk), int64(n.MaxDisk)),
		MemBytes: int64(n.Mem), MaxMemBytes: int64(n.MaxMem), UptimeSeconds: int64(n.Uptime)}
}

func guestSnapshot(r pve.Resource) store.GuestSnapshot {
	return store.GuestSnapshot{VMID: int64(r.VMID), Name: r.Name, Node: r.Node, Kind: r.Type, Status: r.Status,
		CPUPercent: tools.FractionPercent(float64(r.CPU)), MemPercent: tools.Percent(int64(r.Mem), int64(r.MaxMem))}
}

func storageSnapshot(r pve.Resource) store.StorageSnapshot {
	return store.StorageSnapshot{Storage: r.Storage, Node: r.Node, Type: r.PluginType, Shared: bool(r.Shared), Status: r.Status,
		UsedPercent: tools.Percent(int64(r.Disk), int64(r.MaxDisk)), UsedBytes: int64(r.Disk), TotalBytes: int64(r.MaxDisk)}
}

func (w *Watcher) pollNodes(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	nodes, err := w.pve.Nodes(cctx)
	w.note(ctx, store.ClusterNodes, err)
	if err != nil {
		return
	}
	snaps := []store.NodeSnapshot{}
	present := map[string]bool{}
	for _, n := range nodes {
		present["node-offline:"+n.Node], present["node-memory:"+n.Node] = true, true
		s := nodeSnapshot(n)
		snaps = append(snaps, s)
		w.alert(ctx, "node-offline:"+n.Node, n.Status != "online", store.SeverityCritical, n.Node,
			fmt.Sprintf("node %s is %s", n.Node, n.Status), fmt.Sprintf("node %s is online again", n.Node))
		w.alert(ctx, "node-memory:"+n.Node, n.Status == "online" && s.MemPercent > memoryAlertPercent, store.SeverityWarning, n.Node,
			fmt.Sprintf("node %s memory at %.1f %%", n.Node, s.MemPercent), fmt.Sprintf("node %s memory back below %d %%", n.Node, memoryAlertPercent))
	}
	w.resolveGone(ctx, "node-", present)
	w.publish(ctx, store.ClusterDetails{What: store.ClusterNodes, Nodes: snaps})
}

func (w *Watcher) pollGuests(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	res, err := w.pve.ClusterResources(cctx, "vm")
	w.note(ctx, store.ClusterGuests, err)
	if err != nil {
		return
	}
	snaps := []store.GuestSnapshot{}
	present := map[string]bool{}
	for _, r := range res {
		s := guestSnapshot(r)
		id := s.VMID
		key := fmt.Sprintf("guest-stopped:%d", id)
		present[key] = true
		snaps = append(snaps, s)
		prev, seen := w.guests[id]
		w.guests[id] = r.Status
		switch {
		case seen && prev == "running" && r.Status == "stopped":
			w.alert(ctx, key, true, store.SeverityWarning, r.Node, fmt.Sprintf("guest %d '%s' on %s stopped", id, r.Name, r.Node), "")
		case r.Status == "running":
			w.alert(ctx, key, false, store.SeverityInfo, r.Node, "", fmt.Sprintf("guest %d '%s' is running again", id, r.Name))
		}
	}
	w.resolveGone(ctx, "guest-", present)
	w.publish(ctx, store.ClusterDetails{What: store.ClusterGuests, Guests: snaps})
}

func (w *Watcher) pollStorage(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	res, err := w.pve.ClusterResources(cctx, "storage")
	w.note(ctx, store.ClusterStorage, err)
	if err != nil {
		return
	}
	snaps := []store.StorageSnapshot{}
	present := map[string]bool{}
	for _, r := range res {
		s := storageSnapshot(r)
		snaps = append(snaps, s)
		// Shared storage is one store seen from every node: one alert, not one per node.
		where, node := "on "+r.Node, r.Node
		if s.Shared {
			where, node = "(shared)", ""
		}
		present["storage-full:"+node+"/"+r.Storage] = true
		w.alert(ctx, "storage-full:"+node+"/"+r.Storage, s.UsedPercent > storageAlertPercent, store.SeverityWarning, node,
			fmt.Sprintf("storage %s %s is %.1f %% full", r.Storage, where, s.UsedPercent),
			fmt.Sprintf("storage %s %s back below %d %%", r.Storage, where, storageAlertPercent))
	}
	w.resolveGone(ctx, "storage-", present)
	w.publish(ctx, store.ClusterDetails{What: store.ClusterStorage, Storage: snaps})
}

func (w *Watcher) publish(ctx context.Context, d store.ClusterDetails) {
	ev := &store.Event{Type: store.EventCluster, Severity: store.SeverityInfo, Source: source,
		Summary: "cluster " + d.What + " snapshot", Details: store.EncodeDetails(d)}
	if err := w.store.Publish(ctx, ev); err != nil {
		w.log.Warn("cluster poll: publish", "err", err)
	}
}

// alert raises (once) or resolves the alert named key.
func (w *Watcher) alert(ctx context.Context, key string, firing bool, severity, node, raise, resolve string) {
	id, open := w.open[key]
	switch {
	case firing && !open:
		details := store.EncodeDetails(store.AlertDetails{Key: key, State: store.AlertRaised})
		ev := &store.Event{Type: store.EventAlert, Severity: severity, Source: source, Node: node, Summary: raise, Details: details}
		if err := w.store.Publish(ctx, ev); err == nil {
			w.open[key] = ev.ID
		}
	case !firing && open:
		delete(w.open, key)
		_, _ = w.store.ResolveEvent(ctx, id, store.Jarvis)
		if resolve != "" {
			details := store.EncodeDetails(store.AlertDetails{Key: key, State: store.AlertResolved, AlertID: id})
			// The notice that it cleared needs no action: it is stored resolved.
			now := time.Now()
			_ = w.store.Publish(ctx, &store.Event{Type: store.EventAlert, Severity: store.SeverityInfo, Source: source, Node: node,
				Summary: resolve, Details: details, Resolved: true, ResolvedAt: &now, ResolvedBy: store.Jarvis})
		}
	}
}

// loadOpenAlerts picks up the alerts a previous run raised and nobody resolved,
// so a restart neither raises them again nor leaves them open for ever.
func (w *Watcher) loadOpenAlerts(ctx context.Context) {
	open, err := w.store.ListEvents(ctx, store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true, Limit: 1000})
	if err != nil {
		w.log.Warn("cluster poll: reading open alerts", "err", err)
		return
	}
	for _, ev := range open {
		var d store.AlertDetails
		if json.Unmarshal(ev.Details, &d) == nil && d.State == store.AlertRaised && d.Key != "" {
			if _, seen := w.open[d.Key]; !seen {
				w.open[d.Key] = ev.ID
			}
		}
	}
}

// resolveGone resolves open alerts under prefix whose subject a successful poll
// no longer lists (a deleted guest, a removed storage): nothing will clear them.
func (w *Watcher) resolveGone(ctx context.Context, prefix string, present map[string]bool) {
	for key, id := range w.open {
		if strings.HasPrefix(key, prefix) && !present[key] {
			delete(w.open, key)
			_, _ = w.store.ResolveEvent(ctx, id, store.Jarvis)
		}
	}
}
