package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/store/storetest"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/sim/pvesim"
	"github.com/jarvis-homelab/jarvis/tools/sim/sshsim"
)

// Two `jarvis serve` replicas, A and B, on one PostgreSQL database and one
// cluster, as an installation runs them: a simulated Proxmox API over pinned
// TLS and simulated node shells over SSH, no demo. An agent's RED call on A
// waits for a person, who approves it on B's API; it runs once, and both
// replicas' feeds show the same events with the same ids in the same order.
// Then A is killed (SIGKILL) while a call hangs on the cluster: B closes that
// call as interrupted and raises an alert, takes the watcher's lease over,
// keeps serving, and releases the lease when it stops; jarvis audit verify
// holds with B's anchor. The lease TTL is 2 s (JARVIS_LEASE_TTL); the test
// logs the approval's wake-up across replicas, the watcher's failover and how
// soon the interrupted call is closed, measured from the kill.
func TestReplicasEndToEnd(t *testing.T) {
	storetest.SkipOnSQLite(t, "two jarvis serve replicas on one PostgreSQL database")
	url := storetest.Target(t)
	// Short, so the test is; JARVIS_TEST_LEASE_TTL=10s measures the default.
	ttl, err := 2*time.Second, error(nil)
	if v := os.Getenv("JARVIS_TEST_LEASE_TTL"); v != "" {
		if ttl, err = time.ParseDuration(v); err != nil {
			t.Fatalf("JARVIS_TEST_LEASE_TTL=%s: %v", v, err)
		}
	}

	// The cluster, counting the snapshot requests it holds.
	sim := pvesim.New(pvesim.Options{TokenID: doctorTokenID, TokenSecret: doctorSecret})
	var snapshotsAsked atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/snapshot") {
			snapshotsAsked.Add(1)
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	c := doctorCluster{sim: sim, hostPort: strings.TrimPrefix(ts.URL, "https://"), fingerprint: pve.FingerprintOf(ts.Certificate())}
	keyPath, signer := sshKeyFile(t)
	shells, err := sshsim.Start(sshsim.Options{Nodes: sshsim.DemoFacts(), AuthorizedKey: signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shells.Close() })
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, shells.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	var sshNodes []string
	for _, n := range shells.Nodes() {
		sshNodes = append(sshNodes, n+"="+shells.Addr(n))
	}
	envOf := func(name, anchor string) []string {
		port := freePort(t)
		return []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
			"JWT_SECRET=e2e-secret-e2e-secret-e2e-secret-e2e", "JARVIS_PASSWORD=e2e-operator-password",
			"JARVIS_NODES=" + c.allNodes(), "PVE_TOKEN_ID=" + doctorTokenID, "PVE_TOKEN_SECRET=" + doctorSecret,
			"PVE_TLS_FINGERPRINT=" + c.fingerprint,
			"SSH_KEY_PATH=" + keyPath, "SSH_KNOWN_HOSTS=" + knownHosts, "SSH_NODES=" + strings.Join(sshNodes, ","),
			"JARVIS_DATABASE_URL=" + url, "JARVIS_AUDIT_ANCHOR=" + anchor, "JARVIS_REPLICA_ID=" + name,
			fmt.Sprintf("PORT=%d", port), "JARVIS_LEASE_TTL=" + ttl.String(), "JARVIS_APPROVAL_WAIT=30s", "LOG_LEVEL=info",
		}
	}
	a, b, envA, envB, data := startPair(t, envOf)

	// A third process under A's id (a shared .env) is refused: it would
	// hold every lease beside A.
	anchorDup := filepath.Join(t.TempDir(), "jarvis.anchor")
	if err := os.WriteFile(anchorDup, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	dup := exec.CommandContext(dctx, jarvisBinary(t), "serve")
	dup.Env = envOf("replica-a", anchorDup)
	dupOut, err := dup.CombinedOutput()
	dcancel()
	if err == nil || !strings.Contains(string(dupOut), "another Jarvis process is running as replica replica-a (JARVIS_REPLICA_ID)") {
		t.Fatalf("a second serve as replica-a: %v\n%s", err, dupOut)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	waitUntil(t, 10*time.Second, "A holding the watcher's lease", func() bool { return leaseHolder(t, db, leaseWatcher) == "replica-a" })

	// Both feeds from the first event: they must agree event by event.
	tokenA, tokenB := operatorLogin(t, a.base), operatorLogin(t, b.base)
	feedA, feedB := followFeed(t, ctx, a.base, tokenA), followFeed(t, ctx, b.base, tokenB)

	out, err := runJarvis(t, envA, "token", "create", "--name", "replica-agent", "--max-tier", "red")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	agentToken := strings.TrimSpace(out)
	agentA := connectAgent(t, ctx, a.base, agentToken)

	// The RED call waits on A; the operator approves it on B.
	type answer struct {
		res *mcp.CallToolResult
		err error
		at  time.Time
	}
	called := make(chan answer, 1)
	go func() {
		res, err := agentA.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		called <- answer{res, err, time.Now()}
	}()
	var approvalID string
	waitUntil(t, 20*time.Second, "the approval request on B's API", func() bool {
		var list struct {
			Approvals []struct{ ID, Tool string }
		}
		if getJSON(t, b.base+"/api/approvals?status=pending", tokenB, &list) != http.StatusOK {
			return false
		}
		for _, ap := range list.Approvals {
			if ap.Tool == "stop_vm" {
				approvalID = ap.ID
			}
		}
		return approvalID != ""
	})
	approved := time.Now()
	if code := postJSON(t, b.base+"/api/approvals/"+approvalID+"/approve", tokenB); code != http.StatusOK {
		t.Fatalf("approve on B: HTTP %d", code)
	}
	var got answer
	select {
	case got = <-called:
	case <-ctx.Done():
		t.Fatal("the call waiting on A never ran after the approval on B")
	}
	if got.err != nil || got.res.IsError {
		b, _ := json.Marshal(got.res)
		t.Fatalf("the approved stop_vm on A: %v %s", got.err, b)
	}
	begun := feedA.wait(t, 10*time.Second, "stop_vm begun on A's feed", func(e feedEvent) bool {
		return e.Type == store.EventTool && e.tool().Tool == "stop_vm" && e.tool().Phase == store.ToolBegun
	})
	ended := feedA.wait(t, 10*time.Second, "stop_vm ended on A's feed", func(e feedEvent) bool {
		return e.Type == store.EventTool && e.tool().Tool == "stop_vm" && e.tool().Phase == store.ToolEnded
	})
	if o := ended.tool().Outcome; o != store.OutcomeOK {
		t.Fatalf("stop_vm ended %q", o)
	}
	t.Logf("approval on B woke the call on A: approve → begun on A's feed %s, → the agent's answer %s (the task runs %s)",
		begun.at.Sub(approved).Round(time.Millisecond), got.at.Sub(approved).Round(time.Millisecond), pvesim.DefaultTaskDuration)

	// Once: one request to the cluster, one ok end row.
	guest, _ := c.sim.Guest(101)
	if n := c.sim.RequestCount(http.MethodPost, fmt.Sprintf("/nodes/%s/%s/101/status/stop", guest.Node, guest.Kind)); n != 1 {
		t.Errorf("the cluster got %d stop requests for VM 101, want 1", n)
	}
	rows := auditRows(t, b.base, tokenB)
	if n := countRows(rows, func(r store.AuditRow) bool {
		return r.Kind == "end" && r.Tool == "stop_vm" && r.Status == store.OutcomeOK && r.ApprovalID == approvalID
	}); n != 1 {
		t.Errorf("%d ok end rows for the approved stop_vm, want 1", n)
	}

	// The feeds agree: the same ids, in the same order, with the same events,
	// up to the call's end (B gets A's events through PostgreSQL).
	feedB.wait(t, 10*time.Second, "stop_vm ended on B's feed", func(e feedEvent) bool { return e.ID == ended.ID })
	evA, evB := feedA.upTo(ended.ID), feedB.upTo(ended.ID)
	if len(evA) == 0 || len(evA) != len(evB) {
		t.Fatalf("A's feed has %d events up to %d, B's %d", len(evA), ended.ID, len(evB))
	}
	for i := range evA {
		if evA[i].ID != evB[i].ID || evA[i].Type != evB[i].Type || evA[i].Summary != evB[i].Summary {
			t.Fatalf("event %d differs: A %d %s %q, B %d %s %q", i, evA[i].ID, evA[i].Type, evA[i].Summary, evB[i].ID, evB[i].Type, evB[i].Summary)
		}
		if i > 0 && evA[i].ID <= evA[i-1].ID {
			t.Fatalf("ids out of order: %d after %d", evA[i].ID, evA[i-1].ID)
		}
	}
	kinds := map[string]int{}
	for _, e := range evA {
		kinds[e.Type]++
	}
	t.Logf("both feeds: the same %d events, ids %d…%d, %v", len(evA), evA[0].ID, evA[len(evA)-1].ID, kinds)

	// A call in flight on A: its snapshot request hangs in the cluster.
	g102, _ := c.sim.Guest(102)
	c.sim.InjectFault(http.MethodPost, fmt.Sprintf("/nodes/%s/%s/102/snapshot", g102.Node, g102.Kind), pvesim.FaultHang, 1)
	defer c.sim.ClearFaults()
	go func() {
		_, _ = agentA.CallTool(ctx, &mcp.CallToolParams{Name: "create_snapshot", Arguments: map[string]any{"vmid": 102, "name": "in-flight"}})
	}()
	var inFlight store.AuditRow
	waitUntil(t, 20*time.Second, "create_snapshot begun on A", func() bool {
		for _, r := range auditRows(t, b.base, tokenB) {
			if r.Kind == "begin" && r.Tool == "create_snapshot" {
				inFlight = r
				return true
			}
		}
		return false
	})
	waitUntil(t, 10*time.Second, "the snapshot request held by the cluster", func() bool { return snapshotsAsked.Load() > 0 })

	killed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	// A wrote nothing after this: what is newer on B's feed is B's own.
	lastOfA := feedB.last()

	// B closes the call, raises the alert and takes the watcher over.
	var interruptedAfter, failoverAfter time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		for time.Since(killed) < 60*time.Second {
			if leaseHolder(t, db, leaseWatcher) == "replica-b" {
				failoverAfter = time.Since(killed)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for time.Since(killed) < 60*time.Second {
			var end *store.AuditRow
			for _, r := range auditRows(t, b.base, tokenB) {
				if r.Kind == "end" && r.BeginID == inFlight.ID {
					end = &r
				}
			}
			if end != nil {
				if end.Status != store.OutcomeInterrupted || !strings.Contains(end.Error, "replica-a") {
					t.Errorf("the call A was running ended %q: %s", end.Status, end.Error)
				}
				interruptedAfter = time.Since(killed)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	wg.Wait()
	if failoverAfter == 0 || interruptedAfter == 0 {
		t.Fatalf("60 s after A was killed: watcher on B after %s, the call interrupted after %s (0: never)\nB's log:\n%s",
			failoverAfter, interruptedAfter, b.stderr.String())
	}
	t.Logf("A killed: the watcher's lease on B after %s, A's call closed as interrupted by B after %s (lease TTL %s)",
		failoverAfter.Round(time.Millisecond), interruptedAfter.Round(time.Millisecond), ttl)
	polled := feedB.wait(t, 20*time.Second, "a cluster snapshot from B's watcher", func(e feedEvent) bool {
		return e.Type == store.EventCluster && e.ID > lastOfA
	})
	t.Logf("the first cluster snapshot from B's watcher reached B's feed %s after the kill", polled.at.Sub(killed).Round(time.Millisecond))
	feedB.wait(t, 10*time.Second, "the interrupted-call alert on B's feed", func(e feedEvent) bool {
		if e.Type != store.EventAlert {
			return false
		}
		var d store.AlertDetails
		return json.Unmarshal(e.Details, &d) == nil && d.InterruptedCall != nil && d.AuditID == inFlight.ID
	})

	// B keeps serving: a read and a change, for the same agent.
	agentB := connectAgent(t, ctx, b.base, agentToken)
	res, err := agentB.CallTool(ctx, &mcp.CallToolParams{Name: "get_guest_status", Arguments: map[string]any{"vmid": 101}})
	if body, _ := json.Marshal(res); err != nil || res.IsError || !strings.Contains(string(body), `"status":"stopped"`) {
		t.Fatalf("get_guest_status on B after A died: %v %s", err, body)
	}
	res, err = agentB.CallTool(ctx, &mcp.CallToolParams{Name: "create_snapshot", Arguments: map[string]any{"vmid": 103, "name": "after-failover"}})
	if body, _ := json.Marshal(res); err != nil || res.IsError {
		t.Fatalf("create_snapshot on B after A died: %v %s", err, body)
	}

	// A clean stop releases the lease at once.
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.exited:
		if err != nil {
			t.Fatalf("B after SIGTERM: %v\n%s", err, b.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("B did not stop within 20 s of SIGTERM")
	}
	if h := leaseHolder(t, db, leaseWatcher); h != "" {
		t.Errorf("the watcher's lease is still held by %s after B stopped cleanly", h)
	}
	out, err = runJarvis(t, envB, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify with B's anchor: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}

// startPair starts replicas replica-a and replica-b as an installation
// does: A founds the audit log and writes its anchor file, B starts with a
// copy of it (README, "PostgreSQL"). envOf gives a replica's environment
// with its anchor file; the anchor's bytes come back for more replicas.
func startPair(t *testing.T, envOf func(name, anchor string) []string) (a, b *replicaProc, envA, envB []string, anchor []byte) {
	t.Helper()
	anchorA := filepath.Join(t.TempDir(), "jarvis.anchor")
	anchorB := filepath.Join(t.TempDir(), "jarvis.anchor")
	envA, envB = envOf("replica-a", anchorA), envOf("replica-b", anchorB)
	a = startReplica(t, "replica-a", envA)
	anchor, err := os.ReadFile(anchorA)
	if err != nil {
		t.Fatalf("A founded the log but wrote no anchor: %v", err)
	}
	if err := os.WriteFile(anchorB, anchor, 0o600); err != nil {
		t.Fatal(err)
	}
	b = startReplica(t, "replica-b", envB)
	return a, b, envA, envB, anchor
}

// replicaProc is one jarvis serve process of the test.
type replicaProc struct {
	cmd    *exec.Cmd
	base   string
	stderr *lockedBuffer
	exited chan error
}

func startReplica(t *testing.T, name string, env []string) *replicaProc {
	t.Helper()
	port := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			port = v
		}
	}
	p := &replicaProc{cmd: exec.Command(jarvisBinary(t), "serve"), base: "http://127.0.0.1:" + port,
		stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env, p.cmd.Stderr = env, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	waitUntil(t, 60*time.Second, name+" healthy", func() bool {
		resp, err := http.Get(p.base + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func connectAgent(t *testing.T, ctx context.Context, base, token string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// leaseHolder is the replica holding lease name now, "" for none.
func leaseHolder(t *testing.T, db *pgx.Conn, name string) string {
	t.Helper()
	var holder string
	err := db.QueryRow(context.Background(),
		`SELECT holder FROM leases WHERE name = $1 AND expires_ns > (extract(epoch from clock_timestamp()) * 1e9)::bigint`, name).Scan(&holder)
	if err != nil && err != pgx.ErrNoRows {
		t.Errorf("read lease %s: %v", name, err)
	}
	return holder
}

func getJSON(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Errorf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func postJSON(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func auditRows(t *testing.T, base, token string) []store.AuditRow {
	t.Helper()
	var page struct{ Rows []store.AuditRow }
	if code := getJSON(t, base+"/api/audit?limit=1000", token, &page); code != http.StatusOK {
		t.Errorf("GET %s/api/audit: HTTP %d", base, code) // called from goroutines too: no Fatal
	}
	return page.Rows
}

func countRows(rows []store.AuditRow, match func(store.AuditRow) bool) int {
	n := 0
	for _, r := range rows {
		if match(r) {
			n++
		}
	}
	return n
}

// feedEvent is one event of an SSE feed, with when the test read it.
type feedEvent struct {
	store.Event
	at time.Time
}

func (e feedEvent) tool() store.ToolDetails {
	var d store.ToolDetails
	_ = json.Unmarshal(e.Details, &d)
	return d
}

// feedLog is what a feed sent, in order.
type feedLog struct {
	mu     sync.Mutex
	events []feedEvent
}

// followFeed follows /api/events from the first event (Last-Event-ID: 0)
// until ctx ends.
func followFeed(t *testing.T, ctx context.Context, base, token string) *feedLog {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Last-Event-ID", "0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("feed of %s: %v %v", base, err, resp)
	}
	f := &feedLog{}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e feedEvent
			if json.Unmarshal([]byte(data), &e.Event) != nil {
				continue
			}
			e.at = time.Now()
			f.mu.Lock()
			f.events = append(f.events, e)
			f.mu.Unlock()
		}
	}()
	return f
}

// wait returns the first event that matches, waiting up to d for it.
func (f *feedLog) wait(t *testing.T, d time.Duration, what string, match func(feedEvent) bool) feedEvent {
	t.Helper()
	var found feedEvent
	waitUntil(t, d, what, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// last is the id of the last event read, 0 for none.
func (f *feedLog) last() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		return 0
	}
	return f.events[len(f.events)-1].ID
}

// upTo is the events up to id.
func (f *feedLog) upTo(id uint64) []feedEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []feedEvent
	for _, e := range f.events {
		if e.ID <= id {
			out = append(out, e)
		}
	}
	return out
}
