package sshexec

// Integration tests against a real OpenSSH server. CI starts one with
// `eval "$(bash .ci/sshd.sh)"`; locally they skip when it is not configured.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

type realSSHD struct {
	addr, user, key, knownHosts, ed25519Only string
}

func requireSSHD(t testing.TB) realSSHD {
	t.Helper()
	s := realSSHD{
		addr:        os.Getenv("JARVIS_TEST_SSHD_ADDR"),
		user:        os.Getenv("JARVIS_TEST_SSHD_USER"),
		key:         os.Getenv("JARVIS_TEST_SSHD_KEY"),
		knownHosts:  os.Getenv("JARVIS_TEST_SSHD_KNOWN_HOSTS"),
		ed25519Only: os.Getenv("JARVIS_TEST_SSHD_HOSTKEY_ED25519_ONLY_KNOWN_HOSTS"),
	}
	if s.addr == "" || s.user == "" || s.key == "" || s.knownHosts == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd not configured in CI; run: eval \"$(bash .ci/sshd.sh)\"")
		}
		t.Skip("sshd not configured; run .ci/sshd.sh")
	}
	return s
}

func (s realSSHD) executor(t testing.TB, edit func(*Config)) *Executor {
	t.Helper()
	cfg := Config{Nodes: map[string]string{"real": s.addr}, User: s.user, KeyPath: s.key, KnownHostsPath: s.knownHosts}
	if edit != nil {
		edit(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// ed25519OnlyKnownHosts returns the ed25519-only known_hosts file, made from
// the full one when the environment does not name it.
func (s realSSHD) ed25519OnlyKnownHosts(t *testing.T) string {
	if s.ed25519Only != "" {
		return s.ed25519Only
	}
	f, err := os.Open(s.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kept []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), " ssh-ed25519 ") {
			kept = append(kept, sc.Text())
		}
	}
	p := filepath.Join(t.TempDir(), "known_hosts_ed25519")
	if err := os.WriteFile(p, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntegrationHostKeyPinning(t *testing.T) {
	s := requireSSHD(t)
	otherKey, _ := ssh.NewPublicKey(mustEd25519(t))
	wrong := filepath.Join(t.TempDir(), "known_hosts_wrong")
	if err := os.WriteFile(wrong, []byte(knownhosts.Line([]string{knownhosts.Normalize(s.addr)}, otherKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		knownHosts string
		wantErr    []string
	}{
		{"all pinned keys", s.knownHosts, nil},
		{"ed25519 only, server also has RSA and ECDSA", s.ed25519OnlyKnownHosts(t), nil},
		{"different key pinned", wrong, []string{"has CHANGED", "man-in-the-middle", "ssh-keygen -R"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.executor(t, func(c *Config) { c.KnownHostsPath = tt.knownHosts })
			res, err := e.Run(context.Background(), "real", "echo pinned-ok", 0)
			if tt.wantErr == nil {
				if err != nil || res.Stdout != "pinned-ok\n" {
					t.Fatalf("got %+v, %v", res, err)
				}
				return
			}
			var hk *HostKeyError
			if !errors.As(err, &hk) || !hk.Changed {
				t.Fatalf("err = %v, want a changed-key *HostKeyError", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestIntegrationExitCodesAndStreams(t *testing.T) {
	s := requireSSHD(t)
	e := s.executor(t, nil)
	tests := []struct {
		command        string
		code           int
		stdout, stderr string
	}{
		{"echo out; echo err >&2", 0, "out\n", "err\n"},
		{"exit 3", 3, "", ""},
		{"false", 1, "", ""},
		{"kill -9 $$", 137, "", ""}, // exit-signal KILL
		{Command("printf", "%s|", "a b", "$(id)", "it's"), 0, "a b|$(id)|it's|", ""},
	}
	for _, tt := range tests {
		res, err := e.Run(context.Background(), "real", tt.command, 0)
		if err != nil {
			t.Fatalf("%s: %v", tt.command, err)
		}
		if res.ExitCode != tt.code || res.Stdout != tt.stdout || res.Stderr != tt.stderr {
			t.Errorf("%s: exit %d stdout %q stderr %q; want %d %q %q", tt.command, res.ExitCode, res.Stdout, res.Stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
	res, err := e.Run(context.Background(), "real", "nosuchcommand-jarvis", 0)
	if err != nil || res.ExitCode != 127 || res.Stderr == "" {
		t.Errorf("unknown command: %+v, %v", res, err)
	}
}

func TestIntegrationOutputCap(t *testing.T) {
	s := requireSSHD(t)
	e := s.executor(t, nil)
	res, err := e.Run(context.Background(), "real", "seq 1 1000000", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Stdout) != DefaultOutputCap || res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "1\n2\n") {
		t.Fatalf("seq: truncated %v, %d bytes, exit %d", res.Truncated, len(res.Stdout), res.ExitCode)
	}
	small := s.executor(t, func(c *Config) { c.OutputCap = 1000 })
	res, err = small.Run(context.Background(), "real", "head -c 2000000 /dev/zero; head -c 5000 /dev/zero >&2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Stdout) != 1000 || len(res.Stderr) != 1000 || res.ExitCode != 0 {
		t.Fatalf("head: truncated %v, stdout %d, stderr %d bytes, exit %d", res.Truncated, len(res.Stdout), len(res.Stderr), res.ExitCode)
	}
}

// remotePID runs a command that records its shell's pid in pidFile, then
// sleeps far longer than any timeout here.
func remoteSleeper(pidFile string) string {
	return "echo $$ > " + Quote(pidFile) + "; sleep 60"
}

// waitGone polls over a fresh session until the remote pid no longer exists.
func waitGone(t *testing.T, e *Executor, pidFile string, within time.Duration) {
	t.Helper()
	res, err := e.Run(context.Background(), "real", Command("cat", pidFile), 0)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("reading pid file: %+v, %v", res, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("pid file holds %q", res.Stdout)
	}
	deadline := time.Now().Add(within)
	for {
		res, err := e.Run(context.Background(), "real", fmt.Sprintf("kill -0 %d", pid), 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 {
			return // gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote process %d still runs %s after the timeout", pid, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIntegrationTimeoutKillsRemoteCommand(t *testing.T) {
	s := requireSSHD(t)
	e := s.executor(t, nil)
	pidFile := fmt.Sprintf("/tmp/jarvis-it-%d-timeout.pid", time.Now().UnixNano())
	t.Cleanup(func() { _ = os.Remove(pidFile) })

	start := time.Now()
	res, err := e.Run(context.Background(), "real", remoteSleeper(pidFile), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The sleeper runs 60 s: ending well before that is the timeout at work.
	// The bound is loose because a loaded machine is slow to tear down.
	if !res.TimedOut || res.ExitCode != 124 || time.Since(start) > 30*time.Second {
		t.Fatalf("got %+v after %s, want TimedOut with exit 124 after about 2s (the sleeper runs 60s)", res, time.Since(start))
	}
	waitGone(t, e, pidFile, 2*time.Second)
}

func TestIntegrationCancelStopsRemoteCommand(t *testing.T) {
	s := requireSSHD(t)
	e := s.executor(t, nil)
	pidFile := fmt.Sprintf("/tmp/jarvis-it-%d-cancel.pid", time.Now().UnixNano())
	t.Cleanup(func() { _ = os.Remove(pidFile) })

	if _, err := e.Run(context.Background(), "real", "true", 0); err != nil {
		t.Fatal(err) // connect first: only the session's reaction to the cancel is timed
	}
	ctx, cancel := context.WithCancel(context.Background())
	var cancelled time.Time
	go func() {
		// Cancel once the command runs (its pid file exists), not after a fixed
		// time: on a loaded machine the remote shell can take longer to start.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if res, err := e.Run(context.Background(), "real", "test -s "+Quote(pidFile), 0); err == nil && res.ExitCode == 0 {
				break
			}
		}
		cancelled = time.Now()
		cancel()
	}()
	_, err := e.Run(ctx, "real", remoteSleeper(pidFile), 5*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if d := time.Since(cancelled); d > time.Second {
		t.Errorf("Run returned %s after the cancel, want promptly", d)
	}
	// OpenSSH ignores signals for root sessions; the remote timeout (5 s
	// here) or the executor's kill ends it.
	waitGone(t, e, pidFile, 8*time.Second)
}

func TestIntegrationCancelLeavesNoGoroutine(t *testing.T) {
	s := requireSSHD(t)
	e := s.executor(t, nil)
	if _, err := e.Run(context.Background(), "real", "true", 0); err != nil {
		t.Fatal(err)
	}
	opt := goleak.IgnoreCurrent()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := e.Run(ctx, "real", "sleep 1", 0)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
	}
	// OpenSSH holds each closed session until its `sleep 1` ends; then the
	// background drains free their slots and exit by themselves.
	deadline := time.Now().Add(15 * time.Second)
	for len(e.nodes["real"].slots) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d session slots still taken", len(e.nodes["real"].slots))
		}
		time.Sleep(50 * time.Millisecond)
	}
	goleak.VerifyNone(t, opt)
}

// Pooled connection versus a new connection per command:
//
//	eval "$(bash .ci/sshd.sh)"; go test -run XXX -bench Integration -benchtime 100x ./tools/ssh/
func BenchmarkIntegrationUptimePooled(b *testing.B) {
	s := requireSSHD(b)
	e := s.executor(b, nil)
	for b.Loop() {
		if _, err := e.Run(context.Background(), "real", "uptime", 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIntegrationUptimeFreshConnection(b *testing.B) {
	s := requireSSHD(b)
	for b.Loop() {
		e, err := New(Config{Nodes: map[string]string{"real": s.addr}, User: s.user, KeyPath: s.key, KnownHostsPath: s.knownHosts})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Run(context.Background(), "real", "uptime", 0); err != nil {
			b.Fatal(err)
		}
		_ = e.Close()
	}
}

// A command that ignores SIGTERM is killed by timeout's -k and still counts as
// timed out (exit 137 after the deadline).
func TestIntegrationTermIgnoringCommandIsTimedOut(t *testing.T) {
	e := requireSSHD(t).executor(t, nil)
	res, err := e.Run(context.Background(), "real", `trap "" TERM; sleep 30`, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 137 from the remote timeout; -1 if Jarvis's own deadline (timeout plus
	// grace) came first on a loaded machine. Either way: timed out.
	if !res.TimedOut || (res.ExitCode != 137 && res.ExitCode != -1) {
		t.Fatalf("exit %d timedOut=%t, want a timeout (137 from timeout -k)", res.ExitCode, res.TimedOut)
	}
}

// sshd refuses sessions past its MaxSessions (10); that refusal must not drop
// the connection the other commands are running on. Slowness is not what this
// checks (sshd here is slow under load): only that no command lost its outcome.
func TestIntegrationRefusedSessionKeepsTheOthersRunning(t *testing.T) {
	e := requireSSHD(t).executor(t, func(c *Config) { c.MaxSessions = 12 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, refused int
	var lost []error
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.Run(context.Background(), "real", "sleep 2; echo done", 60*time.Second)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && strings.TrimSpace(res.Stdout) == "done":
				ok++
			case err != nil && strings.Contains(err.Error(), "opening SSH session"):
				refused++
			case err == nil && res.TimedOut:
				// too slow under load; not what this test is about
			default:
				lost = append(lost, fmt.Errorf("res=%+v err=%v", res, err))
			}
		}()
	}
	wg.Wait()
	if len(lost) > 0 || ok == 0 {
		t.Fatalf("%d ok, %d refused; commands that lost their outcome: %v", ok, refused, lost)
	}
}
