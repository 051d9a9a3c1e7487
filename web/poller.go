package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// PollIntervals say how often each part of the cluster is read while anyone listens.
type PollIntervals struct{ Nodes, Guests, Storage time.Duration }

// DefaultPollIntervals: nodes every 10 s, guests every 15 s, storage every 30 s.
var DefaultPollIntervals = PollIntervals{Nodes: 10 * time.Second, Guests: 15 * time.Second, Storage: 30 * time.Second}

// Alert thresholds.
const (
	storageAlertPercent = 90
	memoryAlertPercent  = 95
)

// Poller publishes cluster snapshots while at least one feed subscriber listens —
// one shared poll, whatever the number of subscribers — and raises alerts once,
// resolving them when the condition clears.
type Poller struct {
	pve   *pve.Client
	store *store.Store
	log   *slog.Logger
	every PollIntervals
	tick  time.Duration

	mu        sync.Mutex
	listeners int
	wake      chan struct{}

	// alert key → id of the open alert event
	open map[string]uint64
	// last seen state of each guest, to notice a guest that stopped
	guests map[int64]string
}

// NewPoller builds a poller; c may be nil (no cluster), then it does nothing.
func NewPoller(c *pve.Client, st *store.Store, log *slog.Logger) *Poller {
	return &Poller{pve: c, store: st, log: log, every: DefaultPollIntervals, tick: time.Second,
		wake: make(chan struct{}, 1), open: map[string]uint64{}, guests: map[int64]string{}}
}

// SetIntervals changes the poll intervals (tests use short ones). Call before Run.
func (p *Poller) SetIntervals(every PollIntervals) {
	p.every = every
	p.tick = min(every.Nodes, every.Guests, every.Storage, time.Second)
}

// Acquire registers a listener; polling starts with the first.
func (p *Poller) Acquire() {
	p.mu.Lock()
	p.listeners++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Release unregisters a listener.
func (p *Poller) Release() {
	p.mu.Lock()
	p.listeners--
	p.mu.Unlock()
}

func (p *Poller) listening() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listeners > 0
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	if p.pve == nil {
		return
	}
	p.loadOpenAlerts(ctx)
	var nextNodes, nextGuests, nextStorage time.Time
	tick := time.NewTicker(p.tick)
	defer tick.Stop()
	// A call that changed the cluster makes the guests poll sooner, so the
	// console shows a stopped VM as stopped right after the approval.
	sub := p.store.Subscribe(64)
	defer func() { sub.Close() }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.wake:
		case ev, ok := <-sub.C():
			if !ok {
				sub = p.store.Subscribe(64) // dropped for being slow: follow again
				continue
			}
			if ev.Type != "tool" || !changedCluster(ev) {
				continue
			}
			nextGuests = time.Time{}
		}
		if !p.listening() {
			continue
		}
		now := time.Now()
		if now.After(nextNodes) {
			nextNodes = now.Add(p.every.Nodes)
			p.pollNodes(ctx)
		}
		if now.After(nextGuests) {
			nextGuests = now.Add(p.every.Guests)
			p.pollGuests(ctx)
		}
		if now.After(nextStorage) {
			nextStorage = now.Add(p.every.Storage)
			p.pollStorage(ctx)
		}
	}
}

// changedCluster reports a tool event for a call that ended after changing state.
func changedCluster(ev store.Event) bool {
	var d struct{ Phase, Tier, Outcome string }
	if json.Unmarshal(ev.Details, &d) != nil {
		return false
	}
	return d.Phase == "ended" && d.Outcome == "ok" && d.Tier != "green"
}

type nodeSnap struct {
	Node          string  `json:"node"`
	Status        string  `json:"status"`
	CPUPercent    float64 `json:"cpu_percent"`
	MemPercent    float64 `json:"mem_percent"`
	DiskPercent   float64 `json:"disk_percent"`
	MemBytes      int64   `json:"mem_bytes"`
	MaxMemBytes   int64   `json:"maxmem_bytes"`
	UptimeSeconds int64   `json:"uptime_seconds"`
}

// fractionPercent turns 0.253 into 25.3 (one decimal, truncated).
func fractionPercent(f float64) float64 { return float64(int64(f*1000)) / 10 }

func pct(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return fractionPercent(float64(a) / float64(b))
}

func (p *Poller) pollNodes(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	nodes, err := p.pve.Nodes(cctx)
	if err != nil {
		p.log.Debug("cluster poll: nodes", "err", err)
		return
	}
	snaps := []nodeSnap{}
	present := map[string]bool{}
	for _, n := range nodes {
		present["node-offline:"+n.Node], present["node-memory:"+n.Node] = true, true
		s := nodeSnap{Node: n.Node, Status: n.Status, CPUPercent: fractionPercent(float64(n.CPU)),
			MemPercent: pct(int64(n.Mem), int64(n.MaxMem)), DiskPercent: pct(int64(n.Disk), int64(n.MaxDisk)),
			MemBytes: int64(n.Mem), MaxMemBytes: int64(n.MaxMem), UptimeSeconds: int64(n.Uptime)}
		snaps = append(snaps, s)
		p.alert(ctx, "node-offline:"+n.Node, n.Status != "online", "critical", n.Node,
			fmt.Sprintf("node %s is %s", n.Node, n.Status), fmt.Sprintf("node %s is online again", n.Node))
		p.alert(ctx, "node-memory:"+n.Node, n.Status == "online" && s.MemPercent > memoryAlertPercent, "warning", n.Node,
			fmt.Sprintf("node %s memory at %.1f %%", n.Node, s.MemPercent), fmt.Sprintf("node %s memory back below %d %%", n.Node, memoryAlertPercent))
	}
	p.resolveGone(ctx, "node-", present)
	p.publish(ctx, "nodes", "", map[string]any{"nodes": snaps})
}

type guestSnap struct {
	VMID       int64   `json:"vmid"`
	Name       string  `json:"name"`
	Node       string  `json:"node"`
	Kind       string  `json:"kind"`
	Status     string  `json:"status"`
	CPUPercent float64 `json:"cpu_percent"`
	MemPercent float64 `json:"mem_percent"`
}

func (p *Poller) pollGuests(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	res, err := p.pve.ClusterResources(cctx, "vm")
	if err != nil {
		p.log.Debug("cluster poll: guests", "err", err)
		return
	}
	snaps := []guestSnap{}
	present := map[string]bool{}
	for _, r := range res {
		id := int64(r.VMID)
		present[fmt.Sprintf("guest-stopped:%d", id)] = true
		snaps = append(snaps, guestSnap{VMID: id, Name: r.Name, Node: r.Node, Kind: r.Type, Status: r.Status,
			CPUPercent: fractionPercent(float64(r.CPU)), MemPercent: pct(int64(r.Mem), int64(r.MaxMem))})
		prev, seen := p.guests[id]
		p.guests[id] = r.Status
		key := fmt.Sprintf("guest-stopped:%d", id)
		switch {
		case seen && prev == "running" && r.Status == "stopped":
			p.alert(ctx, key, true, "warning", r.Node, fmt.Sprintf("guest %d '%s' on %s stopped", id, r.Name, r.Node), "")
		case r.Status == "running":
			p.alert(ctx, key, false, "info", r.Node, "", fmt.Sprintf("guest %d '%s' is running again", id, r.Name))
		}
	}
	p.resolveGone(ctx, "guest-", present)
	p.publish(ctx, "guests", "", map[string]any{"guests": snaps})
}

type storageSnap struct {
	Storage     string  `json:"storage"`
	Node        string  `json:"node"`
	Type        string  `json:"type"`
	Shared      bool    `json:"shared"`
	Status      string  `json:"status"`
	UsedPercent float64 `json:"used_percent"`
	UsedBytes   int64   `json:"used_bytes"`
	TotalBytes  int64   `json:"total_bytes"`
}

func (p *Poller) pollStorage(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	res, err := p.pve.ClusterResources(cctx, "storage")
	if err != nil {
		p.log.Debug("cluster poll: storage", "err", err)
		return
	}
	snaps := []storageSnap{}
	present := map[string]bool{}
	for _, r := range res {
		s := storageSnap{Storage: r.Storage, Node: r.Node, Type: r.PluginType, Shared: bool(r.Shared), Status: r.Status,
			UsedPercent: pct(int64(r.Disk), int64(r.MaxDisk)), UsedBytes: int64(r.Disk), TotalBytes: int64(r.MaxDisk)}
		snaps = append(snaps, s)
		// Shared storage is one store seen from every node: one alert, not one per node.
		where, node := "on "+r.Node, r.Node
		if s.Shared {
			where, node = "(shared)", ""
		}
		present["storage-full:"+node+"/"+r.Storage] = true
		p.alert(ctx, "storage-full:"+node+"/"+r.Storage, s.UsedPercent > storageAlertPercent, "warning", node,
			fmt.Sprintf("storage %s %s is %.1f %% full", r.Storage, where, s.UsedPercent),
			fmt.Sprintf("storage %s %s back below %d %%", r.Storage, where, storageAlertPercent))
	}
	p.resolveGone(ctx, "storage-", present)
	p.publish(ctx, "storage", "", map[string]any{"storage": snaps})
}

func (p *Poller) publish(ctx context.Context, what, node string, data map[string]any) {
	data["what"] = what
	details, _ := json.Marshal(data)
	ev := &store.Event{Type: "cluster", Severity: "info", Source: "poller", Node: node, Summary: "cluster " + what + " snapshot", Details: details}
	if err := p.store.Publish(ctx, ev); err != nil {
		p.log.Warn("cluster poll: publish", "err", err)
	}
}

// alert raises (once) or resolves the alert named key.
func (p *Poller) alert(ctx context.Context, key string, firing bool, severity, node, raise, resolve string) {
	id, open := p.open[key]
	switch {
	case firing && !open:
		details, _ := json.Marshal(map[string]any{"key": key, "state": "raised"})
		ev := &store.Event{Type: "alert", Severity: severity, Source: "poller", Node: node, Summary: raise, Details: details}
		if err := p.store.Publish(ctx, ev); err == nil {
			p.open[key] = ev.ID
		}
	case !firing && open:
		delete(p.open, key)
		_, _ = p.store.ResolveEvent(ctx, id, "jarvis")
		if resolve != "" {
			details, _ := json.Marshal(map[string]any{"key": key, "state": "resolved", "alert_id": id})
			// The notice that it cleared needs no action: it is stored resolved.
			now := time.Now()
			_ = p.store.Publish(ctx, &store.Event{Type: "alert", Severity: "info", Source: "poller", Node: node, Summary: resolve, Details: details,
				Resolved: true, ResolvedAt: &now, ResolvedBy: "jarvis"})
		}
	}
}

// loadOpenAlerts picks up the alerts a previous run raised and nobody resolved,
// so a restart neither raises them again nor leaves them open for ever.
func (p *Poller) loadOpenAlerts(ctx context.Context) {
	open, err := p.store.ListEvents(ctx, store.EventFilter{Type: "alert", UnresolvedOnly: true, Limit: 1000})
	if err != nil {
		p.log.Warn("cluster poll: reading open alerts", "err", err)
		return
	}
	for _, ev := range open {
		var d struct{ Key, State string }
		if json.Unmarshal(ev.Details, &d) == nil && d.State == "raised" && d.Key != "" {
			if _, seen := p.open[d.Key]; !seen {
				p.open[d.Key] = ev.ID
			}
		}
	}
}

// resolveGone resolves open alerts under prefix whose subject a successful poll
// no longer lists (a deleted guest, a removed storage): nothing will clear them.
func (p *Poller) resolveGone(ctx context.Context, prefix string, present map[string]bool) {
	for key, id := range p.open {
		if strings.HasPrefix(key, prefix) && !present[key] {
			delete(p.open, key)
			_, _ = p.store.ResolveEvent(ctx, id, "jarvis")
		}
	}
}
