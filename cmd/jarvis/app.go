package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jarvis-homelab/jarvis/metrics"
	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/server/watch"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
	"github.com/jarvis-homelab/jarvis/web"
)

// app is everything a running Jarvis holds, built once from the configuration.
type app struct {
	cfg    *Config
	demo   bool
	logger *slog.Logger
	store  *store.Store
	// clusters are the clusters served, the default first: the health
	// check and the console read that one; serve's watcher watches each.
	clusters []*appCluster
	srv      *server.Server
	tokens   *web.Tokens
	metrics  *metrics.Metrics
	password string
	// demoCluster is the simulated cluster of --demo (web's demo routes).
	demoCluster web.DemoCluster
	// notifyOn: notifications go out (some JARVIS_NOTIFY_* channel is set).
	notifyOn bool
	// replica is this serve among the replicas sharing a PostgreSQL
	// database (replicas.go); nil on SQLite and outside serve.
	replica *replica
	// steady says whether this replica's heartbeats reach the database, so
	// that it may judge others silent; nil on SQLite.
	steady  *steadiness
	cleanup []func()
}

// appCluster is one cluster as the app reaches it: its settings, its API
// client and, when configured, SSH to its nodes.
type appCluster struct {
	*ClusterEnv
	pve *pve.Client
	ssh *sshexec.Executor // nil without SSH
}

// defaultCluster is the first cluster: the one the health check, the
// console and the MCP resources read.
func (a *app) defaultCluster() *appCluster { return a.clusters[0] }

// watchIntervals are the watcher's poll intervals: guests every
// JARVIS_WATCH_INTERVAL, nodes and storage at their defaults or as often.
func (c *Config) watchIntervals() watch.Intervals {
	d := watch.DefaultIntervals
	return watch.Intervals{Nodes: min(d.Nodes, c.WatchInterval), Guests: c.WatchInterval, Storage: min(d.Storage, c.WatchInterval)}
}

// unattended says when the watcher polls with nobody at the console: while
// notifications go out, a standing approval is active (its trigger needs
// fresh alerts) or an MCP client follows jarvis://alerts. Active rules are
// read from the database at most every 10 s.
func (a *app) unattended(ctx context.Context) func() bool {
	var mu sync.Mutex
	var checked time.Time
	var rules bool
	return func() bool {
		if a.notifyOn || a.srv.AlertSubscribers() > 0 {
			return true
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(checked) > 10*time.Second {
			checked, rules = time.Now(), a.srv.HasActiveRules(ctx)
		}
		return rules
	}
}

func (a *app) Close() {
	for i := len(a.cleanup) - 1; i >= 0; i-- {
		a.cleanup[i]()
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// openStore opens the database with the audit key derived from the server secret, so
// every jarvis process sharing both agrees on the chain.
func openStore(cfg *Config, secret string) (*store.Store, error) {
	return openStoreAs(cfg, secret, "", false)
}

// openStoreAs is openStore for replica (store.Options.Replica): the calls it
// begins are listed as running on it until they end, so that other replicas
// close them as interrupted once its heartbeats stop. "" for none.
// requireAnchor refuses a PostgreSQL audit log this replica has no anchor
// file for (anchorMissing), before anything is written to it.
func openStoreAs(cfg *Config, secret, replica string, requireAnchor bool) (*store.Store, error) {
	// The folders of the files Jarvis writes: the SQLite file's, and the
	// anchor file's (beside it, or this replica's own on PostgreSQL).
	files := []string{cfg.anchorPath()}
	if !cfg.onPostgres() {
		files = append(files, cfg.DBPath)
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return nil, fmt.Errorf("creating the folder of %s: %w", f, err)
		}
	}
	st, err := store.Open(cfg.database(), store.Options{AuditKey: safety.DeriveKey(secret, "audit-chain"), AnchorPath: cfg.anchorPath(),
		Replica: replica, RequireAnchor: requireAnchor && cfg.onPostgres()})
	if errors.Is(err, store.ErrAnchorMissing) {
		return nil, anchorMissing(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", cfg.databaseName(), err)
	}
	return st, nil
}

// anchorMissing says why Jarvis does not serve on a PostgreSQL audit log
// this replica has no anchor file for. The Open that founds a log writes
// one, so a log without this replica's anchor was founded by another
// replica, or the anchor was deleted: adopting one silently would hide the
// deletion.
func anchorMissing(cfg *Config) error {
	return fmt.Errorf("this replica has no audit anchor file (JARVIS_AUDIT_ANCHOR=%s), and the audit log in %s was founded before: "+
		"by another replica, or this replica's anchor file was deleted. Put this replica's anchor file back if it was deleted; "+
		"for a new replica, copy the anchor file of a replica that runs (its JARVIS_AUDIT_ANCHOR) to %s, then run jarvis audit verify and start again",
		cfg.anchorPath(), cfg.databaseName(), cfg.anchorPath())
}

// buildApp wires configuration, store, cluster client, SSH and the server. In demo
// mode the cluster and the node shells are simulated in-process. asReplica:
// on PostgreSQL, this process is a replica that sends heartbeats (serve), and
// its running calls are listed under its name.
func buildApp(ctx context.Context, demo, asReplica bool, stderr io.Writer) (*app, error) {
	cfg, err := LoadConfig(demo)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, demo: demo, logger: newLogger(stderr, cfg.LogLevel), password: cfg.Password, metrics: newMetrics()}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()

	secret := cfg.JWTSecret
	if demo {
		if err := a.setUpDemo(&secret, stderr); err != nil {
			return nil, err
		}
	} else {
		for _, cc := range cfg.clusters {
			c, err := a.connect(cc)
			if err != nil {
				return nil, err
			}
			a.clusters = append(a.clusters, c)
		}
	}

	replicaID := ""
	if asReplica && cfg.onPostgres() {
		replicaID = cfg.ReplicaID
		a.steady = &steadiness{ttl: cfg.LeaseTTL}
	}
	// serve, stdio and doctor: never on a log without this replica's anchor.
	a.store, err = openStoreAs(cfg, secret, replicaID, true)
	if err != nil {
		return nil, err
	}
	a.cleanup = append(a.cleanup, func() { _ = a.store.Close() })

	var clusters []server.Cluster
	for _, c := range a.clusters {
		var sshNodes []string
		for _, n := range c.sshNodeList {
			sshNodes = append(sshNodes, n.Name)
		}
		clusters = append(clusters, server.Cluster{
			Name: c.name,
			Env:  &tools.Env{PVE: c.pve, SSH: c.ssh, SSHNodes: sshNodes, Wake: c.wake, SSHTimeout: cfg.SSHTimeout},
			// Protection is configured here only: the policy decides every
			// call, execute_ssh commands included.
			Policy: safety.Policy{ProtectedNodes: c.ProtectedNodes, ProtectedVMIDs: c.vmids, ProtectedServices: c.ProtectedServices},
		})
	}
	a.srv, err = server.New(server.Options{
		Clusters: clusters,
		Store:    a.store,
		Limiter: safety.NewRateLimiter(safety.RateLimits{
			Yellow: rate.Limit(cfg.RateYellowPerMin / 60), YellowBurst: 10,
			Red: rate.Limit(cfg.RateRedPerMin / 60), RedBurst: 3,
		}),
		Confirmer:        safety.NewConfirmer(safety.DeriveKey(secret, "confirmation-state"), 5*time.Minute),
		ReadOnly:         cfg.ReadOnly,
		Toolsets:         cfg.toolsets,
		ApprovalTTL:      cfg.ApprovalTTL,
		ApprovalWait:     cfg.ApprovalWait,
		ApproveWhere:     approveWhere(cfg),
		ElicitAgents:     cfg.ElicitAgents,
		ExecTimeout:      cfg.ExecTimeout,
		ReplicaSilentFor: a.steady.silentFor,
		Observer:         a.metrics,
		Logger:           a.logger,
		Version:          version,
		// serve's watcher watches every cluster (watch.NewClusters).
		WatchEveryCluster: len(clusters) > 1,
	})
	if err != nil {
		return nil, err
	}
	a.tokens = web.NewTokens(safety.DeriveKey(secret, "jwt-signing"), a.store)
	a.tokens.SetOperatorPassword(a.password)
	if err := a.srv.Recover(ctx); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// connect builds the API client of one cluster and, when configured, SSH to
// its nodes.
func (a *app) connect(cc *ClusterEnv) (*appCluster, error) {
	c := &appCluster{ClusterEnv: cc}
	// Named per cluster only when there are several, so one cluster's
	// messages read as they always did.
	what := ""
	if cc.prefix != "" {
		what = " of cluster " + cc.name
	}
	if cc.PVEInsecure {
		a.logger.Warn(cc.varName("PVE_INSECURE_TLS")+"=true: the Proxmox API certificate is NOT verified; anyone on the path can read the API token. Pin it with "+
			cc.varName("PVE_TLS_FINGERPRINT")+" instead.", "cluster", cc.name)
	}
	var endpoints []pve.Endpoint
	for _, n := range cc.nodeList {
		endpoints = append(endpoints, pve.Endpoint{Name: n.Name, URL: "https://" + n.Host})
	}
	var err error
	c.pve, err = pve.New(pve.Config{Endpoints: endpoints, TokenID: cc.PVETokenID, TokenSecret: cc.PVETokenSecret,
		Fingerprint: cc.PVEFingerprint, CAFile: cc.PVECAFile, Insecure: cc.PVEInsecure, Timeout: a.cfg.PVETimeout,
		Deadline: a.cfg.PVEDeadline, CacheFor: a.cfg.ReadCache, Observer: a.metrics})
	if err != nil {
		return nil, fmt.Errorf("Proxmox API client%s: %w", what, err)
	}
	// Pooled keep-alive connections to the API end with Jarvis, not with the
	// operating system's timeout.
	a.cleanup = append(a.cleanup, c.pve.CloseIdleConnections)
	if cc.SSHKeyPath != "" {
		nodes := map[string]string{}
		for _, n := range cc.sshNodeList {
			nodes[n.Name] = n.Host
		}
		c.ssh, err = sshexec.New(sshexec.Config{Nodes: nodes, User: cc.SSHUser, KeyPath: cc.SSHKeyPath,
			KnownHostsPath: cc.SSHKnownHosts, OutputCap: a.cfg.SSHOutputCap})
		if err != nil {
			return nil, fmt.Errorf("SSH%s: %w", what, err)
		}
		a.cleanup = append(a.cleanup, func() { _ = c.ssh.Close() })
	}
	return c, nil
}

// newMetrics builds the Prometheus collectors. Every catalogue name is known
// (BLACK ones too, since their refusals are counted); anything else a caller
// invents is counted as "unknown", so no caller can grow the series.
func newMetrics() *metrics.Metrics {
	m := metrics.New()
	names := slices.Clone(safety.BlackTools)
	for _, t := range tools.Catalogue() {
		names = append(names, t.Name)
	}
	m.KnownTools(names)
	return m
}

// principalStdio is who a stdio session acts as: the local operator, whose ceiling
// JARVIS_STDIO_MAX_TIER sets.
func principalStdio(cfg *Config) safety.Principal {
	return safety.Principal{ID: safety.OperatorID + ":stdio", Kind: safety.Operator, MaxTier: cfg.stdioTier}
}

// approveWhere tells a caller where a person approves a request: the console
// and the host command, spelled for this installation.
func approveWhere(cfg *Config) func(id string) string {
	console := cfg.consoleURL()
	if cfg.demoDir != "" {
		return func(id string) string {
			return fmt.Sprintf("with `jarvis approve %s --demo` in another terminal, or in the console of `jarvis serve --demo` (%s)", id, console)
		}
	}
	return func(id string) string {
		return fmt.Sprintf("in the Jarvis console (%s) or with `jarvis approve %s` on the Jarvis host", console, id)
	}
}
