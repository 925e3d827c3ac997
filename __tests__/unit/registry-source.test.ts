// openRegistrySource against a loopback registry of our own (node:http) serving what we script: the checks on what
// a source registry sends (the digest asked for, the Docker-Content-Digest, the 4 MiB cap, an index's sizes and
// media types), each failure an error naming the source registry; and a good index split into images and
// attestations, its blobs BlobSources of that repository.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IndexImage, ManifestImage } from '../../src/image/image-model.js';
import { MEDIA_TYPES } from '../../src/image/oci.js';
import { RegistryError } from '../../src/registry/registry-client.js';
import { openRegistrySource } from '../../src/registry/registry-source.js';
import { rejection } from '../../test/support/rejection.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const D = (c: string) => `sha256:${c.repeat(64)}`;

function manifest(layer: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: D('c'), size: 10 },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: layer, size: 1000 }],
    }),
  );
}
const amd = manifest(D('1'));
const att = manifest(D('2'));
function index(children: { bytes: Buffer; size?: number; att?: boolean }[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: children.map((c) => ({
        mediaType: MEDIA_TYPES.ociManifest,
        digest: sha(c.bytes),
        size: c.size ?? c.bytes.length,
        platform: c.att ? { os: 'unknown', architecture: 'unknown' } : { os: 'linux', architecture: 'amd64' },
        ...(c.att ? { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } } : {}),
      })),
    }),
  );
}

type Served = Record<string, { body: Buffer; digestHeader?: string }>;
const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function registry(served: Served): Promise<string> {
  const server = http.createServer((req, res) => {
    const ref = /\/manifests\/(.+)$/.exec(req.url ?? '')?.[1] ?? '';
    const m = served[decodeURIComponent(ref)];
    if (!m) return void res.writeHead(404).end();
    res.writeHead(200, {
      'Content-Type': MEDIA_TYPES.ociIndex,
      ...(m.digestHeader === undefined ? { 'Docker-Content-Digest': sha(m.body) } : {}),
      ...(m.digestHeader ? { 'Docker-Content-Digest': m.digestHeader } : {}),
    });
    res.end(m.body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const open = (host: string, reference: string) =>
  openRegistrySource({ host, repository: 'ci/app', reference }, { workDir: '/nonexistent', credentials: null });

test('an index: images and attestations apart, the bytes the source sent, blobs of that repository', async () => {
  const idx = index([{ bytes: amd }, { bytes: att, att: true }]);
  const host = await registry({ '1.0': { body: idx }, [sha(amd)]: { body: amd }, [sha(att)]: { body: att } });
  const opened = await open(host, '1.0');
  const image = opened.image as IndexImage;
  expect(image.kind).toBe('index');
  expect(image.bytes.equals(idx)).toBe(true);
  expect(image.digest).toBe(sha(idx));
  expect(image.manifests.map((m) => [m.digest, m.platform])).toEqual([[sha(amd), 'linux/amd64']]);
  expect(image.attestations.map((m) => m.digest)).toEqual([sha(att)]);
  expect(image.manifests[0].layers[0]).toMatchObject({
    digest: D('1'),
    size: 1000,
    sourceRepository: { host, repository: 'ci/app' },
  });
});

test('a single manifest by digest, with no Docker-Content-Digest sent', async () => {
  const host = await registry({ [sha(amd)]: { body: amd, digestHeader: '' } });
  const image = (await open(host, sha(amd))).image as ManifestImage;
  expect([image.kind, image.digest, image.platform, image.config.digest]).toEqual(['manifest', sha(amd), '', D('c')]);
});

test.each<[string, Served, string, RegExp]>([
  ['no such tag', {}, '1.0', /has no manifest ci\/app:1\.0 \(404\)/],
  [
    'bytes that are not the digest asked for',
    { [D('9')]: { body: amd } },
    D('9'),
    /ci\/app@sha256:9+ has the digest sha256:/,
  ],
  [
    'a Docker-Content-Digest the bytes do not hash to',
    { '1.0': { body: amd, digestHeader: D('8') } },
    '1.0',
    /hashes to sha256:\w+, not its Docker-Content-Digest sha256:8+/,
  ],
  [
    'a Docker-Content-Digest that is no digest',
    { '1.0': { body: amd, digestHeader: 'md5:x' } },
    '1.0',
    /not its Docker-Content-Digest "md5:x"/,
  ],
  ['a manifest over 4 MiB', { '1.0': { body: Buffer.alloc(4 * 1024 * 1024 + 1, 32) } }, '1.0', /over the 4 MiB limit/],
  ['not JSON', { '1.0': { body: Buffer.from('<html>') } }, '1.0', /is not JSON/],
  [
    "an index child whose size is not the descriptor's",
    { '1.0': { body: index([{ bytes: amd, size: 5 }]) }, [sha(amd)]: { body: amd } },
    '1.0',
    /is \d+ bytes, the index says 5/,
  ],
  [
    'an index child that is itself an index',
    { '1.0': { body: index([{ bytes: index([]) }]) }, [sha(index([]))]: { body: index([]) } },
    '1.0',
    /not an image manifest/,
  ],
  [
    'an index child the registry lacks',
    { '1.0': { body: index([{ bytes: amd }]) } },
    '1.0',
    /has no manifest ci\/app@sha256:/,
  ],
])('%s: an error naming the source registry', async (_name, served, reference, message) => {
  const host = await registry(served);
  const error = await rejection(open(host, reference), RegistryError);
  expect(error.message).toMatch(new RegExp(`^the source registry ${host.replace(/\./g, '\\.')}: `));
  expect(error.message).toMatch(message);
});
