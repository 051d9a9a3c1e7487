package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// These tests run the real binary, as a user does: stdio and HTTP on the demo
// cluster, and the host commands against the same database.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func jarvisBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jarvis-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "jarvis")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// demoEnv is the environment of one demo installation: shared database and secret.
func demoEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"DB_PATH=" + filepath.Join(t.TempDir(), "jarvis.db"),
		"JWT_SECRET=e2e-secret-e2e-secret-e2e-secret-e2e",
		"JARVIS_PASSWORD=e2e-operator-password",
		"JARVIS_APPROVAL_WAIT=1s",
		"LOG_LEVEL=warn",
	}
	return append(env, extra...)
}

func runJarvis(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(jarvisBinary(t), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func refusal(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	if !res.IsError {
		t.Fatalf("expected a refusal, got %+v", res.Content)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func TestStdioDemoEndToEnd(t *testing.T) {
	env := demoEnv(t)
	cmd := exec.Command(jarvisBinary(t), "stdio", "--demo")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr: %s", err, stderr.String())
	}
	defer cs.Close()

	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) < 25 {
		t.Fatalf("tools/list: %v (%d tools)", err, len(tools.Tools))
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status"})
	if err != nil || res.IsError {
		t.Fatalf("get_cluster_status: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "execute_ssh", Arguments: map[string]any{"node": "pve", "command": "uptime"}})
	if err != nil || res.IsError {
		t.Fatalf("execute_ssh uptime: %v %+v", err, res.Content)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_guest_status", Arguments: map[string]any{"vmid": 999}})
	if err != nil || !res.IsError {
		t.Fatalf("missing VMID must be a tool error: %v %+v", err, res)
	}

	// RED without elicitation: needs_approval, a person approves on the host, the retry runs.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
	if err != nil {
		t.Fatal(err)
	}
	r := refusal(t, res)
	id, _ := r["approval_id"].(string)
	if r["decision"] != "needs_approval" || id == "" {
		t.Fatalf("stop_vm: %v", r)
	}
	out, err := runJarvis(t, env, "approvals")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "web01") {
		t.Fatalf("jarvis approvals: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "approve", id); err != nil {
		t.Fatalf("jarvis approve: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "approve", id); err == nil {
		t.Fatalf("approving twice must fail: %s", out)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101, "approval_id": id}})
	if err != nil || res.IsError {
		t.Fatalf("approved stop_vm: %v %+v", err, res.Content)
	}
	res, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_guest_status", Arguments: map[string]any{"vmid": 101}})
	b, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(b), `"status":"stopped"`) {
		t.Fatalf("VM 101 after the approved stop: %s", b)
	}
	cs.Close()
	_ = cmd.Wait()

	if out, err := runJarvis(t, env, "audit", "verify"); err != nil || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// jarvis stdio answers a server/discover below 2026-07-28 as /mcp does: the
// unsupported-version error with the revisions it serves, not "method not
// found".
func TestStdioDiscoverEndToEnd(t *testing.T) {
	cmd := exec.Command(jarvisBinary(t), "stdio", "--demo")
	cmd.Env = demoEnv(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := fmt.Fprintf(stdin, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{%q:"2025-11-25"}}}`+"\n",
		mcp.MetaKeyProtocolVersion); err != nil {
		t.Fatal(err)
	}
	line := make(chan []byte, 1)
	go func() {
		b, _ := bufio.NewReader(stdout).ReadBytes('\n')
		line <- b
	}()
	var answer struct {
		ID    int
		Error struct {
			Code int
			Data mcp.UnsupportedProtocolVersionData
		}
	}
	select {
	case b := <-line:
		if err := json.Unmarshal(b, &answer); err != nil {
			t.Fatalf("answer %q: %v\nstderr: %s", b, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no answer\nstderr: %s", stderr.String())
	}
	if answer.ID != 1 || answer.Error.Code != mcp.CodeUnsupportedProtocolVersion || answer.Error.Data.Requested != "2025-11-25" ||
		!slices.Equal(answer.Error.Data.Supported, mcp.SupportedProtocolVersions()) {
		t.Fatalf("answer %+v", answer)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("jarvis stdio after stdin closed: %v\nstderr: %s", err, stderr.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func TestServeDemoEndToEnd(t *testing.T) {
	port := freePort(t)
	env := demoEnv(t, fmt.Sprintf("PORT=%d", port))
	cmd := exec.Command(jarvisBinary(t), "serve", "--demo")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHealthy(t, base, stderr.String)
	resp, err := http.Post(base+"/api/auth/login", "application/json", strings.NewReader(`{"password":"e2e-operator-password"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %v %v", err, resp)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(token string) (*mcp.ClientSession, error) {
		tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}}
		return mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, tr, nil)
	}
	if _, err := connect("not-a-token"); err == nil {
		t.Fatal("a wrong token connected")
	}
	cs, err := connect(login.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"get_cluster_status", nil}, {"get_vms", nil}, {"get_containers", nil}, {"get_storage", nil},
		{"get_backups", nil}, {"get_node_status", map[string]any{"node": "home"}}, {"list_snapshots", map[string]any{"vmid": 101}},
		{"get_node_temperature", map[string]any{"node": "pve"}}, {"get_service_status", map[string]any{"node": "pve", "service": "pveproxy"}},
		{"get_node_logs", map[string]any{"node": "pve", "unit": "pveproxy", "lines": 5}},
		{"execute_ssh", map[string]any{"node": "pve", "command": "zpool status | head -5"}},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil || res.IsError {
			t.Errorf("%s: %v %+v", c.tool, err, res.Content)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 103}})
	if err != nil {
		t.Fatal(err)
	}
	if r := refusal(t, res); r["decision"] != "protected" {
		t.Fatalf("stop_vm 103: %v", r)
	}
	cs.Close()

	// An agent token minted on the host: green ceiling, then revoked.
	out, err := runJarvis(t, env, "token", "create", "--name", "reader", "--max-tier", "green", "--ttl", "1d")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	agentToken := strings.TrimSpace(out)
	agent, err := connect(agentToken)
	if err != nil {
		t.Fatalf("agent token: %v", err)
	}
	list, err := agent.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range list.Tools {
		if !tl.Annotations.ReadOnlyHint {
			t.Errorf("green agent sees %s", tl.Name)
		}
	}
	res, err = agent.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
	if err != nil {
		t.Fatal(err)
	}
	if r := refusal(t, res); r["decision"] != "blocked" {
		t.Fatalf("green agent calling stop_vm: %v", r)
	}
	agent.Close()
	out, err = runJarvis(t, env, "token", "list")
	if err != nil || !strings.Contains(out, "reader") {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	id := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])[0]
	if out, err := runJarvis(t, env, "token", "revoke", id); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	if _, err := connect(agentToken); err == nil {
		t.Fatal("a revoked token still connects")
	}

	// A token with its own toolsets lists only those, and a misspelt toolset
	// is refused at the door with the names to choose from.
	if out, err := runJarvis(t, env, "token", "create", "--name", "typo", "--toolsets", "powr"); err == nil || !strings.Contains(out, `unknown toolset "powr"`) {
		t.Fatalf("token create --toolsets powr: %v\n%s", err, out)
	}
	out, err = runJarvis(t, env, "token", "create", "--name", "power-bot", "--max-tier", "red", "--toolsets", "power")
	if err != nil {
		t.Fatalf("token create --toolsets power: %v\n%s", err, out)
	}
	powerBot, err := connect(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	list, err = powerBot.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != 8 {
		t.Errorf("a power-only token lists %d tools, want the 8 power tools", len(list.Tools))
	}
	for _, tl := range list.Tools {
		if !strings.HasSuffix(tl.Name, "_vm") && !strings.HasSuffix(tl.Name, "_container") {
			t.Errorf("a power-only token lists %s", tl.Name)
		}
	}
	powerBot.Close()
	if out, err := runJarvis(t, env, "token", "list"); err != nil || !strings.Contains(out, "power-bot") || !strings.Contains(out, " power ") {
		t.Errorf("token list does not show the token's toolsets: %v\n%s", err, out)
	}

	// Graceful shutdown on SIGTERM, well within 10 s.
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(12 * time.Second):
		t.Fatal("serve did not stop within 12 s of SIGTERM")
	}
	t.Logf("shutdown took %s", time.Since(start).Round(time.Millisecond))
}

// waitHealthy waits up to 30 s for base's /api/health to answer 200, and
// fails the test with the server's log (logged) when it does not.
func waitHealthy(t *testing.T, base string, logged func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not become healthy: %s", logged())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
