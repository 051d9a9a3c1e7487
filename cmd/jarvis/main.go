// Command jarvis is an MCP server that lets AI assistants operate a Proxmox VE
// cluster behind a safety layer. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
  jarvis token create --name NAME --max-tier green|yellow|red [--ttl 30d]
  jarvis token list | jarvis token revoke ID
  jarvis audit verify          check the audit log's hash chain
  jarvis doctor                check configuration, database and cluster API
  jarvis healthcheck           exit 0 when the local server's /api/health answers (Docker HEALTHCHECK)
  jarvis version

Configuration comes from the environment; see .env.example.
`

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
	switch cmd {
	case "serve":
		demo, err := demoFlag("serve", rest)
		if err != nil {
			return err
		}
		return runServe(ctx, demo, stderr)
	case "stdio":
		demo, err := demoFlag("stdio", rest)
		if err != nil {
			return err
		}
		return runStdio(ctx, demo, stderr)
	case "approvals":
		return runApprovals(ctx, rest, stdout)
	case "approve", "deny":
		return runDecide(ctx, cmd == "approve", rest, stdout)
	case "safety":
		return runSafety(ctx, rest, stdout)
	case "token":
		return runToken(ctx, rest, stdout)
	case "audit":
		return runAudit(ctx, rest, stdout)
	case "doctor":
		return runDoctor(ctx, stdout)
	case "healthcheck":
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

func demoFlag(name string, args []string) (bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	demo := fs.Bool("demo", false, "run against the built-in simulated cluster")
	if err := fs.Parse(args); err != nil {
		return false, usageError{fmt.Sprintf("%s: %v", name, err)}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	return *demo, nil
}
