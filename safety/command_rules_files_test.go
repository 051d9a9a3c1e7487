package safety

import (
	"testing"
)

func TestSecretPath(t *testing.T) {
	for _, p := range []string{"/etc/shadow", "/etc//gshadow", "/root/.ssh/authorized_keys", "/home/bob/.ssh", "/srv/x/id_rsa.bak",
		"/etc/pve/priv/token.cfg", "/proc/42/environ", "/etc/ssh/ssh_host_rsa_key", "/tmp/server.pem", ".ssh/config", "../x",
		"/proc/self/cwd", "/proc/1/root/x", "/x/proc/2/fd/1", "/etc/ceph/ceph.client.admin.keyring", "/etc/wireguard/wg0.conf",
		"/opt/jarvis/.env", "/app/prod.env", "/etc/postfix/sasl_passwd", "--file=/etc/shadow", "-nf/etc/shadow", "-f.pgpass"} {
		if _, why := secretArgument(p); why == "" {
			t.Errorf("secretArgument(%q) = not secret, want secret", p)
		}
	}
	for _, p := range []string{"/etc/hostname", "/var/log/syslog", "/proc/loadavg", "/etc/ssh/sshd_config", "/etc/ssh/ssh_host_rsa_key.pub", "-n", "20", "/proc/1/status",
		"/proc/self/status", "/etc/environment", "/etc/pve/storage.cfg", "/var/log/env.log", "-n20"} {
		if _, why := secretArgument(p); why != "" {
			t.Errorf("secretArgument(%q) = %s, want not secret", p, why)
		}
	}
}
