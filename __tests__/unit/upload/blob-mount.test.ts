// Cross-repository mount, decided (a table: only a blob from another repository of the very same registry) and run
// against the scripted loopback registry (test/support/upload-registry.ts, distribution's protocol): a 201 to the
// mount ends the blob with no byte sent; a 202 (what distribution answers when it cannot mount) is the session the
// upload then uses, with no second POST. The real distribution's mount is tested in e2e/registry-source.test.ts.
import { randomBytes } from 'node:crypto';
import { eventLine } from '../../../src/core/stages/upload-log.js';
import { mountSource } from '../../../src/upload/blob-mount.js';
import { uploadBlob, type UploadEvent } from '../../../src/upload/blob.js';
import { bufferBlobSource, type BlobSource } from '../../../src/image/blob-source.js';
import type { RegistryTransport } from '../../../src/registry/registry-client.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

describe('mountSource', () => {
  const target = { host: 'reg.example', repository: 'team/app' };
  test.each<
    [string, { host?: string; repository: string }, { host: string; repository: string } | undefined, string | null]
  >([
    ['another repository of the same registry', target, { host: 'reg.example', repository: 'ci/app' }, 'ci/app'],
    ['the same repository (HEAD finds it)', target, { host: 'reg.example', repository: 'team/app' }, null],
    ['another registry', target, { host: 'ghcr.io', repository: 'ci/app' }, null],
    ['the same host on another port', target, { host: 'reg.example:5000', repository: 'ci/app' }, null],
    ['a blob from a file', target, undefined, null],
    [
      'a transport that does not say its host',
      { repository: 'team/app' },
      { host: 'reg.example', repository: 'ci/app' },
      null,
    ],
  ])('%s', (_name, to, from, want) => {
    expect(mountSource(to, from)).toBe(want);
  });
});

let reg: ScriptedRegistry;
afterEach(async () => reg?.stop());

function fromRepository(host: string): { bytes: Buffer; source: BlobSource } {
  const bytes = randomBytes(10_000);
  const source = {
    ...bufferBlobSource(bytes, 'application/octet-stream'),
    sourceRepository: { host, repository: 'ci/app' },
  };
  return { bytes, source };
}

function transportOf(r: ScriptedRegistry): RegistryTransport {
  const t = r.transport();
  return { host: new URL(r.url).host, send: (req) => t.send(req) };
}

test('a 201 to the mount: the blob is there, no byte sent', async () => {
  reg = await startScriptedRegistry({
    script: (req) =>
      req.method === 'POST' && req.query.includes('mount=')
        ? { status: 201, headers: { Location: '/v2/x' } }
        : undefined,
  });
  const { source } = fromRepository(new URL(reg.url).host);
  const events: UploadEvent[] = [];
  const result = await uploadBlob(transportOf(reg), 'team/app', source, { onEvent: (e) => events.push(e) });
  expect(result.mode).toBe('mounted');
  expect(result.bytesSent).toBe(0);
  expect(reg.sequence()).toEqual(['HEAD blob -> 404', 'POST uploads -> 201']);
  const post = reg.requests[1];
  expect(new URLSearchParams(post.query).get('mount')).toBe(source.digest);
  expect(new URLSearchParams(post.query).get('from')).toBe('ci/app');
  expect(events).toEqual([{ type: 'mounted', digest: source.digest, size: source.size, from: 'ci/app' }]);
  // the log says so, and quotes the repository as data
  expect(eventLine(events[0])).toMatch(/^[0-9a-f]{12}: mounted from ci\/app \(.+\), no bytes sent$/);
  expect(eventLine({ ...(events[0] as Extract<UploadEvent, { type: 'mounted' }>), from: 'x\n::error::y' })).not.toMatch(
    /\n/,
  );
});

test('a 202 to the mount: its session carries the upload, one POST in all, the registry holds the blob', async () => {
  reg = await startScriptedRegistry(); // opens a session for any POST, as distribution does when it cannot mount
  const { bytes, source } = fromRepository(new URL(reg.url).host);
  const result = await uploadBlob(transportOf(reg), 'team/app', source, { chunkSize: 4_096 });
  expect(result.mode).toBe('chunked');
  expect(reg.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  expect(reg.requests[1].query).toContain('mount=');
  expect(reg.blobs.get(source.digest)?.equals(bytes)).toBe(true);
  expect(reg.overlaps).toEqual([]);
});

test('a blob from another registry: no mount asked', async () => {
  reg = await startScriptedRegistry();
  const { source } = fromRepository('elsewhere.example');
  await uploadBlob(transportOf(reg), 'team/app', source);
  expect(reg.requests.filter((r) => r.method === 'POST').map((r) => r.query)).toEqual(['']);
});
