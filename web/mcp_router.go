package web

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/server"
)

// /mcp serves two generations of the protocol over streamable HTTP.
//
// Revisions up to 2025-11-25 are stateful: initialize opens a session
// (Mcp-Session-Id), the server may ask the client things (elicitation) and
// pushes notifications on the standalone GET stream; sessionTracker owns
// those sessions' life in front of the SDK's stateful handler.
//
// 2026-07-28 (SEP-2575) is stateless: every request names its revision in
// the MCP-Protocol-Version header and in params._meta, server/discover
// replaces initialize, subscriptions/listen replaces the GET stream and
// resources/subscribe. go-sdk serves it only from a stateless handler
// (StreamableServerTransport.SupportsProtocolVersion), and a stateless
// handler serves older clients badly (no sessions, no requests to the
// client, no resources/subscribe). So both handlers run side by side and
// mcpRouter picks one per request by the revision the request names. Both
// get the same servers, the same body limit, the bearer token check before
// them and the cross-origin check before that; each runs the SDK's
// DNS-rebinding check, and the router makes the same check before it answers
// anything itself.

// statelessVersion is the first revision served statelessly. Revisions are
// dates and compare as strings, as the SDK compares them.
const statelessVersion = server.StatelessVersion

// protocolVersionHeader names the revision a request follows.
const protocolVersionHeader = "MCP-Protocol-Version"

// Methods the router looks at.
const (
	methodDiscover = "server/discover"
	methodListen   = "subscriptions/listen"
)

// mcpRouter sends each /mcp request to the stateless handler or to the
// session tracker:
//
//   - a header or a _meta protocol version of 2026-07-28 or later goes to the
//     stateless handler, whatever Mcp-Session-Id says. A version newer than
//     any served is answered there (-32022 with the list), and so is a
//     header that disagrees with _meta (-32020).
//   - a server/discover at any other version, or with none, is answered here:
//     -32022 and HTTP 400 with the revisions /mcp serves. It is the probe of
//     2026-07-28 clients; answering it with a result an older revision has no
//     use for (or "method not found") leaves a client that reads only the
//     code to guess, and the revision says the server SHOULD answer this.
//   - everything else goes to the session tracker, as before.
//
// It also caps the subscriptions/listen streams one caller holds open on the
// stateless path, as the tracker caps sessions (each held its GET stream).
type mcpRouter struct {
	sessions   http.Handler // sessionTracker before the SDK's stateful handler
	stateless  http.Handler // the SDK's stateless handler
	maxListens int
	logger     *slog.Logger

	mu      sync.Mutex
	listens map[string]int // open subscriptions/listen requests by principal
}

func newMCPRouter(sessions, stateless http.Handler, maxListens int, logger *slog.Logger) *mcpRouter {
	if maxListens <= 0 {
		maxListens = DefaultMaxSessionsPerPrincipal
	}
	return &mcpRouter{sessions: sessions, stateless: stateless, maxListens: maxListens, logger: logger,
		listens: map[string]int{}}
}

func (m *mcpRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body *peekedBody
	if r.Method == http.MethodPost {
		body = peekBody(r)
		r = r.WithContext(context.WithValue(r.Context(), peekedBodyKey{}, body))
	}
	header, meta := r.Header.Get(protocolVersionHeader), body.metaVersion()
	switch {
	case header >= statelessVersion || meta >= statelessVersion:
		m.serveStateless(w, r, body)
	case body.has(methodDiscover):
		if hostAllowed(w, r) {
			refuseDiscover(w, body.idOf(methodDiscover), cmp.Or(meta, header))
		}
	default:
		m.sessions.ServeHTTP(w, r)
	}
}

// serveStateless serves a 2026-07-28 request; a subscriptions/listen stream
// is served only while its caller holds fewer than the cap.
func (m *mcpRouter) serveStateless(w http.ResponseWriter, r *http.Request, body *peekedBody) {
	// A listen stream by the header or by the body: the SDK refuses a
	// request where the two disagree, so counting either fails closed.
	listen := r.Header.Get("Mcp-Method") == methodListen || body.has(methodListen)
	p, ok := server.PrincipalFromToken(auth.TokenInfoFromContext(r.Context()))
	if !ok || !listen {
		// Without a caller the SDK refuses (getServer returns nil).
		m.stateless.ServeHTTP(w, r)
		return
	}
	if !hostAllowed(w, r) {
		return
	}
	m.mu.Lock()
	open := m.listens[p.ID]
	if open >= m.maxListens {
		m.mu.Unlock()
		m.refuseListen(w, p.ID, open, body.idOf(methodListen))
		return
	}
	m.listens[p.ID]++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if m.listens[p.ID]--; m.listens[p.ID] <= 0 {
			delete(m.listens, p.ID)
		}
		m.mu.Unlock()
	}()
	m.stateless.ServeHTTP(w, r)
}

// openListens is how many subscriptions/listen streams principal holds open.
func (m *mcpRouter) openListens(principal string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listens[principal]
}

// refuseListen answers 429 with a JSON-RPC error that says what to do.
func (m *mcpRouter) refuseListen(w http.ResponseWriter, principal string, open int, id json.RawMessage) {
	m.logger.Warn("MCP subscriptions/listen refused: too many open streams", "principal", principal, "open", open, "max", m.maxListens)
	writeRPCError(w, http.StatusTooManyRequests, id, -32000, fmt.Sprintf(
		"%s already holds %d subscriptions/listen streams open, the most one caller may hold (JARVIS_MCP_MAX_SESSIONS); "+
			"close the streams you no longer need (end their requests: what an SDK's unsubscribe or close does), "+
			"or listen for several resources on one stream (params.notifications.resourceSubscriptions)",
		principal, open), nil)
}

// refuseDiscover answers a server/discover that does not name 2026-07-28 or
// later: the unsupported-version error with every revision /mcp serves, as
// jarvis stdio answers it.
func refuseDiscover(w http.ResponseWriter, id json.RawMessage, requested string) {
	e := server.DiscoverRefusal(requested, protocolVersionHeader)
	writeRPCError(w, http.StatusBadRequest, id, int(e.Code), e.Message, e.Data)
}

// writeRPCError writes one JSON-RPC error response; id is null when the
// request had none.
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string, data any) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	e := map[string]any{"code": code, "message": msg}
	if data != nil {
		e["data"] = data
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": e})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// hostAllowed is the SDK's DNS-rebinding check (StreamableHTTPHandler.ServeHTTP),
// made before the router answers on its own: a request that reached a
// loopback address must name a loopback host, or a page whose name was
// rebound to 127.0.0.1 could talk to a local Jarvis. It answers 403 when not.
func hostAllowed(w http.ResponseWriter, r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || local == nil || !isLoopback(local.String()) || isLoopback(r.Host) {
		return true
	}
	http.Error(w, fmt.Sprintf("Forbidden: invalid Host header %q", r.Host), http.StatusForbidden)
	return false
}

// isLoopback reports whether addr (host, host:port, [v6]:port) is loopback,
// as the SDK decides it.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// peekedBody is what /mcp reads of a POST body before the SDK does: its
// JSON-RPC messages, one or a batch. msgs is nil when a plain JSON parser
// cannot read the body as such (the SDK parses by rules of its own).
type peekedBody struct {
	msgs []peekedMessage
}

type peekedMessage struct {
	ID     json.RawMessage
	Method string
	Params json.RawMessage
}

type peekedBodyKey struct{}

// peekBody reads a POST body's messages once per request: the router keeps
// what it read in the request's context, where the session tracker finds it
// (startsSession). The body is read up to the /mcp limit and put back for
// the SDK, which enforces the limit.
func peekBody(r *http.Request) *peekedBody {
	if b, ok := r.Context().Value(peekedBodyKey{}).(*peekedBody); ok {
		return b
	}
	b := &peekedBody{}
	if r.Body == nil {
		return b
	}
	head, _ := io.ReadAll(io.LimitReader(r.Body, mcpMaxBody+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	head = bytes.TrimSpace(head)
	if len(head) > 0 && head[0] == '{' {
		head = append(append([]byte{'['}, head...), ']')
	}
	// Field names are matched exactly, as the SDK matches them: a
	// "Method" or "_META" must not mean to the router what it does not
	// mean to the SDK.
	var raw []map[string]json.RawMessage
	if json.Unmarshal(head, &raw) != nil {
		return b
	}
	for _, m := range raw {
		var pm peekedMessage
		if json.Unmarshal(m["method"], &pm.Method) != nil {
			pm.Method = ""
		}
		pm.ID, pm.Params = m["id"], m["params"]
		b.msgs = append(b.msgs, pm)
	}
	return b
}

// has reports whether any message calls method.
func (b *peekedBody) has(method string) bool {
	_, ok := b.find(method)
	return ok
}

// idOf is the JSON-RPC id of the first message that calls method.
func (b *peekedBody) idOf(method string) json.RawMessage {
	m, _ := b.find(method)
	return m.ID
}

func (b *peekedBody) find(method string) (peekedMessage, bool) {
	if b == nil {
		return peekedMessage{}, false
	}
	for _, m := range b.msgs {
		if m.Method == method {
			return m, true
		}
	}
	return peekedMessage{}, false
}

// metaVersion is the newest protocol version any message names in
// params._meta, or "".
func (b *peekedBody) metaVersion() string {
	if b == nil {
		return ""
	}
	v := ""
	for _, m := range b.msgs {
		var params, meta map[string]json.RawMessage
		if json.Unmarshal(m.Params, &params) != nil || json.Unmarshal(params["_meta"], &meta) != nil {
			continue
		}
		var mv string
		if json.Unmarshal(meta[mcp.MetaKeyProtocolVersion], &mv) == nil {
			v = max(v, mv)
		}
	}
	return v
}
