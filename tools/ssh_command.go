package tools

// execute_ssh, and the SSH access every node tool checks first.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/jarvis-homelab/jarvis/safety"
	sshexec "github.com/jarvis-homelab/jarvis/tools/ssh"
)

// errNoSSH is returned by SSH tools when SSH is not configured.
var errNoSSH = errors.New("SSH is not configured: set SSH_KEY_PATH and SSH_KNOWN_HOSTS (see .env.example) to use the node tools")

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
		// Read-only commands are YELLOW (ARCHITECTURE.md, "SSH commands"): a
		// yellow ceiling may run them, and the policy refuses what is above it.
		minTier:     safety.Yellow,
		description: "Run a shell command on a cluster node over SSH. Read-only commands (uptime, df -h, free -m, systemctl status X, journalctl -u X -n 50 --no-pager, zpool status, ip addr, qm list, cat of non-secret files, with | head/grep/tail filters) run at once. Commands that change something are RED: they wait for a person's approval, and a caller whose ceiling is below RED is refused; destructive ones (reboot, rm -rf, mkfs, dd, firewall flushes, pipes into a shell) are never run. Output is capped at 1 MiB per stream.",
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
	res, err := env.SSH.Run(ctx, node, command, timeout)
	if err == nil && !res.TimedOut {
		return commandOutput(node, command, res), nil
	}
	// A command that changes something and whose end was not seen has an unknown
	// outcome. Only then is it worth classifying again.
	changes := safety.ClassifyCommand(command, nil).Decision != safety.Allow
	what := fmt.Sprintf("the command `%s` on %s", command, node)
	lookFirst := fmt.Sprintf("Before retrying, check on node %s whether it took effect (get_node_logs, get_service_status or a read-only execute_ssh)", node)
	if err != nil {
		return CommandOutput{}, sshRunError(err, res, changes, what, lookFirst)
	}
	if changes {
		return CommandOutput{}, &OutcomeUnknownError{What: what, Check: lookFirst,
			Why: fmt.Sprintf("%s was stopped at its %s timeout before it finished, so it may have taken effect in part or in full", what, timeout)}
	}
	return commandOutput(node, command, res), nil
}

func commandOutput(node, command string, res *sshexec.Result) CommandOutput {
	return CommandOutput{Node: node, Command: command, ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr,
		Truncated: res.Truncated, TimedOut: res.TimedOut, DurationSeconds: round1(res.Duration.Seconds())}
}
