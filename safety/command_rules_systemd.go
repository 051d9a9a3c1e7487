package safety

// Rules for systemd and services: systemctl, service and init scripts,
// deb-systemd-invoke, loginctl and runlevels, with unit names and the
// protected services they may refer to.

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// systemctl verbs.
var (
	systemctlReadVerbs  = []string{"status", "is-active", "is-enabled", "is-failed", "list-units", "list-unit-files", "show", "list-timers", "list-sockets"}
	systemctlBlackVerbs = []string{"poweroff", "reboot", "halt", "kexec", "soft-reboot", "suspend", "hibernate", "hybrid-sleep", "suspend-then-hibernate", "emergency", "rescue", "exit", "switch-root"}
	// Verbs that start a unit now, or make it start at boot or with another
	// unit. Any of them on a shutdown unit takes the node down.
	systemctlActivateVerbs = []string{"start", "restart", "try-restart", "reload-or-restart", "try-reload-or-restart", "reload-or-try-restart",
		"force-reload", "condrestart", "isolate", "enable", "reenable", "set-default", "add-wants", "add-requires", "link", "preset"}
	// shutdownUnits take the node down or out of reach when started.
	shutdownUnits = []string{"poweroff.target", "reboot.target", "halt.target", "kexec.target", "shutdown.target", "rescue.target", "emergency.target",
		"soft-reboot.target", "sleep.target", "suspend.target", "hibernate.target", "hybrid-sleep.target", "suspend-then-hibernate.target",
		"final.target", "ctrl-alt-del.target", "exit.target", "runlevel0.target", "runlevel1.target", "runlevel6.target",
		"systemd-poweroff.service", "systemd-reboot.service", "systemd-halt.service", "systemd-kexec.service", "systemd-soft-reboot.service",
		"systemd-suspend.service", "systemd-hibernate.service", "systemd-hybrid-sleep.service", "systemd-suspend-then-hibernate.service", "systemd-exit.service"}
	// isolateSafeTargets are the normal running states; isolating anything
	// else stops every unit that target does not need, sshd included.
	isolateSafeTargets = []string{"multi-user.target", "graphical.target", "default.target"}
)

var systemctlSpec = flagSpec{short: "laqr", shortValue: "tpno",
	long:      []string{"no-pager", "full", "all", "no-legend", "plain", "value", "quiet", "failed", "system", "recursive", "reverse", "after", "before", "show-types"},
	longValue: []string{"type", "state", "property", "lines", "output"},
	hints:     map[string]string{"H": "runs on another host", "host": "runs on another host", "M": "runs in another machine", "machine": "runs in another machine"}}

var systemctlValueOptions = []string{"-t", "-p", "-n", "-o", "-H", "-M", "-s", "--type", "--state", "--property", "--lines", "--output", "--host", "--machine", "--root", "--kill-whom", "--kill-value", "--signal", "--job-mode", "--what", "--timestamp", "--preset-mode", "--message", "--image", "--boot-loader-entry", "--boot-loader-menu", "--reboot-argument", "--drop-in", "--when"}

func systemctlRule(k *cmdCall) result {
	// Find the verb and the units, skipping options (and their values).
	verb, units, isolateMode := "", []word{}, false
	for i := 0; i < len(k.args); i++ {
		a := k.args[i]
		if a.literal && strings.HasPrefix(a.text, "-") {
			if a.text == "--job-mode=isolate" || a.text == "--job-mode" && i+1 < len(k.args) && k.args[i+1].text == "isolate" {
				isolateMode = true
			}
			if !strings.Contains(a.text, "=") && slices.Contains(systemctlValueOptions, a.text) {
				i++
			}
			continue
		}
		if verb == "" && a.literal {
			verb = a.text
			continue
		}
		units = append(units, a)
	}
	if verb == "" {
		verb = "list-units"
	}
	if slices.Contains(systemctlBlackVerbs, verb) {
		return black(fmt.Sprintf("systemctl %s takes the node down or out of reach; Jarvis never runs it for an agent.", verb))
	}
	if isolateMode && verb == "start" {
		verb = "isolate" // start --job-mode=isolate behaves like isolate
	}
	if slices.Contains(systemctlActivateVerbs, verb) {
		if r, bad := shutdownActivation(verb, units); bad {
			return r
		}
	}
	if slices.Contains(systemctlReadVerbs, verb) {
		args, _ := k.literalArgs()
		if _, bad := systemctlSpec.parse("systemctl", args); bad != "" {
			return red(bad)
		}
		return yellow("")
	}
	r := red(fmt.Sprintf("systemctl %s changes services, so a human must approve it.", verb))
	return k.protectUnits(r, verb, units)
}

// shutdownActivation returns a BLACK result if verb would start (now or at
// boot) a unit that takes the node down, or isolate the node to anything but
// its normal running state.
func shutdownActivation(verb string, units []word) (result, bool) {
	never := func(u string) (result, bool) {
		return black(fmt.Sprintf("systemctl %s %s can take the node down or out of reach; Jarvis never runs it for an agent.", verb, u)), true
	}
	for _, u := range units {
		if !u.literal {
			if verb == "isolate" || verb == "set-default" {
				return never(u.text)
			}
			continue
		}
		name := systemdUnitName(u.text, verb)
		if strings.ContainsAny(name, "*?[") {
			for _, s := range shutdownUnits {
				if ok, err := path.Match(name, s); ok || err != nil {
					return never(u.text)
				}
			}
		}
		if slices.Contains(shutdownUnits, name) {
			return never(u.text)
		}
		if verb == "isolate" && !slices.Contains(isolateSafeTargets, name) {
			return black(fmt.Sprintf("systemctl isolate %s stops every unit that target does not need, which can include SSH and the node's services; Jarvis never runs it for an agent.", u.text)), true
		}
	}
	return result{}, false
}

// systemdUnitName is the unit systemctl would act on: lower case, with the
// suffix systemctl adds to a bare name (.target for isolate and set-default,
// .service otherwise).
func systemdUnitName(u, verb string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	if strings.Contains(u, "/") {
		u = path.Base(u) // link and enable accept unit file paths
	}
	if hasUnitSuffix(u) || strings.ContainsAny(u, "*?[") {
		return u // systemctl adds no suffix to a glob
	}
	if verb == "isolate" || verb == "set-default" {
		return u + ".target"
	}
	return u + ".service"
}

// protectUnits marks r protected if any unit names a protected service. A unit
// name built at run time could be anything, so it counts as protected.
func (k *cmdCall) protectUnits(r result, verb string, units []word) result {
	for _, u := range units {
		if svc := k.c.protectedService(u); svc != "" {
			r.protected = true
			r.protectedReason = fmt.Sprintf("Service %s is protected by configuration (JARVIS_PROTECTED_SERVICES); Jarvis will not %s it.", svc, verb)
			if u.literal && partOfService(svc, u.text) {
				r.protectedReason = fmt.Sprintf("%s is part of service %s, which is protected by configuration (JARVIS_PROTECTED_SERVICES); Jarvis will not %s it.", u.text, svc, verb)
			}
			return r
		}
	}
	return r
}

// protectedService returns the protected service that unit refers to, or "".
// docker, Docker, docker.service, docker.socket, docker@x.service and globs
// matching docker all count, and so do the units of its programs (containerd).
func (c *classifier) protectedService(u word) string {
	for _, s := range c.protected {
		want := UnitBase(s)
		if want == "" {
			continue
		}
		if !u.literal {
			return s
		}
		got := strings.ToLower(u.text)
		if UnitBase(got) == want || partOfService(want, got) {
			return s
		}
		if strings.ContainsAny(got, "*?[\\") {
			for _, unit := range append([]string{want}, serviceProcesses[want]...) {
				for _, candidate := range []string{unit, unit + ".service", unit + ".socket", unit + "@.service", unit + ".timer", unit + ".path"} {
					if ok, err := path.Match(got, candidate); ok || err != nil {
						return s
					}
				}
			}
		}
	}
	return ""
}

// unitSuffixes are the systemd unit types.
var unitSuffixes = []string{".service", ".socket", ".timer", ".path", ".mount", ".automount", ".target", ".slice", ".scope", ".device", ".swap"}

func hasUnitSuffix(u string) bool {
	for _, s := range unitSuffixes {
		if strings.HasSuffix(u, s) {
			return true
		}
	}
	return false
}

// UnitBase reduces a systemd unit name to the service it belongs to, so that
// every form of one service compares equal: it lower-cases, strips the unit
// type suffix (.service, .socket, .timer, .path, .mount, .automount, .target,
// .slice, .scope, .device, .swap) and any @instance. "Docker",
// "docker.socket" and "docker@x.service" all give "docker".
func UnitBase(unit string) string {
	u := strings.ToLower(strings.TrimSpace(unit))
	for _, s := range unitSuffixes {
		if strings.HasSuffix(u, s) {
			u = strings.TrimSuffix(u, s)
			break
		}
	}
	if before, _, ok := strings.Cut(u, "@"); ok {
		u = before
	}
	return u
}

// serviceRule handles "service NAME ACTION" (and init scripts, invoke-rc.d).
func serviceRule(k *cmdCall) result {
	args, literal := k.literalArgs()
	if len(args) == 1 && args[0] == "--status-all" {
		return yellow("")
	}
	if len(args) == 2 && literal && args[1] == "status" {
		return yellow("")
	}
	action := "change"
	if len(args) >= 2 {
		action = args[1]
	}
	r := red(fmt.Sprintf("%s %s changes a service, so a human must approve it.", k.name, strings.Join(args, " ")))
	if len(k.args) > 0 {
		r = k.protectUnits(r, action, k.args[:1])
	}
	return r
}

func runlevelRule(k *cmdCall) result {
	switch firstArg(k) {
	case "0", "6":
		return black(fmt.Sprintf("%s %s shuts the node down or reboots it; Jarvis never runs it for an agent.", k.name, firstArg(k)))
	}
	return red(fmt.Sprintf("%s changes the runlevel, so a human must approve it.", k.name))
}

// debSystemdInvokeRule handles "deb-systemd-invoke ACTION UNIT...".
func debSystemdInvokeRule(k *cmdCall) result {
	action := firstArg(k)
	r := red(fmt.Sprintf("deb-systemd-invoke %s changes services, so a human must approve it.", action))
	if len(k.args) > 1 {
		r = k.protectUnits(r, action, k.args[1:])
	}
	return r
}

// loginctlVerbsBlack take the node down, like their systemctl namesakes.
var loginctlVerbsBlack = []string{"poweroff", "reboot", "halt", "kexec", "soft-reboot", "suspend", "hibernate", "hybrid-sleep", "suspend-then-hibernate"}

func loginctlRule(k *cmdCall) result {
	// Every word is checked, not just the first operand, so option values
	// (loginctl -H host reboot) cannot hide the verb.
	for _, a := range k.args {
		if slices.Contains(loginctlVerbsBlack, a.text) {
			return black(fmt.Sprintf("loginctl %s takes the node down; Jarvis never runs it for an agent.", a.text))
		}
	}
	return red("loginctl can end login sessions (including the one Jarvis uses), so a human must approve it.")
}
