package tools

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

const (
	outcomeTokenID = "jarvis@pve!outcome"
	outcomeSecret  = "7d1e0c55-outcome-test-secret"
)

// outcomeEnv is a tool environment on a simulated cluster over loopback HTTP.
func outcomeEnv(t *testing.T, taskDuration time.Duration) (*Env, *pvesim.Sim) {
	t.Helper()
	sim := pvesim.New(pvesim.Options{TokenID: outcomeTokenID, TokenSecret: outcomeSecret, TaskDuration: taskDuration})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.ClearFaults(); srv.Close() })
	client, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: srv.URL}}, AllowHTTP: true,
		TokenID: outcomeTokenID, TokenSecret: outcomeSecret, Timeout: 300 * time.Millisecond, Deadline: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &Env{PVE: client}, sim
}

// prepared validates and resolves a call, as dispatch does before it runs it.
func prepared(t *testing.T, env *Env, tool string, args map[string]any) *Call {
	t.Helper()
	for _, tl := range Catalogue() {
		if tl.Name == tool {
			raw, _ := json.Marshal(args)
			call, err := prepareRaw(context.Background(), tl, env, raw)
			if err != nil {
				t.Fatalf("preparing %s: %v", tool, err)
			}
			return call
		}
	}
	t.Fatalf("no tool %s", tool)
	return nil
}

func noProgress(string, float64, float64) {}

func unknownOf(t *testing.T, err error) *OutcomeUnknownError {
	t.Helper()
	var unk *OutcomeUnknownError
	if !errors.As(err, &unk) {
		t.Fatalf("err = %v, want an unknown outcome", err)
	}
	t.Log(err)
	for _, wrong := range []string{"not accepted", "refused", "was not sent", "still running; check"} {
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("unknown outcome %q says %q", err, wrong)
		}
	}
	if !strings.Contains(err.Error(), "Before retrying, check") {
		t.Errorf("unknown outcome %q does not say what to check before retrying", err)
	}
	return unk
}

// The task was started, but its status could not be read: unknown, with the UPID.
func TestTaskStatusFailureIsUnknown(t *testing.T) {
	statusPath := "/nodes/pve/tasks/"
	for _, tc := range []struct {
		name   string
		inject func(*pvesim.Sim)
		words  string // PVE's words (or the transport's) kept in the cause
	}{
		{"401", func(s *pvesim.Sim) { s.FailNext(statusPath, 401, "authentication failure") }, "401 authentication failure"},
		{"403", func(s *pvesim.Sim) {
			s.FailNext(statusPath, 403, "Permission check failed (/nodes/pve, Sys.Audit)")
		}, "Permission check failed (/nodes/pve, Sys.Audit)"},
		{"500", func(s *pvesim.Sim) { s.FailNext(statusPath, 500, "got timeout while waiting for pmxcfs") }, "got timeout while waiting for pmxcfs"},
		{"bad JSON", func(s *pvesim.Sim) { s.MalformNext(statusPath) }, "not the JSON PVE sends"},
		{"reset", func(s *pvesim.Sim) { s.InjectFault(http.MethodGet, statusPath, pvesim.FaultReset, 0) }, "no Proxmox API endpoint answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, sim := outcomeEnv(t, 50*time.Millisecond)
			call := prepared(t, env, "stop_vm", map[string]any{"vmid": 101})
			tc.inject(sim)
			out, err := call.Run(context.Background(), noProgress)
			if out != nil {
				t.Fatalf("Run returned a result %+v with an unchecked task", out)
			}
			unk := unknownOf(t, err)
			if !strings.HasPrefix(unk.UPID, "UPID:pve:") || !strings.Contains(err.Error(), unk.UPID) {
				t.Fatalf("unknown outcome %q lacks the task id (UPID %q)", err, unk.UPID)
			}
			if !strings.Contains(err.Error(), tc.words) {
				t.Errorf("unknown outcome %q lost the real error %q", err, tc.words)
			}
		})
	}
}

// The stop reached PVE, but its answer was lost: unknown, never "not accepted".
func TestLostWriteAnswerIsUnknown(t *testing.T) {
	for _, f := range []pvesim.Fault{pvesim.FaultReset, pvesim.FaultTruncate, pvesim.FaultHangAfter} {
		t.Run(f.String(), func(t *testing.T) {
			env, sim := outcomeEnv(t, 50*time.Millisecond)
			call := prepared(t, env, "stop_vm", map[string]any{"vmid": 101})
			sim.InjectFault(http.MethodPost, "/nodes/pve/qemu/101/status/stop", f, 0)
			_, err := call.Run(context.Background(), noProgress)
			unk := unknownOf(t, err)
			if unk.UPID != "" || !strings.Contains(err.Error(), "get_recent_tasks for node pve") {
				t.Errorf("unknown outcome %q should point at get_recent_tasks for node pve", err)
			}
			posts := 0
			for _, r := range sim.Requests() {
				if r.Method == http.MethodPost {
					posts++
				}
			}
			if posts != 1 {
				t.Fatalf("the stop was sent %d times; a write is never retried", posts)
			}
		})
	}
	t.Run("snapshot", func(t *testing.T) {
		env, sim := outcomeEnv(t, 50*time.Millisecond)
		call := prepared(t, env, "create_snapshot", map[string]any{"vmid": 101, "name": "before_upgrade"})
		sim.InjectFault(http.MethodPost, "/nodes/pve/qemu/101/snapshot", pvesim.FaultReset, 0)
		_, err := call.Run(context.Background(), noProgress)
		unknownOf(t, err)
	})
}

func TestFailedWritesKeepPVEsWords(t *testing.T) {
	t.Run("PVE refuses the POST", func(t *testing.T) {
		env, sim := outcomeEnv(t, 50*time.Millisecond)
		call := prepared(t, env, "stop_vm", map[string]any{"vmid": 101})
		sim.FailNext("/nodes/pve/qemu/101/status/stop", 500, "VM 101 is locked (backup)")
		_, err := call.Run(context.Background(), noProgress)
		var unk *OutcomeUnknownError
		if err == nil || errors.As(err, &unk) || !strings.Contains(err.Error(), "VM 101 is locked (backup)") || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("refused stop = %v, want failed with PVE's words", err)
		}
	})
	t.Run("the task ends with an error", func(t *testing.T) {
		env, sim := outcomeEnv(t, 50*time.Millisecond)
		call := prepared(t, env, "start_vm", map[string]any{"vmid": 104})
		if err := sim.SetGuestStatus(104, "running"); err != nil { // someone else started it meanwhile
			t.Fatal(err)
		}
		_, err := call.Run(context.Background(), noProgress)
		var unk *OutcomeUnknownError
		var failed *pve.TaskFailedError
		if err == nil || errors.As(err, &unk) || !errors.As(err, &failed) || !strings.Contains(err.Error(), "already running") {
			t.Fatalf("failed task = %v, want failed with PVE's exit status", err)
		}
	})
	t.Run("never sent", func(t *testing.T) {
		env, _ := outcomeEnv(t, 50*time.Millisecond)
		call := prepared(t, env, "stop_vm", map[string]any{"vmid": 101})
		dead, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "dead", URL: "http://127.0.0.1:1"}}, AllowHTTP: true,
			TokenID: outcomeTokenID, TokenSecret: outcomeSecret})
		if err != nil {
			t.Fatal(err)
		}
		env.PVE = dead // the cluster goes away between preparing and running
		_, err = call.Run(context.Background(), noProgress)
		var unk *OutcomeUnknownError
		if err == nil || errors.As(err, &unk) || !strings.Contains(err.Error(), "was not sent") {
			t.Fatalf("stop with no endpoint reachable = %v, want failed: not sent", err)
		}
	})
}

func TestTaskStillRunningWhenTheWaitEndsIsUnknown(t *testing.T) {
	env, _ := outcomeEnv(t, time.Hour)
	call := prepared(t, env, "stop_vm", map[string]any{"vmid": 101})
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	_, err := call.Run(ctx, noProgress)
	unk := unknownOf(t, err)
	if unk.UPID == "" || !strings.Contains(err.Error(), "still running when Jarvis stopped waiting") {
		t.Fatalf("unfinished task = %v, want unknown saying it was still running", err)
	}
}

func TestWriteOK(t *testing.T) {
	env, sim := outcomeEnv(t, 50*time.Millisecond)
	out, err := prepared(t, env, "stop_vm", map[string]any{"vmid": 101}).Run(context.Background(), noProgress)
	res, ok := out.(TaskResult)
	if err != nil || !ok || !res.OK || !res.Finished || res.ExitStatus != "OK" {
		t.Fatalf("stop = %+v, %v", out, err)
	}
	if g, _ := sim.Guest(101); g.Status != "stopped" {
		t.Fatalf("guest is %s after an ok stop", g.Status)
	}
}

// prepareRaw takes raw arguments through the steps dispatch takes before it
// asks safety: parse, decode, prepare.
func prepareRaw(ctx context.Context, tl *Tool, env *Env, raw json.RawMessage) (*Call, error) {
	args, err := ParseArgs(raw)
	if err != nil {
		return nil, err
	}
	in, err := tl.Decode(args)
	if err != nil {
		return nil, err
	}
	return tl.Prepare(ctx, env, in)
}
