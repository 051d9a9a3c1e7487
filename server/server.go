package server

// The Server: what it is built from (Options), what it holds, and which tools
// a caller is offered. The call path itself is in dispatch.go.

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Preference keys under which the live safety switches are persisted.
const (
	PrefKillSwitch = "safety.kill_switch"
	PrefReadOnly   = "safety.read_only"
)

// Options configure a Server.
type Options struct {
	// Clusters are the Proxmox clusters served, the default first
	// (clusters.go). For one cluster, Env and Policy may be set instead: the
	// cluster DefaultClusterName, as most tests build it.
	Clusters  []Cluster
	Env       *tools.Env
	Policy    safety.Policy
	Store     *store.Store
	Limiter   *safety.RateLimiter
	Confirmer *safety.Confirmer
	// ReadOnly registers GREEN tools only (JARVIS_READ_ONLY); it cannot be lifted at run time.
	ReadOnly bool
	// Toolsets are the toolsets offered to callers without their own
	// (JARVIS_TOOLSETS); empty means tools.DefaultToolsets().
	Toolsets []string
	// ApprovalTTL is how long an approval request stays decidable.
	ApprovalTTL time.Duration
	// ApprovalWait is how long a call without elicitation waits for the operator.
	// It stays below common client request timeouts (60 s), so the caller hears
	// the approval id instead of timing out.
	ApprovalWait time.Duration
	// ApproveWhere tells a caller where a person can approve request id: the
	// console's address and the command for this installation. Unset: the
	// console and `jarvis approve ID`.
	ApproveWhere func(id string) string
	// ElicitAgents lets agent callers confirm RED calls through their own
	// client's elicitation (JARVIS_ELICITATION_FOR_AGENTS). Off: agents always
	// wait for an operator's approval, since an agent can answer its own client.
	ElicitAgents bool
	// ExecTimeout bounds one tool execution, task wait included.
	ExecTimeout time.Duration
	// WatchEveryCluster says the watcher watches every cluster
	// (watch.NewClusters), not the default alone: list_alerts and
	// jarvis://alerts then answer on each, and a rule's trigger applies on
	// each, to that cluster's alerts. Off with several clusters, list_alerts
	// elsewhere says that only the default is watched.
	WatchEveryCluster bool
	// ReplicaSilentFor says, each time Recover runs, how long another Jarvis
	// replica sharing the database may send no heartbeat before Recover
	// marks the calls it was running as interrupted, whatever their age
	// (store.MarkInterruptedCalls). Zero, or nil, marks calls by age only
	// (older than ExecTimeout and a minute), as a lone Jarvis does. A
	// replica answers zero while its own heartbeats do not reach the
	// database steadily: cut off, it would see every other one silent.
	ReplicaSilentFor func() time.Duration
	// Observer is told how every call ended (Prometheus metrics); nil: nobody.
	Observer CallObserver
	Logger   *slog.Logger
	Version  string
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// CallObserver is told how each call ended: its tool, tier, decision
// (allow, approved, invalid or a refusal's decision), outcome (ok, failed,
// unknown or refused) and how long it took. It must be cheap.
type CallObserver interface {
	ObserveCall(tool, tier, decision, outcome string, d time.Duration)
}

// observe reports one ended call to the observer, if any.
func (s *Server) observe(c Call, tier safety.Tier, decision, outcome string) {
	if s.opts.Observer != nil {
		s.opts.Observer.ObserveCall(c.Tool, tier.String(), decision, outcome, s.opts.Now().Sub(c.start))
	}
}

// Server is the tool catalogue bound to its clusters (each with its policy)
// and a store.
type Server struct {
	opts     Options
	clusters []*Cluster
	tools    []*tools.Tool
	byName   map[string]*tools.Tool
	// unregistered holds the tiers of catalogue tools left out (read-only mode),
	// so a refusal can say why they are missing.
	unregistered map[string]safety.Tier

	mu      sync.Mutex
	servers map[serverKey]*mcp.Server
	// alertSubs are the sessions subscribed to jarvis://alerts (alerts.go).
	subsMu    sync.Mutex
	alertSubs map[*mcp.ServerSession]bool
}

// serverKey names one prebuilt MCP server: HTTP callers share one per ceiling
// and toolsets; a local (stdio) principal gets its own.
type serverKey struct {
	ceiling  safety.Tier
	toolsets string
	local    string
}

// New builds a Server. The catalogue is filtered once here: in read-only mode the
// non-GREEN tools do not exist at all.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Confirmer == nil || opts.Limiter == nil {
		return nil, errors.New("server: Store, Confirmer and Limiter are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ApprovalTTL <= 0 {
		opts.ApprovalTTL = 10 * time.Minute
	}
	if opts.ApprovalWait < 0 {
		opts.ApprovalWait = 0
	}
	if opts.ApproveWhere == nil {
		opts.ApproveWhere = func(id string) string {
			return fmt.Sprintf("in the Jarvis console or with `jarvis approve %s`", id)
		}
	}
	if opts.ExecTimeout <= 0 {
		opts.ExecTimeout = 5 * time.Minute
	}
	if len(opts.Toolsets) == 0 {
		opts.Toolsets = tools.DefaultToolsets()
	}
	s := &Server{opts: opts, byName: map[string]*tools.Tool{}, unregistered: map[string]safety.Tier{}, servers: map[serverKey]*mcp.Server{}}
	// delete_guest asks the store whether Jarvis created a guest; list_alerts
	// reads the watcher's alerts and this server's rules.
	if err := s.setUpClusters(opts); err != nil {
		return nil, err
	}
	// Every call uses its cluster's (Call.cluster); nothing reads these.
	s.opts.Env, s.opts.Policy = nil, safety.Policy{}
	for _, t := range tools.Catalogue() {
		if opts.ReadOnly && t.Tier != safety.Green {
			s.unregistered[t.Name] = t.Tier
			continue
		}
		s.tools = append(s.tools, t)
		s.byName[t.Name] = t
	}
	return s, nil
}

// Tools lists the registered tools a caller may call at all, in catalogue
// order: those in its toolsets whose mildest call (MinTier) is at or below
// its ceiling.
func (s *Server) Tools(p safety.Principal) []*tools.Tool {
	sets := s.toolsetsOf(p)
	var out []*tools.Tool
	for _, t := range s.tools {
		if t.MinTier <= p.MaxTier && slices.Contains(sets, t.Toolset) {
			out = append(out, t)
		}
	}
	return out
}

// AllTools lists every registered tool, whatever the toolsets (the console,
// doctor).
func (s *Server) AllTools() []*tools.Tool { return slices.Clone(s.tools) }

// toolsetsOf is the toolsets offered to p: its own, else the server's.
func (s *Server) toolsetsOf(p safety.Principal) []string {
	if p.Toolsets != "" {
		return strings.Split(p.Toolsets, ",")
	}
	return s.opts.Toolsets
}

// outsideToolsets refuses a call of a tool that is not in the caller's toolsets.
func (s *Server) outsideToolsets(p safety.Principal, t *tools.Tool) (safety.Verdict, bool) {
	if slices.Contains(s.toolsetsOf(p), t.Toolset) {
		return safety.Verdict{}, false
	}
	how := "the operator adds it to JARVIS_TOOLSETS"
	if p.Toolsets != "" {
		how = "this token was issued with its own toolsets; the operator issues one with --toolsets including it"
	}
	return safety.Verdict{Decision: safety.Blocked, Tier: t.MinTier,
		Reason: fmt.Sprintf("%s is in the %s toolset, which is not offered to this caller (offered: %s); %s.",
			t.Name, t.Toolset, strings.Join(s.toolsetsOf(p), ", "), how)}, true
}
