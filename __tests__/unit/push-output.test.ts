import { parsePushLine, pushedDigest, type PushEvent } from '../../src/engine/push-output.js';

const DIGEST = 'sha256:6b80a606c07f9f2a329d59e2afd65005d715de39698397385c0fff66d4f3924b';
const OTHER = 'sha256:0000000000000000000000000000000000000000000000000000000000000001';

describe('parsePushLine', () => {
  test.each<[string, PushEvent | null]>([
    // repository line
    [
      'The push refers to repository [127.0.0.1:5055/app/demo]',
      { kind: 'text', text: 'The push refers to repository [127.0.0.1:5055/app/demo]' },
    ],
    [
      'The push refers to repository [registry.replicated.com/my-app/worker]\r',
      { kind: 'text', text: 'The push refers to repository [registry.replicated.com/my-app/worker]' },
    ],
    [
      'The push refers to repository [[::1]:5000/app/x]',
      { kind: 'text', text: 'The push refers to repository [[::1]:5000/app/x]' },
    ],
    // layer status lines
    ['cacd00243bba: Preparing', { kind: 'layer', id: 'cacd00243bba', status: 'preparing', text: 'Preparing' }],
    ['cacd00243bba: Waiting', { kind: 'layer', id: 'cacd00243bba', status: 'waiting', text: 'Waiting' }],
    [
      'cacd00243bba: Layer already exists',
      { kind: 'layer', id: 'cacd00243bba', status: 'exists', text: 'Layer already exists' },
    ],
    ['85954f30cf6d: Pushed', { kind: 'layer', id: '85954f30cf6d', status: 'pushed', text: 'Pushed' }],
    [
      '85954f30cf6d: Pushing [==>                 ]  12.5MB/1.2GB',
      {
        kind: 'layer',
        id: '85954f30cf6d',
        status: 'pushing',
        text: 'Pushing [==>                 ]  12.5MB/1.2GB',
      },
    ],
    [
      '5f70bf18a086: Retrying in 5 seconds',
      { kind: 'layer', id: '5f70bf18a086', status: 'retrying', text: 'Retrying in 5 seconds' },
    ],
    [
      '5f70bf18a086: Retrying in 1 second',
      { kind: 'layer', id: '5f70bf18a086', status: 'retrying', text: 'Retrying in 1 second' },
    ],
    [
      '5f70bf18a086: Retrying in 15 seconds',
      { kind: 'layer', id: '5f70bf18a086', status: 'retrying', text: 'Retrying in 15 seconds' },
    ],
    [
      'abc123abc123: Mounted from app/other',
      { kind: 'layer', id: 'abc123abc123', status: 'mounted', text: 'Mounted from app/other' },
    ],
    [
      'abc123abc123: Mounted from library/alpine',
      { kind: 'layer', id: 'abc123abc123', status: 'mounted', text: 'Mounted from library/alpine' },
    ],
    ['5f70bf18a086: Pushed   ', { kind: 'layer', id: '5f70bf18a086', status: 'pushed', text: 'Pushed' }],
    ['5f70bf18a086: Pushed\r', { kind: 'layer', id: '5f70bf18a086', status: 'pushed', text: 'Pushed' }],
    [
      '5f70bf18a086: Error: unexpected EOF',
      { kind: 'layer', id: '5f70bf18a086', status: 'failed', text: 'Error: unexpected EOF' },
    ],
    [
      '5f70bf18a086: failed to upload',
      { kind: 'layer', id: '5f70bf18a086', status: 'failed', text: 'failed to upload' },
    ],
    [
      '5f70bf18a086: unexpected status 524',
      { kind: 'layer', id: '5f70bf18a086', status: 'failed', text: 'unexpected status 524' },
    ],
    ['5f70bf18a086: Layer pushed', { kind: 'layer', id: '5f70bf18a086', status: 'other', text: 'Layer pushed' }],
    [
      '5f70bf18a086: Buffering to disk',
      { kind: 'layer', id: '5f70bf18a086', status: 'other', text: 'Buffering to disk' },
    ],
    // digest lines
    [`1: digest: ${DIGEST} size: 735`, { kind: 'digest', tag: '1', digest: DIGEST, size: 735 }],
    [`latest: digest: ${DIGEST} size: 1570`, { kind: 'digest', tag: 'latest', digest: DIGEST, size: 1570 }],
    [`1.2.3-rc.1: digest: ${DIGEST} size: 528\r`, { kind: 'digest', tag: '1.2.3-rc.1', digest: DIGEST, size: 528 }],
    // info and error lines are text
    [
      ' Info -> Using --platform pushes only the specified platform manifest...',
      {
        kind: 'text',
        text: ' Info -> Using --platform pushes only the specified platform manifest...',
      },
    ],
    ['received unexpected HTTP status: 524 ', { kind: 'text', text: 'received unexpected HTTP status: 524' }],
    ['unauthorized: authentication required', { kind: 'text', text: 'unauthorized: authentication required' }],
    [
      'denied: requested access to the resource is denied',
      { kind: 'text', text: 'denied: requested access to the resource is denied' },
    ],
    [
      'Error response from daemon: No such image: nope:1',
      { kind: 'text', text: 'Error response from daemon: No such image: nope:1' },
    ],
    [
      `failed to push 127.0.0.1:5000/app/x:1: unexpected status from PUT request to http://127.0.0.1:5000/v2/app/x/blobs/uploads/abc: 524 `,
      {
        kind: 'text',
        text: 'failed to push 127.0.0.1:5000/app/x:1: unexpected status from PUT request to http://127.0.0.1:5000/v2/app/x/blobs/uploads/abc: 524',
      },
    ],
    // not layer lines: wrong ID length or case
    ['cacd00243bb: Pushed', { kind: 'text', text: 'cacd00243bb: Pushed' }],
    ['cacd00243bbaa: Pushed', { kind: 'text', text: 'cacd00243bbaa: Pushed' }],
    ['CACD00243BBA: Pushed', { kind: 'text', text: 'CACD00243BBA: Pushed' }],
    // digest line with a short digest is text
    ['1: digest: sha256:abc size: 735', { kind: 'text', text: '1: digest: sha256:abc size: 735' }],
    // blank lines
    ['', null],
    ['   ', null],
    ['\r', null],
  ])('%j', (line, expected) => {
    expect(parsePushLine(line)).toEqual(expected);
  });
});

describe('pushedDigest', () => {
  const digest = (d: string, size: number, tag = '1'): PushEvent => ({ kind: 'digest', tag, digest: d, size });
  const layer: PushEvent = { kind: 'layer', id: 'cacd00243bba', status: 'pushed', text: 'Pushed' };
  const text: PushEvent = { kind: 'text', text: 'whatever' };

  test.each<[string, PushEvent[], { digest: string; size: number } | null]>([
    ['no events', [], null],
    ['no digest line', [layer, text], null],
    ['one digest line', [layer, digest(DIGEST, 735)], { digest: DIGEST, size: 735 }],
    ['the last of several', [digest(OTHER, 1), layer, digest(DIGEST, 735), text], { digest: DIGEST, size: 735 }],
  ])('%s', (_name, events, expected) => {
    expect(pushedDigest(events)).toEqual(expected);
  });

  test('a real classic-store push, parsed line by line', () => {
    const output = [
      'The push refers to repository [127.0.0.1:5055/app/demo]',
      'cacd00243bba: Preparing',
      '85954f30cf6d: Preparing',
      'cacd00243bba: Layer already exists',
      '85954f30cf6d: Pushing [=====>     ]  1.2MB/2.4MB',
      '85954f30cf6d: Pushed',
      `1: digest: ${DIGEST} size: 735`,
      '',
    ].join('\n');
    const events = output
      .split('\n')
      .map(parsePushLine)
      .filter((e): e is PushEvent => e !== null);
    expect(events.map((e) => e.kind)).toEqual(['text', 'layer', 'layer', 'layer', 'layer', 'layer', 'digest']);
    expect(pushedDigest(events)).toEqual({ digest: DIGEST, size: 735 });
  });
});
