package safety

// Rules for processes and scheduling: ps, top, kill, crontab, at and batch,
// and D-Bus calls.

import (
	"fmt"
	"slices"
	"strings"
)

// psRule allows ps in any form except BSD "e", which prints every process's
// environment variables (where secrets often live).
func psRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	valueNext := false
	for _, a := range args {
		if valueNext {
			valueNext = false
			continue
		}
		if a == "" {
			continue // an empty operand selects nothing
		}
		if strings.HasPrefix(a, "--") {
			name, _, has := strings.Cut(a[2:], "=")
			valueNext = !has && slices.Contains([]string{"sort", "format", "pid", "ppid", "user", "User", "group", "Group", "cols", "columns", "rows", "lines", "tty", "sid", "quick-pid"}, name)
			continue
		}
		if strings.HasPrefix(a, "-") {
			last := a[len(a)-1:]
			valueNext = len(a) == 2 && strings.Contains("oOpuUgGCtqsN", last)
			continue
		}
		// BSD-style option letters.
		if strings.ContainsAny(a, "eE") {
			return red("ps e prints the environment of every process, which can hold secrets; a human must approve it.")
		}
		last := a[len(a)-1:]
		valueNext = strings.Contains("oOpUtk", last)
	}
	return yellow("")
}

// topRule allows only a single batch snapshot: top -b -n 1 (or -bn1).
func topRule(k *cmdCall) result {
	args, _ := k.literalArgs()
	spec := flagSpec{short: "bcHiSE", shortValue: "nopuUdwe"}
	p, bad := spec.parse("top", args)
	if bad != "" {
		return red(bad)
	}
	if len(p.positional) > 0 || len(p.options["b"]) == 0 || !slices.Equal(p.options["n"], []string{"1"}) {
		return red("top is interactive and runs forever; only the one-shot form top -bn1 is read-only.")
	}
	return yellow("")
}

func killRule(k *cmdCall) result {
	for i, a := range k.args {
		// "kill -1" alone names signal 1; after a signal option or --, -1 means every process.
		if a.text == "1" || (a.text == "-1" && i > 0) {
			return black("kill of PID 1 or -1 kills init or every process on the node; Jarvis never runs it for an agent.")
		}
	}
	return red("kill stops processes, so a human must approve it.")
}

func crontabRule(k *cmdCall) result {
	for _, a := range k.args {
		if strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "--") && strings.Contains(a.text, "r") {
			return black("crontab -r deletes every scheduled job without asking; Jarvis never runs it for an agent.")
		}
	}
	return red("crontab changes or shows scheduled jobs, so a human must approve it.")
}

// atRule: at and batch run the text on their input later, as a shell would.
func atRule(k *cmdCall) result {
	if k.ctx.fed {
		return black(fmt.Sprintf("%s would run the text it receives as shell commands later; Jarvis never runs it for an agent.", k.name))
	}
	return red(fmt.Sprintf("%s schedules commands, so a human must approve it.", k.name))
}

// busRule: D-Bus calls can ask logind or systemd to power off or reboot.
func busRule(k *cmdCall) result {
	for _, a := range k.args {
		low := strings.ToLower(a.text)
		for _, w := range []string{"poweroff", "reboot", "halt", "kexec", "suspend", "hibernate", "isolate", "killunit", "stopunit"} {
			if strings.Contains(low, w) {
				return black(fmt.Sprintf("%s %s asks the system to power off, reboot or stop units over D-Bus; Jarvis never runs it for an agent.", k.name, a.text))
			}
		}
	}
	return red(fmt.Sprintf("%s calls system services over D-Bus, so a human must approve it.", k.name))
}
