// Package sshsim runs simulated cluster node shells over real SSH (gliderlabs/ssh)
// on 127.0.0.1, for tests and the demo. Each node answers the read-only
// commands an operator would run (uptime, df -h, systemctl status, qm list, …)
// from its NodeFacts, and records every command string it receives, so tests
// can prove a refused command never reached a shell.
package sshsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Options configures Start.
type Options struct {
	Nodes         []NodeFacts
	AuthorizedKey gossh.PublicKey // the only client key accepted
}

// Sim is a set of running simulated nodes.
type Sim struct {
	nodes map[string]*simNode
	order []string
	start time.Time

	mu       sync.Mutex
	closed   bool
	sessions sync.WaitGroup // session handlers still running
	serving  sync.WaitGroup // Serve loops
}

// simNode is one node's server and its mutable state.
type simNode struct {
	sim      *Sim
	facts    NodeFacts
	srv      *gliderssh.Server
	listener net.Listener
	addr     string
	hostKey  gossh.PublicKey
	mu       sync.Mutex
	services map[string]string
	ran      []string
	events   []journalEntry // journal lines written by systemctl during the simulation
	conns    map[net.Conn]struct{}
	running  atomic.Int32 // commands executing now
}

// Start listens on 127.0.0.1:0 for every node, each with its own fresh
// ed25519 host key.
func Start(opts Options) (*Sim, error) {
	if opts.AuthorizedKey == nil {
		return nil, errors.New("sshsim: Options.AuthorizedKey is required")
	}
	if len(opts.Nodes) == 0 {
		return nil, errors.New("sshsim: Options.Nodes is empty")
	}
	s := &Sim{nodes: map[string]*simNode{}, start: time.Now()}
	for _, facts := range opts.Nodes {
		if _, dup := s.nodes[facts.Name]; dup || facts.Name == "" {
			s.Close()
			return nil, fmt.Errorf("sshsim: node name %q is empty or repeated", facts.Name)
		}
		n, err := s.startNode(withDefaults(facts), opts.AuthorizedKey)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.nodes[facts.Name] = n
		s.order = append(s.order, facts.Name)
	}
	return s, nil
}

func (s *Sim) startNode(facts NodeFacts, authorized gossh.PublicKey) (*simNode, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sshsim: generating host key: %w", err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sshsim: host key signer: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sshsim: listening for node %s: %w", facts.Name, err)
	}
	n := &simNode{
		sim: s, facts: facts, listener: ln, addr: ln.Addr().String(), hostKey: signer.PublicKey(),
		services: map[string]string{}, conns: map[net.Conn]struct{}{},
	}
	for unit, state := range facts.Services {
		n.services[unit] = state
	}
	n.srv = &gliderssh.Server{
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			return gliderssh.KeysEqual(key, authorized)
		},
		// A custom session handler: the stock one gives the command no
		// signal when the client closes the session.
		ChannelHandlers: map[string]gliderssh.ChannelHandler{"session": n.handleSession},
		ConnCallback:    n.trackConn,
	}
	n.srv.AddHostKey(signer)
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = n.srv.Serve(ln)
	}()
	return n, nil
}

// Addr returns the node's "127.0.0.1:PORT", or "" for an unknown node.
func (s *Sim) Addr(node string) string {
	if n := s.nodes[node]; n != nil {
		return n.addr
	}
	return ""
}

// Nodes returns the node names in the order given to Start.
func (s *Sim) Nodes() []string { return slices.Clone(s.order) }

// KnownHosts returns OpenSSH known_hosts lines pinning every node's host key.
func (s *Sim) KnownHosts() []byte {
	var out []byte
	for _, name := range s.order {
		n := s.nodes[name]
		out = append(out, knownhosts.Line([]string{knownhosts.Normalize(n.addr)}, n.hostKey)...)
		out = append(out, '\n')
	}
	return out
}

// Ran returns every command string the node was asked to run, exactly as
// received, oldest first.
func (s *Sim) Ran(node string) []string {
	n := s.nodes[node]
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.ran)
}

// Service returns the current state of a node's unit ("" if unknown), e.g.
// to check that a restart took effect.
func (s *Sim) Service(node, unit string) string {
	n := s.nodes[node]
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.services[unit]
}

// Running returns how many commands the node is executing right now; a
// command whose session was closed stops at once, so this drops to zero.
func (s *Sim) Running(node string) int {
	if n := s.nodes[node]; n != nil {
		return int(n.running.Load())
	}
	return 0
}

// DropConnections closes every open client connection to the node without
// telling the client, as a network failure would.
func (s *Sim) DropConnections(node string) {
	n := s.nodes[node]
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		_ = c.Close()
	}
}

// Close stops every node and waits until all its goroutines have ended.
func (s *Sim) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, n := range s.nodes {
		if err := n.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		// Serve may not have registered the listener with the server yet, in
		// which case srv.Close missed it; closing it here ends Serve either way.
		_ = n.listener.Close()
	}
	// Serve must have returned before Shutdown: gliderlabs/ssh adds to its
	// listener WaitGroup inside Serve, and Shutdown waiting on it meanwhile is a
	// data race (seen under -race when Start fails and closes at once).
	s.serving.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range s.nodes {
		if err := n.srv.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("sshsim: node %s did not stop: %w", n.facts.Name, err))
		}
	}
	s.sessions.Wait()
	return errors.Join(errs...)
}

// trackConn remembers client connections so DropConnections can cut them.
func (n *simNode) trackConn(_ gliderssh.Context, c net.Conn) net.Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.conns[c] = struct{}{}
	return &trackedConn{Conn: c, node: n}
}

type trackedConn struct {
	net.Conn
	node *simNode
}

func (c *trackedConn) Close() error {
	c.node.mu.Lock()
	delete(c.node.conns, c.Conn)
	c.node.mu.Unlock()
	return c.Conn.Close()
}

// handleSession serves one session channel: a single "exec" request runs the
// command; the command's context ends when the client closes the channel,
// sends a signal, or the connection drops. "env", "pty-req" and "shell" are
// refused, as the executor never needs them.
func (n *simNode) handleSession(_ *gliderssh.Server, _ *gossh.ServerConn, newChan gossh.NewChannel, connCtx gliderssh.Context) {
	s := n.sim
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = newChan.Reject(gossh.Prohibited, "shutting down")
		return
	}
	s.sessions.Add(1)
	s.mu.Unlock()
	defer s.sessions.Done()

	ch, reqs, err := newChan.Accept()
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(connCtx)
	defer cancel()
	var running sync.WaitGroup
	started := false
	for req := range reqs {
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if started || gossh.Unmarshal(req.Payload, &payload) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			started = true
			_ = req.Reply(true, nil)
			n.record(payload.Command)
			running.Add(1)
			go func() {
				defer running.Done()
				n.running.Add(1)
				code := n.run(ctx, payload.Command, ch, ch.Stderr())
				n.running.Add(-1)
				_, _ = ch.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{uint32(code)}))
				_ = ch.Close()
			}()
		case "signal":
			cancel()
		default:
			_ = req.Reply(false, nil)
		}
	}
	cancel() // the client closed the channel
	running.Wait()
	_ = ch.Close()
}

func (n *simNode) record(command string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ran = append(n.ran, command)
}
