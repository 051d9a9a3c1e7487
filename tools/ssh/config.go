// Package sshexec runs already-approved command strings on cluster nodes over
// SSH: one pooled connection per node, host keys pinned from a known_hosts
// file, a remote `timeout` around every command, output capped per stream, and
// the session closed as soon as the caller's context ends.
//
// It does not decide whether a command is safe; the safety package does that
// before a command ever reaches Run.
package sshexec

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// Defaults and limits applied by New and Run.
const (
	DefaultUser        = "root"
	DefaultMaxSessions = 4
	DefaultDialTimeout = 10 * time.Second
	DefaultOutputCap   = 1 << 20 // bytes per stream
	DefaultTimeout     = 30 * time.Second
	MaxTimeout         = 300 * time.Second
)

// Config says which nodes exist and how to reach them.
type Config struct {
	Nodes          map[string]string // node name → "host:port"
	User           string            // login user; default root
	KeyPath        string            // client private key file (unencrypted, OpenSSH or PEM format)
	Signer         ssh.Signer        // alternative to KeyPath (tests, agents); set exactly one
	KnownHostsPath string            // required: pinned host keys in OpenSSH known_hosts format
	MaxSessions    int               // concurrent sessions per node; default 4
	DialTimeout    time.Duration     // TCP connect + SSH handshake; default 10s
	OutputCap      int               // bytes kept per stream (stdout, stderr); default 1 MiB
}

// loaded is a Config after validation, with key material and known hosts read.
type loaded struct {
	cfg        Config
	signer     ssh.Signer
	hostKeys   ssh.HostKeyCallback
	knownHosts string
}

// load validates cfg, fills defaults, and reads the key and known_hosts
// files. Every problem found is reported, not just the first.
func load(cfg Config) (*loaded, error) {
	var errs []error
	problem := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(cfg.Nodes) == 0 {
		problem("no nodes configured: Nodes must map at least one node name to host:port")
	}
	for name, addr := range cfg.Nodes {
		if !pveid.ValidNodeName(name) {
			problem("node name %q is invalid: use 1-%d letters, digits or '-'", name, pveid.MaxNodeNameLen)
		}
		if err := checkHostPort(addr); err != nil {
			problem("address of node %q: %w", name, err)
		}
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.MaxSessions < 0 {
		problem("MaxSessions is %d: must be positive (or 0 for the default %d)", cfg.MaxSessions, DefaultMaxSessions)
	} else if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.DialTimeout < 0 {
		problem("DialTimeout is %s: must be positive (or 0 for the default %s)", cfg.DialTimeout, DefaultDialTimeout)
	} else if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.OutputCap < 0 {
		problem("OutputCap is %d: must be positive (or 0 for the default %d bytes)", cfg.OutputCap, DefaultOutputCap)
	} else if cfg.OutputCap == 0 {
		cfg.OutputCap = DefaultOutputCap
	}

	l := &loaded{cfg: cfg, knownHosts: cfg.KnownHostsPath}
	switch {
	case cfg.KeyPath != "" && cfg.Signer != nil:
		problem("both KeyPath and Signer are set: configure exactly one client key")
	case cfg.Signer != nil:
		l.signer = cfg.Signer
	case cfg.KeyPath != "":
		signer, err := readPrivateKey(cfg.KeyPath)
		if err != nil {
			errs = append(errs, err)
		}
		l.signer = signer
	default:
		problem("no client key: set KeyPath to a private key file")
	}

	if cfg.KnownHostsPath == "" {
		problem("KnownHostsPath is empty: host keys must be pinned in a known_hosts file")
	} else {
		cb, err := knownhosts.New(cfg.KnownHostsPath)
		if err != nil {
			problem("reading known_hosts %s: %w", cfg.KnownHostsPath, err)
		}
		l.hostKeys = cb
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid SSH configuration: %w", errors.Join(errs...))
	}
	return l, nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has port %q: want a number 1-65535", addr, port)
	}
	return nil
}

// readPrivateKey reads and parses a private key file. Errors never include
// the key's contents.
func readPrivateKey(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading SSH private key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("SSH private key %s is passphrase-protected: use an unencrypted key dedicated to Jarvis", path)
	case err != nil:
		return nil, fmt.Errorf("SSH private key %s could not be parsed (want an OpenSSH or PEM private key): %w", path, err)
	}
	return signer, nil
}
