// Package pvesim is a simulated Proxmox VE 9.1 cluster served as an
// http.Handler. It answers like the real API — {"data":…} envelope, 0/1
// booleans, API-token auth, PVE's status codes and messages, tasks with real
// UPIDs that finish asynchronously — so tests and the demo mode can run the
// whole product without a cluster.
package pvesim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Demo credentials, used by NewDemo and whenever Options leaves them empty.
const (
	DemoTokenID             = "jarvis@pve!demo"
	DemoTokenSecret         = "5f0c2b8e-6d3a-4c1e-9a7b-2e4d6f8a0c1b"
	DemoReadOnlyTokenID     = "auditor@pve!readonly"
	DemoReadOnlyTokenSecret = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
)

// DefaultTaskDuration is how long a lifecycle task runs when Options leaves it 0.
const DefaultTaskDuration = 1500 * time.Millisecond

// maxRecorded bounds the request log so a long demo run stays small.
const maxRecorded = 5000

// Options configures a simulator.
type Options struct {
	TokenID             string // full-access token, "user@realm!id"
	TokenSecret         string
	ReadOnlyTokenID     string // token that may read but gets 403 on writes
	ReadOnlyTokenSecret string
	TaskDuration        time.Duration    // how long lifecycle tasks run
	Now                 func() time.Time // clock; time.Now when nil
	// ACL is the full-access token's access-control entries (access.go);
	// nil grants every privilege on / with propagation, like Administrator.
	ACL []ACL
	// Site renames the demo cluster, so that a second simulator can be told
	// apart from the first; the zero Site is the demo cluster as it is.
	Site Site
}

// Site is how a simulator's demo cluster is named: the cluster's name, a
// prefix for every node name and an offset for every VMID. With
// Site{Name: "lab", NodePrefix: "lab-", VMIDOffset: 1000} the nodes are
// lab-home, lab-pve, lab-agent1 and lab-agent, and VM 103 is 1103.
type Site struct {
	Name       string // "homelab" when empty
	NodePrefix string
	VMIDOffset int
}

// nodeName is the name the demo node demo has at this site.
func (s *Sim) nodeName(demo string) string { return s.opts.Site.NodePrefix + demo }

// vmid is the VMID the demo guest demo has at this site.
func (s *Sim) vmid(demo int) int { return demo + s.opts.Site.VMIDOffset }

// clusterName is the cluster's name at this site.
func (s *Sim) clusterName() string {
	if s.opts.Site.Name == "" {
		return "homelab"
	}
	return s.opts.Site.Name
}

// Request is one recorded API call. Path is the API path without /api2/json
// (e.g. /nodes/pve/status); Body is the response body sent.
type Request struct {
	Method  string
	Path    string
	Query   url.Values
	Form    url.Values
	TokenID string
	Status  int
	Body    []byte
}

// GuestInfo is the simulator's view of a guest, for tests.
type GuestInfo struct {
	VMID           int
	Name           string
	Node           string
	Kind           string // qemu or lxc
	Status         string // running or stopped
	Lock           string
	Template       bool
	Snapshots      []string // names, oldest first
	SnapshotParent string   // the snapshot the current state derives from
}

// Sim is the simulated cluster. All methods are safe for concurrent use.
type Sim struct {
	opts Options
	now  func() time.Time

	mu        sync.Mutex
	created   time.Time
	nodes     []*node
	guests    map[int]*guest
	storages  []*storage
	volumes   []volume // iso/templates/backups; guest disks are derived
	tasks     []*task
	nextPID   int
	latency   time.Duration
	failures  []injectedFailure
	malformed []string
	faults    []injectedFault // transport faults (faults.go)
	release   chan struct{}   // closed by ClearFaults to let hanging requests go
	offline   map[string]bool
	requests  []Request
}

type injectedFailure struct {
	prefix  string
	status  int
	message string
}

// New builds a simulator holding the demo cluster (four nodes, VMs,
// containers, storage, backups, task history).
func New(opts Options) *Sim {
	if opts.TokenID == "" {
		opts.TokenID, opts.TokenSecret = DemoTokenID, DemoTokenSecret
	}
	if opts.ReadOnlyTokenID == "" {
		opts.ReadOnlyTokenID, opts.ReadOnlyTokenSecret = DemoReadOnlyTokenID, DemoReadOnlyTokenSecret
	}
	if opts.TaskDuration <= 0 {
		opts.TaskDuration = DefaultTaskDuration
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Sim{opts: opts, now: now, offline: map[string]bool{}}
	s.seed(now())
	return s
}

// NewDemo is New with the demo tokens and default timing.
func NewDemo() *Sim { return New(Options{}) }

// SetLatency delays every answer by d (0 turns it off).
func (s *Sim) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next request whose API path starts with pathPrefix
// fail with status and message (as body message and reason phrase; 401 gets
// an empty body like PVE). Calls queue up.
func (s *Sim) FailNext(pathPrefix string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, injectedFailure{prefix: pathPrefix, status: status, message: message})
}

// MalformNext makes the next request whose API path starts with pathPrefix
// get a 200 with a broken JSON body.
func (s *Sim) MalformNext(pathPrefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.malformed = append(s.malformed, pathPrefix)
}

// SetNodeOffline takes a node off the cluster network (595 for its paths,
// offline in status and resources) or brings it back.
func (s *Sim) SetNodeOffline(name string, offline bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	if offline {
		s.offline[name] = true
	} else {
		delete(s.offline, name)
	}
}

// Requests returns a copy of the recorded requests, oldest first.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// RequestCount counts the recorded requests with this method ("" for any)
// whose API path starts with pathPrefix, without copying the log: what tests
// of request coalescing assert. Like Requests, it sees answered requests only
// (not those that hung or were given up during SetLatency) and the last
// maxRecorded of them.
func (s *Sim) RequestCount(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// ResetRequests forgets the recorded requests.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Guest reads a guest's state.
func (s *Sim) Guest(vmid int) (GuestInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	g, ok := s.guests[vmid]
	if !ok {
		return GuestInfo{}, false
	}
	info := GuestInfo{VMID: g.vmid, Name: g.name, Node: g.node, Kind: g.kind, Status: g.status,
		Lock: g.lock, Template: g.template, SnapshotParent: g.parent}
	for _, sn := range g.snapshots {
		info.Snapshots = append(info.Snapshots, sn.name)
	}
	return info, true
}

// SetGuestStatus forces a guest to "running" or "stopped".
func (s *Sim) SetGuestStatus(vmid int, status string) error {
	if status != "running" && status != "stopped" {
		return fmt.Errorf("pvesim: status %q is neither running nor stopped", status)
	}
	return s.changeGuest(vmid, true, func(g *guest) { g.setStatus(status, s.now()) })
}

// RenameGuest changes a guest's name, as a restore or a re-created guest with
// the same VMID would (tests of approvals bound to what a person saw).
func (s *Sim) RenameGuest(vmid int, name string) error {
	return s.changeGuest(vmid, false, func(g *guest) { g.name = name })
}

// changeGuest applies change to guest vmid under the lock, after moving the
// clock and its tasks on when advance is set; a test's setter in one line.
func (s *Sim) changeGuest(vmid int, advance bool, change func(*guest)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if advance {
		s.advance()
	}
	g, ok := s.guests[vmid]
	if !ok {
		return fmt.Errorf("pvesim: no guest %d", vmid)
	}
	change(g)
	return nil
}

// ServeHTTP answers one API request.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, release := s.takeFault(r)
	if fault == FaultHang {
		hang(r, release)
		return
	}
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	s.advance()
	res, rec := s.handle(r)
	rec.Status, rec.Body = res.status, res.body
	if len(s.requests) >= maxRecorded {
		s.requests = s.requests[1:]
	}
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if fault != 0 {
		spoil(w, r, fault, res, release)
		return
	}
	// Written outside the lock so a slow reader cannot stall other requests.
	writeResponse(w, r, res)
}

// response is what the simulator sends: reason is the HTTP reason phrase,
// which PVE uses to carry its error message.
type response struct {
	status int
	reason string
	body   []byte
}

func dataResponse(data any) response {
	body, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return errorResponse(http.StatusInternalServerError, "pvesim: encoding answer: "+err.Error())
	}
	return response{status: http.StatusOK, reason: "OK", body: body}
}

// errorResponse mirrors PVE: message in the reason phrase and in the body
// (with PVE's trailing newline).
func errorResponse(status int, message string) response {
	body, _ := json.Marshal(map[string]any{"data": nil, "message": message + "\n"})
	return response{status: status, reason: message, body: body}
}

func badRequest(errs map[string]string) response {
	for k, v := range errs {
		errs[k] = v + "\n"
	}
	body, _ := json.Marshal(map[string]any{"data": nil, "errors": errs, "message": "Parameter verification failed.\n"})
	return response{status: http.StatusBadRequest, reason: "Parameter verification failed.", body: body}
}

func unauthorized() response {
	return response{status: http.StatusUnauthorized, reason: "authentication failure"}
}

// writeResponse sends res. Go's server always sends the standard reason
// phrase, so when PVE would send its own one the connection is hijacked and
// the status line written by hand (HTTP/1.x only; otherwise the standard
// phrase goes out and the body still carries the message).
func writeResponse(w http.ResponseWriter, r *http.Request, res response) {
	reason := sanitizeReason(res.reason)
	if reason != "" && reason != http.StatusText(res.status) && r.ProtoMajor == 1 {
		if hj, ok := w.(http.Hijacker); ok {
			conn, buf, err := hj.Hijack()
			if err == nil {
				defer conn.Close()
				writeRaw(buf, res.status, reason, res.body)
				return
			}
		}
	}
	if len(res.body) > 0 {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(res.body)))
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

func writeRaw(buf *bufio.ReadWriter, status int, reason string, body []byte) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, reason)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(http.TimeFormat))
	if len(body) > 0 {
		b.WriteString("Content-Type: application/json;charset=UTF-8\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	b.Write(body)
	_, _ = buf.Write(b.Bytes())
	_ = buf.Flush()
}

// sanitizeReason keeps a reason phrase on one printable ASCII line.
func sanitizeReason(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		}
	}
	return b.String()
}
