// Smoke test with the MCP Inspector CLI (2.x): tools/list and a get_cluster_status call
// over stdio and over streamable HTTP (bearer token as a header),
// `tools/list --strict`, which must report no tool-schema portability finding at all, and a
// RED call over stdio that must answer needs_approval before the client's timeout.
//
// Needs JARVIS_BIN, JARVIS_HTTP_URL (a running `jarvis serve --demo`), JARVIS_PASSWORD and
// JWT_SECRET. Run with the Node 22 binary from node_modules/node (the Inspector needs
// Node >= 22.19). Prints one line per check and exits non-zero if any failed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

for (const name of ['JARVIS_BIN', 'JARVIS_HTTP_URL', 'JARVIS_PASSWORD', 'JWT_SECRET']) {
  if (!process.env[name]) {
    console.error(`inspector-smoke: ${name} is not set; run it through .ci/clients.sh`);
    process.exit(2);
  }
}
const { JARVIS_BIN, JARVIS_HTTP_URL, JARVIS_PASSWORD, JWT_SECRET } = process.env;

const require = createRequire(import.meta.url);
const pkgPath = require.resolve('@modelcontextprotocol/inspector/package.json');
const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
const launcher = path.join(path.dirname(pkgPath), pkg.bin['mcp-inspector']);

// The Inspector keeps a catalog and client config under ~/.mcp-inspector by default;
// point both at a scratch directory so CI leaves nothing behind.
const scratch = mkdtempSync(path.join(tmpdir(), 'jarvis-inspector-'));
const inspectorEnv = {
  ...process.env,
  MCP_CATALOG_PATH: path.join(scratch, 'mcp.json'),
  MCP_CLIENT_CONFIG_PATH: path.join(scratch, 'client.json'),
};

function inspector(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [launcher, '--cli', ...args], { env: inspectorEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: signal ? `signal ${signal}` : code, stdout, stderr });
    });
  });
}

async function login() {
  const res = await fetch(new URL('/api/auth/login', JARVIS_HTTP_URL), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: JARVIS_PASSWORD }),
  });
  if (res.status !== 200) throw new Error(`POST /api/auth/login answered HTTP ${res.status}`);
  return (await res.json()).token;
}

const token = await login();
const stdioDb = path.join(scratch, 'stdio.db');
// The Inspector starts stdio servers with a minimal environment: pass what jarvis needs.
const targets = {
  stdio: ['-e', `JARVIS_PASSWORD=${JARVIS_PASSWORD}`, '-e', `JWT_SECRET=${JWT_SECRET}`, '-e', `DB_PATH=${stdioDb}`,
    '-e', 'LOG_LEVEL=warn', '--', JARVIS_BIN, 'stdio', '--demo'],
  http: ['--header', `Authorization: Bearer ${token}`, '--', new URL('/mcp', JARVIS_HTTP_URL).href],
};

const failures = [];
let checks = 0;
// check runs the CLI and verifies its JSON answer. With toolError, the CLI's exit 1 for an
// isError result is expected, and the answer is the result line of its output.
async function check(label, args, verify, { toolError = false } = {}) {
  checks++;
  const started = Date.now();
  const r = await inspector(args);
  const ms = Date.now() - started;
  let problem;
  try {
    if (toolError) {
      const line = r.stdout.split('\n').find((l) => l.startsWith('{"result"'));
      if (!line) throw new Error(`no tool result (exit ${r.code})`);
      verify(JSON.parse(line));
    } else {
      if (r.code !== 0) throw new Error(`exit ${r.code}`);
      verify(JSON.parse(r.stdout));
    }
  } catch (err) {
    problem = err.message;
  }
  if (problem) {
    failures.push(label);
    console.log(`✗ inspector ${label} (${ms} ms): ${problem}`);
    console.log(`  stderr: ${r.stderr.trim().split('\n').slice(-15).join('\n  ')}`);
  } else {
    console.log(`✓ inspector ${label} (${ms} ms)`);
  }
}

for (const [kind, target] of Object.entries(targets)) {
  await check(`${kind} tools/list`, ['--format', 'json', '--method', 'tools/list', ...target], (out) => {
    const names = out.result.tools.map((t) => t.name);
    for (const want of ['get_cluster_status', 'get_guest_status', 'stop_vm', 'execute_ssh']) {
      if (!names.includes(want)) throw new Error(`${want} is not listed (got ${names.join(', ')})`);
    }
  });
  await check(`${kind} tools/call get_cluster_status`,
    ['--format', 'json', '--method', 'tools/call', '--tool-name', 'get_cluster_status', ...target], (out) => {
      const sc = out.result.structuredContent;
      if (out.result.isError) throw new Error(`isError: ${JSON.stringify(out.result.content)}`);
      if (!sc || sc.nodes_total !== 4) throw new Error(`expected 4 nodes in structuredContent, got ${JSON.stringify(sc)}`);
    });
  await check(`${kind} tools/list --strict (schema portability)`,
    ['--format', 'json', '--strict', '--method', 'tools/list', ...target], (out) => {
      const findings = (out.schemaFindings ?? []).flatMap((t) =>
        t.findings.map((f) => `${f.severity} ${t.toolName} ${f.schema}${f.path ? ` ${f.path}` : ''}: ${f.issue.split('.')[0]}`));
      if (findings.length > 0) throw new Error(`${findings.length} portability findings:\n    ${findings.join('\n    ')}`);
    });
}

// A RED call from a client without elicitation, with Jarvis's default approval wait: the
// answer (needs_approval with the id and where to approve) must come before the
// Inspector's own request timeout, not the timeout.
await check('stdio restart_vm answers needs_approval before the client times out',
  ['--format', 'json', '--method', 'tools/call', '--tool-name', 'restart_vm', '--tool-arg', 'vmid=101', ...targets.stdio],
  (out) => {
    const sc = out.result.structuredContent;
    if (sc?.decision !== 'needs_approval' || !/^apr_[0-9a-f]{16}$/.test(sc.approval_id ?? '')) {
      throw new Error(`expected needs_approval with an approval_id, got ${JSON.stringify(sc)}`);
    }
    if (!sc.reason.includes(`jarvis approve ${sc.approval_id}`)) throw new Error(`the reason does not say how to approve: ${sc.reason}`);
  }, { toolError: true });

rmSync(scratch, { recursive: true, force: true });
console.log(`inspector ${pkg.version}: ${failures.length === 0 ? 'PASS' : 'FAIL'} — ${checks - failures.length}/${checks} checks passed`);
process.exit(failures.length === 0 ? 0 : 1);
