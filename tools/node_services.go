package tools

// systemd services on a node: their status (GREEN) and restart_service (RED).

import (
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

// unitRE is a systemd unit name; a leading '-' would read as an option.
var unitRE = regexp.MustCompile(`^[a-zA-Z0-9@_:.\\][a-zA-Z0-9@_:.\\-]{0,127}$`)

func unitSchema(s *jsonschema.Schema) {
	s.Pattern = unitRE.String()
	s.MaxLength = ptr(128)
}

func checkUnit(unit string) error {
	if !unitRE.MatchString(unit) {
		return inputErrorf("service %q is not a systemd unit name (letters, digits, '@', '_', ':', '.', '-'; not starting with '-')", unit)
	}
	return nil
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
	unitSchema(property(s, "service"))
}

// checkService is serviceSchema's check at prepare time: the node is reachable
// over SSH and the service is a unit name.
func checkService(env *Env, node, unit string) error {
	if err := sshNode(env, node); err != nil {
		return err
	}
	return checkUnit(unit)
}

func getServiceStatus() *Tool {
	return define[ServiceInput, ServiceStatus](spec{
		name: "get_service_status", title: "Service status", tier: safety.Green,
		description: "State of one systemd service on a node: active/sub state, enabled, since when, main PID.",
		adjust:      serviceSchema,
	}, func(ctx context.Context, env *Env, in ServiceInput) (*Call, error) {
		if err := checkService(env, in.Node, in.Service); err != nil {
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
		if err := checkService(env, in.Node, in.Service); err != nil {
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
