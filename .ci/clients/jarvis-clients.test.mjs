// The official TypeScript MCP SDK (the client inside Claude Desktop, VS Code and most
// agents) driving Jarvis over stdio and streamable HTTP. Run by .ci/clients.sh with
// `node --test`, with the environment harness.mjs names.
// Each stdio client starts its own `jarvis stdio --demo` (own simulated cluster, own
// database file). The HTTP clients share one server, so every test changes a different
// guest: 101 (elicitation accepted), 102 (declined), 105 (operator approval), 100
// (`confirmed: true`), 103 (protected).
//
// callTool is the SDK's own: it checks each result's structuredContent against the
// tool's outputSchema from tools/list — refusals included — exactly as agents do.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BIN, HTTP_URL, jarvisEnv, login, openClient, refusalOf, run,
} from './harness.mjs';

const RED_TOOLS = [
  'stop_vm', 'start_vm', 'shutdown_vm', 'restart_vm',
  'stop_container', 'start_container', 'shutdown_container', 'restart_container',
  'rollback_snapshot', 'delete_snapshot', 'restart_service', 'execute_ssh',
];
const READ_TOOLS = [
  'get_cluster_status', 'get_node_status', 'get_vms', 'get_containers', 'get_storage',
  'get_cluster_resources', 'get_recent_tasks', 'get_backups', 'get_guest_status',
  'get_task_status', 'list_snapshots', 'get_node_temperature', 'get_service_status', 'get_node_logs',
];

let httpToken;
const clients = [];
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

// connect opens a client; onElicit, when given, declares the elicitation capability.
async function connect(kind, onElicit) {
  const c = await openClient({ name: 'jarvis-ci-sdk-client', kind, httpToken, onElicit });
  clients.push(c.client);
  return c;
}

async function guestStatus(client, vmid) {
  const r = await client.callTool({ name: 'get_guest_status', arguments: { vmid } });
  assert.ok(!r.isError, `get_guest_status ${vmid} failed: ${JSON.stringify(r.content)}`);
  return r.structuredContent.status;
}

function assertTaskRan(result, vmid) {
  assert.ok(!result.isError, `the action should have run: ${JSON.stringify(result)}`);
  const out = result.structuredContent;
  assert.equal(out.vmid, vmid);
  assert.equal(out.action, 'stop');
  assert.equal(out.finished, true);
  assert.equal(out.ok, true, `task exit status: ${out.exit_status}`);
  assert.match(out.upid, /^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmstop:\d+:/);
}

before(async () => {
  httpToken = await login();
});

test('HTTP /mcp stays authenticated: no token or a forged one is answered 401', async () => {
  const initialize = JSON.stringify({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'no-token', version: '1' } },
  });
  for (const auth of [undefined, `Bearer ${httpToken.slice(0, -4)}AAAA`]) {
    const res = await fetch(new URL('/mcp', HTTP_URL), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(auth ? { authorization: auth } : {}),
      },
      body: initialize,
    });
    assert.equal(res.status, 401, `POST /mcp with ${auth ? 'a forged token' : 'no token'}`);
  }
});

// Issue 11: read-only commands are YELLOW, so a yellow ceiling (an agent token's
// --max-tier yellow, or JARVIS_STDIO_MAX_TIER=yellow) sees execute_ssh and runs them;
// a command above the ceiling is refused with the refusal shape.
test('yellow ceiling: execute_ssh is listed, df -h runs, a change is refused above the ceiling', async () => {
  const { client, tools } = await openClient({ name: 'jarvis-ci-yellow', kind: 'stdio', env: { JARVIS_STDIO_MAX_TIER: 'yellow' } });
  clients.push(client);
  const ssh = tools.find((t) => t.name === 'execute_ssh');
  assert.ok(ssh, 'execute_ssh is listed for a yellow ceiling');
  assert.equal(ssh.annotations?.destructiveHint, true, 'its RED commands keep it destructive');
  assert.ok(ssh.inputSchema.properties?.approval_id, 'it still takes approval_id');
  assert.ok(!tools.some((t) => t.name === 'stop_vm'), 'RED tools are not listed');

  const df = await client.callTool({ name: 'execute_ssh', arguments: { node: 'pve', command: 'df -h' } });
  assert.ok(!df.isError, `df -h failed: ${JSON.stringify(df.content)}`);
  assert.match(df.structuredContent.stdout, /Filesystem/);

  const change = refusalOf(await client.callTool({ name: 'execute_ssh', arguments: { node: 'pve', command: 'systemctl restart nginx' } }));
  assert.equal(change.decision, 'blocked');
  assert.equal(change.tier, 'red');
  assert.match(change.reason, /YELLOW/);
});

for (const kind of ['stdio', 'http']) {
  describe(`TypeScript SDK over ${kind}`, () => {
    let reader;
    before(async () => {
      reader = await connect(kind);
    });

    test('tools/list: every tool has an object input and output schema, RED tools are destructive and take approval_id', () => {
      const byName = new Map(reader.tools.map((t) => [t.name, t]));
      for (const name of [...READ_TOOLS, ...RED_TOOLS]) assert.ok(byName.has(name), `tool ${name} is listed`);
      for (const t of reader.tools) {
        assert.ok(t.description?.length > 0, `${t.name} has a description`);
        assert.equal(t.inputSchema.type, 'object', `${t.name} input schema`);
        assert.equal(t.outputSchema?.type, 'object', `${t.name} has an output schema`);
      }
      for (const name of READ_TOOLS) {
        const a = byName.get(name).annotations;
        assert.equal(a?.readOnlyHint, true, `${name} is read-only`);
        assert.equal(a?.destructiveHint, false, `${name} is not destructive`);
      }
      for (const name of RED_TOOLS) {
        const t = byName.get(name);
        assert.equal(t.annotations?.destructiveHint, true, `${name} is destructive`);
        assert.notEqual(t.annotations?.readOnlyHint, true, `${name} is not read-only`);
        assert.ok(t.inputSchema.properties?.approval_id, `${name} accepts approval_id`);
        assert.ok(!t.inputSchema.properties?.confirmed, `${name} has no confirmed argument`);
      }
    });

    test('read-only tools answer with structured content that matches their output schemas', async () => {
      const { client } = reader;
      const call = async (name, args = {}) => {
        const r = await client.callTool({ name, arguments: args });
        assert.ok(!r.isError, `${name}(${JSON.stringify(args)}) failed: ${JSON.stringify(r.content)}`);
        assert.ok(r.structuredContent, `${name} returns structured content`);
        return r.structuredContent;
      };
      const cluster = await call('get_cluster_status');
      const nodes = cluster.nodes.map((n) => n.node ?? n.name);
      assert.deepEqual([...nodes].sort(), ['agent', 'agent1', 'home', 'pve']);
      for (const node of nodes) {
        const ns = await call('get_node_status', { node });
        assert.equal(ns.node, node);
      }
      const vms = await call('get_vms');
      assert.ok(vms.guests.some((g) => g.vmid === 101), 'VM 101 is listed');
      const cts = await call('get_containers');
      assert.ok(cts.guests.some((g) => g.vmid === 200), 'container 200 is listed');
      await call('get_storage');
      await call('get_cluster_resources');
      await call('get_backups');
      const tasks = await call('get_recent_tasks');
      assert.ok(tasks.tasks.length > 0, 'the demo cluster has recent tasks');
      const task = await call('get_task_status', { upid: tasks.tasks[0].upid });
      assert.equal(task.upid, tasks.tasks[0].upid);
      const guest = await call('get_guest_status', { vmid: 101 });
      assert.equal(guest.vmid, 101);
      await call('list_snapshots', { vmid: 101 });
      const temp = await call('get_node_temperature', { node: 'pve' });
      assert.equal(temp.node, 'pve');
      const svc = await call('get_service_status', { node: 'pve', service: 'pveproxy' });
      assert.equal(svc.service.replace(/\.service$/, ''), 'pveproxy');
      const logs = await call('get_node_logs', { node: 'pve' });
      assert.equal(logs.node, 'pve');
    });

    test('unknown tool name: refused as blocked, not a protocol error', async () => {
      const r = await reader.client.callTool({ name: 'format_all_disks', arguments: {} });
      assert.equal(refusalOf(r).decision, 'blocked');
    });

    test('protected VM 103: refused as protected before anyone is asked', async () => {
      const { client, elicitations } = await connect(kind, () => ({ action: 'accept', content: { approve: true } }));
      const sc = refusalOf(await client.callTool({ name: 'stop_vm', arguments: { vmid: 103 } }));
      assert.equal(sc.decision, 'protected');
      assert.equal(elicitations.length, 0, 'no confirmation is asked for a protected guest');
      assert.equal(await guestStatus(client, 103), 'running');
    });

    test('`confirmed: true` is rejected as an unknown argument and confirms nothing', async () => {
      const { client, elicitations } = await connect(kind, () => ({ action: 'accept', content: { approve: true } }));
      const r = await client.callTool({ name: 'stop_vm', arguments: { vmid: 100, confirmed: true } });
      assert.equal(r.isError, true, `stop_vm with confirmed:true must fail: ${JSON.stringify(r)}`);
      assert.match(r.content.map((c) => c.text ?? '').join(' '), /confirmed/);
      assert.equal(elicitations.length, 0, 'nothing was put to the user');
      assert.equal(await guestStatus(client, 100), 'running');
    });

    test('RED with elicitation, accepted: the user sees the plan and the VM is stopped', async () => {
      const { client, elicitations } = await connect(kind, () => ({ action: 'accept', content: { approve: true } }));
      assert.equal(await guestStatus(client, 101), 'running');
      const r = await client.callTool({ name: 'stop_vm', arguments: { vmid: 101 } });
      assert.equal(elicitations.length, 1, 'exactly one confirmation was asked');
      assert.match(elicitations[0].message, /101/);
      assert.match(elicitations[0].message, /stop/i);
      assert.equal(elicitations[0].requestedSchema.properties.approve.type, 'boolean');
      assertTaskRan(r, 101);
      assert.equal(await guestStatus(client, 101), 'stopped');
    });

    test('RED with elicitation, declined: refused as denied and the VM keeps running', async () => {
      const { client, elicitations } = await connect(kind, () => ({ action: 'decline' }));
      const r = await client.callTool({ name: 'stop_vm', arguments: { vmid: 102 } });
      assert.equal(elicitations.length, 1, 'exactly one confirmation was asked');
      assert.equal(refusalOf(r).decision, 'denied');
      assert.equal(await guestStatus(client, 102), 'running');
    });

    test('RED without elicitation: needs_approval, `jarvis approve ID`, retry with approval_id runs once', async () => {
      const { client, dbPath } = await connect(kind);
      const first = refusalOf(await client.callTool({ name: 'stop_vm', arguments: { vmid: 105 } }));
      assert.equal(first.decision, 'needs_approval');
      assert.equal(first.tier, 'red');
      assert.match(first.approval_id ?? '', /\S/, 'needs_approval names the approval');
      assert.match(first.plan ?? '', /105/);
      assert.equal(await guestStatus(client, 105), 'running', 'nothing ran before the approval');

      const { stdout } = await run(BIN, ['approve', first.approval_id], { env: jarvisEnv(dbPath) });
      assert.match(stdout, new RegExp(`Approved ${first.approval_id}`));

      const retry = await client.callTool({ name: 'stop_vm', arguments: { vmid: 105, approval_id: first.approval_id } });
      assertTaskRan(retry, 105);
      assert.equal(await guestStatus(client, 105), 'stopped');

      // An approval runs exactly one call.
      const again = refusalOf(await client.callTool({ name: 'start_vm', arguments: { vmid: 105, approval_id: first.approval_id } }));
      assert.equal(again.decision, 'denied');
      assert.equal(await guestStatus(client, 105), 'stopped');
    });
  });
}
