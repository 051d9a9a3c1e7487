package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/server/watch"
	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// healthBody is /api/health's answer.
type healthBody struct {
	Status   string          `json:"status"`
	PVEAPI   string          `json:"pve_api"`
	AuditLog string          `json:"audit_log"`
	Problems []watch.Problem `json:"problems"`
}

func (h *webHarness) health() (int, healthBody, string) {
	h.t.Helper()
	resp, err := http.Get(h.ts.URL + "/api/health")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out healthBody
	if err := json.Unmarshal(raw, &out); err != nil {
		h.t.Fatalf("health body %s: %v", raw, err)
	}
	return resp.StatusCode, out, string(raw)
}

const healthSecret = "7f3e9a10-health-secret-never-shown"

// misconfigured returns a client for the Proxmox API served by h, with the
// given pin ("" for none) and the test's token secret.
func misconfigured(t *testing.T, h http.Handler, pinned bool) (*pve.Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pin := ""
	if pinned {
		pin = pve.FingerprintOf(srv.Certificate())
	}
	c, err := pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: srv.URL}}, TokenID: "jarvis@pve!t",
		TokenSecret: healthSecret, Fingerprint: pin, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, srv
}

// A cluster that cannot be read leaves Jarvis alive (200) but degraded, with
// the cause and the fix, and never the token secret.
func TestHealthSaysWhyItIsDegraded(t *testing.T) {
	// A proxy that echoes the request's credentials in its refusal.
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"data":null,"message":"refused `+r.Header.Get("Authorization")+`"}`)
	})
	noPin, noPinSrv := misconfigured(t, http.NotFoundHandler(), false)
	refused, _ := misconfigured(t, echo, true)
	for _, c := range []struct {
		name      string
		ping      func(context.Context) error
		error     []string
		fix       []string
		wordShown string
	}{
		{"no fingerprint", noPin.Ping,
			[]string{"presented a certificate that is not trusted (self-signed)"},
			[]string{"set PVE_TLS_FINGERPRINT=" + pve.FingerprintOf(noPinSrv.Certificate())}, "unreachable"},
		{"token refused", refused.Ping, []string{"401", "refused PVEAPIToken=jarvis@pve!t=[redacted]"}, []string{"PVE_TOKEN_SECRET"}, "unreachable"},
		{"no cluster configured", nil, []string{"no Proxmox API is configured"}, []string{"JARVIS_NODES"}, "unreachable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newWebHarness(t, func(o *Options) { o.PVEPing = c.ping })
			code, out, raw := h.health()
			if code != http.StatusOK || out.Status != "degraded" || out.PVEAPI != c.wordShown || len(out.Problems) != 1 {
				t.Fatalf("health = %d %s", code, raw)
			}
			p := out.Problems[0]
			if p.Dependency != "pve_api" {
				t.Errorf("dependency %q", p.Dependency)
			}
			for _, want := range c.error {
				if !strings.Contains(p.Error, want) {
					t.Errorf("error %q lacks %q", p.Error, want)
				}
			}
			for _, want := range c.fix {
				if !strings.Contains(p.Fix, want) {
					t.Errorf("fix %q lacks %q", p.Fix, want)
				}
			}
			if strings.Contains(raw, healthSecret) {
				t.Errorf("health shows the token secret: %s", raw)
			}
		})
	}
}

// Health pings the API itself, at most once per pveTTL whatever the number of
// probes, and a recovery shows once the answer is older than that.
func TestHealthPingsTheClusterItselfAndReusesTheAnswer(t *testing.T) {
	var pings atomic.Int64
	var fail atomic.Bool
	fail.Store(true)
	ping := func(ctx context.Context) error {
		pings.Add(1)
		if fail.Load() {
			return &pve.APIError{Method: "GET", Path: "/version", Status: 595, Message: "no route"}
		}
		return nil
	}
	h := newWebHarness(t, func(o *Options) { o.PVEPing = ping })
	h.app.pveTTL = time.Hour
	for range 5 {
		if _, out, raw := h.health(); out.Status != "degraded" || !strings.Contains(out.Problems[0].Error, "595") {
			t.Fatalf("health = %s", raw)
		}
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("5 health checks pinged the cluster %d times, want once", n)
	}
	fail.Store(false)
	h.app.pveTTL = 0
	if _, out, raw := h.health(); out.Status != "ok" || out.PVEAPI != "ok" || len(out.Problems) != 0 {
		t.Fatalf("health after recovery = %s", raw)
	}
}

// What the watcher's polls find wrong (a read the token may not make) shows in
// health while it polls, though the ping works.
func TestHealthAddsTheWatchersProblems(t *testing.T) {
	forbidden := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api2/json/version" {
			_, _ = io.WriteString(w, `{"data":{"version":"8.2"}}`)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"data":null,"message":"Permission check failed (/, Sys.Audit)"}`)
	})
	client, _ := misconfigured(t, forbidden, true)
	h := newWebHarness(t)
	w := watch.New(client, h.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.SetIntervals(watch.Intervals{Nodes: 20 * time.Millisecond, Guests: 20 * time.Millisecond, Storage: 20 * time.Millisecond})
	h.app.opts.Watcher, h.app.opts.PVEPing = w, client.Ping
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	if _, out, raw := h.health(); out.Status != "ok" {
		t.Fatalf("nobody follows the feed, the watcher has not looked, the ping works: health = %s", raw)
	}
	w.Acquire()
	defer w.Release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, raw := h.health()
		if out.Status == "degraded" {
			if code != http.StatusOK || out.PVEAPI != "degraded" || len(out.Problems) == 0 ||
				!strings.Contains(out.Problems[0].Error, "403 Permission check failed") || !strings.Contains(out.Problems[0].Fix, "PVEAuditor") {
				t.Fatalf("health = %d %s", code, raw)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher's problem never reached health: %s", raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// No store or no audit log is "down" (503), each named with what to do.
func TestHealthDownNamesTheAuditLog(t *testing.T) {
	h := newWebHarness(t)
	h.wipeAuditLog()
	code, out, raw := h.health()
	if code != http.StatusServiceUnavailable || out.Status != "down" || len(out.Problems) != 1 ||
		out.Problems[0].Dependency != "audit_log" || out.Problems[0].Error == "" || !strings.Contains(out.Problems[0].Fix, "jarvis audit verify") {
		t.Fatalf("health = %d %s", code, raw)
	}
}
