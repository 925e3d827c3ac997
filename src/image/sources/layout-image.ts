// The image model of an OCI layout wherever its files are (a directory, byte ranges of a tar): what saved-image.ts
// found, with a BlobSource for every config and layer. A blob is a byte range of a file, read when the uploader
// asks; one read from its start is hashed on the way and fails at its end when the bytes are not the digest's, so
// a corrupt layer never becomes a blob the registry is asked to take (the registry would refuse it too).
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import type { BlobSource } from '../blob-source.js';
import type { IndexImage, ManifestImage, SourceImage } from '../image-model.js';
import { blobName, MEDIA_TYPES, type Descriptor } from '../oci.js';
import {
  layoutEntries,
  MAX_DOCUMENT_SIZE,
  parseJson,
  pickLayoutEntry,
  resolveLayoutImage,
  type LayoutImage,
  type LayoutManifest,
  type ReadDoc,
} from '../saved-image.js';

/** Where a layout file is: `file`'s bytes from `offset`, `size` long. */
export interface FileRange {
  readonly file: string;
  readonly offset: number;
  readonly size: number;
}

/** A layout file by name (`blobs/sha256/HEX`), or undefined when the layout does not hold it. */
export type FindFile = (name: string) => FileRange | undefined;

/**
 * The layout's documents (index.json, manifests, configs) read whole, each at most MAX_DOCUMENT_SIZE. Synchronous:
 * a handful of small reads while the source opens, which saved-image.ts's pure walk asks for one at a time.
 */
export function documentReader(find: FindFile): ReadDoc {
  return (name) => {
    const range = find(name);
    if (!range) return undefined;
    if (range.size > MAX_DOCUMENT_SIZE)
      throw new Error(`${name} is ${range.size} bytes, over the ${MAX_DOCUMENT_SIZE} a document may be`);
    const bytes = Buffer.alloc(range.size);
    const fd = openSync(range.file, 'r');
    try {
      let filled = 0;
      while (filled < range.size) {
        const n = readSync(fd, bytes, filled, range.size - filled, range.offset + filled);
        if (n === 0) throw new Error(`${name} ends after ${filled} of its ${range.size} bytes`);
        filled += n;
      }
    } finally {
      closeSync(fd);
    }
    return bytes;
  };
}

/** Hashes what passes and fails at the end when it is not `digest` (`size` bytes): the blob named `what`. */
function verifying(digest: string, size: number, what: string): Transform {
  const hash = createHash('sha256');
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      length += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      const actual = `sha256:${hash.digest('hex')}`;
      if (length !== size) cb(new Error(`the ${what} ${digest} has ${length} bytes, its descriptor says ${size}`));
      else if (actual !== digest)
        cb(new Error(`the ${what} ${digest} does not match its bytes (they hash to ${actual})`));
      else cb();
    },
  });
}

/** A blob as a byte range of a file (see the top of this file). */
export function rangeBlob(range: FileRange, d: Descriptor, what: string): BlobSource {
  const mediaType = d.mediaType ?? MEDIA_TYPES.ociLayerGzip;
  const open = (offset: number): Readable => {
    if (offset >= range.size) return Readable.from([]);
    const start = range.offset + offset;
    const bytes = createReadStream(range.file, { start, end: range.offset + range.size - 1, highWaterMark: 1 << 20 });
    if (offset > 0) return bytes;
    const check = verifying(d.digest, d.size, what);
    bytes.on('error', (e) => check.destroy(e));
    check.on('close', () => bytes.destroy());
    return bytes.pipe(check);
  };
  return { digest: d.digest, size: d.size, mediaType, open };
}

/** The blob a descriptor names, there and of the size it says; throws naming it otherwise. */
export function layoutBlob(find: FindFile, d: Descriptor, what: string): BlobSource {
  const range = find(blobName(d.digest));
  if (!range) throw new Error(`the layout lacks the ${what} ${d.digest}`);
  if (range.size !== d.size)
    throw new Error(`the ${what} ${d.digest} has ${range.size} bytes, its descriptor says ${d.size}`);
  return rangeBlob(range, d, what);
}

function manifestImage(find: FindFile, m: LayoutManifest): ManifestImage {
  return {
    kind: 'manifest',
    bytes: m.bytes,
    digest: m.digest,
    mediaType: m.mediaType,
    platform: m.platform,
    config: layoutBlob(find, m.doc.config, 'config'),
    layers: m.doc.layers.map((l) => layoutBlob(find, l, 'layer')),
  };
}

/** The image model of what saved-image.ts resolved; every blob checked to be there (layoutBlob). */
export function layoutSourceImage(find: FindFile, image: LayoutImage): SourceImage {
  if (image.kind === 'manifest') return manifestImage(find, image.manifest);
  const index: IndexImage = {
    kind: 'index',
    bytes: image.bytes,
    digest: image.digest,
    mediaType: image.mediaType,
    descriptors: image.descriptors,
    manifests: image.manifests.map((m) => manifestImage(find, m)),
    attestations: image.attestations.map((m) => manifestImage(find, m)),
  };
  return index;
}

/**
 * Throws unless `read` finds what makes a set of files an OCI image layout (image-spec image-layout.md): an
 * `oci-layout` file of version 1.x (and index.json, which resolving the image reads).
 */
function checkOciLayout(read: ReadDoc): void {
  const marker = read('oci-layout');
  if (!marker) throw new Error('it has no oci-layout file (not an OCI image layout)');
  const doc = parseJson<{ imageLayoutVersion?: unknown }>(marker, 'oci-layout');
  const version = doc?.imageLayoutVersion;
  if (typeof version !== 'string' || !/^1\.\d+\.\d+$/.test(version))
    throw new Error(`its oci-layout file names version ${JSON.stringify(version)}, not 1.x`);
}

/** The image `ref` names (the only one when null) in the OCI image layout `find` reads: the directory's, the tar's. */
export function ociLayoutImage(find: FindFile, ref: string | null): SourceImage {
  const read = documentReader(find);
  checkOciLayout(read);
  return layoutSourceImage(find, resolveLayoutImage(read, pickLayoutEntry(layoutEntries(read), ref)));
}
