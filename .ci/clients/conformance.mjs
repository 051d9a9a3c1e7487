// Runs an official MCP conformance suite (server mode) against a Jarvis URL and judges
// the outcome against an expected-failures file.
//
// Two runs use it (.ci/clients.sh):
//   - @modelcontextprotocol/conformance 0.1.16, its active suite (protocol 2025-11-25 and
//     older), judged against .ci/conformance-expected-failures.txt;
//   - the 0.2 suite (npm alias conformance-0.2) with `--requirements 2026-07-28`: the frozen
//     set of scenarios the 2026-07-28 revision requires, run at that revision's wire, plus
//     the ones it runs but does not score; judged against
//     .ci/conformance-2026-07-28-expected-failures.txt.
//
// The expected-failures file has one entry a line, each with its reason (# starts a comment):
//   <scenario>: <reason>             every failing check of the scenario is expected
//   <scenario>:<check-id>: <reason>  only that check may fail (0.2 suites and later)
// The separator before the reason is a colon followed by a space; the one between scenario and
// check has no space. A FAILURE or a WARNING is a failure. Scenarios are judged check by check:
// any failing check not covered by an entry is unexpected; a scenario entry whose scenario
// failed nothing, or a check entry whose check passed or was not emitted, is stale; an entry
// naming a scenario that was not run (or is not judged) is an error. The scenarios in REQUIRED
// for the run must pass every check and cannot be listed at all.
//
// Under --requirements, scenarios the requirement set runs but does not score are judged too
// when their reason is `pending` (a revision's requirement that the suite's own reference
// fixture cannot pass yet: Jarvis may well pass it, and some of it Jarvis must). Those with
// reason `extension` (the optional tasks extension, which Jarvis does not declare) are run
// and counted, never judged.
//
// The suite itself is given the same entries as its YAML baseline, so its own exit code
// already fails on unexpected failures and stale entries among what it judges; this script
// reads the per-scenario checks.json files as well and fails unless both verdicts agree. It
// ends with one result line.
//
// Usage: node conformance.mjs --url http://127.0.0.1:PORT/mcp --expected-failures FILE
//          [--suite-package NAME] [--requirements REVISION]
//   --suite-package  the npm dependency holding the suite (default
//                    @modelcontextprotocol/conformance; conformance-0.2 for the 0.2 suite)
//   --requirements   a spec revision (e.g. 2026-07-28): run the suite's frozen requirement set
//                    for it instead of its default active suite
// (run with the Node 22 binary from node_modules/node: the suites need Node >= 22).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

// Scenarios that test the protocol itself rather than the suite's fixtures, for each kind of
// run (`active`: the suite's default; otherwise the revision given to --requirements). Each
// must pass every check, and listing one in the expected-failures file is an error.
const REQUIRED = {
  active: [
    'server-initialize',
    'ping',
    'logging-set-level',
    'tools-list',
    'resources-list',
    'prompts-list',
    'server-sse-multiple-streams',
    'dns-rebinding-protection',
    'tools-call-error',
  ],
  '2026-07-28': [
    'tools-list',
    'tools-call-error',
    'server-sse-multiple-streams',
    'resources-list',
    'sep-2164-resource-not-found',
    'prompts-list',
    'dns-rebinding-protection',
    'caching',
    'input-required-result-unsupported-methods',
    // not scored by the suite (pending against its reference fixture), required here: the
    // Mcp-Method / Mcp-Name / Mcp-Protocol-Version header validation of SEP-2243.
    'http-header-validation',
  ],
};

// Reasons a requirement set gives for running a scenario without scoring it, and whether this
// script judges such scenarios (see the header).
const JUDGE_NOT_SCORED = { pending: true, 'added-after-release': true, extension: false };

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    'expected-failures': { type: 'string' },
    'suite-package': { type: 'string', default: '@modelcontextprotocol/conformance' },
    requirements: { type: 'string' },
  },
});
if (!opts.url || !opts['expected-failures']) {
  console.error('usage: node conformance.mjs --url URL --expected-failures FILE [--suite-package NAME] [--requirements REVISION]');
  process.exit(2);
}
const runKind = opts.requirements ?? 'active';
const required = REQUIRED[runKind];
if (!required) {
  console.error(`conformance.mjs knows no REQUIRED list for ${runKind}; add one (known: ${Object.keys(REQUIRED).join(', ')})`);
  process.exit(2);
}

const require = createRequire(import.meta.url);
const suitePkg = require.resolve(`${opts['suite-package']}/package.json`);
const suiteMeta = JSON.parse(readFileSync(suitePkg, 'utf8'));
const suiteBin = path.join(path.dirname(suitePkg), suiteMeta.bin.conformance);
const suiteVersion = suiteMeta.version;
// Check-level baseline entries arrived with the 0.2 suites.
const [major, minor] = suiteVersion.split('.').map(Number);
const suiteTakesChecks = major > 0 || minor >= 2;

// readExpectedFailures parses the file (see the header). Entries are keyed by
// "<scenario>" or "<scenario>:<check-id>".
function readExpectedFailures(file) {
  const entries = new Map(); // key -> { scenario, check, reason, line }
  const problems = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      const where = `${file}:${i + 1}`;
      if (line === '' || line.startsWith('#')) return;
      const m = /^([a-z0-9][a-z0-9/_-]*)(?::([a-z0-9][a-z0-9._-]*))?:(?:\s+(\S.*))?$/.exec(line);
      if (!m) {
        problems.push(`${where}: expected "<scenario>: <reason>" or "<scenario>:<check-id>: <reason>", got ${JSON.stringify(line)}`);
        return;
      }
      const [, scenario, check, reason] = m;
      const key = check ? `${scenario}:${check}` : scenario;
      if (!reason) problems.push(`${where}: ${key} has no reason; every entry says why it is expected to fail`);
      else if (entries.has(key)) problems.push(`${where}: ${key} is listed twice`);
      else if (check && !suiteTakesChecks) problems.push(`${where}: ${key}: the suite ${suiteVersion} takes whole scenarios only`);
      else entries.set(key, { scenario, check, reason, line: i + 1 });
    });
  const whole = new Set([...entries.values()].filter((e) => !e.check).map((e) => e.scenario));
  for (const e of entries.values()) {
    if (e.check && whole.has(e.scenario)) {
      problems.push(`${file}:${e.line}: ${e.scenario}:${e.check} is redundant: the whole scenario ${e.scenario} is listed`);
    }
    if (required.includes(e.scenario)) {
      problems.push(`${file}:${e.line}: ${e.scenario} is required for this run (${runKind}): it must pass and cannot be an expected failure`);
    }
  }
  return { entries, problems };
}

const expected = readExpectedFailures(opts['expected-failures']);
const label = `conformance ${suiteVersion}${opts.requirements ? ` requirements ${opts.requirements}` : ''}`;
if (expected.problems.length > 0) {
  for (const p of expected.problems) console.error(p);
  console.log(`${label}: FAIL (the expected-failures file is malformed)`);
  process.exit(1);
}
const wholeEntries = new Set([...expected.entries.values()].filter((e) => !e.check).map((e) => e.scenario));
const checkEntries = new Map(); // scenario -> Set(check ids)
for (const e of expected.entries.values()) {
  if (!e.check) continue;
  if (!checkEntries.has(e.scenario)) checkEntries.set(e.scenario, new Set());
  checkEntries.get(e.scenario).add(e.check);
}

// notScored maps each scenario the requirement set runs without scoring to its reason.
const notScored = new Map();
if (opts.requirements) {
  const reqFile = path.join(path.dirname(suitePkg), 'requirements', `${opts.requirements}.yaml`);
  if (!existsSync(reqFile)) {
    console.log(`${label}: FAIL (the suite has no requirement set ${reqFile})`);
    process.exit(1);
  }
  const YAML = createRequire(suitePkg)('yaml');
  for (const n of YAML.parse(readFileSync(reqFile, 'utf8')).not_scored ?? []) {
    if (n.leg === 'server') notScored.set(n.scenario, n.reason);
  }
  for (const [name, reason] of notScored) {
    if (!(reason in JUDGE_NOT_SCORED)) {
      console.log(`${label}: FAIL (${name} is not scored for a reason this script does not know: ${reason}; add it to JUDGE_NOT_SCORED)`);
      process.exit(1);
    }
  }
}
const judged = (name) => !notScored.has(name) || JUDGE_NOT_SCORED[notScored.get(name)];
// What the suite's own baseline logic covers: under --requirements only the scored scenarios.
const suiteJudges = (name) => !opts.requirements || !notScored.has(name);

const work = mkdtempSync(path.join(tmpdir(), 'jarvis-conformance-'));
const baseline = path.join(work, 'baseline.yml');
const resultsDir = path.join(work, 'results');
// Names are [a-z0-9/_-] (check ids also "."), so a plain YAML list needs no quoting; a check
// entry is written "scenario:check" with no space, which YAML reads as one string.
writeFileSync(baseline, `server:\n${[...expected.entries.keys()].map((k) => `  - ${k}\n`).join('')}`);

const suiteArgs = ['server', '--url', opts.url];
if (opts.requirements) suiteArgs.push('--requirements', opts.requirements);
const args = [suiteBin, ...suiteArgs, '--expected-failures', baseline, '-o', resultsDir];
console.log(`$ node ${path.relative(process.cwd(), suiteBin)} ${suiteArgs.join(' ')} --expected-failures <from ${opts['expected-failures']}> -o ${resultsDir}`);
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

// checksOf reads a scenario's saved checks, one per check id with its worst status (a check
// may be emitted more than once); INFO checks are dropped. null when nothing was saved.
const dirs = existsSync(resultsDir) ? readdirSync(resultsDir) : [];
const rank = { FAILURE: 3, WARNING: 2, SUCCESS: 1 };
function checksOf(name) {
  const dir = dirs.find((d) => d.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '') === name);
  const file = dir && path.join(resultsDir, dir, 'checks.json');
  if (!file || !existsSync(file)) return null;
  const byId = new Map();
  for (const c of JSON.parse(readFileSync(file, 'utf8'))) {
    if (c.status === 'INFO') continue;
    const prev = byId.get(c.id);
    if (!prev || (rank[c.status] ?? 0) >= (rank[prev.status] ?? 0)) byId.set(c.id, c);
  }
  return [...byId.values()];
}
const failing = (c) => c.status === 'FAILURE' || c.status === 'WARNING';
const describe = (c) => `${c.status} ${c.id}: ${(c.errorMessage ?? '').slice(0, 300)}`;

const passed = []; // every check passed
const expectedFailed = []; // failed only what the file lists
const unexpected = []; // "scenario[:check] (why)"
const stale = []; // entry keys
const notJudged = []; // run, not judged (extension)
const suiteView = { unexpected: 0, stale: 0 }; // the part the suite's own baseline logic sees
const note = (kind, name, item) => {
  (kind === 'unexpected' ? unexpected : stale).push(item);
  if (suiteJudges(name)) suiteView[kind]++;
};
for (const name of ran) {
  if (!judged(name)) {
    notJudged.push(name);
    continue;
  }
  const checks = checksOf(name);
  if (checks === null || checks.length === 0) {
    note('unexpected', name, `${name} (${checks === null ? 'no results saved' : 'no checks recorded'})`);
    continue;
  }
  const bad = checks.filter(failing);
  if (wholeEntries.has(name)) {
    if (bad.length === 0) note('stale', name, name);
    else expectedFailed.push(name);
    continue;
  }
  const listed = checkEntries.get(name) ?? new Set();
  const surprises = bad.filter((c) => !listed.has(c.id));
  for (const c of surprises) note('unexpected', name, `${name}:${c.id} (${describe(c)})`);
  for (const id of listed) {
    const c = checks.find((x) => x.id === id);
    if (!c) note('stale', name, `${name}:${id} (check not emitted)`);
    else if (!failing(c)) note('stale', name, `${name}:${id} (now ${c.status})`);
  }
  if (bad.length === 0) passed.push(name);
  else if (surprises.length === 0) expectedFailed.push(name);
}
const entryScenarios = new Set([...expected.entries.values()].map((e) => e.scenario));
const notRun = [...entryScenarios].filter((n) => !ran.includes(n));
const listedNotJudged = [...entryScenarios].filter((n) => notJudged.includes(n));
const requiredMissing = required.filter((n) => !passed.includes(n));
const notJudgedFailing = notJudged.filter((n) => (checksOf(n) ?? []).some(failing));

const problems = [];
if (ran.length === 0) problems.push('the suite ran no scenarios (no summary found)');
if (unexpected.length) problems.push(`unexpected failures: ${unexpected.join(', ')}`);
if (stale.length) problems.push(`stale entries (now passing, remove them): ${stale.join(', ')}`);
if (notRun.length) problems.push(`entries naming scenarios the suite did not run: ${notRun.join(', ')}`);
if (listedNotJudged.length) problems.push(`entries naming scenarios that are not judged (${[...new Set(listedNotJudged.map((n) => notScored.get(n)))].join(', ')}): ${listedNotJudged.join(', ')}`);
if (requiredMissing.length) problems.push(`required scenarios not passing: ${requiredMissing.join(', ')}`);
const suiteShouldFail = suiteView.unexpected + suiteView.stale > 0;
if (suiteExit !== 0 && !suiteShouldFail) problems.push(`the suite exited ${suiteExit} although every scenario it judges matched the list`);
if (suiteExit === 0 && suiteShouldFail) problems.push('the suite exited 0 although the results above disagree');

for (const p of problems) console.log(`conformance problem: ${p}`);
rmSync(work, { recursive: true, force: true });
const judgedCount = ran.length - notJudged.length;
const checkLevel = expectedFailed.filter((n) => !wholeEntries.has(n)).length;
const status = problems.length === 0 ? 'PASS' : 'FAIL';
console.log(
  `${label}: ${status} — ${passed.length}/${judgedCount} scenarios passed ` +
    `(${required.length - requiredMissing.length}/${required.length} required), ${expectedFailed.length} expected failures` +
    `${checkLevel ? ` (${checkLevel} by check)` : ''}, ${unexpected.length} unexpected, ${stale.length} stale` +
    `${notJudged.length ? `; ${notJudged.length} not judged (extension), ${notJudgedFailing.length} of them failing` : ''}` +
    `; suite: "${totalLine}", exit ${suiteExit}; ${seconds}s`,
);
process.exit(problems.length === 0 ? 0 : 1);
