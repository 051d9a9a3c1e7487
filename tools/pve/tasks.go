package pve

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// UPID is a parsed PVE task id:
// UPID:node:PID(8 hex):PSTART(8 hex):STARTTIME(8 hex):type:id:user:
type UPID struct {
	Raw       string
	Node      string
	PID       int64
	PStart    int64
	StartTime time.Time
	Type      string
	ID        string
	User      string
}

// ParseUPID decodes a task id; pveid.ValidUPID says what one looks like.
func ParseUPID(s string) (UPID, error) {
	if !pveid.ValidUPID(s) {
		return UPID{}, fmt.Errorf("pve: %q is not a task id (UPID:node:pid:pstart:starttime:type:id:user:)", s)
	}
	// No field of a valid UPID holds a ':'.
	f := strings.Split(s, ":")
	pid, _ := strconv.ParseInt(f[2], 16, 64)
	pstart, _ := strconv.ParseInt(f[3], 16, 64)
	start, _ := strconv.ParseInt(f[4], 16, 64)
	return UPID{
		Raw: s, Node: f[1], PID: pid, PStart: pstart, StartTime: time.Unix(start, 0).UTC(),
		Type: f[5], ID: f[6], User: f[7],
	}, nil
}

// ClusterTasks lists recent tasks of every node, newest first.
func (c *Client) ClusterTasks(ctx context.Context) ([]Task, error) {
	var out []Task
	return out, c.do(ctx, http.MethodGet, "/cluster/tasks", nil, list(&out))
}

// TaskStatus reads a task's state.
func (c *Client) TaskStatus(ctx context.Context, node, upid string) (*TaskStatus, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	var out TaskStatus
	if err := c.do(ctx, http.MethodGet, apiPath("nodes", node, "tasks", upid, "status"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TaskLog reads up to limit lines of a task log from line start (0-based);
// limit 0 means PVE's default (50).
func (c *Client) TaskLog(ctx context.Context, node, upid string, start, limit int) ([]TaskLogLine, error) {
	if err := checkNode(node); err != nil {
		return nil, err
	}
	if start < 0 || limit < 0 {
		return nil, fmt.Errorf("pve: task log start %d and limit %d must not be negative", start, limit)
	}
	params := url.Values{}
	if start > 0 {
		params.Set("start", strconv.Itoa(start))
	}
	if limit > 0 {
		params.Set("limit", strconv.Itoa(limit))
	}
	var out []TaskLogLine
	return out, c.do(ctx, http.MethodGet, apiPath("nodes", node, "tasks", upid, "log"), params, list(&out))
}

// maxPollFailures is how many unreachable answers in a row WaitTask sits out
// (a node restarting its API) before giving up.
const maxPollFailures = 3

// firstTaskPoll is the first wait between task polls; it doubles up to the
// caller's interval. Many tasks end within a fraction of a second (a snapshot
// removed, a container started), and a fixed 500 ms poll made every such call
// wait for it (BENCHMARKS.md, the approval round trip).
const firstTaskPoll = 25 * time.Millisecond

// WaitTask polls a task (its node comes from the UPID) until it stops or ctx
// ends, at first every 25 ms, then less often, up to every poll interval,
// calling progress (if not nil) with each status.
// A task that ends other than OK returns its last status and a
// *TaskFailedError carrying PVE's exit status.
func (c *Client) WaitTask(ctx context.Context, upid string, poll time.Duration, progress func(TaskStatus)) (*TaskStatus, error) {
	id, err := ParseUPID(upid)
	if err != nil {
		return nil, err
	}
	if poll <= 0 {
		poll = time.Second
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last *TaskStatus
	failures := 0
	wait := min(firstTaskPoll, poll)
	next := func() time.Duration {
		d := wait
		wait = min(2*wait, poll)
		return d
	}
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("pve: stopped waiting for task %s (it may still be running on node %s): %w", upid, id.Node, ctx.Err())
		case <-timer.C:
		}
		st, err := c.TaskStatus(ctx, id.Node, upid)
		switch {
		case err != nil && ctx.Err() != nil:
			return last, fmt.Errorf("pve: stopped waiting for task %s (it may still be running on node %s): %w", upid, id.Node, ctx.Err())
		case err != nil && IsUnreachable(err) && failures < maxPollFailures:
			failures++
			timer.Reset(poll)
			continue
		case err != nil:
			return last, fmt.Errorf("pve: reading status of task %s: %w", upid, err)
		}
		failures = 0
		last = st
		if progress != nil {
			progress(*st)
		}
		if !st.Running() {
			if st.Succeeded() {
				return st, nil
			}
			return st, &TaskFailedError{UPID: upid, ExitStatus: st.ExitStatus}
		}
		timer.Reset(next())
	}
}
