package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/melbahja/goph"
	"golang.org/x/crypto/ssh"
)

// Result is what a command produced on a node.
type Result struct {
	Stdout    string
	Stderr    string
	ExitCode  int // -1 when the command was stopped locally and sent no status
	Truncated bool
	Duration  time.Duration
	TimedOut  bool
}

// Executor runs commands on the configured nodes. It is safe for concurrent use.
type Executor struct {
	cfg   *loaded
	nodes map[string]*node

	closed atomic.Bool

	// localGrace is how long past the remote `timeout` (which kills after
	// another 5s) Run waits before closing the session itself.
	localGrace time.Duration
	// probeIdleAfter: a pooled connection idle this long is probed with a
	// keepalive before use, so a silently dead one is replaced, not waited on.
	probeIdleAfter time.Duration
	// closing is closed by Close; drains tracks sessions closed on a
	// cancel that the node has not acknowledged yet (see drain).
	closing   chan struct{}
	closeOnce sync.Once
	drains    sync.WaitGroup
}

// node is one configured node: its pooled connection and session slots.
type node struct {
	name, addr string
	slots      chan struct{} // semaphore of MaxSessions
	lock       chan struct{} // guards client and lastUsed; a channel so waiting honours ctx

	client   *goph.Client
	lastUsed time.Time
	dials    atomic.Int64 // connections made, for tests and diagnostics
}

// New validates cfg and reads the client key and known_hosts file. It does not
// connect: connections are made on first use.
func New(cfg Config) (*Executor, error) {
	l, err := load(cfg)
	if err != nil {
		return nil, err
	}
	e := &Executor{
		cfg:            l,
		nodes:          make(map[string]*node, len(l.cfg.Nodes)),
		localGrace:     7 * time.Second,
		probeIdleAfter: 30 * time.Second,
		closing:        make(chan struct{}),
	}
	for name, addr := range l.cfg.Nodes {
		e.nodes[name] = &node{
			name:  name,
			addr:  addr,
			slots: make(chan struct{}, l.cfg.MaxSessions),
			lock:  make(chan struct{}, 1),
		}
	}
	return e, nil
}

// Run runs command (a complete shell command line, already approved) on node
// under `sh -c`, and returns its output and exit code. A non-zero exit code is
// not an error; errors mean the command could not be run or its outcome is
// unknown (connection lost, context ended).
//
// timeout <= 0 means DefaultTimeout; longer than MaxTimeout is clamped. The
// remote side kills the command at the timeout (TimedOut, exit code 124); if
// the node does not answer by then the session is closed locally as well.
// When ctx ends, the session is closed at once and ctx's error returned with
// whatever output arrived.
func (e *Executor) Run(ctx context.Context, nodeName, command string, timeout time.Duration) (*Result, error) {
	if e.closed.Load() {
		return nil, errors.New("SSH executor is closed")
	}
	n, ok := e.nodes[nodeName]
	if !ok {
		return nil, fmt.Errorf("unknown node %q: configured nodes are %s", nodeName, strings.Join(e.nodeNames(), ", "))
	}
	timeout = clampTimeout(timeout)

	select {
	case n.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free SSH session on node %s (max %d): %w", n.name, cap(n.slots), ctx.Err())
	}
	slotHandedOff := false
	defer func() {
		if !slotHandedOff {
			<-n.slots
		}
	}()

	client, sess, err := e.openSession(ctx, n)
	if err != nil {
		return nil, err
	}
	defer sess.Close()

	stdout := &cappedBuffer{limit: e.cfg.cfg.OutputCap}
	stderr := &cappedBuffer{limit: e.cfg.cfg.OutputCap}
	sess.Stdout, sess.Stderr = stdout, stderr
	start := time.Now()
	if err := sess.Start(remoteCommand(command, timeout)); err != nil {
		e.drop(n, client)
		return nil, fmt.Errorf("starting command on node %s: %w", n.name, err)
	}

	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	runCtx, cancel := context.WithTimeout(ctx, timeout+e.localGrace)
	defer cancel()
	var waitErr error
	stopped := false // decided once here: a command that finished is never reported as stopped
	select {
	case waitErr = <-done:
	case <-runCtx.Done():
		stopped = true
		_ = sess.Signal(ssh.SIGKILL) // honoured for non-root users only; the remote timeout covers root
		_ = sess.Close()
		// The session slot stays taken until the node confirms the close.
		slotHandedOff = true
		e.drains.Add(1)
		go e.drain(n, client, done, start.Add(timeout+e.localGrace))
	}
	out, outCut := stdout.snapshot()
	errOut, errCut := stderr.snapshot()
	res := &Result{Stdout: out, Stderr: errOut, Truncated: outCut || errCut, Duration: time.Since(start)}
	if stopped {
		res.ExitCode = -1
		if ctx.Err() != nil {
			return res, fmt.Errorf("command on node %s stopped before it finished: %w", n.name, ctx.Err())
		}
		res.TimedOut = true
		return res, nil
	}

	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
		res.ExitCode = 0
	case errors.As(waitErr, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
	case errors.As(waitErr, &missing):
		e.drop(n, client)
		return res, fmt.Errorf("command on node %s ended without an exit status (connection lost?); its outcome is unknown", n.name)
	default:
		e.drop(n, client)
		return res, fmt.Errorf("running command on node %s: %w", n.name, waitErr)
	}
	// coreutils timeout exits 124 when it stopped the command with TERM, and
	// 137 when it had to KILL one that ignored TERM; a command that exits so by
	// itself before the timeout is not a timeout.
	res.TimedOut = (res.ExitCode == 124 || res.ExitCode == 137) && res.Duration >= timeout
	return res, nil
}

// Close closes every pooled connection; commands still running lose their
// session. Run fails after Close.
func (e *Executor) Close() error {
	e.closed.Store(true)
	e.closeOnce.Do(func() { close(e.closing) })
	var errs []error
	for _, n := range e.nodes {
		n.lock <- struct{}{}
		if n.client != nil {
			if err := n.client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("closing connection to node %s: %w", n.name, err))
			}
			n.client = nil
		}
		<-n.lock
	}
	e.drains.Wait() // the connections are closed, so every drain ends now
	return errors.Join(errs...)
}

// remoteCommand wraps command so the node itself enforces the timeout: it is
// sent SIGTERM at the timeout and SIGKILL 5s later. This matters because
// OpenSSH does not deliver signals to root sessions, and closing a session
// does not stop a command that is not writing.
func remoteCommand(command string, timeout time.Duration) string {
	secs := int(math.Ceil(timeout.Seconds()))
	return fmt.Sprintf("timeout -k 5 %d sh -c %s", secs, Quote(command))
}

func clampTimeout(t time.Duration) time.Duration {
	switch {
	case t <= 0:
		return DefaultTimeout
	case t > MaxTimeout:
		return MaxTimeout
	case t < time.Second:
		return time.Second // remote timeout counts whole seconds
	}
	return t
}

// drain waits, off the caller's path, for the node to acknowledge a session
// closed because the caller's context ended, then frees its slot. OpenSSH
// keeps a session open until its command exits, and does not signal root's
// commands, so this can take until the remote timeout kills the command. A
// node that has not answered by the time that kill is due (by) has a stuck
// connection: it is dropped, which ends the wait at once.
func (e *Executor) drain(n *node, client *goph.Client, done <-chan error, by time.Time) {
	defer e.drains.Done()
	defer func() { <-n.slots }()
	overdue := time.NewTimer(time.Until(by))
	defer overdue.Stop()
	select {
	case <-done:
		return
	case <-overdue.C:
		e.drop(n, client)
	case <-e.closing:
	}
	<-done
}

// openSession opens a session on the node's pooled connection, dialling if
// there is none, and redialling once if the pooled one turns out dead.
func (e *Executor) openSession(ctx context.Context, n *node) (*goph.Client, *ssh.Session, error) {
	client, fresh, err := e.connection(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	sess, err := e.newSession(ctx, n, client, !fresh)
	if err == nil {
		return client, sess, nil
	}
	// The node answered and refused the channel (its MaxSessions, say): the
	// connection is alive and other commands may be running on it. Keep it.
	var refused *ssh.OpenChannelError
	if errors.As(err, &refused) {
		return nil, nil, err
	}
	e.drop(n, client)
	if fresh || ctx.Err() != nil {
		return nil, nil, err
	}
	if client, _, err = e.connection(ctx, n); err != nil {
		return nil, nil, err
	}
	if sess, err = e.newSession(ctx, n, client, false); err != nil {
		if !errors.As(err, &refused) {
			e.drop(n, client)
		}
		return nil, nil, err
	}
	return client, sess, nil
}

// connection returns the node's pooled connection, dialling a new one if
// there is none. fresh is true when it was dialled by this call.
func (e *Executor) connection(ctx context.Context, n *node) (client *goph.Client, fresh bool, err error) {
	select {
	case n.lock <- struct{}{}:
		defer func() { <-n.lock }()
	case <-ctx.Done():
		return nil, false, fmt.Errorf("waiting to connect to node %s: %w", n.name, ctx.Err())
	}
	if e.closed.Load() {
		return nil, false, errors.New("SSH executor is closed")
	}
	if n.client != nil {
		return n.client, false, nil
	}
	client, err = e.dial(ctx, n)
	if err != nil {
		return nil, false, err
	}
	n.client, n.lastUsed = client, time.Now()
	n.dials.Add(1)
	return client, true, nil
}

// newSession opens a session channel. If the channel does not open within
// DialTimeout, the connection is taken for dead and closed (x/crypto offers no
// other way to give up on an open). The caller's cancellation alone does not
// close it: other sessions may be running on the same connection, and a live
// peer answers within a round trip anyway. A connection idle longer than
// probeIdleAfter is first probed with a keepalive.
func (e *Executor) newSession(ctx context.Context, n *node, client *goph.Client, reused bool) (*ssh.Session, error) {
	guard, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(guard, func() { _ = client.Close() })
	defer stop()

	n.lock <- struct{}{}
	idle := time.Since(n.lastUsed)
	n.lastUsed = time.Now()
	<-n.lock
	if reused && idle > e.probeIdleAfter {
		// Any reply, even "unsupported request", proves the peer is alive.
		if _, _, err := client.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			return nil, fmt.Errorf("connection to node %s is dead (keepalive failed): %w", n.name, err)
		}
	}
	sess, err := client.NewSession()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("opening SSH session on node %s: %w", n.name, ctx.Err())
		}
		return nil, fmt.Errorf("opening SSH session on node %s: %w", n.name, err)
	}
	return sess, nil
}

// drop closes client and forgets it if it is still the node's pooled one.
func (e *Executor) drop(n *node, client *goph.Client) {
	n.lock <- struct{}{}
	if n.client == client {
		n.client = nil
	}
	<-n.lock
	_ = client.Close()
}

// dial connects and authenticates to a node, accepting only a host key pinned
// in known_hosts.
func (e *Executor) dial(ctx context.Context, n *node) (*goph.Client, error) {
	knownHostsPath := e.cfg.knownHosts
	algos, err := pinnedHostKeyAlgorithms(e.cfg.hostKeys, n.addr)
	if err != nil {
		return nil, fmt.Errorf("looking up host keys of node %s in %s: %w", n.name, knownHostsPath, err)
	}
	if len(algos) == 0 {
		return nil, &HostKeyError{Node: n.name, Addr: n.addr, KnownHostsPath: knownHostsPath}
	}

	dctx, cancel := context.WithTimeout(ctx, e.cfg.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", n.addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to node %s (%s): %w", n.name, n.addr, err)
	}
	// The handshake has no context parameter: bound it by a deadline and by
	// closing the socket if ctx ends first.
	stop := context.AfterFunc(dctx, func() { _ = conn.Close() })
	if dl, ok := dctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, n.addr, &ssh.ClientConfig{
		User:              e.cfg.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(e.cfg.signer)},
		HostKeyCallback:   checkingHostKeys(e.cfg.hostKeys, n.name, n.addr, knownHostsPath),
		HostKeyAlgorithms: algos,
	})
	if !stop() {
		if err == nil {
			_ = sc.Close()
		}
		return nil, fmt.Errorf("SSH handshake with node %s (%s) did not finish: %w", n.name, n.addr, dctx.Err())
	}
	if err != nil {
		_ = conn.Close()
		return nil, explainHandshakeError(n, e.cfg.cfg.User, algos, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &goph.Client{Client: ssh.NewClient(sc, chans, reqs)}, nil
}

func explainHandshakeError(n *node, user string, algos []string, err error) error {
	var hostKeyErr *HostKeyError
	msg := err.Error()
	switch {
	case errors.As(err, &hostKeyErr):
		return hostKeyErr
	case strings.Contains(msg, "unable to authenticate"):
		return fmt.Errorf("node %s (%s) refused our key for user %s: add the client public key to that user's authorized_keys: %w", n.name, n.addr, user, err)
	case strings.Contains(msg, "no common algorithm for host key"):
		return fmt.Errorf("node %s (%s) offers none of the host key types pinned for it (%s): re-check known_hosts against the node: %w", n.name, n.addr, strings.Join(algos, ", "), err)
	}
	return fmt.Errorf("SSH handshake with node %s (%s): %w", n.name, n.addr, err)
}

func (e *Executor) nodeNames() []string {
	names := make([]string, 0, len(e.nodes))
	for name := range e.nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// cappedBuffer keeps the first limit bytes written and discards the rest,
// still accepting them so the remote side never blocks on a full window. It
// is locked because a cancelled Run reads it while the session still drains.
type cappedBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (b *cappedBuffer) snapshot() (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.truncated
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := p
	if room := b.limit - b.buf.Len(); room < len(p) {
		b.truncated = true
		keep = p[:max(room, 0)]
	}
	b.buf.Write(keep)
	return len(p), nil
}
