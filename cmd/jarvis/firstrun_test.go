package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Every command answers --help and -h with its own usage, exit 0, and needs no
// configuration: it neither runs nor checks anything.
func TestEveryCommandAnswersHelp(t *testing.T) {
	clearEnv(t)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("PORT", "1") // a healthcheck that ran would fail to connect
	for cmd := range help {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			var out, errb bytes.Buffer
			if err := run(context.Background(), args, &out, &errb); err != nil {
				t.Errorf("jarvis %s: %v", strings.Join(args, " "), err)
				continue
			}
			if !strings.HasPrefix(out.String(), "Usage: jarvis "+cmd) || errb.Len() > 0 {
				t.Errorf("jarvis %s printed %q (stderr %q)", strings.Join(args, " "), out.String(), errb.String())
			}
		}
	}
	// Help after a subcommand or an argument is still help.
	for _, args := range [][]string{{"token", "create", "--help"}, {"approve", "--help"}, {"approve", "apr_0123456789abcdef", "-h"}, {"serve", "--demo", "--help"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err != nil || !strings.Contains(out.String(), "Usage: jarvis "+args[0]) {
			t.Errorf("jarvis %s = %v, %q", strings.Join(args, " "), err, out.String())
		}
	}
	// Every command in the overview has its help.
	for _, m := range regexp.MustCompile(`(?m)^  jarvis ([\w-]+)`).FindAllStringSubmatch(usage, -1) {
		if _, ok := help[m[1]]; !ok {
			t.Errorf("jarvis %s has no --help text", m[1])
		}
	}
}

// The real binary exits 0 on help, where serve --help used to exit 2.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"doctor", "--help"}, {"token", "--help"}, {"--help"}} {
		cmd := exec.Command(jarvisBinary(t), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage") {
			t.Errorf("jarvis %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// `jarvis stdio --demo` without DB_PATH keeps its state where a second terminal
// finds it: a client without elicitation gets an approval id, the person
// approves it with `jarvis approve ID --demo`, and the retry runs.
func TestStdioDemoApprovedFromASecondTerminal(t *testing.T) {
	home := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LOG_LEVEL=warn", "JARVIS_APPROVAL_WAIT=1s"}
	cmd := exec.Command(jarvisBinary(t), "stdio", "--demo")
	cmd.Env = env
	var stderr lockedBuffer // written by the process's copier while the test reads it
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "no-elicitation", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr: %s", err, stderr.String())
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101}})
	if err != nil {
		t.Fatal(err)
	}
	r := refusal(t, res)
	id, _ := r["approval_id"].(string)
	reason, _ := r["reason"].(string)
	if r["decision"] != "needs_approval" || id == "" || !strings.Contains(reason, "jarvis approve "+id+" --demo") {
		t.Fatalf("stop_vm: %v", r)
	}
	state := filepath.Join(home, ".local", "state", "jarvis", "demo")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(stderr.String(), state) && strings.Contains(stderr.String(), "jarvis approve ID --demo") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("stderr does not say where the demo state is and how to approve:\n%s", stderr.String())
			break
		}
	}
	if fi, err := os.Stat(filepath.Join(state, "jarvis.db.demo-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("demo secret file: %v %v", fi, err)
	}
	// --demo finds the demo's state even in a shell that exports a real
	// installation's DB_PATH and JWT_SECRET (set -a; . ./.env).
	real := append(env[:len(env):len(env)], "DB_PATH="+filepath.Join(t.TempDir(), "real.db"), "JWT_SECRET="+strings.Repeat("r", 40))
	out, err := runJarvis(t, real, "approvals", "--demo")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("jarvis approvals --demo: %v\n%s", err, out)
	}
	if out, err := runJarvis(t, env, "approve", id, "--demo"); err != nil {
		t.Fatalf("jarvis approve --demo: %v\n%s", err, out)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "stop_vm", Arguments: map[string]any{"vmid": 101, "approval_id": id}})
	if err != nil || res.IsError {
		t.Fatalf("approved stop_vm: %v %+v", err, res.Content)
	}
	cs.Close()
	_ = cmd.Wait()
	// The next demo run verifies the same audit log with the kept secret.
	if out, err := runJarvis(t, env, "audit", "verify", "--demo"); err != nil || !strings.Contains(out, "audit log OK") {
		t.Fatalf("audit verify --demo: %v\n%s", err, out)
	}
}

func TestHostCommandsSayWhenNoDemoRanYet(t *testing.T) {
	clearEnv(t)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_STATE_HOME", "")
	var out bytes.Buffer
	err := run(context.Background(), []string{"approvals", "--demo"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "start `jarvis serve --demo` or `jarvis stdio --demo` first") {
		t.Fatalf("approvals --demo before any demo = %v", err)
	}
}
