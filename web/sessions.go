package web

import (
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
)

// Defaults for Options.SessionIdle and Options.MaxSessionsPerPrincipal.
const (
	// DefaultSessionIdle ends an MCP session after five minutes without an open
	// request (it was 30: an abandoned session costs a goroutine and ~12 KiB,
	// and clients that never open the GET stream still get minutes between
	// calls while a person thinks). A call waiting for approval is an open request, and so is the
	// standalone GET stream most SDKs hold while a session lives, so only
	// sessions nobody talks to end; an approval outlives its session (it is
	// bound to the caller, not the session), so a late retry costs the client
	// one new initialize.
	DefaultSessionIdle = 5 * time.Minute
	// DefaultMaxSessionsPerPrincipal is far above what one agent uses at once
	// (one or a few) and bounds what a client leaking sessions can hold.
	DefaultMaxSessionsPerPrincipal = 32
)

// sessionIDHeader is the streamable HTTP transport's session header.
const sessionIDHeader = "Mcp-Session-Id"

// mcpMaxBody bounds an MCP request body (StreamableHTTPOptions.MaxRequestBodyBytes);
// tool arguments are small, a megabyte is plenty.
const mcpMaxBody = 1 << 20

// sessionTracker sits in front of the SDK's stateful streamable handler and
// owns the life of MCP sessions: who opened each, the cap per caller, and the
// idle timeout. Sessions are what protocol revisions up to 2025-11-25 have;
// mcpRouter (mcp_router.go) sends it only their requests, and serves
// 2026-07-28, which has none, from the SDK's stateless handler.
//
// It keeps its own idle timer instead of the SDK's SessionTimeout because the
// SDK pauses that timer only while a POST runs: a session whose client holds the
// standalone GET stream open (the Go and TypeScript SDKs do, for server
// notifications) would be closed under a live client. Here every request with
// the session's id, POST, GET or DELETE, counts as activity from its start to
// its end, and the timer runs only while none is open.
//
// The count follows all three ways a session ends: a DELETE answered 2xx drops
// the entry at once, the idle timer drops it before closing the session, and
// anything else that ends sessions behind our back (App.Shutdown, a failed
// initialize the SDK closes itself) is pruned against the SDK's live sessions
// (Server.HTTPServers' sessions, the same set Shutdown closes) whenever a
// count is taken. The SDK offers no close hook for streamable sessions, so
// pruning is the simplest way that cannot drift.
type sessionTracker struct {
	next   http.Handler
	srv    *server.Server
	idle   time.Duration
	max    int
	logger *slog.Logger

	mu      sync.Mutex
	entries map[string]*sessionEntry // by session id
	// pending counts initialize requests in flight per principal, so that
	// concurrent ones cannot all pass the cap before any is registered.
	pending map[string]int
}

type sessionEntry struct {
	principal string
	active    int         // requests with this session id still being served
	timer     *time.Timer // idle timer; nil while active > 0
	gen       uint64      // bumped on every start and stop; a stale timer sees a newer one
	idleSince time.Time   // when the last request ended; read only while active == 0
}

func newSessionTracker(next http.Handler, srv *server.Server, idle time.Duration, max int, logger *slog.Logger) *sessionTracker {
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	if max <= 0 {
		max = DefaultMaxSessionsPerPrincipal
	}
	return &sessionTracker{next: next, srv: srv, idle: idle, max: max, logger: logger,
		entries: map[string]*sessionEntry{}, pending: map[string]int{}}
}

// OpenSessions is the number of MCP sessions open over HTTP now, for the
// metrics gauge: sessions neither deleted, nor ended idle, nor closed by
// Shutdown.
func (a *App) OpenSessions() int {
	t := a.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked()
	return len(t.entries)
}

func (t *sessionTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := server.PrincipalFromToken(auth.TokenInfoFromContext(r.Context()))
	id := r.Header.Get(sessionIDHeader)
	switch {
	case !ok:
		// RequireBearerToken runs first, so this does not happen; the SDK
		// refuses a request without a caller (getServer returns nil).
		t.next.ServeHTTP(w, r)
	case id != "":
		t.serveExisting(w, r, p, id)
	case r.Method == http.MethodPost:
		if init, reqID := startsSession(r); init {
			t.serveNew(w, r, p, reqID)
			return
		}
		t.serveOther(w, r, p)
	default:
		// GET and DELETE without a session id: the SDK answers 400.
		t.next.ServeHTTP(w, r)
	}
}

func (t *sessionTracker) serveNew(w http.ResponseWriter, r *http.Request, p safety.Principal, reqID json.RawMessage) {
	t.mu.Lock()
	t.pruneLocked()
	open := t.pending[p.ID] + t.countLocked(p.ID)
	var evicted string
	if open >= t.max {
		// Clients that leave without a DELETE (the TypeScript SDK's close())
		// would fill the cap with sessions nobody uses: the one idle longest
		// makes room. Only when every session is in use is the caller refused.
		if evicted = t.idlestLocked(p.ID); evicted == "" {
			t.mu.Unlock()
			t.refuseNew(w, p, open, reqID)
			return
		}
		t.dropLocked(evicted, t.entries[evicted])
	}
	t.pending[p.ID]++
	t.mu.Unlock()
	if evicted != "" {
		t.closeSDKSession(evicted)
		t.logger.Info("MCP session ended to make room for a new one: it was the caller's longest idle", "principal", p.ID, "max", t.max)
	}

	id, entry := t.serveRegistering(w, r, p, true)
	t.mu.Lock()
	defer t.mu.Unlock()
	if entry == nil {
		t.unpendLocked(p.ID) // no session came of it
		return
	}
	t.endLocked(id, entry)
}

// serveRegistering serves a request without a session id and registers the
// session the SDK opens for it, if any, as p's, with this request active.
// The SDK sets the header on the answer when the session is already live;
// registering then, before the client can see the id, means no later request
// can arrive before its entry. pending says the request was counted as a
// pending initialize, which the registration replaces.
func (t *sessionTracker) serveRegistering(w http.ResponseWriter, r *http.Request, p safety.Principal, pending bool) (string, *sessionEntry) {
	var entry *sessionEntry
	var id string
	sw := &sessionWriter{ResponseWriter: w, commit: func(h http.Header) {
		if sid := h.Get(sessionIDHeader); sid != "" && entry == nil {
			t.mu.Lock()
			if pending {
				t.unpendLocked(p.ID)
			}
			id, entry = sid, &sessionEntry{principal: p.ID, active: 1}
			t.entries[sid] = entry
			t.mu.Unlock()
		}
	}}
	t.next.ServeHTTP(sw, r)
	return id, entry
}

// countLocked is how many sessions principal has open.
func (t *sessionTracker) countLocked(principal string) int {
	n := 0
	for _, e := range t.entries {
		if e.principal == principal {
			n++
		}
	}
	return n
}

// serveOther serves a POST without a session id that does not read as an
// initialize (a stray ping, a body a plain JSON parser cannot read). Should
// the SDK open a session for it anyway — it parses JSON by rules of its own —
// the session is tracked like any other, and the cap is kept after the fact:
// no session exists that the count and the idle timer do not know.
func (t *sessionTracker) serveOther(w http.ResponseWriter, r *http.Request, p safety.Principal) {
	id, entry := t.serveRegistering(w, r, p, false)
	if entry == nil {
		return
	}
	t.mu.Lock()
	t.endLocked(id, entry)
	evict := ""
	if t.countLocked(p.ID) > t.max {
		evict = t.idlestLocked(p.ID) // this session at the latest: it is idle now
		t.dropLocked(evict, t.entries[evict])
	}
	t.mu.Unlock()
	if evict != "" {
		t.closeSDKSession(evict)
	}
}

func (t *sessionTracker) serveExisting(w http.ResponseWriter, r *http.Request, p safety.Principal, id string) {
	t.mu.Lock()
	e := t.entries[id]
	switch {
	case e == nil:
		t.mu.Unlock()
		// Expired, deleted or never opened. 404 tells clients to start a new
		// session (the SDK answers the same for ids it does not know).
		http.Error(w, fmt.Sprintf("session not found: it was closed, or ended after %s idle; start a new session (initialize without %s)", t.idle, sessionIDHeader), http.StatusNotFound)
		return
	case e.principal != p.ID:
		t.mu.Unlock()
		// The SDK refuses too (TokenInfo.UserID is the principal's id), but a
		// stranger's request must not even keep the session alive.
		http.Error(w, "this MCP session was opened by another caller; start your own (initialize without "+sessionIDHeader+")", http.StatusForbidden)
		return
	}
	e.active++
	e.gen++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	t.mu.Unlock()

	sw := &sessionWriter{ResponseWriter: w}
	t.next.ServeHTTP(sw, r)

	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Method == http.MethodDelete && sw.status >= 200 && sw.status < 300 {
		// Ended by the client: the cap frees at once, not when the SDK's
		// bookkeeping catches up.
		e.active--
		t.dropLocked(id, e)
		return
	}
	t.endLocked(id, e)
}

// endLocked ends one request of the session and starts the idle timer when it
// was the last.
func (t *sessionTracker) endLocked(id string, e *sessionEntry) {
	e.active--
	if e.active > 0 || t.entries[id] != e {
		return
	}
	e.gen++
	gen := e.gen
	e.idleSince = time.Now()
	e.timer = time.AfterFunc(t.idle, func() { t.expire(id, e, gen) })
}

// expire ends a session idle since its timer started, unless a request came
// in meanwhile (the generation moved on).
func (t *sessionTracker) expire(id string, e *sessionEntry, gen uint64) {
	t.mu.Lock()
	if t.entries[id] != e || e.gen != gen || e.active > 0 {
		t.mu.Unlock()
		return
	}
	delete(t.entries, id)
	t.mu.Unlock()
	t.closeSDKSession(id)
	t.logger.Info("MCP session ended after being idle", "principal", e.principal, "idle", t.idle)
}

// closeSDKSession ends a session the tracker has let go of: requests for its
// id are answered 404 from here on; Close ends its goroutines and frees its
// memory.
func (t *sessionTracker) closeSDKSession(id string) {
	for ss := range t.live() {
		if ss.ID() == id {
			_ = ss.Close()
		}
	}
}

// idlestLocked is the id of the principal's session idle the longest (no
// request or stream open), or "" when all are in use.
func (t *sessionTracker) idlestLocked(principal string) string {
	var id string
	var since time.Time
	for sid, e := range t.entries {
		if e.principal == principal && e.active == 0 && (id == "" || e.idleSince.Before(since)) {
			id, since = sid, e.idleSince
		}
	}
	return id
}

func (t *sessionTracker) dropLocked(id string, e *sessionEntry) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
	if t.entries[id] == e {
		delete(t.entries, id)
	}
}

// pruneLocked forgets sessions the SDK no longer has (closed by Shutdown, or a
// failed initialize). Taking the SDK's list under t.mu is what makes it exact:
// an entry is registered only after its session joined that list.
func (t *sessionTracker) pruneLocked() {
	if len(t.entries) == 0 {
		return
	}
	live := map[string]bool{}
	for ss := range t.live() {
		live[ss.ID()] = true
	}
	for id, e := range t.entries {
		if !live[id] {
			t.dropLocked(id, e)
		}
	}
}

func (t *sessionTracker) unpendLocked(principal string) {
	if t.pending[principal]--; t.pending[principal] <= 0 {
		delete(t.pending, principal)
	}
}

// live yields the SDK's open HTTP sessions: one MCP server per tier ceiling
// and toolsets serves them all (stdio's servers are keyed by their local
// principal and are not among them).
func (t *sessionTracker) live() iter.Seq[*mcp.ServerSession] {
	return func(yield func(*mcp.ServerSession) bool) {
		for _, srv := range t.srv.HTTPServers() {
			for ss := range srv.Sessions() {
				if !yield(ss) {
					return
				}
			}
		}
	}
}

// startsSession reports whether a POST without a session id is an initialize,
// and its JSON-RPC id.
// The SDK keeps only sessions whose initialize succeeded; other such requests
// (a stray ping, a legacy client's request without a session) get a session
// closed before the answer, so they are neither counted nor capped. It reads
// the body as the router peeked it (peekBody, mcp_router.go: read once up to
// the /mcp limit and put back for the SDK); a body that does not parse cannot
// initialize anything. Requests of 2026-07-28 and every server/discover never
// get here: the router serves or answers them.
func startsSession(r *http.Request) (bool, json.RawMessage) {
	if m, ok := peekBody(r).find("initialize"); ok {
		return true, m.ID
	}
	return false, nil
}

// refuseNew answers 429 with a JSON-RPC error for the initialize that says
// what to do.
func (t *sessionTracker) refuseNew(w http.ResponseWriter, p safety.Principal, open int, reqID json.RawMessage) {
	msg := fmt.Sprintf("%s already has %d open MCP sessions, the most one caller may have (JARVIS_MCP_MAX_SESSIONS), "+
		"and every one is in use (a call or an event stream open); "+
		"close sessions you no longer need (HTTP DELETE /mcp with their %s header, what an SDK's close() should do)",
		p.ID, open, sessionIDHeader)
	t.logger.Warn("MCP session refused: too many open sessions", "principal", p.ID, "open", open, "max", t.max)
	if len(reqID) == 0 {
		reqID = json.RawMessage("null")
	}
	body, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": reqID,
		"error": map[string]any{"code": -32000, "message": msg},
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(int((t.idle+time.Second-1)/time.Second)))
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}

// sessionWriter notes the status and calls commit once, right before the
// headers go out (WriteHeader, the first Write or Flush). The SDK may write
// from another goroutine than ServeHTTP's, but never two at once and never
// after ServeHTTP returned.
type sessionWriter struct {
	http.ResponseWriter
	status    int
	commit    func(http.Header)
	committed bool
}

func (w *sessionWriter) commitOnce() {
	if !w.committed {
		w.committed = true
		if w.commit != nil {
			w.commit(w.Header())
		}
	}
}

func (w *sessionWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.commitOnce()
	w.ResponseWriter.WriteHeader(code)
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.commitOnce()
	return w.ResponseWriter.Write(b)
}

// Flush keeps SSE streaming (the SDK flushes every event).
func (w *sessionWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.commitOnce()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
