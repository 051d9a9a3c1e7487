package sshsim

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var unitDescriptions = map[string]string{
	"pveproxy": "PVE API Proxy Server", "pvedaemon": "PVE API Daemon", "pvestatd": "PVE Status Daemon",
	"pve-cluster": "The Proxmox VE cluster filesystem", "corosync": "Corosync Cluster Engine",
	"pve-firewall": "Proxmox VE firewall", "pve-ha-lrm": "PVE Local HA Resource Manager Daemon",
	"pve-ha-crm": "PVE Cluster HA Resource Manager Daemon", "spiceproxy": "PVE SPICE Proxy Server",
	"ssh": "OpenBSD Secure Shell server", "cron": "Regular background program processing daemon",
	"chrony": "chrony, an NTP client/server", "postfix": "Postfix Mail Transport Agent",
	"smartd": "Self Monitoring and Reporting Technology (SMART) Daemon", "qmeventd": "PVE Qemu Event Daemon",
	"pvescheduler": "Proxmox VE scheduler",
}

// unitName strips a .service suffix: systemctl accepts both forms.
func unitName(s string) string { return strings.TrimSuffix(s, ".service") }

// unitPID gives each unit a stable main PID.
func unitPID(unit string) int {
	h := fnv.New32a()
	h.Write([]byte(unit))
	return 700 + int(h.Sum32()%3000)
}

// journalEntry is one journal line; at is an offset back from now.
type journalEntry struct {
	at       time.Time
	priority int // 0 emerg … 7 debug
	unit     string
	ident    string
	pid      int
	msg      string
}

// journal returns the node's journal, oldest first: a few plausible lines
// per unit plus whatever systemctl did during this simulation.
func (n *simNode) journal() []journalEntry {
	now := time.Now().UTC()
	boot := n.bootTime()
	var out []journalEntry
	add := func(at time.Time, prio int, unit, ident, msg string) {
		pid := unitPID(unit)
		if ident == "systemd" {
			pid = 1
		}
		out = append(out, journalEntry{at, prio, unit, ident, pid, msg})
	}
	n.mu.Lock()
	services := make(map[string]string, len(n.services))
	for u, s := range n.services {
		services[u] = s
	}
	extra := slices.Clone(n.events)
	n.mu.Unlock()

	for unit, state := range services {
		desc := unitDescriptions[unit]
		if desc == "" {
			desc = unit
		}
		add(boot.Add(9*time.Second), 6, unit, "systemd", "Starting "+unit+".service - "+desc+"...")
		switch state {
		case "active":
			add(boot.Add(10*time.Second), 6, unit, "systemd", "Started "+unit+".service - "+desc+".")
		case "failed":
			add(boot.Add(10*time.Second), 6, unit, "systemd", "Started "+unit+".service - "+desc+".")
			if n.facts.Services[unit] != "failed" {
				break // failed during the simulation (FailService): its lines are in extra
			}
			for _, d := range n.facts.Disks {
				if !d.Healthy {
					add(now.Add(-3*time.Hour), 2, unit, unit, fmt.Sprintf("Device: /dev/%s [SAT], FAILED SMART self-check. BACK UP DATA NOW!", d.Name))
					add(now.Add(-3*time.Hour), 3, unit, unit, fmt.Sprintf("Device: /dev/%s [SAT], 8 Currently unreadable (pending) sectors", d.Name))
				}
			}
			add(now.Add(-3*time.Hour+time.Second), 4, unit, "systemd", unit+".service: Main process exited, code=exited, status=1/FAILURE")
			add(now.Add(-3*time.Hour+time.Second), 4, unit, "systemd", unit+".service: Failed with result 'exit-code'.")
		case "inactive":
			add(boot.Add(10*time.Second), 6, unit, "systemd", unit+".service - "+desc+" was skipped because of an unmet condition check.")
		}
		if state != "active" {
			continue
		}
		switch unit {
		case "pveproxy":
			add(now.Add(-26*time.Hour), 6, unit, "pveproxy", "worker 48190 finished")
			add(now.Add(-26*time.Hour), 6, unit, "pveproxy", "starting 1 worker(s)")
			add(now.Add(-26*time.Hour), 6, unit, "pveproxy", "worker 48211 started")
		case "corosync":
			add(boot.Add(20*time.Second), 5, unit, "corosync", "[QUORUM] Members["+strconv.Itoa(len(n.sim.order))+"]: "+memberIDs(len(n.sim.order)))
			add(boot.Add(20*time.Second), 5, unit, "corosync", "[MAIN  ] Completed service synchronization, ready to provide service.")
		case "pve-cluster":
			add(now.Add(-50*time.Minute), 6, unit, "pmxcfs", "[dcdb] notice: data verification successful")
		case "pvestatd":
			add(now.Add(-2*time.Hour), 6, unit, "pvestatd", "status update time (1.084 seconds)")
		case "ssh":
			add(now.Add(-47*time.Minute), 6, unit, "sshd", "Accepted publickey for root from 10.0.0.50 port 50122 ssh2: ED25519 SHA256:4qHk8QvXbq1YwQ2R0yJc9l3m6y1bq7qk9uQ3x1jX0cA")
		}
	}
	out = append(out, extra...)
	slices.SortStableFunc(out, func(a, b journalEntry) int { return a.at.Compare(b.at) })
	return out
}

func memberIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(ids, " ")
}

var priorities = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

func parsePriority(s string) (int, bool) {
	if _, hi, ok := strings.Cut(s, ".."); ok {
		s = hi
	}
	if v, err := strconv.Atoi(s); err == nil && v >= 0 && v <= 7 {
		return v, true
	}
	i := slices.Index(priorities, s)
	return i, i >= 0
}

// parseSince reads the --since forms operators use.
func parseSince(s string, now time.Time) (time.Time, bool) {
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch s {
	case "today":
		return today, true
	case "yesterday":
		return today.AddDate(0, 0, -1), true
	case "now":
		return now, true
	}
	if f := strings.Fields(s); len(f) == 3 && f[2] == "ago" || len(f) == 2 && strings.HasPrefix(s, "-") {
		num, unit := strings.TrimPrefix(f[0], "-"), f[1]
		v, err := strconv.Atoi(num)
		if err != nil {
			return time.Time{}, false
		}
		units := map[string]time.Duration{"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
			"min": time.Minute, "minute": time.Minute, "minutes": time.Minute, "m": time.Minute,
			"h": time.Hour, "hour": time.Hour, "hours": time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour, "d": 24 * time.Hour}
		d, ok := units[unit]
		return now.Add(-time.Duration(v) * d), ok
	}
	for _, layout := range []string{time.DateTime, "2006-01-02 15:04", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func cmdJournalctl(p *proc) int {
	lines, maxPrio, unit := -1, 7, ""
	var since time.Time
	args := p.args[1:]
	value := func(i *int, name string) (string, bool) {
		a := args[*i]
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if *i+1 < len(args) {
			*i++
			return args[*i], true
		}
		p.errorf("journalctl: option '%s' requires an argument", a)
		return "", false
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--no-pager" || a == "-b" || a == "--boot" || a == "-q" || a == "--quiet" || a == "-x" || a == "-e" || a == "--no-hostname" || a == "-l" || a == "--full":
		case a == "-u" || strings.HasPrefix(a, "--unit"):
			v, ok := value(&i, "--unit")
			if !ok {
				return 1
			}
			unit = unitName(v)
		case a == "-n" || strings.HasPrefix(a, "--lines"):
			v, ok := value(&i, "--lines")
			if !ok {
				return 1
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				p.errorf("Failed to parse lines '%s'", v)
				return 1
			}
			lines = n
		case strings.HasPrefix(a, "-n"):
			n, err := strconv.Atoi(a[2:])
			if err != nil {
				p.errorf("Failed to parse lines '%s'", a[2:])
				return 1
			}
			lines = n
		case a == "-p" || strings.HasPrefix(a, "--priority"):
			v, ok := value(&i, "--priority")
			if !ok {
				return 1
			}
			if maxPrio, ok = parsePriority(v); !ok {
				p.errorf("Failed to parse priority value: %s", v)
				return 1
			}
		case a == "-S" || strings.HasPrefix(a, "--since"):
			v, ok := value(&i, "--since")
			if !ok {
				return 1
			}
			if since, ok = parseSince(v, time.Now().UTC()); !ok {
				p.errorf("Failed to parse timestamp: %s", v)
				return 1
			}
		case a == "-f" || a == "--follow":
			p.errorf("journalctl: following is not supported here")
			return 1
		case a == "--vacuum-size" || strings.HasPrefix(a, "--vacuum") || a == "--rotate" || a == "--flush":
			p.errorf("journalctl: %s: Operation not permitted", a)
			return 1
		default:
			p.errorf("journalctl: unrecognized option '%s'", a)
			return 1
		}
	}
	var out []string
	for _, e := range p.node.journal() {
		if (unit != "" && e.unit != unit) || e.priority > maxPrio || e.at.Before(since) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s[%d]: %s", e.at.Format(time.Stamp), p.node.facts.Name, e.ident, e.pid, e.msg))
	}
	if lines >= 0 && len(out) > lines {
		out = out[len(out)-lines:]
	}
	if len(out) == 0 {
		p.printf("-- No entries --\n")
		return 0
	}
	p.printLines(out)
	return 0
}

func cmdSystemctl(p *proc) int {
	var verb string
	var units, props []string
	valueOnly := false
	list := unitListing{legend: true}
	args := p.args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--no-pager" || a == "-l" || a == "--full" || a == "-q" || a == "--quiet":
		case a == "--no-legend" || a == "--legend=no" || a == "--legend=false":
			list.legend = false
		case a == "--plain":
			list.plain = true
		case a == "-a" || a == "--all":
			list.all = true
		case a == "--value":
			valueOnly = true
		case a == "--failed":
			list.states = append(list.states, "failed")
		case (a == "--state" || a == "--type" || a == "-t") && i+1 < len(args):
			i++
			list.filter(a, args[i])
		case strings.HasPrefix(a, "--state=") || strings.HasPrefix(a, "--type="):
			name, v, _ := strings.Cut(a, "=")
			list.filter(name, v)
		case a == "-p" && i+1 < len(args):
			i++
			props = append(props, strings.Split(args[i], ",")...)
		case strings.HasPrefix(a, "--property="):
			props = append(props, strings.Split(strings.TrimPrefix(a, "--property="), ",")...)
		case strings.HasPrefix(a, "-"):
			p.errorf("systemctl: unrecognized option '%s'", a)
			return 1
		case verb == "":
			verb = a
		default:
			units = append(units, unitName(a))
		}
	}
	n := p.node
	state := func(u string) (string, bool) {
		n.mu.Lock()
		defer n.mu.Unlock()
		s, ok := n.services[u]
		return s, ok
	}
	if verb == "" {
		verb = "list-units"
	}
	if verb != "list-units" && len(units) == 0 {
		p.errorf("Too few arguments.")
		return 1
	}
	switch verb {
	case "status":
		code := 0
		for _, u := range units {
			s, ok := state(u)
			if !ok {
				p.errorf("Unit %s.service could not be found.", u)
				code = 4
				continue
			}
			p.unitStatus(u, s)
			if s != "active" && code == 0 {
				code = 3
			}
		}
		return code
	case "is-active", "is-failed":
		allMatch := true
		for _, u := range units {
			s, ok := state(u)
			if !ok {
				s = "inactive"
			}
			p.printf("%s\n", s)
			want := "active"
			if verb == "is-failed" {
				want = "failed"
			}
			allMatch = allMatch && s == want
		}
		if verb == "is-failed" {
			return boolCode(allMatch)
		}
		if allMatch {
			return 0
		}
		return 3
	case "is-enabled":
		for _, u := range units {
			if _, ok := state(u); !ok {
				p.errorf("Failed to get unit file state for %s.service: No such file or directory", u)
				return 1
			}
			p.printf("enabled\n")
		}
		return 0
	case "show":
		for i, u := range units {
			if i > 0 {
				p.printf("\n")
			}
			p.unitShow(u, props, valueOnly)
		}
		return 0
	case "list-units":
		p.listUnits(list)
		return 0
	case "restart", "start", "stop", "reload", "try-restart", "reload-or-restart":
		for _, u := range units {
			if _, ok := state(u); !ok {
				p.errorf("Failed to %s %s.service: Unit %s.service not found.", verb, u, u)
				return 5
			}
		}
		for _, u := range units {
			n.changeUnit(u, verb)
		}
		return 0
	}
	p.errorf("Unknown command verb '%s'.", verb)
	return 1
}

// changeUnit applies a start/stop/restart and journals it.
func (n *simNode) changeUnit(unit, verb string) {
	desc := unitDescriptions[unit]
	now := time.Now().UTC()
	n.mu.Lock()
	defer n.mu.Unlock()
	log := func(msg string) {
		n.events = append(n.events, journalEntry{now, 6, unit, "systemd", 1, msg})
	}
	if verb == "stop" {
		log("Stopping " + unit + ".service - " + desc + "...")
		log("Stopped " + unit + ".service - " + desc + ".")
		n.services[unit] = "inactive"
		return
	}
	if verb == "reload" && n.services[unit] == "active" {
		log("Reloaded " + unit + ".service - " + desc + ".")
		return
	}
	if n.services[unit] == "active" {
		log("Stopping " + unit + ".service - " + desc + "...")
		log("Stopped " + unit + ".service - " + desc + ".")
	}
	log("Starting " + unit + ".service - " + desc + "...")
	log("Started " + unit + ".service - " + desc + ".")
	n.services[unit] = "active"
}

func (p *proc) unitStatus(unit, state string) {
	desc := unitDescriptions[unit]
	since := p.node.bootTime().Add(10 * time.Second)
	dot, active := "●", ""
	switch state {
	case "active":
		active = fmt.Sprintf("active (running) since %s; %s ago", since.Format("Mon 2006-01-02 15:04:05 MST"), shortDuration(time.Since(since)))
	case "failed":
		dot = "×"
		active = fmt.Sprintf("failed (Result: exit-code) since %s; 3h ago", time.Now().UTC().Add(-3*time.Hour).Format("Mon 2006-01-02 15:04:05 MST"))
	default:
		dot = "○"
		active = "inactive (dead)"
	}
	p.printf("%s %s.service - %s\n", dot, unit, desc)
	p.printf("     Loaded: loaded (/usr/lib/systemd/system/%s.service; enabled; preset: enabled)\n", unit)
	p.printf("     Active: %s\n", active)
	if state == "active" {
		p.printf("   Main PID: %d (%s)\n      Tasks: 4 (limit: 76800)\n     Memory: 142.3M (peak: 171.0M)\n        CPU: 9min 12.408s\n     CGroup: /system.slice/%s.service\n", unitPID(unit), unit, unit)
	}
	var recent []string
	for _, e := range p.node.journal() {
		if e.unit == unit {
			recent = append(recent, fmt.Sprintf("%s %s %s[%d]: %s", e.at.Format(time.Stamp), p.node.facts.Name, e.ident, e.pid, e.msg))
		}
	}
	if len(recent) > 0 {
		p.printf("\n")
		p.printLines(recent[max(0, len(recent)-10):])
	}
}

func (p *proc) unitShow(unit string, props []string, valueOnly bool) {
	n := p.node
	n.mu.Lock()
	state, known := n.services[unit]
	n.mu.Unlock()
	kv := [][2]string{{"Id", unit + ".service"}, {"Description", unitDescriptions[unit]}}
	if known {
		sub := map[string]string{"active": "running", "inactive": "dead", "failed": "failed"}[state]
		pid := 0
		if state == "active" {
			pid = unitPID(unit)
		}
		result := "success"
		if state == "failed" {
			result = "exit-code"
		}
		kv = append(kv, [][2]string{{"LoadState", "loaded"}, {"ActiveState", state}, {"SubState", sub}, {"Result", result},
			{"MainPID", strconv.Itoa(pid)}, {"UnitFileState", "enabled"}, {"FragmentPath", "/usr/lib/systemd/system/" + unit + ".service"}}...)
	} else {
		kv = append(kv, [][2]string{{"LoadState", "not-found"}, {"ActiveState", "inactive"}, {"SubState", "dead"}, {"MainPID", "0"}}...)
	}
	for _, pair := range kv {
		if len(props) > 0 && !slices.Contains(props, pair[0]) {
			continue
		}
		if valueOnly {
			p.printf("%s\n", pair[1])
		} else {
			p.printf("%s=%s\n", pair[0], pair[1])
		}
	}
}

// unitListing is what list-units was asked for.
type unitListing struct {
	plain  bool     // --plain: no status glyph column
	legend bool     // the header and the footer (--no-legend drops them)
	all    bool     // --all: inactive units too
	states []string // --state (and --failed): ACTIVE, SUB or LOAD states to show
	types  []string // --type: unit types to show
}

func (o *unitListing) filter(option, value string) {
	values := strings.Split(value, ",")
	if option == "--state" {
		o.states = append(o.states, values...)
	} else {
		o.types = append(o.types, values...)
	}
}

// listUnits prints list-units as systemd's table does: each column as wide as
// its widest cell (the header's too when it is shown), one space between
// columns, the last one unpadded; the status glyph column (● for a failed
// unit) unless --plain; the header and the count unless --no-legend. Without
// --all or --state, inactive units are left out. Every unit here is a service.
func (p *proc) listUnits(o unitListing) {
	n := p.node
	n.mu.Lock()
	states := make(map[string]string, len(n.services))
	for u, s := range n.services {
		states[u] = s
	}
	n.mu.Unlock()
	units := slices.Sorted(maps.Keys(states))
	if len(o.types) > 0 && !slices.Contains(o.types, "service") {
		units = nil
	}
	var rows [][]string
	for _, u := range units {
		s := states[u]
		sub := map[string]string{"active": "running", "inactive": "dead", "failed": "failed"}[s]
		switch {
		case len(o.states) > 0 && !slices.Contains(o.states, s) && !slices.Contains(o.states, sub) && !slices.Contains(o.states, "loaded"):
			continue
		case len(o.states) == 0 && !o.all && s == "inactive":
			continue
		}
		glyph := ""
		if s == "failed" {
			glyph = "●"
		}
		desc := unitDescriptions[u]
		if desc == "" {
			desc = u + ".service" // systemd's description of a unit without one
		}
		rows = append(rows, []string{glyph, u + ".service", "loaded", s, sub, desc})
	}
	header := []string{"", "UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"}
	first := 0
	if o.plain {
		first = 1
	}
	widths := make([]int, len(header))
	measure := func(row []string) {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	if o.legend {
		measure(header)
	}
	for _, r := range rows {
		measure(r)
	}
	line := func(row []string) {
		var b strings.Builder
		for i := first; i < len(row); i++ {
			if i > first {
				b.WriteByte(' ')
			}
			b.WriteString(row[i])
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(row[i])))
			}
		}
		p.printf("%s\n", b.String())
	}
	if o.legend {
		line(header)
	}
	for _, r := range rows {
		line(r)
	}
	if o.legend {
		p.printf("\n%d loaded units listed.\n", len(rows))
	}
}

func shortDuration(d time.Duration) string {
	days := int(d.Hours()) / 24
	switch {
	case days >= 7:
		return fmt.Sprintf("%d weeks %d days", days/7, days%7)
	case days > 0:
		return fmt.Sprintf("%d days", days)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dmin", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dmin", int(d.Minutes()))
}

// mac derives a stable MAC address for an interface.
func mac(node, iface string) string {
	h := fnv.New32a()
	h.Write([]byte(node + "/" + iface))
	v := h.Sum32()
	return fmt.Sprintf("bc:24:11:%02x:%02x:%02x", byte(v>>16), byte(v>>8), byte(v))
}

type netIface struct {
	name, master, addr string
	mtu                int
}

func (n *simNode) interfaces() []netIface {
	ifs := []netIface{{name: "lo", addr: "127.0.0.1/8", mtu: 65536}, {name: "enp1s0", master: "vmbr0", mtu: 1500}, {name: "vmbr0", addr: n.facts.Address, mtu: 1500}}
	for _, g := range n.facts.Guests {
		if g.Status != "running" {
			continue
		}
		if g.Kind == "qemu" {
			ifs = append(ifs, netIface{name: fmt.Sprintf("tap%di0", g.VMID), master: "vmbr0", mtu: 1500})
		} else {
			ifs = append(ifs, netIface{name: fmt.Sprintf("veth%di0", g.VMID), master: "vmbr0", mtu: 1500})
		}
	}
	return ifs
}

func cmdIP(p *proc) int {
	var words []string
	brief := false
	for _, a := range p.args[1:] {
		switch a {
		case "-br", "-brief", "--brief":
			brief = true
		case "-4", "-6", "-c", "-color", "--color", "-d", "-details", "-s":
		default:
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		p.errorf("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }")
		return 255
	}
	object := words[0]
	rest := words[1:]
	if len(rest) > 0 && slices.Contains([]string{"show", "list", "ls", "lst"}, rest[0]) {
		rest = rest[1:]
	}
	var dev string
	if len(rest) >= 2 && rest[0] == "dev" {
		dev, rest = rest[1], rest[2:]
	} else if len(rest) == 1 && object != "route" && object != "r" && object != "ro" {
		dev, rest = rest[0], nil
	}
	if len(rest) > 0 {
		p.errorf("RTNETLINK answers: Operation not permitted")
		return 2
	}
	ifs := p.node.interfaces()
	if dev != "" {
		ifs = slices.DeleteFunc(ifs, func(i netIface) bool { return i.name != dev })
		if len(ifs) == 0 {
			p.errorf("Device \"%s\" does not exist.", dev)
			return 1
		}
	}
	switch object {
	case "addr", "a", "address", "link", "l":
		withAddr := object != "link" && object != "l"
		for i, ifc := range ifs {
			state := "UP"
			flags := "BROADCAST,MULTICAST,UP,LOWER_UP"
			if ifc.name == "lo" {
				state, flags = "UNKNOWN", "LOOPBACK,UP,LOWER_UP"
			}
			if brief {
				if withAddr {
					// ip ends every address, and so the line, with a blank
					addr := ""
					if ifc.addr != "" {
						addr = ifc.addr + " "
					}
					p.printf("%-16s %-14s %s\n", ifc.name, state, addr)
				} else {
					hw := mac(p.node.facts.Name, ifc.name)
					if ifc.name == "lo" {
						hw = "00:00:00:00:00:00"
					}
					p.printf("%-16s %-14s %s <%s> \n", ifc.name, state, hw, flags)
				}
				continue
			}
			master := ""
			if ifc.master != "" {
				master = " master " + ifc.master
			}
			p.printf("%d: %s: <%s> mtu %d qdisc noqueue%s state %s group default qlen 1000\n", i+1, ifc.name, flags, ifc.mtu, master, state)
			if ifc.name == "lo" {
				p.printf("    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n")
			} else {
				p.printf("    link/ether %s brd ff:ff:ff:ff:ff:ff\n", mac(p.node.facts.Name, ifc.name))
			}
			if withAddr && ifc.addr != "" {
				scope := "global"
				if ifc.name == "lo" {
					scope = "host"
				}
				p.printf("    inet %s scope %s %s\n       valid_lft forever preferred_lft forever\n", ifc.addr, scope, ifc.name)
			}
		}
		return 0
	case "route", "r", "ro":
		ip := ipOnly(p.node.facts.Address)
		prefix := ip[:strings.LastIndexByte(ip, '.')] + ".0/" + strings.SplitN(p.node.facts.Address, "/", 2)[1]
		gw := ip[:strings.LastIndexByte(ip, '.')] + ".1"
		p.printf("default via %s dev vmbr0 proto kernel onlink \n%s dev vmbr0 proto kernel scope link src %s \n", gw, prefix, ip)
		return 0
	}
	p.errorf("Object \"%s\" is unknown, try \"ip help\".", object)
	return 1
}

func cmdSs(p *proc) int {
	flags := ""
	for _, a := range p.args[1:] {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") {
			flags += a[1:]
		}
	}
	if strings.ContainsAny(flags, "K") {
		p.errorf("ss: killing sockets is not permitted")
		return 1
	}
	type sock struct {
		proto, local, proc string
		pid                int
	}
	socks := []sock{
		{"tcp", "0.0.0.0:111", "rpcbind", 581}, {"tcp", "0.0.0.0:22", "sshd", 612}, {"tcp", "127.0.0.1:25", "master", 1090},
		{"tcp", "127.0.0.1:85", "pvedaemon worke", 1311}, {"tcp", "*:8006", "pveproxy worker", 48211}, {"tcp", "*:3128", "spiceproxy work", 1330},
		{"udp", ipOnly(p.node.facts.Address) + ":5405", "corosync", 1204}, {"udp", "127.0.0.1:323", "chronyd", 640},
	}
	tcp, udp := strings.Contains(flags, "t"), strings.Contains(flags, "u")
	if !tcp && !udp {
		tcp = true
	}
	p.printf("%-6s %-6s %-6s %-28s %-20s", "Netid", "State", "Recv-Q", "Local Address:Port", "Peer Address:Port")
	if strings.Contains(flags, "p") {
		p.printf(" Process")
	}
	p.printf("\n")
	for _, s := range socks {
		if (s.proto == "tcp" && !tcp) || (s.proto == "udp" && !udp) {
			continue
		}
		state := "LISTEN"
		if s.proto == "udp" {
			state = "UNCONN"
		}
		p.printf("%-6s %-6s %-6d %-28s %-20s", s.proto, state, 0, s.local, "0.0.0.0:*")
		if strings.Contains(flags, "p") {
			p.printf(" users:((\"%s\",pid=%d,fd=6))", s.proc, s.pid)
		}
		p.printf("\n")
	}
	return 0
}
