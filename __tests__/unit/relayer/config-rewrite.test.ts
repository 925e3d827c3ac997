// The config after a split: diff_ids and history change as specified, every other byte stays.
import { rewriteConfig, topLevelSpans } from '../../../src/layer-split/config-rewrite.js';

const L1 = 'sha256:1111';
const L2 = 'sha256:2222';
const L3 = 'sha256:3333';

// Written the way engines write it, with things a JSON round trip would change: a number beyond 2^53,
// escapes, key order, a key that looks like an integer, and strings holding brackets and quotes.
const config =
  `{"architecture":"amd64","config":{"Env":["A=\\"[{x}]\\"","PATH=/usr/bin"],"Labels":{"2":"b","1":"a","\\u00e9t\\u00e9":"summer"},` +
  `"Healthcheck":{"Interval":9007199254740993}},"created":"2024-01-01T00:00:00Z",` +
  `"history":[{"created":"2024-01-01T00:00:00Z","created_by":"COPY a /a # buildkit","comment":"buildkit.dockerfile.v0"},` +
  `{"created":"2024-01-01T00:00:01Z","created_by":"ENV X=1","empty_layer":true},` +
  `{"created":"2024-01-01T00:00:02Z","created_by":"COPY big /big"},{"created_by":"RUN true","author":"me"}],` +
  `"os":"linux","rootfs":{"type":"layers","diff_ids":["${L1}","${L2}","${L3}"]}}`;

function outside(text: string): string {
  const spans = topLevelSpans(text);
  const [r0, r1] = spans.get('rootfs') as [number, number];
  const [h0, h1] = spans.get('history') as [number, number];
  return text.slice(0, h0) + text.slice(h1, r0) + text.slice(r1);
}

describe('rewriteConfig', () => {
  const pieces = ['sha256:aaaa', 'sha256:bbbb', 'sha256:cccc'];
  const result = rewriteConfig(config, [
    { diffId: L1, pieces: null },
    { diffId: L2, pieces },
    { diffId: L3, pieces: null },
  ]);
  const after = JSON.parse(result.text) as {
    rootfs: { type: string; diff_ids: string[] };
    history: Array<Record<string, unknown>>;
  };

  test('rootfs.diff_ids lists the pieces in place of the split layer, in order', () => {
    expect(after.rootfs).toEqual({ type: 'layers', diff_ids: [L1, ...pieces, L3] });
  });

  test("the split layer's history entry becomes one entry per piece; empty_layer entries are untouched", () => {
    expect(after.history).toEqual([
      { created: '2024-01-01T00:00:00Z', created_by: 'COPY a /a # buildkit', comment: 'buildkit.dockerfile.v0' },
      { created: '2024-01-01T00:00:01Z', created_by: 'ENV X=1', empty_layer: true },
      { created: '2024-01-01T00:00:02Z', created_by: 'COPY big /big (part 1/3)' },
      { created: '2024-01-01T00:00:02Z', created_by: 'COPY big /big (part 2/3)' },
      { created: '2024-01-01T00:00:02Z', created_by: 'COPY big /big (part 3/3)' },
      { created_by: 'RUN true', author: 'me' },
    ]);
    expect(result.historyRewritten).toBe(true);
  });

  test('every other byte is unchanged (number precision, escapes and key order included)', () => {
    expect(outside(result.text)).toBe(outside(config));
    expect(result.text).toContain('9007199254740993');
    expect(result.text).toContain('"Labels":{"2":"b","1":"a","\\u00e9t\\u00e9":"summer"}');
  });

  test('history that does not match the layers one to one is left as it was', () => {
    const odd = config.replace(',{"created_by":"RUN true","author":"me"}', '');
    const r = rewriteConfig(odd, [
      { diffId: L1, pieces: null },
      { diffId: L2, pieces: ['sha256:aa', 'sha256:bb'] },
      { diffId: L3, pieces: null },
    ]);
    expect(r.historyRewritten).toBe(false);
    expect(JSON.parse(r.text).history).toEqual(JSON.parse(odd).history);
    expect(JSON.parse(r.text).rootfs.diff_ids).toHaveLength(4);
  });

  test('a config whose diff_ids are not the layers given is refused', () => {
    expect(() => rewriteConfig(config, [{ diffId: L1, pieces: null }])).toThrow(/do not match/);
  });

  test.each([
    ['{"a":1,"b":"x"}', { a: [5, 6], b: [11, 14] }],
    ['{ "a" : [1,{"]":"}"}] , "b":{"c":"\\"}"} }', { a: [8, 21], b: [28, 39] }],
  ])('topLevelSpans(%s)', (text, expected) => {
    expect(Object.fromEntries(topLevelSpans(text))).toEqual(expected);
  });
});
