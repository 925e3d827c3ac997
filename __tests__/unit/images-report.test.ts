// The words and the pool of a run of several images (issue 20), pure: the failure text by table, the `images`
// output, the summary's row per image, and the stoppable bounded pool.
import { pushFailureMessage, preflightFailureMessage, type ImageOutcome } from '../../src/core/report/images-report.js';
import { imagesSummaryMarkdown } from '../../src/core/report/summary.js';
import { boundedPool } from '../../src/util/bounded-pool.js';
import { controlCharacterAt } from '../../src/util/untrusted.js';
import { resultOutputs } from '../../src/adapters/wiring.js';
import type { RunResult } from '../../src/core/run.js';
import type { Plan } from '../../src/core/plan.js';

const o = (target: string, state: ImageOutcome['state'], refs: string[] = []): ImageOutcome => ({
  target,
  source: `oci:${target}`,
  state,
  refs,
});

describe('pushFailureMessage', () => {
  test.each<[string, ImageOutcome[], string[]]>([
    [
      'one pushed, one failed, one never started',
      [o('api', 'pushed', ['r/a/api:1', 'r/a/api:2']), o('web', 'failed'), o('jobs', 'not-started')],
      [
        "image 'web' (oci:web): boom",
        '',
        'Already pushed, with every tag:',
        "- image 'api' (oci:api): r/a/api:1, r/a/api:2",
        "Not pushed (never started): image 'jobs' (oci:jobs)",
      ],
    ],
    [
      'the failed one first, the other stopped',
      [o('api', 'failed'), o('web', 'stopped')],
      [
        "image 'api' (oci:api): boom",
        '',
        'No image was pushed completely.',
        "Stopped while pushing (some of their tags may have reached the registry): image 'web' (oci:web)",
      ],
    ],
  ])('%s', (_name, all, lines) => {
    expect(pushFailureMessage(all.find((x) => x.state === 'failed') ?? null, 'boom', all).split('\n')).toEqual(lines);
  });

  test('a source with a newline or an escape is quoted as one inert line', () => {
    const bad = { ...o('api', 'failed'), source: 'oci:x\n::error::y\u001b[2J' };
    const lines = pushFailureMessage(bad, 'boom', [bad]).split('\n');
    expect(lines).toHaveLength(3);
    expect(controlCharacterAt(lines[0])).toBe(-1);
    expect(preflightFailureMessage(bad, 'no such file')).toMatch(
      /^image 'api' \(.*\): no such file\n\nNothing was pushed/,
    );
  });
});

function result(target: string, attempts: number): RunResult {
  const refs = [`reg.example/app/${target}:1`, `reg.example/app/${target}:2`];
  return {
    source: `oci:${target}`,
    target,
    refs,
    digest: `sha256:${target[0].repeat(64)}`,
    pinnedRef: `reg.example/app/${target}@sha256:${target[0].repeat(64)}`,
    attempts,
    totalSize: 1000,
    layerCount: 1,
    durationMs: 1000,
    dryRun: false,
    platform: null,
    platforms: {},
    indexChanged: null,
    plan: { proxyRefs: [`proxy.example/proxy/app/${target}:1`], oversized: [] } as unknown as Plan,
    replaced: [],
    split: null,
  };
}

describe('outputs and summary of several images', () => {
  const run = { images: [result('api', 1), result('web', 3)], durationMs: 2000 };

  test('refs: every reference; images: one entry each; the first image for ref/digest; attempts the most', () => {
    const out = resultOutputs(run);
    expect(out.refs.split('\n')).toEqual([...run.images[0].refs, ...run.images[1].refs]);
    expect(out.ref).toBe('reg.example/app/api:1');
    expect(out.digest).toBe(run.images[0].digest);
    expect(out.attempts).toBe('3');
    expect(JSON.parse(out.images)).toEqual(
      run.images.map((r) => ({
        source: r.source,
        target: r.target,
        refs: r.refs,
        digest: r.digest,
        'pinned-ref': r.pinnedRef,
        'proxy-refs': r.plan.proxyRefs,
        attempts: r.attempts,
        platforms: {},
      })),
    );
  });

  test('the summary has a row per image', () => {
    const md = imagesSummaryMarkdown(run);
    expect(md).toMatch(/^### replicated-push: pushed 2 images\n/);
    const rows = md.split('\n').filter((l) => /^\| `(api|web)` /.test(l));
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain('`reg.example/app/web:1`<br>`reg.example/app/web:2`');
    expect(md).toContain('#### web');
  });
});

describe('boundedPool', () => {
  test('at most `limit` at once, started in order; none started once stopped', async () => {
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const gates: Array<() => void> = [];
    let stop = false;
    const pool = boundedPool(
      [0, 1, 2, 3, 4],
      2,
      async (n) => {
        order.push(n);
        most = Math.max(most, ++running);
        await new Promise<void>((ok) => gates.push(ok));
        running--;
        if (n === 1) throw new Error('one failed');
        return n * 10;
      },
      () => stop,
    );
    const tick = () => new Promise((ok) => setImmediate(ok));
    await tick();
    gates.shift()?.(); // 0 ends; 2 starts
    await tick();
    stop = true;
    gates.shift()?.(); // 1 fails; nothing more starts
    await tick();
    gates.shift()?.(); // 2 ends
    const slots = await pool;
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2]);
    expect(slots.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'not-started', 'not-started']);
  });
});
