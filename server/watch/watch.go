// Package watch reads the cluster while anyone follows the feed, or while
// someone away from the desk must hear of trouble (SetUnattended), and pings it
// once at start, to say at once whether it can be read. It publishes what it
// sees into the store: snapshots of nodes, guests and storage, alerts raised
// once and resolved when their condition clears (each with a kind and a
// subject: store.AlertDetails), and a system event when the cluster cannot be
// read (and when it can again). A guest that stops is told apart by whether a
// task stopped it (guests.go); failed systemd units are read over SSH when
// given a runner (services.go). The web app only serves those events; it never
// talks to the cluster itself, except for the health check's ping. With
// several clusters (NewClusters) each is polled on its own, and what it
// publishes names its cluster.
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

// Watcher publishes cluster snapshots while at least one feed subscriber listens
// or the unattended check says so — one shared poll, whatever the number of
// subscribers — and raises alerts once, resolving them when the condition clears.
type Watcher struct {
	pve   *pve.Client
	store *store.Store
	log   *slog.Logger
	every Intervals
	tick  time.Duration

	// cluster names the cluster watched when Jarvis serves several
	// (NewClusters), "" with one: its events say it, its alerts' keys and
	// subjects start with it. adopt: the default cluster's watcher also
	// takes the open alerts and problems from before several clusters,
	// which name none. peers are the other clusters' watchers, which this
	// one (the default's) starts, stops and counts listeners for. name is
	// the cluster's name, with one too (Cluster finds it by it).
	cluster string
	adopt   bool
	peers   []*Watcher
	name    string

	mu        sync.Mutex
	listeners int
	// unattended says whether to poll with nobody listening (SetUnattended); guarded by mu.
	unattended func() bool
	wake       chan struct{}
	// running: run is under way (Problems says nothing otherwise); subs:
	// the store subscriptions run holds (Listeners). Guarded by mu.
	running bool
	subs    int

	// The fields below belong to Run's goroutine, and each run starts them
	// afresh (reset), but for the service check's settings (svc, svcNodes,
	// svcEvery): a replica that lost the watcher's lease and takes it again
	// learns the state from the store and the cluster, as at its first start.

	// alert key → the open alert event
	open map[string]openAlert
	// the last definite state of each guest (guests.go), to notice one that
	// stopped; learnt afresh after a restart and after a pause in polling
	guests map[int64]guestSeen
	// each node's status from the last nodes poll that worked; nil before one did
	nodeStatus map[string]string

	// The failed-services check (services.go): the runner, the nodes to ask,
	// how often; sshFailing holds the nodes whose last check could not run.
	svc        ServiceRunner
	svcNodes   []string
	svcEvery   time.Duration
	sshFailing map[string]bool

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
		wake: make(chan struct{}, 1), open: map[string]openAlert{}, guests: map[int64]guestSeen{}, failing: map[string]Problem{},
		sshFailing: map[string]bool{}}
}

// SetIntervals changes the poll intervals (tests use short ones). Call before Run.
func (w *Watcher) SetIntervals(every Intervals) {
	for _, x := range w.all() {
		x.every = every
		x.tick = min(every.Nodes, every.Guests, every.Storage, time.Second)
	}
}

// SetUnattended makes the watcher poll, and so raise alerts, while f returns
// true though nobody follows the feed: someone away from the desk is to be
// told (notifications configured, a standing approval waiting for an alert,
// an MCP client subscribed to alerts). f is called about once a second and
// whenever health asks for Problems, from other goroutines than the caller's:
// it must be cheap and safe for concurrent use. nil turns it off. It may be
// called at any time.
func (w *Watcher) SetUnattended(f func() bool) {
	for _, x := range w.all() {
		x.mu.Lock()
		x.unattended = f
		x.mu.Unlock()
		x.nudge()
	}
}

// Acquire registers a listener; polling starts with the first.
func (w *Watcher) Acquire() {
	for _, x := range w.all() {
		x.mu.Lock()
		x.listeners++
		x.mu.Unlock()
		x.nudge()
	}
}

// nudge wakes Run to look at once whether to poll.
func (w *Watcher) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Release unregisters a listener.
func (w *Watcher) Release() {
	for _, x := range w.all() {
		x.mu.Lock()
		x.listeners--
		x.mu.Unlock()
	}
}

// polling reports whether the watcher polls now: someone listens, or the
// unattended check says someone must hear of trouble.
func (w *Watcher) polling() bool {
	w.mu.Lock()
	listeners, unattended := w.listeners, w.unattended
	w.mu.Unlock()
	// Called without the lock: f may take locks of its own.
	return listeners > 0 || unattended != nil && unattended()
}

// Run polls until ctx ends, and returns when nothing it started still runs
// (the service runner may be closed then): every cluster's, with several.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range w.peers {
		wg.Go(func() { p.run(ctx) })
	}
	w.run(ctx)
	wg.Wait()
}

// run polls this watcher's cluster until ctx ends.
func (w *Watcher) run(ctx context.Context) {
	if w.pve == nil {
		return
	}
	w.reset()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()
	w.loadOpenAlerts(ctx)
	w.loadOpenProblem(ctx)
	w.checkAtStart(ctx)
	var nextNodes, nextGuests, nextStorage, nextServices time.Time
	every := w.tick
	if w.svc != nil {
		every = min(every, w.svcEvery)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	// A round of service checks runs beside the polls (SSH to a node that does
	// not answer takes its time); its reports come back here, one round at a time.
	services := make(chan []serviceReport, 1)
	checking := false
	// polled: the last round polled. What the watcher knew of the guests goes
	// when polling pauses: nobody watched meanwhile, so resuming learns their
	// states afresh, and an alert left open is re-checked (guests.go).
	polled := false
	// A call that changed the cluster makes the guests poll sooner, so the
	// console shows a stopped VM as stopped right after the approval.
	sub := w.store.Subscribe(64)
	w.mu.Lock()
	w.subs++
	w.mu.Unlock()
	defer func() {
		sub.Close()
		w.mu.Lock()
		w.subs--
		w.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			if checking {
				<-services // ends at once with ctx; then the runner is no longer used
			}
			return
		case reports := <-services:
			checking = false
			w.noteServices(ctx, reports)
			continue
		case <-tick.C:
		case <-w.wake:
		case ev, ok := <-sub.C():
			if !ok {
				sub = w.store.Subscribe(64) // dropped for being slow: follow again
				continue
			}
			if !changedCluster(ev) || w.cluster != "" && ev.Cluster != w.cluster {
				// Another cluster's change leaves this one's reads be. A
				// watcher that names no cluster (New) heeds every change.
				continue
			}
			// The change may come from another process sharing the database
			// (jarvis stdio, jarvis approve): this process's read cache never
			// saw that write, so it goes, and the guests are read now.
			w.pve.Invalidate()
			nextGuests = time.Time{}
		}
		if !w.polling() {
			if polled {
				polled = false
				clear(w.guests)
			}
			continue
		}
		polled = true
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
		// After the nodes poll, which says which nodes are online to ask.
		if w.svc != nil && !checking && now.After(nextServices) {
			nextServices = now.Add(w.svcEvery)
			if nodes := w.nodesToAsk(); len(nodes) > 0 {
				checking = true
				go w.checkServices(ctx, nodes, services)
			}
		}
	}
}

// reset forgets what an earlier run knew: the open alerts and problems, the
// guests and nodes seen, the nodes SSH failed on. That run may have ended
// long ago (another replica held the lease meanwhile and resolved or raised
// alerts), so this one reads them from the store again (loadOpenAlerts,
// loadOpenProblem) and learns the cluster's state afresh.
func (w *Watcher) reset() {
	w.open = map[string]openAlert{}
	w.guests = map[int64]guestSeen{}
	w.nodeStatus = nil
	w.sshFailing = map[string]bool{}
	w.problemEvent, w.eventKey, w.failingSaid = 0, "", false
	w.mu.Lock()
	w.failing = map[string]Problem{}
	w.checked, w.reported = false, ""
	w.running = true
	w.mu.Unlock()
}

// Listeners is how many of the store's subscriptions the watcher holds
// itself (one per cluster whose run is under way), so that the feed's own
// clients can be counted as the store's subscribers less these.
func (w *Watcher) Listeners() int {
	n := 0
	for _, x := range w.all() {
		x.mu.Lock()
		n += x.subs
		x.mu.Unlock()
	}
	return n
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
	status := map[string]string{}
	for _, n := range nodes {
		present["node-offline:"+n.Node], present["node-memory:"+n.Node] = true, true
		status[n.Node] = n.Status
		s := nodeSnapshot(n)
		snaps = append(snaps, s)
		w.alert(ctx, alertSpec{key: "node-offline:" + n.Node, kind: store.AlertNodeUnreachable, subject: store.NodeSubject(n.Node),
			severity: store.SeverityCritical, node: n.Node,
			raise: fmt.Sprintf("node %s is %s", n.Node, n.Status), resolve: fmt.Sprintf("node %s is online again", n.Node)},
			n.Status != "online")
		w.alert(ctx, alertSpec{key: "node-memory:" + n.Node, kind: store.AlertNodeMemory, subject: store.NodeSubject(n.Node),
			severity: store.SeverityWarning, node: n.Node,
			raise:   fmt.Sprintf("node %s memory at %.1f %%", n.Node, s.MemPercent),
			resolve: fmt.Sprintf("node %s memory back below %d %%", n.Node, memoryAlertPercent)},
			n.Status == "online" && s.MemPercent > memoryAlertPercent)
	}
	w.nodeStatus = status
	w.resolveGone(ctx, "node-", present)
	w.resolveUnasked(ctx)
	w.publish(ctx, store.ClusterDetails{What: store.ClusterNodes, Nodes: snaps})
}

func (w *Watcher) pollGuests(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	// Taken before the read: "seen running at" errs early, which widens the
	// window a stopping task is looked for in, never narrows it.
	polled := time.Now()
	res, err := w.pve.ClusterResources(cctx, "vm")
	w.note(ctx, store.ClusterGuests, err)
	if err != nil {
		return
	}
	snaps := []store.GuestSnapshot{}
	present := map[string]bool{}
	tasks := &taskView{pve: w.pve} // read once per poll, and only if a guest stopped
	for _, r := range res {
		s := guestSnapshot(r)
		present[guestStoppedKey(s.VMID)], present[guestCrashedKey(s.VMID)] = true, true
		snaps = append(snaps, s)
		w.noteGuest(ctx, r, polled, tasks)
	}
	w.resolveGone(ctx, "guest-", present)
	for id := range w.guests {
		if !present[guestStoppedKey(id)] {
			delete(w.guests, id) // gone: a guest made later under its VMID starts afresh
		}
	}
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
		w.alert(ctx, alertSpec{key: "storage-full:" + node + "/" + r.Storage, kind: store.AlertStorageFull,
			subject: store.StorageSubject(node, r.Storage), severity: store.SeverityWarning, node: node,
			raise:   fmt.Sprintf("storage %s %s is %.1f %% full", r.Storage, where, s.UsedPercent),
			resolve: fmt.Sprintf("storage %s %s back below %d %%", r.Storage, where, storageAlertPercent)},
			s.UsedPercent > storageAlertPercent)
	}
	w.resolveGone(ctx, "storage-", present)
	w.publish(ctx, store.ClusterDetails{What: store.ClusterStorage, Storage: snaps})
}

func (w *Watcher) publish(ctx context.Context, d store.ClusterDetails) {
	ev := &store.Event{Type: store.EventCluster, Severity: store.SeverityInfo, Source: source,
		Summary: "cluster " + d.What + " snapshot", Details: store.EncodeDetails(d)}
	if err := w.store.Publish(ctx, w.named(ev)); err != nil {
		w.log.Warn("cluster poll: publish", "err", err)
	}
}

// alertSpec is one alert the watcher keeps: its key (what a restart finds it
// by), its kind and subject (store.AlertDetails), and the summaries of the
// alert and of the notice that it cleared.
type alertSpec struct {
	key      string
	kind     string // store.AlertNodeUnreachable, …
	subject  string // store.NodeSubject(…), …
	vmid     int64  // for a guest's alert
	service  string // for a service's alert: the unit without ".service"
	severity string
	node     string
	raise    string // the alert's summary
	resolve  string // the summary of the notice that it cleared; "" for no notice
}

// details are the stored details of alert a, its key and subject qualified.
func (w *Watcher) details(a alertSpec, state string, alertID uint64) json.RawMessage {
	return store.EncodeDetails(store.AlertDetails{Key: w.qualified(a.key), State: state, AlertID: alertID,
		AlertKind: a.kind, Subject: w.qualified(a.subject), VMID: a.vmid, Service: a.service})
}

// openAlert is an alert the watcher keeps open: its event's id, when it was
// raised and on which node ("" for none).
type openAlert struct {
	id   uint64
	at   time.Time
	node string
}

// alert raises (once) or resolves the alert a.key.
func (w *Watcher) alert(ctx context.Context, a alertSpec, firing bool) {
	o, open := w.open[a.key]
	id := o.id
	switch {
	case firing && !open:
		ev := w.named(&store.Event{Type: store.EventAlert, Severity: a.severity, Source: source, Node: a.node, Summary: a.raise,
			Details: w.details(a, store.AlertRaised, 0)})
		if err := w.store.Publish(ctx, ev); err == nil {
			w.open[a.key] = openAlert{id: ev.ID, at: ev.Time, node: ev.Node}
		}
	case !firing && open:
		delete(w.open, a.key)
		_, _ = w.store.ResolveEvent(ctx, id, store.Jarvis)
		if a.resolve != "" {
			// The notice that it cleared needs no action: it is stored resolved.
			now := time.Now()
			_ = w.store.Publish(ctx, w.named(&store.Event{Type: store.EventAlert, Severity: store.SeverityInfo, Source: source, Node: a.node,
				Summary: a.resolve, Details: w.details(a, store.AlertResolved, id), Resolved: true, ResolvedAt: &now, ResolvedBy: store.Jarvis}))
		}
	}
}

// loadOpenAlerts picks up the alerts a previous run raised and nobody resolved,
// so a restart neither raises them again nor leaves them open for ever (a
// guest's is re-checked when the guest is first seen: guests.go).
func (w *Watcher) loadOpenAlerts(ctx context.Context) {
	// This cluster's alerts only, so that other clusters' do not use up
	// the limit.
	clusters := []string{w.cluster}
	if w.adopt && w.cluster != "" {
		clusters = append(clusters, "")
	}
	open, err := w.store.ListEvents(ctx, store.EventFilter{Type: store.EventAlert, UnresolvedOnly: true, InClusters: clusters, Limit: 1000})
	if err != nil {
		w.log.Warn("cluster poll: reading open alerts", "err", err)
		return
	}
	for _, ev := range open {
		var d store.AlertDetails
		if !w.ours(ev) || json.Unmarshal(ev.Details, &d) != nil || d.State != store.AlertRaised || d.Key == "" {
			continue // another cluster's watcher keeps it
		}
		// Kept by the key the polls use; one from before several clusters
		// has no cluster before it.
		key := d.Key
		if ev.Cluster != "" {
			key = strings.TrimPrefix(key, ev.Cluster+"/")
		}
		if _, seen := w.open[key]; !seen {
			w.open[key] = openAlert{id: ev.ID, at: ev.Time, node: ev.Node}
		}
	}
}

// resolveGone resolves open alerts under prefix whose subject a successful poll
// no longer lists (a deleted guest, a removed storage): nothing will clear them.
func (w *Watcher) resolveGone(ctx context.Context, prefix string, present map[string]bool) {
	for key, o := range w.open {
		if strings.HasPrefix(key, prefix) && !present[key] {
			delete(w.open, key)
			_, _ = w.store.ResolveEvent(ctx, o.id, store.Jarvis)
		}
	}
}
