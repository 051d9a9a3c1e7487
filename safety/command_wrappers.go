package safety

// Programs that run other programs or code: wrappers (sudo, env, timeout,
// xargs …), whose wrapped command is classified in its own right, and shells
// and language interpreters.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// wrapperSpec describes a program that runs another program.
type wrapperSpec struct {
	valueShort   string   // short options that take a value
	valueLong    []string // long options that take a value
	commandShort string   // short options whose value is a shell command string (su -c)
	commandLong  []string // long options whose value is a shell command string
	permutes     bool     // options may follow operands (getopt permutation), so scan every argument
	assignments  bool     // NAME=value words may precede the command (env, sudo)
	operands     int      // operands before the command (timeout DURATION, chroot DIR)
	digitOptions bool     // -N is an option (nice -10)
	joinsArgs    bool     // the rest is joined and run by a shell (eval, watch)
	extraArgs    bool     // appends its input as arguments (xargs)
	defaultArgv  string   // what runs when no command is given ("" = a shell or nothing)
	why          string   // why it cannot be read-only on its own
}

// wrappers run another program; the wrapped command is classified and the
// result is never lower than RED.
var wrappers = map[string]wrapperSpec{
	"env": {valueShort: "uCS", valueLong: []string{"unset", "chdir"}, commandShort: "S", commandLong: []string{"split-string"},
		assignments: true, defaultArgv: "", why: "with a changed environment"},
	"sudo": {valueShort: "ugCDhprtTUR", valueLong: []string{"user", "group", "close-from", "chdir", "host", "prompt", "role", "type", "command-timeout", "other-user", "chroot"},
		assignments: true, why: "as another user"},
	"doas":        {valueShort: "uC", why: "as another user"},
	"su":          {valueShort: "sgGw", valueLong: []string{"shell", "group", "supp-group", "whitelist-environment"}, commandShort: "c", commandLong: []string{"command", "session-command"}, permutes: true, why: "as another user"},
	"runuser":     {valueShort: "ugGsw", valueLong: []string{"user", "group", "supp-group", "shell", "whitelist-environment"}, commandShort: "c", commandLong: []string{"command", "session-command"}, permutes: true, why: "as another user"},
	"pkexec":      {valueLong: []string{"user"}, why: "as another user"},
	"nice":        {valueShort: "n", valueLong: []string{"adjustment"}, digitOptions: true, why: "at another priority"},
	"ionice":      {valueShort: "cnpPu", valueLong: []string{"class", "classdata", "pid", "pgid", "uid"}, why: "at another I/O priority"},
	"nohup":       {why: "detached from the session"},
	"timeout":     {valueShort: "sk", valueLong: []string{"signal", "kill-after"}, operands: 1, why: "under a time limit"},
	"stdbuf":      {valueShort: "ioe", valueLong: []string{"input", "output", "error"}, why: "with changed buffering"},
	"chroot":      {valueLong: []string{"userspec", "groups"}, operands: 1, why: "inside another root directory"},
	"nsenter":     {valueShort: "tSGrwe", valueLong: []string{"target", "setuid", "setgid", "root", "wd", "env"}, why: "inside other namespaces"},
	"unshare":     {valueShort: "RwSG", valueLong: []string{"root", "wd", "setuid", "setgid", "map-user", "map-group", "propagation", "setgroups", "kill-child"}, why: "in new namespaces"},
	"setsid":      {why: "in a new session"},
	"watch":       {valueShort: "nqd", valueLong: []string{"interval", "equexit", "differences"}, joinsArgs: true, why: "repeatedly, forever"},
	"exec":        {valueShort: "a", why: "in place of the shell"},
	"command":     {why: "bypassing shell functions"},
	"builtin":     {why: "as a shell builtin"},
	"eval":        {joinsArgs: true, why: "by re-reading its arguments as shell code"},
	"time":        {valueShort: "of", valueLong: []string{"output", "format"}, why: "while timing it"},
	"strace":      {valueShort: "opesuEabIOSPX", why: "under a tracer"},
	"ltrace":      {valueShort: "opesuEaAbDFlLnSwx", why: "under a tracer"},
	"xargs":       {valueShort: "adEILnPs", valueLong: []string{"arg-file", "delimiter", "eof", "replace", "max-lines", "max-args", "max-procs", "max-chars", "process-slot-var"}, extraArgs: true, defaultArgv: "echo", why: "with arguments read from its input"},
	"flock":       {valueShort: "wE", valueLong: []string{"timeout", "conflict-exit-code"}, commandShort: "c", commandLong: []string{"command"}, operands: 1, why: "while holding a lock"},
	"taskset":     {operands: 1, why: "pinned to CPUs"},
	"chrt":        {valueShort: "TPD", valueLong: []string{"sched-runtime", "sched-period", "sched-deadline"}, operands: 1, why: "with a real-time priority"},
	"systemd-run": {valueShort: "pupEMH", valueLong: []string{"unit", "property", "slice", "setenv", "uid", "gid", "nice", "working-directory", "description", "machine", "host", "on-active", "on-boot", "on-startup", "on-unit-active", "on-unit-inactive", "on-calendar", "timer-property", "path-property", "socket-property", "service-type"}, why: "as a transient service"},
	"script":      {valueShort: "IOBTEm", commandShort: "c", commandLong: []string{"command"}, why: "inside a recorded terminal"},
	"busybox":     {why: "as a busybox applet"},
	"sg":          {commandShort: "c", operands: 1, why: "with another group"},
	"caffeinate":  {why: "while preventing sleep"},
}

func (k *cmdCall) classifyWrapper(spec wrapperSpec) result {
	floor := fmt.Sprintf("%s runs another program (%s), so a human must approve it.", k.name, spec.why)
	runString := func(cmdStr word) result {
		if !cmdStr.literal {
			return red(fmt.Sprintf("%s runs a command string built at run time.", k.name))
		}
		return k.c.classifyLine(cmdStr.text, k.depth+1).atLeastRed(floor)
	}
	if spec.permutes {
		// su and runuser take options after the user name too (su root -c 'reboot').
		for i, a := range k.args {
			if cmdStr, found := commandOption(k.args, i, a, spec); found {
				return runString(cmdStr)
			}
		}
	}

	i, operands := 0, spec.operands
	for i < len(k.args) {
		a := k.args[i]
		if !a.literal {
			return red(fmt.Sprintf("The arguments of %s are built at run time, so the program it runs cannot be known.", k.name))
		}
		t := a.text
		if t == "--" {
			i++
			break
		}
		if cmdStr, found := commandOption(k.args, i, a, spec); found {
			return runString(cmdStr)
		}
		if strings.HasPrefix(t, "--") {
			name, _, hasValue := strings.Cut(t[2:], "=")
			if !hasValue && slices.Contains(spec.valueLong, name) {
				i++
			}
			i++
			continue
		}
		if strings.HasPrefix(t, "-") && len(t) > 1 {
			if spec.digitOptions && isDigits(t[1:]) {
				i++
				continue
			}
			for j := 1; j < len(t); j++ {
				if strings.IndexByte(spec.valueShort, t[j]) >= 0 {
					if j == len(t)-1 {
						i++ // value is the next argument
					}
					break
				}
			}
			i++
			continue
		}
		if t == "-" {
			i++
			continue
		}
		if spec.assignments && isAssignment(t) {
			i++
			continue
		}
		if operands > 0 {
			operands--
			i++
			continue
		}
		break
	}
	inner := k.args[min(i, len(k.args)):]
	if len(inner) == 0 {
		if spec.defaultArgv == "" {
			return red(fmt.Sprintf("%s without a program to run opens a shell or changes settings, so a human must approve it.", k.name))
		}
		inner = []word{{text: spec.defaultArgv, literal: true}}
	}
	if spec.joinsArgs {
		parts := make([]string, len(inner))
		for j, w := range inner {
			if !w.literal {
				return red(fmt.Sprintf("%s runs a command string built at run time.", k.name))
			}
			parts[j] = w.text
		}
		return k.c.classifyLine(strings.Join(parts, " "), k.depth+1).atLeastRed(floor)
	}
	ctx := k.ctx
	ctx.extraArgs = ctx.extraArgs || spec.extraArgs
	return k.c.classifyArgv(inner, ctx, k.depth+1).atLeastRed(floor)
}

// commandOption reports whether args[i] is a command-string option of spec
// and returns the command string.
func commandOption(args []word, i int, a word, spec wrapperSpec) (word, bool) {
	if !a.literal || spec.commandShort == "" && len(spec.commandLong) == 0 {
		return word{}, false
	}
	t := a.text
	next := func() (word, bool) {
		if i+1 < len(args) {
			return args[i+1], true
		}
		return word{text: "", literal: true}, true
	}
	if strings.HasPrefix(t, "--") {
		name, value, hasValue := strings.Cut(t[2:], "=")
		if slices.Contains(spec.commandLong, name) {
			if hasValue {
				return word{text: value, literal: true}, true
			}
			return next()
		}
		return word{}, false
	}
	if strings.HasPrefix(t, "-") && len(t) > 1 {
		for j := 1; j < len(t); j++ {
			if strings.IndexByte(spec.commandShort, t[j]) >= 0 {
				if j < len(t)-1 {
					return word{text: t[j+1:], literal: true}, true
				}
				return next()
			}
			if strings.IndexByte(spec.valueShort, t[j]) >= 0 {
				return word{}, false // a value option swallows the rest of this word
			}
		}
	}
	return word{}, false
}

var assignmentPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssignment(s string) bool { return assignmentPattern.MatchString(s) }

// Shells run their input as commands; interpreters can do anything.
var shells = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish", "rbash", "yash"}

func isShell(name string) bool { return slices.Contains(shells, name) }

var interpreterPattern = regexp.MustCompile(`^(python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|irb|node|nodejs|deno|bun|php[0-9.]*|lua[0-9.]*|luajit|tclsh[0-9.]*|wish|expect|pwsh|guile|Rscript|jshell|osascript|gdb)$`)

func isInterpreter(name string) bool { return interpreterPattern.MatchString(name) }

// classifyShell handles sh/bash/… and language interpreters. Feeding one
// through a pipe or redirection runs arbitrary text: BLACK. A shell's -c
// string is classified in its own right; anything else needs a human.
func (k *cmdCall) classifyShell() result {
	if k.ctx.fed {
		return black(fmt.Sprintf("The command feeds text into %s, which would run whatever it receives; that is never allowed.", k.name))
	}
	if isShell(k.name) {
		for i, a := range k.args {
			if !a.literal || !strings.HasPrefix(a.text, "-") || strings.HasPrefix(a.text, "--") {
				continue
			}
			if strings.Contains(a.text[1:], "c") {
				if i+1 >= len(k.args) || !k.args[i+1].literal {
					return red(fmt.Sprintf("%s -c runs a command string that cannot be read before it runs.", k.name))
				}
				return k.c.classifyLine(k.args[i+1].text, k.depth+1).
					atLeastRed(fmt.Sprintf("%s -c starts a new shell to run the command, so a human must approve it.", k.name))
			}
		}
		if k.ctx.extraArgs {
			return black(fmt.Sprintf("%s would run commands that arrive at run time; that is never allowed.", k.name))
		}
	}
	return red(fmt.Sprintf("%s runs scripts or code that cannot be checked before it runs, so a human must approve it.", k.name))
}
