// src/adapters/workflow-commands.ts against @actions/core (a dev dependency): the same calls, made through both, must write
// the same bytes to stdout and to the runner's files (the random delimiter of a file command aside), for messages
// and titles built to break a command: newlines, carriage returns, '%', ':', ',' and '::'.
import * as core from '@actions/core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ours from '../../src/adapters/workflow-commands.js';
import { stdoutOf } from '../../test/support/stdout.js';

const HOSTILE = [
  'plain',
  '',
  'two\nlines',
  'crlf\r\n::error::injected',
  '100% done',
  '%0A already escaped',
  'a: b, c',
  '::add-mask::x',
  'ünïcode ✓',
];

let dir: string;
let saved: NodeJS.ProcessEnv;
const summaryDir = mkdtempSync(join(tmpdir(), 'rp-wfc-summary-'));
const SUMMARY = join(summaryDir, 'summary.md');
afterAll(() => rmSync(summaryDir, { recursive: true, force: true }));
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-wfc-'));
  saved = { ...process.env };
});
afterEach(() => {
  process.env = saved;
  rmSync(dir, { recursive: true, force: true });
});

/** What fn appends to a fresh file named by env `name`, with each random delimiter replaced by DELIM. */
async function fileOf(name: string, fn: () => unknown): Promise<string> {
  const file = join(dir, `${name}-${Math.random()}`);
  writeFileSync(file, '');
  process.env[name] = file;
  await stdoutOf(fn);
  return readFileSync(file, 'utf8').replace(/ghadelimiter_[0-9a-f-]{36}/g, 'DELIM');
}

describe.each(HOSTILE)('the same bytes as @actions/core for %j', (text) => {
  test.each([
    ['info', () => core.info(text), () => ours.info(text)],
    ['debug', () => core.debug(text), () => ours.debug(text)],
    ['setSecret', () => core.setSecret(text), () => ours.setSecret(text)],
    ['notice with a title', () => core.notice(text, { title: text }), () => ours.notice(text, { title: text })],
    ['warning with a title', () => core.warning(text, { title: text }), () => ours.warning(text, { title: text })],
    ['error with a title', () => core.error(text, { title: text }), () => ours.error(text, { title: text })],
    ['warning without a title', () => core.warning(text), () => ours.warning(text)],
    ['group', () => core.group(text, async () => core.info('in')), () => ours.group(text, async () => ours.info('in'))],
  ])('%s', async (_name, theirs, mine) => {
    expect(await stdoutOf(mine)).toBe(await stdoutOf(theirs));
  });

  test('outputs and state, to the runner files', async () => {
    expect(await fileOf('GITHUB_OUTPUT', () => ours.setOutput('digest', text))).toBe(
      await fileOf('GITHUB_OUTPUT', () => core.setOutput('digest', text)),
    );
    expect(await fileOf('GITHUB_STATE', () => ours.saveState('workDir', text))).toBe(
      await fileOf('GITHUB_STATE', () => core.saveState('workDir', text)),
    );
  });

  test('outputs and state on a runner without the files: the old stdout commands', async () => {
    delete process.env.GITHUB_OUTPUT;
    delete process.env.GITHUB_STATE;
    expect(await stdoutOf(() => ours.setOutput('digest', text))).toBe(
      await stdoutOf(() => core.setOutput('digest', text)),
    );
    expect(await stdoutOf(() => ours.saveState('s', text))).toBe(await stdoutOf(() => core.saveState('s', text)));
  });

  test('the job summary', async () => {
    // @actions/core's summary keeps the first path it saw: one file for every case, emptied before each write.
    const summary = (fn: () => unknown) => async () => {
      writeFileSync(SUMMARY, '');
      process.env.GITHUB_STEP_SUMMARY = SUMMARY;
      await fn();
      return readFileSync(SUMMARY, 'utf8');
    };
    const mine = await summary(() => ours.appendSummary(text))();
    expect(mine).toBe(await summary(() => core.summary.addRaw(text).write())());
    expect(mine).toBe(text);
  });
});

describe('inputs and state from the environment', () => {
  test.each([
    ['app-slug', 'INPUT_APP-SLUG', '  my-app \n', 'my-app'],
    ['max layer size', 'INPUT_MAX_LAYER_SIZE', '2GB', '2GB'],
    ['token', 'INPUT_TOKEN', undefined, ''],
  ])('getInput(%j)', (name, env, value, expected) => {
    if (value === undefined) delete process.env[env];
    else process.env[env] = value;
    expect(ours.getInput(name)).toBe(expected);
    expect(ours.getInput(name)).toBe(core.getInput(name));
  });

  test('getState', () => {
    process.env.STATE_workDir = '/tmp/x';
    expect(ours.getState('workDir')).toBe(core.getState('workDir'));
    expect(ours.getState('missing')).toBe(core.getState('missing'));
  });
});

describe('failures', () => {
  test('a file command whose file is gone throws, as @actions/core does', () => {
    process.env.GITHUB_OUTPUT = join(dir, 'gone');
    expect(() => ours.setOutput('a', 'b')).toThrow(`Missing file at path: ${join(dir, 'gone')}`);
    expect(() => core.setOutput('a', 'b')).toThrow(`Missing file at path: ${join(dir, 'gone')}`);
  });

  test('no summary file, or one that cannot be written, throws (main.ts makes the summary optional)', async () => {
    delete process.env.GITHUB_STEP_SUMMARY;
    await expect(ours.appendSummary('x')).rejects.toThrow('GITHUB_STEP_SUMMARY');
    process.env.GITHUB_STEP_SUMMARY = join(dir, 'missing', 'summary.md');
    await expect(ours.appendSummary('x')).rejects.toThrow('Unable to access summary file');
  });

  test('a group ends even when its function throws', async () => {
    const out = await stdoutOf(() =>
      ours
        .group('g', async () => {
          throw new Error('inside');
        })
        .catch(() => undefined),
    );
    expect(out).toBe('::group::g\n::endgroup::\n');
  });
});
