package safety

// What the classifier saw, for CheckCommand: every program invocation and
// redirection of a line, and which of them act on something only known at
// run time.

import (
	"fmt"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// recording collects, while a line is classified, every program invocation
// (wrappers, sh -c strings, xargs and find -exec included) and every
// redirection, for CheckCommand. A nil recording records nothing.
type recording struct {
	calls  []invocation
	redirs []redirection
	deep   bool
	cur    int    // 1 + index of the invocation being classified; 0 outside any
	line   string // the text being parsed (the line, or a string handed to sh -c)
}

type redirection struct {
	rd   *syntax.Redirect
	line string
}

// invocation is one program run as the classifier saw it.
type invocation struct {
	line   string // the text its words were parsed from
	argv   []word
	ctx    callContext
	parent int  // 1 + index of the invocation that runs it; 0 for none
	inner  bool // it runs other invocations (a wrapper, sh -c, find -exec), which are checked instead
}

var noRecord = func() {}

// call records an invocation; the returned function ends it.
func (r *recording) call(argv []word, ctx callContext) func() {
	if r == nil {
		return noRecord
	}
	r.calls = append(r.calls, invocation{line: r.line, argv: argv, ctx: ctx, parent: r.cur})
	prev := r.cur
	if prev > 0 {
		r.calls[prev-1].inner = true
	}
	r.cur = len(r.calls)
	return func() { r.cur = prev }
}

func (r *recording) redirect(rd *syntax.Redirect) {
	if r != nil {
		r.redirs = append(r.redirs, redirection{rd, r.line})
	}
}

// enterLine notes the text being parsed; the returned function leaves it.
func (r *recording) enterLine(line string) func() {
	if r == nil {
		return noRecord
	}
	prev := r.line
	r.line = line
	return func() { r.line = prev }
}

func (r *recording) tooDeep() {
	if r != nil {
		r.deep = true
	}
}

// unresolved returns the first sentence saying which changing part of the line
// acts on something only known at run time, or "".
func (r *recording) unresolved() string {
	if r.deep {
		return "The command nests shells and wrappers too deeply to see what it acts on."
	}
	for _, inv := range r.calls {
		if why := inv.unresolved(); why != "" {
			return why
		}
	}
	for _, x := range r.redirs {
		if !writesFile(x.rd.Op) || x.rd.Word == nil {
			continue
		}
		if w := resolveWord(x.rd.Word); !w.literal {
			return fmt.Sprintf("The command writes to %s, a file name only known at run time.", showWord(w, x.line))
		}
	}
	return ""
}

func writesFile(op syntax.RedirOperator) bool {
	switch op {
	case syntax.RdrOut, syntax.AppOut, syntax.RdrInOut, syntax.DplOut, syntax.RdrClob, syntax.AppClob,
		syntax.RdrAll, syntax.RdrAllClob, syntax.AppAll, syntax.AppAllClob:
		return true
	}
	return false
}

// unresolved says why this invocation's target is only known at run time, or "".
// An invocation that would be read-only with any fixed value in place of what
// is built at run time (cat /var/log/$(date +%F).log) only reads: it is left to
// the classifier. The words of an invocation that runs others (sudo, sh -c,
// find -exec) are checked in those others.
func (inv invocation) unresolved() string {
	var runtime *word
	for i := range inv.argv {
		if !inv.argv[i].literal {
			runtime = &inv.argv[i]
			break
		}
	}
	if !inv.inner && (runtime != nil || inv.ctx.extraArgs) {
		switch {
		case inv.readShaped():
			return ""
		case runtime != nil:
			return fmt.Sprintf("In `%s`, %s is only known at run time (arithmetic, variables, substitutions, globs or braces).",
				showArgv(inv.argv, inv.line), showWord(*runtime, inv.line))
		default:
			return fmt.Sprintf("`%s` gets more arguments at run time (from xargs or find -exec), so what it acts on is not in the text.", showArgv(inv.argv, inv.line))
		}
	}
	if why := selectorReason(inv.argv, inv.line); why != "" && !inv.readShaped() {
		return why
	}
	return ""
}

// probeValues stand in for words built at run time when checking whether an
// invocation only reads: a number (qm status N) and a plain name (cat F).
var probeValues = []string{"0", "x"}

// readShaped reports whether the invocation would only read with a fixed
// value in place of every word built at run time and no appended arguments.
func (inv invocation) readShaped() bool {
	values := probeValues
	if !slices.ContainsFunc(inv.argv, func(w word) bool { return !w.literal }) {
		values = values[:1] // nothing to stand in for: one look is enough
	}
	for _, v := range values {
		argv := make([]word, len(inv.argv))
		for i, w := range inv.argv {
			if w.literal {
				argv[i] = w
			} else {
				argv[i] = word{text: v, literal: true}
			}
		}
		probe := &classifier{}
		if r := probe.classifyArgv(argv, callContext{fed: inv.ctx.fed}, 0); r.tier == Yellow {
			return true
		}
	}
	return false
}

// showWord quotes a word as it was written in line, the text it was parsed
// from; a word made up by the classifier is shown after quote removal.
func showWord(w word, line string) string {
	if w.src != nil {
		start, end := int(w.src.Pos().Offset()), int(w.src.End().Offset())
		if 0 <= start && start < end && end <= len(line) {
			return clip(line[start:end])
		}
	}
	return clip(strings.ReplaceAll(w.text, unknownPart, "…"))
}

func showArgv(argv []word, line string) string {
	parts := make([]string, len(argv))
	for i, w := range argv {
		parts[i] = showWord(w, line)
	}
	return clip(strings.Join(parts, " "))
}

func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
