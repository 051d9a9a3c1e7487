#!/usr/bin/env bash
# Real MCP clients against Jarvis, run from the repo root (`bash .ci/clients.sh`):
#   1. the official conformance suite (@modelcontextprotocol/conformance 0.1, server mode, its
#      active suite: protocol 2025-11-25 and older) against `jarvis serve --demo` over streamable
#      HTTP, through a loopback proxy that adds the bearer token, judged against
#      .ci/conformance-expected-failures.txt;
#   2. the conformance suite 0.2 (npm alias conformance-0.2) with `--requirements 2026-07-28`,
#      the frozen set the stateless 2026-07-28 revision requires, the same way, judged check by
#      check against .ci/conformance-2026-07-28-expected-failures.txt;
#   3. the TypeScript SDK (`node --test .ci/clients/jarvis-clients.test.mjs`) over stdio and HTTP;
#   4. the TypeScript SDK on the weekly operations (`node --test .ci/clients/weekly-ops.test.mjs`:
#      guest config, metrics, backups, clones, restores, resizes, migrations, …) over stdio and HTTP;
#   5. the TypeScript SDK as an agent that watches (`watching-agent.test.mjs`): jarvis://alerts
#      subscribed, a crash in the demo cluster, remediate_alert, a call under a standing approval;
#   6. the MCP Inspector CLI: tools/list, get_cluster_status and --strict schema portability;
#   7. mark3labs/mcp-go with its defaults (.ci/mcp-go, a Go module of its own so that mcp-go stays
#      out of the product's go.mod) over stdio and over HTTP at 2026-07-28: output schemas as it
#      holds them, every GREEN tool, elicitation accept/decline, an agent's approval round trip.
#      It stops one running VM of the shared demo cluster, so it runs last.
# Every client package is pinned in .ci/clients/package-lock.json and runs on the Node 22 that
# package.json pins (the `node` package); the machine's own node only runs npm. mcp-go is pinned
# in .ci/mcp-go/go.mod.
# Exits non-zero if any step fails; kills every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
step() { printf '\n=== clients: %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jarvis-clients.XXXXXX")
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "npm ci in .ci/clients"
# --loglevel=error: npm itself runs on the machine's Node 20 and would warn (EBADENGINE) about
# every package that needs the Node 22 the clients actually run on.
(cd .ci/clients && npm ci --no-audit --no-fund --loglevel=error)
NODE="$root/.ci/clients/node_modules/node/bin/node"
node_version=$("$NODE" --version)
case "$node_version" in
v22.*) echo "client runtime: node $node_version ($NODE)" ;;
*)
	echo "expected Node 22 from the pinned npm package 'node', got $node_version" >&2
	exit 1
	;;
esac

step "go build ./cmd/jarvis"
go build -o "$TMP/jarvis" ./cmd/jarvis
JARVIS_BIN="$TMP/jarvis"

step "go vet and go build .ci/mcp-go (its own module)"
(cd .ci/mcp-go && go vet ./... && go build -o "$TMP/mcp-go-check" .)

# free_port asks the kernel for an unused port on 127.0.0.1.
free_port() {
	"$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Known test-only secrets; every jarvis process here (serve, stdio, approve) shares them.
JARVIS_PASSWORD="ci-operator-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export JARVIS_PASSWORD JWT_SECRET

step "start jarvis serve --demo"
port=$(free_port)
serve_db="$TMP/serve.db"
# A quick needs_approval answer and rate limits that allow the YELLOW and RED calls of the SDK tests.
PORT=$port DB_PATH=$serve_db JARVIS_LISTEN=127.0.0.1 JARVIS_APPROVAL_WAIT=1s JARVIS_WATCH_INTERVAL=2s \
	JARVIS_RATE_RED_PER_MIN=600 JARVIS_RATE_YELLOW_PER_MIN=600 LOG_LEVEL=warn \
	"$JARVIS_BIN" serve --demo >"$TMP/serve.log" 2>&1 &
pids+=($!)
serve_pid=$!
base="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 100); do
	if ! kill -0 "$serve_pid" 2>/dev/null; then break; fi
	if "$NODE" -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$base/api/health"; then
		ready=yes
		break
	fi
	sleep 0.1
done
if [ -z "$ready" ]; then
	echo "jarvis serve --demo did not become healthy on $base; its log:" >&2
	cat "$TMP/serve.log" >&2
	exit 1
fi
echo "jarvis serve --demo on $base (pid $serve_pid)"

step "start the bearer-token proxy for the conformance suite"
proxy_port=$(free_port)
"$NODE" .ci/clients/auth-proxy.mjs --upstream "$base" --port "$proxy_port" >"$TMP/proxy.log" 2>&1 &
pids+=($!)
ready=""
for _ in $(seq 1 100); do
	if grep -q '^listening ' "$TMP/proxy.log" 2>/dev/null; then
		ready=yes
		break
	fi
	sleep 0.1
done
if [ -z "$ready" ]; then
	echo "the auth proxy did not start; its log:" >&2
	cat "$TMP/proxy.log" >&2
	exit 1
fi
cat "$TMP/proxy.log"

declare -A result seconds
run_step() { # name command...: runs one client step, records PASS/FAIL and its duration
	local name=$1 t0 rc=0
	shift
	step "$name"
	t0=$(date +%s)
	"$@" 2>&1 | tee "$TMP/$name.log" || rc=$?
	seconds[$name]=$(($(date +%s) - t0))
	if [ "$rc" -eq 0 ]; then result[$name]=PASS; else result[$name]="FAIL (exit $rc)"; fi
}

cd .ci/clients
run_step conformance "$NODE" conformance.mjs --url "http://127.0.0.1:$proxy_port/mcp" \
	--expected-failures "$root/.ci/conformance-expected-failures.txt"
run_step conformance-2026 "$NODE" conformance.mjs --url "http://127.0.0.1:$proxy_port/mcp" \
	--suite-package conformance-0.2 --requirements 2026-07-28 \
	--expected-failures "$root/.ci/conformance-2026-07-28-expected-failures.txt"
run_step typescript-sdk env JARVIS_BIN="$JARVIS_BIN" JARVIS_HTTP_URL="$base" JARVIS_HTTP_DB="$serve_db" \
	"$NODE" --test --test-reporter=spec --test-timeout=120000 jarvis-clients.test.mjs
run_step weekly-ops env JARVIS_BIN="$JARVIS_BIN" JARVIS_HTTP_URL="$base" JARVIS_HTTP_DB="$serve_db" \
	"$NODE" --test --test-reporter=spec --test-timeout=120000 weekly-ops.test.mjs
run_step watching-agent env JARVIS_BIN="$JARVIS_BIN" JARVIS_HTTP_URL="$base" JARVIS_HTTP_DB="$serve_db" \
	"$NODE" --test --test-reporter=spec --test-timeout=120000 watching-agent.test.mjs
run_step inspector env JARVIS_BIN="$JARVIS_BIN" JARVIS_HTTP_URL="$base" "$NODE" inspector-smoke.mjs
run_step mcp-go "$TMP/mcp-go-check" -jarvis "$JARVIS_BIN" -stdio -http "$base" -http-db "$serve_db"
cd "$root"

if ! kill -0 "$serve_pid" 2>/dev/null; then
	result[serve]="FAIL (jarvis serve exited during the run)"
fi

step "summary"
failed=0
for name in conformance conformance-2026 typescript-sdk weekly-ops watching-agent inspector mcp-go serve; do
	[ -n "${result[$name]:-}" ] || continue
	printf '%-17s %s%s\n' "$name" "${result[$name]}" "${seconds[$name]:+ (${seconds[$name]}s)}"
	# Each step's own result line(s): the suite's verdict, node --test's counts, the smoke's and
	# mcp-go's tallies.
	if [ -f "$TMP/$name.log" ]; then
		grep -E '^(conformance [0-9][^:]*:|inspector [0-9.]+:|mcp-go [0-9][^:]*:|ℹ (tests|pass|fail) )' "$TMP/$name.log" | sed 's/^/    /' || true
	fi
	case "${result[$name]}" in PASS) ;; *) failed=1 ;; esac
done
if [ "$failed" -ne 0 ]; then
	echo "--- last lines of the jarvis serve log"
	tail -n 40 "$TMP/serve.log"
	echo "clients: FAIL"
	exit 1
fi
echo "clients: PASS ($(($(date +%s) - start))s)"
