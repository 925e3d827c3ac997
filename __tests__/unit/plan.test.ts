import type { PushStrategy } from '../../src/core/policy/attestations.js';
import { readConfig, type Config } from '../../src/core/inputs.js';
import type { LayerFact } from '../../src/image/layers.js';
import {
  adviceContext,
  buildPlan,
  DEPRECATION_NOTICE,
  externalTokenTypeNotice,
  proxyRef,
  TEAM_TOKEN_WARNING,
  TOMBSTONE_WARNING,
} from '../../src/core/plan.js';

const config = (inputs: Record<string, string> = {}): Config =>
  readConfig(
    (name) => ({ 'app-slug': 'my-app', image: 'app/worker:dev', token: 't', tag: '1.0.0', ...inputs })[name] ?? '',
    { ref: '' },
  );

const fact = (index: number, size: number, instruction: string | null): LayerFact => {
  const hex = String(index).repeat(64);
  return { index, diffId: `sha256:${hex}`, shortId: hex.slice(0, 12), size, instruction };
};

const SMALL = [fact(1, 7_800_000, 'ADD file:base in /'), fact(2, 40_000_000, 'RUN make')];
const MIXED = [
  fact(1, 7_800_000, 'ADD file:base in /'),
  fact(2, 1_800_000_000, 'COPY blob /blob'),
  fact(3, 40_000_000, 'RUN make'),
  fact(4, 1_000_000_001, 'COPY data /data'),
];
const AS_IS: PushStrategy = { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false };

describe('buildPlan: refs', () => {
  test.each<[Record<string, string>, string, string, string[], string[]]>([
    [{}, 'registry.replicated.com/my-app/worker', 'my-app/worker', ['registry.replicated.com/my-app/worker:1.0.0'], []],
    [
      { tag: '1.0.0\nlatest,stable' },
      'registry.replicated.com/my-app/worker',
      'my-app/worker',
      [
        'registry.replicated.com/my-app/worker:1.0.0',
        'registry.replicated.com/my-app/worker:latest',
        'registry.replicated.com/my-app/worker:stable',
      ],
      [],
    ],
    [
      { registry: '127.0.0.1:5055', 'target-image': 'svc/api', tag: '2,3' },
      '127.0.0.1:5055/my-app/svc/api',
      'my-app/svc/api',
      ['127.0.0.1:5055/my-app/svc/api:2', '127.0.0.1:5055/my-app/svc/api:3'],
      [
        'proxy.replicated.com/proxy/my-app/127.0.0.1:5055/my-app/svc/api:2',
        'proxy.replicated.com/proxy/my-app/127.0.0.1:5055/my-app/svc/api:3',
      ],
    ],
    [
      {
        registry: 'ghcr.io',
        repository: 'my-org/worker',
        'proxy-domain': 'images.vendor.example.com',
        tag: '1.0.0,latest',
      },
      'ghcr.io/my-org/worker',
      'my-org/worker',
      ['ghcr.io/my-org/worker:1.0.0', 'ghcr.io/my-org/worker:latest'],
      [
        'images.vendor.example.com/proxy/my-app/ghcr.io/my-org/worker:1.0.0',
        'images.vendor.example.com/proxy/my-app/ghcr.io/my-org/worker:latest',
      ],
    ],
  ])('%j', (inputs, repository, repositoryPath, refs, proxyRefs) => {
    const plan = buildPlan(config(inputs), 'app/worker:dev', SMALL, AS_IS);
    expect(plan.repository).toBe(repository);
    expect(plan.repositoryPath).toBe(repositoryPath);
    expect(plan.refs).toEqual(refs);
    expect(plan.proxyRefs).toEqual(proxyRefs);
  });

  test('carries source, strategy, layers and their total size', () => {
    const strategy: PushStrategy = { kind: 'platform', platform: 'linux/amd64', reason: 'r' };
    const plan = buildPlan(config(), 'sha256:abc', MIXED, strategy);
    expect(plan.source).toBe('sha256:abc');
    expect(plan.strategy).toBe(strategy);
    expect(plan.layers).toBe(MIXED);
    expect(plan.totalSize).toBe(2_847_800_001);
    expect(buildPlan(config(), 's', [], AS_IS).totalSize).toBe(0);
  });

  test('proxyRef', () => {
    expect(proxyRef(config({ registry: 'ecr.example.com:443', repository: 'a/b' }), 'v9')).toBe(
      'proxy.replicated.com/proxy/my-app/ecr.example.com/a/b:v9', // the default port is normalized away
    );
  });
});

describe('buildPlan: notices and warnings', () => {
  test.each<[string, Record<string, string>, string[], string[]]>([
    // [name, inputs, notice titles, warning titles]
    ['registry.replicated.com by default', {}, [DEPRECATION_NOTICE.title], []],
    [
      'registry.replicated.com given explicitly',
      { registry: 'https://registry.replicated.com' },
      [DEPRECATION_NOTICE.title],
      [],
    ],
    ['an external registry', { registry: 'ghcr.io' }, [], []],
    ['a local test registry', { registry: '127.0.0.1:5055' }, [], []],
    [
      'team token on the Replicated registry',
      { 'token-type': 'team' },
      [DEPRECATION_NOTICE.title],
      [TEAM_TOKEN_WARNING.title],
    ],
    [
      'user token on the Replicated registry',
      { 'token-type': 'user', username: 'dev@example.com' },
      [DEPRECATION_NOTICE.title],
      [],
    ],
    [
      'team token on an external registry',
      { registry: 'ghcr.io', 'token-type': 'team' },
      ['token-type ignored'],
      [TEAM_TOKEN_WARNING.title],
    ],
    [
      'user token on an external registry',
      { registry: 'ghcr.io', 'token-type': 'user', username: 'dev@example.com' },
      ['token-type ignored'],
      [],
    ],
    [
      'password on an external registry',
      { registry: 'ghcr.io', 'token-type': 'password', username: 'dev@example.com' },
      ['token-type ignored'],
      [],
    ],
    ['service-account given on an external registry', { registry: 'ghcr.io', 'token-type': 'service-account' }, [], []],
  ])('%s', (_name, inputs, notices, warnings) => {
    const plan = buildPlan(config(inputs), 's', SMALL, AS_IS);
    expect(plan.notices.map((n) => n.title)).toEqual(notices);
    expect(plan.warnings.map((n) => n.title)).toEqual(warnings);
  });

  test('the notice texts', () => {
    expect(DEPRECATION_NOTICE.message).toContain('proxy.replicated.com');
    expect(TEAM_TOKEN_WARNING.title).toBe('Team API tokens are deprecated');
    expect(TEAM_TOKEN_WARNING.message).toContain("token-type 'service-account'");
    expect(DEPRECATION_NOTICE.title).toBe('registry.replicated.com is deprecated');
    expect(TOMBSTONE_WARNING.message).toContain('Delete App Images');
    expect(externalTokenTypeNotice('ghcr.io')).toEqual({
      title: 'token-type ignored',
      message:
        "token-type describes Replicated credentials; ghcr.io gets 'username' and 'token' as that registry expects.",
    });
  });
});

describe('buildPlan: oversized layers and preflight warnings', () => {
  test.each<[string, Record<string, string>, LayerFact[], number[], string[]]>([
    ['no layer over 1GB', {}, SMALL, [], []],
    ['two layers over 1GB', {}, MIXED, [2, 4], ['Layer 2 is 1.8 GB', 'Layer 4 is 1.0 GB']],
    ['limit 1.5GB', { 'max-layer-size': '1.5GB' }, MIXED, [2], ['Layer 2 is 1.8 GB']],
    ['limit 2GiB', { 'max-layer-size': '2GiB' }, MIXED, [], []],
    [
      'limit 10MB',
      { 'max-layer-size': '10MB' },
      MIXED,
      [2, 3, 4],
      ['Layer 2 is 1.8 GB', 'Layer 3 is 40.0 MB', 'Layer 4 is 1.0 GB'],
    ],
    ['layer exactly at the limit is not over', { 'max-layer-size': '1000000001' }, MIXED, [2], ['Layer 2 is 1.8 GB']],
    [
      'layer-split auto still warns',
      { 'layer-split': 'auto' },
      MIXED,
      [2, 4],
      ['Layer 2 is 1.8 GB', 'Layer 4 is 1.0 GB'],
    ],
    ['layer-split off: oversized but no warnings', { 'layer-split': 'off' }, MIXED, [2, 4], []],
    ['unknown sizes (unmatched history) warn about nothing', {}, [fact(1, 0, null), fact(2, 0, null)], [], []],
  ])('%s', (_name, inputs, layers, oversized, titles) => {
    const plan = buildPlan(config(inputs), 's', layers, AS_IS);
    expect(plan.oversized.map((l) => l.index)).toEqual(oversized);
    expect(plan.preflight.map((a) => a.title)).toEqual(titles);
  });

  test('a preflight warning names the layer count, the instruction and the limit', () => {
    const plan = buildPlan(config({ 'max-layer-size': '900MB' }), 's', MIXED, AS_IS);
    expect(plan.preflight[0].message).toContain(
      'Layer 2/4 (sha256:222222222222…, 1.8 GB uncompressed) made by `COPY blob /blob` is over max-layer-size (900 MB).',
    );
  });
});

describe('adviceContext', () => {
  test('from config and plan', () => {
    const c = config({ 'token-type': 'user', username: 'dev@example.com', 'max-layer-size': '750MiB' });
    expect(adviceContext(c, { repository: 'registry.replicated.com/my-app/worker', layers: MIXED })).toEqual({
      registry: 'registry.replicated.com',
      appSlug: 'my-app',
      repository: 'registry.replicated.com/my-app/worker',
      tokenType: 'user',
      username: 'dev@example.com',
      maxLayerSize: 786_432_000,
      layerCount: 4,
    });
  });
});
