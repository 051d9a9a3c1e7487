package safety

// Protected VMIDs and nodes named in a command line: the literal texts of a
// line and the pieces of them that name a guest or a node.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// literalTexts returns the parts of a command line that are fixed before it
// runs: every word that is fully literal after quote removal, wherever it
// stands (arguments, assignments, redirection targets, strings handed to
// sh -c), and the literal lines of here-documents. A line that does not parse
// is returned whole, to be searched as plain text.
func literalTexts(cmd string) []string {
	f, err := parseShell(cmd)
	if err != nil {
		return []string{cmd}
	}
	var out []string
	syntax.Walk(f, func(n syntax.Node) bool {
		switch x := n.(type) {
		case *syntax.Word:
			if rw := resolveWord(x); rw.literal {
				out = append(out, rw.text)
			}
		case *syntax.Redirect:
			// A here-document is a whole script, not one word: its literal
			// lines are read even when other lines expand variables.
			if x.Hdoc != nil {
				for _, part := range x.Hdoc.Parts {
					if lit, ok := part.(*syntax.Lit); ok {
						out = append(out, lit.Value)
					}
				}
			}
		}
		return true
	})
	return out
}

// touchMatcher holds the protected resources in the forms words use.
type touchMatcher struct {
	vmids  []string              // decimal, no leading zeros
	nodes  []string              // lower case
	guests map[string]GuestPlace // guests on protected nodes, by decimal VMID
}

func newTouchMatcher(vmids []int, nodes []string) touchMatcher {
	var m touchMatcher
	for _, id := range vmids {
		if id > 0 {
			m.vmids = append(m.vmids, strconv.Itoa(id))
		}
	}
	for _, n := range nodes {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			m.nodes = append(m.nodes, n)
		}
	}
	return m
}

// guestFilePattern splits a token that names a guest's file into the VMID:
// a config file (103.conf, 103.fw), a disk or state volume (vm-103-disk-0,
// base-103-disk-0, subvol-103-disk-0) or a backup (vzdump-qemu-103-…).
var guestFilePattern = regexp.MustCompile(`^(?:([0-9]+)\.[a-z]+|(?:vm|base|subvol)-([0-9]+)(?:-.*)?|vzdump-(?:qemu|lxc|openvz)-([0-9]+)(?:-.*)?)$`)

// match returns the reason for the first protected resource text names, or "".
func (m touchMatcher) match(text string) string {
	for _, tok := range strings.FieldsFunc(strings.ToLower(text), isTouchSeparator) {
		if id := tokenVMID(tok); id != "" {
			for _, want := range m.vmids {
				if id == want {
					return fmt.Sprintf("The command names VM %s, which is protected by configuration (JARVIS_PROTECTED_VMIDS).", want)
				}
			}
			if g, ok := m.guests[id]; ok {
				return fmt.Sprintf("The command names %s %s, which runs on node %s, protected by configuration (JARVIS_PROTECTED_NODES); Jarvis will not act on it.",
					kindNoun(g.Kind), id, g.Node)
			}
		}
		for _, node := range m.nodes {
			if tok == node || strings.HasPrefix(tok, node+".") {
				return fmt.Sprintf("The command names node %s, which is protected by configuration (JARVIS_PROTECTED_NODES).", node)
			}
		}
	}
	return ""
}

// tokenVMID returns the VMID a token stands for (leading zeros dropped), or "".
func tokenVMID(tok string) string {
	digits := tok
	if !isDigits(tok) {
		sub := guestFilePattern.FindStringSubmatch(tok)
		if sub == nil {
			return ""
		}
		digits = sub[1] + sub[2] + sub[3] // exactly one group matched
	}
	if d := strings.TrimLeft(digits, "0"); d != "" {
		return d
	}
	return ""
}

// isTouchSeparator reports whether r separates the pieces of a word: every
// character that cannot be part of a node name, VMID or guest file name.
func isTouchSeparator(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		return false
	}
	return true
}
