package sshexec

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestRunAgainstSim(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	tests := []struct {
		name, node, command string
		wantCode            int
		wantStdout          string // substring
		wantStderr          string // substring; "" means stderr must be empty
	}{
		{"uptime", "agent1", "uptime", 0, "load average:", ""},
		{"pipeline", "agent1", "qm list | grep mgmt", 0, "103 mgmt", ""},
		{"pipeline counts", "pve", "ps aux | grep kvm | wc -l", 0, "2\n", ""},
		{"exit code of is-active", "agent1", "systemctl is-active pve-ha-crm", 3, "inactive", ""},
		{"stderr kept apart", "home", "nosuchcmd --flag", 127, "", "bash: nosuchcmd: command not found"},
		{"quoted arguments survive both shells", "home", Command("echo", "a b", "$(id)", "it's", "`x`"), 0, "a b $(id) it's `x`\n", ""},
		{"several files", "home", "cat /sys/class/thermal/thermal_zone0/type /sys/class/thermal/thermal_zone0/temp", 0, "x86_pkg_temp\n41000\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.Run(context.Background(), tt.node, tt.command, 0)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != tt.wantCode || res.TimedOut || res.Truncated {
				t.Fatalf("exit %d timedOut %v truncated %v, want exit %d; stderr %q", res.ExitCode, res.TimedOut, res.Truncated, tt.wantCode, res.Stderr)
			}
			if !strings.Contains(res.Stdout, tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", res.Stdout, tt.wantStdout)
			}
			if (tt.wantStderr == "") != (res.Stderr == "") || !strings.Contains(res.Stderr, tt.wantStderr) {
				t.Errorf("stderr %q, want %q", res.Stderr, tt.wantStderr)
			}
			if tt.wantStderr != "" && res.Stdout != "" {
				t.Errorf("stderr leaked into stdout: %q", res.Stdout)
			}
			ran := c.sim.Ran(tt.node)
			if want := remoteCommand(tt.command, DefaultTimeout); ran[len(ran)-1] != want {
				t.Errorf("node received %q, want %q", ran[len(ran)-1], want)
			}
		})
	}
}

func TestOutputCap(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, func(cfg *Config) { cfg.OutputCap = 1000 })
	res, err := e.Run(context.Background(), "pve", "seq 1 200000", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Stdout) != 1000 || res.ExitCode != 0 {
		t.Fatalf("truncated %v, %d bytes, exit %d; want truncated, 1000 bytes, exit 0", res.Truncated, len(res.Stdout), res.ExitCode)
	}
	if !strings.HasPrefix(res.Stdout, "1\n2\n3\n") {
		t.Errorf("stdout starts %q, want the first lines kept", res.Stdout[:20])
	}
	// Under the cap nothing is flagged.
	res, err = e.Run(context.Background(), "pve", "seq 1 10", 0)
	if err != nil || res.Truncated || res.Stdout != "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n" {
		t.Fatalf("small output: %+v, %v", res, err)
	}
}

func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{limit: 5}
	for _, chunk := range []string{"ab", "cde", "fgh", "", "ij"} {
		if n, err := b.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; must accept everything", chunk, n, err)
		}
	}
	if kept, cut := b.snapshot(); kept != "abcde" || !cut {
		t.Fatalf("kept %q truncated %v, want \"abcde\" true", kept, cut)
	}
}

func TestRemoteTimeout(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	res, err := e.Run(context.Background(), "agent1", "sleep 10", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != 124 || res.Duration > 3*time.Second {
		t.Fatalf("got %+v, want TimedOut with exit 124 after about 1s", res)
	}
	if got := c.sim.Ran("agent1"); got[0] != "timeout -k 5 1 sh -c 'sleep 10'" {
		t.Errorf("node received %q", got[0])
	}
	// Everything shut down, nothing left behind by the timed-out session.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.sim.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
}

func TestFastExit124IsNotTimeout(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	// The inner timeout ends with 124 after 0.1s, well before Run's own timeout.
	res, err := e.Run(context.Background(), "home", "timeout 0.1 sleep 5", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 124 || res.TimedOut {
		t.Fatalf("got exit %d timedOut %v; a quick 124 is the command's own status", res.ExitCode, res.TimedOut)
	}
}

func TestLocalDeadlineBacksUpRemoteTimeout(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	e.localGrace = -900 * time.Millisecond // local deadline fires 0.9s before the remote one
	res, err := e.Run(context.Background(), "agent1", "sleep 10", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != -1 || res.Duration > 800*time.Millisecond {
		t.Fatalf("got %+v, want a local TimedOut (exit -1) after about 100ms", res)
	}
	waitFor(t, "remote command to stop", func() bool { return c.sim.Running("agent1") == 0 })
}

func TestContextCancelClosesSession(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	res, err := e.Run(ctx, "agent1", "sleep 30", 60*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res == nil || res.ExitCode != -1 || time.Since(start) > 2*time.Second {
		t.Fatalf("res %+v after %s; want exit -1 soon after the cancel", res, time.Since(start))
	}
	// The pooled connection stays open, so only the closed session can have
	// stopped the remote sleep.
	waitFor(t, "remote command to stop", func() bool { return c.sim.Running("agent1") == 0 })
	if n := e.nodes["agent1"]; n.client == nil || n.dials.Load() != 1 {
		t.Errorf("pooled connection was dropped (client %v, dials %d); cancelling one command must not", n.client, n.dials.Load())
	}
	if _, err := e.Run(context.Background(), "agent1", "true", 0); err != nil {
		t.Fatalf("connection unusable after a cancel: %v", err)
	}
}

func TestCancelledContextLeavesNoGoroutine(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	if _, err := e.Run(context.Background(), "pve", "true", 0); err != nil {
		t.Fatal(err)
	}
	// Connection goroutines exist now; anything beyond them is a leak.
	opt := goleak.IgnoreCurrent()
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := e.Run(ctx, "pve", "sleep 30", 0)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
	}
	waitFor(t, "remote commands to stop", func() bool { return c.sim.Running("pve") == 0 })
	goleak.VerifyNone(t, opt)
}

func TestHostKeyPinning(t *testing.T) {
	c := startSim(t)
	addr := c.sim.Addr("agent1")
	_, port, _ := strings.Cut(addr, ":")
	otherKey, _ := ssh.NewPublicKey(mustEd25519(t))

	var others []byte
	for _, line := range bytes.SplitAfter(c.sim.KnownHosts(), []byte("\n")) {
		if !bytes.Contains(line, []byte(knownhosts.Normalize(addr))) {
			others = append(others, line...)
		}
	}
	tests := []struct {
		name       string
		knownHosts []byte
		changed    bool
		wantInMsg  []string
	}{
		{"unknown host", others, false, []string{
			"host key for node agent1 (" + addr + ") is not in ",
			"verify the key on the node and add it: ssh-keyscan -p " + port + " 127.0.0.1 >> ",
		}},
		{"changed key", append(others, knownhosts.Line([]string{knownhosts.Normalize(addr)}, otherKey)+"\n"...), true, []string{
			"has CHANGED", "man-in-the-middle", "ssh-keygen -R '[127.0.0.1]:" + port + "' -f ",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, tt.knownHosts, 0o600); err != nil {
				t.Fatal(err)
			}
			e := c.executor(t, func(cfg *Config) { cfg.KnownHostsPath = kh })
			res, err := e.Run(context.Background(), "agent1", "uptime", 0)
			var hkErr *HostKeyError
			if !errors.As(err, &hkErr) || res != nil {
				t.Fatalf("got %+v, %v; want a *HostKeyError", res, err)
			}
			if hkErr.Changed != tt.changed {
				t.Errorf("Changed = %v, want %v", hkErr.Changed, tt.changed)
			}
			for _, want := range append(tt.wantInMsg, kh) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q lacks %q", err, want)
				}
			}
			if ran := c.sim.Ran("agent1"); len(ran) != 0 {
				t.Errorf("command reached the node: %q", ran)
			}
			// Other nodes, still pinned correctly, work.
			if _, err := e.Run(context.Background(), "home", "true", 0); err != nil {
				t.Errorf("correctly pinned node failed: %v", err)
			}
		})
	}
}

func TestDeadConnectionReplaced(t *testing.T) {
	for _, probe := range []bool{false, true} {
		name := map[bool]string{false: "session open fails", true: "keepalive fails"}[probe]
		t.Run(name, func(t *testing.T) {
			c := startSim(t)
			e := c.executor(t, nil)
			if probe {
				e.probeIdleAfter = 0
			}
			if _, err := e.Run(context.Background(), "home", "uptime", 0); err != nil {
				t.Fatal(err)
			}
			c.sim.DropConnections("home")
			res, err := e.Run(context.Background(), "home", "hostname", 0)
			if err != nil {
				t.Fatalf("Run after the connection died: %v", err)
			}
			if res.Stdout != "home\n" {
				t.Errorf("stdout %q", res.Stdout)
			}
			if got := e.nodes["home"].dials.Load(); got != 2 {
				t.Errorf("dials = %d, want 2 (one redial)", got)
			}
		})
	}
}

func TestMaxSessions(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, func(cfg *Config) { cfg.MaxSessions = 2 })

	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := e.Run(context.Background(), "pve", "sleep 0.3", 0); err != nil {
				t.Error(err)
			}
		})
	}
	// While two run, a third waits; its context ends the wait.
	waitFor(t, "two sessions running", func() bool { return c.sim.Running("pve") == 2 })
	if got := c.sim.Running("pve"); got > 2 {
		t.Errorf("%d sessions at once, max is 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := e.Run(ctx, "pve", "true", 0)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "waiting for a free SSH session on node pve") {
		t.Errorf("err = %v, want a wait error", err)
	}
	wg.Wait()
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("4 × 0.3s with 2 slots took %s; the semaphore did not hold", d)
	}
}

func TestConcurrentRuns(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	nodes := c.sim.Nodes()
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			node := nodes[i%len(nodes)]
			for range 5 {
				res, err := e.Run(context.Background(), node, "hostname", 0)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Stdout != node+"\n" {
					t.Errorf("node %s answered %q", node, res.Stdout)
				}
			}
		})
	}
	wg.Wait()
	for _, n := range nodes {
		if d := e.nodes[n].dials.Load(); d != 1 {
			t.Errorf("node %s dialled %d times, want 1 pooled connection", n, d)
		}
	}
}

func TestRunErrors(t *testing.T) {
	c := startSim(t)
	e := c.executor(t, nil)
	if _, err := e.Run(context.Background(), "nope", "true", 0); err == nil || !strings.Contains(err.Error(), `unknown node "nope": configured nodes are agent, agent1, home, pve`) {
		t.Errorf("unknown node: %v", err)
	}
	// A client key the node does not accept.
	other := c.executor(t, func(cfg *Config) { cfg.Signer = newSigner(t) })
	if _, err := other.Run(context.Background(), "home", "true", 0); err == nil || !strings.Contains(err.Error(), "refused our key for user root") {
		t.Errorf("wrong key: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), "home", "true", 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: %v", err)
	}
}

func TestTimeoutClampAndWrapping(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "timeout -k 5 30 sh -c uptime"},
		{-time.Second, "timeout -k 5 30 sh -c uptime"},
		{200 * time.Millisecond, "timeout -k 5 1 sh -c uptime"},
		{1500 * time.Millisecond, "timeout -k 5 2 sh -c uptime"},
		{time.Hour, "timeout -k 5 300 sh -c uptime"},
	}
	for _, tt := range tests {
		if got := remoteCommand("uptime", clampTimeout(tt.in)); got != tt.want {
			t.Errorf("timeout %s: %q, want %q", tt.in, got, tt.want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustEd25519(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// Pooled connection versus a new connection per command, against sshsim:
//
//	go test -run XXX -bench Sim -benchtime 100x ./tools/ssh/
func BenchmarkSimUptimePooled(b *testing.B) {
	c := startSim(b)
	e := c.executor(b, nil)
	for b.Loop() {
		if _, err := e.Run(context.Background(), "pve", "uptime", 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSimUptimeFreshConnection(b *testing.B) {
	c := startSim(b)
	for b.Loop() {
		e, err := New(c.config())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Run(context.Background(), "pve", "uptime", 0); err != nil {
			b.Fatal(err)
		}
		_ = e.Close()
	}
}
