// The inputs that say what is pushed: `image` (any source skopeo names, source-ref.ts), `target-image` (defaulted
// from the source where it names a repository), `platforms` (a subset of an index) and the source registry's own
// credentials. Pure: the source itself is opened by the run, which reports a missing file or layout on `image`.
import { isValidRepositoryPath } from '../image/reference.js';
import { DAEMONLESS, defaultTarget, parseSourceRef, type SourceRef } from '../image/source-ref.js';
import { given, InputError, splitList, type InputGetter } from './input-read.js';
import type { Mode } from './input-table.js';

/** os/architecture[/variant] as buildx and `docker push --platform` write it: lowercase words. */
const PLATFORM_RE = /^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*(?:\/[a-z0-9][a-z0-9._-]*)?$/;

export function parseSource(get: InputGetter, mode: Mode): SourceRef | null {
  const imageText = given(get, 'image');
  if (mode === 'tombstone') {
    if (!imageText) return null;
    throw new InputError(
      'image',
      "Input 'image' must be empty with mode 'tombstone': mode tombstone pushes an empty image over the tag; " +
        "it never pushes 'image'. Remove 'image', or use mode 'push' to push it.",
    );
  }
  if (!imageText) throw new InputError('image', "Input 'image' is required.");
  const source = parseSourceRef(imageText);
  if ('error' in source) throw new InputError('image', `Input 'image': ${source.error}.`);
  return source;
}

/** Why a source names no repository, for the target-image error. */
function unnamed(source: SourceRef): string {
  switch (source.transport) {
    case 'oci':
    case 'oci-archive':
      return `'image' is an OCI layout (${source.transport}:), which names no repository`;
    case 'docker-archive':
      return "'image' is a docker-archive: without :NAME, which names no repository";
    default:
      return "'image' is an image ID";
  }
}

export function parseTarget(get: InputGetter, source: SourceRef | null): string {
  const target = given(get, 'target-image') || (source ? defaultTarget(source) : null);
  if (!target) {
    throw new InputError(
      'target-image',
      source
        ? `Input 'target-image' is required when ${unnamed(source)}.`
        : "Input 'target-image' is required with mode 'tombstone' (the repository under the app whose tag is replaced).",
    );
  }
  if (!isValidRepositoryPath(target)) {
    throw new InputError(
      'target-image',
      `Input 'target-image': '${target}' is not a valid repository name ` +
        '(lowercase letters, digits, separators . _ -, path components joined by /).',
    );
  }
  return target;
}

/** `platforms`: which platforms of an index to push; empty: every one. */
export function parsePlatforms(get: InputGetter): readonly string[] {
  const list = splitList(given(get, 'platforms'));
  for (const p of list) {
    if (!PLATFORM_RE.test(p))
      throw new InputError(
        'platforms',
        `Input 'platforms': '${p}' is not a platform (os/architecture[/variant], e.g. linux/amd64 or linux/arm/v7).`,
      );
  }
  return Object.freeze([...new Set(list)]);
}

export interface SourceCredentials {
  readonly sourceUsername: string;
  readonly sourceToken: string;
}

/** source-username and source-token: both or neither, and only for a registry source (docker://). */
export function parseSourceCredentials(get: InputGetter, source: SourceRef | null): SourceCredentials {
  const sourceUsername = given(get, 'source-username');
  const sourceToken = given(get, 'source-token');
  if (!sourceUsername && !sourceToken) return { sourceUsername, sourceToken };
  const name = sourceToken ? 'source-token' : 'source-username';
  if (source?.transport !== 'docker')
    throw new InputError(
      name,
      `Input '${name}' is for a registry source ('image: docker://REGISTRY/REPO:TAG'); 'image' names none.`,
    );
  if (!sourceToken) throw new InputError('source-token', "Input 'source-token' is required with 'source-username'.");
  return { sourceUsername, sourceToken };
}

/** layer-split: auto re-layers an image in the engine; a source read without it cannot be (not yet). */
export function checkLayerSplit(source: SourceRef | null, layerSplit: string): void {
  if (layerSplit === 'auto' && source && DAEMONLESS.has(source.transport))
    throw new InputError(
      'layer-split',
      `Input 'layer-split': auto re-layers an image in the Docker engine; '${source.transport}' sources are read ` +
        'without one and are pushed as they are. Use layer-split: advise (the default) or off; the chunked uploader ' +
        'sends a big layer in resumable chunks either way.',
    );
}
