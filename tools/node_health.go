package tools

// GREEN reads of how a node is doing, over SSH: its temperatures and its journal.

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// ---- get_node_temperature ----

type Temperature struct {
	Sensor  string  `json:"sensor" jsonschema:"thermal zone type or sensors label, e.g. x86_pkg_temp, Core 0"`
	Source  string  `json:"source" jsonschema:"thermal_zone or sensors"`
	Celsius float64 `json:"celsius" jsonschema:"degrees Celsius"`
}

type TemperatureOut struct {
	Node         string        `json:"node"`
	MaxCelsius   float64       `json:"max_celsius" jsonschema:"hottest reading, degrees Celsius"`
	Temperatures []Temperature `json:"temperatures"`
}

func getNodeTemperature() *Tool {
	return define[NodeInput, TemperatureOut](spec{
		name: "get_node_temperature", title: "Node temperatures", tier: safety.Green,
		description: "CPU and board temperatures of a node in degrees Celsius, from the kernel's thermal zones and lm-sensors.",
		adjust:      func(s *jsonschema.Schema) { nodeSchema(property(s, "node")) },
	}, func(ctx context.Context, env *Env, in NodeInput) (*Call, error) {
		if err := sshNode(env, in.Node); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node}, "Read temperatures of node "+in.Node, func(ctx context.Context) (any, error) {
			return readTemperatures(ctx, env, in.Node)
		}), nil
	})
}

var zoneRE = regexp.MustCompile(`^thermal_zone[0-9]{1,3}$`)

func readTemperatures(ctx context.Context, env *Env, node string) (TemperatureOut, error) {
	out := TemperatureOut{Node: node, Temperatures: []Temperature{}}
	ls, err := env.SSH.Run(ctx, node, sshexec.Command("ls", "/sys/class/thermal"), 15*time.Second)
	if err != nil {
		return out, fmt.Errorf("listing thermal zones on %s: %w", node, err)
	}
	var files []string
	for _, z := range strings.Fields(ls.Stdout) {
		if zoneRE.MatchString(z) {
			files = append(files, "/sys/class/thermal/"+z+"/type", "/sys/class/thermal/"+z+"/temp")
		}
	}
	if len(files) > 0 {
		cat, err := env.SSH.Run(ctx, node, sshexec.Command(append([]string{"cat"}, files...)...), 15*time.Second)
		if err == nil {
			lines := strings.Split(strings.TrimSpace(cat.Stdout), "\n")
			for i := 0; i+1 < len(lines); i += 2 {
				milli, err := strconv.ParseFloat(strings.TrimSpace(lines[i+1]), 64)
				if err != nil {
					continue
				}
				out.Temperatures = append(out.Temperatures, Temperature{Sensor: strings.TrimSpace(lines[i]), Source: "thermal_zone", Celsius: round1(milli / 1000)})
			}
		}
	}
	if s, err := env.SSH.Run(ctx, node, "sensors", 15*time.Second); err == nil && s.ExitCode == 0 {
		out.Temperatures = append(out.Temperatures, parseSensors(s.Stdout)...)
	}
	if len(out.Temperatures) == 0 {
		return out, fmt.Errorf("node %s reports no temperatures (no thermal zones, and lm-sensors is not installed or found nothing)", node)
	}
	for _, t := range out.Temperatures {
		if t.Celsius > out.MaxCelsius {
			out.MaxCelsius = t.Celsius
		}
	}
	return out, nil
}

var sensorsLineRE = regexp.MustCompile(`^([^:]{1,64}):\s+\+?(-?[0-9]+(?:\.[0-9]+)?)\s*°?C`)

// parseSensors reads lm-sensors' text output ("Core 0:  +45.0°C  (high = …)").
func parseSensors(text string) []Temperature {
	var out []Temperature
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		m := sensorsLineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		c, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		out = append(out, Temperature{Sensor: strings.TrimSpace(m[1]), Source: "sensors", Celsius: round1(c)})
	}
	return out
}

// ---- get_node_logs ----

type LogsInput struct {
	Node     string `json:"node" jsonschema:"node to read the journal of"`
	Unit     string `json:"unit,omitempty" jsonschema:"only this systemd unit, e.g. pveproxy"`
	Since    string `json:"since,omitempty" jsonschema:"start time: '1 hour ago', 'today', 'yesterday' or 'YYYY-MM-DD HH:MM:SS'"`
	Lines    int    `json:"lines,omitempty" jsonschema:"how many of the newest lines (1-1000, default 100)"`
	Priority string `json:"priority,omitempty" jsonschema:"only this priority and more severe: emerg, alert, crit, err, warning, notice, info, debug"`
}

type LogsOut struct {
	Node      string   `json:"node"`
	Unit      string   `json:"unit,omitempty"`
	Lines     []string `json:"lines"`
	Truncated bool     `json:"truncated"`
}

var sinceRE = regexp.MustCompile(`^([0-9]{1,4} (second|minute|hour|day|week)s? ago|today|yesterday|[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?)$`)

func getNodeLogs() *Tool {
	return define[LogsInput, LogsOut](spec{
		name: "get_node_logs", title: "Node logs", tier: safety.Green,
		description: "The newest lines of a node's systemd journal, optionally for one unit, since a time, and at or above a priority. The command is built by Jarvis, not by the caller.",
		adjust: func(s *jsonschema.Schema) {
			nodeSchema(property(s, "node"))
			unitSchema(property(s, "unit"))
			property(s, "since").Pattern = sinceRE.String()
			rangeSchema(property(s, "lines"), 1, 1000)
			enumSchema(property(s, "priority"), "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
		},
	}, func(ctx context.Context, env *Env, in LogsInput) (*Call, error) {
		if err := sshNode(env, in.Node); err != nil {
			return nil, err
		}
		if in.Unit != "" {
			if err := checkUnit(in.Unit); err != nil {
				return nil, err
			}
		}
		if in.Since != "" && !sinceRE.MatchString(in.Since) {
			return nil, inputErrorf("since %q: use '1 hour ago', 'today', 'yesterday' or 'YYYY-MM-DD HH:MM:SS'", in.Since)
		}
		if in.Lines == 0 {
			in.Lines = 100
		}
		argv := []string{"journalctl", "--no-pager", "-n", strconv.Itoa(in.Lines)}
		if in.Unit != "" {
			argv = append(argv, "-u", in.Unit)
		}
		if in.Since != "" {
			argv = append(argv, "--since", in.Since)
		}
		if in.Priority != "" {
			argv = append(argv, "-p", in.Priority)
		}
		return read(safety.Target{Node: in.Node, Service: in.Unit}, "Read the journal of node "+in.Node, func(ctx context.Context) (any, error) {
			res, err := env.SSH.Run(ctx, in.Node, sshexec.Command(argv...), 30*time.Second)
			if err != nil {
				return nil, fmt.Errorf("reading the journal of %s: %w", in.Node, err)
			}
			if res.ExitCode != 0 {
				return nil, fmt.Errorf("journalctl on %s failed (exit %d): %s", in.Node, res.ExitCode, strings.TrimSpace(res.Stderr))
			}
			out := LogsOut{Node: in.Node, Unit: in.Unit, Lines: []string{}, Truncated: res.Truncated}
			for _, l := range strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n") {
				if l != "" {
					out.Lines = append(out.Lines, l)
				}
			}
			return out, nil
		}), nil
	})
}
