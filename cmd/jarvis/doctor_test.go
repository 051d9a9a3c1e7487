package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// doctor runs the real (non-demo) start-up path: configuration, a pinned TLS
// connection to the cluster API with an API token, the database and the audit log.
func TestDoctorAgainstAClusterAPI(t *testing.T) {
	sim := pvesim.New(pvesim.Options{TokenID: "jarvis@pve!mcp", TokenSecret: "11111111-2222-3333-4444-555555555555"})
	ts := httptest.NewTLSServer(sim)
	defer ts.Close()
	hostPort := strings.TrimPrefix(ts.URL, "https://")
	setup := func(secret, fingerprint string) {
		clearEnv(t)
		t.Setenv("JWT_SECRET", strings.Repeat("d", 40))
		t.Setenv("JARVIS_PASSWORD", "doctor-password-1")
		t.Setenv("DB_PATH", filepath.Join(t.TempDir(), "jarvis.db"))
		t.Setenv("JARVIS_NODES", "pve="+hostPort)
		t.Setenv("PVE_TOKEN_ID", "jarvis@pve!mcp")
		t.Setenv("PVE_TOKEN_SECRET", secret)
		t.Setenv("PVE_TLS_FINGERPRINT", fingerprint)
	}
	good := pve.FingerprintOf(ts.Certificate())

	setup("11111111-2222-3333-4444-555555555555", good)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"doctor"}, &out, &out); err != nil {
		t.Fatalf("doctor: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "11111111-2222") {
		t.Error("doctor printed the token secret")
	}
	for _, want := range []string{"config: ok", "proxmox api: ok", "audit log: ok", "ssh: not configured"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out.String())
		}
	}

	for _, c := range []struct{ secret, fingerprint, want string }{
		{"wrong-secret", good, "401"},
		{"11111111-2222-3333-4444-555555555555", strings.Repeat("AB:", 31) + "AB", "fingerprint"},
	} {
		setup(c.secret, c.fingerprint)
		out.Reset()
		if err := run(context.Background(), []string{"doctor"}, &out, &out); err == nil {
			t.Errorf("doctor passed with %s", c.want)
		}
		if !strings.Contains(out.String(), "proxmox api: FAIL") || !strings.Contains(strings.ToLower(out.String()), c.want) {
			t.Errorf("doctor output for %s:\n%s", c.want, out.String())
		}
		if strings.Contains(out.String(), c.secret) {
			t.Errorf("doctor printed the token secret")
		}
	}
}
