#!/usr/bin/env bash
# Checks the README's Claude Code commands with the real CLI (pinned in
# .ci/claude-code/): `claude mcp add` for stdio and for HTTP with a bearer
# header, then `claude mcp list`, which starts or connects to each server and
# reports its health. Needs no Anthropic account; talks only to 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
serve_pid=""
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root/.ci/claude-code" && npm ci --no-audit --no-fund --loglevel=error)
claude="$root/.ci/claude-code/node_modules/.bin/claude"
"$claude" --version
go build -o "$work/jarvis" "$root/cmd/jarvis"

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export HOME="$work/home" DB_PATH="$work/jarvis.db" JWT_SECRET="claude-code-check-secret-0123456789" JARVIS_PASSWORD="claude-code-check-pw"
mkdir -p "$HOME" "$work/project"
PORT="$port" "$work/jarvis" serve --demo 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1 100); do
	PORT="$port" "$work/jarvis" healthcheck >/dev/null 2>&1 && break
	sleep 0.1
done
token=$("$work/jarvis" token create --name claude-code --max-tier yellow --ttl 1d 2>/dev/null)

cd "$work/project"
"$claude" mcp add jarvis -- "$work/jarvis" stdio --demo
"$claude" mcp add --transport http jarvis-http "http://127.0.0.1:$port/mcp" --header "Authorization: Bearer $token"
"$claude" mcp add --transport http jarvis-wrong-token "http://127.0.0.1:$port/mcp" --header "Authorization: Bearer not-a-token"
list=$("$claude" mcp list 2>&1)
echo "$list"

pass=0 fail=0
expect() { # name, pattern
	if grep -E "^$1: .*$2" <<<"$list" >/dev/null; then pass=$((pass + 1)); else echo "claude-code: $1 did not match /$2/"; fail=$((fail + 1)); fi
}
expect jarvis "Connected"
expect jarvis-http "Connected"
expect jarvis-wrong-token "401"
echo "claude-code: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
