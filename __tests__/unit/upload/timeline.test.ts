// The debug timeline (issue 21): RP_TIMELINE names a file and each step is one JSON line in it, stamped; unset,
// nothing is written anywhere; a file that cannot be opened loses the timeline, never the run.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mark, resetTimeline } from '../../../src/upload/timeline.js';

let dir: string;
const before = process.env.RP_TIMELINE;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'rp-timeline-'))));
afterEach(() => {
  resetTimeline();
  if (before === undefined) delete process.env.RP_TIMELINE;
  else process.env.RP_TIMELINE = before;
  rmSync(dir, { recursive: true, force: true });
});

test('RP_TIMELINE=FILE: one JSON line per step, with the time since the process started and the fields', () => {
  const file = join(dir, 'timeline.jsonl');
  process.env.RP_TIMELINE = file;
  resetTimeline();
  mark('patch-start', { digest: 'sha256:' + 'a'.repeat(64), start: 0, length: 32 });
  mark('engine-push-end');
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines.map((l) => l.event)).toEqual(['patch-start', 'engine-push-end']);
  expect(lines[0]).toMatchObject({ pid: process.pid, start: 0, length: 32 });
  expect(typeof lines[0].t).toBe('number');
  expect(lines[1].t as number).toBeGreaterThanOrEqual(lines[0].t as number);
});

test('unset: nothing is written', () => {
  delete process.env.RP_TIMELINE;
  resetTimeline();
  mark('patch-start', { start: 0 });
  expect(readdirSync(dir)).toEqual([]);
});

test('a file that cannot be opened: mark does not throw, and nothing is made', () => {
  process.env.RP_TIMELINE = join(dir, 'no-such-dir', 'timeline.jsonl');
  resetTimeline();
  expect(() => mark('patch-start')).not.toThrow();
  expect(readdirSync(dir)).toEqual([]);
});
