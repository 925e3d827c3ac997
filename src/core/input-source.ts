// The inputs that say what is pushed: `image` (any source skopeo names, source-ref.ts), `target-image` (defaulted
// from the source where it names a repository), `platforms` (a subset of an index) and the source registry's own
// credentials. Pure: the source itself is opened by the run, which reports a missing file or layout on `image`.
import { isValidRepositoryPath } from '../image/reference.js';
import { DAEMONLESS, defaultTarget, parseSourceRef, type SourceRef } from '../image/source-ref.js';
import { given, InputError, splitList, type InputGetter } from './input-read.js';
import { duplicateTarget, parseImageLines, type ImageLine } from './image-lines.js';
import type { Mode } from './input-table.js';

/** os/architecture[/variant] as buildx and `docker push --platform` write it: lowercase words. */
const PLATFORM_RE = /^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*(?:\/[a-z0-9][a-z0-9._-]*)?$/;

/** One image of `image` as read: its line (null: the input was one line), the source, the repository under the app. */
export interface ImageInput {
  readonly line: number | null;
  readonly source: SourceRef;
  readonly target: string;
}

/** `image` and `target-image`: the images to push (one a line), or null in tombstone mode (its target only). */
export function parseImages(get: InputGetter, mode: Mode): { images: readonly ImageInput[] | null; target: string } {
  const imageText = given(get, 'image');
  if (mode === 'tombstone') {
    if (!imageText) return { images: null, target: parseTarget(get, null) };
    throw new InputError(
      'image',
      "Input 'image' must be empty with mode 'tombstone': mode tombstone pushes an empty image over the tag; " +
        "it never pushes 'image'. Remove 'image', or use mode 'push' to push it.",
    );
  }
  const lines = parseImageLines(imageText);
  if ('error' in lines) throw new InputError('image', `Input 'image': ${lines.error}.`);
  if (!lines.length) throw new InputError('image', "Input 'image' is required.");
  if (lines.length === 1) {
    const image = singleImage(get, lines[0]);
    return { images: [image], target: image.target };
  }
  if (given(get, 'target-image'))
    throw new InputError(
      'target-image',
      `Input 'target-image' names the repository of a single image; 'image' has ${lines.length}. ` +
        'Name each one on its line instead: TARGET=SOURCE.',
    );
  const images = lines.map(lineImage);
  const twice = duplicateTarget(images.map((i) => ({ line: i.line as number, target: i.target })));
  if (twice) {
    const [a, b] = twice.lines.map((n) => lines.find((l) => l.line === n)?.source);
    throw new InputError(
      'image',
      `Input 'image': lines ${twice.lines[0]} ('${a}') and ${twice.lines[1]} ('${b}') both push to the repository ` +
        `'${twice.target}'; give one of them another: TARGET=SOURCE.`,
    );
  }
  return { images, target: images[0].target };
}

/** The one image of a one-line `image`: as before issue 20, its repository from target-image or the source. */
function singleImage(get: InputGetter, line: ImageLine): ImageInput {
  const source = parseSourceRef(line.source);
  if ('error' in source) throw new InputError('image', `Input 'image': ${source.error}.`);
  if (line.target && given(get, 'target-image'))
    throw new InputError(
      'target-image',
      `Input 'target-image' and the line '${line.target}=...' of 'image' both name the repository; keep one.`,
    );
  return { line: null, source, target: line.target ?? parseTarget(get, source) };
}

/** A line of a several-image `image`: its errors name the line, as the user wrote it. */
function lineImage(line: ImageLine): ImageInput {
  const source = parseSourceRef(line.source);
  const at = `Input 'image', line ${line.line} ('${line.source}')`;
  if ('error' in source) throw new InputError('image', `${at}: ${source.error}.`);
  const target = line.target ?? defaultTarget(source);
  if (!target) throw new InputError('image', `${at}: ${unnamed(source)}; name it on the line: TARGET=${line.source}.`);
  if (!isValidRepositoryPath(target))
    throw new InputError('image', `${at}: '${target}' is not a valid repository name; name it: TARGET=SOURCE.`);
  return { line: line.line, source, target };
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

function parseTarget(get: InputGetter, source: SourceRef | null): string {
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
export function parseSourceCredentials(get: InputGetter, sources: readonly SourceRef[]): SourceCredentials {
  const sourceUsername = given(get, 'source-username');
  const sourceToken = given(get, 'source-token');
  if (!sourceUsername && !sourceToken) return { sourceUsername, sourceToken };
  const name = sourceToken ? 'source-token' : 'source-username';
  if (!sources.some((s) => s.transport === 'docker'))
    throw new InputError(
      name,
      `Input '${name}' is for a registry source ('image: docker://REGISTRY/REPO:TAG'); 'image' names none.`,
    );
  if (!sourceToken) throw new InputError('source-token', "Input 'source-token' is required with 'source-username'.");
  return { sourceUsername, sourceToken };
}

/**
 * The input values that need the Docker engine: layer-split: auto re-layers an image in it, upload: docker is its
 * own push. A source read without it cannot honour them, and the action never does other than asked.
 */
export function checkEngineOnly(source: SourceRef | null, inputs: { layerSplit: string; upload: string }): void {
  if (!source || !DAEMONLESS.has(source.transport)) return;
  const kind = source.transport === 'docker' ? 'docker://' : `${source.transport}:`;
  if (inputs.layerSplit === 'auto')
    throw new InputError(
      'layer-split',
      `Input 'layer-split': auto re-layers an image in the Docker engine; ${kind} sources are read ` +
        'without one and are pushed as they are. Use layer-split: advise (the default) or off; the chunked uploader ' +
        'sends a big layer in resumable chunks either way.',
    );
  if (inputs.upload === 'docker')
    throw new InputError(
      'upload',
      `Input 'upload': docker pushes with the Docker engine; ${kind} sources are read without one and ` +
        'sent by the action itself, in resumable chunks. Use upload: auto (the default) or chunked.',
    );
}
