// Package metrics is Jarvis's Prometheus instrumentation: the collectors, on a
// registry of their own, and the handler that serves them. It is a leaf (no Jarvis
// package) so every room can be handed a *Metrics, or an interface it satisfies,
// without an import pointing the wrong way. A nil *Metrics does nothing, so a
// caller never checks.
package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// UnknownTool is the tool label of every call whose name is not in KnownTools.
// Callers choose tool names, and dispatch reports the ones it refuses too: one
// label for all of them keeps the series count bounded whatever a caller sends.
const UnknownTool = "unknown"

// callBuckets span 0.5 ms to 5 min: GREEN reads answer in under a millisecond
// (cached) to tens of milliseconds, while a call that waits for a Proxmox task
// (migration, backup, clone) takes minutes, up to JARVIS_EXEC_TIMEOUT (5 min).
var callBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300,
}

// upstreamBuckets span 1 ms to 30 s: one Proxmox API request on a LAN takes
// milliseconds; a slow node or a failover to the next one takes seconds. Task
// waits are many short polls, each observed on its own.
var upstreamBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// Metrics holds Jarvis's collectors on a registry of its own (plus the Go
// runtime and process collectors), so nothing a library registers globally is
// exposed by accident.
type Metrics struct {
	reg         *prometheus.Registry
	calls       *prometheus.CounterVec
	callSecs    *prometheus.HistogramVec
	upstream    *prometheus.CounterVec
	upstreamSec *prometheus.HistogramVec
	cache       *prometheus.CounterVec
	// known is the catalogue's tool names, set at wiring and read on every call.
	known atomic.Pointer[map[string]struct{}]
}

// New creates the collectors and registers them. Until KnownTools is called
// every call is labelled "unknown".
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jarvis_tool_calls_total",
			Help: "Tool calls through dispatch, by tool, the call's tier, the safety decision and the outcome (ok, failed, unknown, refused).",
		}, []string{"tool", "tier", "decision", "outcome"}),
		callSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jarvis_tool_call_duration_seconds",
			Help:    "Time from a tool call reaching dispatch to its answer, approval waits and task waits included.",
			Buckets: callBuckets,
		}, []string{"tool", "tier"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jarvis_upstream_requests_total",
			Help: "Requests to the Proxmox VE API, by endpoint, operation and result (ok, error).",
		}, []string{"endpoint", "op", "result"}),
		upstreamSec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jarvis_upstream_request_duration_seconds",
			Help:    "Latency of requests to the Proxmox VE API, by endpoint and operation.",
			Buckets: upstreamBuckets,
		}, []string{"endpoint", "op"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jarvis_read_cache_lookups_total",
			Help: "Lookups in the cluster read cache, by operation and result (hit, miss, shared: joined a read already in flight).",
		}, []string{"op", "result"}),
	}
	m.reg.MustRegister(m.calls, m.callSecs, m.upstream, m.upstreamSec, m.cache,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format (or OpenMetrics
// when asked). A nil *Metrics has no handler: it returns nil, so passing it on
// as web.Options.Metrics mounts no /metrics route.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return nil
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A failing collector (say /proc unreadable) must not blank the rest.
		ErrorHandling: promhttp.ContinueOnError,
		// Gathering walks every series; a few scrapers at once are plenty.
		MaxRequestsInFlight: 4,
		// Counts scrapes that went wrong, on the same registry.
		Registry: m.reg,
	})
}

// KnownTools sets the tool names that get their own label (the catalogue);
// any other name is counted as "unknown". Call it once at wiring.
func (m *Metrics) KnownTools(names []string) {
	if m == nil {
		return
	}
	known := make(map[string]struct{}, len(names))
	for _, n := range names {
		known[n] = struct{}{}
	}
	m.known.Store(&known)
}

func (m *Metrics) toolLabel(tool string) string {
	if known := m.known.Load(); known != nil {
		if _, ok := (*known)[tool]; ok {
			return tool
		}
	}
	return UnknownTool
}

// ObserveCall records one tool call through dispatch. decision is one of
// allow, approved, blocked, needs_approval, denied, expired, rate_limited,
// kill_switch, read_only, protected, invalid; outcome one of ok, failed,
// unknown, refused.
func (m *Metrics) ObserveCall(tool, tier, decision, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	tool = m.toolLabel(tool)
	// GetMetricWith… rather than With…: a label value the registry rejects
	// (invalid UTF-8) loses one sample instead of panicking in a tool call.
	if c, err := m.calls.GetMetricWithLabelValues(tool, tier, decision, outcome); err == nil {
		c.Inc()
	}
	if h, err := m.callSecs.GetMetricWithLabelValues(tool, tier); err == nil {
		h.Observe(d.Seconds())
	}
}

// ObserveUpstream records one request to the Proxmox VE API (pve.Observer).
func (m *Metrics) ObserveUpstream(endpoint, op string, failed bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	if failed {
		result = "error"
	}
	if c, err := m.upstream.GetMetricWithLabelValues(endpoint, op, result); err == nil {
		c.Inc()
	}
	if h, err := m.upstreamSec.GetMetricWithLabelValues(endpoint, op); err == nil {
		h.Observe(d.Seconds())
	}
}

// ObserveCache records one read-cache lookup (pve.Observer); result is hit,
// miss or shared.
func (m *Metrics) ObserveCache(op string, result string) {
	if m == nil {
		return
	}
	if c, err := m.cache.GetMetricWithLabelValues(op, result); err == nil {
		c.Inc()
	}
}

// GaugeFunc registers a gauge whose value f gives at scrape time (open MCP
// sessions, feed subscribers, pending approvals). f runs on the scraping
// goroutine, concurrently with everything else, and must be cheap. A name that
// is invalid or already taken is a wiring bug: it panics at startup.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}
