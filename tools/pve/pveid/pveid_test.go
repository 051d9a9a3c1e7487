package pveid

import (
	"strconv"
	"strings"
	"testing"
)

func TestNodeName(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"pve", true}, {"agent1", true}, {"pve-2", true}, {strings.Repeat("a", MaxNodeNameLen), true},
		{"", false}, {"a b", false}, {"pve;reboot", false}, {"pve.lan", false}, {strings.Repeat("a", MaxNodeNameLen+1), false},
	} {
		if got := ValidNodeName(c.in); got != c.ok {
			t.Errorf("ValidNodeName(%q) = %t, want %t", c.in, got, c.ok)
		}
	}
}

func TestVMID(t *testing.T) {
	for _, c := range []struct {
		in int
		ok bool
	}{{100, true}, {101, true}, {999999999, true}, {99, false}, {0, false}, {-1, false}, {1000000000, false}} {
		if got := ValidVMID(c.in); got != c.ok {
			t.Errorf("ValidVMID(%d) = %t, want %t", c.in, got, c.ok)
		}
	}
	if n := len(strconv.Itoa(MaxVMID)); n != MaxVMIDDigits {
		t.Errorf("MaxVMID has %d digits, MaxVMIDDigits says %d", n, MaxVMIDDigits)
	}
}

func TestUPID(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"UPID:pve:000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam:", true},
		{"UPID:agent1:0002F393:0A54A1E2F:6745C2D1:vzdump::jarvis@pve!mcp:", true}, // 9-digit pstart, empty id
		{"UPID:pve-2:000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam:", true},
		{"UPID:pve:000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam", false}, // no trailing colon
		{"UPID:pve:2F393:0354A1E2:6745C2D1:qmstart:101:root@pam:", false},   // short pid
		{"UPID:-pve:000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam:", false},
		{"UPID:pve-:000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam:", false},
		{"UPID::000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam:", false},
		{"UPID:pve:000B2F5A:0354A1E2:6745C2D1:qm start:101:root@pam:", false},
		{"task-42", false}, {"", false},
	} {
		if got := ValidUPID(c.in); got != c.ok {
			t.Errorf("ValidUPID(%q) = %t, want %t", c.in, got, c.ok)
		}
	}
}
