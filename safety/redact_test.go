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
