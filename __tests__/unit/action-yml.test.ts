// action.yml's `inputs:` must equal the one table of inputs (src/core/input-table.ts): CI fails on any drift. To
// change an input, change INPUTS, then action.yml to match, then `node scripts/docs.mjs` for the README table.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { INPUTS } from '../../src/core/input-table.js';
import { resultOutputs } from '../../src/adapters/wiring.js';
import type { RunResult } from '../../src/core/run.js';

/** Enough of a result for resultOutputs to name its outputs. */
const fakeResult = {
  refs: ['r/a/b:1'],
  digest: null,
  pinnedRef: null,
  attempts: 1,
  platforms: {},
  plan: { proxyRefs: [] },
  replaced: [],
} as unknown as RunResult;

interface YamlInput {
  description?: unknown;
  required?: unknown;
  default?: unknown;
  [key: string]: unknown;
}

const action = parse(readFileSync(new URL('../../action.yml', import.meta.url), 'utf8')) as {
  inputs: Record<string, YamlInput>;
  outputs: Record<string, unknown>;
};

/** What action.yml should say for the table's inputs, in the table's order. */
function expected(): [string, YamlInput][] {
  return INPUTS.map((i) => {
    const entry: YamlInput = { description: i.description, required: i.required };
    if ('default' in i) entry.default = i.default;
    return [i.name, entry];
  });
}

describe('action.yml inputs agree with INPUTS', () => {
  test('the same names, in the same order', () => {
    expect(Object.keys(action.inputs)).toEqual(INPUTS.map((i) => i.name));
  });

  test.each(expected())('%s: description, required and default as in the table', (name, entry) => {
    expect(action.inputs[name]).toEqual(entry);
  });

  test.each(Object.entries(action.inputs))('%s: a default, when shown, is a string', (_name, input) => {
    if ('default' in input) expect(typeof input.default).toBe('string');
  });

  test('required is written out for every input (GitHub shows it)', () => {
    for (const input of Object.values(action.inputs)) expect(typeof input.required).toBe('boolean');
  });

  test('the outputs declared are the ones the action sets (resultOutputs)', () => {
    const names = Object.keys(resultOutputs({ images: [fakeResult], durationMs: 0 }));
    expect(Object.keys(action.outputs).sort()).toEqual(names.sort());
  });

  test('outputs are still declared', () => {
    expect(Object.keys(action.outputs)).toEqual(
      expect.arrayContaining(['ref', 'refs', 'digest', 'pinned-ref', 'attempts', 'proxy-ref', 'replaced-digest']),
    );
  });
});
