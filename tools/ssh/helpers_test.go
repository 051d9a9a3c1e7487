package sshexec

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// simCluster is the demo cluster running in-process, with an executor
// configured for it.
type simCluster struct {
	sim        *sshsim.Sim
	signer     ssh.Signer
	knownHosts string
}

func startSim(t testing.TB) *simCluster {
	t.Helper()
	signer := newSigner(t)
	sim, err := sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("closing sim: %v", err)
		}
	})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, sim.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &simCluster{sim: sim, signer: signer, knownHosts: kh}
}

func (c *simCluster) config() Config {
	nodes := map[string]string{}
	for _, n := range c.sim.Nodes() {
		nodes[n] = c.sim.Addr(n)
	}
	return Config{Nodes: nodes, Signer: c.signer, KnownHostsPath: c.knownHosts}
}

func (c *simCluster) executor(t testing.TB, edit func(*Config)) *Executor {
	t.Helper()
	cfg := c.config()
	if edit != nil {
		edit(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
