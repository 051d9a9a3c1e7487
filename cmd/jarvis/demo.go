package main

// The built-in demo cluster: a simulated Proxmox API and simulated node shells,
// started in-process for `jarvis serve --demo` and `jarvis stdio --demo`. This is
// the only product file that imports the simulators (tools/sim).

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// setUpDemo starts the simulated cluster and node shells. The database and the
// secret that keys it live in the demo state folder (unless DB_PATH and
// JWT_SECRET say otherwise), so a second terminal can list and approve what a
// demo session waits for, and the audit log verifies across runs.
func (a *app) setUpDemo(secret *string, stderr io.Writer) error {
	cfg := a.cfg
	if err := useDemoState(cfg); err != nil {
		return err
	}
	*secret = cfg.JWTSecret
	if a.password == "" {
		a.password = randomHex(12)
		fmt.Fprintf(stderr, "\n  Jarvis demo: operator password (shown once): %s\n", a.password)
	}
	if cfg.demoDir != "" {
		fmt.Fprintf(stderr, "\n  Jarvis demo: state in %s\n"+
			"  From another terminal: `jarvis approvals --demo` lists what waits for a person,\n"+
			"  `jarvis approve ID --demo` approves it; the console of `jarvis serve --demo` shows it too\n"+
			"  (each demo process simulates its own cluster: approvals and the audit log are shared, guests are not).\n\n", cfg.demoDir)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	sshDir, err := os.MkdirTemp("", "jarvis-demo-ssh-")
	if err != nil {
		return err
	}
	a.cleanup = append(a.cleanup, func() { _ = os.RemoveAll(sshDir) })
	for i, cc := range cfg.clusters {
		c, err := a.simulate(cc, demoSite(i, cc.name), signer, sshPub, sshDir)
		if err != nil {
			return err
		}
		a.clusters = append(a.clusters, c)
		if len(cfg.clusters) > 1 {
			fmt.Fprintf(stderr, "  Jarvis demo: cluster %s, nodes %s, protected: nodes %s, VMIDs %v, services %s\n", cc.name,
				strings.Join(nodeNames(c.nodeList), ", "), strings.Join(cc.ProtectedNodes, ", "), cc.vmids, strings.Join(cc.ProtectedServices, ", "))
		}
	}
	return nil
}

// demoSite names the i-th simulated cluster: the first is the demo cluster
// as it always was, each other one has its name before every node name and
// VMIDs 1000·i higher (lab-pve, VM 1101), so the two cannot be confused.
func demoSite(i int, name string) pvesim.Site {
	if i == 0 {
		return pvesim.Site{}
	}
	return pvesim.Site{Name: name, NodePrefix: name + "-", VMIDOffset: 1000 * i}
}

// simulate starts one simulated cluster and its node shells, and connects to
// both. Without protection configured for it, it protects what the demo
// always has: node agent1, VM 103 and the docker service (as named at site).
func (a *app) simulate(cc *ClusterEnv, site pvesim.Site, signer ssh.Signer, sshPub ssh.PublicKey, sshDir string) (*appCluster, error) {
	if cc.ProtectedNodes == nil && cc.vmids == nil && cc.ProtectedServices == nil {
		cc.ProtectedNodes = []string{site.NodePrefix + "agent1"}
		cc.vmids = []int{103 + site.VMIDOffset}
		cc.ProtectedServices = []string{"docker"}
	}
	tokenID, tokenSecret := "jarvis@pve!demo", randomHex(16)
	sim := pvesim.New(pvesim.Options{TokenID: tokenID, TokenSecret: tokenSecret, Site: site})
	if a.demoCluster == nil {
		// The console's crash button acts on the default cluster.
		a.demoCluster = demoCluster{sim}
	}
	ts := httptest.NewUnstartedServer(sim)
	ts.StartTLS()
	a.cleanup = append(a.cleanup, ts.Close)
	facts := sshsim.DemoFactsAt(site.NodePrefix, site.VMIDOffset)
	c := &appCluster{ClusterEnv: cc}
	cc.nodeList = nil
	var endpoints []pve.Endpoint
	for _, n := range facts {
		endpoints = append(endpoints, pve.Endpoint{Name: n.Name, URL: ts.URL})
		cc.nodeList = append(cc.nodeList, nodeAddr{Name: n.Name, Host: ts.Listener.Addr().String()})
	}
	var err error
	c.pve, err = pve.New(pve.Config{Endpoints: endpoints, TokenID: tokenID, TokenSecret: tokenSecret,
		Fingerprint: pve.FingerprintOf(ts.Certificate()), CacheFor: a.cfg.ReadCache, Observer: a.metrics})
	if err != nil {
		return nil, fmt.Errorf("demo cluster client: %w", err)
	}
	a.cleanup = append(a.cleanup, c.pve.CloseIdleConnections)

	shells, err := sshsim.Start(sshsim.Options{Nodes: facts, AuthorizedKey: sshPub})
	if err != nil {
		return nil, fmt.Errorf("demo node shells: %w", err)
	}
	a.cleanup = append(a.cleanup, func() { _ = shells.Close() })
	knownHosts := filepath.Join(sshDir, "known_hosts-"+cc.name)
	if err := os.WriteFile(knownHosts, shells.KnownHosts(), 0o600); err != nil {
		return nil, err
	}
	nodes := map[string]string{}
	cc.sshNodeList = nil
	for _, n := range facts {
		nodes[n.Name] = shells.Addr(n.Name)
		cc.sshNodeList = append(cc.sshNodeList, nodeAddr{Name: n.Name, Host: shells.Addr(n.Name)})
	}
	c.ssh, err = sshexec.New(sshexec.Config{Nodes: nodes, User: "root", Signer: signer, KnownHostsPath: knownHosts, OutputCap: a.cfg.SSHOutputCap})
	if err != nil {
		return nil, fmt.Errorf("demo SSH: %w", err)
	}
	a.cleanup = append(a.cleanup, func() { _ = c.ssh.Close() })
	if cc.wake == nil {
		// The demo wakes nodes by sending to a loopback port nobody listens on.
		var macs []string
		for i, n := range facts {
			macs = append(macs, fmt.Sprintf("%s=52:54:00:12:%02x:%02x", n.Name, 0x34+site.VMIDOffset/1000, i+1))
		}
		if cc.wake, err = tools.ParseWakeOnLAN(strings.Join(macs, ","), "127.0.0.1:9"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// nodeNames lists the names of nodes.
func nodeNames(nodes []nodeAddr) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// demoCluster lets the console crash a guest of the simulated cluster (web's
// demo routes), to try crash detection and standing approvals.
type demoCluster struct{ sim *pvesim.Sim }

func (d demoCluster) CrashGuest(vmid int) error {
	if _, ok := d.sim.Guest(vmid); !ok {
		return fmt.Errorf("no guest %d: %w", vmid, store.ErrNotFound)
	}
	return d.sim.CrashGuest(vmid)
}

// demoStateDir is where the demo keeps its database and secret between runs:
// $XDG_STATE_HOME/jarvis/demo, or ~/.local/state/jarvis/demo.
func demoStateDir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("the demo keeps its state in your home folder, which is unknown (%v): set DB_PATH and JWT_SECRET", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "jarvis", "demo"), nil
}

// useDemoState points a demo run at its state. Without DB_PATH that is the demo
// folder, self-contained: its database and the secret kept beside it (made on
// first use), whatever JWT_SECRET says, so host commands with --demo always find
// both. With DB_PATH, JWT_SECRET is used, or a secret kept beside that database.
// With JARVIS_DATABASE_URL, that database and JWT_SECRET. It records the folder
// in cfg.demoDir ("" with DB_PATH or JARVIS_DATABASE_URL).
func useDemoState(cfg *Config) error {
	if _, set := os.LookupEnv("DB_PATH"); !set && !cfg.onPostgres() {
		dir, err := demoStateDir()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("demo state folder: %w", err)
		}
		cfg.demoDir, cfg.DBPath, cfg.JWTSecret = dir, filepath.Join(dir, "jarvis.db"), ""
	}
	if cfg.JWTSecret != "" {
		return nil
	}
	if cfg.onPostgres() {
		// No file to keep one beside that every process would find.
		return errors.New("JWT_SECRET: the demo on JARVIS_DATABASE_URL needs the secret set, the same for every jarvis process on that database")
	}
	path := cfg.DBPath + ".demo-secret"
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(strings.TrimSpace(string(b))) >= 32:
		cfg.JWTSecret = strings.TrimSpace(string(b))
	case err == nil || errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("demo secret: %w", err)
		}
		cfg.JWTSecret = randomHex(32)
		if err := os.WriteFile(path, []byte(cfg.JWTSecret+"\n"), 0o600); err != nil {
			return fmt.Errorf("demo secret: %w", err)
		}
	default:
		return fmt.Errorf("demo secret %s: %w", path, err)
	}
	return nil
}

// findDemoState points a host command (jarvis approve --demo, …) at the demo
// folder's database and secret — never at DB_PATH or JWT_SECRET, which may be a
// real installation's — and says so when no demo has run yet.
func findDemoState(cfg *Config) error {
	dir, err := demoStateDir()
	if err != nil {
		return err
	}
	db := filepath.Join(dir, "jarvis.db")
	b, err := os.ReadFile(db + ".demo-secret")
	if _, serr := os.Stat(db); serr != nil || err != nil {
		return fmt.Errorf("no demo state in %s: start `jarvis serve --demo` or `jarvis stdio --demo` first (a demo run with DB_PATH set keeps its state there: use the same DB_PATH and JWT_SECRET without --demo)", dir)
	}
	cfg.demoDir, cfg.DBPath, cfg.JWTSecret = dir, db, strings.TrimSpace(string(b))
	cfg.DatabaseURL, cfg.AuditAnchor = "", "" // the demo folder's SQLite file and its anchor
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
