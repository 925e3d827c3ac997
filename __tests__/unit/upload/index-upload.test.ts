// uploadIndex against the scripted loopback registry: every manifest the index lists (blobs, then the manifest by
// digest) before the index, which goes under each tag, or by digest when there are none.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectPlatforms } from '../../../src/image/index-select.js';
import { openOciLayout } from '../../../src/image/sources/oci-layout-source.js';
import { uploadIndex } from '../../../src/upload/index-upload.js';
import { buildLayout, sha, writeFiles } from '../../../test/fixtures/sources/layouts.js';
import { startScriptedRegistry, type ScriptedRegistry } from '../../../test/support/upload-registry.js';

const REPO = 'app/multi';
let reg: ScriptedRegistry;
let work: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-index-upload-'));
});
afterEach(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function strippedIndex(seed: string) {
  const fx = await buildLayout({ seed });
  writeFiles(join(work, 'l'), fx.files);
  const image = (await openOciLayout(join(work, 'l'), null, { workDir: work })).image;
  if (image.kind !== 'index') throw new Error('expected an index');
  const sel = selectPlatforms(image, { platforms: null, attestations: 'strip' });
  return { fx, sel, index: sel };
}

test('each platform by digest, then the index under each tag', async () => {
  reg = await startScriptedRegistry();
  const { fx, sel, index } = await strippedIndex('up');
  const result = await uploadIndex(reg.transport(), REPO, index, ['1.0', 'latest'], { retryDelayMs: () => 0 });
  expect(result.digest).toBe(sha(sel.bytes));
  expect(result.manifests.map((m) => [m.platform, m.digest])).toEqual(fx.platforms.map((p) => [p.platform, p.digest]));
  for (const p of fx.platforms) {
    expect(reg.manifests.get(`${REPO}:${p.digest}`)?.body.equals(p.manifest)).toBe(true);
    expect(reg.blobs.get(sha(p.layer))?.equals(p.layer)).toBe(true);
    expect(reg.blobs.get(sha(p.config))?.equals(p.config)).toBe(true);
  }
  for (const tag of ['1.0', 'latest'])
    expect(reg.manifests.get(`${REPO}:${tag}`)).toEqual({ body: sel.bytes, contentType: sel.mediaType });
  // no attestation reached the registry, and the index came after every manifest
  for (const a of fx.attestations) expect(reg.manifests.has(`${REPO}:${a.digest}`)).toBe(false);
  const puts = reg.requests
    .filter((r) => r.method === 'PUT' && r.path.includes('/manifests/'))
    .map((r) => r.path.split('/').pop());
  expect(puts).toEqual([...fx.platforms.map((p) => p.digest), '1.0', 'latest']);
});

test('no tags: the index by its digest', async () => {
  reg = await startScriptedRegistry();
  const { sel, index } = await strippedIndex('bydigest');
  const result = await uploadIndex(reg.transport(), REPO, index, [], { retryDelayMs: () => 0 });
  expect(result.references).toEqual([sel.digest]);
  expect(reg.manifests.get(`${REPO}:${sel.digest}`)?.body.equals(sel.bytes)).toBe(true);
});

test('an index naming a manifest not given is refused before anything is sent', async () => {
  reg = await startScriptedRegistry();
  const { index } = await strippedIndex('short');
  await expect(
    uploadIndex(reg.transport(), REPO, { ...index, manifests: index.manifests.slice(1) }, ['x']),
  ).rejects.toThrow('which is not among the manifests given');
  expect(reg.requests).toHaveLength(0);
});

test('a registry that stores the index under another digest is an error', async () => {
  reg = await startScriptedRegistry({
    script: (r) =>
      r.method === 'PUT' && r.path.endsWith('/manifests/1.0')
        ? { status: 201, headers: { 'Docker-Content-Digest': `sha256:${'0'.repeat(64)}` } }
        : undefined,
  });
  const { index } = await strippedIndex('echo');
  await expect(uploadIndex(reg.transport(), REPO, index, ['1.0'], { retryDelayMs: () => 0 })).rejects.toThrow(
    `the registry stored the manifest as sha256:${'0'.repeat(64)}`,
  );
});
