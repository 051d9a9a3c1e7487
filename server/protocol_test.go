package server

// The MCP protocol as clients see it: what goes on the wire (result types,
// capabilities, caching hints, error codes), on the 2026-07-28 revision and
// on 2025-11-25, and flows that span requests (an elicitation's retry, a wait
// for approval followed by the task).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/time/rate"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/store"
	"github.com/jarvis-homelab/jarvis/tools"
)

const (
	protocolLegacy = "2025-11-25"
	protocolNew    = "2026-07-28"
)

// rawClient speaks JSON-RPC to a Jarvis MCP server over an in-memory pipe and
// returns results as the bytes that crossed it.
type rawClient struct {
	t       *testing.T
	conn    mcp.Connection
	version string
	next    int64
	// initialized is the initialize result (protocolLegacy only).
	initialized map[string]json.RawMessage
}

// openRaw connects a raw client as p. On protocolLegacy it performs the
// initialize handshake; on protocolNew every request carries the _meta the
// revision asks for, and there is no handshake.
func openRaw(t *testing.T, h *harness, p safety.Principal, version string) *rawClient {
	t.Helper()
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(p, &p).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	conn, err := ct.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, version: version}
	if version < protocolNew {
		res, werr := c.call("initialize", map[string]any{"protocolVersion": version, "capabilities": map[string]any{},
			"clientInfo": map[string]any{"name": "raw", "version": "1"}})
		if werr != nil {
			t.Fatal(werr)
		}
		if err := json.Unmarshal(res, &c.initialized); err != nil {
			t.Fatal(err)
		}
		if err := conn.Write(ctx, &jsonrpc.Request{Method: "notifications/initialized", Params: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// call sends one request and returns its result or its error.
func (c *rawClient) call(method string, params map[string]any) (json.RawMessage, *jsonrpc.Error) {
	c.t.Helper()
	params = maps.Clone(params)
	if params == nil {
		params = map[string]any{}
	}
	if c.version >= protocolNew {
		params["_meta"] = map[string]any{
			mcp.MetaKeyProtocolVersion:    c.version,
			mcp.MetaKeyClientCapabilities: map[string]any{},
			mcp.MetaKeyClientInfo:         map[string]any{"name": "raw", "version": "1"},
		}
	}
	raw, err := json.Marshal(params)
	if err != nil {
		c.t.Fatal(err)
	}
	c.next++
	id, _ := jsonrpc.MakeID(float64(c.next))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, &jsonrpc.Request{ID: id, Method: method, Params: raw}); err != nil {
		c.t.Fatal(err)
	}
	for {
		msg, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("%s: %v", method, err)
		}
		res, ok := msg.(*jsonrpc.Response)
		if !ok || res.ID != id {
			continue // a notification
		}
		if res.Error != nil {
			var we *jsonrpc.Error
			if !errors.As(res.Error, &we) {
				c.t.Fatalf("%s: error %T %v", method, res.Error, res.Error)
			}
			return nil, we
		}
		return res.Result, nil
	}
}

// result is call for a request that must succeed, decoded as a JSON object.
func (c *rawClient) result(method string, params map[string]any) map[string]any {
	c.t.Helper()
	raw, werr := c.call(method, params)
	if werr != nil {
		c.t.Fatalf("%s: %v", method, werr)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s: %s: %v", method, raw, err)
	}
	return out
}

// connectVersion is harness.connect on a chosen protocol revision.
func (h *harness) connectVersion(p safety.Principal, version string, elicit func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error)) *mcp.ClientSession {
	h.t.Helper()
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(p, &p).Connect(ctx, st, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, &mcp.ClientOptions{ElicitationHandler: elicit}).
		Connect(ctx, ct, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cs.Close() })
	return cs
}

// The retry that carries a person's answer to an elicitation is not charged
// to the rate limit again: with a RED burst of one, a "no" is denied, not
// rate_limited, and a "yes" runs. The question itself is charged. A caller
// who is not asked by elicitation gains nothing by attaching a request state.
func TestElicitationAnswerIsNotChargedTwice(t *testing.T) {
	oneRed := func(o *Options) {
		o.Limiter = safety.NewRateLimiter(safety.RateLimits{Yellow: rate.Inf, YellowBurst: 1000, Red: rate.Every(time.Hour), RedBurst: 1})
	}
	accept := func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
	}
	decline := func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "decline"}, nil
	}
	ctx := context.Background()
	stop := func(vmid int) *mcp.CallToolParams {
		return &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": vmid}}
	}

	// Input requests in the result on 2026-07-28; a request from the server
	// while the call is open on 2025-11-25 (the SDK calls the tool again
	// with the answer). Both retries reach dispatch with a request state.
	for _, version := range []string{protocolNew, protocolLegacy} {
		t.Run("decline is denied/"+version, func(t *testing.T) {
			h := newHarness(t, oneRed)
			res, err := h.connectVersion(operator, version, decline).CallTool(ctx, stop(101))
			if err != nil {
				t.Fatal(err)
			}
			if r := refusalOf(t, res); r.Decision != safety.Denied {
				t.Fatalf("a declined elicitation answered %s: %s", r.Decision, r.Reason)
			}
			if h.guestStatus(101) != "running" {
				t.Fatal("a declined call stopped the VM")
			}
		})
		t.Run("accept runs once/"+version, func(t *testing.T) {
			h := newHarness(t, oneRed)
			cs := h.connectVersion(operator, version, accept)
			res, err := cs.CallTool(ctx, stop(101))
			if err != nil {
				t.Fatal(err)
			}
			if out := structured[tools.TaskResult](t, res); !out.OK || h.guestStatus(101) != "stopped" || h.executions("stop_vm") != 1 {
				t.Fatalf("accepted: %+v, %d executions", out, h.executions("stop_vm"))
			}
			// The question was charged: the burst of one is spent.
			res, err = cs.CallTool(ctx, stop(102))
			if err != nil {
				t.Fatal(err)
			}
			if r := refusalOf(t, res); r.Decision != safety.RateLimited {
				t.Fatalf("the next RED call answered %s, want rate_limited", r.Decision)
			}
		})
	}

	t.Run("an agent's request state is still charged", func(t *testing.T) {
		h := newHarness(t, oneRed)
		if r := refusalOf(t, h.call(agentRed, "stop_vm", map[string]any{"vmid": 105})); r.Decision != safety.NeedsApproval {
			t.Fatalf("first call: %+v", r)
		}
		for _, state := range []string{"junk", "x.y"} {
			res := h.srv.Dispatch(ctx, Call{Principal: agentRed, Tool: "stop_vm", Args: json.RawMessage(`{"vmid":105}`), Elicitation: true,
				RequestState: state, Confirm: &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}})
			if r := refusalOf(t, res); r.Decision != safety.RateLimited {
				t.Fatalf("an agent with request state %q answered %s, want rate_limited", state, r.Decision)
			}
		}
		if n, err := h.store.ListApprovals(ctx, "pending"); err != nil || len(n) != 1 {
			t.Fatalf("pending approvals %d (%v), want the first call's one", len(n), err)
		}
	})
}

// Only a request state that verifies (checked, not spent, before the rate
// limit) spares its retry the charge; junk is charged as any call. With a
// RED burst of one spent on the question, a junk retry is rate_limited and a
// genuine one is not, for an operator and for an agent asked by elicitation.
// Nothing runs either way.
func TestJunkRequestStateIsCharged(t *testing.T) {
	ctx := context.Background()
	yes := &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}
	no := &mcp.ElicitResult{Action: "decline"}
	const args = `{"vmid":105}`
	send := func(h *harness, p safety.Principal, tool, args, state string, answer *mcp.ElicitResult) *mcp.CallToolResult {
		return h.srv.Dispatch(ctx, Call{Principal: p, Tool: tool, Args: json.RawMessage(args), Elicitation: true, RequestState: state, Confirm: answer})
	}
	// ask puts the question (charging p's burst of one) and returns its state.
	ask := func(t *testing.T, h *harness, p safety.Principal) string {
		t.Helper()
		res := send(h, p, "stop_vm", args, "", nil)
		if res.RequestState == "" || len(res.InputRequests) == 0 {
			t.Fatalf("%s was not asked: %s", p.ID, textOf(res))
		}
		return res.RequestState
	}
	altered := func(state string) string {
		b := []byte(state)
		if b[len(b)-2] = 'A'; state[len(b)-2] == 'A' { // a character of the signature
			b[len(b)-2] = 'B'
		}
		return string(b)
	}
	for _, who := range []struct {
		name     string
		p, other safety.Principal
	}{
		{"operator", operator, safety.Principal{ID: "operator:other", Kind: safety.Operator, MaxTier: safety.Red}},
		{"agent", agentRed, safety.Principal{ID: "agent:other", Kind: safety.Agent, MaxTier: safety.Red}},
	} {
		for _, tc := range []struct {
			name string
			// retry answers the question whose state is given, after it.
			retry func(t *testing.T, h *harness, state string, later func(time.Duration)) *mcp.CallToolResult
			want  safety.Decision
		}{
			{"the state asked for, declined", func(t *testing.T, h *harness, st string, _ func(time.Duration)) *mcp.CallToolResult {
				return send(h, who.p, "stop_vm", args, st, no)
			}, safety.Denied},
			{"forged", func(t *testing.T, h *harness, _ string, _ func(time.Duration)) *mcp.CallToolResult {
				return send(h, who.p, "stop_vm", args, "junk", yes)
			}, safety.RateLimited},
			{"signature altered", func(t *testing.T, h *harness, st string, _ func(time.Duration)) *mcp.CallToolResult {
				return send(h, who.p, "stop_vm", args, altered(st), yes)
			}, safety.RateLimited},
			{"for other arguments", func(t *testing.T, h *harness, st string, _ func(time.Duration)) *mcp.CallToolResult {
				return send(h, who.p, "stop_vm", `{"vmid":101}`, st, yes)
			}, safety.RateLimited},
			{"for another tool", func(t *testing.T, h *harness, st string, _ func(time.Duration)) *mcp.CallToolResult {
				return send(h, who.p, "restart_vm", args, st, yes)
			}, safety.RateLimited},
			{"another caller's", func(t *testing.T, h *harness, st string, _ func(time.Duration)) *mcp.CallToolResult {
				ask(t, h, who.other)
				return send(h, who.other, "stop_vm", args, st, yes)
			}, safety.RateLimited},
			{"expired", func(t *testing.T, h *harness, st string, later func(time.Duration)) *mcp.CallToolResult {
				later(2 * time.Minute) // the harness's states live a minute; the burst refills hourly
				return send(h, who.p, "stop_vm", args, st, yes)
			}, safety.RateLimited},
			{"already used", func(t *testing.T, h *harness, st string, _ func(time.Duration)) *mcp.CallToolResult {
				if r := refusalOf(t, send(h, who.p, "stop_vm", args, st, no)); r.Decision != safety.Denied {
					t.Fatalf("first answer: %s, want denied", r.Decision)
				}
				return send(h, who.p, "stop_vm", args, st, yes)
			}, safety.RateLimited},
		} {
			t.Run(who.name+"/"+tc.name, func(t *testing.T) {
				var mu sync.Mutex
				var skew time.Duration
				later := func(d time.Duration) { mu.Lock(); skew += d; mu.Unlock() }
				h := newHarness(t, func(o *Options) {
					o.Limiter = safety.NewRateLimiter(safety.RateLimits{Yellow: rate.Inf, YellowBurst: 1000, Red: rate.Every(time.Hour), RedBurst: 1})
					o.ElicitAgents = true
					o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(skew) }
				})
				r := refusalOf(t, tc.retry(t, h, ask(t, h, who.p), later))
				if r.Decision != tc.want {
					t.Fatalf("retry answered %s (%s), want %s", r.Decision, r.Reason, tc.want)
				}
				if h.guestStatus(105) != "running" || h.guestStatus(101) != "running" || h.executions("stop_vm") != 0 || h.executions("restart_vm") != 0 {
					t.Fatal("a refused retry ran")
				}
			})
		}
	}
}

// Resource reads and prompts fail with the spec's JSON-RPC codes: a target
// that does not exist is "resource not found" (-32602, data.uri), a refusal
// or a failure an internal error (-32603) saying why; a prompt asked for an
// alert that is not open, or with a malformed id, has invalid params.
func TestResourceAndPromptErrorsHaveTheirCodes(t *testing.T) {
	ctx := context.Background()
	type want struct {
		code    int64
		message string // contained in the message
		refusal safety.Decision
	}
	check := func(t *testing.T, uri string, err error, w want) {
		t.Helper()
		var we *jsonrpc.Error
		if !errors.As(err, &we) {
			t.Fatalf("%s: error %T %v, want a JSON-RPC error", uri, err, err)
		}
		if we.Code != w.code || !strings.Contains(we.Message, w.message) {
			t.Fatalf("%s: code %d message %q, want %d and %q", uri, we.Code, we.Message, w.code, w.message)
		}
		var data struct {
			URI     string   `json:"uri"`
			Refusal *Refusal `json:"refusal"`
		}
		if err := json.Unmarshal(we.Data, &data); err != nil || data.URI != uri {
			t.Fatalf("%s: data %s (%v), want the uri", uri, we.Data, err)
		}
		if (data.Refusal == nil) != (w.refusal == "") || (data.Refusal != nil && data.Refusal.Decision != w.refusal) {
			t.Fatalf("%s: data %s, want refusal %q", uri, we.Data, w.refusal)
		}
	}
	for _, version := range []string{protocolNew, protocolLegacy} {
		t.Run(version, func(t *testing.T) {
			h := newHarness(t)
			cs := h.connectVersion(agentRed, version, nil)
			for uri, w := range map[string]want{
				"jarvis://nodes/nosuchnode/status": {code: jsonrpc.CodeInvalidParams, message: `no node "nosuchnode" in this cluster; nodes are: agent, agent1, home, pve`},
				"jarvis://nodes/no_such/status":    {code: jsonrpc.CodeInvalidParams, message: "Resource not found: invalid arguments"},
				// Matches no template: the SDK answers alike.
				"jarvis://nodes/nope!/status": {code: jsonrpc.CodeInvalidParams, message: "Resource not found"},
			} {
				_, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
				check(t, uri, err, w)
			}
			h.sim.FailNext("/cluster/status", 500, "backend exploded")
			_, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "jarvis://cluster/summary"})
			check(t, "jarvis://cluster/summary", err, want{code: jsonrpc.CodeInternalError, message: "backend exploded"})

			for args, msg := range map[string]string{"999999": "there is no open alert 999999", "nine": "alert_id must be the number"} {
				_, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "remediate_alert", Arguments: map[string]string{"alert_id": args}})
				var we *jsonrpc.Error
				if !errors.As(err, &we) || we.Code != jsonrpc.CodeInvalidParams || !strings.Contains(we.Message, msg) {
					t.Errorf("remediate_alert %q: %v, want -32602 %q", args, err, msg)
				}
			}

			// Refused: the audit row of a read cannot be written.
			h.store.Close()
			_, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "jarvis://nodes/pve/status"})
			check(t, "jarvis://nodes/pve/status", err, want{code: jsonrpc.CodeInternalError, message: "audit log could not be written", refusal: safety.Blocked})
		})
	}
}

// A call of a tool that is not registered for the caller is answered by
// Jarvis's middleware, not the SDK's tool handler; on 2026-07-28 its result
// still says resultType "complete", as every tools/call result must. On
// 2025-11-25 the field does not exist.
func TestUnregisteredToolResultIsComplete(t *testing.T) {
	h := newHarness(t)
	green := safety.Principal{ID: "agent:reader", Kind: safety.Agent, MaxTier: safety.Green}
	for _, c := range []struct {
		version, want string
	}{{protocolNew, "complete"}, {protocolLegacy, ""}} {
		raw := openRaw(t, h, green, c.version)
		for _, call := range []struct {
			tool    string
			args    map[string]any
			refused bool
		}{
			{"no_such_tool", nil, true},
			{"stop_vm", map[string]any{"vmid": 101}, true}, // above the ceiling
			{"delete_vm", map[string]any{"vmid": 101}, true},
			{"get_vms", nil, false}, // registered: the SDK's own path
		} {
			res := raw.result("tools/call", map[string]any{"name": call.tool, "arguments": call.args})
			if got, _ := res["resultType"].(string); got != c.want {
				t.Errorf("%s %s: resultType %q, want %q (%v)", c.version, call.tool, got, c.want, res)
			}
			sc, _ := res["structuredContent"].(map[string]any)
			if refused := res["isError"] == true && sc["decision"] == string(safety.Blocked); refused != call.refused {
				t.Errorf("%s %s: %v, want refused %t", c.version, call.tool, res, call.refused)
			}
		}
	}
}

// Jarvis declares tools, prompts, resources (with subscribe) and logging,
// none with list-changed notifications: its lists never change while it runs.
// Nothing else (no completions: there is no completion handler).
func TestCapabilities(t *testing.T) {
	h := newHarness(t)
	want := `{"logging":{},"prompts":{},"resources":{"subscribe":true},"tools":{}}`
	if got := string(openRaw(t, h, operator, protocolLegacy).initialized["capabilities"]); got != want {
		t.Errorf("initialize capabilities %s, want %s", got, want)
	}
	disc := openRaw(t, h, operator, protocolNew).result("server/discover", nil)
	if got, _ := json.Marshal(disc["capabilities"]); string(got) != want {
		t.Errorf("server/discover capabilities %s, want %s", got, want)
	}
}

// The caching hints of 2026-07-28: lists for an hour (the tool list only in
// the caller's own client: it depends on the token), resource reads never.
func TestCachingHints(t *testing.T) {
	h := newHarness(t)
	raw := openRaw(t, h, agentRed, protocolNew)
	hour := float64(time.Hour.Milliseconds())
	for _, c := range []struct {
		method string
		params map[string]any
		ttl    float64
		scope  string
	}{
		{"tools/list", nil, hour, "private"},
		{"prompts/list", nil, hour, "public"},
		{"resources/list", nil, hour, "public"},
		{"resources/templates/list", nil, hour, "public"},
		{"server/discover", nil, hour, "public"},
		{"resources/read", map[string]any{"uri": "jarvis://cluster/summary"}, 0, "private"},
		{"resources/read", map[string]any{"uri": "jarvis://nodes/pve/status"}, 0, "private"},
		{"resources/read", map[string]any{"uri": AlertsURI}, 0, "private"},
	} {
		res := raw.result(c.method, c.params)
		ttl, hasTTL := res["ttlMs"].(float64)
		if !hasTTL || ttl != c.ttl || res["cacheScope"] != c.scope {
			t.Errorf("%s %v: ttlMs %v cacheScope %v, want %v %q", c.method, c.params, res["ttlMs"], res["cacheScope"], c.ttl, c.scope)
		}
	}
}

// One progress token carries one increasing series from the first note of the
// wait for a person to the last note of the task, as the client receives it.
func TestProgressIncreasesAcrossApprovalAndTask(t *testing.T) {
	// The clock runs ten times faster than the wall, so the wait reports
	// progress (every 5 s of it) within a fraction of a second.
	start := time.Now()
	h := newHarness(t, func(o *Options) {
		o.ApprovalWait = 30 * time.Second
		o.Now = func() time.Time { return start.Add(10 * time.Since(start)) }
	})
	type note struct {
		msg         string
		done, total float64
	}
	var mu sync.Mutex
	var notes []note
	waitNotes := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, x := range notes {
			if strings.HasPrefix(x.msg, "waiting for a person") {
				n++
			}
		}
		return n
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := h.srv.MCP(agentRed, &agentRed).Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "progress", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, note{req.Params.Message, req.Params.Progress, req.Params.Total})
			mu.Unlock()
		},
	}).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	// The operator approves from elsewhere once the wait has reported twice.
	approved := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			list, err := h.store.ListApprovals(context.Background(), "pending")
			if err == nil && len(list) == 1 && waitNotes() >= 2 {
				_, err := h.srv.DecideApproval(context.Background(), list[0].ID, true, "operator")
				approved <- err
				return
			}
		}
		approved <- fmt.Errorf("no pending approval with two progress notes")
	}()
	params := &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 105}}
	params.SetProgressToken("p-approval-task")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	if out := structured[tools.TaskResult](t, res); !out.OK || h.guestStatus(105) != "stopped" {
		t.Fatalf("approved while waiting: %+v", out)
	}
	waitFor(t, "the task's progress", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notes) > 0 && strings.HasPrefix(notes[len(notes)-1].msg, "task ")
	})
	if n := waitNotes(); n < 2 {
		t.Fatalf("%d notes of the wait, want two or more", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(notes); i++ {
		if notes[i].done <= notes[i-1].done {
			t.Fatalf("progress fell or stood still at note %d: %+v", i, notes)
		}
		if notes[i].total != 0 && notes[i].done > notes[i].total {
			t.Fatalf("progress beyond its total at note %d: %+v", i, notes)
		}
	}
}

// A caller that went away (on 2026-07-28 a hang-up cancels the request's
// context) still leaves both audit rows of its refusal.
func TestRefusalIsAuditedAfterTheCallerWentAway(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := h.srv.Dispatch(ctx, Call{Principal: agentRed, Tool: "format_the_cluster", Args: json.RawMessage(`{}`)})
	if r := refusalOf(t, res); r.Decision != safety.Blocked {
		t.Fatalf("refusal %+v", r)
	}
	rows, err := h.store.AuditRecent(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, row := range rows {
		if row.Tool == "format_the_cluster" && row.Status == store.OutcomeRefused {
			found = true
		}
	}
	if !found {
		t.Fatalf("no refused audit row for the call: %+v", rows)
	}
}
