package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// doctor checks what a user needs before relying on Jarvis, one line per
// check: ok; warn (works, with a limit worth knowing); FAIL (something will not
// work: the exit status is non-zero); skip (cannot be checked because of a
// failure above, or not configured).
type doctor struct {
	w      io.Writer
	failed int
	// scope names the cluster the lines are about, when there are several.
	scope string
}

func (d *doctor) line(status, what, detail string) {
	if status == "FAIL" {
		d.failed++
	}
	what = d.scope + what
	if detail != "" {
		what += ": " + detail
	}
	fmt.Fprintf(d.w, "%-6s%s\n", status, what)
}

func (d *doctor) check(what string, err error) {
	if err != nil {
		d.line("FAIL", what, err.Error())
		return
	}
	d.line("ok", what, "")
}

func runDoctor(ctx context.Context, stdout io.Writer) error {
	d := &doctor{w: stdout}
	cfg, err := LoadConfig(false)
	if err != nil {
		d.line("FAIL", "config", err.Error())
		return errors.New("configuration has problems")
	}
	detail := ""
	if len(cfg.clusters) > 1 {
		var names []string
		for _, c := range cfg.clusters {
			names = append(names, c.name)
		}
		detail = fmt.Sprintf("clusters %s (the first is the default)", strings.Join(names, ", "))
	}
	d.line("ok", "config", detail)
	a, err := buildApp(ctx, false, false, io.Discard)
	if err != nil {
		d.line("FAIL", "startup", err.Error())
		return err
	}
	defer a.Close()

	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	d.check("database "+cfg.databaseName(), a.store.Ping(cctx))
	if cfg.onPostgres() {
		d.postgres(cfg)
	}
	if rep, err := a.store.AuditVerify(cctx); err != nil {
		d.check("audit log", err)
	} else if !rep.OK {
		at := ""
		if rep.FirstBadID > 0 {
			at = fmt.Sprintf(" at row %d", rep.FirstBadID)
		}
		d.check("audit log", fmt.Errorf("broken%s: %s (jarvis audit verify says more)", at, rep.Problem))
	} else {
		d.check("audit log", nil)
	}
	cancel()

	for _, c := range a.clusters {
		if len(a.clusters) > 1 {
			d.scope = "cluster " + c.name + ": "
		}
		d.cluster(ctx, cfg, a, c)
	}

	if d.failed > 0 {
		return fmt.Errorf("%d check(s) failed", d.failed)
	}
	return nil
}

// postgres says which replica this is and its anchor file, and
// warns when the connection to the database is not verified TLS.
func (d *doctor) postgres(cfg *Config) {
	d.line("ok", "replica "+cfg.ReplicaID, "")
	// buildApp refused to start without it (anchorMissing).
	d.line("ok", "audit anchor "+cfg.anchorPath(), "")
	if warning := databaseTLS(cfg.DatabaseURL); warning != "" {
		d.line("warn", "database tls", warning)
	}
}

// databaseTLS says what is wrong with the TLS of a connection to a database
// on another host: "" when the server's certificate is verified, or the
// database is on this host.
func databaseTLS(rawURL string) string {
	pc, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return "" // LoadConfig has said why
	}
	ip := net.ParseIP(pc.Host)
	if strings.HasPrefix(pc.Host, "/") || pc.Host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return ""
	}
	// verify-full checks the name, verify-ca the chain in a callback.
	tls := pc.TLSConfig
	if tls != nil && (!tls.InsecureSkipVerify || tls.VerifyPeerCertificate != nil) {
		return ""
	}
	// As pgx read it: the URL, else PGSSLMODE, else libpq's default.
	mode := os.Getenv("PGSSLMODE")
	if u, err := url.Parse(rawURL); err == nil && u.Query().Has("sslmode") {
		mode = u.Query().Get("sslmode")
	}
	if mode == "" {
		mode = "prefer"
	}
	return fmt.Sprintf("sslmode=%s: the connection to %s is not verified, and the database password and the audit log cross the network; "+
		"use sslmode=verify-full (with sslrootcert= naming the server's CA)", mode, pc.Host)
}

// cluster checks one cluster: its API endpoints, its node names, the token's
// privileges and SSH to its nodes.
func (d *doctor) cluster(ctx context.Context, cfg *Config, a *app, c *appCluster) {
	if c.PVEInsecure {
		d.line("warn", "proxmox tls", fmt.Sprintf("%s=true: the API's certificate is not verified; pin it with %s",
			c.varName("PVE_INSECURE_TLS"), c.varName("PVE_TLS_FINGERPRINT")))
	}
	apiUp := d.endpoints(ctx, c.pve)

	var clusterNodes []pve.ClusterStatusEntry
	if apiUp {
		clusterNodes = d.nodeNames(ctx, c)
		// Node-scoped privileges are checked on every node of the cluster, or
		// on the configured ones when the cluster's list is out of reach.
		var names []string
		for _, n := range clusterNodes {
			names = append(names, n.Name)
		}
		if len(names) == 0 {
			names = nodeNames(c.nodeList)
		}
		d.privileges(ctx, cfg, a, c, names)
	} else {
		d.line("skip", "node names", "no Proxmox API endpoint answered")
		d.line("skip", "token privileges", "no Proxmox API endpoint answered")
	}
	d.ssh(ctx, c, clusterNodes)
}

// endpoints asks every JARVIS_NODES endpoint on its own. An endpoint that
// cannot be reached while another answers is a warning: failover covers it
// (the node may be off). A certificate or token refused is a failure anywhere.
func (d *doctor) endpoints(ctx context.Context, c *pve.Client) (anyUp bool) {
	type result struct {
		ep      pve.Endpoint
		version string
		err     error
	}
	eps := c.Endpoints()
	results := make([]result, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			v, err := c.VersionAt(ctx, ep.Name)
			// The line names the endpoint and its URL already.
			var epErr *pve.EndpointError
			var urlErr *url.Error
			if errors.As(err, &epErr) {
				err = epErr.Err
			}
			if errors.As(err, &urlErr) {
				err = urlErr.Err
			}
			results[i] = result{ep, v, err}
		})
	}
	wg.Wait()
	for _, r := range results {
		anyUp = anyUp || r.err == nil
	}
	for _, r := range results {
		what := fmt.Sprintf("proxmox api %s (%s)", r.ep.Name, r.ep.URL)
		switch {
		case r.err == nil:
			d.line("ok", what, "Proxmox VE "+r.version)
		case anyUp && unreachable(r.err):
			d.line("warn", what, r.err.Error()+" (the other endpoints answer; Jarvis fails over)")
		default:
			d.line("FAIL", what, r.err.Error())
		}
	}
	return anyUp
}

// unreachable tells "nothing answered" (refused, no route, DNS, timeout) from
// an answer that was wrong (certificate, token).
func unreachable(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// nodeNames compares JARVIS_NODES (and SSH_NODES) with the cluster's nodes. A
// configured name the cluster does not know fails: tools and SSH address nodes
// by the cluster's names, so that node could never be reached by name. A
// cluster node missing from the configuration only loses failover to its API
// (or SSH to it): a warning.
func (d *doctor) nodeNames(ctx context.Context, ac *appCluster) []pve.ClusterStatusEntry {
	const what = "node names"
	c, sshOn := ac.pve, ac.ssh != nil
	nodesVar, sshVar := ac.varName("JARVIS_NODES"), ac.varName("SSH_NODES")
	entries, err := c.ClusterStatus(ctx)
	var apiErr *pve.APIError
	var nodes []pve.ClusterStatusEntry
	source := ""
	switch {
	case err == nil:
		for _, e := range entries {
			if e.Type == "node" {
				nodes = append(nodes, e)
			}
		}
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden:
		// /nodes lists every node to any token; /cluster/status needs Sys.Audit on /.
		list, err2 := c.Nodes(ctx)
		if err2 != nil {
			d.line("FAIL", what, fmt.Sprintf("cannot list the cluster's nodes: %v; %v", err, err2))
			return nil
		}
		for _, n := range list {
			nodes = append(nodes, pve.ClusterStatusEntry{Type: "node", Name: n.Node, Online: n.Status == "online"})
		}
		source = " (from /nodes: /cluster/status needs Sys.Audit on /)"
	default:
		d.line("FAIL", what, fmt.Sprintf("cannot list the cluster's nodes: %v", err))
		return nil
	}
	var cluster []string
	for _, n := range nodes {
		cluster = append(cluster, n.Name)
	}
	slices.Sort(cluster)
	configured := nodeNames(ac.nodeList)
	lists := []struct {
		variable string
		names    []string
	}{{nodesVar, configured}}
	if sshOn && ac.SSHNodes != "" {
		lists = append(lists, struct {
			variable string
			names    []string
		}{sshVar, nodeNames(ac.sshNodeList)})
	}
	problems := false
	for _, l := range lists {
		var unknown []string
		for _, n := range l.names {
			if !slices.Contains(cluster, n) {
				unknown = append(unknown, n)
			}
		}
		if len(unknown) > 0 {
			problems = true
			d.line("FAIL", what, fmt.Sprintf("%s names %s, not a node of this cluster (its nodes: %s)%s; use the names Proxmox shows under Datacenter, since tools and SSH address nodes by them",
				l.variable, strings.Join(unknown, ", "), strings.Join(cluster, ", "), source))
		}
		for _, n := range cluster {
			if slices.Contains(l.names, n) {
				continue
			}
			problems = true
			if l.variable == nodesVar {
				loses := "Jarvis cannot fail over to its API"
				if sshOn && ac.SSHNodes == "" {
					loses += fmt.Sprintf(" nor reach it over SSH (%s defaults to %s)", sshVar, nodesVar)
				}
				d.line("warn", what, fmt.Sprintf("cluster node %s is not in %s: %s; add %s=ADDRESS", n, nodesVar, loses, n))
			} else {
				d.line("warn", what, fmt.Sprintf("cluster node %s is not in %s: the node tools cannot reach it; add %s=ADDRESS", n, sshVar, n))
			}
		}
	}
	if !problems {
		d.line("ok", what, fmt.Sprintf("%s (%s) are the cluster's nodes%s", nodesVar, strings.Join(configured, ", "), source))
	}
	return nodes
}

// privileges reads the token's effective permissions and reports, per tool
// group, what the offered tools would be refused.
func (d *doctor) privileges(ctx context.Context, cfg *Config, a *app, c *appCluster, nodes []string) {
	perms, err := c.pve.Permissions(ctx)
	if err != nil {
		d.line("FAIL", "token privileges", fmt.Sprintf("cannot read what token %s may do (GET /access/permissions): %v", c.PVETokenID, err))
		return
	}

	type group struct {
		name     string
		tools    []string // offered in this group
		affected []string // of them, the ones something is missing for
		short    []tools.Shortfall
		needs    bool // any tool of the group needs a Proxmox privilege
	}
	var groups []*group
	byName := map[string]*group{}
	// Only the tools this configuration offers: JARVIS_READ_ONLY leaves the
	// changing ones out, and a toolset is offered when JARVIS_TOOLSETS or a
	// live agent token's own toolsets name it.
	offered := offeredToolsets(ctx, cfg, a)
	for _, t := range a.srv.AllTools() {
		if !offered[t.Toolset] {
			continue
		}
		name := tools.PrivilegeGroup(t.Name)
		if _, known := tools.Privileges(t.Name); !known {
			d.line("warn", "privileges for "+t.Name, "not in the privilege table (tools/privileges.go), so not checked")
			continue
		}
		g := byName[name]
		if g == nil {
			g = &group{name: name}
			byName[name] = g
			groups = append(groups, g)
		}
		g.tools = append(g.tools, t.Name)
		privs, _ := tools.Privileges(t.Name)
		g.needs = g.needs || len(privs) > 0
		missing := tools.MissingPrivileges(t.Name, perms, nodes)
		if len(missing) > 0 {
			g.affected = append(g.affected, t.Name)
		}
		for _, s := range missing {
			if !slices.ContainsFunc(g.short, func(o tools.Shortfall) bool { return o.Privilege.String() == s.Privilege.String() }) {
				g.short = append(g.short, s)
			}
		}
	}
	for _, g := range groups {
		if !g.needs {
			continue // SSH or Wake-on-LAN only
		}
		if len(g.short) == 0 {
			d.line("ok", fmt.Sprintf("privileges for %s (%s)", g.name, strings.Join(g.tools, ", ")), "")
			continue
		}
		status := "warn"
		var parts []string
		for _, s := range g.short {
			if !s.Partial() {
				status = "FAIL"
			}
			parts = append(parts, describeShortfall(s))
		}
		d.line(status, fmt.Sprintf("privileges for %s (%s)", g.name, strings.Join(g.affected, ", ")), strings.Join(parts, "; "))
	}
}

// offeredToolsets is every toolset some caller is offered: the server's, and
// those of agent tokens that are neither revoked nor expired.
func offeredToolsets(ctx context.Context, cfg *Config, a *app) map[string]bool {
	out := map[string]bool{}
	for _, name := range cfg.toolsets {
		out[name] = true
	}
	list, err := a.store.ListTokens(ctx)
	if err != nil {
		return out
	}
	now := time.Now()
	for _, t := range list {
		if t.RevokedAt != nil || (!t.ExpiresAt.IsZero() && t.ExpiresAt.Before(now)) || t.Toolsets == "" {
			continue
		}
		for _, name := range strings.Split(t.Toolsets, ",") {
			out[name] = true
		}
	}
	return out
}

func describeShortfall(s tools.Shortfall) string {
	p := s.Privilege
	why := ""
	if p.For != "" {
		why = " (" + p.For + ")"
	}
	switch {
	case len(s.HeldOnly) > 0:
		return fmt.Sprintf("%s only on %s, not on the rest of %s%s", p.Names(), strings.Join(s.HeldOnly, ", "), p.Base(), why)
	case s.Partial():
		return fmt.Sprintf("%s missing on %s%s", p.Names(), strings.Join(s.Missing, ", "), why)
	}
	return fmt.Sprintf("missing %s on %s%s", p.Names(), p.Base(), why)
}

// ssh logs in to every SSH node with the pinned host keys and runs `true`, all
// nodes at once. A node that cannot be reached while the cluster reports it
// offline is a warning: it is off, not misconfigured.
func (d *doctor) ssh(ctx context.Context, c *appCluster, cluster []pve.ClusterStatusEntry) {
	e := c.ssh
	if e == nil {
		d.line("skip", "ssh", fmt.Sprintf("not configured: set %s and %s to use the node tools (execute_ssh, logs, temperatures, services)",
			c.varName("SSH_KEY_PATH"), c.varName("SSH_KNOWN_HOSTS")))
		return
	}
	errs := make([]error, len(c.sshNodeList))
	var wg sync.WaitGroup
	for i, n := range c.sshNodeList {
		wg.Go(func() { errs[i] = e.Check(ctx, n.Name) })
	}
	wg.Wait()
	for i, n := range c.sshNodeList {
		what := fmt.Sprintf("ssh %s (%s)", n.Name, e.Addr(n.Name))
		var ce *sshexec.CheckError
		offline := slices.ContainsFunc(cluster, func(c pve.ClusterStatusEntry) bool { return c.Name == n.Name && !bool(c.Online) })
		switch err := errs[i]; {
		case err == nil:
			d.line("ok", what, fmt.Sprintf("logged in as %s, ran `true`", c.SSHUser))
		case offline && errors.As(err, &ce) && (ce.Problem == sshexec.ProblemUnreachable || ce.Problem == sshexec.ProblemTimeout):
			d.line("warn", what, err.Error()+" (the cluster reports the node offline; check again when it is up)")
		default:
			d.line("FAIL", what, err.Error())
		}
	}
}
