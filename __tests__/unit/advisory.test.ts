import {
  describeLayer,
  failureAdvice,
  oversizeLayerAdvice,
  timeoutAdvice,
  type AdviceContext,
} from '../../src/core/report/advisory.js';
import type { Failure, FailureKind } from '../../src/core/policy/failure.js';
import type { TokenType } from '../../src/core/input-table.js';
import type { LayerFact } from '../../src/image/layers.js';

const layer = (index: number, size: number, instruction: string | null, hexChar = String(index)): LayerFact => {
  const hex = hexChar.repeat(64);
  return { index, diffId: `sha256:${hex}`, shortId: hex.slice(0, 12), size, instruction };
};

const CTX: AdviceContext = {
  registry: 'registry.replicated.com',
  appSlug: 'my-app',
  repository: 'registry.replicated.com/my-app/worker',
  tokenType: 'service-account',
  username: 'replicated-push',
  maxLayerSize: 1_000_000_000,
  layerCount: 5,
};

const failure = (kind: FailureKind, detail = '', status: number | null = null): Failure => ({
  kind,
  retryable: false,
  status,
  blobDigest: null,
  detail,
});

const COPY = layer(4, 1_800_000_000, 'COPY blob /blob');
const RUN = layer(3, 1_200_000_000, 'RUN /bin/sh -c make');
const ADD = layer(2, 1_500_000_000, 'ADD data.tar /data');
const ENV = layer(1, 1_100_000_000, 'WORKDIR /app');
const UNKNOWN = layer(5, 2_100_000_000, null);

const TAIL =
  'use a multi-stage build so only what the image needs is copied in; keep large data out of the image ' +
  '(fetch it at install time); or set `layer-split: auto` and this action re-layers the image for you.';

describe('describeLayer', () => {
  test.each<[LayerFact, number, string]>([
    [COPY, 5, 'layer 4/5 (sha256:444444444444…, 1.8 GB uncompressed) made by `COPY blob /blob`'],
    [RUN, 7, 'layer 3/7 (sha256:333333333333…, 1.2 GB uncompressed) made by `RUN /bin/sh -c make`'],
    [
      UNKNOWN,
      5,
      'layer 5/5 (sha256:555555555555…, 2.1 GB uncompressed) made by an instruction the image history does not name',
    ],
    [layer(1, 999, 'COPY a /a', 'a'), 1, 'layer 1/1 (sha256:aaaaaaaaaaaa…, 999 B uncompressed) made by `COPY a /a`'],
  ])('%j of %d', (l, count, expected) => {
    expect(describeLayer(l, count)).toBe(expected);
  });
});

describe('oversizeLayerAdvice', () => {
  test.each<[string, LayerFact, string, string]>([
    ['COPY', COPY, 'Layer 4 is 1.8 GB', 'split that COPY into several COPY instructions that each add less'],
    ['ADD', ADD, 'Layer 2 is 1.5 GB', 'split that ADD into several ADD instructions that each add less'],
    ['RUN', RUN, 'Layer 3 is 1.2 GB', 'split that RUN into several RUN steps that each write less'],
    [
      'lower-case verb',
      layer(3, 1_200_000_000, 'copy a /a'),
      'Layer 3 is 1.2 GB',
      'split that COPY into several COPY instructions that each add less',
    ],
    ['other instruction', ENV, 'Layer 1 is 1.1 GB', 'build that content in several smaller instructions'],
    ['unknown instruction', UNKNOWN, 'Layer 5 is 2.1 GB', 'build that content in several smaller instructions'],
  ])('%s', (_name, l, title, how) => {
    const advice = oversizeLayerAdvice(l, CTX);
    expect(advice.title).toBe(title);
    expect(advice.message).toBe(
      `L${describeLayer(l, 5).slice(1)} is over max-layer-size (1.0 GB). Uploads of layers near 2 GB time out at the ` +
        `registry's proxy (HTTP 524). To avoid it, ${how}; ${TAIL}`,
    );
  });

  test('names index, size, instruction and the limit', () => {
    const { message } = oversizeLayerAdvice(COPY, { ...CTX, maxLayerSize: 786_432_000, layerCount: 9 });
    expect(message).toContain('Layer 4/9');
    expect(message).toContain('1.8 GB uncompressed');
    expect(message).toContain('`COPY blob /blob`');
    expect(message).toContain('over max-layer-size (786 MB)');
    expect(message).toContain('`layer-split: auto`');
  });
});

describe('timeoutAdvice', () => {
  const BLOB = 'sha256:6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b';

  test.each<[string, LayerFact | null, LayerFact[], boolean, string | null, string, string]>([
    [
      'known layer, retrying',
      COPY,
      [COPY],
      false,
      null,
      'Upload timed out (HTTP 524)',
      "The registry's proxy gave up (HTTP 524, origin timeout) while uploading layer 4/5 (sha256:444444444444…, 1.8 GB uncompressed) " +
        `made by \`COPY blob /blob\`. To fix it, split that COPY into several COPY instructions that each add less; ${TAIL}`,
    ],
    [
      'known layer, final',
      RUN,
      [],
      true,
      null,
      'Push timed out (HTTP 524)',
      "The registry's proxy gave up (HTTP 524, origin timeout) while uploading layer 3/5 (sha256:333333333333…, 1.2 GB uncompressed) " +
        `made by \`RUN /bin/sh -c make\`. To fix it, split that RUN into several RUN steps that each write less; ${TAIL}`,
    ],
    [
      'layer inferred from the blob digest (containerd store)',
      COPY,
      [COPY],
      false,
      BLOB,
      'Upload timed out (HTTP 524)',
      "The registry's proxy gave up (HTTP 524, origin timeout) while uploading (blob sha256:6b80a606c07f…), most likely layer 4/5 " +
        '(sha256:444444444444…, 1.8 GB uncompressed) made by `COPY blob /blob`, the only layer over max-layer-size. ' +
        `To fix it, split that COPY into several COPY instructions that each add less; ${TAIL}`,
    ],
    [
      'unknown layer with a blob digest',
      null,
      [],
      true,
      BLOB,
      'Push timed out (HTTP 524)',
      "The registry's proxy gave up (HTTP 524, origin timeout) while uploading a layer (blob sha256:6b80a606c07f…) the engine did not name.",
    ],
    [
      'unknown layer, no blob',
      null,
      [],
      false,
      null,
      'Upload timed out (HTTP 524)',
      "The registry's proxy gave up (HTTP 524, origin timeout) while uploading a layer the engine did not name.",
    ],
    [
      'unknown layer lists the oversized ones',
      null,
      [ADD, COPY],
      true,
      null,
      'Push timed out (HTTP 524)',
      "The registry's proxy gave up (HTTP 524, origin timeout) while uploading a layer the engine did not name. " +
        'Also over max-layer-size (1.0 GB): layer 2/5 (sha256:222222222222…, 1.5 GB uncompressed) made by `ADD data.tar /data`; ' +
        'layer 4/5 (sha256:444444444444…, 1.8 GB uncompressed) made by `COPY blob /blob`.',
    ],
  ])('%s', (_name, l, others, final, blob, title, message) => {
    expect(timeoutAdvice(l, others, CTX, final, blob)).toEqual({ title, message });
  });

  test('lists the other oversized layers, not the one that timed out', () => {
    const { message } = timeoutAdvice(COPY, [ADD, COPY, RUN], CTX, false);
    expect(message).toContain(
      ' Also over max-layer-size (1.0 GB): layer 2/5 (sha256:222222222222…, 1.5 GB uncompressed) made by `ADD data.tar /data`; ' +
        'layer 3/5 (sha256:333333333333…, 1.2 GB uncompressed) made by `RUN /bin/sh -c make`.',
    );
    expect(message.match(/layer 4\/5/g)).toHaveLength(1);
    expect(message.endsWith('made by `RUN /bin/sh -c make`.')).toBe(true);
  });
});

describe('failureAdvice', () => {
  test.each<[TokenType, string, string]>([
    ['service-account', 'replicated-push', 'a service account token (any username; the token as the password)'],
    ['team', 'replicated-push', 'a team API token (any username; deprecated: move to a service account)'],
    ['user', 'dev@example.com', 'a user API token with the Vendor Portal email address as the username'],
    ['password', 'dev@example.com', 'the Vendor Portal email address as the username and its password as the token'],
  ])('unauthorized with token-type %s names the type and what it needs', (tokenType, username, needs) => {
    const advice = failureAdvice(failure('unauthorized', 'unauthorized: authentication required'), {
      ...CTX,
      tokenType,
      username,
    });
    expect(advice).toEqual({
      title: 'Registry rejected the credentials',
      message:
        `registry.replicated.com rejected the login or push for '${username}' with token-type '${tokenType}'. ` +
        `That token type needs ${needs}. Check the secret behind 'token' (and 'username'), and that it has not expired ` +
        'or been revoked. Docker said: unauthorized: authentication required',
    });
  });

  test.each<[FailureKind, string, string, number | null, string, string]>([
    [
      'denied',
      'denied: requested access to the resource is denied',
      'Access denied to the repository',
      null,
      'The credentials work but may not push to registry.replicated.com/my-app/worker.',
      "application 'my-app'",
    ],
    [
      'not-found',
      'name unknown: repository name not known to registry',
      'Repository not found',
      null,
      'registry.replicated.com does not know registry.replicated.com/my-app/worker.',
      "Check 'app-slug' ('my-app')",
    ],
    [
      'attestation',
      'manifest invalid - provenance attestations are not supported',
      'Provenance attestations rejected (HTTP 400)',
      null,
      '`--provenance=false`',
      'BUILDX_NO_DEFAULT_ATTESTATIONS=1',
    ],
    [
      'bad-request',
      'manifest invalid: manifest invalid',
      'Registry rejected the manifest (HTTP 400)',
      400,
      '`--provenance=false`',
      'BUILDX_NO_DEFAULT_ATTESTATIONS=1',
    ],
    [
      'unsupported',
      'unknown: unsupported media type',
      'Registry does not support this image',
      null,
      'The registry refused the image as unsupported.',
      'Docker said: unknown: unsupported media type',
    ],
    [
      'engine-unreachable',
      'Cannot connect to the Docker daemon at unix:///nope.sock.',
      'Docker engine unreachable',
      null,
      'DOCKER_HOST',
      'Docker said: Cannot connect',
    ],
    [
      'image-missing',
      'No such image: nope:1',
      'Image not found locally',
      null,
      'The engine does not have the image.',
      'Docker said: No such image: nope:1',
    ],
    [
      'rate-limited',
      'toomanyrequests: too many requests',
      'Rate limited (HTTP 429)',
      429,
      'registry.replicated.com kept answering 429 Too Many Requests.',
      'Docker said: toomanyrequests',
    ],
    [
      'network',
      'read: connection reset by peer',
      'Registry unreachable',
      null,
      'Could not keep a connection to registry.replicated.com',
      'Docker said: read: connection reset by peer',
    ],
    [
      'server-error',
      'received unexpected HTTP status: 502 Bad Gateway',
      'Registry error (HTTP 502)',
      502,
      'registry.replicated.com kept failing with a server error.',
      'Docker said: received unexpected HTTP status: 502 Bad Gateway',
    ],
    [
      'server-error',
      'internal server error',
      'Registry error (HTTP 5xx)',
      null,
      'kept failing with a server error.',
      'Docker said: internal server error',
    ],
    [
      'unknown',
      'something odd happened',
      'Push failed',
      null,
      'docker push failed.',
      'Docker said: something odd happened',
    ],
  ])('%s (%j)', (kind, detail, title, status, mention1, mention2) => {
    const advice = failureAdvice(failure(kind, detail, status), CTX);
    expect(advice.title).toBe(title);
    expect(advice.message).toContain(mention1);
    expect(advice.message).toContain(mention2);
    expect(advice.message.endsWith(` Docker said: ${detail}`)).toBe(true);
  });

  test('not-found names the app slug it was given', () => {
    const advice = failureAdvice(failure('not-found'), {
      ...CTX,
      appSlug: 'other-app',
      repository: 'r.example.com/other-app/x',
      registry: 'r.example.com',
    });
    expect(advice.message).toBe(
      "r.example.com does not know r.example.com/other-app/x. Check 'app-slug' ('other-app'): it must " +
        'be the slug of an application the token can access, as shown in the Vendor Portal.',
    );
  });

  test('no detail -> no "Docker said"', () => {
    expect(failureAdvice(failure('unknown'), CTX)).toEqual({ title: 'Push failed', message: 'docker push failed.' });
  });

  test('timeout-524 without a layer gives the final 524 advice', () => {
    expect(failureAdvice(failure('timeout-524', 'received unexpected HTTP status: 524', 524), CTX)).toEqual({
      title: 'Push timed out (HTTP 524)',
      message:
        "The registry's proxy gave up (HTTP 524, origin timeout) while uploading a layer the engine did not name.",
    });
  });

  test('the attestation advice', () => {
    expect(failureAdvice(failure('attestation', 'manifest invalid'), { ...CTX, registry: '127.0.0.1:5055' })).toEqual({
      title: 'Provenance attestations rejected (HTTP 400)',
      message:
        '127.0.0.1:5055 rejected the image manifest. Images built by buildx carry provenance attestations by default, ' +
        'and this registry does not accept them. Keep `attestations: strip` (the default) on an engine that supports ' +
        '`docker push --platform` (API 1.46+), or rebuild with `--provenance=false` (or set BUILDX_NO_DEFAULT_ATTESTATIONS=1 ' +
        'for the build). Docker said: manifest invalid',
    });
  });
});
