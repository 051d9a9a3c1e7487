// An agent that watches, driven by the official TypeScript MCP SDK over streamable HTTP
// against the shared `jarvis serve --demo` (harness.mjs): it subscribes to jarvis://alerts,
// the operator crashes container 200 in the simulated cluster (the demo's crash button), the
// watcher raises guest_stopped_unexpectedly, the agent hears notifications/resources/updated,
// reads the alert with the standing approval that covers it, gets the remediate_alert prompt,
// and starts the container under the rule without a person. Run by .ci/clients.sh after
// weekly-ops.test.mjs; it changes only container 200 (weekly-ops only resizes its disk).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import { BIN, HTTP_DB, HTTP_URL, jarvisEnv, login, openClient, refusalOf, run } from './harness.mjs';

const VMID = 200;
const host = (args) => run(BIN, args, { env: jarvisEnv(HTTP_DB) });

let operatorToken;
let agent;
let ruleID;
const updates = [];

before(async () => {
  operatorToken = await login();
  const name = `watcher-${randomBytes(4).toString('hex')}`;
  const { stdout: token } = await host(['token', 'create', '--name', name, '--max-tier', 'red', '--toolsets', 'power,monitoring']);
  const { stdout } = await host(['rule', 'create', '--for', name, '--tool', 'start_container', '--arg', `vmid=${VMID}`,
    '--trigger', 'guest_stopped_unexpectedly', '--per-hour', '2', '--expires', '1h', '--note', 'CI: watching agent']);
  ruleID = stdout.match(/\br_[0-9a-f]{12}\b/)?.[0];
  assert.ok(ruleID, `jarvis rule create printed no rule id:\n${stdout}`);
  agent = await openClient({ name: 'watching-agent', kind: 'http', httpToken: token.trim() });
  agent.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates.push(n.params.uri));
});

after(async () => {
  await agent?.client.close();
  if (ruleID) await host(['rule', 'revoke', ruleID]).catch(() => {});
});

async function until(what, cond, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// lastGuestsSnapshot is the newest guests snapshot the watcher put on the feed, if any.
async function lastGuestsSnapshot() {
  const res = await fetch(new URL('/api/memory/events?type=cluster&limit=20', HTTP_URL), {
    headers: { Authorization: `Bearer ${operatorToken}` },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  const events = Array.isArray(body) ? body : body.events;
  return events.filter((e) => e.details?.what === 'guests').sort((a, b) => b.id - a.id)[0];
}

async function readAlerts() {
  const res = await agent.client.readResource({ uri: 'jarvis://alerts' });
  assert.equal(res.contents[0].mimeType, 'application/json');
  return JSON.parse(res.contents[0].text).alerts;
}

test('the tools, resource and prompt for watching are offered', async () => {
  assert.ok(agent.tools.some((t) => t.name === 'list_alerts'), 'list_alerts is in the monitoring toolset');
  const { resources } = await agent.client.listResources();
  assert.ok(resources.some((r) => r.uri === 'jarvis://alerts'));
  const { prompts } = await agent.client.listPrompts();
  const remediate = prompts.find((p) => p.name === 'remediate_alert');
  assert.ok(remediate, 'remediate_alert is listed');
  assert.deepEqual(remediate.arguments.map((a) => [a.name, a.required]), [['alert_id', true]]);
});

test('a crash reaches a subscribed agent, which acts under the rule without a person', async () => {
  const seenBefore = await lastGuestsSnapshot();
  await agent.client.subscribeResource({ uri: 'jarvis://alerts' });
  const status = await agent.client.callTool({ name: 'list_alerts', arguments: {} });
  assert.equal(status.isError, undefined, JSON.stringify(status));
  // The watcher polls while someone subscribes: a crash is told from a stop only against
  // a fresh look at the guest, so wait for a guests snapshot taken since.
  await until('a fresh guests snapshot with the container running', async () => {
    const ev = await lastGuestsSnapshot();
    return ev && ev.id > (seenBefore?.id ?? 0) && ev.details.guests.some((g) => g.vmid === VMID && g.status === 'running');
  });
  updates.length = 0;

  const crash = await fetch(new URL(`/api/demo/guests/${VMID}/crash`, HTTP_URL), {
    method: 'POST', headers: { Authorization: `Bearer ${operatorToken}` },
  });
  assert.equal(crash.status, 200, `crash answered ${crash.status}: ${await crash.text()}`);

  await until('notifications/resources/updated for jarvis://alerts', () => updates.includes('jarvis://alerts'));
  const alert = await until('the crash alert', async () => (await readAlerts()).find(
    (a) => a.subject === `guest/${VMID}` && a.kind === 'guest_stopped_unexpectedly'));
  assert.equal(alert.vmid, VMID);
  assert.equal(alert.severity, 'critical');
  assert.equal(alert.rules.length, 1, JSON.stringify(alert));
  assert.equal(alert.rules[0].tool, 'start_container');
  assert.match(alert.rules[0].rule, new RegExp(`^${ruleID}/v1$`));
  assert.equal(alert.rules[0].uses_left, 2);

  const prompt = await agent.client.getPrompt({ name: 'remediate_alert', arguments: { alert_id: String(alert.id) } });
  assert.match(prompt.messages[0].content.text, new RegExp(`call start_container with exactly \\{"vmid":${VMID}\\}`));

  // No person: the rule stands in, and the SDK checks the result against the output schema.
  const started = await agent.client.callTool({ name: 'start_container', arguments: { vmid: VMID } });
  assert.notEqual(started.isError, true, JSON.stringify(started));
  assert.equal(started.structuredContent.vmid, VMID);

  // The call is in the audit log under the rule.
  const audit = await fetch(new URL('/api/audit/search?tool=start_container&decision=rule&limit=5', HTTP_URL), {
    headers: { Authorization: `Bearer ${operatorToken}` },
  });
  assert.equal(audit.status, 200);
  const rows = JSON.stringify(await audit.json());
  assert.ok(rows.includes(`rule:${ruleID}/v1`), `audit rows name the rule: ${rows}`);
});

test('without an open alert the same call needs a person', async () => {
  // The container runs again, so its crash alert resolves; the rule's trigger is closed.
  await until('the crash alert to resolve', async () => !(await readAlerts()).some((a) => a.subject === `guest/${VMID}`));
  const stop = await agent.client.callTool({ name: 'stop_container', arguments: { vmid: VMID } });
  const refusal = refusalOf(stop);
  assert.equal(refusal.decision, 'needs_approval', 'stop_container is not in the rule');
  await agent.client.unsubscribeResource({ uri: 'jarvis://alerts' });
});
