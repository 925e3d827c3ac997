// The log line of each upload event, shared by the push stage and the split's early uploads.
import { shortDigest } from '../../image/oci.js';
import { formatBytes, formatDuration } from '../../util/units.js';
import { logText } from '../../util/untrusted.js';
import type { UploadEvent } from '../../upload/index.js';

/** What the log says of an upload event; null for what the progress line already shows. */
export function eventLine(e: UploadEvent): string | null {
  const blob = shortDigest(e.digest);
  switch (e.type) {
    case 'exists':
      return `${blob}: already in the registry (${formatBytes(e.size)})`;
    case 'mounted':
      // the repository name comes from the source reference the user gave, but it is quoted as data all the same
      return `${blob}: mounted from ${logText(e.from)} (${formatBytes(e.size)}), no bytes sent`;
    case 'uploaded':
      return `${blob}: uploaded ${formatBytes(e.size)} ${e.mode === 'chunked' ? `in ${e.chunks} chunk(s)` : 'in one request'} (${formatDuration(e.elapsedMs)})`;
    case 'chunk-failed':
      return `${blob}: the chunk at ${formatBytes(e.start)} failed (${e.reason}); asking the registry where the upload stands`;
    case 'resumed':
      return `${blob}: resuming at ${formatBytes(e.offset)}`;
    case 'restarted':
      return `${blob}: starting this blob again in a new upload (${e.reason})`;
    case 'fallback':
      return `${blob}: the registry refused a chunked upload (HTTP ${e.status}: ${e.reason}); sending this blob in one request`;
    default:
      return null;
  }
}
