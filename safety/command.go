package safety

// ClassifyCommand: the shell command line as a whole (parsing, pipelines,
// redirections) and each program invocation in it, which goes to a wrapper,
// a shell or a rule from command_rules.go.

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// CommandVerdict is the classifier's answer for one shell command line.
type CommandVerdict struct {
	Tier     Tier     // Yellow: read-only, runs audited; Red: needs a human; Black: never
	Decision Decision // Allow, NeedsApproval, Blocked or Protected
	Reason   string   // plain sentence; for Allow it says why the command is considered read-only
	Binaries []string // programs the command line would run, wrappers included, in order
}

// MaxCommandLength bounds the input: nothing a diagnostic needs is longer, and
// a huge input is more likely an attempt to hide something in it.
const MaxCommandLength = 4096

// internalErrorReason is the verdict's reason if the classifier itself fails.
const internalErrorReason = "The command could not be classified because of an internal error, so a human must approve it."

// maxNesting bounds how deep sh -c, eval and wrappers may nest before the
// classifier stops looking and asks a human.
const maxNesting = 6

// ClassifyCommand decides how a shell command line sent to execute_ssh may run.
//
// It parses the line with a real bash parser and never matches by substring or
// prefix. Only a single simple command or a | pipeline of them, with every word
// a plain literal after quote removal, can be read-only; read-only needs every
// stage to be on the allowlist with allowed subcommands and flags. Everything
// is also searched (including inside substitutions, wrappers and sh -c
// strings) for destructive commands, which make the whole line BLACK. Anything
// not understood is RED: a human looks before it runs.
func ClassifyCommand(cmd string, protectedServices []string) CommandVerdict {
	return (&classifier{protected: protectedServices}).classify(cmd)
}

func (c *classifier) classify(cmd string) (v CommandVerdict) {
	defer func() {
		// A bug here must cost a human's attention, never the server or a silent allow.
		if p := recover(); p != nil {
			v = CommandVerdict{Tier: Red, Decision: NeedsApproval, Reason: internalErrorReason, Binaries: c.binaries}
		}
	}()
	r := c.classifyLine(cmd, 0)
	return r.verdict(c.binaries)
}

// result accumulates what is known about a command line.
type result struct {
	tier            Tier
	reason          string // reason for the current tier
	protected       bool
	protectedReason string
}

func yellow(reason string) result { return result{tier: Yellow, reason: reason} }
func red(reason string) result    { return result{tier: Red, reason: reason} }
func black(reason string) result  { return result{tier: Black, reason: reason} }

// raise keeps the most severe tier and the first reason given for it.
func (r *result) raise(t Tier, reason string) {
	if t > r.tier {
		r.tier, r.reason = t, reason
	} else if t == r.tier && r.reason == "" {
		r.reason = reason
	}
}

// merge folds another result into r.
func (r *result) merge(o result) {
	r.raise(o.tier, o.reason)
	if o.protected && !r.protected {
		r.protected, r.protectedReason = true, o.protectedReason
	}
}

// atLeastRed applies the floor for anything that is not plainly read-only.
func (r result) atLeastRed(reason string) result {
	r.raise(Red, reason)
	return r
}

func (r result) verdict(binaries []string) CommandVerdict {
	v := CommandVerdict{Tier: r.tier, Reason: r.reason, Binaries: binaries}
	switch {
	case r.tier >= Black:
		v.Tier, v.Decision = Black, Blocked
	case r.protected:
		v.Tier, v.Decision, v.Reason = Red, Protected, r.protectedReason
	case r.tier == Yellow:
		v.Decision = Allow
	default:
		v.Tier, v.Decision = Red, NeedsApproval
		if v.Reason == "" {
			v.Reason = "The command is not understood, so a human must approve it."
		}
	}
	return v
}

type classifier struct {
	protected []string
	binaries  []string
	// rec, when set, collects what the line acts on (scope.go).
	rec *recording
}

func (c *classifier) addBinary(name string) {
	if !slices.Contains(c.binaries, name) && len(c.binaries) < 64 {
		c.binaries = append(c.binaries, name)
	}
}

// classifyLine checks raw text (the whole input, or a string handed to
// sh -c, eval, su -c, watch ...) and classifies what it would run.
func (c *classifier) classifyLine(cmd string, depth int) result {
	if depth > maxNesting {
		c.rec.tooDeep()
		return red("The command nests shells and wrappers too deeply to be understood.")
	}
	if len(cmd) > MaxCommandLength {
		return red(fmt.Sprintf("The command is too long (%d bytes; at most %d are accepted).", len(cmd), MaxCommandLength))
	}
	if strings.TrimSpace(cmd) == "" {
		return red("The command is empty.")
	}
	if !utf8.ValidString(cmd) {
		return red("The command is not valid UTF-8 text.")
	}
	for _, r := range cmd {
		if r == 0 {
			return red("The command contains a NUL byte.")
		}
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return red(fmt.Sprintf("The command contains the control character %U.", r))
		}
	}
	f, err := parseShell(cmd)
	if err != nil {
		return red("The command is not understood: the shell parser rejected it.")
	}
	defer c.rec.enterLine(cmd)()
	return c.classifyFile(f, depth)
}

func parseShell(cmd string) (f *syntax.File, err error) {
	defer func() {
		// The parser is well tested, but a classifier must never take the server down.
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("shell parser panicked: %v", p)
		}
	}()
	return syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(cmd), "")
}

func (c *classifier) classifyFile(f *syntax.File, depth int) result {
	r := yellow("")
	if reason := simplePipelineProblem(f); reason != "" {
		r.raise(Red, reason)
	}

	// Commands whose standard input comes from another command or a
	// redirection: feeding a shell that way runs arbitrary text.
	fed := map[*syntax.CallExpr]bool{}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch x := n.(type) {
		case *syntax.BinaryCmd:
			if x.Op == syntax.Pipe || x.Op == syntax.PipeAll {
				markCalls(x.Y, fed)
			}
		case *syntax.Stmt:
			if call, ok := x.Cmd.(*syntax.CallExpr); ok && hasInputRedirect(x) {
				fed[call] = true
			}
		}
		return true
	})

	calls := 0
	syntax.Walk(f, func(n syntax.Node) bool {
		switch x := n.(type) {
		case *syntax.FuncDecl:
			r.raise(Black, "The command defines a shell function; that is how fork bombs are written, so it is never run.")
		case *syntax.Redirect:
			c.rec.redirect(x)
			r.merge(classifyRedirect(x))
		case *syntax.CallExpr:
			calls++
			if len(x.Args) == 0 {
				r.raise(Red, "The command only sets shell variables.")
				return true
			}
			words := make([]word, len(x.Args))
			for i, w := range x.Args {
				words[i] = resolveWord(w)
			}
			r.merge(c.classifyArgv(words, callContext{fed: fed[x]}, depth))
		}
		return true
	})
	if calls == 0 {
		r.raise(Red, "The command runs no plain program; its shell syntax is not understood.")
	}
	if r.tier == Yellow && r.reason == "" {
		r.reason = "Read-only command: every program and option in it is on the read-only list."
	}
	return r
}

// markCalls records every call inside n as having its input fed to it.
func markCalls(n syntax.Node, fed map[*syntax.CallExpr]bool) {
	syntax.Walk(n, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok {
			fed[call] = true
		}
		return true
	})
}

func hasInputRedirect(s *syntax.Stmt) bool {
	for _, rd := range s.Redirs {
		switch rd.Op {
		case syntax.RdrIn, syntax.RdrInOut, syntax.DplIn, syntax.Hdoc, syntax.DashHdoc, syntax.WordHdoc:
			return true
		}
	}
	return false
}

// simplePipelineProblem returns why f is not a single simple command or a
// plain | pipeline of them, or "" if it is.
func simplePipelineProblem(f *syntax.File) string {
	switch len(f.Stmts) {
	case 0:
		return "The command contains no command."
	case 1:
		return stmtProblem(f.Stmts[0])
	}
	return "The command runs several commands in sequence (; or a newline); only one command or a | pipeline can be read-only."
}

func stmtProblem(s *syntax.Stmt) string {
	switch {
	case s.Background || s.Disown:
		return "The command runs something in the background (&)."
	case s.Coprocess:
		return "The command starts a coprocess."
	case s.Negated:
		return "The command negates an exit status (!), which is not a plain command."
	case len(s.Redirs) > 0:
		return "The command redirects input or output (<, >, here-documents); that can read or overwrite files."
	}
	switch x := s.Cmd.(type) {
	case *syntax.CallExpr:
		if len(x.Assigns) > 0 {
			return "The command sets shell variables (NAME=value) before running a program."
		}
		return ""
	case *syntax.BinaryCmd:
		switch x.Op {
		case syntax.Pipe:
			if p := stmtProblem(x.X); p != "" {
				return p
			}
			return stmtProblem(x.Y)
		case syntax.PipeAll:
			return "The command pipes standard error too (|&)."
		}
		return "The command chains commands with && or ||; only one command or a | pipeline can be read-only."
	case *syntax.FuncDecl:
		return "The command defines a shell function."
	case *syntax.Subshell:
		return "The command uses a subshell ( … )."
	case *syntax.Block:
		return "The command uses a { … } block."
	case *syntax.TimeClause:
		return "The command uses the time keyword, which wraps another command."
	case nil:
		return "The command contains no command."
	}
	return "The command uses shell control syntax (loops, conditionals, declarations or arithmetic), which is not a plain command."
}

// dangerousWriteTargets are files whose overwriting crashes or wipes a node:
// the magic SysRq trigger, kernel tunables, block devices and raw memory.
var dangerousWriteTargets = regexp.MustCompile(`^/(proc/sys|dev/(sd|hd|vd|xvd|nvme|mmcblk|dm-|md|zd|loop|nbd|rbd|mapper/|disk/|zvol/|pve/|mem$|kmem$|port$)|boot(/|$))`)

func classifyRedirect(rd *syntax.Redirect) result {
	switch rd.Op {
	case syntax.RdrOut, syntax.AppOut, syntax.RdrInOut, syntax.DplOut, syntax.RdrClob, syntax.AppClob,
		syntax.RdrAll, syntax.RdrAllClob, syntax.AppAll, syntax.AppAllClob:
		if rd.Word == nil {
			return red("The command redirects output.")
		}
		w := resolveWord(rd.Word)
		if !w.literal {
			return red("The command redirects output to a file name built at run time.")
		}
		target := cleanLower(w.text)
		if dangerousWriteTargets.MatchString(target) {
			return black(fmt.Sprintf("The command writes into %s, which can crash the node or destroy a disk.", w.text))
		}
		return red(fmt.Sprintf("The command redirects output into %s, which overwrites or appends to a file.", w.text))
	}
	return red("The command redirects input or uses a here-document.")
}

// callContext says how a command is reached.
type callContext struct {
	fed       bool // its standard input comes from a pipe or redirection
	extraArgs bool // more arguments are appended at run time (xargs, find -exec)
}

// cmdCall is one program invocation being classified.
type cmdCall struct {
	name string
	args []word
	ctx  callContext
	c    *classifier
	// depth of nesting, for strings handed to a shell
	depth int
}

// literalArgs returns the arguments as strings, and whether all are literal.
func (k *cmdCall) literalArgs() ([]string, bool) {
	out := make([]string, len(k.args))
	ok := true
	for i, a := range k.args {
		out[i] = a.text
		ok = ok && a.literal
	}
	return out, ok
}

var commandNamePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*$`)

// systemBinDirs are where a command given by absolute path is taken to be the
// well-known program of that name. Anywhere else could be anything.
var systemBinDirs = []string{"/bin", "/usr/bin", "/sbin", "/usr/sbin"}

// classifyArgv classifies one program invocation: argv[0] and its arguments.
func (c *classifier) classifyArgv(argv []word, ctx callContext, depth int) result {
	if depth > maxNesting {
		c.rec.tooDeep()
		return red("The command nests wrappers too deeply to be understood.")
	}
	if len(argv) == 0 {
		return red("The command is empty.")
	}
	defer c.rec.call(argv, ctx)()
	head := argv[0]
	if !head.literal {
		return red("The program name is built at run time (variables, substitutions, globs or $'…' quoting), so the command is not understood.")
	}
	name := head.text
	if strings.Contains(name, "/") {
		p := path.Clean(name)
		dir := path.Dir(p)
		switch {
		case !path.IsAbs(p):
			return red(fmt.Sprintf("%s runs a program by relative path; only programs from the system directories are understood.", name))
		case dir == "/etc/init.d":
			// An init script behaves like "service NAME ACTION" (so protection
			// applies), but runs a script directly: never read-only.
			c.addBinary(name)
			svc := append([]word{{text: "service", literal: true}, {text: path.Base(p), literal: true}}, argv[1:]...)
			return c.classifyArgv(svc, ctx, depth+1).atLeastRed(fmt.Sprintf("%s runs an init script directly, so a human must approve it.", name))
		case slices.Contains(systemBinDirs, dir):
			name = path.Base(p)
		default:
			return red(fmt.Sprintf("%s is outside the system directories (%s), so it could be any program.", name, strings.Join(systemBinDirs, ", ")))
		}
	}
	if !commandNamePattern.MatchString(name) {
		return red(fmt.Sprintf("The program name %q contains unusual characters, so it is not understood.", name))
	}
	c.addBinary(name)
	call := &cmdCall{name: name, args: argv[1:], ctx: ctx, c: c, depth: depth}

	if spec, ok := wrappers[name]; ok {
		return call.classifyWrapper(spec)
	}
	if isShell(name) || isInterpreter(name) {
		return call.classifyShell()
	}
	rule, ok := commandRules[name]
	if !ok {
		rule, ok = prefixRule(name)
	}
	if !ok {
		return red(fmt.Sprintf("%s is not on the read-only list, so a human must approve it.", name))
	}
	r := rule(call)
	if r.tier == Yellow {
		r = call.checkReadOnlyArgs(r)
	}
	return r
}

// checkReadOnlyArgs applies the checks every read-only invocation needs:
// literal arguments only, and no argument naming a secret.
func (k *cmdCall) checkReadOnlyArgs(r result) result {
	args, literal := k.literalArgs()
	if !literal {
		return red(fmt.Sprintf("An argument of %s is expanded by the shell at run time (variables, globs, braces, ~ or substitutions), so what it reads cannot be checked.", k.name))
	}
	if k.ctx.extraArgs {
		return red(fmt.Sprintf("%s gets more arguments at run time, so what it reads cannot be checked.", k.name))
	}
	for _, a := range args {
		candidates, ok := argumentCandidates(a)
		if !ok {
			return red(fmt.Sprintf("An option word of %s is too long to check for file names hidden in it, so a human must approve it.", k.name))
		}
		for _, c := range candidates {
			if hasDotDot(c) {
				return red(fmt.Sprintf("%s argument %s goes up a directory with ..; the kernel follows symbolic links before it applies .., so where the path really leads cannot be read from its text, and a human must approve it.", k.name, a))
			}
		}
		if p, why := secretArgument(a); p != "" {
			return red(fmt.Sprintf("%s would read %s, %s; a human must approve that.", k.name, p, why))
		}
	}
	return r
}
