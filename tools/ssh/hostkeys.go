package sshexec

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError says a node's host key is not pinned, or no longer matches the
// pinned one. Its message tells the operator how to fix it once verified.
type HostKeyError struct {
	Node           string
	Addr           string // host:port dialled
	KnownHostsPath string
	Changed        bool   // a key is pinned for the host, and the server presented a different one
	Presented      string // "TYPE SHA256:…" of the key the server presented; empty if never dialled
}

func (e *HostKeyError) Error() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	if !e.Changed {
		return fmt.Sprintf("host key for node %s (%s) is not in %s; verify the key on the node and add it: ssh-keyscan -p %s %s >> %s",
			e.Node, e.Addr, e.KnownHostsPath, port, host, Quote(e.KnownHostsPath))
	}
	return fmt.Sprintf("host key for node %s (%s) has CHANGED: the server presented %s, which does not match the key pinned in %s. "+
		"This may be a man-in-the-middle attack; do not connect until you have verified the new key on the node's console. "+
		"If the node was legitimately reinstalled, remove the old key with `ssh-keygen -R %s -f %s` and add the verified one with `ssh-keyscan -p %s %s >> %s`",
		e.Node, e.Addr, e.Presented, e.KnownHostsPath,
		Quote(knownhosts.Normalize(e.Addr)), Quote(e.KnownHostsPath), port, host, Quote(e.KnownHostsPath))
}

// probeKey is a public key no host has: checking it against known_hosts
// yields the list of keys pinned for an address.
var probeKey, _ = ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))

// pinnedHostKeyAlgorithms returns the host key algorithms to offer when
// dialling addr: only those of keys pinned for it. Without this restriction
// x/crypto prefers ECDSA/RSA, and a server that also has such keys presents
// one that an ed25519-only known_hosts does not hold — reported as a mismatch.
func pinnedHostKeyAlgorithms(hostKeys ssh.HostKeyCallback, addr string) ([]string, error) {
	err := hostKeys(addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, probeKey)
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) {
		if err == nil {
			return nil, errors.New("known_hosts pins the all-zero probe key; remove that line")
		}
		return nil, err
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, known := range keyErr.Want {
		if known.Key.Type() == ssh.KeyAlgoRSA {
			// One RSA key serves all three signature algorithms; prefer SHA-2.
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(known.Key.Type())
	}
	return algos, nil
}

// checkingHostKeys wraps the known_hosts callback so that a refusal comes back
// as a *HostKeyError naming the node and the fix.
func checkingHostKeys(hostKeys ssh.HostKeyCallback, node, addr, knownHostsPath string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := hostKeys(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &keyErr):
			return &HostKeyError{
				Node: node, Addr: addr, KnownHostsPath: knownHostsPath,
				Changed:   len(keyErr.Want) > 0,
				Presented: key.Type() + " " + ssh.FingerprintSHA256(key),
			}
		case errors.As(err, &revoked):
			return fmt.Errorf("host key for node %s (%s) is marked @revoked in %s: refusing to connect", node, addr, knownHostsPath)
		default:
			return fmt.Errorf("checking host key of node %s (%s) against %s: %w", node, addr, knownHostsPath, err)
		}
	}
}
