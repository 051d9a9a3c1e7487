package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

const resourcesPath = "/cluster/resources"

func cacheFor(d time.Duration) func(*pve.Config) {
	return func(c *pve.Config) { c.CacheFor = d }
}

// getVMs dispatches get_vms as every transport does.
func (h *harness) getVMs(t *testing.T) tools.GuestList {
	t.Helper()
	return structured[tools.GuestList](t, h.srv.Dispatch(context.Background(), Call{Principal: operator, Tool: "get_vms", Args: json.RawMessage(`{}`)}))
}

func TestConcurrentGetVMsShareUpstreamReads(t *testing.T) {
	h := newHarnessPVE(t, cacheFor(2*time.Second))
	h.sim.ResetRequests()
	const callers = 100
	var wg sync.WaitGroup
	failures := make(chan string, callers)
	for range callers {
		wg.Go(func() {
			res := h.srv.Dispatch(context.Background(), Call{Principal: operator, Tool: "get_vms", Args: json.RawMessage(`{}`)})
			if res.IsError {
				failures <- textOf(res)
			}
		})
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("get_vms failed: %s", f)
	}
	// One read shares the answer with everyone; a second is allowed for the
	// window running out while 100 audited calls go through on a slow machine.
	if n := h.sim.RequestCount(http.MethodGet, resourcesPath); n > 2 {
		t.Errorf("%d concurrent get_vms made %d upstream reads of %s, want at most 2", callers, n, resourcesPath)
	}
}

// What Jarvis changes is never answered from before the change.
func TestActionsForgetCachedReads(t *testing.T) {
	// A window far longer than the test: every read after an action that goes
	// upstream does so because the action forgot the cache, not because time passed.
	h := newHarnessPVE(t, cacheFor(time.Hour))
	ctx := context.Background()
	upstream := func() int { return h.sim.RequestCount(http.MethodGet, resourcesPath) }
	status := func(l tools.GuestList, vmid int64) string {
		for _, g := range l.Guests {
			if g.VMID == vmid {
				return g.Status
			}
		}
		t.Fatalf("get_vms does not list %d", vmid)
		return ""
	}

	if s := status(h.getVMs(t), 104); s != "stopped" {
		t.Fatalf("104 is %s before the test", s)
	}
	before := upstream()
	h.getVMs(t)
	if n := upstream(); n != before {
		t.Fatalf("a second get_vms made %d upstream reads, want none (served from the cache)", n-before)
	}

	steps := []struct {
		name string
		act  func(t *testing.T)
	}{
		{"YELLOW create_snapshot", func(t *testing.T) {
			out := structured[tools.TaskResult](t, h.call(operator, "create_snapshot", map[string]any{"vmid": 101, "name": "cache_test"}))
			if !out.OK {
				t.Fatalf("create_snapshot: %+v", out)
			}
		}},
		{"RED start_vm, approved", func(t *testing.T) {
			first := refusalOf(t, h.call(agentRed, "start_vm", map[string]any{"vmid": 104}))
			if first.Decision != safety.NeedsApproval {
				t.Fatalf("start_vm: %+v", first)
			}
			if _, err := h.srv.DecideApproval(ctx, first.ApprovalID, true, "operator:test"); err != nil {
				t.Fatal(err)
			}
			out := structured[tools.TaskResult](t, h.call(agentRed, "start_vm", map[string]any{"vmid": 104, "approval_id": first.ApprovalID}))
			if !out.OK {
				t.Fatalf("approved start_vm: %+v", out)
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.act(t)
			before := upstream()
			h.getVMs(t)
			if n := upstream(); n != before+1 {
				t.Errorf("get_vms after %s made %d upstream reads, want 1", s.name, n-before)
			}
		})
	}
	if s := status(h.getVMs(t), 104); s != "running" {
		t.Errorf("get_vms says 104 is %s after it was started", s)
	}
}
