package safety

// Shell words after quote removal: what bash would pass a program, and
// whether it is fixed before the line runs.

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// word is one shell word after quote removal. literal is false when the shell
// would change it at run time (expansions, globs, braces, tildes, $'…').
type word struct {
	text    string
	literal bool
	src     *syntax.Word // the parsed word, when there is one (to quote it in reasons)
}

// unknownPart stands in for text only known at run time.
const unknownPart = "\uFFFD"

// resolveWord performs quote removal the way bash would, refusing to treat as
// literal anything bash would expand.
func resolveWord(w *syntax.Word) word {
	var b strings.Builder
	literal := true
	for _, part := range w.Parts {
		switch p := part.(type) {
		case *syntax.Lit:
			text, ok := unquoteBare(p.Value)
			b.WriteString(text)
			literal = literal && ok
		case *syntax.SglQuoted:
			if p.Dollar { // $'…' decodes escapes: treat as unknown rather than re-implement it
				b.WriteString(unknownPart)
				literal = false
				continue
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			if p.Dollar { // $"…" is locale translation
				literal = false
			}
			for _, inner := range p.Parts {
				lit, ok := inner.(*syntax.Lit)
				if !ok {
					b.WriteString(unknownPart)
					literal = false
					continue
				}
				b.WriteString(unquoteDouble(lit.Value))
			}
		default:
			b.WriteString(unknownPart)
			literal = false
		}
	}
	return word{text: b.String(), literal: literal, src: w}
}

// unquoteBare removes backslash escapes from an unquoted literal. It reports
// false if an unescaped character would make bash expand the word: glob
// characters, brace expansion, tilde expansion, or a stray $.
func unquoteBare(s string) (string, bool) {
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '\\' {
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
			continue
		}
		switch ch {
		case '*', '?', '[', ']', '{', '}', '~', '$', '`', '(', ')':
			ok = false
		}
		b.WriteByte(ch)
	}
	return b.String(), ok
}

// unquoteDouble removes the backslashes that are special inside "…".
func unquoteDouble(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
			i++
			if s[i] == '\n' {
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
