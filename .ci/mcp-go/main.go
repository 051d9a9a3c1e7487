// Command mcp-go-check drives Jarvis with github.com/mark3labs/mcp-go, the most used Go MCP
// client, at the version go.mod pins and with its defaults: whatever protocol revision it
// negotiates, its own handling of elicitation and of input-required results, and the output
// schemas exactly as it holds them. It lives in its own module so that neither mcp-go nor the
// schema validator enters the product's go.mod. .ci/clients.sh runs it:
//
//	go build -o mcp-go-check . && ./mcp-go-check -jarvis BIN -stdio -http URL -http-db DB
//
// Over stdio (-stdio) it starts its own `jarvis stdio --demo`: own database, own simulated
// cluster, the operator, Jarvis's default rate limits. Over streamable HTTP (-http) it is an
// agent of a running `jarvis serve --demo`, with a token it makes with `jarvis token create`
// (-http-db is that server's DB_PATH; JWT_SECRET comes from the environment, as the server has
// it). On each transport:
//   - tools/list: every tool's output schema, as mcp-go holds it, has type "object" and
//     compiles (JSON Schema 2020-12; santhosh-tekuri/jsonschema, not the library Jarvis uses);
//   - every GREEN tool (readOnlyHint) is called, with no arguments or the demo's (demoArgs),
//     and answers structured content;
//   - every structuredContent that comes back, refusals included, must validate against its
//     tool's held output schema.
//
// Over stdio, as the operator: a RED call confirmed through elicitation (accept: it runs) and
// one declined (denied, nothing ran) — with the default RED burst of 3 this also pins that the
// retry carrying the answer is not charged against the rate limit a second time.
// Over HTTP, as an agent: the negotiated protocol is 2026-07-28 (-http-version), and an
// approval round trip: a RED call answers needs_approval with an approval_id, `jarvis approve
// ID` (with -http-db), the retry with approval_id runs, and the spent id runs nothing more.
// That round trip stops one running VM of the shared demo cluster: run it after the other
// clients.
//
// It prints a line per check and a tally per transport, `mcp-go 1.2.1 stdio: PASS — N/N
// checks`, and exits 1 if any check failed (2 on bad usage).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const clientName = "jarvis-ci-mcp-go"

// demoArgs are the arguments for the GREEN tools that need some, on the demo cluster. A GREEN
// tool with required arguments that is not here fails the run: add it.
func demoArgs(tool, upid string) (map[string]any, bool) {
	switch tool {
	case "get_guest_agent_info", "get_guest_config", "get_guest_status", "list_snapshots":
		return map[string]any{"vmid": 101}, true
	case "get_node_logs", "get_node_status", "get_node_temperature":
		return map[string]any{"node": "pve"}, true
	case "get_metrics_history": // node or vmid, exactly one
		return map[string]any{"node": "pve"}, true
	case "get_service_status":
		return map[string]any{"node": "pve", "service": "pveproxy"}, true
	case "list_storage_content":
		return map[string]any{"storage": "nfs-backup"}, true
	case "get_task_status", "get_task_log":
		return map[string]any{"upid": upid}, true
	}
	return nil, false
}

func main() {
	bin := flag.String("jarvis", "", "the jarvis binary")
	stdio := flag.Bool("stdio", false, "run over stdio against its own `jarvis stdio --demo`")
	httpURL := flag.String("http", "", "base URL of a running `jarvis serve --demo` (http://127.0.0.1:PORT)")
	httpDB := flag.String("http-db", "", "that server's DB_PATH (for `jarvis token create` and `jarvis approve`)")
	httpVersion := flag.String("http-version", "2026-07-28", "the protocol revision mcp-go must negotiate over HTTP")
	timeout := flag.Duration("timeout", 3*time.Minute, "time allowed for each transport")
	flag.Parse()
	if *bin == "" || (!*stdio && *httpURL == "") || (*httpURL != "" && *httpDB == "") {
		fmt.Fprintln(os.Stderr, "usage: mcp-go-check -jarvis BIN [-stdio] [-http URL -http-db DB_PATH]")
		os.Exit(2)
	}
	for _, v := range []string{"JARVIS_PASSWORD", "JWT_SECRET"} {
		if os.Getenv(v) == "" {
			fmt.Fprintf(os.Stderr, "mcp-go-check: %s is not set; run it through .ci/clients.sh or set it as the server has it\n", v)
			os.Exit(2)
		}
	}

	version := mcpGoVersion()
	failed := false
	var lines []string
	for _, kind := range []string{"stdio", "http"} {
		if (kind == "stdio" && !*stdio) || (kind == "http" && *httpURL == "") {
			continue
		}
		fmt.Printf("\n--- mcp-go %s over %s\n", version, kind)
		t := &tally{}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		var negotiated string
		if kind == "stdio" {
			negotiated = runStdio(ctx, t, *bin)
		} else {
			negotiated = runHTTP(ctx, t, *bin, *httpURL, *httpDB, *httpVersion)
		}
		cancel()
		lines = append(lines, t.line(fmt.Sprintf("mcp-go %s %s", version, kind), negotiated))
		failed = failed || len(t.failures) > 0
	}
	fmt.Println()
	for _, l := range lines {
		fmt.Println(l)
	}
	if failed {
		os.Exit(1)
	}
}

// mcpGoVersion is the mcp-go version this binary was built with, from go.mod's pin.
func mcpGoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/mark3labs/mcp-go" {
				return strings.TrimPrefix(d.Version, "v")
			}
		}
	}
	return "(unknown version)"
}

// jarvisEnv is the environment of every jarvis child: the secrets the server shares, its
// database, quiet logs. Nothing else is inherited, so Jarvis's own defaults apply (the rate
// limits included).
func jarvisEnv(dbPath string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"JARVIS_PASSWORD=" + os.Getenv("JARVIS_PASSWORD"),
		"JWT_SECRET=" + os.Getenv("JWT_SECRET"),
		"DB_PATH=" + dbPath,
		"LOG_LEVEL=warn",
	}
	if home := os.Getenv("HOME"); home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// host runs a jarvis host command (token create, approve) on the database at dbPath.
func host(ctx context.Context, bin, dbPath string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = jarvisEnv(dbPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("jarvis %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// elicitor answers elicitation requests with the action set for the next call and keeps them.
type elicitor struct {
	mu     sync.Mutex
	action mcp.ElicitationResponseAction
	seen   []mcp.ElicitationParams
}

func (e *elicitor) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = append(e.seen, req.Params)
	res := &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: e.action}}
	if e.action == mcp.ElicitationResponseActionAccept {
		res.Content = map[string]any{"approve": true}
	}
	return res, nil
}

func (e *elicitor) answer(action mcp.ElicitationResponseAction) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.action, e.seen = action, nil
}

func (e *elicitor) asked() []mcp.ElicitationParams {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]mcp.ElicitationParams(nil), e.seen...)
}

func runStdio(ctx context.Context, t *tally, bin string) string {
	dir, err := os.MkdirTemp("", "jarvis-mcp-go-")
	if err != nil {
		t.fail("temporary folder: %v", err)
		return ""
	}
	defer os.RemoveAll(dir)
	stderr := &lockedBuffer{}
	tr := transport.NewStdioWithOptions(bin, nil, []string{"stdio", "--demo"},
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = jarvisEnv(filepath.Join(dir, "stdio.db"))
			return cmd, nil
		}),
		transport.WithCommandStderrWriter(stderr))
	e := &elicitor{action: mcp.ElicitationResponseActionDecline}
	c := client.NewClient(tr, client.WithElicitationHandler(e))
	defer func() {
		_ = c.Close()
		if tail := stderr.tail(30); len(t.failures) > 0 && tail != "" {
			fmt.Printf("--- last lines of jarvis stdio's stderr\n%s\n", tail)
		}
	}()
	s, negotiated := connect(ctx, t, c, "")
	if s == nil {
		return negotiated
	}
	s.greenTools(ctx)
	s.elicitedRED(ctx, e)
	return negotiated
}

func runHTTP(ctx context.Context, t *tally, bin, base, dbPath, wantVersion string) string {
	name := fmt.Sprintf("mcp-go-%d", time.Now().UnixNano()%1_000_000_000)
	out, err := host(ctx, bin, dbPath, "token", "create", "--name", name, "--max-tier", "red")
	token := strings.TrimSpace(out)
	if !t.check(err == nil && token != "", "`jarvis token create --name %s --max-tier red` printed a token%s", name, errSuffix(err)) {
		return ""
	}
	tr, err := transport.NewStreamableHTTP(strings.TrimRight(base, "/")+"/mcp",
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if !t.check(err == nil, "streamable HTTP transport for %s/mcp%s", base, errSuffix(err)) {
		return ""
	}
	c := client.NewClient(tr)
	defer c.Close()
	s, negotiated := connect(ctx, t, c, wantVersion)
	if s == nil {
		return negotiated
	}
	s.greenTools(ctx)
	s.approvalRoundTrip(ctx, bin, dbPath)
	return negotiated
}

// session is a connected client with the tools it listed and their compiled output schemas.
type session struct {
	t       *tally
	c       *client.Client
	tools   map[string]mcp.Tool
	schemas map[string]*jsonschema.Schema
}

// connect starts c, initializes with mcp-go's defaults (it picks the revision), checks it is
// wantVersion when that is given, and lists the tools. nil when nothing more can be done.
func connect(ctx context.Context, t *tally, c *client.Client, wantVersion string) (*session, string) {
	if err := c.Start(ctx); !t.check(err == nil, "start the transport%s", errSuffix(err)) {
		return nil, ""
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: clientName, Version: "1.0.0"}
	res, err := c.Initialize(ctx, init)
	if !t.check(err == nil, "connect (server/discover, else initialize)%s", errSuffix(err)) {
		return nil, ""
	}
	negotiated := c.ProtocolVersion()
	t.check(res.ServerInfo.Name == "jarvis", "the server is jarvis (got %q %s), protocol %s", res.ServerInfo.Name, res.ServerInfo.Version, negotiated)
	if wantVersion != "" {
		t.check(negotiated == wantVersion && res.ProtocolVersion == wantVersion,
			"negotiated protocol %s (client %s, server's answer %s)", wantVersion, negotiated, res.ProtocolVersion)
	}
	if mcp.IsModernProtocol(negotiated) {
		// mcp-go keeps a revision the server did not offer (issue 17): the server must list it.
		d, err := c.Discover(ctx, mcp.DiscoverRequest{})
		var versions []string
		if d != nil {
			versions = d.SupportedVersions
		}
		t.check(err == nil && slices.Contains(versions, negotiated),
			"server/discover lists %s among the supported versions %v%s", negotiated, versions, errSuffix(err))
	}

	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if !t.check(err == nil && list != nil && len(list.Tools) > 0, "tools/list answers tools%s", errSuffix(err)) {
		return nil, negotiated
	}
	s := &session{t: t, c: c, tools: map[string]mcp.Tool{}, schemas: map[string]*jsonschema.Schema{}}
	for _, tool := range list.Tools {
		s.tools[tool.Name] = tool
		schema, err := compileHeld(tool)
		if t.check(err == nil, "%s: output schema held by mcp-go has type object and compiles%s", tool.Name, errSuffix(err)) {
			s.schemas[tool.Name] = schema
		}
	}
	return s, negotiated
}

// compileHeld compiles a tool's output schema as mcp-go holds it (type, properties, required,
// additionalProperties, $defs: whatever else the wire had, mcp-go dropped).
func compileHeld(tool mcp.Tool) (*jsonschema.Schema, error) {
	if tool.OutputSchema.Type == "" {
		return nil, errors.New("mcp-go holds no output schema (none sent, or one it cannot represent)")
	}
	if tool.OutputSchema.Type != "object" {
		return nil, fmt.Errorf("type is %q", tool.OutputSchema.Type)
	}
	raw, err := json.Marshal(tool.OutputSchema)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	url := "mcp-go:///" + tool.Name + ".json"
	if err := comp.AddResource(url, doc); err != nil {
		return nil, err
	}
	return comp.Compile(url)
}

// call calls a tool and validates any structuredContent against the tool's held output schema.
// It returns the result and that content as a map (nil without any); err when the call itself
// failed (already counted).
func (s *session) call(ctx context.Context, name string, args map[string]any) (*mcp.CallToolResult, map[string]any, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := s.c.CallTool(ctx, req)
	if err != nil {
		s.t.fail("%s(%s): the call failed: %v", name, compact(args), err)
		return nil, nil, err
	}
	raw := []byte(res.RawStructuredContent)
	if raw == nil && res.StructuredContent != nil {
		raw, _ = json.Marshal(res.StructuredContent)
	}
	if raw == nil {
		return res, nil, nil
	}
	var sc map[string]any
	_ = json.Unmarshal(raw, &sc)
	if schema := s.schemas[name]; schema != nil {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err == nil {
			err = schema.Validate(inst)
		}
		s.t.check(err == nil, "%s(%s): structuredContent%s validates against the output schema%s",
			name, compact(args), refusalNote(res, sc), errSuffix(err))
	}
	return res, sc, nil
}

// greenTools calls every GREEN tool once.
func (s *session) greenTools(ctx context.Context) {
	var green []string
	for name, tool := range s.tools {
		if ro := tool.Annotations.ReadOnlyHint; ro != nil && *ro {
			green = append(green, name)
		}
	}
	sort.Strings(green)
	s.t.check(len(green) > 0, "%d GREEN tools listed (readOnlyHint): %s", len(green), strings.Join(green, ", "))

	// get_task_status and get_task_log take a UPID from the recent tasks.
	upid := ""
	if _, sc, err := s.call(ctx, "get_recent_tasks", map[string]any{}); err == nil {
		if tasks, _ := sc["tasks"].([]any); len(tasks) > 0 {
			upid, _ = tasks[0].(map[string]any)["upid"].(string)
		}
	}
	for _, name := range green {
		args, ok := demoArgs(name, upid)
		if !ok {
			if req := s.tools[name].InputSchema.Required; len(req) > 0 {
				s.t.fail("%s requires %v: give it demo arguments in demoArgs (.ci/mcp-go/main.go)", name, req)
				continue
			}
			args = map[string]any{}
		}
		res, sc, err := s.call(ctx, name, args)
		if err != nil {
			continue
		}
		s.t.check(!res.IsError && sc != nil, "%s(%s) answers with structured content%s", name, compact(args), resultNote(res))
	}
}

// guestStatus checks a guest's status through get_guest_status.
func (s *session) guestStatus(ctx context.Context, vmid int, want, when string) {
	res, sc, err := s.call(ctx, "get_guest_status", map[string]any{"vmid": vmid})
	if err != nil {
		return
	}
	got, _ := sc["status"].(string)
	s.t.check(!res.IsError && got == want, "guest %d is %s %s (status %q)%s", vmid, want, when, got, resultNote(res))
}

// taskRan checks a result is a finished, successful task of action on vmid.
func (s *session) taskRan(res *mcp.CallToolResult, sc map[string]any, vmid int, action string) {
	if res == nil {
		return
	}
	ok := !res.IsError && sc != nil && sc["vmid"] == float64(vmid) && sc["action"] == action &&
		sc["finished"] == true && sc["ok"] == true
	s.t.check(ok, "%s %d ran: finished and ok (%s)%s", action, vmid, compact(sc), resultNote(res))
}

// refusal checks a result is a refusal in Jarvis's shape with the given decision.
func (s *session) refusal(res *mcp.CallToolResult, sc map[string]any, decision, what string) bool {
	if res == nil {
		return false
	}
	got, _ := sc["decision"].(string)
	reason, _ := sc["reason"].(string)
	return s.t.check(res.IsError && got == decision && reason != "" && text(res) != "",
		"%s: refused as %s with a reason and a sentence (decision %q)%s", what, decision, got, resultNote(res))
}

// elicitedRED: the operator's RED calls over stdio, confirmed through elicitation.
func (s *session) elicitedRED(ctx context.Context, e *elicitor) {
	const accepted, declined = 101, 102

	s.guestStatus(ctx, accepted, "running", "before the confirmed stop")
	e.answer(mcp.ElicitationResponseActionAccept)
	res, sc, err := s.call(ctx, "stop_vm", map[string]any{"vmid": accepted})
	asked := e.asked()
	if s.t.check(len(asked) == 1, "stop_vm %d: exactly one confirmation was asked (got %d)", accepted, len(asked)) {
		msg := asked[0].Message
		s.t.check(strings.Contains(msg, fmt.Sprint(accepted)) && strings.Contains(strings.ToLower(msg), "stop"),
			"the confirmation names the VM and the action: %q", msg)
		schema, _ := json.Marshal(asked[0].RequestedSchema)
		s.t.check(regexp.MustCompile(`"approve":\{[^}]*"type":"boolean"`).Match(schema),
			"the confirmation asks for a boolean approve: %s", schema)
	}
	if err == nil {
		s.taskRan(res, sc, accepted, "stop")
	}
	s.guestStatus(ctx, accepted, "stopped", "after the confirmed stop")

	e.answer(mcp.ElicitationResponseActionDecline)
	res, sc, err = s.call(ctx, "stop_vm", map[string]any{"vmid": declined})
	asked = e.asked()
	s.t.check(len(asked) == 1, "stop_vm %d: exactly one confirmation was asked (got %d)", declined, len(asked))
	if err == nil {
		s.refusal(res, sc, "denied", fmt.Sprintf("stop_vm %d declined", declined))
	}
	s.guestStatus(ctx, declined, "running", "after the declined stop")
}

// approvalRoundTrip: an agent's RED call over HTTP, approved by a person with `jarvis approve`.
func (s *session) approvalRoundTrip(ctx context.Context, bin, dbPath string) {
	_, vms, err := s.call(ctx, "get_vms", map[string]any{})
	if err != nil {
		return
	}
	var running []int
	guests, _ := vms["guests"].([]any)
	for _, g := range guests {
		m, _ := g.(map[string]any)
		if id, ok := m["vmid"].(float64); ok && m["status"] == "running" && m["kind"] == "qemu" {
			running = append(running, int(id))
		}
	}
	sort.Ints(running)
	// The first running VM that is not protected: the first call asks for approval.
	vmid, approvalID := 0, ""
	for _, id := range running {
		res, sc, err := s.call(ctx, "stop_vm", map[string]any{"vmid": id})
		if err != nil {
			return
		}
		if d, _ := sc["decision"].(string); d == "protected" {
			fmt.Printf("       (VM %d is protected; trying the next running VM)\n", id)
			continue
		}
		vmid = id
		if !s.refusal(res, sc, "needs_approval", fmt.Sprintf("agent's stop_vm %d", id)) {
			return
		}
		approvalID, _ = sc["approval_id"].(string)
		plan, _ := sc["plan"].(string)
		s.t.check(sc["tier"] == "red" && approvalID != "" && strings.Contains(plan, fmt.Sprint(id)),
			"needs_approval says tier red, names an approval_id (%q) and a plan naming the VM (%q)", approvalID, plan)
		break
	}
	if !s.t.check(vmid != 0, "a running, unprotected VM to stop (running: %v)", running) || approvalID == "" {
		return
	}
	s.guestStatus(ctx, vmid, "running", "before the approval")

	out, err := host(ctx, bin, dbPath, "approve", approvalID)
	s.t.check(err == nil && strings.Contains(out, "Approved "+approvalID), "`jarvis approve %s`: %s%s", approvalID, strings.TrimSpace(out), errSuffix(err))

	res, sc, err := s.call(ctx, "stop_vm", map[string]any{"vmid": vmid, "approval_id": approvalID})
	if err == nil {
		s.taskRan(res, sc, vmid, "stop")
	}
	s.guestStatus(ctx, vmid, "stopped", "after the approved stop")

	// An approval runs exactly one call: the stop cannot be repeated (the VM is stopped), so the
	// spent id is offered for the way back, which it does not cover either.
	res, sc, err = s.call(ctx, "start_vm", map[string]any{"vmid": vmid, "approval_id": approvalID})
	if err == nil {
		s.refusal(res, sc, "denied", fmt.Sprintf("start_vm %d with the spent approval_id", vmid))
	}
	s.guestStatus(ctx, vmid, "stopped", "after the refused reuse")
}
