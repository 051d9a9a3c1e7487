// Runs the official MCP conformance suite (server mode) against a Jarvis URL and
// judges the outcome against .ci/conformance-expected-failures.txt.
//
// The suite itself is given the same list as its YAML baseline, so its own exit code
// already fails on unexpected failures and stale entries; this script reads the
// per-scenario checks.json files as well and fails unless both verdicts agree and every
// scenario that applies to a product server passed. It ends with one result line.
//
// Usage: node conformance.mjs --url http://127.0.0.1:PORT/mcp --expected-failures FILE
// (run with the Node 22 binary from node_modules/node: the suite needs Node >= 22).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

// Scenarios that test the protocol itself rather than the suite's fixtures: each must pass,
// and listing one as an expected failure is an error.
const REQUIRED = [
  'server-initialize',
  'ping',
  'logging-set-level',
  'tools-list',
  'resources-list',
  'prompts-list',
  'server-sse-multiple-streams',
  'dns-rebinding-protection',
  'tools-call-error',
];

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    'expected-failures': { type: 'string' },
  },
});
if (!opts.url || !opts['expected-failures']) {
  console.error('usage: node conformance.mjs --url URL --expected-failures FILE');
  process.exit(2);
}

// readExpectedFailures parses `<scenario>: <reason>` lines; # starts a comment.
function readExpectedFailures(file) {
  const entries = new Map();
  const problems = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const m = /^([a-z0-9][a-z0-9/_-]*)\s*:\s*(\S.*)$/.exec(line);
      if (!m) {
        problems.push(`${file}:${i + 1}: expected "<scenario>: <reason>", got ${JSON.stringify(line)}`);
      } else if (entries.has(m[1])) {
        problems.push(`${file}:${i + 1}: ${m[1]} is listed twice`);
      } else {
        entries.set(m[1], m[2]);
      }
    });
  for (const name of REQUIRED) {
    if (entries.has(name)) problems.push(`${file}: ${name} must pass and cannot be an expected failure`);
  }
  return { entries, problems };
}

const expected = readExpectedFailures(opts['expected-failures']);
if (expected.problems.length > 0) {
  for (const p of expected.problems) console.error(p);
  console.log('conformance: FAIL (the expected-failures file is malformed)');
  process.exit(1);
}

const work = mkdtempSync(path.join(tmpdir(), 'jarvis-conformance-'));
const baseline = path.join(work, 'baseline.yml');
const resultsDir = path.join(work, 'results');
// Scenario names are [a-z0-9/_-], so a plain YAML list needs no quoting.
writeFileSync(baseline, `server:\n${[...expected.entries.keys()].map((n) => `  - ${n}\n`).join('')}`);

const require = createRequire(import.meta.url);
const suitePkg = require.resolve('@modelcontextprotocol/conformance/package.json');
const suiteBin = path.join(path.dirname(suitePkg), JSON.parse(readFileSync(suitePkg, 'utf8')).bin.conformance);
const suiteVersion = JSON.parse(readFileSync(suitePkg, 'utf8')).version;

const args = [suiteBin, 'server', '--url', opts.url, '--expected-failures', baseline, '-o', resultsDir];
console.log(`$ node ${path.relative(process.cwd(), suiteBin)} server --url ${opts.url} --expected-failures <from ${opts['expected-failures']}> -o ${resultsDir}`);
const started = Date.now();
const { code: suiteExit, stdout } = await new Promise((resolve, reject) => {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    out += chunk;
    process.stdout.write(chunk);
  });
  child.on('error', reject);
  child.on('close', (code) => resolve({ code, stdout: out }));
});
const seconds = ((Date.now() - started) / 1000).toFixed(1);

// The scenarios the suite ran are the names in its summary ("✓ name: …" / "✗ name: …").
const summary = stdout.slice(stdout.lastIndexOf('=== SUMMARY ==='));
const ran = [...summary.matchAll(/^[✓✗] ([a-z0-9/_-]+): /gm)].map((m) => m[1]);
const totalLine = (/^Total: .*$/m.exec(summary) || ['(no Total line)'])[0];

// Scenario verdicts from the saved results: a FAILURE or WARNING check fails the scenario
// (the suite's baseline logic treats warnings the same way); no results at all fails it too.
const dirs = existsSync(resultsDir) ? readdirSync(resultsDir) : [];
function verdict(name) {
  const dir = dirs.find((d) => d.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '') === name);
  if (!dir) return { ok: false, why: 'no results saved' };
  const checks = JSON.parse(readFileSync(path.join(resultsDir, dir, 'checks.json'), 'utf8'));
  const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
  if (checks.length === 0) return { ok: false, why: 'no checks recorded' };
  return bad.length === 0 ? { ok: true } : { ok: false, why: bad.map((c) => `${c.status} ${c.id}: ${c.errorMessage ?? ''}`).join('; ') };
}

const passed = [];
const unexpected = [];
const expectedFailed = [];
const stale = [];
for (const name of ran) {
  const v = verdict(name);
  if (v.ok) {
    passed.push(name);
    if (expected.entries.has(name)) stale.push(name);
  } else if (expected.entries.has(name)) {
    expectedFailed.push(name);
  } else {
    unexpected.push(`${name} (${v.why})`);
  }
}
const notRun = [...expected.entries.keys()].filter((n) => !ran.includes(n));
const requiredMissing = REQUIRED.filter((n) => !passed.includes(n));

const problems = [];
if (ran.length === 0) problems.push('the suite ran no scenarios (no summary found)');
if (unexpected.length) problems.push(`unexpected failures: ${unexpected.join(', ')}`);
if (stale.length) problems.push(`stale entries (now passing, remove them): ${stale.join(', ')}`);
if (notRun.length) problems.push(`entries naming scenarios the suite did not run: ${notRun.join(', ')}`);
if (requiredMissing.length) problems.push(`required scenarios not passing: ${requiredMissing.join(', ')}`);
if (suiteExit !== 0 && problems.length === 0) problems.push(`the suite exited ${suiteExit} although every scenario matched the list`);
if (suiteExit === 0 && problems.length > 0) problems.push('the suite exited 0 although the results above disagree');

for (const p of problems) console.log(`conformance problem: ${p}`);
rmSync(work, { recursive: true, force: true });
const status = problems.length === 0 ? 'PASS' : 'FAIL';
console.log(
  `conformance ${suiteVersion}: ${status} — ${passed.length}/${ran.length} scenarios passed ` +
    `(${REQUIRED.length - requiredMissing.length}/${REQUIRED.length} required), ${expectedFailed.length} expected failures, ` +
    `${unexpected.length} unexpected, ${stale.length} stale; suite: "${totalLine}", exit ${suiteExit}; ${seconds}s`,
);
process.exit(problems.length === 0 ? 0 : 1);
