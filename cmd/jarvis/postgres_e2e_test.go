package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/jarvis-homelab/jarvis/store/storetest"
)

// replicaEnv is the environment of one replica on the PostgreSQL database at
// url with its own anchor file: demoEnv without DB_PATH.
func replicaEnv(t *testing.T, url, anchor, replica string, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range demoEnv(t) {
		if !strings.HasPrefix(kv, "DB_PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "JARVIS_DATABASE_URL="+url, "JARVIS_AUDIT_ANCHOR="+anchor, "JARVIS_REPLICA_ID="+replica)
	return append(env, extra...)
}

var approvalIDPattern = regexp.MustCompile(`apr_[0-9a-f]{16}`)

// jarvis serve --demo on PostgreSQL, as a replica runs it: JARVIS_DATABASE_URL
// and an anchor file of its own. An agent's RED call waits for a person, who
// approves it with jarvis approve, another process on the same database; the
// waiting call runs, serve's feed shows the approval decided elsewhere, and
// jarvis audit verify holds. A second replica with no anchor file refuses to
// start on the founded log until it has one.
func TestServeOnPostgresEndToEnd(t *testing.T) {
	storetest.SkipOnSQLite(t, "jarvis serve on JARVIS_DATABASE_URL")
	url := storetest.Target(t)
	anchorA := filepath.Join(t.TempDir(), "jarvis.anchor")
	port := freePort(t)
	env := replicaEnv(t, url, anchorA, "replica-a", fmt.Sprintf("PORT=%d", port), "JARVIS_APPROVAL_WAIT=30s")
	serve := exec.Command(jarvisBinary(t), "serve", "--demo")
	serve.Env = env
	var stderr bytes.Buffer
	serve.Stderr = &stderr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Kill()
		if t.Failed() {
			t.Logf("jarvis serve stderr:\n%s", stderr.String())
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, 60*time.Second, "jarvis serve healthy", func() bool {
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if _, err := os.Stat(anchorA); err != nil {
		t.Fatalf("founding the log on PostgreSQL wrote no anchor file: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	approvals := feed(t, ctx, base, operatorLogin(t, base), "approval")

	out, err := runJarvis(t, env, "token", "create", "--name", "pg-agent", "--max-tier", "red")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{strings.TrimSpace(out)}}}
	agent, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	// The RED call waits in serve while a person approves it from the host.
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	called := make(chan answer, 1)
	go func() {
		res, err := agent.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
		called <- answer{res, err}
	}()
	var id string
	waitUntil(t, 20*time.Second, "the approval request in jarvis approvals", func() bool {
		out, err := runJarvis(t, env, "approvals")
		id = approvalIDPattern.FindString(out)
		return err == nil && id != ""
	})
	if out, err := runJarvis(t, env, "approve", id); err != nil {
		t.Fatalf("jarvis approve: %v\n%s", err, out)
	}
	select {
	case a := <-called:
		if a.err != nil || a.res.IsError {
			b, _ := json.Marshal(a.res)
			t.Fatalf("the approved stop_vm: %v %s", a.err, b)
		}
	case <-ctx.Done():
		t.Fatal("the waiting call did not run after jarvis approve")
	}
	res, err := agent.CallTool(ctx, &mcp.CallToolParams{Name: "get_guest_status", Arguments: map[string]any{"vmid": 101}})
	if b, _ := json.Marshal(res.StructuredContent); err != nil || !strings.Contains(string(b), `"status":"stopped"`) {
		t.Fatalf("VM 101 after the approved stop: %v %s", err, b)
	}
	// jarvis approve wrote the event in its own process; serve's feed has it.
	waitUntil(t, 10*time.Second, "the approval decided by jarvis approve on serve's feed", func() bool {
		for {
			select {
			case line := <-approvals:
				if strings.Contains(line, id) && strings.Contains(line, `"phase":"approved"`) {
					return true
				}
			default:
				return false
			}
		}
	})

	// Another replica has no anchor file for the log replica-a founded: it
	// does not adopt one silently, and says what to do.
	anchorB := filepath.Join(t.TempDir(), "jarvis.anchor")
	envB := replicaEnv(t, url, anchorB, "replica-b", fmt.Sprintf("PORT=%d", freePort(t)))
	bctx, bcancel := context.WithTimeout(ctx, 60*time.Second)
	defer bcancel()
	b := exec.CommandContext(bctx, jarvisBinary(t), "serve", "--demo")
	b.Env = envB
	if out, err := b.CombinedOutput(); err == nil || !strings.Contains(string(out), "this replica has no audit anchor file (JARVIS_AUDIT_ANCHOR="+anchorB+")") {
		t.Fatalf("replica-b without an anchor file: %v\n%s", err, out)
	}
	// It refused before writing anything: no anchor file of its own, and no
	// missing-anchor alarm on the feed every replica shares.
	if _, err := os.Stat(anchorB); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused replica-b left an anchor file: %v", err)
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var alarms int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM events WHERE strpos(summary || details, $1) > 0", anchorB).Scan(&alarms); err != nil || alarms != 0 {
		t.Fatalf("%d events name replica-b's anchor file after its refused start (%v)", alarms, err)
	}
	if out, err := runJarvis(t, envB, "audit", "verify"); err == nil || !strings.Contains(out, "anchor file "+anchorB+" is missing") {
		t.Fatalf("audit verify without this replica's anchor: %v\n%s", err, out)
	}
	// With a copy of a running replica's anchor, it verifies and would start.
	data, err := os.ReadFile(anchorA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(anchorB, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runJarvis(t, envB, "audit", "verify"); err != nil || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify with the copied anchor: %v\n%s", err, out)
	}

	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15 s of SIGTERM")
	}
	out, err = runJarvis(t, env, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit log OK") || !strings.Contains(out, "anchored through row") {
		t.Fatalf("audit verify after serve stopped: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}

// operatorLogin logs in with demoEnv's operator password.
func operatorLogin(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Post(base+"/api/auth/login", "application/json", strings.NewReader(`{"password":"e2e-operator-password"}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var login struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&login); err != nil {
		t.Fatal(err)
	}
	return login.Token
}

// feed follows the SSE feed of kind until ctx ends and hands over each data
// line.
func feed(t *testing.T, ctx context.Context, base, token, kind string) <-chan string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events?kind="+kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("feed: %v %v", err, resp)
	}
	lines := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				select {
				case lines <- data:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return lines
}
