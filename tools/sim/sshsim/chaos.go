package sshsim

import (
	"fmt"
	"time"
)

// Things that happen on a node without anyone asking, for tests and the demo.

// FailService puts a node's unit in the failed state, as a main process that
// exited with an error leaves it, and journals it as systemd does. A unit the
// node does not know yet is added (a service a person installed). The name
// may carry ".service".
func (s *Sim) FailService(node, unit string) error {
	return s.setUnit(node, unit, "failed")
}

// RecoverService makes a node's unit active again, as `systemctl restart`
// would, journalling its start.
func (s *Sim) RecoverService(node, unit string) error {
	return s.setUnit(node, unit, "active")
}

func (s *Sim) setUnit(node, unit, state string) error {
	n := s.nodes[node]
	if n == nil {
		return fmt.Errorf("sshsim: no node %q", node)
	}
	unit = unitName(unit)
	if unit == "" {
		return fmt.Errorf("sshsim: empty unit name")
	}
	if state == "active" {
		n.mu.Lock()
		_, known := n.services[unit]
		n.mu.Unlock()
		if !known {
			return fmt.Errorf("sshsim: node %s has no unit %s.service", node, unit)
		}
		n.changeUnit(unit, "restart")
		return nil
	}
	now := time.Now().UTC()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.services[unit] = state
	n.events = append(n.events,
		journalEntry{now, 4, unit, "systemd", 1, unit + ".service: Main process exited, code=exited, status=1/FAILURE"},
		journalEntry{now, 4, unit, "systemd", 1, unit + ".service: Failed with result 'exit-code'."},
	)
	return nil
}
