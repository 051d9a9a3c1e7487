package pve

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

const (
	testTokenID   = "jarvis@pve!test"
	testSecret    = "0b7e5c1a-secret-never-printed-4f2d"
	roTokenID     = "auditor@pve!ro"
	roSecret      = "9c1d4e2f-ro-secret-never-printed"
	fastTaskDelay = 40 * time.Millisecond
)

func newSim() *pvesim.Sim {
	return pvesim.New(pvesim.Options{TokenID: testTokenID, TokenSecret: testSecret,
		ReadOnlyTokenID: roTokenID, ReadOnlyTokenSecret: roSecret, TaskDuration: fastTaskDelay})
}

// startSim serves a simulator over plain HTTP on loopback.
func startSim(t *testing.T) (*pvesim.Sim, *httptest.Server) {
	t.Helper()
	sim := newSim()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func newClient(t *testing.T, tokenID, secret string, urls ...string) *Client {
	t.Helper()
	cfg := Config{TokenID: tokenID, TokenSecret: secret, Timeout: 2 * time.Second, AllowHTTP: true}
	for i, u := range urls {
		cfg.Endpoints = append(cfg.Endpoints, Endpoint{Name: "ep" + string(rune('a'+i)), URL: u})
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// closedURL returns an http URL on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestNewListsEveryProblem(t *testing.T) {
	_, err := New(Config{
		Endpoints:   []Endpoint{{Name: "a", URL: "ftp://x"}, {Name: "b", URL: "https://"}},
		TokenID:     "root@pam",
		TokenSecret: "",
		Fingerprint: "not-a-fingerprint",
		CAFile:      filepath.Join(t.TempDir(), "missing.pem"),
	})
	if err == nil {
		t.Fatal("New accepted a broken config")
	}
	for _, want := range []string{"endpoint 1 (a)", "endpoint 2 (b)", "user@realm!tokenid", "token secret is empty", "not a SHA-256 fingerprint", "reading CA file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "no PVE API endpoint") {
		t.Fatalf("empty config error = %v", err)
	}
	_, err = New(Config{Endpoints: []Endpoint{{URL: "https://10.0.0.5:8006/api2/json/"}}, TokenID: testTokenID, TokenSecret: "has space"})
	if err == nil || strings.Contains(err.Error(), "has space") {
		t.Fatalf("whitespace secret: err = %v (must be refused without echoing the secret)", err)
	}
	c, err := New(Config{Endpoints: []Endpoint{{URL: "https://10.0.0.5:8006/api2/json/"}}, TokenID: testTokenID, TokenSecret: testSecret})
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if c.endpoints[0].URL != "https://10.0.0.5:8006/api2/json" || c.endpoints[0].Name != "10.0.0.5" || c.timeout != DefaultTimeout {
		t.Fatalf("normalised endpoint = %+v, timeout %s", c.endpoints[0], c.timeout)
	}
}

func TestConfigStringHidesSecret(t *testing.T) {
	cfg := Config{Endpoints: []Endpoint{{Name: "pve", URL: "https://h:8006"}}, TokenID: testTokenID, TokenSecret: testSecret}
	for _, s := range []string{cfg.String(), cfg.LogValue().String()} {
		if strings.Contains(s, testSecret) || !strings.Contains(s, "redacted") {
			t.Fatalf("config rendering leaks or hides badly: %s", s)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	sim, srv := startSim(t)
	good := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := context.Background()

	cases := []struct {
		name  string
		setup func()
		call  func() error
		check func(error) bool
		want  []string // substrings of Error()
	}{
		{
			name:  "401 wrong secret keeps the reason phrase",
			call:  func() error { return newClient(t, testTokenID, "wrong-secret", srv.URL).Ping(ctx) },
			check: IsUnauthorized,
			want:  []string{"401 authentication failure", "/version"},
		},
		{
			name: "403 keeps the permission text",
			call: func() error {
				_, err := newClient(t, roTokenID, roSecret, srv.URL).GuestAction(ctx, "pve", "qemu", 101, "stop", nil)
				return err
			},
			check: IsForbidden,
			want:  []string{"403 Permission check failed (/vms/101, VM.PowerMgmt)"},
		},
		{
			name:  "400 keeps the errors map",
			call:  func() error { _, err := good.ClusterResources(ctx, "qemu"); return err },
			check: IsBadRequest,
			want:  []string{"400 Parameter verification failed.", "type: value 'qemu' does not have a value in the enumeration 'vm, storage, node, sdn'"},
		},
		{
			name:  "500 missing guest is not-found",
			call:  func() error { _, err := good.GuestStatus(ctx, "pve", "qemu", 999); return err },
			check: IsNotFound,
			want:  []string{"500 Configuration file 'nodes/pve/qemu-server/999.conf' does not exist"},
		},
		{
			name:  "500 injected reason phrase",
			setup: func() { sim.FailNext("/nodes", 500, "got timeout while waiting for pmxcfs") },
			call:  func() error { _, err := good.Nodes(ctx); return err },
			check: func(err error) bool { return !IsNotFound(err) && !IsUnreachable(err) },
			want:  []string{"500 got timeout while waiting for pmxcfs"},
		},
		{
			name:  "595 offline node",
			setup: func() { sim.SetNodeOffline("agent", true) },
			call: func() error {
				defer sim.SetNodeOffline("agent", false)
				_, err := good.NodeStatus(ctx, "agent")
				return err
			},
			check: IsUnreachable,
			want:  []string{"595 No route to host", "/nodes/agent/status"},
		},
		{
			name:  "malformed body names the path",
			setup: func() { sim.MalformNext("/cluster/resources") },
			call:  func() error { _, err := good.ClusterResources(ctx, "vm"); return err },
			check: func(err error) bool { var d *DecodeError; return errors.As(err, &d) },
			want:  []string{"GET /cluster/resources", "not the JSON PVE sends"},
		},
		{
			name:  "guest not found sentinel",
			call:  func() error { _, err := good.FindGuest(ctx, 4242); return err },
			check: func(err error) bool { return errors.Is(err, ErrGuestNotFound) && IsNotFound(err) },
			want:  []string{"VMID 4242"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			err := tc.call()
			if err == nil {
				t.Fatal("call succeeded, want an error")
			}
			if !tc.check(err) {
				t.Fatalf("predicate false for %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), roSecret) {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestTimeoutIsDeadlineError(t *testing.T) {
	sim, srv := startSim(t)
	sim.SetLatency(time.Second)
	c, err := New(Config{Endpoints: []Endpoint{{Name: "slow", URL: srv.URL}}, TokenID: testTokenID, TokenSecret: testSecret, Timeout: 100 * time.Millisecond, AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Ping(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !IsUnreachable(err) {
		t.Fatalf("Ping on a slow server = %v, want a deadline error that is unreachable", err)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Fatalf("timeout took %s, the per-request timeout is 100ms", took)
	}
	// The caller's own deadline is reported as such.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.timeout = 5 * time.Second
	if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping with caller deadline = %v", err)
	}
}

// countingServer wraps a handler and counts requests.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestFailover(t *testing.T) {
	ctx := context.Background()
	t.Run("closed port then live endpoint", func(t *testing.T) {
		_, srv := startSim(t)
		c := newClient(t, testTokenID, testSecret, closedURL(t), srv.URL)
		nodes, err := c.Nodes(ctx)
		if err != nil || len(nodes) != 4 {
			t.Fatalf("Nodes via failover = %d nodes, %v", len(nodes), err)
		}
		if got := c.preferred.Load(); got != 1 {
			t.Fatalf("preferred endpoint = %d, want 1 (the one that answered)", got)
		}
	})
	t.Run("595 fails over and the good endpoint is remembered", func(t *testing.T) {
		bad, badHits := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(596)
			w.Write([]byte(`{"data":null}`))
		}))
		_, good := startSim(t)
		c := newClient(t, testTokenID, testSecret, bad.URL, good.URL)
		for i := 0; i < 3; i++ {
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping %d: %v", i, err)
			}
		}
		if got := badHits.Load(); got != 1 {
			t.Fatalf("bad endpoint hit %d times, want 1 (then the good one is remembered)", got)
		}
	})
	t.Run("a write is retried elsewhere after 595 but never after 596", func(t *testing.T) {
		for _, c := range []struct {
			status    int
			goodCalls int32
		}{{595, 1}, {596, 0}} {
			bad, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				w.Write([]byte(`{"data":null}`))
			}))
			sim := newSim()
			good, goodHits := countingServer(t, sim)
			client := newClient(t, testTokenID, testSecret, bad.URL, good.URL)
			_, err := client.GuestAction(ctx, "pve", "qemu", 101, "reboot", nil)
			if got := goodHits.Load(); got != c.goodCalls {
				t.Errorf("after %d the second endpoint got %d writes, want %d", c.status, got, c.goodCalls)
			}
			if c.status == 596 && err == nil {
				t.Errorf("596 on a write must be reported, not hidden")
			}
		}
	})
	t.Run("plain http is refused unless allowed", func(t *testing.T) {
		_, err := New(Config{Endpoints: []Endpoint{{Name: "pve", URL: "http://10.0.0.5:8006"}}, TokenID: testTokenID, TokenSecret: testSecret})
		if err == nil || !strings.Contains(err.Error(), "https://") {
			t.Fatalf("http endpoint accepted: %v", err)
		}
	})
	t.Run("4xx is an answer, not a failover trigger", func(t *testing.T) {
		sim, first := startSim(t)
		second, secondHits := countingServer(t, newSim())
		_ = sim
		c := newClient(t, testTokenID, "wrong", first.URL, second.URL)
		if err := c.Ping(ctx); !IsUnauthorized(err) {
			t.Fatalf("Ping = %v, want 401", err)
		}
		if secondHits.Load() != 0 {
			t.Fatal("a 401 made the client try the next endpoint")
		}
	})
	t.Run("a write that timed out is not resent elsewhere", func(t *testing.T) {
		slowSim, slow := startSim(t)
		slowSim.SetLatency(time.Second)
		second, secondHits := countingServer(t, newSim())
		c := newClient(t, testTokenID, testSecret, slow.URL, second.URL)
		c.timeout = 100 * time.Millisecond
		_, err := c.GuestAction(ctx, "agent", "qemu", 104, "start", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("GuestAction = %v, want a deadline error", err)
		}
		if secondHits.Load() != 0 {
			t.Fatal("a write that may have reached PVE was sent to a second endpoint")
		}
	})
	t.Run("all endpoints down lists each", func(t *testing.T) {
		c := newClient(t, testTokenID, testSecret, closedURL(t), closedURL(t))
		err := c.Ping(ctx)
		var u *UnreachableError
		if !errors.As(err, &u) || len(u.Attempts) != 2 || !IsUnreachable(err) {
			t.Fatalf("Ping = %v, want UnreachableError with 2 attempts", err)
		}
		if !strings.Contains(err.Error(), "epa") || !strings.Contains(err.Error(), "epb") {
			t.Fatalf("error %q does not name both endpoints", err)
		}
	})
}

func TestTLSFingerprintPinning(t *testing.T) {
	srv := httptest.NewTLSServer(newSim())
	t.Cleanup(srv.Close)
	right := FingerprintOf(srv.Certificate())
	ctx := context.Background()
	mk := func(cfg Config) *Client {
		cfg.Endpoints = []Endpoint{{Name: "tls", URL: srv.URL}}
		cfg.TokenID, cfg.TokenSecret = testTokenID, testSecret
		c, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return c
	}
	wrong := strings.Repeat("AB:", 31) + "AB"

	if err := mk(Config{Fingerprint: right}).Ping(ctx); err != nil {
		t.Fatalf("pinned right fingerprint: %v", err)
	}
	lower := strings.ToLower(strings.ReplaceAll(right, ":", ""))
	if err := mk(Config{Fingerprint: wrong + ", " + lower}).Ping(ctx); err != nil {
		t.Fatalf("pin list with the right one (lower case, no colons): %v", err)
	}
	err := mk(Config{Fingerprint: wrong}).Ping(ctx)
	var mismatch *FingerprintMismatchError
	if !errors.As(err, &mismatch) || mismatch.Got != right || !strings.Contains(err.Error(), "fingerprint mismatch") {
		t.Fatalf("wrong pin: err = %v", err)
	}
	if err := mk(Config{}).Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("no pin, no CA: err = %v, want a certificate error", err)
	}
	if err := mk(Config{Insecure: true}).Ping(ctx); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := mk(Config{CAFile: caFile}).Ping(ctx); err != nil {
		t.Fatalf("CA file: %v", err)
	}
}

// The lead's demo mode: an unstarted server with TLS on 127.0.0.1, pinned.
func TestDemoModeTLSOnLoopback(t *testing.T) {
	srv := httptest.NewUnstartedServer(pvesim.NewDemo())
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert, err := x509.ParseCertificate(srv.TLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Endpoints: []Endpoint{{Name: "demo", URL: srv.URL}}, TokenID: pvesim.DemoTokenID,
		TokenSecret: pvesim.DemoTokenSecret, Fingerprint: FingerprintOf(cert)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.FindGuest(context.Background(), 103)
	if err != nil || g.Node != "agent1" || g.Type != "qemu" || g.Status != "running" {
		t.Fatalf("FindGuest(103) = %+v, %v", g, err)
	}
	c.CloseIdleConnections()
	// PVE's reason phrases survive TLS too.
	bad, err := New(Config{Endpoints: []Endpoint{{Name: "demo", URL: srv.URL}}, TokenID: pvesim.DemoTokenID,
		TokenSecret: "wrong", Fingerprint: FingerprintOf(cert)})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Ping(context.Background()); !IsUnauthorized(err) || !strings.Contains(err.Error(), "authentication failure") {
		t.Fatalf("wrong secret over TLS: %v", err)
	}
}

func TestWaitTask(t *testing.T) {
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := context.Background()

	t.Run("success changes state", func(t *testing.T) {
		upid, err := c.GuestAction(ctx, "agent", "qemu", 104, "start", url.Values{"timeout": {"30"}})
		if err != nil {
			t.Fatal(err)
		}
		var seen []TaskStatus
		st, err := c.WaitTask(ctx, upid, 10*time.Millisecond, func(s TaskStatus) { seen = append(seen, s) })
		if err != nil || st.ExitStatus != "OK" {
			t.Fatalf("WaitTask = %+v, %v", st, err)
		}
		if len(seen) < 2 || !seen[0].Running() || seen[len(seen)-1].Status != "stopped" {
			t.Fatalf("progress saw %+v, want running then stopped", seen)
		}
		if g, _ := sim.Guest(104); g.Status != "running" {
			t.Fatalf("guest 104 is %s after start", g.Status)
		}
		lines, err := c.TaskLog(ctx, "agent", upid, 0, 0)
		if err != nil || len(lines) == 0 || lines[len(lines)-1].T != "TASK OK" || lines[0].N != 1 {
			t.Fatalf("TaskLog = %+v, %v", lines, err)
		}
	})
	t.Run("failure carries the exit status", func(t *testing.T) {
		upid, err := c.GuestAction(ctx, "pve", "qemu", 101, "start", nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.WaitTask(ctx, upid, 10*time.Millisecond, nil)
		var failed *TaskFailedError
		if !errors.As(err, &failed) || failed.ExitStatus != "VM 101 already running" || st == nil || st.Status != "stopped" {
			t.Fatalf("WaitTask = %+v, %v", st, err)
		}
	})
	t.Run("context cancel stops waiting", func(t *testing.T) {
		slow := pvesim.New(pvesim.Options{TokenID: testTokenID, TokenSecret: testSecret, TaskDuration: time.Hour})
		slowSrv := httptest.NewServer(slow)
		defer slowSrv.Close()
		sc := newClient(t, testTokenID, testSecret, slowSrv.URL)
		upid, err := sc.GuestAction(ctx, "agent", "lxc", 203, "start", nil)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		calls := 0
		st, err := sc.WaitTask(cctx, upid, 20*time.Millisecond, func(TaskStatus) { calls++ })
		if !errors.Is(err, context.DeadlineExceeded) || st == nil || !st.Running() || calls == 0 {
			t.Fatalf("WaitTask = %+v, %v after %d progress calls", st, err, calls)
		}
	})
	t.Run("bad upid", func(t *testing.T) {
		if _, err := c.WaitTask(ctx, "nope", time.Millisecond, nil); err == nil {
			t.Fatal("WaitTask accepted a malformed UPID")
		}
	})
}

func TestSnapshotLifecycle(t *testing.T) {
	sim, srv := startSim(t)
	c := newClient(t, testTokenID, testSecret, srv.URL)
	ctx := context.Background()
	wait := func(upid string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitTask(ctx, upid, 10*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	wait(c.CreateSnapshot(ctx, "pve", "qemu", 101, "jarvis-test", "made by a test", true))
	snaps, err := c.Snapshots(ctx, "pve", "qemu", 101)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Snapshot{}
	for _, s := range snaps {
		byName[s.Name] = s
	}
	if s := byName["jarvis-test"]; s.Parent != "before-php84" || !bool(s.VMState) || s.Description != "made by a test" {
		t.Fatalf("new snapshot = %+v", s)
	}
	if byName["current"].Parent != "jarvis-test" || !bool(byName["current"].Running) {
		t.Fatalf("current = %+v", byName["current"])
	}
	wait(c.RollbackSnapshot(ctx, "pve", "qemu", 101, "pre-upgrade"))
	if g, _ := sim.Guest(101); g.Status != "stopped" || g.SnapshotParent != "pre-upgrade" {
		t.Fatalf("after rollback: %+v", g)
	}
	wait(c.DeleteSnapshot(ctx, "pve", "qemu", 101, "jarvis-test"))
	if g, _ := sim.Guest(101); strings.Contains(strings.Join(g.Snapshots, ","), "jarvis-test") {
		t.Fatalf("snapshot still listed: %+v", g.Snapshots)
	}
	if _, err := c.CreateSnapshot(ctx, "pve", "lxc", 201, "x1", "", true); err == nil {
		t.Fatal("RAM-state snapshot of a container accepted")
	}
}

func TestArgumentChecks(t *testing.T) {
	c := newClient(t, testTokenID, testSecret, closedURL(t))
	ctx := context.Background()
	if _, err := c.GuestStatus(ctx, "pve", "vm", 101); err == nil {
		t.Error("kind vm accepted")
	}
	if _, err := c.GuestStatus(ctx, "pve", "qemu", 5); err == nil {
		t.Error("VMID 5 accepted")
	}
	if _, err := c.GuestAction(ctx, "pve", "qemu", 101, "destroy", nil); err == nil {
		t.Error("action destroy accepted")
	}
	if _, err := c.NodeStatus(ctx, ""); err == nil {
		t.Error("empty node accepted")
	}
}

// IsUnauthorized reports a 401: bad or missing token.
func IsUnauthorized(err error) bool {
	s, ok := statusOf(err)
	return ok && s == http.StatusUnauthorized
}

// IsForbidden reports a 403: the token lacks a privilege.
func IsForbidden(err error) bool {
	s, ok := statusOf(err)
	return ok && s == http.StatusForbidden
}
