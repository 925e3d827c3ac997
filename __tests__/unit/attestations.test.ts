import { apiAtLeast, type EngineManifest } from '../../src/engine/docker.js';
import { choosePushStrategy, type AttestationFacts, type PushStrategy } from '../../src/core/policy/attestations.js';
import { INDEX_MEDIA_TYPES, platformString } from '../../src/image/oci.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

const image = (architecture: string, variant?: string, available = true): EngineManifest => ({
  Kind: 'image',
  Available: available,
  Descriptor: { platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) } },
});
// What API 1.48+ lists for a buildx provenance attestation.
const attestation = (forDigest = 'sha256:aaaa'): EngineManifest => ({
  Kind: 'attestation',
  Available: true,
  Descriptor: {
    platform: { os: 'unknown', architecture: 'unknown' },
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': forDigest },
  },
});
// An attestation known only by its annotation (no Kind).
const annotatedAttestation: EngineManifest = {
  Descriptor: {
    platform: { os: 'unknown', architecture: 'unknown' },
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
  },
};

const facts = (over: Partial<AttestationFacts> = {}): AttestationFacts => ({
  containerdStore: true,
  apiVersion: '1.48',
  descriptorMediaType: OCI_INDEX,
  manifests: [image('amd64'), attestation()],
  platform: 'linux/amd64',
  ...over,
});

/** An index of its platforms, made by the action from the engine's saved image. */
const INDEX = (platforms: string[], attested = true) => ({
  kind: 'index' as const,
  platforms,
  reason:
    `the engine's image read with docker save; the action's uploader sends an index of its platforms ` +
    `(${platforms.join(', ')})${attested ? ' without their attestations (attestations: strip)' : ''}`,
});

describe('choosePushStrategy', () => {
  test.each<[string, Partial<AttestationFacts>, 'strip' | 'keep', PushStrategy]>([
    [
      'classic store',
      { containerdStore: false, descriptorMediaType: null, manifests: null, apiVersion: '1.41' },
      'strip',
      { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false },
    ],
    [
      'classic store even if a media type is reported',
      { containerdStore: false, descriptorMediaType: OCI_INDEX },
      'strip',
      { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false },
    ],
    [
      'containerd store, single OCI manifest',
      { descriptorMediaType: OCI_MANIFEST, manifests: null },
      'strip',
      { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false },
    ],
    [
      'containerd store, single Docker v2 manifest',
      { descriptorMediaType: DOCKER_MANIFEST },
      'strip',
      { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false },
    ],
    [
      'containerd store, no descriptor',
      { descriptorMediaType: null },
      'strip',
      { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false },
    ],
    [
      'index with one image + attestation -> platform push',
      {},
      'strip',
      {
        kind: 'platform',
        platform: 'linux/amd64',
        reason: 'pushing only the linux/amd64 manifest, without its provenance attestation (attestations: strip)',
      },
    ],
    [
      'Docker manifest list with one image + attestation',
      { descriptorMediaType: DOCKER_LIST },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/amd64',
        reason: 'pushing only the linux/amd64 manifest, without its provenance attestation (attestations: strip)',
      },
    ],
    [
      'attestation known by annotation only',
      { manifests: [image('arm64', 'v8'), annotatedAttestation], platform: 'linux/arm64/v8' },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/arm64/v8',
        reason: 'pushing only the linux/arm64/v8 manifest, without its provenance attestation (attestations: strip)',
      },
    ],
    [
      'platform comes from the manifest list, not the inspect fallback',
      { manifests: [image('arm', 'v7'), attestation()], platform: 'linux/amd64' },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/arm/v7',
        reason: 'pushing only the linux/arm/v7 manifest, without its provenance attestation (attestations: strip)',
      },
    ],
    [
      'pulled multi-platform index with one platform available',
      {
        manifests: [
          image('amd64'),
          image('arm64', undefined, false),
          image('s390x', undefined, false),
          attestation(),
          attestation('sha256:bbbb'),
        ],
      },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/amd64',
        reason: 'pushing only the linux/amd64 manifest, without its provenance attestation (attestations: strip)',
      },
    ],
    [
      'index without attestations, one image',
      { manifests: [image('amd64')] },
      'strip',
      { kind: 'as-is', reason: 'the image index has no attestations', withAttestations: false },
    ],
    [
      'index without attestations, other platforms unavailable',
      { manifests: [image('amd64'), image('arm64', undefined, false)] },
      'strip',
      { kind: 'as-is', reason: 'the image index has no attestations', withAttestations: false },
    ],
    [
      'multi-platform + attestations -> an index of every platform, read with docker save',
      {
        manifests: [image('amd64'), image('arm64'), attestation(), attestation('sha256:bbbb')],
      },
      'strip',
      INDEX(['linux/amd64', 'linux/arm64']),
    ],
    [
      // Issue 18: the index's platform strings are the image author's: shown as data, the push keeps them as given
      'a platform with a newline and a command: the reason shows it as data',
      { manifests: [image('amd64\n::error title=pwned::x'), attestation()] },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/amd64\n::error title=pwned::x',
        reason:
          'pushing only the linux/amd64\\n::error title=pwned::x manifest, without its provenance attestation (attestations: strip)',
      },
    ],
    [
      'multi-platform + attestations, one platform with ##[ and a CR: listed as data',
      { manifests: [image('amd64'), image('arm64\r##[error]y'), attestation()] },
      'strip',
      INDEX(['linux/amd64', 'linux/arm64\\r##\\[error]y']),
    ],
    [
      'three platforms with a variant + attestations',
      {
        manifests: [image('amd64'), image('arm64'), image('arm', 'v7'), attestation()],
      },
      'strip',
      INDEX(['linux/amd64', 'linux/arm64', 'linux/arm/v7']),
    ],
    [
      'API 1.45, manifests unknown -> refuse',
      { apiVersion: '1.45', manifests: null },
      'strip',
      {
        kind: 'refuse',
        title: 'Engine too old to strip attestations',
        message:
          'The image is an index that may carry provenance attestations, which this registry rejects (HTTP 400), and this ' +
          'engine (API 1.45) cannot push a single platform (`docker push --platform` needs API 1.46+). Nothing was pushed: ' +
          'rebuild with `--provenance=false` (or BUILDX_NO_DEFAULT_ATTESTATIONS=1), or upgrade Docker.',
      },
    ],
    [
      'manifests unknown (null) on API 1.46 -> platform push',
      { apiVersion: '1.46', manifests: null, platform: 'linux/arm64' },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/arm64',
        reason: 'pushing only the linux/arm64 manifest: this engine cannot list attestations, so none is risked',
      },
    ],
    [
      'manifests unknown on API 1.47',
      { apiVersion: '1.47', manifests: null },
      'strip',
      {
        kind: 'platform',
        platform: 'linux/amd64',
        reason: 'pushing only the linux/amd64 manifest: this engine cannot list attestations, so none is risked',
      },
    ],
    [
      'mode keep -> as-is, attestations included',
      {},
      'keep',
      { kind: 'as-is', reason: 'attestations: keep pushes the image index as it is', withAttestations: true },
    ],
    [
      'mode keep, an index without attestations',
      { manifests: [image('amd64'), image('arm64')] },
      'keep',
      { kind: 'as-is', reason: 'attestations: keep pushes the image index as it is', withAttestations: false },
    ],
    [
      'mode keep, multi-platform + attestations -> as-is',
      { manifests: [image('amd64'), image('arm64'), attestation()] },
      'keep',
      { kind: 'as-is', reason: 'attestations: keep pushes the image index as it is', withAttestations: true },
    ],
    [
      'mode keep on an old engine -> as-is',
      { apiVersion: '1.43', manifests: null },
      'keep',
      { kind: 'as-is', reason: 'attestations: keep pushes the image index as it is', withAttestations: true },
    ],
    [
      'mode keep on the classic store',
      { containerdStore: false },
      'keep',
      { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false },
    ],
  ])('%s', (_name, over, mode, expected) => {
    expect(choosePushStrategy(facts(over), mode)).toEqual(expected);
  });

  test('the too-old refusal names --provenance=false and BUILDX_NO_DEFAULT_ATTESTATIONS=1', () => {
    const s = choosePushStrategy(facts({ apiVersion: '1.44', manifests: null }), 'strip');
    expect(s.kind).toBe('refuse');
    const message = s.kind === 'refuse' ? s.message : '';
    expect(message).toContain('--provenance=false');
    expect(message).toContain('BUILDX_NO_DEFAULT_ATTESTATIONS=1');
    expect(message).toContain('API 1.44');
  });

  // Bug: a multi-platform index with no attestation entries is refused as "Multi-platform image with attestations"
  // (the message claims attestation manifests that are not there); the registry accepts a plain index, and the
  // README says only multi-platform images *with* attestations fail.
  test.each<[string, EngineManifest[]]>([
    ['two platforms, no attestations', [image('amd64'), image('arm64')]],
    ['three platforms, no attestations', [image('amd64'), image('arm64'), image('arm', 'v7')]],
  ])('%s -> as-is', (_name, manifests) => {
    expect(choosePushStrategy(facts({ manifests }), 'strip')).toEqual({
      kind: 'as-is',
      reason: 'the image index has no attestations',
      withAttestations: false,
    });
  });
});

describe('choosePushStrategy: a subset of the platforms (the platforms input)', () => {
  test.each<[string, EngineManifest[], string[]]>([
    ['two platforms, no attestations', [image('amd64'), image('arm64')], ['linux/amd64', 'linux/arm64']],
    ['two platforms and attestations', [image('amd64'), image('arm64'), attestation()], ['linux/amd64', 'linux/arm64']],
  ])('%s -> an index the action writes', (_name, manifests, platforms) => {
    const attested = manifests.some((m) => m.Kind === 'attestation');
    expect(choosePushStrategy(facts({ manifests }), 'strip', { subset: true })).toEqual(INDEX(platforms, attested));
  });

  test('one platform and its attestation: the engine pushes it with --platform, as without the input', () => {
    expect(choosePushStrategy(facts(), 'strip', { subset: true }).kind).toBe('platform');
  });
});

describe('INDEX_MEDIA_TYPES', () => {
  test.each([
    [OCI_INDEX, true],
    [DOCKER_LIST, true],
    [OCI_MANIFEST, false],
    [DOCKER_MANIFEST, false],
  ])('%s -> %s', (mediaType, expected) => {
    expect(INDEX_MEDIA_TYPES.has(mediaType)).toBe(expected);
  });
});

describe('apiAtLeast', () => {
  test.each([
    ['1.46', '1.46', true],
    ['1.47', '1.46', true],
    ['1.48', '1.46', true],
    ['1.45', '1.46', false],
    ['1.41', '1.46', false],
    ['1.100', '1.46', true],
    ['1.5', '1.46', false],
    ['2.0', '1.46', true],
    ['0.99', '1.46', false],
    ['1.46', '1.48', false],
    ['1.51', '1.48', true],
  ])('apiAtLeast(%j, %j) -> %s', (version, min, expected) => {
    expect(apiAtLeast(version, min)).toBe(expected);
  });
});

describe('platformString', () => {
  test.each([
    [{ os: 'linux', architecture: 'amd64' }, 'linux/amd64'],
    [{ os: 'linux', architecture: 'arm64', variant: 'v8' }, 'linux/arm64/v8'],
    [{ os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/arm/v7'],
    [{ os: 'linux', architecture: 'amd64', variant: '' }, 'linux/amd64'],
    [{ os: 'windows', architecture: 'amd64' }, 'windows/amd64'],
    [{ os: 'unknown', architecture: 'unknown' }, 'unknown/unknown'],
    [{ architecture: 'amd64' }, 'amd64'],
    [{}, ''],
  ])('%j -> %j', (platform, expected) => {
    expect(platformString(platform)).toBe(expected);
  });
});
