package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
)

const (
	doctorTokenID = "jarvis@pve!mcp"
	doctorSecret  = "11111111-2222-3333-4444-555555555555"
)

// doctorCluster is a simulated cluster API over pinned TLS, as a real one is reached.
type doctorCluster struct {
	sim                   *pvesim.Sim
	hostPort, fingerprint string
}

func startDoctorCluster(t *testing.T, opts pvesim.Options) doctorCluster {
	t.Helper()
	opts.TokenID, opts.TokenSecret = doctorTokenID, doctorSecret
	sim := pvesim.New(opts)
	ts := httptest.NewTLSServer(sim)
	t.Cleanup(ts.Close)
	return doctorCluster{sim: sim, hostPort: strings.TrimPrefix(ts.URL, "https://"), fingerprint: pve.FingerprintOf(ts.Certificate())}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// allNodes is JARVIS_NODES naming every node of the demo cluster, all served
// by the one simulator.
func (c doctorCluster) allNodes() string {
	var parts []string
	for _, n := range []string{"home", "pve", "agent1", "agent"} {
		parts = append(parts, n+"="+c.hostPort)
	}
	return strings.Join(parts, ",")
}

// setDoctorEnv is the environment of a real (non-demo) installation; extra
// variables override it ("" unsets).
func setDoctorEnv(t *testing.T, c doctorCluster, extra map[string]string) {
	t.Helper()
	clearEnv(t)
	testDatabase(t)
	env := map[string]string{
		"JWT_SECRET": strings.Repeat("d", 40), "JARVIS_PASSWORD": "doctor-password-1",
		"JARVIS_NODES": c.allNodes(),
		"PVE_TOKEN_ID": doctorTokenID, "PVE_TOKEN_SECRET": doctorSecret, "PVE_TLS_FINGERPRINT": c.fingerprint,
	}
	for k, v := range extra {
		env[k] = v
	}
	for k, v := range env {
		if v != "" {
			t.Setenv(k, v)
		}
	}
}

func runDoctorCmd(t *testing.T) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), []string{"doctor"}, &out, &out)
	if strings.Contains(out.String(), doctorSecret[:13]) {
		t.Error("doctor printed the token secret")
	}
	return out.String(), err
}

// lineWith finds the output line that starts with status and contains every word.
func lineWith(out, status string, words ...string) (string, bool) {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, status+" ") && !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(l, w) }) {
			return l, true
		}
	}
	return "", false
}

func wantLine(t *testing.T, out, status string, words ...string) {
	t.Helper()
	if _, ok := lineWith(out, status, words...); !ok {
		t.Errorf("no %q line with %q in:\n%s", status, words, out)
	}
}

// doctor runs the real (non-demo) start-up path: configuration, a pinned TLS
// connection to each API endpoint with the token, the database and audit log,
// node names, the token's privileges.
func TestDoctorAgainstAClusterAPI(t *testing.T) {
	c := startDoctorCluster(t, pvesim.Options{})

	setDoctorEnv(t, c, nil)
	out, err := runDoctorCmd(t)
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, want := range [][]string{
		{"ok", "config"}, {"ok", "database"}, {"ok", "audit log"},
		{"ok", "proxmox api pve (https://" + c.hostPort + ")", "Proxmox VE 9.1"},
		{"ok", "node names", "home, pve, agent1, agent"},
		{"ok", "privileges for power actions (start_vm, stop_vm"},
		{"ok", "privileges for cluster status"},
		{"skip", "ssh", "SSH_KEY_PATH"},
	} {
		wantLine(t, out, want[0], want[1:]...)
	}
	if strings.Contains(out, "FAIL") || strings.Contains(out, "warn") {
		t.Errorf("a full-access token on a matching cluster gave warnings:\n%s", out)
	}
	if url := os.Getenv("JARVIS_DATABASE_URL"); url != "" {
		// On PostgreSQL: the database without its password, the replica and its anchor.
		wantLine(t, out, "ok", "database PostgreSQL "+redactedURL(url))
		wantLine(t, out, "ok", "replica ")
		wantLine(t, out, "ok", "audit anchor "+os.Getenv("JARVIS_AUDIT_ANCHOR"))
		if u := cutURL(url); u.password != "" && strings.Contains(out, ":"+u.password+"@") {
			t.Errorf("doctor printed the database password:\n%s", out)
		}
	}

	// An endpoint that does not answer while others do is covered by failover
	// (the node may be off); none answering fails.
	t.Run("one endpoint down", func(t *testing.T) {
		dead := closedAddr(t)
		setDoctorEnv(t, c, map[string]string{"JARVIS_NODES": strings.Replace(c.allNodes(), "agent="+c.hostPort, "agent="+dead, 1)})
		out, err := runDoctorCmd(t)
		if err != nil {
			t.Errorf("doctor failed for one endpoint down: %v\n%s", err, out)
		}
		wantLine(t, out, "warn", "proxmox api agent (https://"+dead+")", "fails over")
		wantLine(t, out, "ok", "proxmox api pve")
	})
	t.Run("every endpoint down", func(t *testing.T) {
		setDoctorEnv(t, c, map[string]string{"JARVIS_NODES": "pve=" + closedAddr(t)})
		out, err := runDoctorCmd(t)
		if err == nil {
			t.Errorf("doctor passed with no endpoint answering:\n%s", out)
		}
		wantLine(t, out, "FAIL", "proxmox api pve")
		wantLine(t, out, "skip", "node names")
	})

	for _, tc := range []struct{ name, secret, fingerprint, want string }{
		{"wrong secret", "wrong-secret", c.fingerprint, "401"},
		{"wrong fingerprint", doctorSecret, strings.Repeat("AB:", 31) + "AB", "fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setDoctorEnv(t, c, map[string]string{"PVE_TOKEN_SECRET": tc.secret, "PVE_TLS_FINGERPRINT": tc.fingerprint})
			out, err := runDoctorCmd(t)
			if err == nil {
				t.Errorf("doctor passed with a %s", tc.name)
			}
			if l, ok := lineWith(out, "FAIL", "proxmox api pve"); !ok || !strings.Contains(strings.ToLower(l), tc.want) {
				t.Errorf("doctor output for a %s:\n%s", tc.name, out)
			}
			wantLine(t, out, "skip", "token privileges")
			if strings.Contains(out, tc.secret) {
				t.Errorf("doctor printed the token secret")
			}
		})
	}
}

func without(privs []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(privs), func(p string) bool { return slices.Contains(drop, p) })
}

// The token's effective permissions against what the offered tools need.
func TestDoctorNamesMissingPrivileges(t *testing.T) {
	all := pvesim.AllPrivileges()
	for _, tc := range []struct {
		name    string
		acl     []pvesim.ACL
		env     map[string]string
		fails   bool
		want    [][]string // status, then words of one line
		notWant []string
	}{
		{name: "no VM.PowerMgmt", acl: []pvesim.ACL{{Path: "/", Privileges: without(all, "VM.PowerMgmt"), Propagate: true}}, fails: true,
			want: [][]string{
				{"FAIL", "privileges for power actions (start_vm, stop_vm, shutdown_vm, restart_vm, start_container", "missing VM.PowerMgmt on /vms"},
				{"ok", "privileges for snapshots"},
			}},
		{name: "power over one guest only", acl: []pvesim.ACL{
			{Path: "/", Privileges: without(all, "VM.PowerMgmt"), Propagate: true},
			{Path: "/vms/101", Privileges: []string{"VM.Audit", "VM.PowerMgmt"}, Propagate: true},
		}, want: [][]string{{"warn", "privileges for power actions", "VM.PowerMgmt only on /vms/101, not on the rest of /vms"}}},
		{name: "read-only mode offers no power action", acl: []pvesim.ACL{{Path: "/", Privileges: without(all, "VM.PowerMgmt"), Propagate: true}},
			env: map[string]string{"JARVIS_READ_ONLY": "true"}, want: [][]string{{"ok", "privileges for guest lists"}}, notWant: []string{"power actions"}},
		{name: "the README's read role", acl: []pvesim.ACL{{Path: "/", Privileges: []string{"Sys.Audit", "VM.Audit", "Datastore.Audit"}, Propagate: true}},
			fails: true, want: [][]string{
				{"FAIL", "privileges for backups (get_backups)", "missing Datastore.AllocateSpace on /storage", "missing VM.Backup on /vms"},
				{"FAIL", "privileges for snapshots (create_snapshot, rollback_snapshot, delete_snapshot)", "missing VM.Snapshot on /vms"},
				{"ok", "privileges for tasks"},
			}},
		{name: "no Sys.Audit", acl: []pvesim.ACL{{Path: "/", Privileges: without(all, "Sys.Audit"), Propagate: true}}, fails: true,
			want: [][]string{
				{"ok", "node names", "from /nodes"},
				{"FAIL", "privileges for cluster status (get_cluster_status)", "missing Sys.Audit on /"},
				{"FAIL", "privileges for node status", "missing Sys.Audit on /nodes"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startDoctorCluster(t, pvesim.Options{ACL: tc.acl})
			setDoctorEnv(t, c, tc.env)
			out, err := runDoctorCmd(t)
			if (err != nil) != tc.fails {
				t.Errorf("doctor error = %v, want failure %v", err, tc.fails)
			}
			for _, w := range tc.want {
				wantLine(t, out, w[0], w[1:]...)
			}
			for _, nw := range tc.notWant {
				if strings.Contains(out, nw) {
					t.Errorf("output mentions %q:\n%s", nw, out)
				}
			}
		})
	}
}

func TestDoctorChecksNodeNames(t *testing.T) {
	c := startDoctorCluster(t, pvesim.Options{})
	setDoctorEnv(t, c, map[string]string{"JARVIS_NODES": "pve=" + c.hostPort + ",pve9=" + c.hostPort})
	out, err := runDoctorCmd(t)
	if err == nil {
		t.Errorf("doctor passed with a node name the cluster does not know:\n%s", out)
	}
	wantLine(t, out, "FAIL", "node names", "JARVIS_NODES names pve9, not a node of this cluster (its nodes: agent, agent1, home, pve)")
	// A cluster node left out only loses failover: a warning.
	for _, n := range []string{"home", "agent1", "agent"} {
		wantLine(t, out, "warn", "node names", "cluster node "+n+" is not in JARVIS_NODES", "fail over")
	}
	if _, ok := lineWith(out, "ok", "node names"); ok {
		t.Errorf("node names reported ok:\n%s", out)
	}
}

// sshKeyFile writes an unencrypted OpenSSH private key and returns its path
// and signer.
func sshKeyFile(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return p, signer
}

// SSH login with the pinned host keys, per node, against the simulated node shells.
func TestDoctorChecksSSH(t *testing.T) {
	c := startDoctorCluster(t, pvesim.Options{})
	keyPath, signer := sshKeyFile(t)
	shells, err := sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shells.Close() })
	var nodes []string
	for _, n := range shells.Nodes() {
		nodes = append(nodes, n+"="+shells.Addr(n))
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(good, shells.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	// agent1's line pins a key it does not have.
	other, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(shells.KnownHosts())), "\n") {
		if strings.HasPrefix(l, knownhosts.Normalize(shells.Addr("agent1"))+" ") {
			l = knownhosts.Line([]string{knownhosts.Normalize(shells.Addr("agent1"))}, other.PublicKey())
		}
		lines = append(lines, l)
	}
	wrong := filepath.Join(dir, "known_hosts_wrong")
	if err := os.WriteFile(wrong, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(knownHosts string) map[string]string {
		return map[string]string{"SSH_KEY_PATH": keyPath, "SSH_KNOWN_HOSTS": knownHosts, "SSH_NODES": strings.Join(nodes, ",")}
	}

	setDoctorEnv(t, c, env(good))
	out, err := runDoctorCmd(t)
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	for _, n := range shells.Nodes() {
		wantLine(t, out, "ok", "ssh "+n+" ("+shells.Addr(n)+")", "logged in as root")
	}

	setDoctorEnv(t, c, env(wrong))
	out, err = runDoctorCmd(t)
	if err == nil {
		t.Errorf("doctor passed with a wrong host key pinned:\n%s", out)
	}
	wantLine(t, out, "FAIL", "ssh agent1", "host key mismatch", "CHANGED")
	wantLine(t, out, "ok", "ssh pve")

	// A node that does not answer fails, unless the cluster reports it offline:
	// then it is off, not misconfigured.
	dead := closedAddr(t)
	pinnedDead := filepath.Join(dir, "known_hosts_dead")
	if err := os.WriteFile(pinnedDead, append(shells.KnownHosts(), knownhosts.Line([]string{knownhosts.Normalize(dead)}, other.PublicKey())+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	env2 := env(pinnedDead)
	env2["SSH_NODES"] = strings.Replace(env2["SSH_NODES"], "agent="+shells.Addr("agent"), "agent="+dead, 1)
	setDoctorEnv(t, c, env2)
	out, err = runDoctorCmd(t)
	if err == nil {
		t.Errorf("doctor passed with a node unreachable over SSH:\n%s", out)
	}
	wantLine(t, out, "FAIL", "ssh agent ("+dead+")", "unreachable")
	c.sim.SetNodeOffline("agent", true)
	out, err = runDoctorCmd(t)
	if err != nil {
		t.Errorf("doctor failed for a node the cluster reports offline: %v\n%s", err, out)
	}
	wantLine(t, out, "warn", "ssh agent ("+dead+")", "unreachable", "offline")
}

// The same against a real OpenSSH server: CI starts one with .ci/sshd.sh; the
// test skips where it is not configured, as tools/ssh's integration tests do.
func TestDoctorChecksSSHAgainstOpenSSH(t *testing.T) {
	addr, user := os.Getenv("JARVIS_TEST_SSHD_ADDR"), os.Getenv("JARVIS_TEST_SSHD_USER")
	key, knownHosts := os.Getenv("JARVIS_TEST_SSHD_KEY"), os.Getenv("JARVIS_TEST_SSHD_KNOWN_HOSTS")
	if addr == "" || user == "" || key == "" || knownHosts == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd not configured in CI; run: eval \"$(bash .ci/sshd.sh)\"")
		}
		t.Skip("sshd not configured; run .ci/sshd.sh")
	}
	c := startDoctorCluster(t, pvesim.Options{})
	other, _ := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
	wrong := filepath.Join(t.TempDir(), "known_hosts_wrong")
	if err := os.WriteFile(wrong, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, other.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, knownHosts, status string
		words                    []string
	}{
		{"pinned keys", knownHosts, "ok", []string{"logged in as " + user}},
		{"another key pinned", wrong, "FAIL", []string{"host key mismatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setDoctorEnv(t, c, map[string]string{"SSH_KEY_PATH": key, "SSH_KNOWN_HOSTS": tc.knownHosts, "SSH_USER": user,
				"SSH_NODES": "pve=" + addr})
			out, err := runDoctorCmd(t)
			if (err != nil) != (tc.status == "FAIL") {
				t.Errorf("doctor error = %v\n%s", err, out)
			}
			wantLine(t, out, tc.status, append([]string{"ssh pve (" + addr + ")"}, tc.words...)...)
		})
	}
}
