package sshexec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Why a node check failed, in the words doctor prints first.
const (
	ProblemUnknownHostKey = "host key not pinned"
	ProblemHostKeyChanged = "host key mismatch"
	ProblemAuth           = "login refused"
	ProblemUnreachable    = "unreachable"
	ProblemTimeout        = "timeout"
	ProblemCommand        = "command failed"
	ProblemOther          = "SSH failed"
)

// CheckError is a failed Check: Problem says why in a few words (one of the
// Problem constants), Err the whole story and what to do.
type CheckError struct {
	Node    string
	Addr    string
	Problem string
	Err     error
}

func (e *CheckError) Error() string { return e.Problem + ": " + e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

// Addr returns the host:port configured for a node, "" for an unknown one.
func (e *Executor) Addr(nodeName string) string {
	if n, ok := e.nodes[nodeName]; ok {
		return n.addr
	}
	return ""
}

// Check logs in to a node with the pinned host keys and the client key, and
// runs `true`. It dials a connection of its own, so a pooled connection made
// earlier cannot hide a login that no longer works, and closes it after. The
// error is a *CheckError.
func (e *Executor) Check(ctx context.Context, nodeName string) error {
	n, ok := e.nodes[nodeName]
	if !ok {
		return &CheckError{Node: nodeName, Problem: ProblemOther,
			Err: fmt.Errorf("unknown node %q: configured nodes are %s", nodeName, strings.Join(e.nodeNames(), ", "))}
	}
	fail := func(err error) error {
		return &CheckError{Node: n.name, Addr: n.addr, Problem: checkProblem(err), Err: err}
	}
	client, err := e.dial(ctx, n)
	if err != nil {
		return fail(err)
	}
	defer client.Close()
	// The session and the command get one more dial timeout: a node that logs
	// us in but then hangs is not working either.
	runCtx, cancel := context.WithTimeout(ctx, e.cfg.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(runCtx, func() { _ = client.Close() })
	defer stop()
	sess, err := client.NewSession()
	if err != nil {
		return fail(orDeadline(runCtx, fmt.Errorf("opening an SSH session on node %s: %w", n.name, err)))
	}
	defer sess.Close()
	if out, err := sess.CombinedOutput("true"); err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return &CheckError{Node: n.name, Addr: n.addr, Problem: ProblemCommand,
				Err: fmt.Errorf("`true` exited with %d on node %s (a forced command or a restricted shell for user %s?): %s",
					exit.ExitStatus(), n.name, e.cfg.cfg.User, strings.TrimSpace(string(out)))}
		}
		return fail(orDeadline(runCtx, fmt.Errorf("running `true` on node %s: %w", n.name, err)))
	}
	return nil
}

// orDeadline names the deadline when it is why err happened (the connection
// was closed under the session).
func orDeadline(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// checkProblem sorts a dial or session error into a Problem.
func checkProblem(err error) string {
	var hk *HostKeyError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &hk) && hk.Changed:
		return ProblemHostKeyChanged
	case errors.As(err, &hk):
		return ProblemUnknownHostKey
	case strings.Contains(err.Error(), "unable to authenticate"):
		return ProblemAuth
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return ProblemTimeout
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial"):
		return ProblemUnreachable
	}
	return ProblemOther
}
