package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// healthcheck keeps Docker's liveness meaning (0 while Jarvis serves, degraded
// included; 1 when it is down or silent) and prints each problem on its line.
func TestHealthcheckPrintsProblemsAndKeepsLiveness(t *testing.T) {
	const degraded = `{"status":"degraded","version":"1.2.3","uptime_seconds":130,"store":"ok","audit_log":"ok","pve_api":"unreachable",
		"problems":[{"dependency":"pve_api","error":"the Proxmox API at https://10.0.0.5:8006 presented a certificate that is not trusted (self-signed)",
		"fix":"set PVE_TLS_FINGERPRINT=AB:CD"},{"dependency":"pve_api","error":"GET /cluster/resources: 403 Permission check failed\n(/, Sys.Audit)"}]}`
	for _, c := range []struct {
		name   string
		status int
		body   string // "" for nothing listening
		ok     bool
		lines  []string
	}{
		{"ok", 200, `{"status":"ok","version":"1.2.3","uptime_seconds":5,"problems":[]}`, true, []string{"ok (Jarvis 1.2.3, up 5s)"}},
		{"degraded", 200, degraded, true, []string{
			"degraded (Jarvis 1.2.3, up 2m10s)",
			"pve_api: the Proxmox API at https://10.0.0.5:8006 presented a certificate that is not trusted (self-signed) — to fix: set PVE_TLS_FINGERPRINT=AB:CD",
			"pve_api: GET /cluster/resources: 403 Permission check failed (/, Sys.Audit)",
		}},
		{"down", 503, `{"status":"down","version":"1.2.3","uptime_seconds":5,"problems":[{"dependency":"audit_log","error":"the audit log is empty","fix":"run jarvis audit verify"}]}`,
			false, []string{"down (Jarvis 1.2.3, up 5s)", "audit_log: the audit log is empty — to fix: run jarvis audit verify"}},
		{"not Jarvis", 200, `<html>hello</html>`, false, []string{"<html>hello</html>"}},
		{"nothing listens", 0, "", false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			if c.body == "" {
				ln.Close()
			} else {
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/api/health" {
						http.NotFound(w, r)
						return
					}
					w.WriteHeader(c.status)
					_, _ = io.WriteString(w, c.body)
				}))
				srv.Listener.Close()
				srv.Listener = ln
				srv.Start()
				t.Cleanup(srv.Close)
			}
			t.Setenv("PORT", strconv.Itoa(port))
			var out bytes.Buffer
			err = runHealthcheck(context.Background(), &out)
			if (err == nil) != c.ok {
				t.Errorf("error = %v, want ok=%t", err, c.ok)
			}
			got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if len(c.lines) == 0 {
				got = nil
				if out.Len() > 0 {
					got = []string{out.String()}
				}
			}
			if strings.Join(got, "\n") != strings.Join(c.lines, "\n") {
				t.Errorf("printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.lines, "\n"))
			}
		})
	}
}
