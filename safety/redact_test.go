package safety

import (
	"reflect"
	"testing"
)

func TestRedactArgs(t *testing.T) {
	in := map[string]any{
		"node":       "pve",
		"password":   "hunter2",
		"API_Token":  "abc",
		"sshkeys":    "ssh-ed25519 AAAA",
		"passphrase": 42,
		"nested":     map[string]any{"client_secret": "x", "name": "ok"},
		"list":       []any{map[string]any{"private_key": "k"}, "plain"},
		"headers":    map[string]string{"X-Auth-Token": "t", "Accept": "json"},
	}
	want := map[string]any{
		"node":       "pve",
		"password":   Redacted,
		"API_Token":  Redacted,
		"sshkeys":    Redacted,
		"passphrase": Redacted,
		"nested":     map[string]any{"client_secret": Redacted, "name": "ok"},
		"list":       []any{map[string]any{"private_key": Redacted}, "plain"},
		"headers":    map[string]any{"X-Auth-Token": Redacted, "Accept": "json"},
	}
	got := RedactArgs(in)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RedactArgs =\n%v\nwant\n%v", got, want)
	}
	if in["password"] != "hunter2" || in["nested"].(map[string]any)["client_secret"] != "x" {
		t.Error("RedactArgs modified its input")
	}
	if RedactArgs(nil) != nil {
		t.Error("RedactArgs(nil) != nil")
	}
}

func TestRedactCommand(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"mysql --password=hunter2 -e 'select 1'", "mysql --password=[redacted] -e 'select 1'"},
		{"tool --api-key abc123 list", "tool --api-key [redacted] list"},
		{"curl https://bob:s3cret@host/x", "curl https://bob:[redacted]@host/x"},
		{"PGPASSWORD=hunter2 psql", "PGPASSWORD=[redacted] psql"},
		{"tool --token 'a b c'", "tool --token [redacted]"},
		{"systemctl status pveproxy", "systemctl status pveproxy"},
		{"journalctl -u pveproxy -n 20", "journalctl -u pveproxy -n 20"},
	} {
		if got := RedactCommand(c.in); got != c.want {
			t.Errorf("RedactCommand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	args := RedactArgs(map[string]any{"command": "mysql --password=hunter2", "node": "pve"})
	if args["command"] != "mysql --password=[redacted]" || args["node"] != "pve" {
		t.Errorf("RedactArgs = %v", args)
	}
}

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://cdimage.debian.org/debian-cd/current/amd64/iso-cd/debian-13.2.0-amd64-netinst.iso", "https://cdimage.debian.org/debian-cd/current/amd64/iso-cd/debian-13.2.0-amd64-netinst.iso"},
		{"https://mirror.example/x.iso?version=13&arch=amd64", "https://mirror.example/x.iso?version=13&arch=amd64"},
		{"https://b.s3.example/x.iso?X-Amz-Credential=AKIA%2F20261206&X-Amz-Signature=abcdef&X-Amz-Expires=600",
			"https://b.s3.example/x.iso?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Expires=600"},
		{"https://dl.example/x.iso?token=s3cr3t#frag", "https://dl.example/x.iso?token=[redacted]#frag"},
		{"https://dl.example/x.iso?a=1&api_key=k1&sig=zz", "https://dl.example/x.iso?a=1&api_key=[redacted]&sig=[redacted]"},
		{"https://bob:hunter2@dl.example/x.iso", "https://bob:[redacted]@dl.example/x.iso"},
	} {
		if got := RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Any argument holding a URL is redacted in audit rows, whatever its name.
	args := RedactArgs(map[string]any{"url": "https://dl.example/x.iso?token=s3cr3t", "storage": "local"})
	if args["url"] != "https://dl.example/x.iso?token=[redacted]" || args["storage"] != "local" {
		t.Errorf("RedactArgs = %v", args)
	}
	if got := RedactCommand("curl -o x.iso 'https://dl.example/x.iso?token=s3cr3t'"); got != "curl -o x.iso 'https://dl.example/x.iso?token=[redacted]'" {
		t.Errorf("RedactCommand = %q", got)
	}
}
