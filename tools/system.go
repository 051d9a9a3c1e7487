package tools

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// systemTools reach the nodes themselves over SSH (and Wake-on-LAN).
func systemTools() []*Tool {
	return []*Tool{executeSSH(), getNodeTemperature(), getServiceStatus(), getNodeLogs(), restartService(), wakeNode()}
}

// unitRE is a systemd unit name; a leading '-' would read as an option.
var unitRE = regexp.MustCompile(`^[a-zA-Z0-9@_:.\\][a-zA-Z0-9@_:.\\-]{0,127}$`)

// sshNode checks that a node can be reached over SSH.
func sshNode(env *Env, node string) error {
	if err := checkNode(node); err != nil {
		return err
	}
	if env.SSH == nil {
		return errNoSSH
	}
	if !slices.Contains(env.SSHNodes, node) {
		return inputErrorf("node %q has no SSH access configured; known nodes: %s", node, strings.Join(env.SSHNodes, ", "))
	}
	return nil
}

// ---- execute_ssh ----

type ExecuteSSHInput struct {
	Node           string `json:"node" jsonschema:"node to run the command on"`
	Command        string `json:"command" jsonschema:"one command or a | pipeline of read-only commands, e.g. 'df -h' or 'journalctl -u pveproxy -n 20 --no-pager'; no ; && || redirections or $()"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"1-300; default SSH_TIMEOUT (30)"`
}

type CommandOutput struct {
	Node            string  `json:"node"`
	Command         string  `json:"command"`
	ExitCode        int     `json:"exit_code" jsonschema:"0 means success"`
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	Truncated       bool    `json:"truncated" jsonschema:"output was longer than the cap and was cut"`
	TimedOut        bool    `json:"timed_out"`
	DurationSeconds float64 `json:"duration_seconds"`
}

func executeSSH() *Tool {
	return define[ExecuteSSHInput, CommandOutput](spec{
		name: "execute_ssh", title: "Run a command on a node", tier: safety.Red,
		description: "Run a shell command on a cluster node over SSH. Read-only commands (uptime, df -h, free -m, systemctl status X, journalctl -u X -n 50 --no-pager, zpool status, ip addr, qm list, cat of non-secret files, with | head/grep/tail filters) run at once. Commands that change something wait for a person's approval; destructive ones (reboot, rm -rf, mkfs, dd, firewall flushes, pipes into a shell) are never run. Output is capped at 1 MiB per stream.",
		adjust: func(s *jsonschema.Schema) {
			nodeSchema(property(s, "node"))
			property(s, "command").MaxLength = ptr(4096)
			rangeSchema(property(s, "timeout_seconds"), 1, 300)
		},
	}, func(ctx context.Context, env *Env, in ExecuteSSHInput) (*Call, error) {
		if err := sshNode(env, in.Node); err != nil {
			return nil, err
		}
		if strings.TrimSpace(in.Command) == "" {
			return nil, inputErrorf("command is empty")
		}
		// What the approver reads must be exactly what runs. Control and format
		// characters (terminal escapes, carriage returns, newlines, bidi
		// overrides, zero-width marks) could hide or reorder the real command.
		if i := strings.IndexFunc(in.Command, hidesText); i >= 0 {
			return nil, inputErrorf("command contains an invisible or control character at byte %d; send one line of plain text", i)
		}
		// For the same reason a command carrying credentials is refused rather
		// than shown redacted: redaction would show the approver something else.
		if safety.RedactCommand(in.Command) != in.Command {
			return nil, inputErrorf("the command contains what looks like a credential (a password, token or key value); Jarvis does not send secrets in commands, and would have to hide it from the person approving")
		}
		timeout := env.SSHTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		if in.TimeoutSeconds > 0 {
			timeout = time.Duration(in.TimeoutSeconds) * time.Second
		}
		// The safety policy classifies the command and, when it changes
		// something, checks it against the protected resources by effect: a
		// guest it names is looked up here to find its node.
		return &Call{
			Target: safety.Target{Node: in.Node},
			Command: &safety.Command{Line: in.Command, Guests: func(vmids []int) (map[int]safety.GuestPlace, error) {
				return guestPlaces(ctx, env, vmids)
			}},
			Run: func(ctx context.Context, _ Progress) (any, error) {
				return runCommand(ctx, env, in.Node, in.Command, timeout)
			},
		}, nil
	})
}

// guestPlaces finds the nodes and kinds of the guests among vmids, with one
// look at the cluster; numbers that are no guest are left out.
func guestPlaces(ctx context.Context, env *Env, vmids []int) (map[int]safety.GuestPlace, error) {
	if env.PVE == nil {
		return nil, errors.New("no Proxmox API is configured")
	}
	resources, err := env.PVE.ClusterResources(ctx, "vm")
	if err != nil {
		return nil, err
	}
	out := map[int]safety.GuestPlace{}
	for _, r := range resources {
		if (r.Type == "qemu" || r.Type == "lxc") && slices.Contains(vmids, int(r.VMID)) {
			out[int(r.VMID)] = safety.GuestPlace{Node: r.Node, Kind: r.Type}
		}
	}
	return out, nil
}

// hidesText reports characters that can hide or reorder text for a reader: all
// control characters but tab, format characters (bidi overrides, zero-width
// marks) and line or paragraph separators.
func hidesText(r rune) bool {
	return r != '\t' && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}

func runCommand(ctx context.Context, env *Env, node, command string, timeout time.Duration) (CommandOutput, error) {
	// A command that changes something and whose end was not seen has an unknown outcome.
	changes := safety.ClassifyCommand(command, nil).Decision != safety.Allow
	what := fmt.Sprintf("the command `%s` on %s", command, node)
	lookFirst := fmt.Sprintf("Before retrying, check on node %s whether it took effect (get_node_logs, get_service_status or a read-only execute_ssh)", node)
	res, err := env.SSH.Run(ctx, node, command, timeout)
	if err != nil {
		return CommandOutput{}, sshRunError(err, res, changes, what, lookFirst)
	}
	if changes && res.TimedOut {
		return CommandOutput{}, &OutcomeUnknownError{What: what, Check: lookFirst,
			Why: fmt.Sprintf("%s was stopped at its %s timeout before it finished, so it may have taken effect in part or in full", what, timeout)}
	}
	return CommandOutput{Node: node, Command: command, ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr,
		Truncated: res.Truncated, TimedOut: res.TimedOut, DurationSeconds: round1(res.Duration.Seconds())}, nil
}

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
	var zones []string
	for _, z := range strings.Fields(ls.Stdout) {
		if zoneRE.MatchString(z) {
			zones = append(zones, z)
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

// ---- get_service_status ----

type ServiceInput struct {
	Node    string `json:"node" jsonschema:"node the service runs on"`
	Service string `json:"service" jsonschema:"systemd unit, e.g. pveproxy or pveproxy.service"`
}

type ServiceStatus struct {
	Node        string `json:"node"`
	Service     string `json:"service"`
	Description string `json:"description"`
	Active      string `json:"active" jsonschema:"active, inactive, failed, activating, …"`
	Sub         string `json:"sub" jsonschema:"running, dead, exited, …"`
	Loaded      string `json:"loaded" jsonschema:"loaded, not-found, masked"`
	Enabled     string `json:"enabled" jsonschema:"enabled, disabled, static, …"`
	Since       string `json:"since,omitempty" jsonschema:"when it entered the active state"`
	MainPID     int64  `json:"main_pid,omitempty"`
}

func serviceSchema(s *jsonschema.Schema) {
	nodeSchema(property(s, "node"))
	p := property(s, "service")
	p.Pattern = unitRE.String()
	p.MaxLength = ptr(128)
}

func checkUnit(unit string) error {
	if !unitRE.MatchString(unit) {
		return inputErrorf("service %q is not a systemd unit name (letters, digits, '@', '_', ':', '.', '-'; not starting with '-')", unit)
	}
	return nil
}

func getServiceStatus() *Tool {
	return define[ServiceInput, ServiceStatus](spec{
		name: "get_service_status", title: "Service status", tier: safety.Green,
		description: "State of one systemd service on a node: active/sub state, enabled, since when, main PID.",
		adjust:      serviceSchema,
	}, func(ctx context.Context, env *Env, in ServiceInput) (*Call, error) {
		if err := sshNode(env, in.Node); err != nil {
			return nil, err
		}
		if err := checkUnit(in.Service); err != nil {
			return nil, err
		}
		return read(safety.Target{Node: in.Node, Service: in.Service}, fmt.Sprintf("Read status of service %s on node %s", in.Service, in.Node),
			func(ctx context.Context) (any, error) { return serviceStatus(ctx, env, in.Node, in.Service) }), nil
	})
}

func serviceStatus(ctx context.Context, env *Env, node, unit string) (ServiceStatus, error) {
	cmd := sshexec.Command("systemctl", "show", unit, "--no-pager",
		"--property=Description,ActiveState,SubState,LoadState,UnitFileState,ActiveEnterTimestamp,MainPID")
	res, err := env.SSH.Run(ctx, node, cmd, 15*time.Second)
	if err != nil {
		return ServiceStatus{}, fmt.Errorf("reading service %s on %s: %w", unit, node, err)
	}
	if res.ExitCode != 0 {
		return ServiceStatus{}, fmt.Errorf("systemctl show %s on %s failed (exit %d): %s", unit, node, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	props := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	pid, _ := strconv.ParseInt(props["MainPID"], 10, 64)
	st := ServiceStatus{Node: node, Service: unit, Description: props["Description"], Active: props["ActiveState"],
		Sub: props["SubState"], Loaded: props["LoadState"], Enabled: props["UnitFileState"], Since: props["ActiveEnterTimestamp"], MainPID: pid}
	if st.Loaded == "not-found" {
		return st, inputErrorf("there is no service %q on node %s", unit, node)
	}
	return st, nil
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
			u := property(s, "unit")
			u.Pattern = unitRE.String()
			u.MaxLength = ptr(128)
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

// ---- restart_service ----

type RestartServiceInput struct {
	Node    string `json:"node" jsonschema:"node the service runs on"`
	Service string `json:"service" jsonschema:"systemd unit to restart, e.g. pveproxy"`
}

type RestartOut struct {
	Node    string `json:"node"`
	Service string `json:"service"`
	Active  string `json:"active" jsonschema:"state after the restart: active means it came back"`
	OK      bool   `json:"ok"`
}

func restartService() *Tool {
	return define[RestartServiceInput, RestartOut](spec{
		name: "restart_service", title: "Restart service", tier: safety.Red,
		description: "Restart one systemd service on a node, then check it is active again. Needs a person's approval; protected services are refused.",
		adjust:      serviceSchema,
	}, func(ctx context.Context, env *Env, in RestartServiceInput) (*Call, error) {
		if err := sshNode(env, in.Node); err != nil {
			return nil, err
		}
		if err := checkUnit(in.Service); err != nil {
			return nil, err
		}
		st, err := serviceStatus(ctx, env, in.Node, in.Service)
		if err != nil {
			return nil, err
		}
		// The plan names the unit's description, not its current state: an
		// approval must still match when the state has moved on meanwhile.
		effect := fmt.Sprintf("Restart service %s (%s) on node %s; whatever depends on it is interrupted briefly", in.Service, st.Description, in.Node)
		return &Call{Target: safety.Target{Node: in.Node, Service: in.Service}, Effect: effect,
			Run: func(ctx context.Context, _ Progress) (any, error) {
				res, err := env.SSH.Run(ctx, in.Node, sshexec.Command("systemctl", "restart", in.Service), 90*time.Second)
				lookFirst := fmt.Sprintf("Before retrying, check get_service_status for %s on node %s", in.Service, in.Node)
				if err != nil {
					return nil, sshRunError(err, res, true, fmt.Sprintf("the restart of %s on %s", in.Service, in.Node), lookFirst)
				}
				if res.TimedOut {
					return nil, &OutcomeUnknownError{What: "restart of " + in.Service, Check: lookFirst,
						Why: fmt.Sprintf("systemctl restart %s on %s did not finish within 90 s; systemd may still complete the restart", in.Service, in.Node)}
				}
				if res.ExitCode != 0 {
					return nil, fmt.Errorf("systemctl restart %s on %s failed (exit %d): %s", in.Service, in.Node, res.ExitCode, strings.TrimSpace(res.Stderr))
				}
				check, err := env.SSH.Run(ctx, in.Node, sshexec.Command("systemctl", "is-active", in.Service), 15*time.Second)
				if err != nil {
					return nil, &OutcomeUnknownError{What: "restart of " + in.Service, Cause: err, Check: lookFirst,
						Why: fmt.Sprintf("systemctl restart %s on %s finished, but the service's state afterwards could not be read", in.Service, in.Node)}
				}
				active := strings.TrimSpace(check.Stdout)
				out := RestartOut{Node: in.Node, Service: in.Service, Active: active, OK: active == "active"}
				if !out.OK {
					return nil, fmt.Errorf("%s on %s was restarted but is %q now; look at get_node_logs with unit %s", in.Service, in.Node, active, in.Service)
				}
				return out, nil
			}}, nil
	})
}
