// The weekly operations (guest config and agent, metrics, storage content, task logs,
// cluster health; clones, backups, restores, downloads, notes and tags; resources, disks,
// migration, backup deletion, templates, deleting guests Jarvis created) driven by the
// official TypeScript MCP SDK over stdio and streamable HTTP. Run by .ci/clients.sh beside
// jarvis-clients.test.mjs, with the same environment (harness.mjs).
//
// Each stdio client starts its own `jarvis stdio --demo` (own simulated cluster, own
// database). The HTTP clients share one server with jarvis-clients.test.mjs, which changes
// guests 100, 101, 102, 103 and 105; these tests change only other guests, each test its own:
//   104 backup + restore into a new VMID   106 update_guest_resources (and delete_guest refused)
//   200 resize_disk                         201 migrate_guest
//   203 restore over an existing guest      106's backups: delete_backup (oldest), decline (newest)
// and new VMIDs (clones of template 9000, a restore) from 7001 (stdio) and 8001 (HTTP) up.
// Protected agent1 (202, 204) and VM 103 are only asked to change and refuse; 100, 101, 102
// are only read.
//
// callTool is the SDK's own: it checks each result's structuredContent against the tool's
// outputSchema from tools/list, refusals included.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BIN, HTTP_DB, jarvisEnv, login, openClient, refusalOf, run, textOf,
} from './harness.mjs';

// The weekly-operations tools and the input properties each must take (from the brief and
// tools/ops_*.go); approval_id is added by Jarvis to every tool a call of which can be RED.
const GREEN = {
  get_guest_config: ['vmid'],
  get_guest_agent_info: ['vmid'],
  get_metrics_history: ['node', 'vmid', 'timeframe', 'cf', 'points'],
  list_storage_content: ['storage', 'node', 'content', 'vmid', 'name_contains'],
  get_task_log: ['upid', 'lines', 'from_start'],
  get_cluster_health: [],
};
// YELLOW only: every call is YELLOW.
const YELLOW = {
  clone_guest: ['vmid', 'name', 'new_vmid', 'target_node', 'storage', 'full', 'ci_user', 'ssh_public_key', 'ip_config'],
  download_to_storage: ['url', 'storage', 'node', 'content', 'filename', 'checksum', 'checksum_algorithm'],
  set_guest_notes_tags: ['vmid', 'notes', 'tags'],
};
// YELLOW for most calls, RED for some (a stop-mode backup, a restore over an
// existing guest): the annotations follow the most a call can do.
const YELLOW_OR_RED = {
  create_backup: ['vmid', 'storage', 'mode', 'compress', 'notes'],
  restore_backup: ['volid', 'vmid', 'node', 'storage', 'start'],
};
const RED = {
  update_guest_resources: ['vmid', 'cores', 'memory_mib', 'balloon_mib', 'onboot'],
  resize_disk: ['vmid', 'disk', 'size'],
  migrate_guest: ['vmid', 'target_node', 'online'],
  delete_backup: ['volid'],
  convert_to_template: ['vmid'],
  delete_guest: ['vmid', 'purge', 'destroy_unreferenced_disks'],
};

// A real-looking OpenSSH public key (an ed25519 key blob), for the clone's cloud-init.
const SSH_KEY_BLOB = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const SSH_KEY = `ssh-ed25519 ${SSH_KEY_BLOB} ci@weekly-ops`;
const GiB = 1024 ** 3;

let httpToken;
const clients = [];
after(async () => {
  for (const c of clients) await c.close().catch(() => {});
});

// connect opens a client for test t (closed, and its HTTP session ended, when t ends; for
// the whole file when t is null); onElicit, when given, declares the elicitation capability.
async function connect(t, kind, onElicit) {
  const { client, transport, tools, dbPath, elicitations } = await openClient({ name: 'jarvis-ci-weekly-ops', kind, httpToken, onElicit });
  const close = async () => {
    await transport.terminateSession?.().catch(() => {});
    await client.close().catch(() => {});
  };
  if (t) t.after(close);
  else clients.push({ close });
  return { client, tools, dbPath, elicitations, call: caller(client) };
}

// caller(client)(name, args) runs a call that must succeed and returns its structured content.
function caller(client) {
  return async (name, args = {}) => {
    const r = await client.callTool({ name, arguments: args });
    assert.ok(!r.isError, `${name}(${JSON.stringify(args)}) failed: ${textOf(r)} ${JSON.stringify(r.structuredContent ?? '')}`);
    assert.ok(r.structuredContent && typeof r.structuredContent === 'object', `${name} returns structured content`);
    return r.structuredContent;
  };
}

// inputErrorOf: a call refused for its arguments or its target, before any decision:
// isError, a sentence, and no approval asked for.
function inputErrorOf(result, pattern) {
  assert.equal(result.isError, true, `expected an error, got ${JSON.stringify(result)}`);
  assert.ok(!result.structuredContent?.approval_id, `nothing to approve: ${JSON.stringify(result.structuredContent)}`);
  assert.notEqual(result.structuredContent?.decision, 'needs_approval');
  const text = textOf(result);
  assert.match(text, pattern);
  return text;
}

// needsApproval makes the first call of a RED tool from a client without elicitation: it
// must answer needs_approval with an approval id and the plan.
async function needsApproval(c, name, args, planPattern) {
  const sc = refusalOf(await c.client.callTool({ name, arguments: args }));
  assert.equal(sc.decision, 'needs_approval', `${name}: ${sc.reason}`);
  assert.equal(sc.tier, 'red');
  assert.match(sc.approval_id ?? '', /^apr_[0-9a-f]{16}$/, 'needs_approval names the approval');
  assert.match(sc.plan ?? '', planPattern);
  assert.match(sc.reason, new RegExp(sc.approval_id));
  return sc.approval_id;
}

// approve is the operator's `jarvis approve ID` on the host, with the caller's database.
async function approve(id, dbPath) {
  const { stdout } = await run(BIN, ['approve', id], { env: jarvisEnv(dbPath) });
  assert.match(stdout, new RegExp(`Approved ${id}`));
}

// viaApproval: needs_approval, `jarvis approve ID`, the retry with approval_id runs, and the
// spent approval runs nothing more; before the approval, unchanged() sees nothing changed.
// Returns the retry's structured content.
async function viaApproval(c, name, args, planPattern, unchanged) {
  const id = await needsApproval(c, name, args, planPattern);
  if (unchanged) await unchanged();
  await approve(id, c.dbPath);
  const out = await c.call(name, { ...args, approval_id: id });
  // An approval runs exactly one call: the same approval again runs nothing.
  const again = await c.client.callTool({ name, arguments: { ...args, approval_id: id } });
  assert.equal(again.isError, true, `a spent approval must not run again: ${JSON.stringify(again)}`);
  if (again.structuredContent?.decision !== undefined) {
    assert.ok(['denied', 'expired'].includes(again.structuredContent.decision),
      `a spent approval is refused, not asked again: ${JSON.stringify(again.structuredContent)}`);
  }
  return out;
}

// approvalsTable lists every approval request in a database (`jarvis approvals --all`).
async function approvalsTable(dbPath) {
  const { stdout } = await run(BIN, ['approvals', '--all'], { env: jarvisEnv(dbPath) });
  return stdout;
}

function assertTask(out, { vmid, action, node } = {}) {
  assert.equal(out.finished, true, `task finished: ${JSON.stringify(out)}`);
  assert.equal(out.ok, true, `task exit status: ${out.exit_status}`);
  assert.equal(out.exit_status, 'OK');
  assert.match(out.upid, /^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[a-z]+:/);
  if (vmid !== undefined) assert.equal(out.vmid, vmid);
  if (action !== undefined) assert.equal(out.action, action);
  if (node !== undefined) assert.equal(out.node, node);
}

// cloneTemplate makes a linked clone of template 9000 (YELLOW: runs at once).
async function cloneTemplate(c, newVMID, name) {
  const out = await c.call('clone_guest', { vmid: 9000, name, new_vmid: newVMID });
  assert.equal(out.new_vmid, newVMID);
  assert.equal(out.exit_status, 'OK');
  assert.match(out.tags, /(^|;)jarvis-created(;|$)/);
  return out;
}

async function backupsOf(c, vmid) {
  const list = await c.call('list_storage_content', { storage: 'nfs-backup', content: 'backup', vmid });
  return list.items; // newest first
}

before(async () => {
  httpToken = await login();
});

// Both transports side by side. Over stdio every test has a cluster of its own, so its tests
// run four at a time; over HTTP they share one cluster (and plans that name its free space),
// so they run one after the other.
describe('weekly operations', { concurrency: 2 }, () => {
  for (const kind of ['stdio', 'http']) {
    // New VMIDs of this transport: 7001… over stdio, 8001… over HTTP.
    const base = kind === 'stdio' ? 7000 : 8000;
    const NEW = { clone: base + 1, restored: base + 2, template: base + 3, doomed: base + 4, grown: base + 5, protectedRestore: base + 6 };

    describe(`over ${kind}`, { concurrency: kind === 'stdio' ? 4 : 1 }, () => {
      let reader;
      before(async () => {
        reader = await connect(null, kind);
      });

      test('tools/list: every weekly tool is listed with its tier\'s annotations, inputs and an object output schema', () => {
        const byName = new Map(reader.tools.map((t) => [t.name, t]));
        const all = { ...GREEN, ...YELLOW, ...YELLOW_OR_RED, ...RED };
        for (const [name, inputs] of Object.entries(all)) {
          const t = byName.get(name);
          assert.ok(t, `tool ${name} is listed`);
          assert.ok(t.description?.length > 0, `${name} has a description`);
          assert.equal(t.inputSchema.type, 'object', `${name} input schema`);
          assert.equal(t.outputSchema?.type, 'object', `${name} has an object output schema`);
          for (const p of inputs) assert.ok(t.inputSchema.properties?.[p], `${name} takes ${p}`);
          assert.ok(!t.inputSchema.properties?.confirmed, `${name} has no confirmed argument`);
        }
        for (const name of Object.keys(GREEN)) {
          const t = byName.get(name);
          assert.equal(t.annotations?.readOnlyHint, true, `${name} is read-only`);
          assert.equal(t.annotations?.destructiveHint, false, `${name} is not destructive`);
          assert.ok(!t.inputSchema.properties?.approval_id, `${name} takes no approval_id`);
        }
        for (const name of Object.keys(YELLOW)) {
          const t = byName.get(name);
          assert.equal(t.annotations?.readOnlyHint, false, `${name} is not read-only`);
          assert.equal(t.annotations?.destructiveHint, false, `${name} is not destructive`);
          assert.ok(!t.inputSchema.properties?.approval_id, `${name} never needs an approval`);
        }
        for (const name of [...Object.keys(YELLOW_OR_RED), ...Object.keys(RED)]) {
          const t = byName.get(name);
          assert.equal(t.annotations?.readOnlyHint, false, `${name} is not read-only`);
          assert.equal(t.annotations?.destructiveHint, true, `${name} is destructive`);
          assert.ok(t.inputSchema.properties?.approval_id, `${name} accepts approval_id`);
        }
        assert.deepEqual(byName.get('get_guest_config').inputSchema.required, ['vmid']);
        assert.deepEqual([...byName.get('resize_disk').inputSchema.required].sort(), ['disk', 'size', 'vmid']);
        assert.deepEqual([...byName.get('clone_guest').inputSchema.required].sort(), ['name', 'vmid']);
        assert.deepEqual(byName.get('download_to_storage').inputSchema.properties.content.enum, ['iso', 'vztmpl']);
      });

      test('GREEN: config, agent info, metrics, storage content, task log and cluster health', async (t) => {
        const { call, client } = reader;

        const cfg = await call('get_guest_config', { vmid: 101 });
        assert.equal(cfg.vmid, 101);
        assert.equal(cfg.kind, 'qemu');
        assert.equal(cfg.name, 'web01');
        assert.ok(cfg.disks.length > 0, 'VM 101 has disks');
        assert.equal(cfg.disks[0].slot, 'scsi0');
        assert.equal(cfg.disks[0].storage, 'local-lvm');
        assert.ok(cfg.disks[0].size_bytes >= 64 * GiB);
        assert.ok(cfg.nics.length > 0, 'VM 101 has a NIC');
        assert.ok(cfg.cores >= 1 && cfg.memory_mib >= 1024);
        assert.equal(cfg.created_by_jarvis, false);
        assert.doesNotMatch(JSON.stringify(cfg), /cipassword/i, 'never a cipassword');
        const tpl = await call('get_guest_config', { vmid: 9000 });
        assert.equal(tpl.template, true);
        assert.equal(tpl.name, 'debian13-cloudinit');
        const ct = await call('get_guest_config', { vmid: 200 });
        assert.equal(ct.kind, 'lxc');
        assert.equal(ct.disks[0].slot, 'rootfs');
        assert.equal(typeof ct.swap_mib, 'number');

        const stopped = await call('get_guest_agent_info', { vmid: 104 });
        assert.equal(stopped.agent_running, false, 'a stopped VM has no running agent');
        assert.match(stopped.message ?? '', /stopped/);
        assert.deepEqual(stopped.interfaces, []);
        const noAgent = await call('get_guest_agent_info', { vmid: 100 });
        assert.equal(noAgent.agent_running, false, 'OPNsense runs no guest agent');
        assert.match(noAgent.message ?? '', /qemu-guest-agent/);
        const container = await call('get_guest_agent_info', { vmid: 200 });
        assert.equal(container.agent_running, true);
        assert.equal(container.hostname, 'pihole');
        assert.ok(container.interfaces.some((i) => i.ips.some((ip) => /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(ip))), 'an IPv4 address with its prefix');
        assert.ok(!container.interfaces.some((i) => i.name === 'lo'), 'no loopback');

        const guestDay = await call('get_metrics_history', { vmid: 102, timeframe: 'day', cf: 'MAX', points: 10 });
        assert.equal(guestDay.timeframe, 'day');
        assert.equal(guestDay.cf, 'MAX');
        assert.match(guestDay.subject, /102/);
        assert.ok(guestDay.points.length > 0 && guestDay.points.length <= 10, `≤ 10 points, got ${guestDay.points.length}`);
        const times = guestDay.points.map((p) => Date.parse(p.time));
        assert.deepEqual([...times].sort((a, b) => a - b), times, 'oldest first');
        assert.ok(guestDay.points.every((p) => p.cpu_percent === undefined || (p.cpu_percent >= 0 && p.cpu_percent <= 100)));
        assert.ok(guestDay.summary.cpu_max_percent >= guestDay.summary.cpu_avg_percent);
        const nodeHour = await call('get_metrics_history', { node: 'pve' });
        assert.equal(nodeHour.timeframe, 'hour', 'hour by default');
        assert.equal(nodeHour.cf, 'AVERAGE', 'AVERAGE by default');
        assert.ok(nodeHour.points.length > 0 && nodeHour.points.length <= 24, `≤ 24 points by default, got ${nodeHour.points.length}`);
        const nodeYear = await call('get_metrics_history', { node: 'home', timeframe: 'year', points: 2 });
        assert.ok(nodeYear.points.length <= 2);
        inputErrorOf(await client.callTool({ name: 'get_metrics_history', arguments: { node: 'pve', vmid: 101 } }), /node.*vmid|vmid.*node/);

        const backups = await call('list_storage_content', { storage: 'nfs-backup', vmid: 106 });
        assert.equal(backups.storage, 'nfs-backup');
        assert.ok(backups.items.length >= 1, 'VM 106 has nightly backups');
        assert.equal(backups.total_items, backups.items.length);
        assert.equal(backups.shown, backups.items.length);
        for (const it of backups.items) {
          assert.equal(it.vmid, 106);
          assert.equal(it.content, 'backup');
          assert.match(it.volid, /^nfs-backup:backup\/vzdump-qemu-106-/);
        }
        const created = backups.items.map((i) => i.created);
        assert.deepEqual([...created].sort().reverse(), created, 'newest first');
        const isos = await call('list_storage_content', { storage: 'local', node: 'home', content: 'iso', name_contains: 'DEBIAN' });
        assert.equal(isos.node, 'home');
        assert.ok(isos.items.some((i) => i.volid === 'local:iso/debian-13.1.0-amd64-netinst.iso'), 'name_contains is case-insensitive');
        assert.ok(isos.items.every((i) => i.content === 'iso'));

        const { tasks } = await call('get_recent_tasks', { node: 'home' });
        const vzdump = tasks.find((t) => t.type === 'vzdump' && !t.running);
        assert.ok(vzdump, 'the demo has a nightly backup task on node home');
        const tail = await call('get_task_log', { upid: vzdump.upid, lines: 2 });
        assert.equal(tail.upid, vzdump.upid);
        assert.equal(tail.node, 'home');
        assert.equal(tail.type, 'vzdump');
        assert.equal(tail.status, 'stopped');
        assert.equal(tail.exit_status, 'OK');
        assert.equal(tail.lines.length, 2);
        assert.ok(tail.total_lines > 2);
        assert.equal(tail.first_line_number, tail.total_lines - 1, 'the last two lines');
        assert.equal(tail.lines.at(-1), 'TASK OK');
        assert.equal(tail.truncated, true);
        const head = await call('get_task_log', { upid: vzdump.upid, lines: 1, from_start: true });
        assert.equal(head.first_line_number, 1);
        assert.equal(head.lines.length, 1);
        assert.match(head.lines[0], /Starting Backup/);

        const health = await call('get_cluster_health');
        for (const section of ['updates', 'certificates', 'problems']) assert.ok(Array.isArray(health[section]), `health has ${section}`);
        assert.deepEqual(health.updates.map((u) => u.node).sort(), ['agent', 'agent1', 'home', 'pve']);
        assert.ok(health.certificates.length >= 4, 'certificates of every node');
        assert.ok(health.ha && Array.isArray(health.ha.resources), 'HA is configured in the demo');
        assert.ok(Array.isArray(health.replication), 'a replication job is configured in the demo');
        assert.ok(health.problems.some((p) => /replication/.test(p)), 'the failing replication job is a problem');
        assert.ok(health.problems.some((p) => /certificate/.test(p)), 'the expiring certificate is a problem');
      });

      test('YELLOW clone_guest from template 9000: tagged jarvis-created, cloud-init without secrets; then notes and tags', async (t) => {
        // A client that would say yes if asked: YELLOW runs without asking anyone.
        const c = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        const out = await c.call('clone_guest', {
          vmid: 9000, name: `ci-${kind}-clone`, new_vmid: NEW.clone,
          ci_user: 'ops', ssh_public_key: SSH_KEY, ip_config: 'ip=10.0.1.50/24,gw=10.0.1.1',
        });
        assert.equal(out.source_vmid, 9000);
        assert.equal(out.new_vmid, NEW.clone);
        assert.equal(out.node, 'home');
        assert.equal(out.new_node, 'home');
        assert.equal(out.kind, 'qemu');
        assert.equal(out.full, false, 'a linked clone by default');
        assert.equal(out.cloud_init, true);
        assert.equal(out.guest_status, 'stopped');
        assert.equal(out.exit_status, 'OK');
        assert.match(out.upid, /:qmclone:9000:/);
        assert.match(out.tags, /(^|;)jarvis-created(;|$)/);

        const cfg = await c.call('get_guest_config', { vmid: NEW.clone });
        assert.equal(cfg.name, `ci-${kind}-clone`);
        assert.equal(cfg.template, false);
        assert.ok(cfg.tags.includes('jarvis-created'), `tags ${cfg.tags}`);
        assert.equal(cfg.created_by_jarvis, true);
        assert.equal(cfg.cloud_init?.user, 'ops');
        assert.equal(cfg.cloud_init?.ssh_keys_set, true);
        assert.deepEqual(cfg.cloud_init?.ip_config, ['ip=10.0.1.50/24,gw=10.0.1.1']);
        const text = JSON.stringify(cfg);
        assert.ok(!text.includes(SSH_KEY_BLOB), 'the SSH key itself is never shown');
        assert.doesNotMatch(text, /cipassword/i);

        const set = await c.call('set_guest_notes_tags', { vmid: NEW.clone, notes: 'weekly-ops CI clone', tags: ['ci', 'lab'] });
        assert.equal(set.vmid, NEW.clone);
        assert.equal(set.notes_changed, true);
        assert.ok(set.tags_before.includes('jarvis-created'));
        const idTag = set.tags_before.find((t) => /^jarvis-id-[0-9a-f]{16}$/.test(t));
        assert.ok(idTag, `the clone carries its own jarvis-id tag: ${set.tags_before}`);
        assert.deepEqual([...set.tags_after].sort(), ['ci', 'jarvis-created', idTag, 'lab'], 'jarvis-created and the id tag are kept');
        const after = await c.call('get_guest_config', { vmid: NEW.clone });
        assert.equal(after.notes, 'weekly-ops CI clone');
        assert.deepEqual([...after.tags].sort(), ['ci', 'jarvis-created', idTag, 'lab']);
        assert.equal(after.created_by_jarvis, true);
        const cleared = await c.call('set_guest_notes_tags', { vmid: NEW.clone, tags: [] });
        assert.deepEqual([...cleared.tags_after].sort(), ['jarvis-created', idTag], 'removing every tag keeps Jarvis\'s marks');
        assert.equal(cleared.notes_changed, false);
        assert.equal((await c.call('get_guest_config', { vmid: NEW.clone })).created_by_jarvis, true);
        assert.equal(c.elicitations.length, 0, 'nobody was asked');
      });

      test('YELLOW create_backup of stopped VM 104, restored into a new VMID without approval', async (t) => {
        const c = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        const backup = await c.call('create_backup', { vmid: 104, notes: 'weekly-ops {{guestname}}' });
        assertTask(backup, { vmid: 104, action: 'vzdump', node: 'agent' });
        assert.equal(backup.guest_status, 'stopped', 'a stopped guest stays stopped');
        assert.equal(backup.mode, 'snapshot');
        assert.equal(backup.storage, 'nfs-backup', 'shared backup storage first');
        assert.match(backup.volid ?? '', /^nfs-backup:backup\/vzdump-qemu-104-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.vma\.zst$/);
        assert.ok(backup.size_bytes > 0);
        assert.ok((await backupsOf(c, 104)).some((b) => b.volid === backup.volid), 'the new backup is listed');
        const log = await c.call('get_task_log', { upid: backup.upid, lines: 500 });
        assert.equal(log.status, 'stopped');
        assert.equal(log.exit_status, 'OK');
        assert.ok(log.lines.length > 0);

        const restored = await c.call('restore_backup', { volid: backup.volid, vmid: NEW.restored });
        assertTask(restored, { vmid: NEW.restored, action: 'qmrestore' });
        assert.equal(restored.new_guest, true);
        assert.equal(restored.volid, backup.volid);
        assert.match(restored.tags ?? '', /(^|;)jarvis-created(;|$)/);
        const cfg = await c.call('get_guest_config', { vmid: NEW.restored });
        assert.equal(cfg.name, 'win11');
        assert.ok(cfg.tags.includes('jarvis-created'));
        assert.equal(cfg.created_by_jarvis, true);
        const original = await c.call('get_guest_config', { vmid: 104 });
        assert.notEqual(cfg.nics[0]?.mac, original.nics[0]?.mac, 'VM 104 still exists: the restore gets new MAC addresses');
        assert.equal((await c.call('get_guest_status', { vmid: 104 })).status, 'stopped');
        assert.equal(c.elicitations.length, 0, 'nobody was asked');
      });

      test('YELLOW download_to_storage of an https URL; an http URL is refused', async (t) => {
        const c = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        const filename = `alpine-virt-3.22.1-${kind}.iso`;
        const out = await c.call('download_to_storage', {
          url: 'https://dl-cdn.alpinelinux.org/alpine/v3.22/releases/x86_64/alpine-virt-3.22.1-x86_64.iso',
          storage: 'local', node: 'home', content: 'iso', filename,
          checksum: 'a'.repeat(64), checksum_algorithm: 'sha256',
        });
        assert.equal(out.node, 'home');
        assert.equal(out.storage, 'local');
        assert.equal(out.volid, `local:iso/${filename}`);
        assert.equal(out.content, 'iso');
        assert.equal(out.checksum_verified, true);
        assert.equal(out.exit_status, 'OK');
        assert.match(out.upid, /^UPID:home:.*:download:/);
        const isos = await c.call('list_storage_content', { storage: 'local', node: 'home', content: 'iso', name_contains: filename });
        assert.deepEqual(isos.items.map((i) => i.volid), [`local:iso/${filename}`]);
        assert.equal(c.elicitations.length, 0, 'nobody was asked');
        inputErrorOf(await c.client.callTool({ name: 'download_to_storage', arguments: {
          url: 'https://dl-cdn.alpinelinux.org/alpine/v3.22/releases/x86_64/alpine-virt-3.22.1-x86_64.iso',
          storage: 'local', node: 'home', content: 'iso', filename,
        } }), /already has/);

        const plain = await c.client.callTool({ name: 'download_to_storage', arguments: {
          url: 'http://dl-cdn.alpinelinux.org/alpine/v3.22/releases/x86_64/alpine-virt-3.22.1-x86_64.iso',
          storage: 'local', node: 'home', content: 'iso', filename: `plain-${filename}`,
        } });
        inputErrorOf(plain, /https/);
        const still = await c.call('list_storage_content', { storage: 'local', node: 'home', content: 'iso', name_contains: `plain-${filename}` });
        assert.equal(still.total_items, 0, 'nothing was downloaded');
      });

      test('YELLOW refusals: a linked clone of a non-template, a clone onto an existing VMID, jarvis-created set by hand', async (t) => {
        const c = await connect(t, kind);
        inputErrorOf(await c.client.callTool({ name: 'clone_guest', arguments: { vmid: 104, name: 'linked-from-vm' } }),
          /not a template/);
        inputErrorOf(await c.client.callTool({ name: 'clone_guest', arguments: { vmid: 104, name: 'linked-from-vm', full: false } }),
          /not a template/);
        inputErrorOf(await c.client.callTool({ name: 'clone_guest', arguments: { vmid: 9000, name: 'onto-web01', new_vmid: 101 } }),
          /101/);
        inputErrorOf(await c.client.callTool({ name: 'set_guest_notes_tags', arguments: { vmid: 104, tags: ['desktop', 'jarvis-created'] } }),
          /jarvis-created/);
        const cfg = await c.call('get_guest_config', { vmid: 104 });
        assert.ok(!cfg.tags.includes('jarvis-created'));
        assert.equal(cfg.created_by_jarvis, false);
      });

      test('RED update_guest_resources of VM 106: needs_approval, `jarvis approve`, the retry runs once', async (t) => {
        const c = await connect(t, kind);
        const before = await c.call('get_guest_config', { vmid: 106 });
        const cores = before.cores + 1;
        const memory = before.memory_mib + 1024;
        const out = await viaApproval(c, 'update_guest_resources', { vmid: 106, cores, memory_mib: memory, onboot: !before.onboot },
          /106/, async () => {
            const now = await c.call('get_guest_config', { vmid: 106 });
            assert.equal(now.cores, before.cores, 'nothing changed before the approval');
            assert.equal(now.memory_mib, before.memory_mib);
          });
        assert.equal(out.vmid, 106);
        assert.equal(out.node, 'home');
        const settings = Object.fromEntries(out.changes.map((ch) => [ch.setting, ch]));
        assert.equal(settings.cores?.new, String(cores));
        assert.equal(settings.memory?.new, String(memory));
        assert.ok(settings.onboot, 'onboot changed');
        assert.deepEqual(out.restart_needed, [], 'a stopped VM takes everything at once');
        const after = await c.call('get_guest_config', { vmid: 106 });
        assert.equal(after.cores, cores);
        assert.equal(after.memory_mib, memory);
        assert.equal(after.onboot, !before.onboot);
      });

      test('RED resize_disk of container 200: shrinking refused before anyone is asked; growing via approval', async (t) => {
        const asker = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        const before = await asker.call('get_guest_config', { vmid: 200 });
        const rootfs = before.disks.find((d) => d.slot === 'rootfs');
        assert.ok(rootfs, 'container 200 has a rootfs');
        const smaller = `${Math.floor(rootfs.size_bytes / GiB) - 4}G`;
        inputErrorOf(await asker.client.callTool({ name: 'resize_disk', arguments: { vmid: 200, disk: 'rootfs', size: smaller } }),
          /shrink/);
        assert.equal(asker.elicitations.length, 0, 'nobody is asked to approve a shrink');
        const table = await approvalsTable(asker.dbPath);
        assert.ok(!table.split('\n').some((l) => /resize_disk/.test(l) && /container 200\b/.test(l)), `no approval was requested:\n${table}`);

        const c = await connect(t, kind);
        const out = await viaApproval(c, 'resize_disk', { vmid: 200, disk: 'rootfs', size: '+2G' }, /rootfs.*200|200.*rootfs/, async () => {
          const now = await c.call('get_guest_config', { vmid: 200 });
          assert.equal(now.disks.find((d) => d.slot === 'rootfs').size_bytes, rootfs.size_bytes, 'not grown before the approval');
        });
        assertTask(out, { vmid: 200, action: 'resize' });
        assert.equal(out.disk, 'rootfs');
        assert.equal(out.old_size_bytes, rootfs.size_bytes);
        assert.equal(out.new_size_bytes, rootfs.size_bytes + 2 * GiB);
        assert.equal(out.file_system_grown, true, 'Proxmox grows a container\'s file system');
        const after = await c.call('get_guest_config', { vmid: 200 });
        assert.equal(after.disks.find((d) => d.slot === 'rootfs').size_bytes, rootfs.size_bytes + 2 * GiB, 'grown exactly once');
      });

      test('RED migrate_guest of running container 201 to node home via approval', async (t) => {
        const c = await connect(t, kind);
        assert.equal((await c.call('get_guest_config', { vmid: 201 })).node, 'pve');
        const out = await viaApproval(c, 'migrate_guest', { vmid: 201, target_node: 'home' }, /201.*pve.*home/, async () => {
          assert.equal((await c.call('get_guest_config', { vmid: 201 })).node, 'pve', 'not moved before the approval');
        });
        assertTask(out, { vmid: 201, action: 'migrate', node: 'home' });
        assert.equal(out.source_node, 'pve');
        assert.equal(out.target_node, 'home');
        assert.equal(out.mode, 'restart', 'a running container moves by restart');
        assert.equal(out.guest_status, 'running');
        const status = await c.call('get_guest_status', { vmid: 201 });
        assert.equal(status.node, 'home');
        assert.equal(status.status, 'running');
      });

      test('RED delete_backup of VM 106\'s oldest backup via approval', async (t) => {
        const c = await connect(t, kind);
        const backups = await backupsOf(c, 106);
        assert.ok(backups.length >= 2, 'VM 106 has more than one backup');
        const oldest = backups.at(-1).volid;
        const out = await viaApproval(c, 'delete_backup', { volid: oldest }, new RegExp(oldest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), async () => {
          assert.ok((await backupsOf(c, 106)).some((b) => b.volid === oldest), 'still there before the approval');
        });
        assertTask(out, { vmid: 106, action: 'delete_backup' });
        assert.equal(out.volid, oldest);
        assert.equal(out.storage, 'nfs-backup');
        const left = await backupsOf(c, 106);
        assert.ok(!left.some((b) => b.volid === oldest), 'the backup is gone');
        assert.equal(left.length, backups.length - 1, 'only that one');
      });

      test('RED convert_to_template of a guest Jarvis cloned, via approval', async (t) => {
        const c = await connect(t, kind);
        await cloneTemplate(c, NEW.template, `ci-${kind}-golden`);
        const out = await viaApproval(c, 'convert_to_template', { vmid: NEW.template }, new RegExp(`${NEW.template}.*template`), async () => {
          assert.equal((await c.call('get_guest_config', { vmid: NEW.template })).template, false);
        });
        assertTask(out, { vmid: NEW.template, action: 'template', node: 'home' });
        assert.equal((await c.call('get_guest_config', { vmid: NEW.template })).template, true);
      });

      test('RED restore_backup over stopped container 203 via approval', async (t) => {
        const c = await connect(t, kind);
        const [newest] = await backupsOf(c, 203);
        assert.match(newest?.volid ?? '', /^nfs-backup:backup\/vzdump-lxc-203-/);
        const out = await viaApproval(c, 'restore_backup', { volid: newest.volid, vmid: 203 }, /203.*REPLAC/);
        assertTask(out, { vmid: 203, action: 'vzrestore', node: 'agent' });
        assert.equal(out.new_guest, false, 'the existing guest was replaced, no new one made');
        assert.equal(out.guest_status, 'stopped');
        const cfg = await c.call('get_guest_config', { vmid: 203 });
        assert.equal(cfg.name, 'old-wiki');
        assert.equal(cfg.created_by_jarvis, false, 'a restore over a guest does not make it Jarvis\'s');
      });

      test('RED delete_guest of a guest Jarvis cloned: allowed after approval', async (t) => {
        const c = await connect(t, kind);
        await cloneTemplate(c, NEW.doomed, `ci-${kind}-doomed`);
        assert.equal((await c.call('get_guest_config', { vmid: NEW.doomed })).created_by_jarvis, true);
        const out = await viaApproval(c, 'delete_guest', { vmid: NEW.doomed }, new RegExp(`${NEW.doomed}.*created by Jarvis`), async () => {
          assert.equal((await c.call('get_guest_status', { vmid: NEW.doomed })).status, 'stopped', 'still there before the approval');
        });
        assertTask(out, { vmid: NEW.doomed, action: 'destroy', node: 'home' });
        const gone = await c.client.callTool({ name: 'get_guest_status', arguments: { vmid: NEW.doomed } });
        inputErrorOf(gone, new RegExp(`no guest with VMID ${NEW.doomed}`));
        const { guests } = await c.call('get_vms');
        assert.ok(!guests.some((g) => g.vmid === NEW.doomed), 'not listed any more');
      });

      test('BLACK delete_guest of VM 106, which Jarvis did not create: blocked, nobody asked, no approval', async (t) => {
        const c = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        const sc = refusalOf(await c.client.callTool({ name: 'delete_guest', arguments: { vmid: 106 } }));
        assert.equal(sc.decision, 'blocked');
        assert.equal(sc.tier, 'black');
        assert.match(sc.reason, /not created by Jarvis/);
        assert.ok(!sc.approval_id, 'no approval id');
        assert.equal(c.elicitations.length, 0, 'nobody is asked');
        const table = await approvalsTable(c.dbPath);
        assert.ok(!table.split('\n').some((l) => /delete_guest/.test(l) && /VM 106\b/.test(l)), `no approval was created:\n${table}`);
        assert.equal((await c.call('get_guest_status', { vmid: 106 })).vmid, 106, 'VM 106 is still there');
      });

      test('protected node agent1 and VM 103: the new tools refuse every change there as protected, asking nobody', async (t) => {
        const c = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        const [of106] = await backupsOf(c, 106);
        const [of103] = await backupsOf(c, 103);
        const changes = [
          ['migrate_guest', { vmid: 104, target_node: 'agent1' }, 'red'],
          ['restore_backup', { volid: of106.volid, vmid: NEW.protectedRestore, node: 'agent1' }, 'yellow'],
          ['delete_backup', { volid: of103.volid }, 'red'],
          ['create_backup', { vmid: 103 }, 'yellow'],
          ['set_guest_notes_tags', { vmid: 103, notes: 'not here' }, 'yellow'],
          ['update_guest_resources', { vmid: 103, cores: 3 }, 'red'],
          ['resize_disk', { vmid: 202, disk: 'rootfs', size: '+1G' }, 'red'],
          ['convert_to_template', { vmid: 204 }, 'red'],
          ['download_to_storage', { url: 'https://example.org/images/tool.iso', storage: 'local', node: 'agent1', content: 'iso' }, 'yellow'],
        ];
        for (const [name, args, tier] of changes) {
          const sc = refusalOf(await c.client.callTool({ name, arguments: args }));
          assert.equal(sc.decision, 'protected', `${name} ${JSON.stringify(args)}: ${sc.reason}`);
          assert.equal(sc.tier, tier, `${name} ${JSON.stringify(args)}`);
          assert.match(sc.reason, /agent1|103/);
          assert.ok(!sc.approval_id);
        }
        assert.equal(c.elicitations.length, 0, 'nobody is asked about a protected resource');
        const cfg = await c.call('get_guest_config', { vmid: 103 });
        assert.equal(cfg.cores, 2, 'reads work; nothing changed');
        assert.equal(cfg.notes, '');
        assert.ok((await backupsOf(c, 103)).some((b) => b.volid === of103.volid));
        assert.equal((await c.call('get_guest_config', { vmid: 104 })).node, 'agent');
      });

      test('RED create_backup in stop mode of running container 200 needs a person (YELLOW otherwise)', async (t) => {
        const c = await connect(t, kind);
        const id = await needsApproval(c, 'create_backup', { vmid: 200, mode: 'stop' }, /200.*stop mode/i);
        await run(BIN, ['deny', id], { env: jarvisEnv(c.dbPath) });
        assert.equal((await c.call('get_guest_status', { vmid: 200 })).status, 'running');
      });

      test('RED with elicitation, accepted: resize_disk of a fresh clone runs after the user says yes', async (t) => {
        const c = await connect(t, kind, () => ({ action: 'accept', content: { approve: true } }));
        await cloneTemplate(c, NEW.grown, `ci-${kind}-grown`);
        const before = (await c.call('get_guest_config', { vmid: NEW.grown })).disks.find((d) => d.slot === 'scsi0');
        const target = Math.round(before.size_bytes / GiB) + 4;
        const out = await c.call('resize_disk', { vmid: NEW.grown, disk: 'scsi0', size: `${target}G` });
        assert.equal(c.elicitations.length, 1, 'exactly one confirmation was asked');
        assert.match(c.elicitations[0].message, new RegExp(String(NEW.grown)));
        assert.match(c.elicitations[0].message, /grow/i);
        assert.equal(c.elicitations[0].requestedSchema.properties.approve.type, 'boolean');
        assertTask(out, { vmid: NEW.grown, action: 'resize' });
        assert.equal(out.new_size_bytes, target * GiB);
        assert.equal(out.file_system_grown, false, 'a VM grows its file system itself');
        const after = (await c.call('get_guest_config', { vmid: NEW.grown })).disks.find((d) => d.slot === 'scsi0');
        assert.equal(after.size_bytes, target * GiB);
      });

      test('RED with elicitation, declined: delete_backup is refused as denied and the backup stays', async (t) => {
        const c = await connect(t, kind, () => ({ action: 'decline' }));
        const [newest] = await backupsOf(c, 106);
        const r = await c.client.callTool({ name: 'delete_backup', arguments: { volid: newest.volid } });
        assert.equal(c.elicitations.length, 1, 'exactly one confirmation was asked');
        assert.match(c.elicitations[0].message, /delete/i);
        assert.equal(refusalOf(r).decision, 'denied');
        assert.ok((await backupsOf(c, 106)).some((b) => b.volid === newest.volid), 'the backup is still there');
      });
    });
  }
});
