package pvesim

import (
	"fmt"
	"strings"
)

// Things that happen to a cluster without anyone asking, for tests and the
// demo: what the API shows afterwards is all a reader can go by.

// CrashGuest stops a running guest the way a crash looks from the API — a
// QEMU process killed by the kernel's OOM killer or a segfault, a container
// whose init died: the guest reads stopped with uptime 0 and no process, and
// no task is recorded (qmeventd's cleanup after a dead QEMU is no worker task
// either). A lock the guest holds stays, as it does on a real node. It fails
// for an unknown guest and for one that is not running.
func (s *Sim) CrashGuest(vmid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	g, ok := s.guests[vmid]
	if !ok {
		return fmt.Errorf("pvesim: no guest %d", vmid)
	}
	if g.status != "running" {
		return fmt.Errorf("pvesim: guest %d is %s: only a running guest can crash", vmid, g.status)
	}
	g.setStatus("stopped", s.now())
	return nil
}

// ShutdownGuestAsRoot shuts a running guest down as `qm shutdown` or
// `pct shutdown` typed in a node's shell would: the same worker as the API's,
// recorded as root@pam's task, the guest stopped when it ends. It returns the
// task's UPID.
func (s *Sim) ShutdownGuestAsRoot(vmid int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	g, ok := s.guests[vmid]
	if !ok {
		return "", fmt.Errorf("pvesim: no guest %d", vmid)
	}
	if s.offline[g.node] {
		return "", fmt.Errorf("pvesim: node %s of guest %d is offline", g.node, vmid)
	}
	t, refused := s.powerTask(g, s.node(g.node), "shutdown", "root@pam", nil)
	if refused != nil {
		return "", fmt.Errorf("pvesim: %s", strings.TrimSpace(refused.reason))
	}
	return t.upid, nil
}

// seesAllTasks reports whether token may list every user's tasks on node
// ("" for the whole cluster): PVE shows the others only with Sys.Audit on /
// (GET /cluster/tasks) or on /nodes/{node} (GET /nodes/{node}/tasks); without
// it a token sees the tasks it started itself.
func (s *Sim) seesAllTasks(token, node string) bool {
	if node == "" {
		return s.held(token, "/", "Sys.Audit")
	}
	return s.held(token, "/nodes/"+node, "Sys.Audit")
}
