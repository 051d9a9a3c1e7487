package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/server/watch"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/web"
)

// startApp builds the app for serving calls. No call may run without its audit
// row, so Jarvis does not start on an audit log that cannot take rows.
func startApp(ctx context.Context, demo, asReplica bool, stderr io.Writer) (*app, error) {
	a, err := buildApp(ctx, demo, asReplica, stderr)
	if err != nil {
		return nil, err
	}
	if err := a.store.AuditWritable(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("not starting: %w", err)
	}
	return a, nil
}

func runServe(ctx context.Context, demo bool, stderr io.Writer) error {
	a, err := startApp(ctx, demo, true, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	// Serve also stops, with an error, when its replica id is taken over.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)

	// The watcher watches every cluster (with one, as before clusters); the
	// health check and the console read the default one.
	home := a.defaultCluster()
	var watched []watch.Cluster
	for _, c := range a.clusters {
		watched = append(watched, watch.Cluster{Name: c.name, PVE: c.pve})
	}
	watcher := watch.NewClusters(watched, a.store, a.logger)
	watcher.SetIntervals(a.cfg.watchIntervals())
	app := web.New(web.Options{
		Server: a.srv, Store: a.store, Tokens: a.tokens, Password: a.password, Version: version,
		Logger: a.logger, PVEPing: home.pve.Ping, Watcher: watcher, TrustedProxies: a.cfg.proxies,
		SessionIdle: a.cfg.SessionIdle, MaxSessionsPerPrincipal: a.cfg.MaxSessions, Metrics: a.metrics.Handler(),
		Demo: a.demoCluster,
	})
	a.gauges(app)
	addr := net.JoinHostPort(a.cfg.ListenAddr, strconv.Itoa(a.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another Jarvis running? set PORT)", addr, err)
	}
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	if a.cfg.MetricsAddr != "" {
		if err := a.serveMetrics(bg); err != nil {
			return err
		}
	}
	go a.srv.RunSweeper(bg, 15*time.Second)
	// Approvals decided with `jarvis approve` and calls from stdio sessions reach the feed too.
	go a.store.FollowOtherWriters(bg, time.Second)
	// With nobody at the console, the watcher still polls while anything
	// acts on what it sees: notifications, rules, subscribed agents.
	a.notifyOn = a.cfg.notifyConfigured()
	unattended := a.unattended(bg)
	watcher.SetUnattended(unattended)
	// On PostgreSQL, this serve is one replica among several: it sends
	// heartbeats, and the watcher and the notifier run under leases.
	if a.replica = a.newReplica(addr, watcher); a.replica != nil {
		a.replica.unattended = unattended
		a.replica.idTaken = stop
		// The watcher's holder polls for the other replicas too.
		watcher.SetUnattended(func() bool { return unattended() || a.replica.needsWatching() })
		// Heartbeats go on until the HTTP server has drained: the calls the
		// shutdown cuts short are still this replica's to end.
		beat, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
		if err := a.replica.join(ctx); err != nil {
			stopBeat()
			_ = ln.Close()
			return fmt.Errorf("not starting: %w", err)
		}
		beating := make(chan struct{})
		go func() { a.replica.runHeartbeats(beat); close(beating) }()
		defer func() { stopBeat(); <-beating; a.replica.leave() }()
	}
	// The notifier outlives the background context: calls cut short by the
	// shutdown end (and are announced) while the HTTP server drains, and it
	// stops after that, when serve returns.
	stopNotify := a.startNotifier(context.WithoutCancel(ctx), &a.cfg.NotifyEnv)
	defer stopNotify()
	for _, c := range a.clusters {
		if c.ssh == nil {
			continue
		}
		// Failed systemd units become service_failed alerts, each cluster's
		// nodes asked over its own SSH.
		var nodes []string
		for _, n := range c.sshNodeList {
			nodes = append(nodes, n.Name)
		}
		watcher.Cluster(c.name).SetServiceCheck(c.ssh, nodes, 0)
	}
	// The watcher may be running a command over SSH: it ends before the
	// executor closes (a.Close).
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		if a.replica != nil {
			a.replica.hold(bg, leaseWatcher, watcher.Run)
			return
		}
		watcher.Run(bg)
	}()
	defer func() { stopBG(); <-watching }()
	go a.srv.RunAlertUpdates(bg)

	started := fmt.Sprintf("Jarvis %s started (demo=%t) on %s", version, demo, addr)
	logArgs := []any{"addr", "http://" + addr, "mcp", "http://" + addr + "/mcp", "demo", demo}
	if a.cfg.onPostgres() {
		// Replicas share the feed: say which one this is.
		started += " as replica " + a.cfg.ReplicaID
		logArgs = append(logArgs, "database", a.cfg.databaseName(), "replica", a.cfg.ReplicaID, "lease_ttl", a.cfg.LeaseTTL)
	}
	a.publishSystem(ctx, started)
	a.logger.Info("jarvis serving", logArgs...)
	errc := make(chan error, 1)
	go func() { errc <- app.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.logger.Info("shutting down")
	a.publishSystem(context.Background(), "Jarvis stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopBG()
	if err := app.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if cause := context.Cause(ctx); errors.Is(cause, store.ErrReplicaIDInUse) {
		<-errc
		return fmt.Errorf("stopped: %w (JARVIS_REPLICA_ID=%s): give each replica an id of its own", cause, a.cfg.ReplicaID)
	}
	return <-errc
}

// gauges registers what /metrics reads at each scrape.
func (a *app) gauges(app *web.App) {
	a.metrics.GaugeFunc("jarvis_mcp_sessions_open", "MCP sessions open over streamable HTTP.",
		func() float64 { return float64(app.OpenSessions()) })
	a.metrics.GaugeFunc("jarvis_feed_subscribers", "Live subscribers of the event feed (browsers, the watcher).",
		func() float64 { return float64(a.store.SubscriberCount()) })
	a.metrics.GaugeFunc("jarvis_approvals_pending", "Approval requests waiting for a person.", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := a.store.CountApprovals(ctx, store.ApprovalPending)
		if err != nil {
			return -1 // the database did not answer; health says why
		}
		return float64(n)
	})
}

// serveMetrics serves /metrics without a login on JARVIS_METRICS_ADDR, for a
// Prometheus on the same host or a trusted network, until ctx ends.
func (a *app) serveMetrics(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("JARVIS_METRICS_ADDR=%s: %w", a.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if ip := net.ParseIP(ln.Addr().(*net.TCPAddr).IP.String()); ip != nil && !ip.IsLoopback() {
		a.logger.Warn("metrics served without login beyond this machine: anyone who reaches the address reads them", "addr", ln.Addr().String())
	} else {
		a.logger.Info("metrics served without login", "addr", "http://"+ln.Addr().String()+"/metrics")
	}
	return nil
}

func (a *app) publishSystem(ctx context.Context, summary string) {
	_ = a.store.Publish(ctx, &store.Event{Type: store.EventSystem, Severity: store.SeverityInfo, Source: store.Jarvis, Summary: summary})
}

func runStdio(ctx context.Context, demo bool, stderr io.Writer) error {
	a, err := startApp(ctx, demo, false, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	// The goroutines below end before the store closes (defers run last first).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := principalStdio(a.cfg)
	srv := a.srv.MCP(p, &p)
	// Expire approvals and close calls a crashed process left open, as serve does.
	go a.srv.RunSweeper(ctx, 15*time.Second)
	// Alerts a jarvis serve sharing the database raises reach subscribers here too.
	go a.store.FollowOtherWriters(ctx, time.Second)
	go a.srv.RunAlertUpdates(ctx)
	a.logger.Info("jarvis stdio ready", "demo", demo, "max_tier", p.MaxTier.String())
	// As mcp.StdioTransport, but a server/discover below 2026-07-28 gets
	// the unsupported-version error that /mcp gives it.
	err = srv.Run(ctx, server.StdioTransport(os.Stdin, os.Stdout))
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, io.EOF)) {
		return nil
	}
	return err
}

// openAdmin opens what the host commands need: the database and the server secret.
// They need no cluster, so the cluster settings are not checked. checkKey refuses
// a secret the audit log was not sealed with (audit verify reports it instead).
func openAdmin(demo, checkKey bool) (*Config, *store.Store, *server.Server, string, error) {
	cfg, err := LoadConfig(true)
	if err != nil {
		return nil, nil, nil, "", err
	}
	if demo {
		if err := findDemoState(cfg); err != nil {
			return nil, nil, nil, "", err
		}
	}
	if len(cfg.JWTSecret) < 32 {
		return nil, nil, nil, "", errors.New("JWT_SECRET (or JWT_SECRET_FILE) must be set to the same secret the server uses: it keys the audit log and signs tokens")
	}
	if !cfg.onPostgres() {
		if _, err := os.Stat(cfg.DBPath); err != nil {
			return nil, nil, nil, "", fmt.Errorf("database %s: %w (set DB_PATH to the file jarvis serve uses)", cfg.DBPath, err)
		}
	}
	st, err := openStore(cfg, cfg.JWTSecret)
	if err != nil {
		return nil, nil, nil, "", err
	}
	// With another secret, tokens minted here would be refused by the server
	// and decisions recorded under a key nobody can verify.
	if err := st.AuditWritable(context.Background()); errors.Is(err, store.ErrAuditKeyChanged) && checkKey {
		st.Close()
		return nil, nil, nil, "", err
	}
	// The clusters by name only: a rule may name the cluster its calls are for.
	var clusters []server.Cluster
	for _, cc := range cfg.clusters {
		clusters = append(clusters, server.Cluster{Name: cc.name, Env: &tools.Env{}})
	}
	srv, err := server.New(server.Options{
		Clusters: clusters, Store: st, Limiter: safety.NewRateLimiter(safety.RateLimits{}),
		Confirmer: safety.NewConfirmer(safety.DeriveKey(cfg.JWTSecret, "confirmation-state"), time.Minute),
		Logger:    newLogger(io.Discard, "error"),
	})
	if err != nil {
		st.Close()
		return nil, nil, nil, "", err
	}
	return cfg, st, srv, cfg.JWTSecret, nil
}

func runApprovals(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("approvals", flag.ContinueOnError)
	all := fs.Bool("all", false, "show decided and expired requests too")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	_ = srv.SweepApprovals(ctx)
	status := store.ApprovalPending
	if *all {
		status = ""
	}
	list, err := st.ListApprovals(ctx, status)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "No approval requests waiting.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tWHO\tTOOL\tEXPIRES\tPLAN")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Status, printable(a.Principal), a.Tool, a.ExpiresAt.Local().Format("15:04:05"), printable(a.Plan))
	}
	return tw.Flush()
}

func runDecide(ctx context.Context, demo, approve bool, args []string, stdout io.Writer) error {
	verb := map[bool]string{true: "approve", false: "deny"}[approve]
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return usageError{fmt.Sprintf("usage: jarvis %s ID (see jarvis approvals)", verb)}
	}
	if !store.IsApprovalID(args[0]) {
		return usageError{fmt.Sprintf("%q is not an approval id; ids look like apr_ followed by 16 hex digits (see jarvis approvals)", args[0])}
	}
	_, st, srv, _, err := openAdmin(demo, true)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := srv.DecideApproval(ctx, args[0], approve, "operator:cli")
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no approval %s (see jarvis approvals)", args[0])
	case errors.Is(err, store.ErrNotPending):
		return fmt.Errorf("approval %s was already decided", args[0])
	case errors.Is(err, store.ErrExpired):
		return fmt.Errorf("approval %s expired; the agent must ask again", args[0])
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "%s %s: %s\n", map[bool]string{true: "Approved", false: "Denied"}[approve], a.ID, printable(a.Plan))
	return nil
}

func runToken(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: jarvis token create|list|revoke"}
	}
	_, st, _, secret, err := openAdminOrCreate(demo)
	if err != nil {
		return err
	}
	defer st.Close()
	tokens := web.NewTokens(safety.DeriveKey(secret, "jwt-signing"), st)
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		name := fs.String("name", "", "a name for the agent (letters, digits, '-', '_')")
		tierName := fs.String("max-tier", "green", "highest tier the agent may use: green, yellow or red")
		ttlText := fs.String("ttl", "30d", "lifetime, e.g. 12h, 30d")
		setsText := fs.String("toolsets", "", "the toolsets this agent is offered, comma-separated (e.g. cluster,power or all); default: the server's JARVIS_TOOLSETS")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		var problems []string
		if !agentNameOK(*name) {
			problems = append(problems, "--name is required: 1-64 letters, digits, '-' or '_'")
		}
		tier, err := safety.ParseTier(*tierName)
		if err != nil || tier == safety.Black {
			problems = append(problems, "--max-tier must be green, yellow or red")
		}
		ttl, err := parseTTL(*ttlText)
		if err != nil {
			problems = append(problems, err.Error())
		}
		var sets []string
		if strings.TrimSpace(*setsText) != "" {
			if sets, err = tools.ParseToolsets(*setsText); err != nil {
				problems = append(problems, "--toolsets: "+err.Error())
			}
		}
		if len(problems) > 0 {
			return usageError{strings.Join(problems, "; ")}
		}
		tok, rec, err := tokens.IssueAgent(ctx, *name, tier, ttl, sets)
		if err != nil {
			return err
		}
		offered := "the server's toolsets (JARVIS_TOOLSETS)"
		if rec.Toolsets != "" {
			offered = "toolsets " + rec.Toolsets
		}
		fmt.Fprintf(os.Stderr, "Token %s for agent %q (max tier %s, %s) expires %s. It is shown once:\n", rec.ID, rec.Name, rec.MaxTier, offered, rec.ExpiresAt.Format(time.RFC3339))
		fmt.Fprintln(stdout, tok)
		return nil
	case "list":
		list, err := st.ListTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tMAX TIER\tTOOLSETS\tEXPIRES\tREVOKED")
		for _, t := range list {
			revoked := "-"
			if t.RevokedAt != nil {
				revoked = t.RevokedAt.Format(time.RFC3339)
			}
			sets := t.Toolsets
			if sets == "" {
				sets = "(server's)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.MaxTier, sets, t.ExpiresAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			return usageError{"usage: jarvis token revoke ID (see jarvis token list)"}
		}
		if err := st.RevokeToken(ctx, args[1], time.Now()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no token %s", args[1])
			}
			return err
		}
		fmt.Fprintf(stdout, "Revoked %s\n", args[1])
		return nil
	default:
		return usageError{fmt.Sprintf("unknown token command %q", args[0])}
	}
}

// openAdminOrCreate is openAdmin, but creates the database when it does not exist
// yet, so tokens can be minted before the first serve.
func openAdminOrCreate(demo bool) (*Config, *store.Store, *server.Server, string, error) {
	cfg, err := LoadConfig(true)
	if err != nil {
		return nil, nil, nil, "", err
	}
	// A PostgreSQL database exists already (Open makes its tables).
	if _, err := os.Stat(cfg.DBPath); !demo && !cfg.onPostgres() && errors.Is(err, os.ErrNotExist) && len(cfg.JWTSecret) >= 32 {
		st, err := openStore(cfg, cfg.JWTSecret)
		if err != nil {
			return nil, nil, nil, "", err
		}
		st.Close()
	}
	return openAdmin(demo, true)
}

func agentNameOK(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// parseTTL accepts Go durations plus a "d" suffix for days.
func parseTTL(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > 366 {
			return 0, fmt.Errorf("--ttl %q: days must be 1..366", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute || d > 366*24*time.Hour {
		return 0, fmt.Errorf("--ttl %q: use e.g. 12h or 30d (1m..366d)", s)
	}
	return d, nil
}

func runAudit(ctx context.Context, demo bool, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "verify" {
		return usageError{"usage: jarvis audit verify"}
	}
	_, st, _, _, err := openAdmin(demo, false)
	if err != nil {
		// A database that is gone while its anchor file stays was deleted, not never made.
		if cfg, cerr := LoadConfig(true); cerr == nil && !cfg.onPostgres() && errors.Is(err, os.ErrNotExist) {
			if _, aerr := os.Stat(cfg.anchorPath()); aerr == nil {
				return fmt.Errorf("audit log BROKEN: the database %s is gone, but its anchor file %s records an audit log: restore the database; to start over on purpose, move the anchor file away too",
					cfg.DBPath, cfg.anchorPath())
			}
		}
		return err
	}
	defer st.Close()
	rep, err := st.AuditVerify(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		at := ""
		if rep.FirstBadID > 0 {
			at = fmt.Sprintf(" at row %d", rep.FirstBadID)
		}
		return fmt.Errorf("audit log BROKEN%s (%d rows checked): %s", at, rep.Rows, rep.Problem)
	}
	fmt.Fprintf(stdout, "audit log OK: %d rows, chain and signatures intact; installation %s, founded %s",
		rep.Rows, rep.Installation, rep.Since.Local().Format(time.RFC3339))
	if rep.Anchor != "" {
		fmt.Fprintf(stdout, "; anchored through row %d (%s, checkpoint of %s)", rep.Checkpoint, rep.Anchor, rep.CheckpointAt.Local().Format(time.RFC3339))
	}
	fmt.Fprintln(stdout)
	return nil
}

// printable escapes control characters so text an agent supplied (a plan naming
// its command) cannot move the cursor or rewrite what the operator reads.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
