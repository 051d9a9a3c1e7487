package pve

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

// hangingServer accepts requests on loopback and never answers them (a hung
// node), counting what reached it.
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv, &n
}

func TestDeadlineAcrossHangingEndpoints(t *testing.T) {
	var urls []string
	var hits []*atomic.Int32
	for i := 0; i < 4; i++ {
		srv, n := hangingServer(t)
		urls = append(urls, srv.URL)
		hits = append(hits, n)
	}
	cfg := Config{TokenID: testTokenID, TokenSecret: testSecret, AllowHTTP: true,
		Timeout: 2 * time.Second, Deadline: 500 * time.Millisecond, SkipFor: time.Minute}
	for i, u := range urls {
		cfg.Endpoints = append(cfg.Endpoints, Endpoint{Name: "ep" + string(rune('a'+i)), URL: u})
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Old behaviour: 4 × PVE_TIMEOUT (8 s here) before any answer.
	start := time.Now()
	err = c.Ping(ctx)
	took := time.Since(start)
	var u *UnreachableError
	if !errors.As(err, &u) || u.Deadline != 500*time.Millisecond || !IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping on four hung endpoints = %v, want Jarvis's own deadline error", err)
	}
	if took > 5*time.Second {
		t.Fatalf("Ping took %s; the deadline for one call is 500ms", took)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "within 500ms") || !strings.Contains(err.Error(), "epa") {
		t.Errorf("error %q does not say the deadline and the endpoints", err)
	}
	if hits[0].Load() != 1 || len(u.NotTried) != 3 {
		t.Fatalf("first call: epa hit %d times, not tried %v; want epa tried and the deadline to cut the rest", hits[0].Load(), u.NotTried)
	}

	// Each next call skips what just hung and tries one it has not tried yet
	// (the old client tried the hung endpoints again, in the same order).
	for call := 2; call <= 4; call++ {
		err = c.Ping(ctx)
		t.Log(err)
		if !errors.As(err, &u) || len(u.Skipped) != call-1 || !strings.Contains(err.Error(), "skipped") {
			t.Fatalf("call %d = %v, want %d skipped endpoints named", call, err, call-1)
		}
		for i, n := range hits {
			want := int32(0)
			if i < call {
				want = 1
			}
			if n.Load() != want {
				t.Fatalf("after call %d endpoint %d got %d requests, want %d", call, i, n.Load(), want)
			}
		}
	}

	// All of them hung moments ago: a call still tries, least recently failed first.
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded against hung endpoints")
	}
	if hits[0].Load() != 2 || hits[1].Load() != 1 {
		t.Errorf("with every endpoint marked, want the least recently failed (epa) tried; hits a=%d b=%d", hits[0].Load(), hits[1].Load())
	}
}

func TestSkippedEndpointIsProbedAgain(t *testing.T) {
	hung, hungHits := hangingServer(t)
	_, good := startSim(t)
	c, err := New(Config{TokenID: testTokenID, TokenSecret: testSecret, AllowHTTP: true,
		Endpoints: []Endpoint{{Name: "hung", URL: hung.URL}, {Name: "good", URL: good.URL}},
		Timeout:   150 * time.Millisecond, Deadline: 2 * time.Second, SkipFor: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping with one good endpoint: %v", err)
	}
	c.preferred.Store(0) // as if the hung node had answered last
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if hungHits.Load() != 1 {
		t.Fatalf("hung endpoint got %d requests within its skip time, want 1", hungHits.Load())
	}
	time.Sleep(350 * time.Millisecond)
	c.preferred.Store(0)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if hungHits.Load() != 2 {
		t.Fatalf("hung endpoint got %d requests after its skip time, want 2 (probed again)", hungHits.Load())
	}
}

// A write whose answer is lost after it reached PVE has an unknown outcome: it
// is never sent again, and it is never reported as refused or not sent.
func TestWriteOutcomes(t *testing.T) {
	ctx := context.Background()
	type result struct {
		err       error
		firstHits int32
		otherHits int32
		accepted  bool // the simulator accepted the stop (answered 200 before the fault)
	}
	run := func(t *testing.T, timeout time.Duration, setup func(*pvesim.Sim), firstURL func(*pvesim.Sim) string) result {
		t.Helper()
		sim := newSim()
		srv, hits := countingServer(t, sim)
		other, otherHits := countingServer(t, newSim())
		setup(sim)
		first := srv.URL
		if firstURL != nil {
			first = firstURL(sim)
		}
		c := newClient(t, testTokenID, testSecret, first, other.URL)
		c.timeout = timeout
		_, err := c.GuestAction(ctx, "pve", "qemu", 101, "stop", nil)
		sim.ClearFaults()
		accepted := false
		for _, rq := range sim.Requests() {
			accepted = accepted || (rq.Method == http.MethodPost && rq.Path == "/nodes/pve/qemu/101/status/stop" && rq.Status == 200)
		}
		return result{err: err, firstHits: hits.Load(), otherHits: otherHits.Load(), accepted: accepted}
	}
	for _, tc := range []struct {
		name  string
		fault pvesim.Fault
	}{{"reset after the action", pvesim.FaultReset}, {"truncated answer", pvesim.FaultTruncate}, {"answer never comes", pvesim.FaultHangAfter}} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, 300*time.Millisecond, func(s *pvesim.Sim) { s.InjectFault(http.MethodPost, "/nodes/pve/qemu/101/status/stop", tc.fault, 0) }, nil)
			var noAnswer *NoAnswerError
			var dec *DecodeError
			if !OutcomeUnknown(r.err) || !(errors.As(r.err, &noAnswer) || errors.As(r.err, &dec)) {
				t.Fatalf("stop with a lost answer = %v, want an unknown outcome", r.err)
			}
			if r.firstHits != 1 || r.otherHits != 0 {
				t.Fatalf("the write was sent %d times to the first endpoint and %d to the second; want exactly once", r.firstHits, r.otherHits)
			}
			t.Log(r.err)
			if !r.accepted {
				t.Fatal("the fault struck before PVE acted; it should strike after")
			}
		})
	}
	t.Run("PVE refuses with its own words", func(t *testing.T) {
		r := run(t, time.Second, func(s *pvesim.Sim) { s.FailNext("/nodes/pve/qemu/101/status/stop", 500, "VM 101 is locked (backup)") }, nil)
		if r.err == nil || OutcomeUnknown(r.err) || !strings.Contains(r.err.Error(), "VM 101 is locked (backup)") {
			t.Fatalf("refused stop = %v, want a failure with PVE's words", r.err)
		}
	})
	t.Run("never sent", func(t *testing.T) {
		c := newClient(t, testTokenID, testSecret, closedURL(t))
		_, err := c.GuestAction(ctx, "pve", "qemu", 101, "stop", nil)
		var u *UnreachableError
		if !errors.As(err, &u) || OutcomeUnknown(err) {
			t.Fatalf("stop to a closed port = %v, want unreachable (not sent), not unknown", err)
		}
	})
	t.Run("596 on a write", func(t *testing.T) {
		r := run(t, time.Second, func(s *pvesim.Sim) { s.FailNext("/nodes/pve/qemu/101/status/stop", 596, "Connection timed out") }, nil)
		if !OutcomeUnknown(r.err) || r.otherHits != 0 {
			t.Fatalf("596 on a write = %v (second endpoint %d hits), want unknown and not resent", r.err, r.otherHits)
		}
	})
	t.Run("reads are not unknown", func(t *testing.T) {
		sim, srv := startSim(t)
		sim.MalformNext("/nodes")
		_, err := newClient(t, testTokenID, testSecret, srv.URL).Nodes(ctx)
		if err == nil || OutcomeUnknown(err) {
			t.Fatalf("malformed read = %v, want a plain decode error", err)
		}
	})
}
