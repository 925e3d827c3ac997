// What makes a set of files an OCI image layout (image-spec image-layout.md): an `oci-layout` file naming the
// layout version, and index.json. Shared by the directory and the tar; pure over a ReadDoc.
import type { ReadDoc } from '../saved-image.js';
import { parseJson } from '../saved-image.js';

/** Throws unless `read` finds an oci-layout file of version 1.x. */
export function checkOciLayout(read: ReadDoc): void {
  const marker = read('oci-layout');
  if (!marker) throw new Error('it has no oci-layout file (not an OCI image layout)');
  const doc = parseJson<{ imageLayoutVersion?: unknown }>(marker, 'oci-layout');
  const version = doc?.imageLayoutVersion;
  if (typeof version !== 'string' || !/^1\.\d+\.\d+$/.test(version))
    throw new Error(`its oci-layout file names version ${JSON.stringify(version)}, not 1.x`);
}
