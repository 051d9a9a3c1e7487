package pve

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
)

const resourcesPath = "/cluster/resources"

func TestOpTemplate(t *testing.T) {
	upid := "UPID:pve:0000C0DE:00ABCDEF:67890ABC:qmstart:101:jarvis@pve!test:"
	cases := []struct{ method, path, want string }{
		{"GET", "/version", "GET /version"},
		{"GET", "/cluster/status", "GET /cluster/status"},
		{"GET", "/cluster/resources", "GET /cluster/resources"},
		{"GET", "/cluster/tasks", "GET /cluster/tasks"},
		{"GET", "/access/permissions", "GET /access/permissions"},
		{"GET", "/nodes", "GET /nodes"},
		{"GET", "/nodes/pve/status", "GET /nodes/{node}/status"},
		{"GET", "/nodes/pve/storage", "GET /nodes/{node}/storage"},
		{"GET", "/nodes/pve/storage/local-lvm/content", "GET /nodes/{node}/storage/{storage}/content"},
		{"GET", "/nodes/agent1/qemu/101/status/current", "GET /nodes/{node}/qemu/{vmid}/status/current"},
		{"GET", "/nodes/home/lxc/200/status/current", "GET /nodes/{node}/lxc/{vmid}/status/current"},
		{"GET", "/nodes/pve/qemu/101/config", "GET /nodes/{node}/qemu/{vmid}/config"},
		{"GET", "/nodes/pve/lxc/201/snapshot", "GET /nodes/{node}/lxc/{vmid}/snapshot"},
		{"POST", "/nodes/pve/qemu/101/snapshot", "POST /nodes/{node}/qemu/{vmid}/snapshot"},
		{"POST", "/nodes/pve/qemu/101/status/start", "POST /nodes/{node}/qemu/{vmid}/status/start"},
		{"POST", "/nodes/pve/lxc/201/status/shutdown", "POST /nodes/{node}/lxc/{vmid}/status/shutdown"},
		{"POST", "/nodes/pve/qemu/101/snapshot/before-php84/rollback", "POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback"},
		{"DELETE", "/nodes/pve/qemu/101/snapshot/before-php84", "DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}"},
		{"GET", apiPath("nodes", "pve", "tasks", upid, "status"), "GET /nodes/{node}/tasks/{upid}/status"},
		{"GET", apiPath("nodes", "pve", "tasks", upid, "log"), "GET /nodes/{node}/tasks/{upid}/log"},
		// A snapshot or node named like a fixed word stays in its place.
		{"DELETE", "/nodes/status/qemu/101/snapshot/snapshot", "DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}"},
	}
	for _, c := range cases {
		if got := opTemplate(c.method, c.path); got != c.want {
			t.Errorf("opTemplate(%s, %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

// testObserver records what the client reports; lookups lets a test wait until
// callers have reached the cache.
type testObserver struct {
	mu       sync.Mutex
	cache    []string // "op result"
	upstream []string // "endpoint op failed"
	lookups  chan string
}

func newTestObserver() *testObserver { return &testObserver{lookups: make(chan string, 1024)} }

func (o *testObserver) ObserveUpstream(endpoint, op string, failed bool, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := endpoint + " " + op
	if failed {
		s += " failed"
	}
	o.upstream = append(o.upstream, s)
}

func (o *testObserver) ObserveCache(op, result string) {
	o.mu.Lock()
	o.cache = append(o.cache, op+" "+result)
	o.mu.Unlock()
	o.lookups <- result
}

// results counts the cache results reported so far.
func (o *testObserver) results() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := map[string]int{}
	for _, s := range o.cache {
		n[s[strings.LastIndexByte(s, ' ')+1:]]++
	}
	return n
}

// waitLookups returns the next n lookup results, in order.
func (o *testObserver) waitLookups(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, <-o.lookups)
	}
	return out
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gate holds the first request with this method whose path ends with suffix
// until open is called; entered says it arrived. With answered set, the
// simulator answers it first and the answer is held instead.
type gate struct {
	next     http.Handler
	method   string
	suffix   string
	answered bool
	armed    atomic.Bool
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
}

// newGate holds a request until the test opens it, or ends: a failing test must
// not leave the server waiting for a held request.
func newGate(t *testing.T, next http.Handler, method, suffix string) *gate {
	g := &gate{next: next, method: method, suffix: suffix, entered: make(chan struct{}, 1), release: make(chan struct{})}
	g.armed.Store(true)
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != g.method || !strings.HasSuffix(r.URL.Path, g.suffix) || !g.armed.CompareAndSwap(true, false) {
		g.next.ServeHTTP(w, r)
		return
	}
	var rec *httptest.ResponseRecorder
	if g.answered {
		rec = httptest.NewRecorder()
		g.next.ServeHTTP(rec, r)
	}
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-r.Context().Done():
		return
	}
	if rec == nil {
		g.next.ServeHTTP(w, r)
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

type cacheFixture struct {
	sim   *pvesim.Sim
	c     *Client
	obs   *testObserver
	clock *fakeClock
}

// newCacheFixture serves the simulator, behind wrap when it is set, to a client
// caching for ttl on a fake clock.
func newCacheFixture(t *testing.T, ttl time.Duration, wrap func(http.Handler) http.Handler) *cacheFixture {
	t.Helper()
	sim := newSim()
	srv := httptest.NewUnstartedServer(sim)
	// Closed after the gates made in wrap are opened (cleanups run last first).
	t.Cleanup(srv.Close)
	if wrap != nil {
		srv.Config.Handler = wrap(sim)
	}
	srv.Start()
	obs := newTestObserver()
	// A generous per-request timeout: gated requests wait for the test, not the clock.
	c, err := New(Config{Endpoints: []Endpoint{{Name: "pve", URL: srv.URL}}, TokenID: testTokenID, TokenSecret: testSecret,
		AllowHTTP: true, Timeout: time.Minute, CacheFor: ttl, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c.now = clock.Now
	return &cacheFixture{sim: sim, c: c, obs: obs, clock: clock}
}

func (f *cacheFixture) resources(t *testing.T, ctx context.Context) []Resource {
	t.Helper()
	res, err := f.c.ClusterResources(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *cacheFixture) upstream(path string) int { return f.sim.RequestCount(http.MethodGet, path) }

func TestCacheWindow(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Second, nil)
	steps := []struct {
		name     string
		advance  time.Duration
		typ      string
		upstream int // GETs of /cluster/resources so far
		result   string
	}{
		{"first read goes upstream", 0, "vm", 1, CacheMiss},
		{"same read is served", 0, "vm", 1, CacheHit},
		{"other parameters are another answer", 0, "storage", 2, CacheMiss},
		{"still inside the window", time.Second - time.Nanosecond, "vm", 2, CacheHit},
		{"the window has passed", time.Nanosecond, "vm", 3, CacheMiss},
		{"the new answer is served", 0, "vm", 3, CacheHit},
	}
	for _, s := range steps {
		f.clock.Add(s.advance)
		if _, err := f.c.ClusterResources(ctx, s.typ); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := f.obs.waitLookups(t, 1)[0]; got != s.result {
			t.Errorf("%s: lookup %s, want %s", s.name, got, s.result)
		}
		if n := f.upstream(resourcesPath); n != s.upstream {
			t.Errorf("%s: %d upstream reads, want %d", s.name, n, s.upstream)
		}
	}
}

func TestNoCacheByDefault(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, 0, nil)
	for range 3 {
		f.resources(t, ctx)
	}
	if n := f.upstream(resourcesPath); n != 3 {
		t.Errorf("%d upstream reads for 3 reads with CacheFor 0, want 3", n)
	}
	if r := f.obs.results(); len(r) != 0 {
		t.Errorf("cache lookups reported without a cache: %v", r)
	}
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	if len(f.obs.upstream) != 3 || f.obs.upstream[0] != "pve GET /cluster/resources" {
		t.Errorf("upstream observed %q", f.obs.upstream)
	}
}

func TestEveryWriteInvalidates(t *testing.T) {
	ctx := context.Background()
	startPath := "/nodes/agent/qemu/104/status/start"
	cases := []struct {
		name    string
		setup   func(*pvesim.Sim)
		write   func(*Client) error
		wantErr func(error) bool
	}{
		{"a write that succeeds", nil,
			func(c *Client) error { _, err := c.GuestAction(ctx, "agent", "qemu", 104, "start", nil); return err },
			func(err error) bool { return err == nil }},
		{"a write PVE refuses", func(s *pvesim.Sim) { s.FailNext(startPath, 500, "VM 104 is locked (backup)") },
			func(c *Client) error { _, err := c.GuestAction(ctx, "agent", "qemu", 104, "start", nil); return err },
			func(err error) bool { var a *APIError; return errors.As(err, &a) && a.Status == 500 }},
		{"a write whose answer is lost", func(s *pvesim.Sim) { s.InjectFault(http.MethodPost, startPath, pvesim.FaultReset, 1) },
			func(c *Client) error { _, err := c.GuestAction(ctx, "agent", "qemu", 104, "start", nil); return err },
			func(err error) bool { var n *NoAnswerError; return errors.As(err, &n) }},
		{"a delete", nil,
			func(c *Client) error {
				_, err := c.DeleteSnapshot(ctx, "pve", "qemu", 101, "before-php84")
				return err
			},
			func(err error) bool { return err == nil }},
		{"Invalidate, for changes made over SSH", nil,
			func(c *Client) error { c.Invalidate(); return nil },
			func(err error) bool { return err == nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t, time.Hour, nil)
			f.resources(t, ctx)
			f.resources(t, ctx)
			if n := f.upstream(resourcesPath); n != 1 {
				t.Fatalf("%d upstream reads before the write, want 1", n)
			}
			if tc.setup != nil {
				tc.setup(f.sim)
			}
			if err := tc.write(f.c); !tc.wantErr(err) {
				t.Fatalf("write: unexpected outcome %v", err)
			}
			f.resources(t, ctx)
			if n := f.upstream(resourcesPath); n != 2 {
				t.Errorf("%d upstream reads after the write, want 2: the read after it must not be served from the cache", n)
			}
		})
	}
}

// A read that started before a write may carry the cluster as it was: it must
// not be stored, nor joined by reads that start after the write; and a write
// under way is not answered from what was cached before it.
func TestReadsRacingAWrite(t *testing.T) {
	ctx := context.Background()
	heldRead := func(t *testing.T) (*cacheFixture, *gate, chan error) {
		var g *gate
		f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler { g = newGate(t, h, http.MethodGet, resourcesPath); return g })
		done := make(chan error, 1)
		go func() { _, err := f.c.ClusterResources(ctx, "vm"); done <- err }()
		<-g.entered
		if got := f.obs.waitLookups(t, 1)[0]; got != CacheMiss {
			t.Fatalf("first read: %s, want miss", got)
		}
		return f, g, done
	}

	t.Run("a read from before the write is not stored", func(t *testing.T) {
		f, g, early := heldRead(t)
		if _, err := f.c.GuestAction(ctx, "agent", "qemu", 104, "start", nil); err != nil {
			t.Fatal(err)
		}
		g.open()
		if err := <-early; err != nil {
			t.Fatal(err)
		}
		f.resources(t, ctx)
		if got := f.obs.waitLookups(t, 1)[0]; got != CacheMiss {
			t.Errorf("read after the write: %s, want miss (the read from before it was stored)", got)
		}
		if n := f.upstream(resourcesPath); n != 2 {
			t.Errorf("%d upstream reads, want 2", n)
		}
	})

	t.Run("a read after the write does not join one from before", func(t *testing.T) {
		f, g, early := heldRead(t)
		f.c.Invalidate()
		late := make(chan error, 1)
		go func() { _, err := f.c.ClusterResources(ctx, "vm"); late <- err }()
		if got := f.obs.waitLookups(t, 1)[0]; got != CacheMiss {
			// It joined the held read; let both go so the test ends.
			g.open()
			<-early
			<-late
			t.Fatalf("read after the invalidation: %s, want miss", got)
		}
		if err := <-late; err != nil { // returns while the early read is still held
			t.Fatal(err)
		}
		g.open()
		if err := <-early; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no read is served from before a write under way, nor stored across its answer", func(t *testing.T) {
		var g *gate
		f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler { g = newGate(t, h, http.MethodPost, "/status/start"); return g })
		f.resources(t, ctx)
		write := make(chan error, 1)
		go func() { _, err := f.c.GuestAction(ctx, "agent", "qemu", 104, "start", nil); write <- err }()
		<-g.entered
		f.resources(t, ctx) // not the answer from before the write
		f.resources(t, ctx) // the one read while it is under way
		if n := f.upstream(resourcesPath); n != 2 {
			t.Fatalf("%d upstream reads while the write is held, want 2", n)
		}
		g.open()
		if err := <-write; err != nil {
			t.Fatal(err)
		}
		f.resources(t, ctx)
		if n := f.upstream(resourcesPath); n != 3 {
			t.Errorf("%d upstream reads after the write answered, want 3", n)
		}
	})
}

func TestWithFresh(t *testing.T) {
	ctx := context.Background()
	var g *gate
	f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler { g = newGate(t, h, http.MethodGet, resourcesPath); return g })

	// A shared read is under way (held); a fresh read does not join it.
	held := make(chan error, 1)
	go func() { _, err := f.c.ClusterResources(ctx, "vm"); held <- err }()
	<-g.entered
	f.obs.waitLookups(t, 1)
	f.resources(t, WithFresh(ctx))
	if n := f.upstream(resourcesPath); n != 1 {
		t.Fatalf("%d answered upstream reads, want 1: the fresh read's own", n)
	}
	g.open()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	// Its answer is there for the next read; a fresh read never uses it.
	f.resources(t, ctx)
	if got := f.obs.waitLookups(t, 1)[0]; got != CacheHit {
		t.Errorf("read after the fresh one: %s, want hit", got)
	}
	f.resources(t, WithFresh(ctx))
	if n := f.upstream(resourcesPath); n != 3 {
		t.Errorf("%d upstream reads, want 3 (held, fresh, fresh)", n)
	}
}

// An older answer arriving late does not replace a newer one.
func TestLateAnswerDoesNotReplaceNewer(t *testing.T) {
	ctx := context.Background()
	var g *gate
	f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler {
		g = newGate(t, h, http.MethodGet, resourcesPath)
		g.answered = true
		return g
	})
	held := make(chan error, 1)
	go func() { _, err := f.c.ClusterResources(ctx, "vm"); held <- err }()
	<-g.entered // answered with 104 stopped, and held
	if err := f.sim.SetGuestStatus(104, "running"); err != nil {
		t.Fatal(err)
	}
	f.resources(t, WithFresh(ctx))
	g.open()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for _, r := range f.resources(t, ctx) {
		if r.VMID == 104 && r.Status != "running" {
			t.Errorf("104 is %s: the older answer replaced the fresh one", r.Status)
		}
	}
}

func TestTaskReadsAreNeverCached(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Hour, nil)
	f.resources(t, ctx)
	upid, err := f.c.GuestAction(ctx, "agent", "qemu", 104, "start", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.resources(t, ctx) // cached while the task runs
	for range 2 {
		if _, err := f.c.TaskStatus(ctx, "agent", upid); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.TaskLog(ctx, "agent", upid, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.upstream("/nodes/agent/tasks/"); n != 4 {
		t.Fatalf("%d upstream task reads for 4 calls, want 4", n)
	}
	before := f.upstream(resourcesPath)
	st, err := f.c.WaitTask(ctx, upid, 5*time.Millisecond, nil)
	if err != nil || st.Running() {
		t.Fatalf("WaitTask = %+v, %v", st, err)
	}
	// The task's end changed the cluster: what was cached while it ran is gone.
	res := f.resources(t, ctx)
	if n := f.upstream(resourcesPath); n != before+1 {
		t.Errorf("read after the task ended was served from the cache (%d upstream reads, want %d)", n, before+1)
	}
	for _, r := range res {
		if r.VMID == 104 && r.Status != "running" {
			t.Errorf("104 is %s after its start task ended", r.Status)
		}
	}
	f.obs.mu.Lock()
	defer f.obs.mu.Unlock()
	for _, s := range f.obs.cache {
		if strings.Contains(s, "/tasks/") {
			t.Errorf("a task read was looked up in the cache: %s", s)
		}
	}
}

// Reading the status of a task that ended long ago changes nothing: the cache
// stays. Only a task seen running (or started here) that is now stopped drops it.
func TestOldTaskStatusKeepsTheCache(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Hour, nil)
	upid, err := f.c.GuestAction(ctx, "agent", "qemu", 104, "start", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.WaitTask(ctx, upid, 5*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	f.resources(t, ctx)
	before := f.upstream(resourcesPath)
	for range 3 { // an agent asking again about the finished task
		if st, err := f.c.TaskStatus(ctx, "agent", upid); err != nil || st.Running() {
			t.Fatalf("TaskStatus = %+v, %v", st, err)
		}
		f.resources(t, ctx)
	}
	if n := f.upstream(resourcesPath); n != before {
		t.Errorf("reading a finished task's status dropped the cache: %d upstream reads, want %d", n, before)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		spoil func(*pvesim.Sim)
	}{
		{"PVE answers 500", func(s *pvesim.Sim) { s.FailNext(resourcesPath, 500, "cluster not ready") }},
		{"the token is refused", func(s *pvesim.Sim) { s.FailNext(resourcesPath, 401, "") }},
		{"the body is not JSON", func(s *pvesim.Sim) { s.MalformNext(resourcesPath) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t, time.Hour, nil)
			tc.spoil(f.sim)
			if _, err := f.c.ClusterResources(ctx, "vm"); err == nil {
				t.Fatal("the spoiled read succeeded")
			}
			f.resources(t, ctx)
			f.resources(t, ctx)
			if n := f.upstream(resourcesPath); n != 2 {
				t.Errorf("%d upstream reads, want 2: the error is not kept, the good answer is", n)
			}
		})
	}
	t.Run("data that does not decode", func(t *testing.T) {
		var nulls atomic.Int32
		var hits atomic.Int32
		f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if strings.HasSuffix(r.URL.Path, "/nodes/pve/status") && nulls.Add(1) == 1 {
					_, _ = w.Write([]byte(`{"data":null}`))
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		if _, err := f.c.NodeStatus(ctx, "pve"); err == nil {
			t.Fatal("null data for a node's status decoded")
		}
		if _, err := f.c.NodeStatus(ctx, "pve"); err != nil {
			t.Fatalf("second read served the undecodable answer: %v", err)
		}
		if n := hits.Load(); n != 2 {
			t.Errorf("%d upstream reads, want 2", n)
		}
	})
}

func TestConcurrentReadsShareOneRequest(t *testing.T) {
	ctx := context.Background()
	const callers = 50
	var g *gate
	f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler { g = newGate(t, h, http.MethodGet, resourcesPath); return g })
	type result struct {
		res []Resource
		err error
	}
	results := make(chan result, callers)
	for range callers {
		go func() { r, err := f.c.ClusterResources(ctx, "vm"); results <- result{r, err} }()
	}
	<-g.entered
	// Every caller has looked up before the one request is let through.
	f.obs.waitLookups(t, callers)
	g.open()
	for range callers {
		r := <-results
		if r.err != nil || len(r.res) == 0 {
			t.Fatalf("a caller got %d resources, %v", len(r.res), r.err)
		}
	}
	if n := f.upstream(resourcesPath); n != 1 {
		t.Errorf("%d upstream reads for %d concurrent callers, want 1", n, callers)
	}
	if r := f.obs.results(); r[CacheMiss] != 1 || r[CacheShared] != callers-1 {
		t.Errorf("lookups %v, want 1 miss and %d shared", r, callers-1)
	}
}

func TestConcurrentReadersShareAnError(t *testing.T) {
	ctx := context.Background()
	const callers = 10
	var g *gate
	f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler { g = newGate(t, h, http.MethodGet, resourcesPath); return g })
	f.sim.FailNext(resourcesPath, 500, "cluster not ready")
	errs := make(chan error, callers)
	for range callers {
		go func() { _, err := f.c.ClusterResources(ctx, "vm"); errs <- err }()
	}
	<-g.entered
	f.obs.waitLookups(t, callers)
	g.open()
	for range callers {
		var a *APIError
		if err := <-errs; !errors.As(err, &a) || a.Status != 500 {
			t.Fatalf("a waiter got %v, want the shared 500", err)
		}
	}
	f.resources(t, ctx)
	if n := f.upstream(resourcesPath); n != 2 {
		t.Errorf("%d upstream reads, want 2: one failed for all waiters, then one afresh", n)
	}
}

func TestWaiterThatHangsUpReturnsAlone(t *testing.T) {
	ctx := context.Background()
	var g *gate
	f := newCacheFixture(t, time.Hour, func(h http.Handler) http.Handler { g = newGate(t, h, http.MethodGet, resourcesPath); return g })

	// The caller that starts the shared read hangs up; the read goes on for the other.
	leaderCtx, hangUp := context.WithCancel(ctx)
	leader := make(chan error, 1)
	go func() { _, err := f.c.ClusterResources(leaderCtx, "vm"); leader <- err }()
	<-g.entered
	if got := f.obs.waitLookups(t, 1)[0]; got != CacheMiss {
		t.Fatalf("leader: %s", got)
	}
	other := make(chan error, 1)
	go func() { _, err := f.c.ClusterResources(ctx, "vm"); other <- err }()
	if got := f.obs.waitLookups(t, 1)[0]; got != CacheShared {
		t.Fatalf("second caller: %s, want shared", got)
	}
	hangUp()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that hung up got %v, want context.Canceled", err)
	}
	g.open()
	if err := <-other; err != nil {
		t.Fatalf("the other caller: %v", err)
	}
	f.resources(t, ctx)
	if got := f.obs.waitLookups(t, 1)[0]; got != CacheHit {
		t.Errorf("read after: %s, want hit (the shared read was stored though its starter left)", got)
	}
	if n := f.upstream(resourcesPath); n != 1 {
		t.Errorf("%d upstream reads, want 1", n)
	}
}

func TestCallersGetTheirOwnCopies(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Hour, nil)
	first := f.resources(t, ctx)
	name := first[0].Name
	first[0].Name = "changed by a caller"
	if again := f.resources(t, ctx); again[0].Name != name {
		t.Errorf("a cached answer changed with a caller's copy: %q", again[0].Name)
	}
	cfg, err := f.c.GuestConfig(ctx, "pve", "qemu", 101)
	if err != nil {
		t.Fatal(err)
	}
	cfg["name"] = "changed"
	delete(cfg, "memory")
	cfg2, err := f.c.GuestConfig(ctx, "pve", "qemu", 101)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2["name"] == "changed" || cfg2["memory"] == nil {
		t.Errorf("a cached config map is shared between callers: %v", cfg2)
	}
	if n := f.upstream("/nodes/pve/qemu/101/config"); n != 1 {
		t.Errorf("%d upstream config reads, want 1 (the second is a hit)", n)
	}
}

func TestNegativeCacheTimeIsRefused(t *testing.T) {
	_, err := New(Config{Endpoints: []Endpoint{{Name: "pve", URL: "https://127.0.0.1:8006"}}, TokenID: testTokenID,
		TokenSecret: testSecret, Insecure: true, CacheFor: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "cache time") {
		t.Fatalf("New with a negative CacheFor: %v", err)
	}
}
