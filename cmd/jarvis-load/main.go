// Command jarvis-load measures a whole Jarvis process the way a user runs it:
// start-up to the first tools/list answer, idle memory, and many tool calls
// over many MCP sessions (streamable HTTP, agent token), then memory again.
//
//	go build -o /tmp/jarvis ./cmd/jarvis && go run ./cmd/jarvis-load -jarvis /tmp/jarvis
//
// It starts `jarvis serve --demo` with a fresh state folder on a free loopback
// port, makes an agent token with `jarvis token create … --demo`, runs -calls
// calls of -tool over -sessions sessions at -concurrency, prints one summary
// (plain text, or -json) and stops the server with SIGTERM. Sessions are
// abandoned without DELETE, as the TypeScript SDK's close() leaves them,
// unless -close is given. With -url and -token it measures a Jarvis that is
// already running instead (memory only with -pid).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags say.
type config struct {
	jarvis      string  // binary to start; "" with url
	url         string  // a running Jarvis
	token       string  // its agent tokens, comma-separated
	pid         int     // its process, for memory
	agents      int     // agent tokens to make when spawning
	env         envList // for the started server
	calls       int
	sessions    int
	concurrency int
	tool        string
	args        string // JSON object
	maxTier     string
	close       bool
	idle        time.Duration // wait before the idle reading
	settle      time.Duration // wait before the settled reading
	wait        time.Duration // longest start-up
	timeout     time.Duration // longest call
	json        bool
	command     string // the command line, for the summary
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "jarvis-load: %v\n", err)
		os.Exit(2)
	}
	s, err := run(ctx, cfg, os.Stderr)
	if s != nil {
		if werr := writeSummary(os.Stdout, s, cfg.json); werr != nil && err == nil {
			err = werr
		}
	}
	if err == nil && s.Load.Errors > 0 {
		err = fmt.Errorf("%d of %d calls failed: the errors are listed above", s.Load.Errors, s.Load.Calls)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "jarvis-load: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("jarvis-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.jarvis, "jarvis", "", "the jarvis binary to start as `jarvis serve --demo` (build it with go build -o /tmp/jarvis ./cmd/jarvis)")
	fs.StringVar(&c.url, "url", "", "measure a Jarvis that is already running at this base URL instead, e.g. http://127.0.0.1:4000 (needs -token)")
	fs.StringVar(&c.token, "token", "", "with -url: agent tokens (jarvis token create), comma-separated; the sessions are spread over them")
	fs.IntVar(&c.agents, "agents", 10, "agent tokens to make, the sessions spread over them in turn: Jarvis caps the sessions one token may hold\n(JARVIS_MCP_MAX_SESSIONS), and abandoned sessions count until they expire")
	fs.Var(&c.env, "env", "`KEY=VALUE` for the started server's environment, e.g. -env JARVIS_MCP_MAX_SESSIONS=500 (repeatable)")
	fs.IntVar(&c.pid, "pid", 0, "with -url: the server's process id, to read its memory from /proc")
	fs.IntVar(&c.calls, "calls", 10000, "tool calls in all")
	fs.IntVar(&c.sessions, "sessions", 300, "MCP sessions the calls are spread over")
	fs.IntVar(&c.concurrency, "concurrency", 50, "sessions in use at once")
	fs.StringVar(&c.tool, "tool", "get_vms", "the tool to call")
	fs.StringVar(&c.args, "args", "{}", "the tool's arguments, a JSON object")
	fs.StringVar(&c.maxTier, "max-tier", "green", "the agent token's ceiling (green, yellow, red); raise it for a tool above GREEN")
	fs.BoolVar(&c.close, "close", false, "end each session with DELETE instead of abandoning it")
	fs.DurationVar(&c.idle, "idle", 2*time.Second, "how long the server idles before its idle memory is read")
	fs.DurationVar(&c.settle, "settle", 0, "after the run, wait this long and read memory again (idle session reaping)")
	fs.DurationVar(&c.wait, "wait", 60*time.Second, "how long the server may take to come up")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long one call may take")
	fs.BoolVar(&c.json, "json", false, "print the summary as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: jarvis-load -jarvis PATH [flags]\n       jarvis-load -url URL -token TOKEN [-pid PID] [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see -help)", fs.Arg(0))
	}
	c.command = commandLine(args)
	var problems []string
	switch {
	case c.url == "" && c.jarvis == "":
		problems = append(problems, "give -jarvis PATH (go build -o /tmp/jarvis ./cmd/jarvis) or -url and -token of a running Jarvis")
	case c.url != "" && c.jarvis != "":
		problems = append(problems, "give -jarvis or -url, not both")
	case c.url != "" && c.token == "":
		problems = append(problems, "-url needs -token: an agent token from jarvis token create")
	case c.url == "" && (c.token != "" || c.pid != 0):
		problems = append(problems, "-token and -pid go with -url; with -jarvis the tool makes its own token and knows the process")
	}
	if c.calls < 1 || c.sessions < 1 || c.concurrency < 1 || c.agents < 1 {
		problems = append(problems, "-calls, -sessions, -concurrency and -agents must be at least 1")
	}
	if c.url != "" && len(c.env) > 0 {
		problems = append(problems, "-env sets the started server's environment; with -url nothing is started")
	}
	if c.idle < 0 || c.settle < 0 || c.wait <= 0 || c.timeout <= 0 {
		problems = append(problems, "-idle and -settle must not be negative, -wait and -timeout must be positive")
	}
	if len(problems) > 0 {
		return c, errors.New(strings.Join(problems, "; "))
	}
	// More sessions than calls would open sessions that do nothing.
	c.sessions = min(c.sessions, c.calls)
	return c, nil
}

// envList collects -env KEY=VALUE.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

// commandLine is how this run was invoked; argv[0] is a temporary path under
// go run, so the tool's name stands for it. Tokens are left out: summaries
// get pasted into issues and CI logs.
func commandLine(args []string) string {
	parts := []string{"jarvis-load"}
	secret := false
	for _, a := range args {
		switch {
		case secret:
			a, secret = "REDACTED", false
		case a == "-token" || a == "--token":
			secret = true
		case strings.HasPrefix(a, "-token=") || strings.HasPrefix(a, "--token="):
			a = a[:strings.IndexByte(a, '=')+1] + "REDACTED"
		case a == "" || strings.ContainsAny(a, " \t\n\"'\\$`*?[]{}()<>|&;#~"):
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
