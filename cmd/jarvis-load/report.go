package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Machine is where the numbers were measured.
type Machine struct {
	CPUs        int    `json:"cpus"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	CPUModel    string `json:"cpu_model"`
	MemTotalKiB int64  `json:"mem_total_kib,omitempty"`
	LoadAvg     string `json:"load_average,omitempty"` // before the run: others' work on a shared machine
	GoVersion   string `json:"go_version"`             // of this tool
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUModel: "unknown", GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.Join(strings.Fields(v), " ")
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotalKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// writeSummary prints the summary: one "key  value" line each, keys fixed, so
// runs can be compared line by line; or JSON.
func writeSummary(w io.Writer, s *Summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	var b strings.Builder
	line := func(key, format string, args ...any) {
		fmt.Fprintf(&b, "%-18s %s\n", key, fmt.Sprintf(format, args...))
	}
	skipped := func(key, what string) bool {
		if why, ok := s.Skipped[what]; ok {
			line(key, "skipped: %s", why)
			return true
		}
		return false
	}
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	memory := func(prefix string, m Memory) {
		if !skipped(prefix+"_rss_mib", "memory") {
			line(prefix+"_rss_mib", "%.1f (VmHWM %.1f, after %gs idle)", mib(m.RSSKiB), mib(m.HWMKiB), m.AfterS)
		}
		if !skipped(prefix+"_goroutines", "goroutines") {
			line(prefix+"_goroutines", "%d", m.Goroutines)
		}
	}

	b.WriteString("jarvis-load summary\n")
	line("command", "%s", s.Command)
	mc := s.Machine
	line("machine", "%d CPUs, %s/%s, %s, %.1f GiB memory, %s, load average %s before the run", mc.CPUs, mc.OS, mc.Arch, mc.CPUModel, float64(mc.MemTotalKiB)/(1<<20), mc.GoVersion, mc.LoadAvg)
	line("target", "%s", s.Target)
	line("url", "%s (pid %d)", s.URL, s.PID)
	if !skipped("startup_ms", "startup") {
		line("startup_ms", "%.1f (exec to /api/health %.1f, then initialize + tools/list %.1f; the token is made in between and not counted)",
			s.StartupMS, s.HealthMS, s.FirstListMS)
		line("token_ms", "%.1f (jarvis token create --demo)", s.TokenMS)
	} else {
		line("first_list_ms", "%.1f (initialize + tools/list)", s.FirstListMS)
	}
	line("tools", "%d", s.Tools)
	memory("idle", s.Idle)

	l := s.Load
	ending := "abandoned without DELETE"
	if l.Closed {
		ending = "closed with DELETE"
	}
	line("load", "%s over %d sessions of %d agents (protocol %s) at concurrency %d, sessions %s", l.Tool, l.Sessions, l.Agents, l.Protocol, l.Concurrency, ending)
	line("calls", "%d (ok %d, errors %d)", l.Calls, l.OK, l.Errors)
	for _, e := range l.ErrorKinds {
		line("error", "%d× %s", e.Count, e.Error)
	}
	line("calls_per_second", "%.1f (%.2f s)", l.CallsPerSec, l.Seconds)
	line("latency_ms", "p50 %.2f  p90 %.2f  p99 %.2f  max %.2f", l.P50MS, l.P90MS, l.P99MS, l.MaxMS)
	line("session_open_ms", "p50 %.2f  p99 %.2f", l.OpenP50MS, l.OpenP99MS)
	if l.ServerCPUS > 0 && l.OK > 0 {
		line("cpu_s", "server %.2f (%.3f ms a call), this tool %.2f", l.ServerCPUS, 1000*l.ServerCPUS/float64(l.OK), l.ClientCPUS)
	} else {
		line("cpu_s", "server unknown (no pid), this tool %.2f", l.ClientCPUS)
	}
	memory("after", s.After)
	if !skipped("settled_rss_mib", "settled") {
		memory("settled", s.Settled)
	}
	if s.StopMS > 0 {
		line("stop_ms", "%.1f (SIGTERM to exit)", s.StopMS)
	}
	// Anything skipped that has no line of its own.
	var other []string
	for what, why := range s.Skipped {
		switch what {
		case "memory", "goroutines", "startup", "settled":
		default:
			other = append(other, what+": "+why)
		}
	}
	sort.Strings(other)
	for _, o := range other {
		line("skipped", "%s", o)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
