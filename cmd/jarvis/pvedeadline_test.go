package main

import (
	"strings"
	"testing"
	"time"
)

func TestPVEDeadline(t *testing.T) {
	clearEnv(t)
	cfg, err := LoadConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	// Both waits end well before the 60 s after which common MCP clients give
	// up, so the caller hears Jarvis's own answer (an error, an approval id).
	if cfg.PVEDeadline != 30*time.Second || cfg.ApprovalWait != 20*time.Second {
		t.Fatalf("defaults PVE_DEADLINE = %s, JARVIS_APPROVAL_WAIT = %s; want 30s and 20s, below the 60 s client timeout", cfg.PVEDeadline, cfg.ApprovalWait)
	}
	for _, c := range []struct{ deadline, exec, want string }{
		{"0s", "", "PVE_DEADLINE=0s: must be between 1s and 5m"},
		{"10m", "", "PVE_DEADLINE=10m: must be between 1s and 5m"},
		{"2m", "1m", "must be below JARVIS_EXEC_TIMEOUT=1m"},
	} {
		clearEnv(t)
		t.Setenv("PVE_DEADLINE", c.deadline)
		if c.exec != "" {
			t.Setenv("JARVIS_EXEC_TIMEOUT", c.exec)
		}
		if _, err := LoadConfig(true); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PVE_DEADLINE=%s JARVIS_EXEC_TIMEOUT=%s: err = %v, want %q", c.deadline, c.exec, err, c.want)
		}
	}
}
