package safety

import (
	"testing"
)

func TestUnitBase(t *testing.T) {
	tests := []struct{ unit, want string }{
		{"docker", "docker"},
		{"Docker", "docker"},
		{"docker.service", "docker"},
		{"DOCKER.SERVICE", "docker"},
		{"docker.socket", "docker"},
		{"docker@x.service", "docker"},
		{"docker@.service", "docker"},
		{"docker@x", "docker"},
		{" docker.timer ", "docker"},
		{"var-lib.mount", "var-lib"},
		{"proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc"},
		{"reboot.target", "reboot"},
		{"user.slice", "user"},
		{"session-1.scope", "session-1"},
		{"dev-sda.device", "dev-sda"},
		{"dev-zram0.swap", "dev-zram0"},
		{"systemd-tmpfiles-clean.path", "systemd-tmpfiles-clean"},
		{"pve-cluster", "pve-cluster"},
		{"docker.service.d", "docker.service.d"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := UnitBase(tc.unit); got != tc.want {
			t.Errorf("UnitBase(%q) = %q, want %q", tc.unit, got, tc.want)
		}
	}
}
