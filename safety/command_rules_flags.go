package safety

// Option parsing for read-only rules: flagSpec lists the options a program may
// use, and withSpec, flagsOnly and readerRule turn a spec into a rule.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// flagSpec lists the options a read-only invocation may use.
type flagSpec struct {
	short         string   // boolean short options; may be bundled (-la)
	shortValue    string   // short options with a value, attached (-n5) or next (-n 5)
	shortOptional string   // short options whose value is optional and attached or the next word if it looks like one
	long          []string // boolean long options (a name in both lists may take =value)
	longValue     []string // long options with a value, --x=v or --x v
	digits        bool     // -5 means a count (head, tail, last)
	maxPositional int      // 0 = any number; otherwise at most this many operands
	fileValues    []string // options whose value is a file the program reads (last -f): no devices
	hints         map[string]string
}

type parsedArgs struct {
	positional []string
	options    map[string][]string // option name (letter or long name) -> values ("" for booleans)
}

// parse checks args against the spec. On failure it returns a reason naming
// the refused option.
func (s flagSpec) parse(program string, args []string) (parsedArgs, string) {
	out := parsedArgs{options: map[string][]string{}}
	refuse := func(opt, name string) string {
		if why, ok := s.hints[name]; ok {
			return fmt.Sprintf("%s %s %s, so it is not read-only.", program, opt, why)
		}
		return fmt.Sprintf("%s %s is not an option on the read-only list.", program, opt)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			out.positional = append(out.positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			switch {
			case !hasValue && slices.Contains(s.long, name):
				out.options[name] = append(out.options[name], "")
			case slices.Contains(s.longValue, name):
				if !hasValue {
					if i+1 >= len(args) {
						return out, fmt.Sprintf("%s %s needs a value.", program, a)
					}
					i++
					value = args[i]
				}
				out.options[name] = append(out.options[name], value)
			default:
				return out, refuse("--"+name, name)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if s.digits && isDigits(a[1:]) {
				out.options["n"] = append(out.options["n"], a[1:])
				continue
			}
			for j := 1; j < len(a); j++ {
				letter := a[j : j+1]
				switch {
				case strings.Contains(s.short, letter):
					out.options[letter] = append(out.options[letter], "")
				case strings.Contains(s.shortValue, letter):
					value := a[j+1:]
					if value == "" {
						if i+1 >= len(args) {
							return out, fmt.Sprintf("%s -%s needs a value.", program, letter)
						}
						i++
						value = args[i]
					}
					out.options[letter] = append(out.options[letter], value)
					j = len(a)
				case strings.Contains(s.shortOptional, letter):
					value := a[j+1:]
					if value == "" && i+1 < len(args) && optionalValuePattern.MatchString(args[i+1]) {
						i++
						value = args[i]
					}
					out.options[letter] = append(out.options[letter], value)
					j = len(a)
				default:
					return out, refuse("-"+letter, letter)
				}
			}
		default:
			out.positional = append(out.positional, a)
		}
	}
	if s.maxPositional > 0 && len(out.positional) > s.maxPositional {
		return out, fmt.Sprintf("%s takes at most %d operands here; more could mean writing a file.", program, s.maxPositional)
	}
	for _, name := range s.fileValues {
		for _, f := range out.options[name] {
			if reason := contentReadProblem(f); reason != "" {
				return out, fmt.Sprintf("%s %s: %s", program, f, reason)
			}
		}
	}
	return out, ""
}

// optionalValuePattern: what journalctl -n/-b accept as a following value.
var optionalValuePattern = regexp.MustCompile(`^([+-]?[0-9]+|all|[0-9a-f]{32}([+-][0-9]+)?)$`)

// withSpec allows the options in spec and any operands.
func withSpec(spec flagSpec) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		if _, bad := spec.parse(k.name, args); bad != "" {
			return red(bad)
		}
		return yellow("")
	}
}

// flagsOnly allows the options in spec and no operands.
func flagsOnly(spec flagSpec) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		p, bad := spec.parse(k.name, args)
		if bad != "" {
			return red(bad)
		}
		if len(p.positional) > 0 {
			return red(fmt.Sprintf("%s %s: operands are not on the read-only list.", k.name, p.positional[0]))
		}
		return yellow("")
	}
}

// readerRule is for programs that read file contents: operands are files and
// must not be devices (whole disks) or climb out of the login directory.
// patternOperands operands come first and are not files (grep's pattern).
func readerRule(spec flagSpec, patternOperands int) rule {
	return func(k *cmdCall) result {
		args, _ := k.literalArgs()
		p, bad := spec.parse(k.name, args)
		if bad != "" {
			return red(bad)
		}
		files := p.positional
		if len(files) > patternOperands {
			files = files[patternOperands:]
		} else {
			files = nil
		}
		for _, f := range files {
			if reason := contentReadProblem(f); reason != "" {
				return red(fmt.Sprintf("%s %s: %s", k.name, f, reason))
			}
		}
		// A raw disk named anywhere, even as an option value, is refused:
		// simpler to trust than knowing which options open files.
		for _, a := range args {
			candidates, _ := argumentCandidates(a)
			for _, c := range candidates {
				if rawDevicePattern.MatchString(cleanLower(c)) {
					return red(fmt.Sprintf("%s %s names a disk, volume or memory device, whose contents must not be read without a human.", k.name, a))
				}
			}
		}
		return yellow("")
	}
}
