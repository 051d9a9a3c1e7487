package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Summary is everything one run measured. Zero numbers were not measured;
// Skipped says why.
type Summary struct {
	Command     string            `json:"command"`
	Machine     Machine           `json:"machine"`
	Target      string            `json:"target"`
	URL         string            `json:"url"`
	PID         int               `json:"pid,omitempty"`
	StartupMS   float64           `json:"startup_ms,omitempty"` // HealthMS + FirstListMS
	HealthMS    float64           `json:"health_ms,omitempty"`  // exec to the first 200 from /api/health
	FirstListMS float64           `json:"first_list_ms"`        // initialize + tools/list
	TokenMS     float64           `json:"token_ms,omitempty"`   // jarvis token create, not in StartupMS
	Tools       int               `json:"tools"`
	Idle        Memory            `json:"idle"`
	Load        Load              `json:"load"`
	After       Memory            `json:"after"`
	Settled     Memory            `json:"settled"`
	StopMS      float64           `json:"stop_ms,omitempty"` // SIGTERM to exit
	Skipped     map[string]string `json:"skipped,omitempty"`
}

// Memory is one reading of the server process.
type Memory struct {
	RSSKiB     int64   `json:"rss_kib,omitempty"` // VmRSS
	HWMKiB     int64   `json:"hwm_kib,omitempty"` // VmHWM, the peak RSS so far
	Goroutines int     `json:"goroutines,omitempty"`
	AfterS     float64 `json:"after_seconds"` // how long the server idled before
}

func (s *Summary) skip(what, why string) {
	if s.Skipped == nil {
		s.Skipped = map[string]string{}
	}
	s.Skipped[what] = why
}

// run measures one Jarvis: started from cfg.jarvis, or the one at cfg.url. It
// returns the summary so far even when it fails. Progress goes to logw.
func run(ctx context.Context, cfg config, logw io.Writer) (*Summary, error) {
	s := &Summary{Command: cfg.command, Machine: machine()}
	base := &http.Transport{
		Proxy:               nil, // loopback; a proxy from the environment would measure itself
		MaxIdleConnsPerHost: 2*cfg.concurrency + 8,
		IdleConnTimeout:     90 * time.Second,
	}
	defer base.CloseIdleConnections()

	var srv *spawned
	var tokens []string
	operator := ""
	if cfg.url != "" {
		s.Target, s.URL, s.PID = "a running Jarvis (-url)", strings.TrimSuffix(cfg.url, "/"), cfg.pid
		tokens = strings.Split(cfg.token, ",")
		operator = tokens[0] // /metrics wants an operator token; an agent's is refused and said so
		if cfg.pid == 0 {
			s.skip("memory", "-url without -pid: give the server's process id to read its memory")
		}
		s.skip("startup", "-url: the server was already running")
	} else {
		var err error
		srv, err = spawn(ctx, cfg, logw)
		if err != nil {
			return s, err
		}
		defer srv.kill()
		s.Target = fmt.Sprintf("%s serve --demo (fresh state in a temporary folder)", cfg.jarvis)
		s.URL, s.PID = srv.url, srv.cmd.Process.Pid
		s.HealthMS = ms(srv.healthy)

		for i := range cfg.agents {
			t := time.Now()
			tok, err := srv.agentToken(ctx, fmt.Sprintf("jarvis-load-%d", i+1), cfg.maxTier)
			if err != nil {
				return s, err
			}
			if i == 0 {
				s.TokenMS = ms(time.Since(t))
			}
			tokens = append(tokens, tok)
		}
		if operator, err = login(ctx, base, srv.url, srv.password); err != nil {
			s.skip("goroutines", err.Error())
		}
	}

	t := time.Now()
	n, err := firstList(ctx, base, s.URL, tokens[0])
	if err != nil {
		return s, fmt.Errorf("%w (check the URL and that the token is an agent token of this Jarvis)", err)
	}
	s.FirstListMS, s.Tools = ms(time.Since(t)), n
	if srv != nil {
		s.StartupMS = math.Round((s.HealthMS+s.FirstListMS)*1000) / 1000
	}

	read := func(m *Memory, idle time.Duration) {
		fmt.Fprintf(logw, "jarvis-load: reading memory after %s idle\n", idle)
		select {
		case <-time.After(idle):
		case <-ctx.Done():
		}
		m.AfterS = idle.Seconds()
		var err error
		if s.PID != 0 {
			if m.RSSKiB, m.HWMKiB, err = readMemory(s.PID); err != nil {
				s.skip("memory", err.Error())
			}
		}
		if operator != "" && s.Skipped["goroutines"] == "" {
			if m.Goroutines, err = goroutines(ctx, base, s.URL, operator); err != nil {
				s.skip("goroutines", err.Error())
			}
		}
	}
	read(&s.Idle, cfg.idle)

	fmt.Fprintf(logw, "jarvis-load: %d calls of %s over %d sessions at concurrency %d\n", cfg.calls, cfg.tool, cfg.sessions, cfg.concurrency)
	serverCPU0, _ := processCPU(s.PID)
	clientCPU0 := selfCPU()
	s.Load, err = runLoad(ctx, cfg, base, s.URL, tokens)
	if err != nil {
		return s, err
	}
	s.Load.ClientCPUS = (selfCPU() - clientCPU0).Seconds()
	if serverCPU1, err := processCPU(s.PID); err == nil && s.PID != 0 {
		s.Load.ServerCPUS = (serverCPU1 - serverCPU0).Seconds()
	}
	read(&s.After, 0)
	if cfg.settle > 0 {
		read(&s.Settled, cfg.settle)
	} else {
		s.skip("settled", "-settle 0: give -settle longer than the server's idle session timeout (JARVIS_MCP_SESSION_IDLE) to see abandoned sessions reaped")
	}

	if srv != nil {
		t := time.Now()
		if err := srv.stop(); err != nil {
			return s, err
		}
		s.StopMS = ms(time.Since(t))
	}
	return s, ctx.Err()
}

// spawned is a `jarvis serve --demo` started by run.
type spawned struct {
	cmd      *exec.Cmd
	env      []string
	dir      string
	url      string
	password string
	stderr   *tail
	exited   chan struct{} // closed when the process has ended; then waitErr is set
	waitErr  error
	healthy  time.Duration // from exec to the first 200 from /api/health
}

// spawn starts the server with fresh state on a free loopback port and waits
// for /api/health.
func spawn(ctx context.Context, cfg config, logw io.Writer) (*spawned, error) {
	bin, err := filepath.Abs(cfg.jarvis)
	if err != nil {
		return nil, err
	}
	switch fi, err := os.Stat(bin); {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("the jarvis binary %s does not exist: build it with `go build -o %s ./cmd/jarvis` in the repository", bin, bin)
	case err != nil:
		return nil, fmt.Errorf("the jarvis binary %s: %w", bin, err)
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		return nil, fmt.Errorf("%s is not an executable file: give -jarvis the binary built with `go build -o /tmp/jarvis ./cmd/jarvis`", bin)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
	}
	dir, err := os.MkdirTemp("", "jarvis-load-")
	if err != nil {
		return nil, err
	}
	srv := &spawned{dir: dir, url: "http://127.0.0.1:" + strconv.Itoa(port), password: randomHex(16),
		stderr: &tail{max: 16 << 10}, exited: make(chan struct{})}
	// Only what the demo needs: a DB_PATH or JWT_SECRET inherited from this
	// shell would point the demo at a real installation's database.
	srv.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_STATE_HOME=" + filepath.Join(dir, "state"),
		"TMPDIR=" + os.TempDir(),
		"JARVIS_LISTEN=127.0.0.1",
		"PORT=" + strconv.Itoa(port),
		// Known to this tool, so it can log in as the operator for /metrics.
		"JARVIS_PASSWORD=" + srv.password,
	}
	srv.env = append(srv.env, cfg.env...) // later entries win
	srv.cmd = exec.Command(bin, "serve", "--demo")
	srv.cmd.Env = srv.env
	srv.cmd.Stdout, srv.cmd.Stderr = srv.stderr, srv.stderr
	fmt.Fprintf(logw, "jarvis-load: starting %s serve --demo on %s\n", bin, srv.url)
	start := time.Now()
	if err := srv.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		srv.waitErr = srv.cmd.Wait()
		close(srv.exited)
	}()

	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(cfg.wait)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+"/api/health", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				srv.healthy = time.Since(start)
				return srv, nil
			}
		}
		select {
		case <-srv.exited:
			srv.cleanup()
			return nil, fmt.Errorf("jarvis serve --demo exited before it answered (%v); its output ends with:\n%s", srv.waitErr, srv.stderr)
		case <-ctx.Done():
			srv.kill()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			srv.kill()
			return nil, fmt.Errorf("jarvis serve --demo did not answer %s/api/health within %s (raise -wait on a slow machine); its output ends with:\n%s", srv.url, cfg.wait, srv.stderr)
		}
	}
}

// agentToken makes an agent token the way a user does: jarvis token create
// --demo with the server's environment.
func (srv *spawned) agentToken(ctx context.Context, name, maxTier string) (string, error) {
	cmd := exec.CommandContext(ctx, srv.cmd.Path, "token", "create", "--name", name, "--max-tier", maxTier, "--ttl", "1d", "--demo")
	cmd.Env = srv.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("`jarvis token create --name %s --max-tier %s --demo` failed (%v): %s", name, maxTier, err, strings.TrimSpace(errb.String()))
	}
	tok := strings.TrimSpace(out.String())
	if tok == "" || strings.ContainsAny(tok, " \n") {
		return "", fmt.Errorf("`jarvis token create --demo` printed %q, not one token", out.String())
	}
	return tok, nil
}

// stop sends SIGTERM and waits for the server to exit cleanly.
func (srv *spawned) stop() error {
	defer srv.cleanup()
	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.exited:
	case <-time.After(20 * time.Second):
		_ = srv.cmd.Process.Kill()
		<-srv.exited
		return fmt.Errorf("jarvis serve did not exit within 20 s of SIGTERM and was killed; its output ends with:\n%s", srv.stderr)
	}
	if srv.waitErr != nil {
		return fmt.Errorf("jarvis serve exited with %v after SIGTERM; its output ends with:\n%s", srv.waitErr, srv.stderr)
	}
	return nil
}

// kill ends the server if it still runs (after a failure or an interrupt).
func (srv *spawned) kill() {
	select {
	case <-srv.exited:
	default:
		_ = srv.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-srv.exited:
		case <-time.After(10 * time.Second):
			_ = srv.cmd.Process.Kill()
			<-srv.exited
		}
	}
	srv.cleanup()
}

func (srv *spawned) cleanup() { os.RemoveAll(srv.dir) }

// login gets an operator token, for /metrics.
func login(ctx context.Context, base http.RoundTripper, url, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"password": password})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: base, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("operator login: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil || out.Token == "" {
		return "", fmt.Errorf("operator login answered %s", resp.Status)
	}
	return out.Token, nil
}

// goroutines reads go_goroutines from the server's /metrics, where it has one.
func goroutines(ctx context.Context, base http.RoundTripper, url, token string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: base, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return 0, errors.New("the server has no /metrics, so its goroutines are not exposed")
	case http.StatusUnauthorized, http.StatusForbidden:
		return 0, fmt.Errorf("/metrics refused the token (%s): it needs an operator token", resp.Status)
	default:
		return 0, fmt.Errorf("GET /metrics answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics: go_goroutines %q: %w", v, err)
			}
			return int(n), nil
		}
	}
	return 0, errors.New("/metrics has no go_goroutines")
}

// readMemory reads VmRSS and VmHWM (KiB) from /proc/PID/status.
func readMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the server's memory: %w (it needs Linux's /proc and the server's pid)", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			rss = kib
		case "VmHWM":
			hwm = kib
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return rss, hwm, nil
}

// processCPU is the user and system CPU time of a process so far, from
// /proc/PID/stat (fields 14 and 15, in USER_HZ ticks: 100 a second on Linux).
func processCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable /proc stat")
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tail keeps the last max bytes written to it: the server's output, for the
// error that says why it did not come up.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(nothing)"
	}
	return s
}
