package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
)

const instructions = `Jarvis operates a Proxmox VE cluster. Read-only tools (get_*, list_*) run at once.
Tools that change state are checked by a safety layer: some run, some wait for a person to approve
(you get decision "needs_approval" and an approval_id: tell the user, then call the same tool again
with the same arguments plus approval_id once they approved), some are never allowed. Never retry a
refused call in a loop; explain the refusal's reason to the user instead.`

// MCP returns the MCP server for callers with p's ceiling and toolsets,
// building it once. Tools above the ceiling or outside the toolsets are not
// listed; dispatch enforces both again.
//
// local is the principal of a transport without tokens (stdio). For HTTP it is nil
// and the caller comes from the bearer token.
func (s *Server) MCP(p safety.Principal, local *safety.Principal) *mcp.Server {
	ceiling := p.MaxTier
	key := serverKey{ceiling: ceiling, toolsets: strings.Join(s.toolsetsOf(p), ",")}
	if local != nil {
		key.local = local.ID
	}
	// Only the ceiling and toolsets shape the server; not who p is.
	shape := safety.Principal{MaxTier: ceiling, Toolsets: p.Toolsets}
	s.mu.Lock()
	defer s.mu.Unlock()
	if srv, ok := s.servers[key]; ok {
		return srv
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "jarvis", Title: "Jarvis for Proxmox VE", Version: s.opts.Version},
		&mcp.ServerOptions{Instructions: instructions, Logger: s.opts.Logger,
			Capabilities: capabilities(), SetCacheable: setCacheable,
			SubscribeHandler: s.subscribeAlerts, UnsubscribeHandler: s.unsubscribeAlerts})

	principalOf := func(ti *auth.TokenInfo) (safety.Principal, bool) {
		if local != nil {
			return *local, true
		}
		return PrincipalFromToken(ti)
	}

	for _, t := range s.Tools(shape) {
		mt := mcpTool(t)
		mt.InputSchema = s.InputSchema(t)
		srv.AddTool(mt, s.handler(t.Name, principalOf))
	}
	// Names that are not registered here (BLACK, unknown, above the ceiling,
	// outside the toolsets, read-only mode) are answered with a refusal
	// instead of a protocol error, and audited.
	srv.AddReceivingMiddleware(s.refuseUnregistered(shape, principalOf))
	s.addResources(srv, principalOf)
	s.addPrompts(srv)
	s.servers[key] = srv
	return srv
}

// HTTPServers lists the MCP servers built for callers with tokens (not stdio's),
// whose sessions the web layer tracks and closes.
func (s *Server) HTTPServers() []*mcp.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*mcp.Server
	for key, srv := range s.servers {
		if key.local == "" {
			out = append(out, srv)
		}
	}
	return out
}

// mcpTool derives the MCP tool definition; annotations come from the tier only.
func mcpTool(t *tools.Tool) *mcp.Tool {
	a := t.Tier.Annotations()
	return &mcp.Tool{
		Name:         t.Name,
		Title:        t.Title,
		Description:  t.Description,
		InputSchema:  t.InputSchema,
		OutputSchema: wireOutputSchema(t.OutputSchema),
		Annotations: &mcp.ToolAnnotations{
			Title:           t.Title,
			ReadOnlyHint:    a.ReadOnly,
			DestructiveHint: &a.Destructive,
			IdempotentHint:  a.Idempotent,
			OpenWorldHint:   &a.OpenWorld,
		},
	}
}

// refusalSchema is the schema of Refusal, the structured content of every refused call.
var refusalSchema = func() *jsonschema.Schema {
	s, err := jsonschema.For[Refusal](nil)
	if err != nil {
		panic(err)
	}
	for _, d := range []safety.Decision{safety.Blocked, safety.NeedsApproval, safety.Denied, safety.Expired,
		safety.RateLimited, safety.KillSwitch, safety.ReadOnlyMode, safety.Protected} {
		s.Properties["decision"].Enum = append(s.Properties["decision"].Enum, string(d))
	}
	return s
}()

// wireOutputSchema is a tool's output schema as clients receive it: one object
// that both the tool's result and a refusal satisfy, because clients check
// structuredContent against it even on isError results. It is one object, not
// anyOf [result, refusal] (several clients cannot hold anyOf and drop the
// schema whole), so the result's top-level fields are not required; nested
// objects keep theirs. The tool list is sent into every model's context, so
// what a client needs to validate stays and the prose goes: descriptions and
// additionalProperties are left out (the Go types and README document the
// fields; ToolsListSize in catalogue_test.go pins the size).
func wireOutputSchema(out *jsonschema.Schema) *jsonschema.Schema {
	w := out.CloneSchemas()
	bare(w)
	w.Required = nil
	for name, p := range refusalSchema.Properties {
		if have, ok := w.Properties[name]; ok && have.Type != p.Type {
			panic(fmt.Sprintf("output field %q clashes with the refusal's", name))
		}
		rp := p.CloneSchemas()
		bare(rp)
		w.Properties[name] = rp
		w.PropertyOrder = append(w.PropertyOrder, name)
	}
	return w
}

// bare drops descriptions and additionalProperties from a schema and its parts.
func bare(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	s.Description = ""
	s.AdditionalProperties = nil
	for _, p := range s.Properties {
		bare(p)
	}
	for _, d := range s.Defs {
		bare(d)
	}
	bare(s.Items)
}

// handler adapts one MCP tool call to Dispatch. Every registered tool uses it.
func (s *Server) handler(name string, principalOf func(*auth.TokenInfo) (safety.Principal, bool)) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return s.dispatchMCP(ctx, req, name, principalOf), nil
	}
}

func (s *Server) dispatchMCP(ctx context.Context, req *mcp.CallToolRequest, name string, principalOf func(*auth.TokenInfo) (safety.Principal, bool)) *mcp.CallToolResult {
	var ti *auth.TokenInfo
	if req.Extra != nil {
		ti = req.Extra.TokenInfo
	}
	p, ok := principalOf(ti)
	if !ok {
		return refusalResult(safety.Verdict{Decision: safety.Blocked, Tier: safety.Black,
			Reason: "the caller could not be identified; use a valid token"}, "")
	}
	c := Call{Principal: p, Tool: name}
	if req.Params != nil {
		c.Args = req.Params.Arguments
		c.RequestState = req.Params.RequestState
		if r, ok := req.Params.InputResponses[confirmKey].(*mcp.ElicitResult); ok {
			c.Confirm = r
		}
	}
	if caps := req.ClientCapabilities(); caps != nil && caps.Elicitation != nil {
		c.Elicitation = true
	}
	if req.Params != nil && req.Session != nil {
		session := req.Session
		if token := req.Params.GetProgressToken(); token != nil {
			c.Progress = monotonic(func(msg string, done, total float64) {
				_ = session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: token, Message: msg, Progress: done, Total: total,
				})
			})
		}
		// Sent only when the client asked for log messages (logging/setLevel,
		// or the log level in the request's _meta on the 2026-07-28 revision).
		c.Notify = func(msg string) {
			_ = session.Log(ctx, &mcp.LoggingMessageParams{Level: "notice", Logger: "jarvis", Data: msg})
		}
	}
	return s.Dispatch(ctx, c)
}

func (s *Server) refuseUnregistered(shape safety.Principal, principalOf func(*auth.TokenInfo) (safety.Principal, bool)) mcp.Middleware {
	ceiling := shape.MaxTier
	registered := map[string]bool{}
	for _, t := range s.Tools(shape) {
		registered[t.Name] = true
	}
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "tools/call" {
				return next(ctx, method, req)
			}
			call, ok := req.(*mcp.CallToolRequest)
			if !ok || call.Params == nil || registered[call.Params.Name] {
				return next(ctx, method, req)
			}
			var ti *auth.TokenInfo
			if extra := req.GetExtra(); extra != nil {
				ti = extra.TokenInfo
			}
			// The SDK marks results complete on the 2026-07-28 revision only
			// for the tools it calls itself; this one answers in its stead.
			answer := func(res *mcp.CallToolResult) (mcp.Result, error) {
				if call.ProtocolVersion() >= protocolStateless {
					res = completeResult(res)
				}
				return res, nil
			}
			p, ok := principalOf(ti)
			if !ok {
				return answer(refusalResult(safety.Verdict{Decision: safety.Blocked, Tier: safety.Black,
					Reason: "the caller could not be identified; use a valid token"}, ""))
			}
			if p.MaxTier > ceiling {
				p.MaxTier = ceiling
			}
			// Dispatch names the reason: unknown or BLACK, above the
			// ceiling, outside the toolsets, read-only mode.
			return answer(s.Dispatch(ctx, Call{Principal: p, Tool: call.Params.Name, Args: call.Params.Arguments}))
		}
	}
}

// protocolStateless is the first protocol revision without sessions
// (2026-07-28): every result says whether it is complete.
const protocolStateless = "2026-07-28"

// completeResult is res with resultType "complete". The SDK keeps that field
// unexported and sets it only on results of registered tools; its JSON
// decoding is the one way to set it from outside, so res goes through its
// wire form, which is what the client receives anyway. On the unlikely
// failure to encode, res goes out as it is.
func completeResult(res *mcp.CallToolResult) *mcp.CallToolResult {
	b, err := json.Marshal(res)
	if err != nil {
		return res
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(b, &wire); err != nil {
		return res
	}
	wire["resultType"] = json.RawMessage(`"complete"`)
	if b, err = json.Marshal(wire); err != nil {
		return res
	}
	var out mcp.CallToolResult
	if err := json.Unmarshal(b, &out); err != nil {
		return res
	}
	return &out
}

// capabilities are what every Jarvis MCP server declares. The lists of
// tools, prompts and resources are fixed when the server is built (a
// caller's ceiling and toolsets pick one server; nothing changes while Jarvis
// runs), so none promises list-changed notifications. The SDK adds
// resources.subscribe (jarvis://alerts) because a subscribe handler is set;
// logging carries the approval notices (Call.Notify). There is no completion
// handler, so no completions.
func capabilities() *mcp.ServerCapabilities {
	return &mcp.ServerCapabilities{
		Logging:   &mcp.LoggingCapabilities{},
		Tools:     &mcp.ToolCapabilities{},
		Prompts:   &mcp.PromptCapabilities{},
		Resources: &mcp.ResourceCapabilities{},
	}
}

// listTTL is how long a client may keep a list (tools, prompts, resources)
// or the discovery answer: they change only when Jarvis is upgraded or
// reconfigured, which restarts it.
const listTTL = time.Hour

// setCacheable gives the caching hints of the 2026-07-28 revision. The tool
// list depends on the caller's token (its ceiling and toolsets), so only that
// caller's client may keep it; prompts, resources, templates and discovery
// are the same for everyone. A resource read is the cluster or the alerts as
// they are now: never to be reused, and per caller (alerts list the rules
// that let this caller act).
func setCacheable(_ context.Context, req mcp.Request, c *mcp.Cacheable) {
	switch req.(type) {
	case *mcp.ListToolsRequest:
		c.TTLMs, c.CacheScope = int(listTTL.Milliseconds()), "private"
	case *mcp.ListPromptsRequest, *mcp.ListResourcesRequest, *mcp.ListResourceTemplatesRequest, *mcp.ServerRequest[*mcp.DiscoverParams]:
		c.TTLMs, c.CacheScope = int(listTTL.Milliseconds()), "public"
	case *mcp.ReadResourceRequest:
		c.TTLMs, c.CacheScope = 0, "private"
	}
}

// addResources exposes the cluster summary and each node's status as resources. A
// read goes through Dispatch as the matching GREEN tool, so it is audited like a call.
func (s *Server) addResources(srv *mcp.Server, principalOf func(*auth.TokenInfo) (safety.Principal, bool)) {
	var read readResource = func(ctx context.Context, req *mcp.ReadResourceRequest, tool string, args map[string]any) (*mcp.ReadResourceResult, error) {
		var ti *auth.TokenInfo
		if req.Extra != nil {
			ti = req.Extra.TokenInfo
		}
		uri := req.Params.URI
		p, ok := principalOf(ti)
		if !ok {
			return nil, resourceError(uri, refusalResult(safety.Verdict{Decision: safety.Blocked, Tier: safety.Green,
				Reason: "the caller could not be identified; use a valid token"}, ""), nil)
		}
		raw, _ := json.Marshal(args)
		var wrong *tools.InputError
		res := s.Dispatch(ctx, Call{Principal: p, Tool: tool, Args: raw, Direct: true,
			wrongInput: func(e *tools.InputError) { wrong = e }})
		if res.IsError {
			return nil, resourceError(uri, res, wrong)
		}
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: resultText(res)}}}, nil
	}
	srv.AddResource(&mcp.Resource{
		URI: "jarvis://cluster/summary", Name: "cluster-summary", Title: "Cluster summary",
		Description: "Quorum, nodes online, and how many VMs and containers are running or stopped (templates apart) in the Proxmox VE cluster, as JSON (get_cluster_status).",
		MIMEType:    "application/json",
	}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return read(ctx, req, "get_cluster_status", map[string]any{})
	})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: "jarvis://nodes/{node}/status", Name: "node-status", Title: "Node status",
		Description: "CPU, memory, disk, load and uptime of one node, as JSON.",
		MIMEType:    "application/json",
	}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		node := strings.TrimSuffix(strings.TrimPrefix(req.Params.URI, "jarvis://nodes/"), "/status")
		if node == "" || strings.Contains(node, "/") {
			return nil, mcp.ResourceNotFoundError(req.Params.URI)
		}
		return read(ctx, req, "get_node_status", map[string]any{"node": node})
	})
	s.addAlerts(srv, principalOf, read)
}

// resourceError is the protocol error for a resource read that did not
// answer (res, an isError result of dispatch). A target that does not exist
// (wrong: the tool's InputError, e.g. no such node) is "resource not found",
// -32602 with data.uri as the spec asks, its message still naming what
// exists. A refusal or a failure is an internal error (-32603) whose message
// is the result's sentence; data carries the uri and, for a refusal, its
// structured form.
func resourceError(uri string, res *mcp.CallToolResult, wrong *tools.InputError) error {
	if wrong != nil {
		data, _ := json.Marshal(map[string]string{"uri": uri})
		return &jsonrpc.Error{Code: mcp.CodeResourceNotFound, Message: "Resource not found: " + wrong.Msg, Data: data}
	}
	data := map[string]any{"uri": uri}
	if r, ok := res.StructuredContent.(Refusal); ok {
		data["refusal"] = r
	}
	raw, _ := json.Marshal(data)
	msg := resultText(res)
	if msg == "" {
		msg = "reading " + uri + " failed"
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: msg, Data: raw}
}

// resultText is the text of a result's first content.
func resultText(res *mcp.CallToolResult) string {
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(*mcp.TextContent); ok {
			return tc.Text
		}
	}
	return ""
}

// readResource reads a resource as a call of a GREEN tool with args.
type readResource func(ctx context.Context, req *mcp.ReadResourceRequest, tool string, args map[string]any) (*mcp.ReadResourceResult, error)

// promptStep is one step of a prompt: a tool, how to call it, the output
// fields it reads and what to ask of them. A prompt asks only for what the
// tools return; TestPromptsAskOnlyForWhatToolsReturn holds it to that.
type promptStep struct {
	tool   string
	args   map[string]any // arguments to call it with, if any
	scope  string         // e.g. "for each node"
	fields []string       // output fields, dotted paths (list items are looked through)
	ask    string
}

// healthCheckSteps are the cluster_health_check prompt.
var healthCheckSteps = []promptStep{
	{tool: "get_cluster_status", fields: []string{"quorate", "nodes_online", "nodes_total", "vms", "containers"},
		ask: "is the cluster quorate, are all nodes online, how many guests run?"},
	{tool: "get_node_status", scope: "for each node", fields: []string{"cpu_percent", "memory.used_percent", "swap.used_percent", "root_disk.used_percent"},
		ask: "flag anything above 90 %."},
	{tool: "get_vms", fields: []string{"guests.name", "guests.status", "guests.tags", "guests.template", "guests.lock", "guests.cpu_percent", "guests.memory.used_percent"},
		ask: "anything stopped that its name or tags say should be running, anything locked, or a VM using unusual CPU or memory? (Proxmox does not report disk use inside VMs.)"},
	{tool: "get_containers", fields: []string{"guests.name", "guests.status", "guests.tags", "guests.lock", "guests.cpu_percent", "guests.memory.used_percent", "guests.disk.used_percent"},
		ask: "the same, and any running container whose disk is above 85 %?"},
	{tool: "get_storage", fields: []string{"storages.status", "storages.usage.used_percent", "storages.unavailable_on"},
		ask: "any storage above 85 %, not available, or unreachable from some node?"},
	{tool: "get_recent_tasks", args: map[string]any{"failed_only": true, "limit": 50}, fields: []string{"tasks.type", "tasks.id", "tasks.start_time", "tasks.status"},
		ask: "which tasks failed in the last day, and with what error?"},
	{tool: "get_backups", args: map[string]any{"limit": 500}, fields: []string{"backups.vmid", "backups.age_hours", "left_out"},
		ask: "does every guest but the templates have a backup younger than 7 days (168 hours)? If left_out is above 0, ask get_backups with the vmid of each guest that seems to have none."},
}

// healthCheckText renders the steps as the prompt's text.
func healthCheckText(focus string) string {
	var b strings.Builder
	b.WriteString("Check the health of my Proxmox VE cluster with the Jarvis tools, reading only:\n")
	for i, st := range healthCheckSteps {
		fmt.Fprintf(&b, "%d. %s", i+1, st.tool)
		if st.args != nil {
			args, _ := json.Marshal(st.args)
			fmt.Fprintf(&b, " %s", args)
		}
		if st.scope != "" {
			b.WriteString(" " + st.scope)
		}
		fmt.Fprintf(&b, " (%s): %s\n", strings.Join(st.fields, ", "), st.ask)
	}
	b.WriteString("Then give me a short report: what is fine, what needs attention (most urgent first), and what you suggest.\nDo not change anything.")
	if focus != "" {
		b.WriteString("\nLook closer at: " + focus + ".")
	}
	return b.String()
}

func (s *Server) addPrompts(srv *mcp.Server) {
	srv.AddPrompt(&mcp.Prompt{
		Name:        "cluster_health_check",
		Title:       "Cluster health check",
		Description: "Walk through the cluster's health: quorum, nodes, guests, storage, recent failed tasks and backups.",
		Arguments: []*mcp.PromptArgument{{Name: "focus", Title: "Focus",
			Description: "Optional node name or topic (storage, backups, guests) to look at closer."}},
	}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		focus := ""
		if req.Params != nil {
			focus = req.Params.Arguments["focus"]
		}
		return &mcp.GetPromptResult{
			Description: "Cluster health check",
			Messages:    []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: healthCheckText(focus)}}},
		}, nil
	})
}
