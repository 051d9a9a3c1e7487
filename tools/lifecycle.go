package tools

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
)

type GuestActionInput struct {
	VMID int `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
}

type ShutdownInput struct {
	VMID           int  `json:"vmid" jsonschema:"the guest's numeric id; Jarvis finds its node"`
	TimeoutSeconds int  `json:"timeout_seconds,omitempty" jsonschema:"how long the guest OS gets to shut down (10-600 s, default 120)"`
	ForceStop      bool `json:"force_stop,omitempty" jsonschema:"hard-stop the guest if it has not shut down by then"`
}

// TaskResult is what every state-changing tool returns.
type TaskResult struct {
	UPID          string  `json:"upid" jsonschema:"the Proxmox task id"`
	Node          string  `json:"node"`
	VMID          int64   `json:"vmid"`
	Kind          string  `json:"kind" jsonschema:"qemu or lxc"`
	Action        string  `json:"action"`
	Finished      bool    `json:"finished" jsonschema:"false when the task was still running when Jarvis stopped waiting"`
	OK            bool    `json:"ok" jsonschema:"the task finished with exit status OK"`
	ExitStatus    string  `json:"exit_status" jsonschema:"PVE's exit status: OK or the error text"`
	GuestStatus   string  `json:"guest_status,omitempty" jsonschema:"the guest's state after the task"`
	WaitedSeconds float64 `json:"waited_seconds"`
}

// TaskUPID lets the audit log record the task id.
func (r TaskResult) TaskUPID() string { return r.UPID }

// lifecycle describes one power action.
type lifecycle struct {
	name, title, action, kind string
	// needs is the state the guest must be in; anything else is a no-op or impossible.
	needs       string
	description string
	effect      func(noun, node string, in ShutdownInput) string
}

func lifecycleTools() []*Tool {
	var out []*Tool
	for _, k := range []struct{ kind, noun, short string }{{"qemu", "VM", "vm"}, {"lxc", "container", "container"}} {
		k := k
		specs := []lifecycle{
			{name: "start_" + k.short, title: "Start " + k.noun, action: "start", kind: k.kind, needs: "stopped",
				description: fmt.Sprintf("Start a stopped %s by VMID. Needs a person's approval. Waits up to 120 s for the start task and reports PVE's exit status.", k.noun),
				effect: func(noun, node string, _ ShutdownInput) string {
					return fmt.Sprintf("Start stopped %s on node %s", noun, node)
				}},
			{name: "stop_" + k.short, title: "Stop " + k.noun + " (hard)", action: "stop", kind: k.kind, needs: "running",
				description: fmt.Sprintf("Hard-stop a running %s by VMID, like pulling the power cord: the guest OS does not shut down cleanly. Prefer shutdown_%s. Needs a person's approval.", k.noun, k.short),
				effect: func(noun, node string, _ ShutdownInput) string {
					return fmt.Sprintf("Hard stop of running %s on node %s; the guest OS will not shut down cleanly and unsaved data may be lost", noun, node)
				}},
			{name: "shutdown_" + k.short, title: "Shut down " + k.noun, action: "shutdown", kind: k.kind, needs: "running",
				description: fmt.Sprintf("Gracefully shut down a running %s by VMID (the guest OS shuts down itself), waiting timeout_seconds (default 120), optionally hard-stopping it after. Needs a person's approval.", k.noun),
				effect: func(noun, node string, in ShutdownInput) string {
					s := fmt.Sprintf("Graceful shutdown of running %s on node %s, waiting up to %d s", noun, node, in.TimeoutSeconds)
					if in.ForceStop {
						s += ", then a hard stop if it is still running"
					}
					return s
				}},
			{name: "restart_" + k.short, title: "Restart " + k.noun, action: "reboot", kind: k.kind, needs: "running",
				description: fmt.Sprintf("Reboot a running %s by VMID (clean reboot through the guest OS). Its services are down until it is back. Needs a person's approval.", k.noun),
				effect: func(noun, node string, _ ShutdownInput) string {
					return fmt.Sprintf("Reboot of running %s on node %s; its services will be unavailable until it is back", noun, node)
				}},
		}
		for _, l := range specs {
			if l.action == "shutdown" {
				out = append(out, l.shutdownTool())
			} else {
				out = append(out, l.tool())
			}
		}
	}
	return out
}

func (l lifecycle) tool() *Tool {
	return define[GuestActionInput, TaskResult](spec{
		name: l.name, title: l.title, tier: safety.Red, description: l.description,
		adjust: func(s *jsonschema.Schema) { vmidSchema(property(s, "vmid")) },
	}, func(ctx context.Context, env *Env, in GuestActionInput) (*Call, error) {
		return l.prepare(ctx, env, ShutdownInput{VMID: in.VMID})
	})
}

func (l lifecycle) shutdownTool() *Tool {
	return define[ShutdownInput, TaskResult](spec{
		name: l.name, title: l.title, tier: safety.Red, description: l.description,
		adjust: func(s *jsonschema.Schema) {
			vmidSchema(property(s, "vmid"))
			rangeSchema(property(s, "timeout_seconds"), 10, 600)
		},
	}, func(ctx context.Context, env *Env, in ShutdownInput) (*Call, error) {
		if in.TimeoutSeconds == 0 {
			in.TimeoutSeconds = 120
		}
		return l.prepare(ctx, env, in)
	})
}

// prepare resolves the guest, refuses wrong kinds and no-ops before anyone is
// asked, and returns the call.
func (l lifecycle) prepare(ctx context.Context, env *Env, in ShutdownInput) (*Call, error) {
	r, err := resolveGuest(ctx, env, in.VMID)
	if err != nil {
		return nil, err
	}
	noun := guestNoun(r)
	if r.Type != l.kind {
		other := map[string]string{"qemu": "vm", "lxc": "container"}[r.Type]
		return nil, inputErrorf("VMID %d is a %s, not a %s: use %s_%s", in.VMID, kindWord(r.Type), kindWord(l.kind), l.action2verb(), other)
	}
	if bool(r.Template) {
		return nil, inputErrorf("%s is a template; templates cannot be started or stopped", noun)
	}
	if r.Status != l.needs {
		switch {
		case l.action == "start" && r.Status == "running":
			return nil, inputErrorf("%s is already running; nothing to do", noun)
		case l.needs == "running" && r.Status == "stopped":
			return nil, inputErrorf("%s is already stopped; nothing to do", noun)
		default:
			return nil, inputErrorf("%s is %s; %s needs it %s", noun, r.Status, l.name, l.needs)
		}
	}
	params := url.Values{}
	wait := 120 * time.Second
	if l.action == "shutdown" {
		params.Set("timeout", strconv.Itoa(in.TimeoutSeconds))
		if in.ForceStop {
			params.Set("forceStop", "1")
		}
		wait = time.Duration(in.TimeoutSeconds+30) * time.Second
	}
	return &Call{
		Target: guestTarget(r),
		Effect: l.effect(noun, r.Node, in),
		Run: func(ctx context.Context, progress Progress) (any, error) {
			w := guestWrite{what: l.action + " of " + noun, node: r.Node, vmid: in.VMID}
			upid, err := env.PVE.GuestAction(ctx, r.Node, r.Type, in.VMID, l.action, params)
			if err != nil {
				return nil, w.sendError(err)
			}
			res, err := waitForTask(ctx, env, upid, wait, progress, w)
			if err != nil {
				return nil, err
			}
			res.Node, res.VMID, res.Kind, res.Action = r.Node, int64(in.VMID), r.Type, l.action
			if st, err := env.PVE.GuestStatus(ctx, r.Node, r.Type, in.VMID); err == nil {
				res.GuestStatus = st.Status
			}
			return res, nil
		},
	}, nil
}

func (l lifecycle) action2verb() string {
	return map[string]string{"start": "start", "stop": "stop", "shutdown": "shutdown", "reboot": "restart"}[l.action]
}
