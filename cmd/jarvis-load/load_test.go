package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The tool against the real binary with small numbers: every call answered,
// every field of the summary filled. Nothing here is about speed.
func TestLoadAgainstTheDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the jarvis binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads memory from /proc")
	}
	bin := filepath.Join(t.TempDir(), "jarvis")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/jarvis-homelab/jarvis/cmd/jarvis").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg, err := parseFlags([]string{"-jarvis", bin, "-calls", "200", "-sessions", "10", "-concurrency", "5", "-agents", "2", "-idle", "100ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	s, err := run(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	l := s.Load
	if l.Calls != 200 || l.OK != 200 || l.Errors != 0 || l.CloseErrors != 0 || len(l.ErrorKinds) != 0 {
		t.Fatalf("calls %d ok %d errors %d close errors %d: %+v", l.Calls, l.OK, l.Errors, l.CloseErrors, l.ErrorKinds)
	}
	if l.Sessions != 10 || l.Agents != 2 || l.Concurrency != 5 || l.Tool != "get_vms" || l.Closed || l.Protocol != legacyProtocol {
		t.Errorf("load settings: %+v", l)
	}
	if !(l.P50MS > 0 && l.P50MS <= l.P90MS && l.P90MS <= l.P99MS && l.P99MS <= l.MaxMS) || l.CallsPerSec <= 0 || l.OpenP50MS <= 0 {
		t.Errorf("latencies out of order or missing: %+v", l)
	}
	if l.ServerCPUS <= 0 || l.ClientCPUS <= 0 {
		t.Errorf("CPU seconds: server %v, tool %v", l.ServerCPUS, l.ClientCPUS)
	}
	if s.StartupMS <= 0 || s.StartupMS < s.HealthMS || s.TokenMS <= 0 || s.Tools == 0 || s.StopMS <= 0 || s.PID == 0 {
		t.Errorf("start-up fields: %+v", s)
	}
	for name, m := range map[string]Memory{"idle": s.Idle, "after": s.After} {
		if m.RSSKiB <= 0 || m.HWMKiB < m.RSSKiB {
			t.Errorf("%s memory: %+v", name, m)
		}
	}
	if s.Machine.CPUs < 1 || s.Machine.OS == "" || !strings.HasPrefix(s.Command, "jarvis-load -jarvis ") {
		t.Errorf("machine or command: %+v %q", s.Machine, s.Command)
	}
	if _, ok := s.Skipped["settled"]; !ok {
		t.Error("-settle 0 should be reported as skipped")
	}

	var text bytes.Buffer
	if err := writeSummary(&text, s, false); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"command", "machine", "startup_ms", "token_ms", "idle_rss_mib", "calls", "calls_per_second",
		"latency_ms", "session_open_ms", "cpu_s", "after_rss_mib", "settled_rss_mib", "stop_ms"} {
		if !strings.Contains(text.String(), "\n"+key+" ") {
			t.Errorf("summary has no %s line:\n%s", key, text.String())
		}
	}
	if !strings.Contains(text.String(), "200 (ok 200, errors 0)") {
		t.Errorf("summary calls line:\n%s", text.String())
	}
	var js bytes.Buffer
	if err := writeSummary(&js, s, true); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Load.Calls != 200 || back.Idle.RSSKiB != s.Idle.RSSKiB {
		t.Errorf("JSON summary: %v %+v", err, back.Load)
	}
}

// A wrong binary path or flag combination is refused with what to do, and a
// token never reaches the summary.
func TestFailuresSayWhatToFix(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "give -jarvis PATH"},
		{[]string{"-url", "http://127.0.0.1:4000"}, "-url needs -token"},
		{[]string{"-jarvis", "/x", "-url", "http://127.0.0.1:4000"}, "not both"},
		{[]string{"-jarvis", "/x", "-calls", "0"}, "at least 1"},
		{[]string{"-jarvis", "/x", "-env", "NOEQUALS"}, "KEY=VALUE"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	for args, want := range map[string]string{
		"-url http://127.0.0.1:4000 -token eyJ.secret.x -pid 7": "jarvis-load -url http://127.0.0.1:4000 -token REDACTED -pid 7",
		"-token=eyJ.secret.x -args {\"a\":1}":                   `jarvis-load -token=REDACTED -args "{\"a\":1}"`,
	} {
		if got := commandLine(strings.Fields(args)); got != want {
			t.Errorf("commandLine(%s) = %s, want %s", args, got, want)
		}
	}
	cfg, err := parseFlags([]string{"-jarvis", filepath.Join(t.TempDir(), "missing")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(context.Background(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), "does not exist: build it with `go build -o") {
		t.Errorf("missing binary: %v", err)
	}
}

// The goroutine count comes from /metrics where the server has one; its
// absence or a refused token is said, not guessed around.
func TestGoroutinesFromMetrics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer operator" {
			http.Error(w, "agent tokens cannot use the operator API", http.StatusForbidden)
			return
		}
		io.WriteString(w, "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_threads 9\n")
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	ctx := context.Background()
	if n, err := goroutines(ctx, http.DefaultTransport, ts.URL, "operator"); err != nil || n != 42 {
		t.Errorf("goroutines = %d, %v; want 42", n, err)
	}
	if _, err := goroutines(ctx, http.DefaultTransport, ts.URL, "agent"); err == nil || !strings.Contains(err.Error(), "needs an operator token") {
		t.Errorf("agent token: %v", err)
	}
	bare := httptest.NewServer(http.NotFoundHandler())
	defer bare.Close()
	if _, err := goroutines(ctx, http.DefaultTransport, bare.URL, "operator"); err == nil || !strings.Contains(err.Error(), "no /metrics") {
		t.Errorf("no /metrics: %v", err)
	}
}
