package safety

// Rules for networking: ip, and the firewalls iptables (and its relatives) and
// nft.

import (
	"fmt"
	"strings"
	"unicode"
)

// ipRule: ip [-br|-4|-6|-j|...] addr|link|route|neigh [show|list ...].
func ipRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		switch args[i] {
		case "-br", "-brief", "-4", "-6", "-j", "-json", "-d", "-details", "-s", "-stats", "-statistics", "-c", "-color", "-p", "-pretty", "-o", "-oneline", "-h", "-human":
		default:
			return red(fmt.Sprintf("ip %s is not an option on the read-only list.", args[i]))
		}
	}
	if i >= len(args) {
		return red("ip without an object is not understood.")
	}
	object := args[i]
	switch object {
	case "a", "addr", "address", "l", "link", "r", "ro", "route", "n", "neigh", "neighbor", "neighbour":
	default:
		return red(fmt.Sprintf("ip %s is not on the read-only list.", object))
	}
	rest := args[i+1:]
	if len(rest) == 0 {
		return yellow("")
	}
	switch rest[0] {
	case "show", "sh", "list", "ls", "lst":
		return yellow("")
	case "get":
		if object == "r" || object == "ro" || object == "route" {
			return yellow("")
		}
	}
	return red(fmt.Sprintf("ip %s %s changes the network configuration, so a human must approve it.", object, rest[0]))
}

// iptables flags that never take a value; any other letter in a bundle
// takes the rest of the word or the next word as its value.
const iptablesBoolLetters = "vnx46fhZ"

// iptablesRule: flushing, deleting chains, resetting a table or a DROP policy
// can lock everyone out (or open the node): BLACK. Covers iptables,
// ip6tables, ebtables and arptables, bundled letters (-nvF), attached values
// (-PINPUT) and unambiguous abbreviations of long options (--flu).
func iptablesRule(k *cmdCall) result {
	never := func(what string) result {
		return black(fmt.Sprintf("%s %s removes firewall rules or closes the node and can lock everyone out or open it; Jarvis never runs it for an agent.", k.name, what))
	}
	// dropPolicy reports whether the policy target at position i is DROP or REJECT.
	dropPolicy := func(i int) bool {
		if i >= len(k.args) {
			return false
		}
		t := strings.ToUpper(k.args[i].text)
		return !k.args[i].literal || t == "DROP" || t == "REJECT"
	}
	for i, a := range k.args {
		t := a.text
		if strings.HasPrefix(t, "--") {
			name, value, hasValue := strings.Cut(t[2:], "=")
			switch {
			case len(name) >= 3 && strings.HasPrefix("flush", name),
				len(name) > len("delete") && strings.HasPrefix("delete-chain", name),
				len(name) >= 3 && strings.HasPrefix("init-table", name):
				return never(t)
			case len(name) >= 2 && strings.HasPrefix("policy", name):
				target := i + 2 // --policy CHAIN TARGET
				if hasValue && value != "" {
					target = i + 1 // --policy=CHAIN TARGET
				}
				if dropPolicy(target) {
					return never(t + " ... DROP")
				}
			}
			continue
		}
		if !strings.HasPrefix(t, "-") || len(t) < 2 {
			continue
		}
		for j := 1; j < len(t); j++ {
			switch c := t[j]; {
			case c == 'F' || c == 'X':
				return never("-" + string(c))
			case c == 'P':
				target := i + 2 // -P CHAIN TARGET
				if j+1 < len(t) {
					target = i + 1 // -PCHAIN TARGET
				}
				if dropPolicy(target) {
					return never("-P ... DROP")
				}
			case strings.IndexByte(iptablesBoolLetters, c) >= 0:
				continue
			}
			break // a letter with a value takes the rest of the word
		}
	}
	return red(fmt.Sprintf("%s changes or lists firewall rules, so a human must approve it.", k.name))
}

func nftRule(k *cmdCall) result {
	for _, a := range k.args {
		// nft joins its arguments into one script: 'flush ruleset' may be one word.
		for _, tok := range strings.FieldsFunc(strings.ToLower(a.text), func(r rune) bool { return !unicode.IsLetter(r) && r != '-' }) {
			if tok == "flush" || tok == "delete" || tok == "destroy" {
				return black("nft flush/delete removes firewall rules and can lock everyone out or open the node; Jarvis never runs it for an agent.")
			}
		}
		if a.text == "-f" || strings.HasPrefix(a.text, "--file") || a.text == "-i" || a.text == "--interactive" {
			return red("nft reads rules from a file or its input, which cannot be checked, so a human must approve it.")
		}
	}
	return red("nft changes or lists firewall rules, so a human must approve it.")
}
