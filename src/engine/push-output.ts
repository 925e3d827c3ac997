// `docker push` output, line by line, as typed events. Both image stores print the same status lines
// without a TTY; the containerd store also lists config and manifest blobs as "layers".

export type LayerStatus =
  'preparing' | 'waiting' | 'pushing' | 'pushed' | 'exists' | 'mounted' | 'retrying' | 'failed' | 'other';

export type PushEvent =
  | { kind: 'layer'; id: string; status: LayerStatus; text: string }
  | { kind: 'digest'; tag: string; digest: string; size: number }
  | { kind: 'text'; text: string };

const LAYER_LINE = /^([a-f0-9]{12}): (.+)$/;
const DIGEST_LINE = /^(\S+): digest: (sha256:[a-f0-9]{64}) size: (\d+)$/;

function layerStatus(text: string): { status: LayerStatus } {
  if (/^Retrying in \d+ seconds?/.test(text)) return { status: 'retrying' };
  if (text.startsWith('Preparing')) return { status: 'preparing' };
  if (text.startsWith('Waiting')) return { status: 'waiting' };
  if (text.startsWith('Pushing')) return { status: 'pushing' };
  if (text.startsWith('Pushed')) return { status: 'pushed' };
  if (text.startsWith('Layer already exists')) return { status: 'exists' };
  if (text.startsWith('Mounted from')) return { status: 'mounted' };
  if (/error|failed|unexpected/i.test(text)) return { status: 'failed' };
  return { status: 'other' };
}

export function parsePushLine(line: string): PushEvent | null {
  const text = line.replace(/\r/g, '').trimEnd();
  if (!text) return null;
  const digest = DIGEST_LINE.exec(text);
  if (digest) return { kind: 'digest', tag: digest[1], digest: digest[2], size: Number(digest[3]) };
  const layer = LAYER_LINE.exec(text);
  if (layer) return { kind: 'layer', id: layer[1], text: layer[2], ...layerStatus(layer[2]) };
  return { kind: 'text', text };
}

/** The last digest line of a push, or null when the push printed none. */
export function pushedDigest(events: readonly PushEvent[]): { digest: string; size: number } | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.kind === 'digest') return { digest: e.digest, size: e.size };
  }
  return null;
}
