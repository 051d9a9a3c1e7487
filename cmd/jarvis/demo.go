package main

// The built-in demo cluster: a simulated Proxmox API and simulated node shells,
// started in-process for `jarvis serve --demo` and `jarvis stdio --demo`. This is
// the only product file that imports the simulators (tools/sim).

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// setUpDemo starts the simulated cluster and node shells and fills in throwaway
// secrets where none were given.
func (a *app) setUpDemo(secret *string, stderr io.Writer) error {
	cfg := a.cfg
	if *secret == "" {
		*secret = randomHex(32)
	}
	if a.password == "" {
		a.password = randomHex(12)
		fmt.Fprintf(stderr, "\n  Jarvis demo: operator password (shown once): %s\n\n", a.password)
	}
	if _, set := os.LookupEnv("DB_PATH"); !set {
		dir, err := os.MkdirTemp("", "jarvis-demo-")
		if err != nil {
			return err
		}
		cfg.DBPath = filepath.Join(dir, "jarvis.db")
		a.cleanup = append(a.cleanup, func() { _ = os.RemoveAll(dir) })
		a.logger.Info("demo database (deleted at exit; set DB_PATH to keep it)", "path", cfg.DBPath)
	}
	if cfg.ProtectedNodes == nil && cfg.vmids == nil && cfg.ProtectedServices == nil {
		cfg.ProtectedNodes = []string{"agent1"}
		cfg.vmids = []int{103}
		cfg.ProtectedServices = []string{"docker"}
	}

	tokenID, tokenSecret := "jarvis@pve!demo", randomHex(16)
	sim := pvesim.New(pvesim.Options{TokenID: tokenID, TokenSecret: tokenSecret})
	ts := httptest.NewUnstartedServer(sim)
	ts.StartTLS()
	a.cleanup = append(a.cleanup, ts.Close)
	var endpoints []pve.Endpoint
	for _, n := range []string{"home", "pve", "agent1", "agent"} {
		endpoints = append(endpoints, pve.Endpoint{Name: n, URL: ts.URL})
	}
	var err error
	a.pve, err = pve.New(pve.Config{Endpoints: endpoints, TokenID: tokenID, TokenSecret: tokenSecret,
		Fingerprint: pve.FingerprintOf(ts.Certificate())})
	if err != nil {
		return fmt.Errorf("demo cluster client: %w", err)
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
	shells, err := sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: sshPub})
	if err != nil {
		return fmt.Errorf("demo node shells: %w", err)
	}
	a.cleanup = append(a.cleanup, func() { _ = shells.Close() })
	dir, err := os.MkdirTemp("", "jarvis-demo-ssh-")
	if err != nil {
		return err
	}
	a.cleanup = append(a.cleanup, func() { _ = os.RemoveAll(dir) })
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, shells.KnownHosts(), 0o600); err != nil {
		return err
	}
	nodes := map[string]string{}
	cfg.sshNodeList = nil
	for _, n := range sshsim.DemoFacts() {
		nodes[n.Name] = shells.Addr(n.Name)
		cfg.sshNodeList = append(cfg.sshNodeList, nodeAddr{Name: n.Name, Host: shells.Addr(n.Name)})
	}
	a.ssh, err = sshexec.New(sshexec.Config{Nodes: nodes, User: "root", Signer: signer, KnownHostsPath: knownHosts, OutputCap: cfg.SSHOutputCap})
	if err != nil {
		return fmt.Errorf("demo SSH: %w", err)
	}
	a.cleanup = append(a.cleanup, func() { _ = a.ssh.Close() })
	if cfg.WakeMACs == "" {
		// The demo wakes nodes by sending to a loopback port nobody listens on.
		cfg.WakeMACs = "home=52:54:00:12:34:01,pve=52:54:00:12:34:02,agent1=52:54:00:12:34:03,agent=52:54:00:12:34:04"
		cfg.WakeBroadcast = "127.0.0.1:9"
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
