package sshsim

import (
	"testing"
	"time"
)

// The wants were read from procps-ng 4.0.2's `uptime -p` with each uptime
// bind-mounted over /proc/uptime.
func TestPrettyUptimeAsProcps(t *testing.T) {
	tests := []struct {
		secs int
		want string
	}{
		{30, "up 0 minutes"},
		{60, "up 1 minute"},
		{3600, "up 1 hour, 0 minutes"},
		{3660, "up 1 hour, 1 minute"},
		{32430, "up 9 hours, 0 minutes"},
		{86400, "up 1 day, 0 minutes"},
		{90000, "up 1 day, 1 hour, 0 minutes"},
		{604860, "up 1 week, 1 minute"},
		{608400, "up 1 week, 1 hour, 0 minutes"},
	}
	for _, tt := range tests {
		if got := prettyUptime(time.Duration(tt.secs) * time.Second); got != tt.want {
			t.Errorf("prettyUptime(%ds) = %q, want %q", tt.secs, got, tt.want)
		}
	}
}
