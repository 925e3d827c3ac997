// Every input, parsed and validated into one frozen Config. Pure: the adapter hands in a getter. Which inputs
// there are, their defaults and CLI flags is the one table of inputs (input-table.ts).
import {
  isValidAppSlug,
  isValidRepositoryPath,
  isValidTag,
  normalizeRegistryHost,
  readsAsDockerHubPath,
  type LocalImage,
} from '../image/reference.js';
import type { SourceRef } from '../image/source-ref.js';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../upload/blob.js';
import { parseDuration, parseSize } from '../util/units.js';
import { printable } from '../util/untrusted.js';
import { given, InputError, oneOf, parseBool, required, splitList, valueOf, type InputGetter } from './input-read.js';
import {
  checkEngineOnly,
  parseImages,
  parsePlatforms,
  parseSourceCredentials,
  type ImageInput,
} from './input-source.js';
import {
  ATTESTATION_MODES,
  LAYER_SPLIT_MODES,
  MODES,
  REPLICATED_REGISTRY,
  TOKEN_TYPES,
  UPLOAD_MODES,
  type AttestationMode,
  type LayerSplitMode,
  type Mode,
  type TokenType,
  type UploadMode,
} from './input-table.js';

export { InputError, splitList, type InputGetter } from './input-read.js';

/** Registries accept any username with these token types; docker login still wants one. */
export const PLACEHOLDER_USERNAME = 'replicated-push';

export interface Config {
  readonly mode: Mode;
  readonly appSlug: string;
  /** Where the image comes from (`image`); null in tombstone mode: the action makes the (empty) image itself. */
  readonly source: SourceRef | null;
  /** The image in the local engine, when `source` names one (a plain name or docker-daemon:); else null. */
  readonly image: LocalImage | null;
  readonly target: string;
  /** Path under the registry: APP_SLUG/TARGET, or the `repository` input on an external registry. */
  readonly repositoryPath: string;
  /** An external registry customers pull through the Replicated proxy (anything but the Replicated registry). */
  readonly external: boolean;
  readonly proxyDomain: string;
  /** token-type was set by the user (it only means something for the Replicated registry). */
  readonly tokenTypeGiven: boolean;
  readonly tags: readonly string[];
  /** Where the tags came from, for the log: the input or the git tag ref. */
  readonly tagSource: 'input' | 'git-tag';
  readonly tokenType: TokenType;
  readonly token: string;
  readonly username: string;
  readonly registry: string;
  readonly dryRun: boolean;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly maxLayerSize: number;
  readonly layerSplit: LayerSplitMode;
  /** How blobs reach the registry: docker push, the action's chunked uploader, or auto (see push-policy.ts). */
  readonly upload: UploadMode;
  /** Bytes per request of the chunked uploader. */
  readonly chunkSize: number;
  readonly attestations: AttestationMode;
  /** `platforms`: the platforms of an index to push (os/arch[/variant]); empty: every platform. */
  readonly platforms: readonly string[];
  /** Credentials for a docker:// source; empty: the job's docker config is asked. */
  readonly sourceUsername: string;
  readonly sourceToken: string;
}

/** Where in git the run is: the ref a default tag comes from. */
export interface GitContext {
  /** GITHUB_REF, e.g. refs/tags/v1.2.3; empty outside Actions. */
  readonly ref: string;
}

const SEMVER_AFTER_V = /^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/;

/** The tag a release tag ref implies: `refs/tags/v1.2.3` -> `1.2.3`; null on any other ref. */
export function tagFromRef(ref: string): string | null {
  const m = /^refs\/tags\/(.+)$/.exec(ref);
  if (!m) return null;
  const semver = SEMVER_AFTER_V.exec(m[1]);
  // `+` (semver build metadata) is not allowed in a docker tag; docker's own metadata-action maps it to `-`.
  return (semver ? semver[1] : m[1]).replace(/\+/g, '-');
}

function parseTags(get: InputGetter, ctx: GitContext, mode: Mode): { tags: string[]; source: 'input' | 'git-tag' } {
  const tagList = splitList(given(get, 'tag'));
  if (tagList.length === 0 && mode === 'tombstone') {
    throw new InputError(
      'tag',
      "Input 'tag' is required with mode 'tombstone': name the tag to replace; it is never defaulted.",
    );
  }
  if (tagList.length === 0) {
    const fromRef = tagFromRef(ctx.ref);
    if (!fromRef || !isValidTag(fromRef)) {
      throw new InputError(
        'tag',
        `Input 'tag' is empty and the run is not on a tag ref (ref: '${printable(ctx.ref) || 'none'}'). ` +
          'A pushed tag is a release artifact customers may already pull, so no tag is invented: ' +
          'set `tag`, or run on a tag push.',
      );
    }
    return { tags: [fromRef], source: 'git-tag' };
  }
  for (const t of tagList) {
    if (!isValidTag(t)) {
      throw new InputError(
        'tag',
        `Input 'tag': '${t}' is not a valid Docker tag ` +
          '(letters, digits, _ . -; must not start with . or -; at most 128 characters).',
      );
    }
  }
  return { tags: [...new Set(tagList)], source: 'input' };
}

function parseUsername(get: InputGetter, tokenType: TokenType): string {
  const username = given(get, 'username');
  if (tokenType === 'user' || tokenType === 'password') {
    if (!username) {
      throw new InputError(
        'username',
        `Input 'username' is required with token-type '${tokenType}': ` +
          'use the email address you sign in to the Vendor Portal with.',
      );
    }
    if (!/^[^@\s]+@[^@\s]+$/.test(username)) {
      throw new InputError(
        'username',
        `Input 'username' must be the Vendor Portal email address with token-type '${tokenType}'.`,
      );
    }
  }
  return username || PLACEHOLDER_USERNAME;
}

function parseRetries(get: InputGetter): number {
  const raw = valueOf(get, 'retries');
  if (!/^\d+$/.test(raw) || Number(raw) > 10) {
    throw new InputError('retries', `Input 'retries' must be a whole number from 0 to 10; got '${raw}'.`);
  }
  return Number(raw);
}

/** `registry` and `proxy-domain`: one normalized form (reference.ts), which every later rule compares. */
function parseHost(get: InputGetter, name: 'registry' | 'proxy-domain'): string {
  const text = valueOf(get, name);
  const host = normalizeRegistryHost(text);
  if (host) return host;
  if (readsAsDockerHubPath(text)) {
    throw new InputError(
      name,
      `Input '${name}': '${text}' is not a registry host docker would use: a name without a dot or a port is read ` +
        `as a Docker Hub path (docker.io/${text}/...), while login and verification would go to host '${text}'. ` +
        'Write the full host name, host:port, or localhost.',
    );
  }
  throw new InputError(
    name,
    name === 'registry'
      ? `Input 'registry': '${text}' is not a registry host (host or host:port).`
      : `Input 'proxy-domain': '${text}' is not a host name.`,
  );
}

function parseRepository(get: InputGetter, external: boolean, fallback: string): string {
  const repository = given(get, 'repository');
  if (!repository) return fallback;
  if (!external) {
    throw new InputError(
      'repository',
      `Input 'repository' is for external registries; on ${REPLICATED_REGISTRY} the path is always APP_SLUG/TARGET (use 'target-image').`,
    );
  }
  if (!isValidRepositoryPath(repository)) {
    throw new InputError(
      'repository',
      `Input 'repository': '${repository}' is not a valid repository path (e.g. my-org/worker).`,
    );
  }
  return repository;
}

function parseAppSlug(get: InputGetter): string {
  const appSlug = required(get, 'app-slug');
  if (!isValidAppSlug(appSlug)) {
    throw new InputError(
      'app-slug',
      `Input 'app-slug': '${appSlug}' is not an application slug ` +
        '(lowercase letters, digits and hyphens, as shown in the Vendor Portal).',
    );
  }
  return appSlug;
}

type Credentials = Pick<Config, 'tokenTypeGiven' | 'tokenType' | 'token' | 'username'>;

/** token-type, token and username, in that order (the first bad one is the error). */
function parseCredentials(get: InputGetter): Credentials {
  const tokenTypeGiven = given(get, 'token-type') !== '';
  const tokenType = oneOf(get, 'token-type', TOKEN_TYPES);
  const token = required(get, 'token');
  return { tokenTypeGiven, tokenType, token, username: parseUsername(get, tokenType) };
}

type Destination = Pick<Config, 'registry' | 'external' | 'repositoryPath' | 'proxyDomain'>;

/** Where the image goes: the registry, the path on it (APP_SLUG/TARGET unless `repository`), the proxy domain. */
function parseDestination(get: InputGetter, defaultPath: string): Destination {
  const registry = parseHost(get, 'registry');
  const external = registry !== REPLICATED_REGISTRY;
  const repositoryPath = parseRepository(get, external, defaultPath);
  return { registry, external, repositoryPath, proxyDomain: parseHost(get, 'proxy-domain') };
}

function parseRetryDelay(get: InputGetter): number {
  const delayText = valueOf(get, 'retry-delay');
  const retryDelayMs = parseDuration(delayText);
  if (retryDelayMs === null) {
    throw new InputError(
      'retry-delay',
      `Input 'retry-delay': '${delayText}' is not a duration (e.g. 500ms, 10s, 2m, or plain seconds).`,
    );
  }
  return retryDelayMs;
}

function sizeOf(get: InputGetter, name: 'max-layer-size' | 'chunk-size'): number {
  const text = valueOf(get, name);
  const size = parseSize(text);
  if (size === null) {
    throw new InputError(name, `Input '${name}': '${text}' is not a size (e.g. 1GB, 900MB, 1GiB, 750MiB, or bytes).`);
  }
  return size;
}

/** chunk-size within the uploader's bounds (upload/blob.ts), which say why they are what they are. */
function parseChunkSize(get: InputGetter): number {
  const chunkSize = sizeOf(get, 'chunk-size');
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new InputError(
      'chunk-size',
      `Input 'chunk-size' must be from 1MB to 1GB (each request carries that much, and one chunk may be held in memory).`,
    );
  }
  return chunkSize;
}

/**
 * Every input into one frozen Config per image (`image` holds one a line), each exactly what a run of that image
 * alone gets: the inputs but `image` and `target-image` are the same for all. The inputs are read in a fixed order
 * (mode, app-slug, image, target-image, tag, credentials, destination, retry-delay, sizes, layer-split, then the
 * rest), so the first bad input is the one reported.
 */
export function readConfigs(get: InputGetter, ctx: GitContext): readonly Config[] {
  const mode = oneOf(get, 'mode', MODES);
  const appSlug = parseAppSlug(get);
  const { images, target } = parseImages(get, mode);
  const { tags, source: tagSource } = parseTags(get, ctx, mode);
  const credentials = parseCredentials(get);
  if (images && images.length > 1 && given(get, 'repository'))
    throw new InputError(
      'repository',
      `Input 'repository' names the path of a single image; 'image' has ${images.length}, each pushed to ` +
        'APP_SLUG/TARGET (TARGET=SOURCE names it).',
    );
  const destination = parseDestination(get, `${appSlug}/${target}`);
  const retryDelayMs = parseRetryDelay(get);
  const maxLayerSize = sizeOf(get, 'max-layer-size');
  const chunkSize = parseChunkSize(get);
  const base: Config = {
    mode,
    appSlug,
    source: images?.[0].source ?? null,
    image: null,
    target,
    ...destination,
    ...credentials,
    tags: Object.freeze(tags),
    tagSource,
    dryRun: parseBool(get, 'dry-run'),
    retries: parseRetries(get),
    retryDelayMs,
    maxLayerSize,
    layerSplit: oneOf(get, 'layer-split', LAYER_SPLIT_MODES),
    attestations: oneOf(get, 'attestations', ATTESTATION_MODES),
    upload: oneOf(get, 'upload', UPLOAD_MODES),
    chunkSize,
    platforms: parsePlatforms(get),
    ...parseSourceCredentials(get, images?.map((i) => i.source) ?? []),
  };
  if (!images) return Object.freeze([Object.freeze(base)]);
  for (const i of images) checkEngineOnly(i.source, base);
  return Object.freeze(images.map((i, n) => imageConfig(base, i, n === 0 ? destination.repositoryPath : null)));
}

/** One image's Config: the base with its source, target and repository (the `repository` input's, for one image). */
function imageConfig(base: Config, i: ImageInput, repositoryPath: string | null): Config {
  return Object.freeze({
    ...base,
    source: i.source,
    image: i.source.transport === 'docker-daemon' ? i.source.image : null,
    target: i.target,
    repositoryPath: repositoryPath ?? `${base.appSlug}/${i.target}`,
  });
}

/** The first image's Config: what a one-image `image` gives (tests, and callers of one image). */
export function readConfig(get: InputGetter, ctx: GitContext): Config {
  return readConfigs(get, ctx)[0];
}
