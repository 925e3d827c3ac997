// Every input, parsed and validated into one frozen Config. Pure: the adapter hands in a getter.
import {
  defaultTargetName, isValidAppSlug, isValidRegistryHost, isValidRepositoryPath, isValidTag,
  parseLocalImage, type LocalImage,
} from './reference.js';
import { parseDuration, parseSize } from './units.js';

export const REPLICATED_REGISTRY = 'registry.replicated.com';
export const TOKEN_TYPES = ['service-account', 'user', 'password', 'team'] as const;
export const LAYER_SPLIT_MODES = ['advise', 'auto', 'off'] as const;
export const ATTESTATION_MODES = ['strip', 'keep'] as const;

export type TokenType = (typeof TOKEN_TYPES)[number];
export type LayerSplitMode = (typeof LAYER_SPLIT_MODES)[number];
export type AttestationMode = (typeof ATTESTATION_MODES)[number];

/** Registries accept any username with these token types; docker login still wants one. */
export const PLACEHOLDER_USERNAME = 'replicated-push';

export interface Config {
  readonly appSlug: string;
  readonly image: LocalImage;
  readonly target: string;
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
  constructor(readonly input: string, message: string) {
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
  return text.split(/[\n,]/).map((s) => s.trim()).filter((s) => s.length > 0);
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

function parseTags(get: InputGetter, ctx: RunContext): { tags: string[]; source: 'input' | 'git-tag' } {
  const given = splitList(get('tag'));
  if (given.length === 0) {
    const fromRef = tagFromRef(ctx.ref);
    if (!fromRef || !isValidTag(fromRef)) {
      throw new InputError('tag', `Input 'tag' is empty and the run is not on a tag ref (ref: '${ctx.ref || 'none'}'). ` +
        'Images cannot be deleted from this registry, so no tag is invented: set `tag`, or run on a tag push.');
    }
    return { tags: [fromRef], source: 'git-tag' };
  }
  for (const t of given) {
    if (!isValidTag(t)) {
      throw new InputError('tag', `Input 'tag': '${t}' is not a valid Docker tag ` +
        '(letters, digits, _ . -; must not start with . or -; at most 128 characters).');
    }
  }
  return { tags: [...new Set(given)], source: 'input' };
}

function parseUsername(get: InputGetter, tokenType: TokenType): string {
  const username = get('username').trim();
  if (tokenType === 'user' || tokenType === 'password') {
    if (!username) {
      throw new InputError('username', `Input 'username' is required with token-type '${tokenType}': ` +
        'use the email address you sign in to the Vendor Portal with.');
    }
    if (!/^[^@\s]+@[^@\s]+$/.test(username)) {
      throw new InputError('username', `Input 'username' must be the Vendor Portal email address with token-type '${tokenType}'.`);
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

export function readConfig(get: InputGetter, ctx: RunContext): Config {
  const appSlug = required(get, 'app-slug');
  if (!isValidAppSlug(appSlug)) {
    throw new InputError('app-slug', `Input 'app-slug': '${appSlug}' is not an application slug ` +
      '(lowercase letters, digits and hyphens, as shown in the Vendor Portal).');
  }
  const imageText = required(get, 'image');
  const image = parseLocalImage(imageText);
  if (!image) {
    throw new InputError('image', `Input 'image': '${imageText}' is not a valid image reference ` +
      '(name, name:tag, registry/path/name:tag, name@sha256:... or an image ID).');
  }
  const target = get('target-image').trim() || defaultTargetName(image);
  if (!target) throw new InputError('target-image', `Input 'target-image' is required when 'image' is an image ID.`);
  if (!isValidRepositoryPath(target)) {
    throw new InputError('target-image', `Input 'target-image': '${target}' is not a valid repository name ` +
      '(lowercase letters, digits, separators . _ -, path components joined by /).');
  }
  const { tags, source } = parseTags(get, ctx);
  const tokenType = oneOf('token-type', get('token-type'), TOKEN_TYPES, 'service-account');
  const token = required(get, 'token');
  const username = parseUsername(get, tokenType);
  const registry = get('registry').trim().replace(/^https?:\/\//, '').replace(/\/+$/, '') || REPLICATED_REGISTRY;
  if (!isValidRegistryHost(registry)) {
    throw new InputError('registry', `Input 'registry': '${registry}' is not a registry host (host or host:port).`);
  }
  const delayText = get('retry-delay').trim() || '10s';
  const retryDelayMs = parseDuration(delayText);
  if (retryDelayMs === null) {
    throw new InputError('retry-delay', `Input 'retry-delay': '${delayText}' is not a duration (e.g. 500ms, 10s, 2m, or plain seconds).`);
  }
  const sizeText = get('max-layer-size').trim() || '1GB';
  const maxLayerSize = parseSize(sizeText);
  if (maxLayerSize === null) {
    throw new InputError('max-layer-size', `Input 'max-layer-size': '${sizeText}' is not a size (e.g. 1GB, 900MB, 1GiB, 750MiB, or bytes).`);
  }
  return Object.freeze({
    appSlug, image, target, tags: Object.freeze(tags), tagSource: source, tokenType, token, username, registry,
    dryRun: parseBool('dry-run', get('dry-run')),
    retries: parseRetries(get),
    retryDelayMs,
    maxLayerSize,
    layerSplit: oneOf('layer-split', get('layer-split'), LAYER_SPLIT_MODES, 'advise'),
    attestations: oneOf('attestations', get('attestations'), ATTESTATION_MODES, 'strip'),
  });
}
