// What the TypeScript SDK tests (jarvis-clients.test.mjs, weekly-ops.test.mjs) share: the
// environment .ci/clients.sh hands them, the environment of every jarvis child, the
// operator login, opening an SDK client over stdio or HTTP, and reading a refusal.
//   JARVIS_BIN        the jarvis binary
//   JARVIS_HTTP_URL   base URL of a running `jarvis serve --demo` (http://127.0.0.1:PORT)
//   JARVIS_HTTP_DB    that server's DB_PATH (for `jarvis approve`)
//   JARVIS_PASSWORD, JWT_SECRET  the values that server was started with
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

export const run = promisify(execFile);

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run this test through .ci/clients.sh`);
  return v;
}
export const BIN = required('JARVIS_BIN');
export const HTTP_URL = required('JARVIS_HTTP_URL');
export const HTTP_DB = required('JARVIS_HTTP_DB');
export const PASSWORD = required('JARVIS_PASSWORD');
export const JWT_SECRET = required('JWT_SECRET');

// scratch holds the stdio children's database files; it goes when the file's tests end.
export const scratch = mkdtempSync(path.join(tmpdir(), 'jarvis-sdk-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

// Environment of every jarvis child: the known secrets, a quick needs_approval answer and
// rate limits that let one run make a few dozen YELLOW and RED calls.
export function jarvisEnv(dbPath) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? scratch,
    JARVIS_PASSWORD: PASSWORD,
    JWT_SECRET,
    DB_PATH: dbPath,
    JARVIS_APPROVAL_WAIT: '1s',
    JARVIS_RATE_RED_PER_MIN: '600',
    JARVIS_RATE_YELLOW_PER_MIN: '600',
    LOG_LEVEL: 'warn',
  };
}

// login returns an operator token for the HTTP server.
export async function login() {
  const res = await fetch(new URL('/api/auth/login', HTTP_URL), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ password: PASSWORD }),
  });
  assert.equal(res.status, 200, `POST /api/auth/login answered ${res.status}`);
  const body = await res.json();
  assert.equal(typeof body.token, 'string');
  assert.ok(body.expiresIn > 0, 'expiresIn must be a positive number of seconds');
  return body.token;
}

let stdioCount = 0;
function transportFor(kind, httpToken, env) {
  if (kind === 'stdio') {
    // A fresh `jarvis stdio --demo` per client, with its own database file.
    const dbPath = path.join(scratch, `stdio-${++stdioCount}.db`);
    const transport = new StdioClientTransport({
      command: BIN,
      args: ['stdio', '--demo'],
      env: { ...jarvisEnv(dbPath), ...env },
      stderr: 'pipe',
    });
    return { transport, dbPath };
  }
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', HTTP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${httpToken}` } },
  });
  return { transport, dbPath: HTTP_DB };
}

// openClient connects an SDK client named name over kind ('stdio', with env added to the
// child's environment, or 'http', with httpToken); onElicit, when given, declares the elicitation capability and answers
// each request, which is kept in elicitations. It lists the tools first: the SDK validates
// later results against the schemas it lists.
export async function openClient({ name, kind, httpToken, env, onElicit }) {
  const { transport, dbPath } = transportFor(kind, httpToken, env);
  const client = new Client(
    { name, version: '1.0.0' },
    { capabilities: onElicit ? { elicitation: { form: {} } } : {} },
  );
  const elicitations = [];
  if (onElicit) {
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      elicitations.push(req.params);
      return onElicit(req.params);
    });
  }
  await client.connect(transport);
  const { tools } = await client.listTools();
  return { client, transport, tools, dbPath, elicitations };
}

export const textOf = (result) => (result.content ?? []).map((c) => c.text ?? '').join(' ');

// refusalOf checks a result is a refusal in Jarvis's shape and returns its structured content.
export function refusalOf(result) {
  assert.equal(result.isError, true, `expected a refusal, got ${JSON.stringify(result)}`);
  const sc = result.structuredContent;
  assert.ok(sc && typeof sc === 'object', `a refusal carries structuredContent: ${JSON.stringify(result)}`);
  assert.equal(typeof sc.decision, 'string');
  assert.equal(typeof sc.tier, 'string');
  assert.equal(typeof sc.reason, 'string');
  assert.ok(sc.reason.length > 0);
  assert.ok(textOf(result).length > 0, 'a refusal says in words why');
  return sc;
}
