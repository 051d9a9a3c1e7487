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
	if cfg.PVEDeadline != 30*time.Second || cfg.PVEDeadline >= cfg.ApprovalWait || cfg.PVEDeadline >= 60*time.Second {
		t.Fatalf("default PVE_DEADLINE = %s, want 30s: below the approval wait (%s) and the 60 s client timeout", cfg.PVEDeadline, cfg.ApprovalWait)
	}
	for _, c := range []struct{ deadline, exec, want string }{
		{"0s", "", "PVE_DEADLINE=0s: must be between 1s and 5m"},
		{"10m", "", "PVE_DEADLINE=10m0s: must be between 1s and 5m"},
		{"2m", "1m", "must be below JARVIS_EXEC_TIMEOUT=1m0s"},
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
