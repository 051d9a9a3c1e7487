package sshsim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// proc is one running stage of a pipeline.
type proc struct {
	ctx    context.Context
	node   *simNode
	args   []string // args[0] is the command name
	stdin  io.Reader
	stdout *bufio.Writer
	stderr io.Writer
}

func (p *proc) errorf(format string, a ...any) { fmt.Fprintf(p.stderr, format+"\n", a...) }

// errUnsupported marks shell syntax the simulator does not implement.
var errUnsupported = errors.New("unsupported shell syntax")

// run executes a command string as received over SSH and returns its exit
// status. The executor sends `timeout -k 5 N sh -c '<command>'`: the wrapper is
// honoured (exit 124 after N seconds) and the inner command interpreted.
func (n *simNode) run(ctx context.Context, raw string, stdout, stderr io.Writer) int {
	stderr = &lockedWriter{w: stderr}
	file, err := syntax.NewParser().Parse(strings.NewReader(raw), "")
	if err != nil {
		fmt.Fprintf(stderr, "sh: syntax error: %v\n", err)
		return 2
	}
	if argv, ok := singleCall(file); ok && len(argv) > 0 && argv[0] == "timeout" {
		limit, rest, err := parseTimeout(argv[1:])
		if err != nil {
			fmt.Fprintf(stderr, "timeout: %v\n", err)
			return 125
		}
		return withTimeout(ctx, limit, func(ctx context.Context) int { return n.runArgv(ctx, rest, stdout, stderr) })
	}
	return n.runFile(ctx, file, stdout, stderr)
}

// withTimeout runs f as coreutils timeout would: stopped after limit (0 means
// no limit), exiting 124 if it was.
func withTimeout(ctx context.Context, limit time.Duration, f func(context.Context) int) int {
	if limit == 0 {
		return f(ctx)
	}
	tctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	code := f(tctx)
	if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return 124
	}
	return code
}

// cmdTimeout is timeout used inside a command line.
func cmdTimeout(p *proc) int {
	limit, rest, err := parseTimeout(p.args[1:])
	if err != nil {
		p.errorf("timeout: %v", err)
		return 125
	}
	return withTimeout(p.ctx, limit, func(ctx context.Context) int {
		inner := *p
		inner.ctx, inner.args = ctx, rest
		return inner.exec()
	})
}

// runArgv runs an already-split command: `sh -c SCRIPT` interprets SCRIPT.
func (n *simNode) runArgv(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	if len(argv) >= 3 && (argv[0] == "sh" || argv[0] == "bash" || argv[0] == "/bin/sh") && argv[1] == "-c" {
		file, err := syntax.NewParser().Parse(strings.NewReader(argv[2]), "")
		if err != nil {
			fmt.Fprintf(stderr, "sh: syntax error: %v\n", err)
			return 2
		}
		return n.runFile(ctx, file, stdout, stderr)
	}
	return n.pipeline(ctx, [][]string{argv}, stdout, stderr)
}

// runFile runs statements in order: pipelines joined by ;, && and ||.
func (n *simNode) runFile(ctx context.Context, file *syntax.File, stdout, stderr io.Writer) int {
	code := 0
	for _, stmt := range file.Stmts {
		var err error
		if code, err = n.runStmt(ctx, stmt, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "sim: %v\n", err)
			return 2
		}
	}
	return code
}

func (n *simNode) runStmt(ctx context.Context, stmt *syntax.Stmt, stdout, stderr io.Writer) (int, error) {
	if stmt.Background || stmt.Coprocess || len(stmt.Redirs) > 0 {
		return 0, fmt.Errorf("%w: redirections and background jobs", errUnsupported)
	}
	code, err := n.runCmd(ctx, stmt.Cmd, stdout, stderr)
	if err == nil && stmt.Negated {
		code = boolCode(code != 0)
	}
	return code, err
}

func (n *simNode) runCmd(ctx context.Context, cmd syntax.Command, stdout, stderr io.Writer) (int, error) {
	switch c := cmd.(type) {
	case *syntax.BinaryCmd:
		switch c.Op {
		case syntax.AndStmt, syntax.OrStmt:
			code, err := n.runStmt(ctx, c.X, stdout, stderr)
			if err != nil || (code == 0) != (c.Op == syntax.AndStmt) {
				return code, err
			}
			return n.runStmt(ctx, c.Y, stdout, stderr)
		case syntax.Pipe:
			stages, err := n.flattenPipe(c)
			if err != nil {
				return 0, err
			}
			return n.pipeline(ctx, stages, stdout, stderr), nil
		}
	case *syntax.CallExpr:
		argv, err := n.words(c)
		if err != nil {
			return 0, err
		}
		return n.pipeline(ctx, [][]string{argv}, stdout, stderr), nil
	}
	return 0, fmt.Errorf("%w: %s", errUnsupported, describe(cmd))
}

func (n *simNode) flattenPipe(c *syntax.BinaryCmd) ([][]string, error) {
	var stages [][]string
	for _, side := range []*syntax.Stmt{c.X, c.Y} {
		if side.Negated || side.Background || len(side.Redirs) > 0 {
			return nil, fmt.Errorf("%w: inside a pipeline", errUnsupported)
		}
		switch s := side.Cmd.(type) {
		case *syntax.BinaryCmd:
			if s.Op != syntax.Pipe {
				return nil, fmt.Errorf("%w: %s inside a pipeline", errUnsupported, s.Op)
			}
			more, err := n.flattenPipe(s)
			if err != nil {
				return nil, err
			}
			stages = append(stages, more...)
		case *syntax.CallExpr:
			argv, err := n.words(s)
			if err != nil {
				return nil, err
			}
			stages = append(stages, argv)
		default:
			return nil, fmt.Errorf("%w: %s", errUnsupported, describe(side.Cmd))
		}
	}
	return stages, nil
}

// words turns a simple command into argv: quotes removed, unquoted glob
// patterns matched against the node's files; anything needing a real shell
// (variables, substitutions, assignments) is refused.
func (n *simNode) words(call *syntax.CallExpr) ([]string, error) {
	if len(call.Assigns) > 0 {
		return nil, fmt.Errorf("%w: variable assignment", errUnsupported)
	}
	var argv []string
	for _, w := range call.Args {
		if !plainWord(w) {
			return nil, fmt.Errorf("%w: expansion in %q", errUnsupported, wordText(w))
		}
		if len(w.Parts) == 1 {
			if lit, ok := w.Parts[0].(*syntax.Lit); ok && strings.ContainsAny(lit.Value, "*?[") {
				if matches := n.glob(lit.Value); len(matches) > 0 {
					argv = append(argv, matches...)
					continue
				}
			}
		}
		s, err := literal(w)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUnsupported, err)
		}
		argv = append(argv, s)
	}
	return argv, nil
}

// singleCall returns the argv of a file holding exactly one plain command.
func singleCall(file *syntax.File) ([]string, bool) {
	if len(file.Stmts) != 1 {
		return nil, false
	}
	st := file.Stmts[0]
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok || st.Negated || st.Background || len(st.Redirs) > 0 || len(call.Assigns) > 0 {
		return nil, false
	}
	var argv []string
	for _, w := range call.Args {
		if !plainWord(w) {
			return nil, false
		}
		s, err := literal(w)
		if err != nil {
			return nil, false
		}
		argv = append(argv, s)
	}
	return argv, true
}

// literal removes quotes from a plain word. It passes a fresh Config: with
// nil, expand v3.14.1 mutates a shared package-level one (a data race).
func literal(w *syntax.Word) (string, error) {
	return expand.Literal(&expand.Config{}, w)
}

// plainWord reports whether w is only literal text and quotes.
func plainWord(w *syntax.Word) bool {
	for _, part := range w.Parts {
		switch p := part.(type) {
		case *syntax.Lit:
		case *syntax.SglQuoted:
			if p.Dollar {
				return false
			}
		case *syntax.DblQuoted:
			for _, inner := range p.Parts {
				if _, ok := inner.(*syntax.Lit); !ok {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

func wordText(w *syntax.Word) string {
	var b strings.Builder
	_ = syntax.NewPrinter().Print(&b, w)
	return b.String()
}

// describe names a syntax node for an "unsupported" message.
func describe(node syntax.Node) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", node), "*syntax.")
}

// parseTimeout reads coreutils `timeout [-k DUR] [-s SIG] DUR COMMAND...`.
func parseTimeout(args []string) (time.Duration, []string, error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a := args[0]; {
		case a == "-k" || a == "-s" || a == "--kill-after" || a == "--signal":
			if len(args) < 2 {
				return 0, nil, fmt.Errorf("option %s needs a value", a)
			}
			args = args[2:]
		case strings.HasPrefix(a, "--kill-after=") || strings.HasPrefix(a, "--signal="),
			a == "--preserve-status" || a == "--foreground" || a == "-v" || a == "--verbose":
			args = args[1:]
		default:
			return 0, nil, fmt.Errorf("invalid option -- '%s'", strings.TrimLeft(a, "-"))
		}
	}
	if len(args) < 2 {
		return 0, nil, errors.New("missing operand")
	}
	limit, err := parseSeconds(args[0])
	if err != nil {
		return 0, nil, fmt.Errorf("invalid time interval '%s'", args[0])
	}
	return limit, args[1:], nil
}

// parseSeconds reads "N", "N.N" or "Ns"/"Nm"/"Nh" as coreutils does.
func parseSeconds(s string) (time.Duration, error) {
	unit := time.Second
	switch {
	case strings.HasSuffix(s, "s"):
		s = strings.TrimSuffix(s, "s")
	case strings.HasSuffix(s, "m"):
		s, unit = strings.TrimSuffix(s, "m"), time.Minute
	case strings.HasSuffix(s, "h"):
		s, unit = strings.TrimSuffix(s, "h"), time.Hour
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return time.Duration(f * float64(unit)), nil
}

// pipeline runs the stages concurrently, each reading the previous one's
// output, like a shell does. A stage that exits closes its input, so an
// endless producer (`yes | head -n 3`) stops. The status is the last stage's.
func (n *simNode) pipeline(ctx context.Context, stages [][]string, stdout, stderr io.Writer) int {
	codes := make([]int, len(stages))
	var wg sync.WaitGroup
	var in io.Reader = strings.NewReader("")
	for i, argv := range stages {
		var out io.Writer = stdout
		var pr *io.PipeReader
		var pw *io.PipeWriter
		if i < len(stages)-1 {
			pr, pw = io.Pipe()
			out = pw
		}
		stageIn := in
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := bufio.NewWriterSize(out, 32<<10)
			p := &proc{ctx: ctx, node: n, args: argv, stdin: stageIn, stdout: w, stderr: stderr}
			codes[i] = p.exec()
			_ = w.Flush()
			if pw != nil {
				_ = pw.Close()
			}
			if r, ok := stageIn.(*io.PipeReader); ok {
				_ = r.CloseWithError(errBrokenPipe)
			}
		}()
		if pr != nil {
			in = pr
		}
	}
	wg.Wait()
	return codes[len(codes)-1]
}

var errBrokenPipe = errors.New("broken pipe")

// exec runs one command by name.
func (p *proc) exec() int {
	if len(p.args) == 0 {
		return 0
	}
	name := path.Base(p.args[0])
	cmd, ok := commands[name]
	if !ok {
		p.errorf("bash: %s: command not found", p.args[0])
		return 127
	}
	return cmd(p)
}

// lockedWriter serialises writes from concurrent pipeline stages.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func boolCode(ok bool) int {
	if ok {
		return 0
	}
	return 1
}
