// A registry that takes every platform manifest and blob but refuses the index itself (a registry without index
// support answers 400, 404, 415 or "manifest invalid" to it): retrying sends the same index again, so the run stops
// with what the user can change, `platforms:` one platform, which pushes that platform's index of one.
import type { SourceImage } from '../../image/image-model.js';
import type { UploadStop } from '../../upload/errors.js';
import { INDEX_PHASE } from '../../upload/push-image.js';
import { logText } from '../../util/untrusted.js';
import { ActionFailure } from '../ports.js';

/** Answers that say "not this document" rather than "not you" or "not now". */
function refusesDocument(status: number | null): boolean {
  return status !== null && status >= 400 && status < 500 && ![401, 403, 408, 429].includes(status);
}

export function indexRefusal(registry: string, index: SourceImage, stop: UploadStop): ActionFailure | null {
  if (index.kind !== 'index' || stop.phase !== INDEX_PHASE || !refusesDocument(stop.status)) return null;
  const platforms = index.manifests.map((m) => logText(m.platform || 'unknown', 64));
  const first = platforms[0] ?? 'linux/amd64';
  return new ActionFailure(
    'Registry refused the index',
    `${registry} stored every platform manifest (${platforms.join(', ')}) and blob, but refused the index ` +
      `${index.digest} itself (HTTP ${stop.status}: ${logText(stop.message, 300)}). This registry may not accept ` +
      `multi-platform indexes. Push one platform instead, e.g. \`platforms: ${first}\`, or push each platform under ` +
      'its own tag.',
  );
}
