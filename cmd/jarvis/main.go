// Command jarvis is an MCP server that lets AI assistants operate a Proxmox VE
// cluster behind a safety layer. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `jarvis — a safe MCP server for Proxmox VE

Usage:
  jarvis serve [--demo]        HTTP: /mcp (streamable MCP, bearer token), /api, console on PORT
  jarvis stdio [--demo]        MCP over stdin/stdout (Claude Desktop, Claude Code, VS Code)
  jarvis approvals [--all]     list approval requests waiting for a person
  jarvis approve ID            approve a pending request
  jarvis deny ID               refuse a pending request
  jarvis safety [kill-switch|read-only on|off]
                               show or set the live safety switches
  jarvis token create --name NAME --max-tier green|yellow|red [--ttl 30d] [--toolsets LIST]
  jarvis token list | jarvis token revoke ID
  jarvis rule create --for AGENT|operators --tool TOOL [--arg NAME=V1,V2]... [--trigger KIND]
                               standing approval: one caller, one RED tool, within a budget
  jarvis rule list [--all] | jarvis rule show|update|revoke ID
  jarvis notify test           send a test notification to each configured channel
  jarvis audit verify          check the audit log's hash chain
  jarvis migrate-store         move the SQLite state into an empty PostgreSQL database
  jarvis doctor                check configuration, cluster API, node names, token privileges, SSH
  jarvis healthcheck           exit 0 when the local server's /api/health answers (Docker HEALTHCHECK)
  jarvis version

The host commands (approvals … rule, audit) take --demo to work on the demo's state.
Every command answers --help. Configuration comes from the environment; see .env.example.
`

// demoNote is the --demo line of the host commands' help.
const demoNote = `
  --demo   use the demo's database and secret (what jarvis serve --demo and
           jarvis stdio --demo keep in ~/.local/state/jarvis/demo) instead of
           DB_PATH (or JARVIS_DATABASE_URL) and JWT_SECRET
`

// help is each command's own --help text. It needs no configuration.
var help = map[string]string{
	"serve": `Usage: jarvis serve [--demo]

Serves MCP over streamable HTTP at /mcp (agents send a bearer token from
jarvis token create), the operator console and API, and the live feed, on
JARVIS_LISTEN:PORT (default 127.0.0.1:4000).

  --demo   run on the built-in simulated cluster; needs no configuration
           (with JARVIS_CLUSTERS=home,lab, one simulated cluster per name)

Configuration comes from the environment; .env.example lists every variable.
jarvis doctor checks it.
`,
	"stdio": `Usage: jarvis stdio [--demo]

Speaks MCP over stdin/stdout, for a client that starts Jarvis itself (Claude
Desktop, Claude Code, VS Code). The session acts as the local operator with the
ceiling JARVIS_STDIO_MAX_TIER (default red). RED calls are confirmed in the
client's own dialog when it has one; otherwise approve them from another
terminal (jarvis approvals, jarvis approve ID) or in the console of jarvis serve.

  --demo   run on the built-in simulated cluster; needs no configuration
`,
	"approvals": `Usage: jarvis approvals [--all] [--demo]

Lists the approval requests waiting for a person: id, caller, tool, expiry
and the plan. Needs the database (DB_PATH or JARVIS_DATABASE_URL) and
JWT_SECRET as the server has them.

  --all    show decided and expired requests too
` + demoNote,
	"approve": `Usage: jarvis approve ID [--demo]

Approves a pending request (ids look like apr_0123456789abcdef; see jarvis
approvals). The caller's waiting call then runs, or its retry with approval_id
does. Needs the database (DB_PATH or JARVIS_DATABASE_URL) and JWT_SECRET as
the server has them.
` + demoNote,
	"deny": `Usage: jarvis deny ID [--demo]

Refuses a pending request; the call does not run. Needs the database (DB_PATH
or JARVIS_DATABASE_URL) and JWT_SECRET as the server has them.
` + demoNote,
	"safety": `Usage: jarvis safety [kill-switch|read-only on|off] [--demo]

Without arguments, shows the live safety switches. kill-switch on stops every
call that is not a GREEN read; read-only on stops every change. A switch holds
at once for every jarvis process on the same database, calls already waiting
for an approval included.
` + demoNote,
	"rule": ruleHelp + demoNote,
	"notify": `Usage: jarvis notify test

Sends one test message to each notification channel configured with
JARVIS_NOTIFY_* (ntfy, webhook, e-mail), at once, and says for each whether it
arrived or why not and what to fix. Exits 1 when one failed or none is set up.
`,
	"token": `Usage: jarvis token create --name NAME --max-tier green|yellow|red [--ttl 30d] [--toolsets LIST] [--demo]
       jarvis token list [--demo]
       jarvis token revoke ID [--demo]

Agent tokens for /mcp. The token is printed once on stdout; --max-tier is the
highest tier the agent may use; --ttl is its lifetime (e.g. 12h, 30d; 1m..366d);
--toolsets gives the token its own toolsets (e.g. cluster,power or all) instead
of the server's JARVIS_TOOLSETS.
Needs the database (DB_PATH or JARVIS_DATABASE_URL) and JWT_SECRET as the
server has them (an SQLite file is created if it does not exist yet).
` + demoNote,
	"audit": `Usage: jarvis audit verify [--demo]

Checks the audit log: every row's hash chain and seal, the head, and the anchor
file (beside the SQLite file, or JARVIS_AUDIT_ANCHOR: this replica's own on
PostgreSQL). Exits 1 and says where it broke when it did not hold.
` + demoNote,
	"doctor": `Usage: jarvis doctor

Checks the configuration (all problems at once), the database and the audit log,
the Proxmox API, the API token's rights against the tools it must serve, the node
names against the cluster, and an SSH login to each node with the pinned host
keys. One line per check; exits 1 if any check failed.
`,
	"healthcheck": `Usage: jarvis healthcheck

Asks the local server (127.0.0.1:PORT) for /api/health: exits 0 while it is up,
printing any degradation (an unreachable cluster, say), and 1 when it is down
or does not answer. Made for Docker's HEALTHCHECK; needs no secrets.
`,
	"version": "Usage: jarvis version\n\nPrints the version.\n",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "jarvis: %v\n\n%s", err, usage)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "jarvis: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	if cmd == "help" && len(rest) > 0 {
		cmd, rest = rest[0], []string{"--help"}
	}
	if text, ok := help[cmd]; ok && wantsHelp(rest) {
		fmt.Fprint(stdout, text)
		return nil
	}
	// The host commands find the demo's state with --demo, wherever it is given.
	demo, rest := takeFlag(rest, "--demo")
	switch cmd {
	case "serve", "stdio":
		if len(rest) > 0 {
			return usageError{fmt.Sprintf("%s: unexpected argument %q (see jarvis %s --help)", cmd, rest[0], cmd)}
		}
		if cmd == "serve" {
			return runServe(ctx, demo, stderr)
		}
		return runStdio(ctx, demo, stderr)
	case "approvals":
		return runApprovals(ctx, demo, rest, stdout)
	case "approve", "deny":
		return runDecide(ctx, demo, cmd == "approve", rest, stdout)
	case "safety":
		return runSafety(ctx, demo, rest, stdout)
	case "token":
		return runToken(ctx, demo, rest, stdout)
	case "rule":
		return runRule(ctx, demo, rest, stdout)
	case "notify":
		if len(rest) != 1 || rest[0] != "test" || demo {
			return usageError{"usage: jarvis notify test (see jarvis notify --help)"}
		}
		cfg, err := LoadConfig(true)
		if err != nil {
			return err
		}
		return runNotifyTest(ctx, &cfg.NotifyEnv, cfg.consoleURL(), stdout, stderr)
	case "audit":
		return runAudit(ctx, demo, rest, stdout)
	case "migrate-store":
		return runMigrateStore(ctx, demo, rest, stdout)
	case "doctor", "healthcheck":
		if len(rest) > 0 || demo {
			return usageError{fmt.Sprintf("%s takes no arguments (see jarvis %s --help)", cmd, cmd)}
		}
		if cmd == "doctor" {
			return runDoctor(ctx, stdout)
		}
		return runHealthcheck(ctx, stdout)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "jarvis", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// wantsHelp reports whether a command's arguments ask for its help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "--help", "-help":
			return true
		}
	}
	return false
}

// takeFlag removes a boolean flag (--name or -name) from args and reports
// whether it was there.
func takeFlag(args []string, name string) (bool, []string) {
	found := false
	var rest []string
	for _, a := range args {
		if a == name || a == strings.TrimPrefix(name, "-") {
			found = true
			continue
		}
		rest = append(rest, a)
	}
	return found, rest
}
