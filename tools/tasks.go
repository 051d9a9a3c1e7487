package tools

// GREEN reads of Proxmox tasks: the recent ones, and one by its UPID.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// ---- get_recent_tasks ----

type TasksInput struct {
	Limit      int    `json:"limit,omitempty" jsonschema:"how many tasks, newest first (1-500, default 20)"`
	Node       string `json:"node,omitempty" jsonschema:"only tasks of this node"`
	FailedOnly bool   `json:"failed_only,omitempty" jsonschema:"only tasks that ended with an error"`
}

type TaskOut struct {
	UPID            string `json:"upid" jsonschema:"task id; pass it to get_task_status"`
	Node            string `json:"node"`
	Type            string `json:"type" jsonschema:"qmstart, qmshutdown, vzdump (backup), …"`
	ID              string `json:"id" jsonschema:"object the task worked on, usually a VMID"`
	User            string `json:"user"`
	Running         bool   `json:"running"`
	OK              bool   `json:"ok" jsonschema:"finished successfully"`
	Status          string `json:"status" jsonschema:"PVE's exit status: OK, or the error text; empty while running"`
	StartTime       string `json:"start_time" jsonschema:"RFC 3339, UTC"`
	EndTime         string `json:"end_time,omitempty"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
}

type TaskList struct {
	Tasks []TaskOut `json:"tasks"`
}

func getRecentTasks() *Tool {
	return define[TasksInput, TaskList](spec{
		name: "get_recent_tasks", title: "Recent tasks", tier: safety.Green,
		description: "Recent cluster tasks (backups, starts, migrations…), newest first, with success or PVE's error text and duration in seconds.",
		adjust: func(s *jsonschema.Schema) {
			rangeSchema(property(s, "limit"), 1, 500)
			nodeSchema(property(s, "node"))
		},
	}, func(ctx context.Context, env *Env, in TasksInput) (*Call, error) {
		if in.Limit == 0 {
			in.Limit = 20
		}
		if err := checkOptionalNode(in.Node); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node}, "List recent tasks", func(ctx context.Context) (any, error) {
			tasks, err := env.PVE.ClusterTasks(ctx)
			if err != nil {
				return nil, err
			}
			sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].StartTime > tasks[j].StartTime })
			out := TaskList{Tasks: []TaskOut{}}
			for _, t := range tasks {
				if len(out.Tasks) >= in.Limit {
					break
				}
				if in.Node != "" && t.Node != in.Node {
					continue
				}
				to := taskOut(t)
				if in.FailedOnly && (to.Running || to.OK) {
					continue
				}
				out.Tasks = append(out.Tasks, to)
			}
			if len(out.Tasks) == 0 {
				if err := unknownFilterNode(ctx, env, in.Node); err != nil {
					return nil, err
				}
			}
			return out, nil
		}), nil
	})
}

func taskOut(t pve.Task) TaskOut {
	running := t.EndTime == 0 && t.Status == ""
	ok := !running && (t.Status == "OK" || strings.HasPrefix(t.Status, "WARNINGS"))
	to := TaskOut{UPID: t.UPID, Node: t.Node, Type: t.Type, ID: t.ID, User: t.User, Running: running, OK: ok,
		Status: t.Status, StartTime: unixTime(int64(t.StartTime)), EndTime: unixTime(int64(t.EndTime))}
	if t.EndTime > 0 && t.EndTime >= t.StartTime {
		to.DurationSeconds = int64(t.EndTime - t.StartTime)
	}
	return to
}

// ---- get_task_status ----

type TaskStatusInput struct {
	UPID        string `json:"upid" jsonschema:"task id as returned by a lifecycle tool or get_recent_tasks"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds (0-300) for the task to finish, with progress notifications"`
}

type TaskStatusOut struct {
	TaskOut
	Log []string `json:"log" jsonschema:"the last lines of the task log (up to 20)"`
}

func getTaskStatus() *Tool {
	return define[TaskStatusInput, TaskStatusOut](spec{
		name: "get_task_status", title: "Task status", tier: safety.Green,
		description: "State of one task by its UPID: running or finished, OK or PVE's error text, duration in seconds and the last log lines. Can wait up to 300 s for it to finish.",
		adjust: func(s *jsonschema.Schema) {
			p := property(s, "upid")
			p.Pattern = `^UPID:[a-zA-Z0-9-]+:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:[0-9A-Fa-f]{8}:[^:\s]+:[^:\s]*:[^:\s]+:$`
			p.MaxLength = ptr(512)
			rangeSchema(property(s, "wait_seconds"), 0, 300)
		},
	}, func(ctx context.Context, env *Env, in TaskStatusInput) (*Call, error) {
		id, err := pve.ParseUPID(in.UPID)
		if err != nil {
			return nil, inputErrorf("%v", err)
		}
		return &Call{Target: safety.Target{Node: id.Node}, Effect: "Read task " + in.UPID,
			Run: func(ctx context.Context, progress Progress) (any, error) {
				var st *pve.TaskStatus
				if in.WaitSeconds > 0 {
					wctx, cancel := context.WithTimeout(ctx, time.Duration(in.WaitSeconds)*time.Second)
					defer cancel()
					start := time.Now()
					st, err = env.PVE.WaitTask(wctx, in.UPID, time.Second, func(s pve.TaskStatus) {
						progress(fmt.Sprintf("task %s: %s", s.Type, s.Status), time.Since(start).Seconds(), float64(in.WaitSeconds))
					})
					var failed *pve.TaskFailedError
					if err != nil && !errors.As(err, &failed) && wctx.Err() == nil {
						return nil, err
					}
				}
				if st == nil || st.Running() {
					st, err = env.PVE.TaskStatus(ctx, id.Node, in.UPID)
					if err != nil {
						return nil, nodeError(ctx, env, id.Node, err)
					}
				}
				return taskStatusOut(ctx, env.PVE, id, st), nil
			}}, nil
	})
}

func taskStatusOut(ctx context.Context, c *pve.Client, id pve.UPID, st *pve.TaskStatus) TaskStatusOut {
	t := pve.Task{UPID: id.Raw, Node: id.Node, Type: id.Type, ID: id.ID, User: id.User, Status: st.ExitStatus, StartTime: st.StartTime}
	to := taskOut(t)
	to.Running = st.Running()
	to.OK = st.Succeeded()
	if !to.Running {
		to.Status = st.ExitStatus
	} else {
		to.Status = ""
		to.EndTime = ""
	}
	out := TaskStatusOut{TaskOut: to, Log: []string{}}
	if lines, err := c.TaskLog(ctx, id.Node, id.Raw, 0, 500); err == nil {
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		for _, l := range lines {
			out.Log = append(out.Log, l.T)
		}
	}
	return out
}
