// Every input, parsed and validated into one frozen Config. Pure: the adapter hands in a getter.
import {
  defaultTargetName,
  isValidAppSlug,
  isValidRegistryHost,
  isValidRepositoryPath,
  isValidTag,
  parseLocalImage,
  type LocalImage,
} from './reference.js';
import { parseDuration, parseSize } from './units.js';

export const REPLICATED_REGISTRY = 'registry.replicated.com';
export const TOKEN_TYPES = ['service-account', 'user', 'password', 'team'] as const;
export const LAYER_SPLIT_MODES = ['advise', 'auto', 'off'] as const;
export const ATTESTATION_MODES = ['strip', 'keep'] as const;
export const MODES = ['push', 'tombstone'] as const;
export const DEFAULT_PROXY_DOMAIN = 'proxy.replicated.com';

export type TokenType = (typeof TOKEN_TYPES)[number];
export type LayerSplitMode = (typeof LAYER_SPLIT_MODES)[number];
export type AttestationMode = (typeof ATTESTATION_MODES)[number];
export type Mode = (typeof MODES)[number];

/** Registries accept any username with these token types; docker login still wants one. */
export const PLACEHOLDER_USERNAME = 'replicated-push';

export interface Config {
  readonly mode: Mode;
  readonly appSlug: string;
  /** null in tombstone mode: the action makes the (empty) image itself. */
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
  readonly attestations: AttestationMode;
}

/** An input the user must fix; `input` is the exact input name, for the annotation. */
export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(message);
    this.name = 'InputError';
  }
}

export type InputGetter = (name: string) => string;

export interface RunContext {
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

export function splitList(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[], fallback: T): T {
  const v = value.trim() || fallback;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new InputError(name, `Input '${name}' must be one of ${allowed.join(', ')}; got '${v}'.`);
  }
  return v as T;
}

function required(get: InputGetter, name: string): string {
  const v = get(name).trim();
  if (!v) throw new InputError(name, `Input '${name}' is required.`);
  return v;
}

function parseBool(name: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  throw new InputError(name, `Input '${name}' must be true or false; got '${value}'.`);
}

function parseTags(get: InputGetter, ctx: RunContext, mode: Mode): { tags: string[]; source: 'input' | 'git-tag' } {
  const given = splitList(get('tag'));
  if (given.length === 0 && mode === 'tombstone') {
    throw new InputError(
      'tag',
      "Input 'tag' is required with mode 'tombstone': name the tag to replace; it is never defaulted.",
    );
  }
  if (given.length === 0) {
    const fromRef = tagFromRef(ctx.ref);
    if (!fromRef || !isValidTag(fromRef)) {
      throw new InputError(
        'tag',
        `Input 'tag' is empty and the run is not on a tag ref (ref: '${ctx.ref || 'none'}'). ` +
          'Images cannot be deleted from this registry, so no tag is invented: set `tag`, or run on a tag push.',
      );
    }
    return { tags: [fromRef], source: 'git-tag' };
  }
  for (const t of given) {
    if (!isValidTag(t)) {
      throw new InputError(
        'tag',
        `Input 'tag': '${t}' is not a valid Docker tag ` +
          '(letters, digits, _ . -; must not start with . or -; at most 128 characters).',
      );
    }
  }
  return { tags: [...new Set(given)], source: 'input' };
}

function parseUsername(get: InputGetter, tokenType: TokenType): string {
  const username = get('username').trim();
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
  const raw = get('retries').trim() || '2';
  if (!/^\d+$/.test(raw) || Number(raw) > 10) {
    throw new InputError('retries', `Input 'retries' must be a whole number from 0 to 10; got '${raw}'.`);
  }
  return Number(raw);
}

function parseImage(get: InputGetter, mode: Mode): LocalImage | null {
  const imageText = get('image').trim();
  if (mode === 'tombstone' && !imageText) return null;
  if (!imageText) throw new InputError('image', "Input 'image' is required.");
  const image = parseLocalImage(imageText);
  if (!image) {
    throw new InputError(
      'image',
      `Input 'image': '${imageText}' is not a valid image reference ` +
        '(name, name:tag, registry/path/name:tag, name@sha256:... or an image ID).',
    );
  }
  return image;
}

function parseTarget(get: InputGetter, image: LocalImage | null): string {
  const target = get('target-image').trim() || (image ? defaultTargetName(image) : null);
  if (!target) {
    throw new InputError(
      'target-image',
      image
        ? "Input 'target-image' is required when 'image' is an image ID."
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

function parseRegistry(get: InputGetter): string {
  // Host names are case-insensitive; the one comparison that matters (is it the Replicated registry?) must be too.
  const registry =
    get('registry')
      .trim()
      .replace(/^https?:\/\//, '')
      .replace(/\/+$/, '')
      .toLowerCase() || REPLICATED_REGISTRY;
  if (!isValidRegistryHost(registry)) {
    throw new InputError('registry', `Input 'registry': '${registry}' is not a registry host (host or host:port).`);
  }
  return registry;
}

function parseRepository(get: InputGetter, external: boolean, fallback: string): string {
  const repository = get('repository').trim();
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

export function readConfig(get: InputGetter, ctx: RunContext): Config {
  const mode = oneOf('mode', get('mode'), MODES, 'push');
  const appSlug = required(get, 'app-slug');
  if (!isValidAppSlug(appSlug)) {
    throw new InputError(
      'app-slug',
      `Input 'app-slug': '${appSlug}' is not an application slug ` +
        '(lowercase letters, digits and hyphens, as shown in the Vendor Portal).',
    );
  }
  const image = parseImage(get, mode);
  const target = parseTarget(get, image);
  const { tags, source } = parseTags(get, ctx, mode);
  const tokenTypeText = get('token-type').trim();
  const tokenType = oneOf('token-type', tokenTypeText, TOKEN_TYPES, 'service-account');
  const token = required(get, 'token');
  const username = parseUsername(get, tokenType);
  const registry = parseRegistry(get);
  const external = registry !== REPLICATED_REGISTRY;
  const repositoryPath = parseRepository(get, external, `${appSlug}/${target}`);
  const proxyDomain =
    get('proxy-domain')
      .trim()
      .replace(/^https?:\/\//, '')
      .replace(/\/+$/, '') || DEFAULT_PROXY_DOMAIN;
  if (!isValidRegistryHost(proxyDomain)) {
    throw new InputError('proxy-domain', `Input 'proxy-domain': '${proxyDomain}' is not a host name.`);
  }
  const delayText = get('retry-delay').trim() || '10s';
  const retryDelayMs = parseDuration(delayText);
  if (retryDelayMs === null) {
    throw new InputError(
      'retry-delay',
      `Input 'retry-delay': '${delayText}' is not a duration (e.g. 500ms, 10s, 2m, or plain seconds).`,
    );
  }
  const sizeText = get('max-layer-size').trim() || '1GB';
  const maxLayerSize = parseSize(sizeText);
  if (maxLayerSize === null) {
    throw new InputError(
      'max-layer-size',
      `Input 'max-layer-size': '${sizeText}' is not a size (e.g. 1GB, 900MB, 1GiB, 750MiB, or bytes).`,
    );
  }
  return Object.freeze({
    mode,
    appSlug,
    image,
    target,
    repositoryPath,
    external,
    proxyDomain,
    tokenTypeGiven: tokenTypeText !== '',
    tags: Object.freeze(tags),
    tagSource: source,
    tokenType,
    token,
    username,
    registry,
    dryRun: parseBool('dry-run', get('dry-run')),
    retries: parseRetries(get),
    retryDelayMs,
    maxLayerSize,
    layerSplit: oneOf('layer-split', get('layer-split'), LAYER_SPLIT_MODES, 'advise'),
    attestations: oneOf('attestations', get('attestations'), ATTESTATION_MODES, 'strip'),
  });
}
