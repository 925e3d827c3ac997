// Reads what .ci/tests left in DIR (runs.tsv: name, exit status, seconds, limit; NAME.json: jest's --json) and
// ends CI's test section with "N passed, M failed" (", K skipped") alone on a line. It counts what jest's own
// summary can hide: a run that hit its time limit or wrote no results, a test file that never ran (fewer suites
// than files), a suite that failed outside its tests (a failing afterAll, a file that does not load), a skipped
// test (no test skips itself; in an end-to-end test it means a missing engine). Each is a failure.
//   node .ci/test-results.mjs DIR
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const dir = process.argv[2] ?? '.rig/results';
const testFiles = (d) =>
  readdirSync(d, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join(d, f))
    .sort();
const expected = { unit: testFiles('__tests__/unit'), e2e: testFiles('__tests__/e2e') };

const problems = [];
let passed = 0;
let failed = 0;
let skipped = 0;
const ranE2e = new Set();

function readRun(name, code, seconds, limit) {
  const took = `${seconds} s`;
  if (code === 'not-started') return void problems.push(`${name}: not started, the end-to-end budget was spent`);
  // timeout(1): 124 when TERM ended the run, 137 when KILL had to (--kill-after)
  if (code === '124' || code === '137')
    return void problems.push(`${name}: TIMED OUT after ${took} (limit ${limit} s, exit ${code}): a test hangs`);
  const file = join(dir, `${name}.json`);
  if (!existsSync(file)) return void problems.push(`${name}: jest wrote no results (exit ${code}, ${took})`);
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const before = problems.length;
  const suites = r.testResults.map((s) => ({ ...s, file: relative(process.cwd(), s.name) }));
  const want = name.startsWith('unit-') ? expected.unit : [];
  for (const missing of want.filter((f) => !suites.some((s) => s.file === f)))
    problems.push(`${name}: ${missing} did not run`);
  for (const s of suites) {
    if (s.file.startsWith('__tests__/e2e/')) ranE2e.add(s.file);
    if (s.status === 'failed' && !s.assertionResults.some((a) => a.status === 'failed')) {
      const why = (s.message || '').split('\n').filter(Boolean).slice(0, 3).join('\n  ');
      problems.push(`${name}: suite failed outside its tests: ${s.file}\n  ${why}`);
    }
    for (const a of s.assertionResults.filter((t) => t.status !== 'passed' && t.status !== 'failed'))
      problems.push(`${name}: skipped (${a.status}): ${s.file}: ${a.fullName}`);
  }
  const runFailed = r.numFailedTests;
  const runSkipped = r.numPendingTests + r.numTodoTests;
  passed += r.numPassedTests;
  failed += runFailed;
  skipped += runSkipped;
  if (r.numTotalTests === 0) problems.push(`${name}: no test ran`);
  // a non-zero exit that nothing above explains (jest's own error after the results) is one failure
  if (code !== '0' && runFailed === 0 && problems.length === before)
    problems.push(`${name}: jest exited ${code} with no failed test`);
  console.log(
    `${name}: ${suites.length} suites, ${r.numPassedTests} passed, ${runFailed} failed, ${runSkipped} skipped, ${took}`,
  );
}

const runsFile = join(dir, 'runs.tsv');
const runs = existsSync(runsFile) ? readFileSync(runsFile, 'utf8').trim().split('\n').filter(Boolean) : [];
if (runs.length === 0) problems.push('no test run was recorded');
for (const line of runs) readRun(...line.split('\t'));
for (const missing of expected.e2e.filter((f) => !ranE2e.has(f))) problems.push(`e2e: ${missing} did not run`);

// a skipped test is already counted as skipped; every other problem is one failure more
const extra = problems.filter((p) => !/: skipped \(/.test(p)).length;
for (const p of problems) console.log(p);
const suites = `unit files ${expected.unit.length} (x2: Node 20 and 24), e2e files ${expected.e2e.length} (${ranE2e.size} ran)`;
console.log(suites);
console.log(`${passed} passed, ${failed + extra} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(problems.length > 0 || failed > 0 ? 1 : 0);
