// selectPlatforms: which manifests of an index are pushed and the index that lists them, as a table over a
// buildx-like index (two or three platforms, an attestation manifest per platform).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectPlatforms } from '../../../src/image/index-select.js';
import type { IndexImage } from '../../../src/image/image-model.js';
import { openOciLayout } from '../../../src/image/sources/oci-layout-source.js';
import { buildLayout, sha, writeFiles, type LayoutFixture } from '../../../test/fixtures/sources/layouts.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'rp-select-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function indexOf(fixture: LayoutFixture, name: string): Promise<IndexImage> {
  const dir = join(work, name);
  writeFiles(dir, fixture.files);
  const opened = await openOciLayout(dir, null, { workDir: join(work, 'w') });
  if (opened.image.kind !== 'index') throw new Error('expected an index');
  return opened.image;
}

interface Row {
  readonly name: string;
  readonly platforms: readonly string[] | null;
  readonly attestations: 'strip' | 'keep';
  /** Platforms pushed, in index order. */
  readonly manifests: readonly string[];
  /** Attestations kept: of which platforms' manifests. */
  readonly kept: readonly string[];
  readonly changed: boolean;
}

const THREE = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'];
const ROWS: readonly Row[] = [
  { name: 'strip, every platform', platforms: null, attestations: 'strip', manifests: THREE, kept: [], changed: true },
  {
    name: 'keep, every platform: the source bytes',
    platforms: null,
    attestations: 'keep',
    manifests: THREE,
    kept: THREE,
    changed: false,
  },
  {
    name: 'strip, one platform',
    platforms: ['linux/arm64'],
    attestations: 'strip',
    manifests: ['linux/arm64'],
    kept: [],
    changed: true,
  },
  {
    name: 'keep, a subset keeps only its attestations',
    platforms: ['linux/amd64', 'linux/arm/v7'],
    attestations: 'keep',
    manifests: ['linux/amd64', 'linux/arm/v7'],
    kept: ['linux/amd64', 'linux/arm/v7'],
    changed: true,
  },
  {
    name: 'arm64/v8 is arm64 (containerd default variant)',
    platforms: ['linux/arm64/v8'],
    attestations: 'strip',
    manifests: ['linux/arm64'],
    kept: [],
    changed: true,
  },
  {
    name: 'linux/arm matches arm/v7 (no variant asked)',
    platforms: ['linux/arm'],
    attestations: 'strip',
    manifests: ['linux/arm/v7'],
    kept: [],
    changed: true,
  },
  {
    name: 'the order of the index, not of the request',
    platforms: ['linux/arm/v7', 'linux/amd64'],
    attestations: 'strip',
    manifests: ['linux/amd64', 'linux/arm/v7'],
    kept: [],
    changed: true,
  },
];

describe('selectPlatforms', () => {
  let fixture: LayoutFixture;
  let index: IndexImage;
  beforeAll(async () => {
    fixture = await buildLayout({ platforms: THREE, seed: 'select' });
    index = await indexOf(fixture, 'three');
  });

  test.each(ROWS)('$name', (row) => {
    const out = selectPlatforms(index, { platforms: row.platforms, attestations: row.attestations });
    expect(out.manifests.map((m) => m.platform)).toEqual(row.manifests);
    const subjectOf = new Map(fixture.attestations.map((a) => [a.digest, a.subject]));
    const platformOf = new Map(fixture.platforms.map((p) => [p.digest, p.platform]));
    expect(out.attestations.map((a) => platformOf.get(subjectOf.get(a.digest) as string))).toEqual(row.kept);
    expect(out.changed).toBe(row.changed);
    expect(out.digest).toBe(sha(out.bytes));
    expect(out.mediaType).toBe(index.mediaType);
    if (!row.changed) expect(out.bytes.equals(fixture.index)).toBe(true);
    // the new index lists exactly what is pushed, each descriptor the object the source wrote
    const source = JSON.parse(fixture.index.toString()) as { manifests: { digest: string }[] };
    const written = JSON.parse(out.bytes.toString()) as {
      schemaVersion: number;
      mediaType: string;
      manifests: object[];
    };
    const pushed = new Set([...out.manifests, ...out.attestations].map((m) => m.digest));
    expect(written.manifests).toEqual(source.manifests.filter((d) => pushed.has(d.digest)));
    expect(written.schemaVersion).toBe(2);
    expect(written.mediaType).toBe(index.mediaType);
  });

  test('a platform the index lacks is an error listing what it has', () => {
    expect(() => selectPlatforms(index, { platforms: ['linux/s390x'], attestations: 'strip' })).toThrow(
      'the image has no linux/s390x manifest (it has linux/amd64, linux/arm64, linux/arm/v7)',
    );
    expect(() => selectPlatforms(index, { platforms: ['linux/arm/v6'], attestations: 'strip' })).toThrow(
      'no linux/arm/v6 manifest',
    );
  });

  test('an index without attestations is pushed as it is', async () => {
    const plain = await buildLayout({ attestations: false, seed: 'plain' });
    const out = selectPlatforms(await indexOf(plain, 'plain'), { platforms: null, attestations: 'strip' });
    expect(out.changed).toBe(false);
    expect(out.bytes.equals(plain.index)).toBe(true);
    expect(out.manifests.map((m) => m.digest)).toEqual(plain.platforms.map((p) => p.digest));
  });

  test('fields of the index and of its descriptors this code does not know survive a rewrite', () => {
    const doc = JSON.parse(fixture.index.toString()) as { manifests: Record<string, unknown>[] };
    doc.manifests[0].urls = ['https://example.invalid/x'];
    const bytes = Buffer.from(JSON.stringify({ ...doc, annotations: { 'org.example': 'kept' } }));
    const descriptors = doc.manifests as unknown as IndexImage['descriptors'];
    const edited: IndexImage = { ...index, bytes, digest: sha(bytes), descriptors };
    const out = JSON.parse(selectPlatforms(edited, { platforms: null, attestations: 'strip' }).bytes.toString());
    expect(out.annotations).toEqual({ 'org.example': 'kept' });
    expect(out.manifests[0]).toEqual(doc.manifests[0]);
    expect(out.manifests).toHaveLength(3);
  });

  test('a platform the source does not hold is left out, and the index says so', () => {
    const without: IndexImage = { ...index, manifests: index.manifests.slice(1) };
    const out = selectPlatforms(without, { platforms: null, attestations: 'keep' });
    expect(out.changed).toBe(true);
    const listed = (JSON.parse(out.bytes.toString()) as { manifests: { digest: string }[] }).manifests.map(
      (d) => d.digest,
    );
    expect(listed).not.toContain(index.manifests[0].digest);
    // its attestation goes with it: its subject is gone
    const orphan = fixture.attestations.find((a) => a.subject === index.manifests[0].digest)?.digest;
    expect(listed).not.toContain(orphan);
    expect(listed).toHaveLength(4);
  });
});
