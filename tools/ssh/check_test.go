package sshexec

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// writeKnownHosts pins key for addr in a fresh known_hosts file.
func writeKnownHosts(t *testing.T, addr string, key ssh.PublicKey) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	content := ""
	if key != nil {
		content = knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	c := startSim(t)
	node := c.sim.Nodes()[0]
	addr := c.sim.Addr(node)
	otherKey, _ := ssh.NewPublicKey(mustEd25519(t))

	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := refused.Addr().String()
	refused.Close()

	// A port that accepts but never speaks SSH.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()

	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		problem string
		words   []string
	}{
		{"pinned key and authorised client key", nil, "", nil},
		{"another key pinned", func(cfg *Config) { cfg.KnownHostsPath = writeKnownHosts(t, addr, otherKey) },
			ProblemHostKeyChanged, []string{"host key mismatch", "CHANGED", node}},
		{"no key pinned", func(cfg *Config) { cfg.KnownHostsPath = writeKnownHosts(t, addr, nil) },
			ProblemUnknownHostKey, []string{"host key not pinned", "ssh-keyscan"}},
		{"client key not authorised", func(cfg *Config) { cfg.Signer = newSigner(t) },
			ProblemAuth, []string{"login refused", "authorized_keys"}},
		{"nothing listens", func(cfg *Config) {
			cfg.Nodes = map[string]string{node: closedAddr}
			cfg.KnownHostsPath = writeKnownHosts(t, closedAddr, otherKey)
		}, ProblemUnreachable, []string{"unreachable", closedAddr}},
		{"no SSH answer", func(cfg *Config) {
			cfg.Nodes = map[string]string{node: silent.Addr().String()}
			cfg.KnownHostsPath = writeKnownHosts(t, silent.Addr().String(), otherKey)
			cfg.DialTimeout = 300 * time.Millisecond
		}, ProblemTimeout, []string{"timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := c.executor(t, tc.edit)
			err := e.Check(context.Background(), node)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				if !slices.Contains(c.sim.Ran(node), "true") {
					t.Errorf("the node never ran `true`: %v", c.sim.Ran(node))
				}
				return
			}
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Problem != tc.problem || ce.Node != node {
				t.Fatalf("Check = %v, want a %q CheckError for %s", err, tc.problem, node)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
		})
	}

	t.Run("unknown node", func(t *testing.T) {
		if err := c.executor(t, nil).Check(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "configured nodes are") {
			t.Errorf("Check(nope) = %v", err)
		}
	})

	// Check dials its own connection: a pooled one neither answers for it nor
	// is disturbed by it.
	t.Run("leaves the pool alone", func(t *testing.T) {
		e := c.executor(t, nil)
		if _, err := e.Run(context.Background(), node, "true", 0); err != nil {
			t.Fatal(err)
		}
		if err := e.Check(context.Background(), node); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Run(context.Background(), node, "true", 0); err != nil {
			t.Fatal(err)
		}
		if got := e.nodes[node].dials.Load(); got != 1 {
			t.Errorf("pooled dials = %d, want 1", got)
		}
	})
}

// Against a real OpenSSH server (CI starts one; see integration_test.go).
func TestIntegrationCheck(t *testing.T) {
	s := requireSSHD(t)
	otherKey, _ := ssh.NewPublicKey(mustEd25519(t))
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		problem string
	}{
		{"pinned keys", nil, ""},
		{"ed25519 key only pinned", func(cfg *Config) { cfg.KnownHostsPath = s.ed25519OnlyKnownHosts(t) }, ""},
		{"another key pinned", func(cfg *Config) { cfg.KnownHostsPath = writeKnownHosts(t, s.addr, otherKey) }, ProblemHostKeyChanged},
		{"client key not authorised", func(cfg *Config) { cfg.KeyPath, cfg.Signer = "", newSigner(t) }, ProblemAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.executor(t, tc.edit).Check(context.Background(), "real")
			var ce *CheckError
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("Check = %v", err)
			case tc.problem != "" && (!errors.As(err, &ce) || ce.Problem != tc.problem):
				t.Fatalf("Check = %v, want a %q CheckError", err, tc.problem)
			}
		})
	}
}
