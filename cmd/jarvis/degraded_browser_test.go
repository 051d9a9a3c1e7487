package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// TestConsoleShowsWhyTheClusterCannotBeRead starts a real Jarvis (not the demo)
// against a Proxmox API it cannot use, and checks that the console says so, and
// why, instead of a green "live" and an endless "waiting for the first snapshot":
//
//  1. no PVE_TLS_FINGERPRINT for the API's self-signed certificate: a red banner
//     with the certificate's fingerprint and the variable to set; health and
//     `jarvis healthcheck` say degraded with the same cause, and the log has it;
//  2. pinned, but the token is refused: after the restart the banner gives the
//     new cause;
//  3. the token works again: the banner goes, the pill says live, the overview fills.
func TestConsoleShowsWhyTheClusterCannotBeRead(t *testing.T) {
	needBrowser(t)

	// The Proxmox API: the simulator over TLS with a self-signed certificate on
	// 127.0.0.1, refusing every token while deny is set.
	var deny atomic.Bool
	sim := pvesim.New(pvesim.Options{})
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if deny.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(api.Close)
	fingerprint := pve.FingerprintOf(api.Certificate())

	const password = "degraded-test-operator-password"
	port := browserFreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("JARVIS_LISTEN", "127.0.0.1")
	t.Setenv("JARVIS_PASSWORD", password)
	t.Setenv("JWT_SECRET", "degraded-test-jwt-secret-0123456789abcdef")
	t.Setenv("DB_PATH", filepath.Join(t.TempDir(), "jarvis.db"))
	t.Setenv("JARVIS_NODES", "pve="+strings.TrimPrefix(api.URL, "https://"))
	t.Setenv("PVE_TOKEN_ID", pvesim.DemoTokenID)
	t.Setenv("PVE_TOKEN_SECRET", pvesim.DemoTokenSecret)
	t.Setenv("PVE_TLS_FINGERPRINT", "")
	t.Setenv("LOG_LEVEL", "info")

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var logs lockedBuffer
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	server := browserStartJarvis(t, ctx, base, &logs, "serve")
	t.Cleanup(func() {
		server.stop(t)
		if t.Failed() {
			t.Logf("jarvis log:\n%s", logs.String())
		}
	})

	// Health: alive but degraded, with the fingerprint to pin; never the secret.
	res, err := http.Get(base + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(health, []byte(`"status":"degraded"`)) ||
		!bytes.Contains(health, []byte("PVE_TLS_FINGERPRINT="+fingerprint)) || bytes.Contains(health, []byte(pvesim.DemoTokenSecret)) {
		t.Fatalf("/api/health = %d %s", res.StatusCode, health)
	}
	var check bytes.Buffer
	if err := runHealthcheck(ctx, &check); err != nil {
		t.Errorf("healthcheck of a degraded Jarvis failed (Docker would restart it for nothing): %v\n%s", err, check.String())
	}
	if lines := strings.Split(strings.TrimSpace(check.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "degraded") ||
		!strings.HasPrefix(lines[1], "pve_api: ") || !strings.Contains(lines[1], "PVE_TLS_FINGERPRINT="+fingerprint) {
		t.Errorf("healthcheck printed:\n%s", check.String())
	}

	tab, console := startBrowser(t, ctx)
	step := func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(tab, timeout)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(selector string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).textContent`, selector)))
		if err != nil {
			t.Fatalf("reading %s: %v", selector, err)
		}
		return v
	}

	// 1. No fingerprint.
	step("log in", 20*time.Second,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-password")),
		chromedp.SendKeys(chromedp.CSS("#login-password"), password+"\n"),
		chromedp.WaitVisible(chromedp.CSS("#console-view")),
	)
	step("see the banner instead of live", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`#cluster-banner`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="degraded"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('cluster-banner').textContent.includes(%q)`, "PVE_TLS_FINGERPRINT="+fingerprint)),
	)
	if got := text("#cluster-banner-cause"); !strings.Contains(got, "presented a certificate that is not trusted (self-signed)") || !strings.Contains(got, api.URL) {
		t.Errorf("the banner's cause is %q", got)
	}
	if got := text("#conn-text"); got != "cluster unreachable" {
		t.Errorf("the pill says %q", got)
	}
	if got := text("#cluster-updated"); !strings.Contains(got, "cannot read the Proxmox cluster") {
		t.Errorf("the overview says %q while the cluster cannot be read", got)
	}
	// The watcher's system event reaches the feed; it was logged at WARN first.
	step("see the system event", 30*time.Second, chromedp.Poll[chromedp.Void](
		fmt.Sprintf(`[...document.querySelectorAll('[data-testid="feed-item"][data-type="system"]')].some(li => li.textContent.includes('cannot read the Proxmox cluster') && li.textContent.includes(%q))`, fingerprint)))
	if warns := degradedCount(logs.String(), "level=WARN", `msg="cannot read the Proxmox cluster"`, fingerprint); warns != 1 {
		t.Errorf("the log has %d WARN records with the cause, want 1:\n%s", warns, logs.String())
	}
	step("screenshot", 5*time.Second, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	artifacts := filepath.Join(browserRepoRoot(t), "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	browserScreenshot(t, tab, 1280, 900, filepath.Join(artifacts, "console-cluster-unreachable.png"))
	browserScreenshot(t, tab, 390, 844, filepath.Join(artifacts, "console-cluster-unreachable-phone.png"))
	if fits, _ := chromedp.Run(tab, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`)); !fits {
		t.Errorf("at 390 px the banner makes the page scroll sideways")
	}
	step("back to the wide viewport", 5*time.Second, chromedp.EmulateViewport(1280, 900))

	// 2. Pinned now, but the token is refused. The page reconnects by itself.
	server.stop(t)
	t.Setenv("PVE_TLS_FINGERPRINT", fingerprint)
	deny.Store(true)
	server = browserStartJarvis(t, ctx, base, &logs, "serve")
	step("see the new cause", 40*time.Second,
		chromedp.Poll[chromedp.Void](`document.getElementById('cluster-banner-cause').textContent.includes('401')`),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="degraded"]`)),
	)
	if got := text("#cluster-banner-fix"); !strings.Contains(got, "PVE_TOKEN_SECRET") {
		t.Errorf("the banner's fix is %q", got)
	}

	// 3. The token works again: the watcher's next poll clears the banner.
	deny.Store(false)
	step("see the cluster again", 60*time.Second,
		chromedp.WaitNotVisible(chromedp.CSS(`#cluster-banner`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="node"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById('cluster-updated').textContent.startsWith('updated ')`),
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('[data-testid="feed-item"][data-type="system"]')].some(li => li.textContent.includes('can be read again'))`),
	)
	if infos := degradedCount(logs.String(), "level=INFO", `msg="cluster reachable again"`); infos != 1 {
		t.Errorf("the log has %d INFO records of the recovery, want 1", infos)
	}

	for _, m := range console() {
		switch {
		case m.IsException(), m.Type == chromedp.ConsoleError && m.Source != "network":
			t.Errorf("the page logged %s (%s:%d)", m, m.URL, m.Line+1)
		case m.Type == chromedp.ConsoleError && !strings.Contains(m.Text, "401") && !strings.Contains(m.Text, "ERR_CONNECTION_REFUSED"):
			t.Errorf("the page logged %s (%s)", m, m.URL)
		}
	}
}

// degradedCount counts the log lines holding every part.
func degradedCount(log string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}
