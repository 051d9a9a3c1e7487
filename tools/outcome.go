package tools

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// Every write ends in exactly one of three outcomes, never conflated:
//
//   - ok: the task finished OK (the tool returns its result);
//   - failed: PVE refused the request, the request was provably never sent, or
//     the task ended with an error (an ordinary error keeping PVE's words);
//   - unknown: the request may have reached PVE but no answer came, or the task
//     could not be checked to its end (an *OutcomeUnknownError).
//
// Jarvis never retries a write itself, least of all an unknown one.

// OutcomeUnknownError says a write may or may not have happened. Dispatch audits
// it as "unknown" and answers with an error result carrying the whole sentence.
type OutcomeUnknownError struct {
	What  string // what was asked, e.g. "stop of VM 101 'web01'"
	UPID  string // the task id, when PVE gave one
	Why   string // what went wrong, in words
	Check string // one sentence: what to check before retrying
	Cause error
}

func (e *OutcomeUnknownError) Error() string {
	s := "outcome unknown: " + e.Why
	if e.Cause != nil {
		s += fmt.Sprintf(" (%v)", e.Cause)
	}
	return s + ". " + strings.TrimSuffix(e.Check, ".") + "."
}

func (e *OutcomeUnknownError) Unwrap() error { return e.Cause }

// TaskUPID lets the audit log record the task id.
func (e *OutcomeUnknownError) TaskUPID() string { return e.UPID }

// guestWrite names one write to one guest, for outcome sentences.
type guestWrite struct {
	what string // "stop of VM 101 'web01'"
	node string
	vmid int
}

// check is the sentence that says what to look at before retrying.
func (w guestWrite) check(upid string) string {
	if upid != "" {
		return fmt.Sprintf("Before retrying, check get_task_status with upid %s, or get_recent_tasks for node %s, to see whether it happened", upid, w.node)
	}
	return fmt.Sprintf("Before retrying, check get_recent_tasks for node %s (a task for VMID %d) and get_guest_status for VMID %d to see whether it happened", w.node, w.vmid, w.vmid)
}

// sendError turns the error of a write request into its outcome: unknown when
// the request may have reached PVE, otherwise failed — refused by PVE in its own
// words, or not sent at all.
func (w guestWrite) sendError(err error) error {
	if pve.OutcomeUnknown(err) {
		return &OutcomeUnknownError{What: w.what, Check: w.check(""), Cause: err,
			Why: fmt.Sprintf("the %s was sent to Proxmox, but no usable answer came back, so it may or may not have happened", w.what)}
	}
	var unreachable *pve.UnreachableError
	if errors.As(err, &unreachable) {
		return fmt.Errorf("the %s was not sent: %w", w.what, err)
	}
	return fmt.Errorf("Proxmox refused the %s: %w", w.what, err)
}

// waitForTask waits up to max for a task, reporting progress. A task that
// finished OK gives its result; one that ended in error gives a failed error
// with PVE's exit status; one that could not be checked to its end (its status
// unreadable, or still running when the wait ended) gives an
// *OutcomeUnknownError. It never retries the write.
func waitForTask(ctx context.Context, env *Env, upid string, max time.Duration, progress Progress, w guestWrite) (TaskResult, error) {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	res := TaskResult{UPID: upid}
	st, err := env.PVE.WaitTask(wctx, upid, 500*time.Millisecond, func(s pve.TaskStatus) {
		progress(fmt.Sprintf("task %s is %s", s.Type, s.Status), time.Since(start).Seconds(), max.Seconds())
	})
	res.WaitedSeconds = round1(time.Since(start).Seconds())
	var failed *pve.TaskFailedError
	switch {
	case err == nil && st != nil:
		res.Finished, res.OK, res.ExitStatus = true, true, st.ExitStatus
		return res, nil
	case errors.As(err, &failed):
		res.Finished, res.ExitStatus = true, failed.ExitStatus
		return res, &taskFailedError{msg: fmt.Sprintf("Proxmox task %s for the %s failed: %s", upid, w.what, failed.ExitStatus), err: failed}
	case wctx.Err() != nil && st != nil && st.Running():
		return res, &OutcomeUnknownError{What: w.what, UPID: upid, Check: w.check(upid),
			Why: fmt.Sprintf("Proxmox started the %s as task %s, and it was still running when Jarvis stopped waiting after %.0f s", w.what, upid, res.WaitedSeconds)}
	default:
		return res, &OutcomeUnknownError{What: w.what, UPID: upid, Check: w.check(upid), Cause: err,
			Why: fmt.Sprintf("Proxmox started the %s as task %s, but its status could not be read", w.what, upid)}
	}
}

// taskFailedError is a task that ended with an error: the failed outcome, in
// PVE's words. It unwraps to the *pve.TaskFailedError (and its UPID).
type taskFailedError struct {
	msg string
	err *pve.TaskFailedError
}

func (e *taskFailedError) Error() string { return e.msg }
func (e *taskFailedError) Unwrap() error { return e.err }

// sshRunError turns an error of the SSH executor into an outcome. The executor
// returns a result along with its error only once the command has started (the
// connection dropped, the exit status never came, the call's deadline ended):
// a command that changes something then has an unknown outcome. A command that
// never started, or one that only reads, simply failed.
func sshRunError(err error, res *sshexec.Result, changes bool, what, check string) error {
	if res != nil && changes {
		return &OutcomeUnknownError{What: what, Cause: err, Check: check,
			Why: fmt.Sprintf("%s started, but Jarvis lost the session before it finished, so it may or may not have taken effect", what)}
	}
	return fmt.Errorf("%s failed: %w", what, err)
}
