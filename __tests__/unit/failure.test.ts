import { classifyUploadStop, classifyFailure, type Failure, type FailureKind } from '../../src/core/policy/failure.js';

const HEX = '6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b';
const BLOB = `sha256:${HEX}`;
const UPLOAD = `http://127.0.0.1:5000/v2/app/x/blobs/uploads/5c1f0c5e-8d2a-4b7e-9f3a-2a1d0c9e7b61?digest=sha256%3A${HEX}&_state=eyJOYW1lIjoiYXBwL3gifQ%3D%3D`;

type Row = [string, string, FailureKind, boolean, number | null, string | null];

// [name, docker output, kind, retryable, status, blobDigest]
const CLASSIC: Row[] = [
  ['524 from Cloudflare (no reason phrase)', 'received unexpected HTTP status: 524 ', 'timeout-524', true, 524, null],
  ['502 Bad Gateway', 'received unexpected HTTP status: 502 Bad Gateway', 'server-error', true, 502, null],
  [
    '500 Internal Server Error',
    'received unexpected HTTP status: 500 Internal Server Error',
    'server-error',
    true,
    500,
    null,
  ],
  [
    '503 Service Unavailable',
    'received unexpected HTTP status: 503 Service Unavailable',
    'server-error',
    true,
    503,
    null,
  ],
  ['520 without a reason phrase', 'received unexpected HTTP status: 520 ', 'server-error', true, 520, null],
  ['unauthorized', 'unauthorized: authentication required', 'unauthorized', false, null, null],
  ['denied', 'denied: requested access to the resource is denied', 'denied', false, null, null],
  // Engine A drops the registry's detail: distribution's and quay.io's MANIFEST_INVALID print the same.
  ['manifest invalid', 'manifest invalid: manifest invalid', 'bad-request', false, null, null],
  [
    'connection refused',
    'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
    'network',
    true,
    null,
    null,
  ],
  [
    'login with a wrong password',
    'Error response from daemon: Get "http://127.0.0.1:5000/v2/": unauthorized: incorrect username or password',
    'unauthorized',
    false,
    null,
    null,
  ],
  ['rate limited', 'toomanyrequests: too many requests', 'rate-limited', true, null, null],
  ['name unknown', 'name unknown: repository name not known to registry', 'not-found', false, null, null],
  [
    '404 body',
    'error parsing HTTP 404 response body: unexpected end of JSON input: ""',
    'not-found',
    false,
    null,
    null,
  ],
  ['EOF', 'Put "https://registry.replicated.com/v2/app/x/blobs/uploads/abc": EOF', 'network', true, null, null],
  [
    'TLS handshake timeout',
    'Get "https://registry.replicated.com/v2/": net/http: TLS handshake timeout',
    'network',
    true,
    null,
    null,
  ],
  [
    'client timeout',
    'Get "https://registry.replicated.com/v2/": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)',
    'network',
    true,
    null,
    null,
  ],
  ['unsupported', 'unknown: unsupported media type', 'unsupported', false, null, null],
  // Printed by engine A (20.10.24) pushing through the fault proxy answering as nginx does over client_max_body_size
  // (limitBodies) and with an empty 413: distribution's client quotes a body that is not an error document.
  [
    '413 from nginx (its HTML page)',
    String.raw`error parsing HTTP 413 response body: invalid character '<' looking for beginning of value: "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"`,
    'body-too-large',
    false,
    413,
    null,
  ],
  [
    '413 with no body',
    'error parsing HTTP 413 response body: unexpected end of JSON input: ""',
    'body-too-large',
    false,
    null,
    null,
  ],
];

const CONTAINERD: Row[] = [
  [
    '524 on a blob PUT',
    `failed to push 127.0.0.1:5000/app/x:1: unexpected status from PUT request to ${UPLOAD}: 524 `,
    'timeout-524',
    true,
    524,
    BLOB,
  ],
  [
    '500 on a blob HEAD',
    `failed to push 127.0.0.1:5000/app/x:1: unexpected status from HEAD request to http://127.0.0.1:5000/v2/app/x/blobs/${BLOB}: 500 Internal Server Error`,
    'server-error',
    true,
    500,
    BLOB,
  ],
  // The manifest refusals below were printed by engine B (Docker 28) against the fault proxy sending the bodies real
  // registries send (test/support/fault-proxy.ts REJECTION_BODIES); without context they are a generic 400.
  // distribution's MANIFEST_INVALID with detail {} (moby/buildkit#3579), and quay.io's with an object detail
  // (tektoncd/chains#252): engine B prints only the message.
  ['manifest invalid (distribution, quay)', 'error from registry: manifest invalid', 'bad-request', false, null, null],
  [
    // BuildKit and older containerd when the body is no error document: Artifactory and Yandex refusing BuildKit
    // 0.10's index with attestations (docker/buildx#1513).
    'failed commit on the index (Artifactory)',
    'failed to solve: failed to push r.example.com/app/x:1: failed commit on ref "manifest-sha256:3032911c04a048a7e1d148e6505ed00d5690d8ae12fef878ad05ce77311afa4f": unexpected status: 400 Bad Request',
    'bad-request',
    false,
    400,
    null,
  ],
  [
    'oauth 401',
    'failed to authorize: failed to fetch oauth token: unexpected status from GET request to https://registry.replicated.com/v2/token?scope=repository%3Aapp%2Fx%3Apull%2Cpush&service=registry.replicated.com: 401 Unauthorized',
    'unauthorized',
    false,
    401,
    null,
  ],
  [
    'connection reset mid-upload',
    `failed to push 127.0.0.1:5000/app/x:1: failed to copy: failed to do request: Put "${UPLOAD}": read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer`,
    'network',
    true,
    null,
    BLOB,
  ],
  [
    '400 on the manifest',
    'failed to push r.example.com/app/x:1: unexpected status from PUT request to https://r.example.com/v2/app/x/manifests/1: 400 Bad Request',
    'bad-request',
    false,
    400,
    null,
  ],
  [
    '403 on the manifest',
    'failed to push r.example.com/app/x:1: unexpected status from PUT request to https://r.example.com/v2/app/x/manifests/1: 403 Forbidden',
    'denied',
    false,
    403,
    null,
  ],
  [
    '404 on the manifest',
    'failed to push r.example.com/app/x:1: unexpected status from PUT request to https://r.example.com/v2/app/x/manifests/1: 404 Not Found',
    'not-found',
    false,
    404,
    null,
  ],
  [
    '429 on upload start',
    'failed to push r.example.com/app/x:1: unexpected status from POST request to https://r.example.com/v2/app/x/blobs/uploads/: 429 Too Many Requests',
    'rate-limited',
    true,
    429,
    null,
  ],
  [
    '502 on upload start',
    'failed to push r.example.com/app/x:1: unexpected status from POST request to https://r.example.com/v2/app/x/blobs/uploads/: 502 Bad Gateway',
    'server-error',
    true,
    502,
    null,
  ],
  ['context deadline', 'failed to push r.example.com/app/x:1: context deadline exceeded', 'network', true, null, null],
  // Printed by engine B (28.5.2) through the fault proxy: nginx's 413, sent before the body is read (limitBodies),
  // and a 413 sent after it with Node's reason phrase.
  [
    '413 from nginx on a blob PUT',
    'unknown: failed to copy: unexpected status from PUT request to http://127.0.0.1:36115/v2/probe/eb/blobs/uploads/7d53d767-f924-4cda-8f06-4c74bd5346fa?_state=nTp6-9FQ6kXLgxMrt2FOH8EDJCu1TXjaNhADdE-9w8h7Ik5hbWUiOiJwcm9iZS9lYiIsIlVVSUQiOiI3ZDUzZDc2Ny1mOTI0LTRjZGEtOGYwNi00Yzc0YmQ1MzQ2ZmEiLCJPZmZzZXQiOjAsIlN0YXJ0ZWRBdCI6IjIwMjYtMTItMDJUMDE6MTQ6MzkuNzUzMzE2MjQ1WiJ9&digest=sha256%3A282bc73bc28e675ceae584bd8449b800b5a119e249d7aae9e819b6b26759183f: 413 Request Entity Too Large',
    'body-too-large',
    false,
    413,
    'sha256:282bc73bc28e675ceae584bd8449b800b5a119e249d7aae9e819b6b26759183f',
  ],
  [
    '413 after the body, on the commit of a layer',
    'unknown: failed commit on ref "layer-sha256:9615aea5f47e5af2d31a2d754637942930b204e80d1660f8740277eb9e202e06": unexpected status from PUT request to http://127.0.0.1:43827/v2/probe/eb/blobs/uploads/dface8b6-af6c-4af8-b4ab-b4f91524e298?_state=l3SYu8FwxVD4JBzRusEvgNt6afqEvbjGSIYuMnz8T5x7Ik5hbWUiOiJwcm9iZS9lYiIsIlVVSUQiOiJkZmFjZThiNi1hZjZjLTRhZjgtYjRhYi1iNGY5MTUyNGUyOTgiLCJPZmZzZXQiOjAsIlN0YXJ0ZWRBdCI6IjIwMjYtMTItMDJUMDE6MzA6NTEuNjEyNzM4Mzg5WiJ9&digest=sha256%3A9615aea5f47e5af2d31a2d754637942930b204e80d1660f8740277eb9e202e06: 413 Payload Too Large',
    'body-too-large',
    false,
    413,
    'sha256:9615aea5f47e5af2d31a2d754637942930b204e80d1660f8740277eb9e202e06',
  ],
];

const LOCAL: Row[] = [
  [
    'daemon socket missing',
    'Cannot connect to the Docker daemon at unix:///nope.sock. Is the docker daemon running?',
    'engine-unreachable',
    false,
    null,
    null,
  ],
  [
    'socket permission',
    'permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": dial unix /var/run/docker.sock: connect: permission denied',
    'engine-unreachable',
    false,
    null,
    null,
  ],
  [
    'Windows pipe',
    'error during connect: Get "http://%2F%2F.%2Fpipe%2Fdocker_engine/v1.24/images/json": open //./pipe/docker_engine: The system cannot find the file specified.',
    'engine-unreachable',
    false,
    null,
    null,
  ],
  ['no such image', 'Error response from daemon: No such image: nope:1', 'image-missing', false, null, null],
  ['tag missing locally', 'An image does not exist locally with the tag: x', 'image-missing', false, null, null],
  ['nothing recognisable', 'something odd happened', 'unknown', true, null, null],
  ['empty output', '', 'unknown', true, null, null],
];

function check(
  output: string,
  kind: FailureKind,
  retryable: boolean,
  status: number | null,
  blobDigest: string | null,
): Failure {
  const f = classifyFailure(output);
  expect({ kind: f.kind, retryable: f.retryable, status: f.status, blobDigest: f.blobDigest }).toEqual({
    kind,
    retryable,
    status,
    blobDigest,
  });
  return f;
}

describe('classifyFailure', () => {
  test.each(CLASSIC)('classic engine (20.10): %s', (_name, output, kind, retryable, status, blob) => {
    check(output, kind, retryable, status, blob);
  });

  test.each(CONTAINERD)('containerd engine (28): %s', (_name, output, kind, retryable, status, blob) => {
    check(output, kind, retryable, status, blob);
  });

  test.each(LOCAL)('local: %s', (_name, output, kind, retryable, status, blob) => {
    check(output, kind, retryable, status, blob);
  });
});

describe('classifyFailure: detail', () => {
  test.each([
    ['Error response from daemon: No such image: nope:1', 'No such image: nope:1'],
    [
      'Error response from daemon: Get "http://127.0.0.1:5000/v2/": unauthorized: incorrect username or password',
      'Get "http://127.0.0.1:5000/v2/": unauthorized: incorrect username or password',
    ],
    ['received unexpected HTTP status: 524 ', 'received unexpected HTTP status: 524'],
    ['first line\nsomething odd happened', 'something odd happened'],
    [
      'The push refers to repository [127.0.0.1:5055/app/demo]\ncacd00243bba: Preparing\ndenied: requested access to the resource is denied\nlast words',
      'denied: requested access to the resource is denied',
    ],
  ])('%j -> %j', (output, detail) => {
    expect(classifyFailure(output).detail).toBe(detail);
  });
});

describe('classifyFailure: whole push outputs', () => {
  test('classic push that retried then timed out: layer lines are progress, not the cause', () => {
    const output = [
      'The push refers to repository [127.0.0.1:5055/app/demo]',
      'cacd00243bba: Preparing',
      '5f70bf18a086: Preparing',
      'cacd00243bba: Layer already exists',
      '5f70bf18a086: Retrying in 5 seconds',
      '5f70bf18a086: Retrying in 1 second',
      'received unexpected HTTP status: 524 ',
    ].join('\n');
    const f = check(output, 'timeout-524', true, 524, null);
    expect(f.detail).toBe('received unexpected HTTP status: 524');
  });

  test('a layer line that mentions a status does not decide the class', () => {
    const output = '5f70bf18a086: unexpected status 524\nunauthorized: authentication required';
    check(output, 'unauthorized', false, null, null);
  });

  test('CRLF output', () => {
    check(
      'The push refers to repository [r/app/x]\r\nreceived unexpected HTTP status: 502 Bad Gateway\r\n',
      'server-error',
      true,
      502,
      null,
    );
  });

  test('containerd push with progress lines, then a 524', () => {
    const output = [
      'The push refers to repository [127.0.0.1:5000/app/x]',
      'a1b2c3d4e5f6: Waiting',
      'a1b2c3d4e5f6: Pushing [=====>     ]  512MB/1.9GB',
      `failed to push 127.0.0.1:5000/app/x:1: unexpected status from PUT request to ${UPLOAD}: 524 `,
    ].join('\n');
    check(output, 'timeout-524', true, 524, BLOB);
  });

  test('the --platform Info note is not an attestation error', () => {
    const output = [
      ' Info -> Using --platform pushes only the specified platform manifest of a multi-platform image index.',
      '         Other components, like attestations, will not be included.',
      'received unexpected HTTP status: 524 ',
    ].join('\n');
    check(output, 'timeout-524', true, 524, null);
  });

  test('engine A behind nginx’s body limit: the whole output, the 413 line is the detail', () => {
    const line = String.raw`error parsing HTTP 413 response body: invalid character '<' looking for beginning of value: "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"`;
    const output = ['The push refers to repository [127.0.0.1:36115/probe/ea]', 'f23f6c3e334c: Preparing', line].join(
      '\n',
    );
    const f = check(output, 'body-too-large', false, 413, null);
    expect(f.detail).toBe(line);
  });

  test('blob digest with an upper-case %3A', () => {
    const output = `failed to push r/app/x:1: unexpected status from PUT request to http://r/v2/app/x/blobs/uploads/u?digest=sha256%3a${HEX}: 524 `;
    check(output, 'timeout-524', true, 524, BLOB);
  });
});

describe('classifyFailure: repository names are not error text', () => {
  // Bug: the attestation rule matches "provenance" anywhere in the line, including the image reference and URL
  // the containerd engine prints, so a 524 on an image named "provenance-api" is reported as a non-retryable
  // attestation rejection.
  test.each<Row>([
    [
      '524 on an image named provenance-api',
      `failed to push 127.0.0.1:5000/app/provenance-api:1: unexpected status from PUT request to http://127.0.0.1:5000/v2/app/provenance-api/blobs/uploads/u?digest=sha256%3A${HEX}: 524 `,
      'timeout-524',
      true,
      524,
      BLOB,
    ],
    [
      '401 on an image named provenance',
      'failed to push r.example.com/app/provenance:1: unexpected status from PUT request to https://r.example.com/v2/app/provenance/manifests/1: 401 Unauthorized',
      'unauthorized',
      false,
      401,
      null,
    ],
  ])('%s', (_name, output, kind, retryable, status, blob) => {
    check(output, kind, retryable, status, blob);
  });

  test.each<Row>([
    [
      '524 on an image named attestation-svc',
      `failed to push 127.0.0.1:5000/app/attestation-svc:1: unexpected status from PUT request to http://127.0.0.1:5000/v2/app/attestation-svc/blobs/uploads/u?digest=sha256%3A${HEX}: 524 `,
      'timeout-524',
      true,
      524,
      BLOB,
    ],
  ])('%s', (_name, output, kind, retryable, status, blob) => {
    check(output, kind, retryable, status, blob);
  });
});

// Registries refuse an index with attestation manifests in their generic words; none names attestations (see
// REJECTION_BODIES in test/support/fault-proxy.ts for the sources). Only the caller knows the push carried them.
describe('classifyFailure: a manifest refusal when the push carried attestations', () => {
  const ATTESTED = { pushedAttestations: true };
  test.each<[string, string, FailureKind, number | null, string]>([
    // engine B, distribution's MANIFEST_INVALID {"detail":{}} (moby/buildkit#3579) and quay.io's (tektoncd/chains#252)
    [
      'manifest invalid (engine B)',
      'error from registry: manifest invalid',
      'attestation',
      null,
      'error from registry: manifest invalid',
    ],
    // engine B, GitLab's MANIFEST_BLOB_UNKNOWN for an attestation whose subject is not stored yet (moby/buildkit#7007)
    [
      'blob unknown to registry (GitLab)',
      `error from registry: blob unknown to registry - ${BLOB}`,
      'attestation',
      null,
      `error from registry: blob unknown to registry - ${BLOB}`,
    ],
    // BuildKit / containerd with a body that is no error document (Artifactory, docker/buildx#1513)
    [
      'failed commit on the index',
      'failed commit on ref "manifest-sha256:3032911c04a048a7e1d148e6505ed00d5690d8ae12fef878ad05ce77311afa4f": unexpected status: 400 Bad Request',
      'attestation',
      400,
      'failed commit on ref "manifest-sha256:3032911c04a048a7e1d148e6505ed00d5690d8ae12fef878ad05ce77311afa4f": unexpected status: 400 Bad Request',
    ],
    [
      'a bare 400 on the manifest PUT',
      'failed to push r.example.com/app/x:1: unexpected status from PUT request to https://r.example.com/v2/app/x/manifests/1: 400 Bad Request',
      'attestation',
      400,
      'failed to push r.example.com/app/x:1: unexpected status from PUT request to https://r.example.com/v2/app/x/manifests/1: 400 Bad Request',
    ],
    // not a manifest refusal: the context changes nothing
    [
      'a 400 on a layer commit stays a bad request',
      'failed commit on ref "layer-sha256:3032911c04a048a7e1d148e6505ed00d5690d8ae12fef878ad05ce77311afa4f": unexpected status: 400 Bad Request',
      'bad-request',
      400,
      'failed commit on ref "layer-sha256:3032911c04a048a7e1d148e6505ed00d5690d8ae12fef878ad05ce77311afa4f": unexpected status: 400 Bad Request',
    ],
    [
      'a 524 stays a 524',
      `unexpected status from PUT request to ${UPLOAD}: 524 `,
      'timeout-524',
      524,
      `unexpected status from PUT request to ${UPLOAD}: 524`,
    ],
    [
      'denied stays denied',
      'denied: requested access to the resource is denied',
      'denied',
      null,
      'denied: requested access to the resource is denied',
    ],
    [
      'an image named manifest-invalid is no refusal',
      `failed to push 127.0.0.1:5000/app/manifest-invalid:1: unexpected status from PUT request to http://127.0.0.1:5000/v2/app/manifest-invalid/blobs/uploads/u: 502 Bad Gateway`,
      'server-error',
      502,
      'failed to push 127.0.0.1:5000/app/manifest-invalid:1: unexpected status from PUT request to http://127.0.0.1:5000/v2/app/manifest-invalid/blobs/uploads/u: 502 Bad Gateway',
    ],
  ])('%s', (_name, output, kind, status, detail) => {
    const f = classifyFailure(output, ATTESTED);
    expect(f).toMatchObject({ kind, status, detail, retryable: kind === 'timeout-524' || kind === 'server-error' });
  });

  test.each([
    ['manifest invalid (engine B)', 'error from registry: manifest invalid', 'bad-request'],
    ['manifest invalid (engine A)', 'manifest invalid: manifest invalid', 'bad-request'],
    // without the context, blob unknown is no known class: retried (the subject may be stored by then)
    ['blob unknown (GitLab)', `error from registry: blob unknown to registry - ${BLOB}`, 'unknown'],
  ])('without the context: %s is %s', (_name, output, kind) => {
    expect(classifyFailure(output).kind).toBe(kind);
  });

  test('a registry that does name attestations is understood without the context', () => {
    expect(
      classifyFailure('error from registry: manifest invalid - attestation manifests are not supported').kind,
    ).toBe('attestation');
    expect(classifyFailure('error from registry: unsupported media type: application/vnd.in-toto+json').kind).toBe(
      'attestation',
    );
  });
});

describe('classifyFailure: a push the watchdog ended', () => {
  test.each<[string, string, number, string]>([
    [
      'after a layer line',
      'The push refers to repository [r.example/app/x]\nabc123def456: Preparing',
      300_000,
      'docker push made no progress for 5 min: its last line: abc123def456: Preparing',
    ],
    // what it printed before does not decide the class: the silence does
    [
      'after an error-looking line',
      'received unexpected HTTP status: 401 Unauthorized',
      2000,
      'docker push made no progress for 2 s: its last line: received unexpected HTTP status: 401 Unauthorized',
    ],
    ['without output', '\n', 1500, 'docker push made no progress for 1.5 s: it printed nothing'],
  ])('%s', (_name, output, stalledMs, detail) => {
    expect(classifyFailure(output, { stalledMs })).toEqual({
      kind: 'stalled',
      retryable: true,
      status: null,
      blobDigest: null,
      detail,
    });
  });

  test('a line is cut to 200 characters: docker output is data, not the message', () => {
    const f = classifyFailure(`abc123def456: ${'x'.repeat(500)}`, { stalledMs: 300_000 });
    expect(f.detail).toHaveLength('docker push made no progress for 5 min: its last line: '.length + 200);
  });
});

describe('classifyUploadStop', () => {
  test.each<[string, { status: number | null; phase: string; refused?: boolean }, string, boolean]>([
    ['524 on a chunk', { status: 524, phase: 'chunk' }, 'timeout-524', true],
    ['524 on the final PUT', { status: 524, phase: 'commit' }, 'timeout-524', true],
    ['502 on the POST', { status: 502, phase: 'start' }, 'server-error', true],
    ['429', { status: 429, phase: 'chunk' }, 'rate-limited', true],
    ['no answer at all', { status: null, phase: 'chunk' }, 'network', true],
    ['401', { status: 401, phase: 'start' }, 'unauthorized', false],
    ['403', { status: 403, phase: 'start' }, 'denied', false],
    ['404 on the manifest PUT', { status: 404, phase: 'manifest' }, 'not-found', false],
    ['400 on the manifest', { status: 400, phase: 'manifest' }, 'bad-request', false],
    ['416 that the uploader could not get past', { status: 416, phase: 'chunk' }, 'bad-request', false],
    ['413 on a chunk at the floor', { status: 413, phase: 'chunk' }, 'body-too-large', false],
    ['413 on a whole blob the registry takes no chunks of', { status: 413, phase: 'single' }, 'body-too-large', false],
    ['docker save failed', { status: null, phase: 'source' }, 'unknown', false],
    [
      'a Location the action refused to follow',
      { status: null, phase: 'chunk', refused: true },
      'unsafe-request',
      false,
    ],
  ])('%s -> %s', (_name, stop, kind, retryable) => {
    const f = classifyUploadStop({ ...stop, message: 'm' });
    expect(f.kind).toBe(kind);
    expect(f.retryable).toBe(retryable);
    expect(f.detail).toBe('m');
  });
});
