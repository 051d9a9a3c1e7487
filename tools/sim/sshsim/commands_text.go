package sshsim

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// command is one simulated program; it returns its exit status.
type command func(p *proc) int

// commands maps program names to their simulation; filled in init because
// timeout looks commands up in it.
var commands map[string]command

func init() {
	commands = map[string]command{
		// text filters and small utilities
		"cat": cmdCat, "head": cmdHead, "tail": cmdTail, "grep": cmdGrep, "wc": cmdWc,
		"sort": cmdSort, "uniq": cmdUniq, "echo": cmdEcho, "true": func(*proc) int { return 0 },
		"false": func(*proc) int { return 1 }, "sleep": cmdSleep, "yes": cmdYes, "seq": cmdSeq, "timeout": cmdTimeout,
		// system information
		"hostname": cmdHostname, "uptime": cmdUptime, "date": cmdDate, "uname": cmdUname,
		"who": cmdWho, "nproc": cmdNproc, "free": cmdFree, "df": cmdDf, "lsblk": cmdLsblk, "lscpu": cmdLscpu,
		"ps": cmdPs, "top": cmdTop, "sensors": cmdSensors, "mount": cmdMount, "findmnt": cmdFindmnt,
		"dmesg": cmdDmesg, "journalctl": cmdJournalctl, "systemctl": cmdSystemctl, "ip": cmdIP, "ss": cmdSs,
		// storage and Proxmox VE
		"zpool": cmdZpool, "zfs": cmdZfs, "lvs": cmdLvs, "vgs": cmdVgs, "pvs": cmdPvs, "smartctl": cmdSmartctl,
		"pvecm": cmdPvecm, "qm": cmdQm, "pct": cmdPct, "pvesh": cmdPvesh, "pveversion": cmdPveversion,
	}
}

// readLines reads all of stdin (or the named files) as lines.
func (p *proc) input(files []string) ([]string, int) {
	var data strings.Builder
	code := 0
	if len(files) == 0 {
		b, _ := io.ReadAll(p.stdin)
		data.Write(b)
	}
	for _, f := range files {
		if f == "-" {
			b, _ := io.ReadAll(p.stdin)
			data.Write(b)
			continue
		}
		content, ok := p.node.files()[f]
		if !ok {
			p.errorf("%s: %s: No such file or directory", p.args[0], f)
			code = 1
			continue
		}
		data.WriteString(content)
	}
	return splitLines(data.String()), code
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func (p *proc) printLines(lines []string) {
	for _, l := range lines {
		p.stdout.WriteString(l)
		p.stdout.WriteByte('\n')
	}
}

func (p *proc) printf(format string, a ...any) { fmt.Fprintf(p.stdout, format, a...) }

func cmdCat(p *proc) int {
	files := p.args[1:]
	if len(files) == 0 {
		_, _ = io.Copy(p.stdout, p.stdin)
		return 0
	}
	code := 0
	all := p.node.files()
	for _, f := range files {
		if f == "-" {
			_, _ = io.Copy(p.stdout, p.stdin)
			continue
		}
		content, ok := all[f]
		if !ok {
			p.errorf("cat: %s: No such file or directory", f)
			code = 1
			continue
		}
		p.stdout.WriteString(content)
	}
	return code
}

// lineCount parses the -n N / -N / -nN forms of head and tail.
func lineCount(p *proc) (count int, files []string, ok bool) {
	count = 10
	args := p.args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		switch {
		case a == "-n" || a == "--lines":
			if i+1 >= len(args) {
				p.errorf("%s: option requires an argument -- 'n'", p.args[0])
				return 0, nil, false
			}
			i++
			v = args[i]
		case strings.HasPrefix(a, "--lines="):
			v = strings.TrimPrefix(a, "--lines=")
		case strings.HasPrefix(a, "-n"):
			v = a[2:]
		case len(a) > 1 && a[0] == '-' && a[1] >= '0' && a[1] <= '9':
			v = a[1:]
		case a == "-" || !strings.HasPrefix(a, "-"):
			files = append(files, a)
			continue
		default:
			p.errorf("%s: invalid option -- '%s'", p.args[0], strings.TrimLeft(a, "-"))
			return 0, nil, false
		}
		n, err := strconv.Atoi(strings.TrimPrefix(v, "+"))
		if err != nil || n < 0 {
			p.errorf("%s: invalid number of lines: '%s'", p.args[0], v)
			return 0, nil, false
		}
		count = n
	}
	return count, files, true
}

// cmdHead streams, so `yes | head -n 3` ends as soon as it has three lines.
func cmdHead(p *proc) int {
	count, files, ok := lineCount(p)
	if !ok {
		return 1
	}
	if len(files) > 0 {
		lines, code := p.input(files)
		p.printLines(lines[:min(count, len(lines))])
		return code
	}
	sc := bufio.NewScanner(p.stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for i := 0; i < count && sc.Scan(); i++ {
		p.stdout.WriteString(sc.Text())
		p.stdout.WriteByte('\n')
	}
	return 0
}

func cmdTail(p *proc) int {
	if slices.Contains(p.args, "-f") || slices.Contains(p.args, "-F") {
		p.errorf("tail: following is not supported here")
		return 1
	}
	count, files, ok := lineCount(p)
	if !ok {
		return 1
	}
	lines, code := p.input(files)
	p.printLines(lines[max(0, len(lines)-count):])
	return code
}

func cmdGrep(p *proc) int {
	var ignoreCase, invert, countOnly, quiet bool
	var pattern string
	havePattern := false
	var files []string
	args := p.args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-e" && i+1 < len(args):
			i++
			pattern, havePattern = args[i], true
		case a == "--":
			files = append(files, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, f := range a[1:] {
				switch f {
				case 'i':
					ignoreCase = true
				case 'v':
					invert = true
				case 'c':
					countOnly = true
				case 'q':
					quiet = true
				case 'F', 'E', 'w', 'h':
					// fixed-string matching is all the simulator does
				default:
					p.errorf("grep: invalid option -- '%c'", f)
					return 2
				}
			}
		case !havePattern:
			pattern, havePattern = a, true
		default:
			files = append(files, a)
		}
	}
	if !havePattern {
		p.errorf("Usage: grep [OPTION]... PATTERNS [FILE]...")
		return 2
	}
	lines, code := p.input(files)
	if code != 0 {
		return 2
	}
	needle := pattern
	if ignoreCase {
		needle = strings.ToLower(needle)
	}
	matched := 0
	for _, l := range lines {
		hay := l
		if ignoreCase {
			hay = strings.ToLower(l)
		}
		if strings.Contains(hay, needle) != invert {
			matched++
			if !countOnly && !quiet {
				p.printf("%s\n", l)
			}
		}
	}
	if countOnly && !quiet {
		p.printf("%d\n", matched)
	}
	return boolCode(matched > 0)
}

// cmdWc prints counts as GNU wc does: a file's name after its counts, a
// total line for several files, and every count right-aligned to one width.
func cmdWc(p *proc) int {
	var flags string
	var files []string
	for _, a := range p.args[1:] {
		if strings.HasPrefix(a, "-") && a != "-" {
			flags += a[1:]
		} else {
			files = append(files, a)
		}
	}
	if flags == "" {
		flags = "lwc"
	}
	var kinds []byte
	for _, f := range []byte("lwc") {
		if strings.IndexByte(flags, f) >= 0 {
			kinds = append(kinds, f)
		}
	}
	type counted struct {
		name   string
		counts map[byte]int
	}
	count := func(name, data string) counted {
		return counted{name, map[byte]int{'l': strings.Count(data, "\n"), 'w': len(strings.Fields(data)), 'c': len(data)}}
	}
	var rows []counted
	code := 0
	all := p.node.files()
	// wc sizes its columns from the inputs: regular files by their total
	// size (zero for /proc and /sys), anything else (stdin) by 7 digits.
	minWidth, regularBytes := 1, 0
	if len(files) == 0 {
		b, _ := io.ReadAll(p.stdin)
		rows = append(rows, count("", string(b)))
		minWidth = 7
	}
	for _, f := range files {
		if f == "-" {
			b, _ := io.ReadAll(p.stdin)
			rows = append(rows, count(f, string(b)))
			minWidth = 7
			continue
		}
		content, ok := all[f]
		if !ok {
			p.errorf("wc: %s: No such file or directory", f)
			code = 1
			continue
		}
		rows = append(rows, count(f, content))
		if !strings.HasPrefix(f, "/proc/") && !strings.HasPrefix(f, "/sys/") {
			regularBytes += len(content)
		}
	}
	if len(rows) > 1 {
		total := counted{"total", map[byte]int{}}
		for _, r := range rows {
			for _, k := range kinds {
				total.counts[k] += r.counts[k]
			}
		}
		rows = append(rows, total)
	}
	width := max(len(strconv.Itoa(regularBytes)), minWidth)
	if len(kinds) == 1 && len(files) <= 1 {
		width = 1 // a single count of a single input is never padded
	}
	for _, r := range rows {
		fields := make([]string, 0, len(kinds)+1)
		for _, k := range kinds {
			fields = append(fields, fmt.Sprintf("%*d", width, r.counts[k]))
		}
		if r.name != "" {
			fields = append(fields, r.name)
		}
		p.printf("%s\n", strings.Join(fields, " "))
	}
	return code
}

func cmdSort(p *proc) int {
	var reverse, numeric, unique bool
	var files []string
	for _, a := range p.args[1:] {
		if strings.HasPrefix(a, "-") && a != "-" {
			reverse = reverse || strings.Contains(a, "r")
			numeric = numeric || strings.Contains(a, "n") || strings.Contains(a, "h")
			unique = unique || strings.Contains(a, "u")
		} else {
			files = append(files, a)
		}
	}
	lines, code := p.input(files)
	slices.SortStableFunc(lines, func(a, b string) int {
		if numeric {
			fa, _ := strconv.ParseFloat(firstField(a), 64)
			fb, _ := strconv.ParseFloat(firstField(b), 64)
			if fa != fb {
				if fa < fb {
					return -1
				}
				return 1
			}
		}
		return strings.Compare(a, b)
	})
	if reverse {
		slices.Reverse(lines)
	}
	if unique {
		lines = slices.Compact(lines)
	}
	p.printLines(lines)
	return code
}

func firstField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func cmdUniq(p *proc) int {
	count := slices.Contains(p.args[1:], "-c")
	lines, code := p.input(nil)
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && lines[j] == lines[i] {
			j++
		}
		if count {
			p.printf("%7d %s\n", j-i, lines[i])
		} else {
			p.printf("%s\n", lines[i])
		}
		i = j
	}
	return code
}

func cmdEcho(p *proc) int {
	args := p.args[1:]
	newline := true
	if len(args) > 0 && args[0] == "-n" {
		newline, args = false, args[1:]
	}
	p.stdout.WriteString(strings.Join(args, " "))
	if newline {
		p.stdout.WriteByte('\n')
	}
	return 0
}

// cmdSleep waits, but stops when the session is closed or the remote
// timeout fires (its context ends), as a killed process would.
func cmdSleep(p *proc) int {
	if len(p.args) != 2 {
		p.errorf("sleep: missing operand")
		return 1
	}
	d, err := parseSeconds(p.args[1])
	if err != nil {
		p.errorf("sleep: invalid time interval '%s'", p.args[1])
		return 1
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-p.ctx.Done():
		return 143 // SIGTERM
	}
}

// cmdYes writes until its reader goes away or the command is stopped.
func cmdYes(p *proc) int {
	line := "y"
	if len(p.args) > 1 {
		line = strings.Join(p.args[1:], " ")
	}
	line += "\n"
	for p.ctx.Err() == nil {
		if _, err := p.stdout.WriteString(line); err != nil {
			return 141 // SIGPIPE
		}
	}
	return 143
}

func cmdSeq(p *proc) int {
	nums := make([]int, 0, 3)
	for _, a := range p.args[1:] {
		v, err := strconv.Atoi(a)
		if err != nil {
			p.errorf("seq: invalid floating point argument: '%s'", a)
			return 1
		}
		nums = append(nums, v)
	}
	first, step, last := 1, 1, 0
	switch len(nums) {
	case 1:
		last = nums[0]
	case 2:
		first, last = nums[0], nums[1]
	case 3:
		first, step, last = nums[0], nums[1], nums[2]
	default:
		p.errorf("seq: missing operand")
		return 1
	}
	if step == 0 {
		p.errorf("seq: invalid Zero increment value: '0'")
		return 1
	}
	for i := first; (step > 0 && i <= last) || (step < 0 && i >= last); i += step {
		if i%4096 == 0 && p.ctx.Err() != nil {
			return 143
		}
		if _, err := p.stdout.WriteString(strconv.Itoa(i) + "\n"); err != nil {
			return 141
		}
	}
	return 0
}
