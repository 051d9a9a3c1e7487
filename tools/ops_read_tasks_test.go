package tools

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

func TestGetTaskLog(t *testing.T) {
	env, sim := readEnv(t, nil, nil)
	ctx := context.Background()
	tasks, err := env.PVE.ClusterTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var backup, failed string
	for _, tk := range tasks {
		switch {
		case tk.Type == "vzdump" && tk.Node == "pve" && backup == "":
			backup = tk.UPID
		case tk.Type == "qmstart" && tk.Status != "OK" && failed == "":
			failed = tk.UPID
		}
	}
	// node pve's nightly backup: VMs 101, 102 and container 201, two lines each, and two more.
	all := []string{"INFO: Starting Backup of VM 101 (qemu)", "INFO: Finished Backup of VM 101 (00:01:37)",
		"INFO: Starting Backup of VM 102 (qemu)", "INFO: Finished Backup of VM 102 (00:01:37)",
		"INFO: Starting Backup of VM 201 (lxc)", "INFO: Finished Backup of VM 201 (00:01:37)",
		"INFO: Backup job finished successfully", "TASK OK"}
	for _, c := range []struct {
		name      string
		args      map[string]any
		first     int
		lines     []string
		truncated bool
	}{
		{"the tail", map[string]any{"upid": backup, "lines": 3}, 6, all[5:], true},
		{"the beginning", map[string]any{"upid": backup, "lines": 3, "from_start": true}, 1, all[:3], true},
		{"the whole log", map[string]any{"upid": backup}, 1, all, false},
		{"exactly the whole log", map[string]any{"upid": backup, "lines": 8, "from_start": true}, 1, all, false},
	} {
		got, js := readInto[TaskLogOut](t, env, "get_task_log", c.args)
		if got.FirstLineNumber != c.first || !reflect.DeepEqual(got.Lines, c.lines) || got.Truncated != c.truncated ||
			got.TotalLines != 8 || got.Status != "stopped" || got.ExitStatus != "OK" || got.Type != "vzdump" || got.Node != "pve" {
			t.Errorf("%s: %s", c.name, js)
		}
	}
	got, _ := readInto[TaskLogOut](t, env, "get_task_log", map[string]any{"upid": failed, "lines": 1})
	if got.ExitStatus != "start failed: QEMU exited with code 1" || got.Lines[0] != "TASK ERROR: start failed: QEMU exited with code 1" || got.FirstLineNumber != 2 {
		t.Errorf("failed task: %+v", got)
	}

	for _, c := range []struct {
		upid  string
		words []string
	}{
		{"UPID:pve:00000001:00000001:00000001:qmstart:101:root@pam:", []string{"node pve has no task", "get_recent_tasks", "no such task"}},
		{"UPID:nosuch:00000001:00000001:00000001:qmstart:101:root@pam:", []string{`no node "nosuch"`}},
		{"not-a-upid", []string{"upid"}},
	} {
		_, err := runRead(t, env, "get_task_log", map[string]any{"upid": c.upid})
		errorSays(t, c.upid, err, c.words...)
	}
	sim.SetNodeOffline("pve", true)
	_, err = runRead(t, env, "get_task_log", map[string]any{"upid": backup})
	errorSays(t, "node down", err, "node pve is offline or unreachable")
}

// A task still running says so, and has no exit status yet.
func TestGetTaskLogOfARunningTask(t *testing.T) {
	sim := pvesim.New(pvesim.Options{TokenID: opsReadTokenID, TokenSecret: opsReadSecret, TaskDuration: time.Minute})
	env := serveEnv(t, sim, nil)
	upid, err := env.PVE.GuestAction(context.Background(), "agent", "qemu", 104, "start", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, js := readInto[TaskLogOut](t, env, "get_task_log", map[string]any{"upid": upid})
	if got.Status != "running" || got.ExitStatus != "" || got.Type != "qmstart" || got.TotalLines != 1 || got.Lines[0] != "no content" {
		t.Errorf("running task: %s", js)
	}
}
