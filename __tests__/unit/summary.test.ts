import type { PushStrategy } from '../../src/core/policy/attestations.js';
import type { LayerFact } from '../../src/image/layers.js';
import type { Plan } from '../../src/core/plan.js';
import type { RunResult } from '../../src/core/run.js';
import { failureSummaryMarkdown, summaryMarkdown } from '../../src/core/report/summary.js';

const DIGEST = 'sha256:6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b';
const OLD = 'sha256:0000000000000000000000000000000000000000000000000000000000000001';
const AS_IS: PushStrategy = { kind: 'as-is', reason: 'r', withAttestations: false };

const fact = (index: number, size: number): LayerFact => ({
  index,
  diffId: `sha256:${index}`,
  shortId: String(index),
  size,
  instruction: null,
});

function plan(over: Partial<Plan> = {}): Plan {
  return {
    repository: 'registry.replicated.com/my-app/worker',
    repositoryPath: 'my-app/worker',
    refs: [],
    proxyRefs: [],
    source: 'app/worker:dev',
    strategy: AS_IS,
    layers: [],
    totalSize: 0,
    oversized: [],
    preflight: [],
    notices: [],
    warnings: [],
    chunkable: true,
    ...over,
  };
}

function result(over: Partial<RunResult> = {}): RunResult {
  return {
    source: 'app/worker:dev',
    target: 'worker',
    refs: ['registry.replicated.com/my-app/worker:1.0.0'],
    digest: DIGEST,
    pinnedRef: `registry.replicated.com/my-app/worker@${DIGEST}`,
    attempts: 1,
    totalSize: 1_847_800_000,
    layerCount: 3,
    durationMs: 95_000,
    dryRun: false,
    platform: null,
    platforms: {},
    indexChanged: null,
    plan: plan(),
    replaced: [],
    split: null,
    ...over,
  };
}

const HEADER = ['', '| ref | digest | size | layers | attempts | duration |', '| --- | --- | --- | --- | --- | --- |'];

describe('summaryMarkdown', () => {
  test.each<[string, Partial<RunResult>, string[]]>([
    [
      'one tag',
      {},
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        `Pinned: \`registry.replicated.com/my-app/worker@${DIGEST}\``,
      ],
    ],
    [
      'two tags, two attempts',
      {
        refs: ['registry.replicated.com/my-app/worker:1.0.0', 'registry.replicated.com/my-app/worker:latest'],
        attempts: 2,
        durationMs: 12_345,
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 2 | 12.3s |`,
        `| \`registry.replicated.com/my-app/worker:latest\` | \`${DIGEST}\` | 1.8 GB | 3 | 2 | 12.3s |`,
        '',
        `Pinned: \`registry.replicated.com/my-app/worker@${DIGEST}\``,
      ],
    ],
    [
      'an index of two platforms, its attestations stripped',
      {
        pinnedRef: null,
        platforms: { 'linux/amd64': `sha256:${'1'.repeat(64)}`, 'linux/arm64': `sha256:${'2'.repeat(64)}` },
        indexChanged: { from: `sha256:${'9'.repeat(64)}`, to: DIGEST, attestations: 2, platforms: 1 },
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'The index names 2 platform manifest(s):',
        '',
        '| platform | manifest digest |',
        '| --- | --- |',
        `| \`linux/amd64\` | \`sha256:${'1'.repeat(64)}\` |`,
        `| \`linux/arm64\` | \`sha256:${'2'.repeat(64)}\` |`,
        '',
        `The source index \`sha256:${'9'.repeat(64)}\` was pushed as \`${DIGEST}\`, without its 2 attestation ` +
          "manifests and 1 platform not in 'platforms'; every platform manifest in it is the source's own.",
      ],
    ],
    [
      'a platform string from the image is shown as data',
      { pinnedRef: null, platforms: { 'linux/a|b': DIGEST } },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'The index names 1 platform manifest(s):',
        '',
        '| platform | manifest digest |',
        '| --- | --- |',
        `| \`linux/a\\|b\` | \`${DIGEST}\` |`,
      ],
    ],
    [
      'dry run',
      { dryRun: true, digest: null, pinnedRef: null, attempts: 0, durationMs: 800, totalSize: 999 },
      [
        '### replicated-push: dry run (nothing pushed)',
        ...HEADER,
        '| `registry.replicated.com/my-app/worker:1.0.0` | – | 999 B | 3 | 0 | 800ms |',
      ],
    ],
    [
      'layer-split: auto',
      {
        pinnedRef: null,
        split: {
          layersBefore: 3,
          layersAfter: 5,
          lines: ['layer 2 (1.5 GB, COPY data /data) -> 3 layers: 500 MB + 500 MB + 500 MB'],
        },
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'layer-split: auto re-layered the image: 3 layers became 5.',
        '',
        '- layer 2 (1.5 GB, COPY data /data) -> 3 layers: 500 MB + 500 MB + 500 MB',
      ],
    ],
    [
      'a pipe in a ref is escaped',
      { refs: ['a|b'], pinnedRef: null },
      ['### replicated-push: pushed', ...HEADER, `| \`a\\|b\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`],
    ],
    [
      'proxy refs',
      {
        pinnedRef: null,
        plan: plan({
          proxyRefs: [
            'proxy.replicated.com/proxy/my-app/ghcr.io/o/w:1',
            'proxy.replicated.com/proxy/my-app/ghcr.io/o/w:2',
          ],
        }),
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'Customers pull through the Replicated proxy: `proxy.replicated.com/proxy/my-app/ghcr.io/o/w:1`, `proxy.replicated.com/proxy/my-app/ghcr.io/o/w:2`',
      ],
    ],
    [
      'replaced tags (new ones are not listed)',
      {
        pinnedRef: null,
        replaced: [
          { tag: '1.0.0', digest: OLD },
          { tag: 'latest', digest: null },
        ],
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        `Replaced: \`1.0.0\` pointed to \`${OLD}\` before this run.`,
      ],
    ],
    [
      'platform pushed alone',
      { pinnedRef: null, platform: 'linux/arm64/v8' },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'Pushed the `linux/arm64/v8` manifest alone; provenance attestations were stripped (`attestations: strip`).',
      ],
    ],
    [
      'oversized layers',
      { pinnedRef: null, plan: plan({ oversized: [fact(2, 1_800_000_000), fact(4, 1_000_000_001)] }) },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'Layers over max-layer-size: 2 (1.8 GB), 4 (1.0 GB)',
      ],
    ],
    [
      'everything, in order',
      {
        platform: 'linux/amd64',
        replaced: [{ tag: '1.0.0', digest: OLD }],
        plan: plan({ proxyRefs: ['p/proxy/a/r/x:1'], oversized: [fact(2, 1_800_000_000)] }),
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        `Pinned: \`registry.replicated.com/my-app/worker@${DIGEST}\``,
        '',
        'Customers pull through the Replicated proxy: `p/proxy/a/r/x:1`',
        '',
        `Replaced: \`1.0.0\` pointed to \`${OLD}\` before this run.`,
        '',
        'Pushed the `linux/amd64` manifest alone; provenance attestations were stripped (`attestations: strip`).',
        '',
        'Layers over max-layer-size: 2 (1.8 GB)',
      ],
    ],
    ['no refs', { refs: [], pinnedRef: null }, ['### replicated-push: pushed', ...HEADER]],
    // Issue 18: an instruction is the image author's text, a digest and a tag the registry's: they render as
    // themselves, never as Markdown, and stay on their line
    [
      'an instruction with Markdown in a split line',
      {
        pinnedRef: null,
        split: {
          layersBefore: 1,
          layersAfter: 2,
          lines: ['layer 1 (2 GB, COPY <img src=x> **b** [l](https://evil.example) `x` /d) -> 2 layers: 1 GB + 1 GB'],
        },
      },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'layer-split: auto re-layered the image: 1 layers became 2.',
        '',
        '- layer 1 (2 GB, COPY \\<img src=x> \\*\\*b\\*\\* \\[l\\](https\\://evil.example) \\`x\\` /d) -> 2 layers: 1 GB + 1 GB',
      ],
    ],
    [
      'a split line that would start a quote, a heading or a second line',
      { pinnedRef: null, split: { layersBefore: 1, layersAfter: 2, lines: ['> q', '# h\n- x'] } },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'layer-split: auto re-layered the image: 1 layers became 2.',
        '',
        '- \\> q',
        '- \\# h\\\\n- x',
      ],
    ],
    [
      'a digest and a tag with backticks and a newline stay code',
      { pinnedRef: null, replaced: [{ tag: 'a`b', digest: 'sha256:x`\n# y' }] },
      [
        '### replicated-push: pushed',
        ...HEADER,
        `| \`registry.replicated.com/my-app/worker:1.0.0\` | \`${DIGEST}\` | 1.8 GB | 3 | 1 | 1m35s |`,
        '',
        'Replaced: ``a`b`` pointed to ``sha256:x`\\n# y`` before this run.',
      ],
    ],
  ])('%s', (_name, over, lines) => {
    expect(summaryMarkdown(result(over))).toBe(`${lines.join('\n')}\n`);
  });
});

describe('failureSummaryMarkdown', () => {
  test.each<[string, string, number, string]>([
    [
      'Push timed out (HTTP 524)',
      'The proxy gave up.',
      3,
      '### replicated-push: failed\n\n**Push timed out (HTTP 524)** (attempts: 3)\n\nThe proxy gave up.\n',
    ],
    [
      'Image not found locally',
      'No such image.',
      0,
      '### replicated-push: failed\n\n**Image not found locally** (attempts: 0)\n\nNo such image.\n',
    ],
    // a newline is shown, not obeyed: the title stays one line of bold text
    ['a|b\nc', 'm', 1, '### replicated-push: failed\n\n**a\\|b\\\\nc** (attempts: 1)\n\nm\n'],
    // the message quotes docker and the registry: its Markdown is escaped, its newlines shown
    [
      'Push failed',
      'docker push failed. Docker said: denied: <img src=x> **b** [l](http://e) www.e.com\n# h\n::error::x',
      1,
      '### replicated-push: failed\n\n**Push failed** (attempts: 1)\n\n' +
        'docker push failed. Docker said: denied: \\<img src=x> \\*\\*b\\*\\* \\[l\\](http\\://e) www\\.e.com\\\\n\\# h\\\\n::error::x\n',
    ],
    [
      'Push failed',
      '- 1. a list?',
      1,
      '### replicated-push: failed\n\n**Push failed** (attempts: 1)\n\n\\- 1. a list?\n',
    ],
  ])('%j', (title, message, attempts, expected) => {
    expect(failureSummaryMarkdown(title, message, attempts)).toBe(expected);
  });
});
