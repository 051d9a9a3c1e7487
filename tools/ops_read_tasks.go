package tools

// get_task_log: the lines of one task's log, its tail or its beginning.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

const (
	defaultTaskLogLines = 50
	maxTaskLogLines     = 500
)

type TaskLogInput struct {
	UPID      string `json:"upid" jsonschema:"task id, from get_recent_tasks or a tool that started the task"`
	Lines     int    `json:"lines,omitempty" jsonschema:"how many lines, 1-500 (default 50)"`
	FromStart bool   `json:"from_start,omitempty" jsonschema:"the first lines instead of the last"`
}

type TaskLogOut struct {
	UPID            string   `json:"upid"`
	Node            string   `json:"node"`
	Type            string   `json:"type" jsonschema:"qmstart, vzdump (backup), qmigrate, …"`
	Status          string   `json:"status" jsonschema:"running or stopped"`
	ExitStatus      string   `json:"exit_status,omitempty" jsonschema:"once stopped: OK, or PVE's error text"`
	TotalLines      int      `json:"total_lines"`
	FirstLineNumber int      `json:"first_line_number" jsonschema:"number of the first line returned, counting from 1"`
	Lines           []string `json:"lines"`
	Truncated       bool     `json:"truncated" jsonschema:"the log has lines not returned"`
	Note            string   `json:"note,omitempty"`
}

func getTaskLog() *Tool {
	return define[TaskLogInput, TaskLogOut](spec{
		name: "get_task_log", title: "Task log", tier: safety.Green,
		description: "The log of one task by UPID: its last lines (or first, with from_start), up to 500, with the task's state and how many lines the log has.",
		adjust: func(s *jsonschema.Schema) {
			p := property(s, "upid")
			p.Pattern = pveid.UPIDPattern
			p.MaxLength = ptr(512)
			rangeSchema(property(s, "lines"), 1, maxTaskLogLines)
		},
	}, func(ctx context.Context, env *Env, in TaskLogInput) (*Call, error) {
		id, err := pve.ParseUPID(in.UPID)
		if err != nil {
			return nil, inputErrorf("%v", err)
		}
		if in.Lines == 0 {
			in.Lines = defaultTaskLogLines
		}
		if in.Lines < 1 || in.Lines > maxTaskLogLines {
			return nil, inputErrorf("lines %d is out of range: 1-%d", in.Lines, maxTaskLogLines)
		}
		which := "last"
		if in.FromStart {
			which = "first"
		}
		effect := fmt.Sprintf("Read the %s %d lines of the log of task %s on node %s", which, in.Lines, in.UPID, id.Node)
		return read(safety.Target{Node: id.Node}, effect, func(ctx context.Context) (any, error) {
			// The state first: the log read after it is at least as new.
			st, err := env.PVE.TaskStatus(ctx, id.Node, in.UPID)
			if err != nil {
				return nil, taskError(ctx, env, id, err)
			}
			w, err := env.PVE.TaskLogWindow(ctx, id.Node, in.UPID, in.Lines, in.FromStart)
			if err != nil {
				return nil, taskError(ctx, env, id, err)
			}
			return taskLogOut(id, st, w), nil
		}), nil
	})
}

func taskLogOut(id pve.UPID, st *pve.TaskStatus, w *pve.TaskLogWindow) TaskLogOut {
	out := TaskLogOut{UPID: id.Raw, Node: id.Node, Type: orWord(st.Type, id.Type), Status: st.Status,
		TotalLines: w.Total, Lines: []string{}}
	if !st.Running() {
		out.ExitStatus = st.ExitStatus
	}
	for _, l := range w.Lines {
		out.Lines = append(out.Lines, l.T)
	}
	if len(w.Lines) > 0 {
		out.FirstLineNumber = int(w.Lines[0].N)
	}
	out.Truncated = w.Total > len(out.Lines) || w.Incomplete
	if w.Incomplete {
		out.Note = fmt.Sprintf("the log has more than %d lines; Jarvis read that many", w.Total)
	}
	return out
}

// taskError says what PVE's refusal to read a task means.
func taskError(ctx context.Context, env *Env, id pve.UPID, err error) error {
	var apiErr *pve.APIError
	if errors.As(err, &apiErr) && apiErr.Status == 400 && strings.Contains(apiErr.Errors["upid"], "no such task") {
		return inputErrorf("node %s has no task %s (see get_recent_tasks): %v", id.Node, id.Raw, err)
	}
	return nodeError(ctx, env, id.Node, err)
}
