// Package web is the thin HTTP app around the MCP server: health, operator login,
// streamable HTTP MCP at /mcp, the approval API, the event feed and the console.
package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/server"
	"github.com/jarvis-homelab/jarvis/server/watch"
	"github.com/jarvis-homelab/jarvis/store"
)

const sessionCookie = "jarvis_session"

// Options configure the HTTP app.
type Options struct {
	Server   *server.Server
	Store    *store.Store
	Tokens   *Tokens
	Password string
	Version  string
	Logger   *slog.Logger
	// PVEPing reports whether the cluster API answers (for /api/health, which
	// calls it at most every few seconds, see pveCheckTTL).
	PVEPing func(ctx context.Context) error
	// Watcher, when set, is told how many feed streams are open: it reads the
	// cluster and publishes snapshots and alerts only while anyone listens.
	// /api/health adds what its polls find wrong while it polls.
	Watcher *watch.Watcher
	// Heartbeat is the SSE keep-alive interval (default 15 s).
	Heartbeat time.Duration
	// FeedWriteTimeout ends a feed stream whose client stops reading (default 20 s).
	FeedWriteTimeout time.Duration
	// SecureCookie marks the session cookie Secure (behind HTTPS).
	SecureCookie bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed
	// (JARVIS_TRUSTED_PROXIES); without them the peer address is the client.
	TrustedProxies []*net.IPNet
	// SessionIdle ends an MCP session that has had no open request for this
	// long (JARVIS_MCP_SESSION_IDLE; DefaultSessionIdle when 0). A call waiting
	// for approval and an open standalone GET stream are open requests, so
	// only sessions clients forgot (no DELETE, as the TypeScript SDK's close())
	// end; each holds goroutines and memory until then.
	SessionIdle time.Duration
	// MaxSessionsPerPrincipal caps the MCP sessions one caller (token) may
	// have open (JARVIS_MCP_MAX_SESSIONS; DefaultMaxSessionsPerPrincipal when
	// 0); at the cap its longest idle session makes room, and only when all
	// are in use is one more initialize refused with 429 and what to do.
	// Clients of protocol 2026-07-28 have no sessions: the same number caps
	// the subscriptions/listen streams one caller holds open.
	MaxSessionsPerPrincipal int
	// Metrics, when set, is served at GET /metrics to operator tokens only: the
	// Prometheus exposition (metrics.Metrics.Handler). Nil: no route.
	Metrics http.Handler
	// Demo, when set, is the simulated cluster of `jarvis serve --demo`: the
	// operator may crash its guests (POST /api/demo/guests/:vmid/crash) to try
	// crash detection and standing approvals. Nil: no such route.
	Demo DemoCluster
}

// App is the echo application.
type App struct {
	opts    Options
	e       *echo.Echo
	mcp     *mcp.StreamableHTTPHandler
	started time.Time

	// sessions wraps mcp: who opened each session, the cap, the idle timeout.
	sessions *sessionTracker
	// router sends 2026-07-28 requests to a stateless handler, the others to
	// sessions, and caps the listen streams per caller.
	router *mcpRouter

	loginMu      sync.Mutex
	loginLimiter map[string]*rate.Limiter
	loginGlobal  *rate.Limiter

	feedMu   sync.Mutex
	feedDone chan struct{}

	// The last ping of the Proxmox API for /api/health, reused for pveTTL.
	pveMu      sync.Mutex
	pveTTL     time.Duration
	pveAt      time.Time
	pveProblem *watch.Problem
}

// New builds the app and its routes.
func New(opts Options) *App {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.FeedWriteTimeout <= 0 {
		opts.FeedWriteTimeout = 20 * time.Second
	}
	a := &App{opts: opts, e: echo.New(), started: time.Now(), loginLimiter: map[string]*rate.Limiter{},
		loginGlobal: rate.NewLimiter(rate.Every(loginGlobalEvery), loginGlobalBurst), feedDone: make(chan struct{}),
		pveTTL: pveCheckTTL}
	e := a.e
	e.HideBanner, e.HidePort = true, true
	// Rate limiting by address must not trust X-Forwarded-For from anyone; behind
	// a configured proxy it must, or every client would share one address.
	e.IPExtractor = echo.ExtractIPDirect()
	if len(opts.TrustedProxies) > 0 {
		trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range opts.TrustedProxies {
			trust = append(trust, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	}
	e.HTTPErrorHandler = a.errorHandler
	e.Use(middleware.Recover())
	e.Use(securityHeaders)
	// A page on another site must not drive the API or /mcp through the
	// operator's browser (CSRF); non-browser clients send no Origin and pass.
	e.Use(echo.WrapMiddleware(http.NewCrossOriginProtection().Handler))

	e.GET("/api/health", a.health)
	e.POST("/api/auth/login", a.login, middleware.BodyLimit("4K"))
	e.POST("/api/auth/logout", a.logout)

	// MCP: one prebuilt server per tier ceiling and toolsets; the SDK calls
	// getServer per request.
	getServer := func(r *http.Request) *mcp.Server {
		p, ok := server.PrincipalFromToken(auth.TokenInfoFromContext(r.Context()))
		if !ok {
			return nil
		}
		return opts.Server.MCP(p, nil)
	}
	// Protocol revisions up to 2025-11-25, with sessions.
	a.mcp = mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		// No SessionTimeout: a.sessions ends idle sessions, counting an open
		// GET stream as activity, which the SDK's timer does not.
		MaxRequestBodyBytes: mcpMaxBody,
		Logger:              opts.Logger,
	})
	a.sessions = newSessionTracker(a.mcp, opts.Server, opts.SessionIdle, opts.MaxSessionsPerPrincipal, opts.Logger)
	// 2026-07-28, stateless; the router picks by the request's revision
	// (mcp_router.go).
	stateless := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless:           true,
		MaxRequestBodyBytes: mcpMaxBody,
		Logger:              opts.Logger,
		// A client of this revision has no session to send
		// notifications/cancelled on: ending its request cancels the call,
		// as the cancellation does on a session (dispatch writes the end
		// row on a context of its own).
		PropagateRequestCancellation: true,
	})
	a.router = newMCPRouter(a.sessions, stateless, opts.MaxSessionsPerPrincipal, opts.Logger)
	mcpHandler := auth.RequireBearerToken(opts.Tokens.MCPVerifier(), nil)(a.router)
	e.Any("/mcp", echo.WrapHandler(mcpHandler))

	api := e.Group("/api", a.requireOperator, middleware.BodyLimit("64K"))
	api.GET("/approvals", a.listApprovals)
	api.GET("/approvals/:id", a.getApproval)
	api.POST("/approvals/:id/approve", a.decideApproval(true))
	api.POST("/approvals/:id/deny", a.decideApproval(false))
	api.GET("/safety", a.getSafety)
	api.PUT("/safety", a.putSafety)
	api.GET("/tools", a.listTools)
	api.GET("/events", a.events)
	api.GET("/memory/events", a.listEvents(false))
	api.GET("/memory/events/unresolved", a.listEvents(true))
	api.POST("/memory/events", a.createEvent)
	api.POST("/memory/events/:id/resolve", a.resolveEvent)
	api.GET("/memory/preferences", a.listPreferences)
	api.PUT("/memory/preferences/:key", a.putPreference)
	api.GET("/audit", a.listAudit)
	api.GET("/audit/search", a.searchAudit)
	api.GET("/approvals/history", a.approvalHistory)
	api.GET("/guests/:vmid", a.getGuest)
	api.GET("/guests/:vmid/metrics", a.getGuestMetrics)
	a.mountRules(api)
	a.mountDemo(api)

	a.mountConsole()
	a.mountMetrics()
	return a
}

// Serve listens on addr until Shutdown.
func (a *App) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.e,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: it would cut the SSE feed and MCP streams.
		IdleTimeout: 120 * time.Second,
	}
	a.e.Server = srv
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends the feed streams and MCP sessions first (they would hold Shutdown
// until its deadline), then the HTTP server.
func (a *App) Shutdown(ctx context.Context) error {
	a.feedMu.Lock()
	select {
	case <-a.feedDone:
	default:
		close(a.feedDone)
	}
	a.feedMu.Unlock()
	for _, srv := range a.opts.Server.HTTPServers() {
		for ss := range srv.Sessions() {
			_ = ss.Close()
		}
	}
	return a.e.Shutdown(ctx)
}

// How /api/health checks the Proxmox API. It pings the API itself: the watcher
// polls only while someone follows the feed, and health must not depend on
// that. The answer is reused for a few seconds, so Docker, probes and every
// console load together cost the cluster at most one request per pveCheckTTL;
// the ping's deadline stays below `jarvis healthcheck`'s 4 s.
const (
	pveCheckTTL     = 5 * time.Second
	pveCheckTimeout = 2500 * time.Millisecond
)

// health answers 200 "ok", 200 "degraded" (Jarvis serves, but a dependency such
// as the Proxmox API fails: a liveness probe must not restart it for that) or
// 503 "down" (no store or no audit log: every call is refused). Each failing
// dependency is listed in problems with the cause and what to change.
func (a *App) health(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	problems := []watch.Problem{}
	storeErr := a.opts.Store.Ping(ctx)
	if storeErr != nil {
		problems = append(problems, watch.Problem{Dependency: store.DependencyStore, Error: storeErr.Error(),
			Fix: "check DB_PATH, the disk it is on, and that Jarvis may write the file"})
	}
	// Without an audit log that takes rows, every call is refused.
	auditErr := storeErr
	if storeErr == nil {
		if auditErr = a.opts.Store.AuditWritable(ctx); auditErr != nil {
			problems = append(problems, watch.Problem{Dependency: store.DependencyAuditLog, Error: auditErr.Error(),
				Fix: "every tool call is refused until the audit log takes rows again; `jarvis audit verify` says what is wrong"})
		}
	}
	pveWord := "ok"
	if p := a.checkPVE(c.Request().Context()); p != nil {
		problems = append(problems, *p)
		pveWord = "unreachable"
	}
	// The watcher adds what the ping cannot see (a refused storage read, say);
	// while the API does not answer at all, its reports are the same outage
	// in other words, so only the ping's is listed.
	if a.opts.Watcher != nil && pveWord == "ok" {
		for _, p := range a.opts.Watcher.Problems() {
			if !slices.ContainsFunc(problems, func(q watch.Problem) bool { return q.Error == p.Error }) {
				problems = append(problems, p)
				if pveWord == "ok" {
					pveWord = "degraded"
				}
			}
		}
	}
	status := "ok"
	code := http.StatusOK
	switch {
	case storeErr != nil || auditErr != nil:
		status, code = "down", http.StatusServiceUnavailable
	case len(problems) > 0:
		status = "degraded"
	}
	out := map[string]any{
		"status":         status,
		"version":        a.opts.Version,
		"uptime_seconds": int64(time.Since(a.started).Seconds()),
		"store":          okWord(storeErr == nil),
		"audit_log":      map[bool]string{true: "ok", false: "broken"}[auditErr == nil],
		"pve_api":        pveWord,
		"problems":       problems,
	}
	// With several clusters, which (the default first) and whether each is
	// watched: the console's cluster picker.
	if names := a.opts.Server.ClusterNames(); len(names) > 1 {
		type clusterInfo struct {
			Name    string `json:"name"`
			Default bool   `json:"default,omitempty"`
			Watched bool   `json:"watched"`
		}
		list := make([]clusterInfo, len(names))
		for i, n := range names {
			list[i] = clusterInfo{Name: n, Default: i == 0, Watched: a.opts.Watcher != nil && a.opts.Watcher.Cluster(n) != nil}
		}
		out["clusters"] = list
	}
	return c.JSON(code, out)
}

// checkPVE pings the Proxmox API, or reuses the last answer for pveTTL, and
// returns the problem, if any. A caller hanging up does not cut the ping short,
// so its answer can be kept for the next one.
func (a *App) checkPVE(ctx context.Context) *watch.Problem {
	if a.opts.PVEPing == nil {
		return &watch.Problem{Dependency: store.DependencyPVE, Error: "no Proxmox API is configured",
			Fix: "set JARVIS_NODES, PVE_TOKEN_ID and PVE_TOKEN_SECRET"}
	}
	a.pveMu.Lock()
	defer a.pveMu.Unlock()
	if !a.pveAt.IsZero() && time.Since(a.pveAt) < a.pveTTL {
		return a.pveProblem
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pveCheckTimeout)
	defer cancel()
	var problem *watch.Problem
	if err := a.opts.PVEPing(pctx); err != nil {
		p := watch.Diagnose(err)
		if names := a.opts.Server.ClusterNames(); len(names) > 1 {
			p = p.ForCluster(names[0]) // the default's, the one pinged
		}
		if errors.Is(pctx.Err(), context.DeadlineExceeded) {
			p.Error = fmt.Sprintf("the Proxmox API did not answer within %s", pveCheckTimeout)
		}
		p.Since = time.Now()
		if a.pveProblem != nil && a.pveProblem.Error == p.Error {
			p.Since = a.pveProblem.Since
		}
		problem = &p
	}
	a.pveAt, a.pveProblem = time.Now(), problem
	return problem
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "unreachable"
}

type loginRequest struct {
	Password string `json:"password"`
}

func (a *App) login(c echo.Context) error {
	ip := c.RealIP()
	ok, delay, refund := a.loginAllowed(ip)
	if !ok {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(delay.Seconds())+1))
		return apiError(http.StatusTooManyRequests, "too many login attempts; wait before trying again", nil)
	}
	var req loginRequest
	if err := c.Bind(&req); err != nil || req.Password == "" {
		return apiError(http.StatusBadRequest, "send JSON {\"password\": \"…\"}", nil)
	}
	if subtle.ConstantTimeCompare([]byte(req.Password), []byte(a.opts.Password)) != 1 {
		a.opts.Logger.Warn("failed operator login", "addr", ip)
		return apiError(http.StatusUnauthorized, "wrong password", nil)
	}
	// A successful login gives the client its attempts back.
	refund()
	a.loginMu.Lock()
	delete(a.loginLimiter, clientKey(ip))
	a.loginMu.Unlock()
	tok, exp, err := a.opts.Tokens.IssueOperator(c.Request().Context())
	if err != nil {
		return fmt.Errorf("issuing token: %w", err)
	}
	c.SetCookie(&http.Cookie{
		Name: sessionCookie, Value: tok, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: a.opts.SecureCookie,
	})
	return c.JSON(http.StatusOK, map[string]any{"token": tok, "expiresIn": int64(OperatorTTL.Seconds())})
}

// logout ends every operator session (there is one operator), not only this
// browser's: a token copied elsewhere stops working too.
func (a *App) logout(c echo.Context) error {
	raw := bearer(c.Request())
	if claims, err := a.opts.Tokens.Verify(c.Request().Context(), raw); err == nil && claims.Kind == safety.Operator {
		if err := a.opts.Tokens.EndOperatorSessions(c.Request().Context()); err != nil {
			return err
		}
	}
	c.SetCookie(&http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return c.NoContent(http.StatusNoContent)
}

// Login throttling: each client network gets 5 attempts, one more every 12 s;
// all clients together get 20 failures, one more every 3 s, so rotating
// addresses (an IPv6 /64 is one client) buys no more guesses.
const (
	loginPerClientBurst = 5
	loginPerClientEvery = 12 * time.Second
	loginGlobalBurst    = 20
	loginGlobalEvery    = 3 * time.Second
	loginMaxClients     = 4096
)

// loginAllowed takes one attempt from the client's bucket and one from the
// global bucket. refund gives the global attempt back after a correct password:
// only failures spend it, so the operator is shut out only while someone is
// actually guessing.
func (a *App) loginAllowed(ip string) (ok bool, retry time.Duration, refund func()) {
	now := time.Now()
	a.loginMu.Lock()
	defer a.loginMu.Unlock()
	key := clientKey(ip)
	l, found := a.loginLimiter[key]
	if !found {
		if len(a.loginLimiter) >= loginMaxClients {
			// Forget clients whose bucket has refilled: they lose nothing.
			for k, v := range a.loginLimiter {
				if v.TokensAt(now) >= loginPerClientBurst {
					delete(a.loginLimiter, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Every(loginPerClientEvery), loginPerClientBurst)
		a.loginLimiter[key] = l
	}
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	g := a.loginGlobal.ReserveN(now, 1)
	if d := g.DelayFrom(now); d > 0 {
		g.CancelAt(now)
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, func() {
		a.loginMu.Lock()
		defer a.loginMu.Unlock()
		g.Cancel()
	}
}

// clientKey groups an address with its network: an IPv6 /64 is one client.
func clientKey(ip string) string {
	addr := net.ParseIP(ip)
	if addr == nil {
		return ip
	}
	if addr.To4() == nil {
		return addr.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return addr.String()
}

// requireOperator lets through operator tokens only; agent tokens get 403.
func (a *App) requireOperator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw := bearer(c.Request())
		if raw == "" {
			return apiError(http.StatusUnauthorized, "log in first: send Authorization: Bearer <token>", nil)
		}
		claims, err := a.opts.Tokens.Verify(c.Request().Context(), raw)
		if err != nil {
			return apiError(http.StatusUnauthorized, "the token is invalid or expired; log in again", nil)
		}
		if claims.Kind != safety.Operator {
			return apiError(http.StatusForbidden, "agent tokens cannot use the operator API", nil)
		}
		return next(c)
	}
}

// apiErr is the JSON error body: {error, details}.
type apiErr struct {
	status  int
	Message string `json:"error"`
	Details any    `json:"details,omitempty"`
}

func (e *apiErr) Error() string { return e.Message }

func apiError(status int, msg string, details any) error {
	return &apiErr{status: status, Message: msg, Details: details}
}

func (a *App) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiErr
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = &apiErr{status: he.Code, Message: fmt.Sprint(he.Message)}
	default:
		a.opts.Logger.Error("request failed", "path", c.Path(), "err", err)
		ae = &apiErr{status: http.StatusInternalServerError, Message: "internal error; see the server log"}
	}
	_ = c.JSON(ae.status, ae)
}

// securityHeaders sets a strict CSP and the usual headers on every response.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		return next(c)
	}
}
