// Every input, parsed and validated into one frozen Config. Pure: the adapter hands in a getter.
// INPUTS is the one table of inputs: action.yml's `inputs:` must equal it (a unit test compares them), the CLI's
// flags and usage text are built from it (cli-args.ts), and the README table is generated from action.yml.
import {
  defaultTargetName,
  isValidAppSlug,
  isValidRepositoryPath,
  isValidTag,
  normalizeRegistryHost,
  parseLocalImage,
  readsAsDockerHubPath,
  type LocalImage,
} from '../image/reference.js';
import { parseDuration, parseSize } from '../util/units.js';

export const REPLICATED_REGISTRY = 'registry.replicated.com';
export const TOKEN_TYPES = ['service-account', 'user', 'password', 'team'] as const;
export const LAYER_SPLIT_MODES = ['advise', 'auto', 'off'] as const;
export const ATTESTATION_MODES = ['strip', 'keep'] as const;
export const UPLOAD_MODES = ['auto', 'docker', 'chunked'] as const;
export const MODES = ['push', 'tombstone'] as const;
export const DEFAULT_PROXY_DOMAIN = 'proxy.replicated.com';

/** How the CLI takes an input: `--name ARG` once, `--name ARG` repeatable (a list), `--name` alone, or never. */
export type CliShape =
  | { readonly kind: 'value'; readonly arg: string }
  | { readonly kind: 'list'; readonly arg: string }
  | { readonly kind: 'flag' }
  | { readonly kind: 'none'; readonly why: string };

export interface InputSpec {
  readonly name: string;
  /** The text action.yml shows (and the README table, and the CLI usage). */
  readonly description: string;
  /** The default as action.yml shows it; absent when the default is computed or described in the text. */
  readonly default?: string;
  readonly required: boolean;
  /**
   * What an empty input means when action.yml shows no default because the action must tell "not set" apart
   * (token-type: it only means something on the Replicated registry).
   */
  readonly unset?: string;
  readonly cli: CliShape;
}

export const INPUTS = [
  {
    name: 'app-slug',
    description: 'Vendor Portal application slug (lowercase letters, digits and hyphens).',
    required: true,
    cli: { kind: 'value', arg: 'SLUG' },
  },
  {
    name: 'image',
    description:
      'Local image to push (name, name:tag, registry/path/name:tag, name@sha256:... or an image ID). ' +
      'Required with mode push; must be empty with mode tombstone.',
    required: false,
    cli: { kind: 'value', arg: 'IMAGE' },
  },
  {
    name: 'target-image',
    description:
      'Repository name under the application. Default - the last path component of `image`, without its tag.',
    required: false,
    cli: { kind: 'value', arg: 'NAME' },
  },
  {
    name: 'tag',
    description:
      'One or more tags, separated by newlines or commas. Default - on a tag push, the git tag (v1.2.3 becomes ' +
      '1.2.3); on any other ref it is an error (a pushed tag is a release artifact customers may already pull, ' +
      'so the action never invents one).',
    required: false,
    cli: { kind: 'list', arg: 'TAG' },
  },
  {
    name: 'token-type',
    description:
      'service-account (the default; any username), user (user API token; username is the Vendor Portal email), ' +
      'password (email and password), or team (deprecated team token). Replicated registry only.',
    required: false,
    unset: 'service-account',
    cli: { kind: 'value', arg: 'TYPE' },
  },
  {
    name: 'token',
    description:
      'The secret - service account token, user API token, team token or password. ' +
      'Passed to docker login through stdin only.',
    required: true,
    cli: { kind: 'none', why: 'flags end up in shell history and process lists' },
  },
  {
    name: 'username',
    description:
      'Registry username. Required for token-type user and password (the Vendor Portal email); optional otherwise.',
    required: false,
    cli: { kind: 'value', arg: 'NAME' },
  },
  {
    name: 'registry',
    description:
      'Registry host or host:port (a custom domain or a test registry works the same). https://, a trailing slash ' +
      'and :443 are dropped; one name without a dot or port is refused (docker would read it as a Docker Hub path).',
    default: REPLICATED_REGISTRY,
    required: false,
    cli: { kind: 'value', arg: 'HOST' },
  },
  {
    name: 'repository',
    description:
      'Repository path on an external registry (e.g. my-org/worker). Default - APP_SLUG/TARGET. ' +
      'Not allowed for registry.replicated.com.',
    required: false,
    cli: { kind: 'value', arg: 'PATH' },
  },
  {
    name: 'proxy-domain',
    description:
      'The Replicated proxy registry domain customers pull through (a custom proxy domain, if you have one).',
    default: DEFAULT_PROXY_DOMAIN,
    required: false,
    cli: { kind: 'value', arg: 'HOST' },
  },
  {
    name: 'mode',
    description:
      'push, or tombstone - replace an existing tag in place with an empty image (needs tag; releases that ' +
      'reference the tag get the empty image). To delete an image instead, use the Vendor Portal ' +
      '(Image Registries) or the Vendor API.',
    default: 'push',
    required: false,
    cli: { kind: 'value', arg: 'MODE' },
  },
  {
    name: 'dry-run',
    description: 'true validates the inputs, the image and the credentials, prints the plan and pushes nothing.',
    default: 'false',
    required: false,
    cli: { kind: 'flag' },
  },
  {
    name: 'retries',
    description: 'Extra push attempts after the first (0 = no retry).',
    default: '2',
    required: false,
    cli: { kind: 'value', arg: 'N' },
  },
  {
    name: 'retry-delay',
    description:
      'First backoff (500ms, 10s, 2m or plain seconds); doubles each attempt with jitter, capped at 5 minutes.',
    default: '10s',
    required: false,
    cli: { kind: 'value', arg: 'DURATION' },
  },
  {
    name: 'max-layer-size',
    description: 'The size a layer should stay under (1GB, 900MB, 1GiB, 750MiB or bytes; MB = 10^6, MiB = 2^20).',
    default: '1GB',
    required: false,
    cli: { kind: 'value', arg: 'SIZE' },
  },
  {
    name: 'layer-split',
    description:
      'advise (warn and explain big layers and 524s), auto (re-layer the image so every layer fits), or off.',
    default: 'advise',
    required: false,
    cli: { kind: 'value', arg: 'MODE' },
  },
  {
    name: 'attestations',
    description:
      "strip (push only the image's platform manifest, without provenance attestations) or keep (push the index as it is).",
    default: 'strip',
    required: false,
    cli: { kind: 'value', arg: 'MODE' },
  },
  {
    name: 'upload',
    description:
      'auto (docker push while every layer is under max-layer-size; the action uploads a bigger layer itself in ' +
      'resumable chunks, and so retries after a 524), docker (always docker push), or chunked (always the chunked uploader).',
    default: 'auto',
    required: false,
    cli: { kind: 'value', arg: 'MODE' },
  },
  {
    name: 'chunk-size',
    description: 'Bytes per upload request of the chunked uploader (units as max-layer-size).',
    default: '32MB',
    required: false,
    cli: { kind: 'value', arg: 'SIZE' },
  },
] as const satisfies readonly InputSpec[];

export type InputName = (typeof INPUTS)[number]['name'];

const SPECS: ReadonlyMap<string, InputSpec> = new Map(INPUTS.map((i) => [i.name, i]));

/** The table's entry for an input. */
export function inputSpec(name: InputName): InputSpec {
  return SPECS.get(name) as InputSpec;
}

export type TokenType = (typeof TOKEN_TYPES)[number];
export type LayerSplitMode = (typeof LAYER_SPLIT_MODES)[number];
export type AttestationMode = (typeof ATTESTATION_MODES)[number];
export type UploadMode = (typeof UPLOAD_MODES)[number];
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
  /** How blobs reach the registry: docker push, the action's chunked uploader, or auto (see push-policy.ts). */
  readonly upload: UploadMode;
  /** Bytes per request of the chunked uploader. */
  readonly chunkSize: number;
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

/** Values separated by newlines (\n, \r\n or \r: the runner reads each as a line end) or commas. */
export function splitList(text: string): string[] {
  return text
    .split(/[\r\n,]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const isControl = (c: number): boolean => c < 0x20 || (c >= 0x7f && c <= 0x9f);

/** First control character (C0, DEL, C1) in `text`, newlines excepted when `newlines` is true; -1 when none. */
export function controlCharacterAt(text: string, newlines = false): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (newlines && (c === 0x0a || c === 0x0d)) continue;
    if (isControl(c)) return i;
  }
  return -1;
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` safe to print on one log line: control characters become \n, \u001b and the like. A newline followed by
 * `::warning::` would otherwise become a workflow command, an escape sequence would drive the terminal.
 */
export function printable(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += isControl(c) ? (SHORT_ESCAPES[ch] ?? `\\u${c.toString(16).padStart(4, '0')}`) : ch;
  }
  return out;
}

/**
 * The input as written, trimmed; refused when it holds a control character. Every input is read through here, so
 * a value quoted in any later message is one printable line. The raw value is never echoed: it may be a secret,
 * and a newline in it would become a log line of its own.
 */
function given(get: InputGetter, name: InputName): string {
  const spec = inputSpec(name);
  const list = spec.cli.kind === 'list';
  const value = get(name).trim();
  const at = controlCharacterAt(value, list);
  if (at >= 0) {
    const code = value.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0');
    throw new InputError(
      name,
      `Input '${name}' contains a control character (U+${code} at character ${at + 1}); ` +
        (list ? 'only newlines and commas may separate its values.' : 'it must be one line of text.') +
        ' The value is not shown.',
    );
  }
  return value;
}

/** The input, or what the table says an empty one means (action.yml's default, or the documented fallback). */
function valueOf(get: InputGetter, name: InputName): string {
  const spec = inputSpec(name);
  return given(get, name) || spec.default || spec.unset || '';
}

function oneOf<T extends string>(get: InputGetter, name: InputName, allowed: readonly T[]): T {
  const v = valueOf(get, name);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new InputError(name, `Input '${name}' must be one of ${allowed.join(', ')}; got '${v}'.`);
  }
  return v as T;
}

function required(get: InputGetter, name: InputName): string {
  const v = given(get, name);
  if (!v) throw new InputError(name, `Input '${name}' is required.`);
  return v;
}

function parseBool(get: InputGetter, name: InputName): boolean {
  const value = valueOf(get, name);
  const v = value.toLowerCase();
  if (v === 'false') return false;
  if (v === 'true') return true;
  throw new InputError(name, `Input '${name}' must be true or false; got '${value}'.`);
}

function parseTags(get: InputGetter, ctx: RunContext, mode: Mode): { tags: string[]; source: 'input' | 'git-tag' } {
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

function parseImage(get: InputGetter, mode: Mode): LocalImage | null {
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
  const target = given(get, 'target-image') || (image ? defaultTargetName(image) : null);
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

export function readConfig(get: InputGetter, ctx: RunContext): Config {
  const mode = oneOf(get, 'mode', MODES);
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
  const tokenTypeGiven = given(get, 'token-type') !== '';
  const tokenType = oneOf(get, 'token-type', TOKEN_TYPES);
  const token = required(get, 'token');
  const username = parseUsername(get, tokenType);
  const registry = parseHost(get, 'registry');
  const external = registry !== REPLICATED_REGISTRY;
  const repositoryPath = parseRepository(get, external, `${appSlug}/${target}`);
  const proxyDomain = parseHost(get, 'proxy-domain');
  const delayText = valueOf(get, 'retry-delay');
  const retryDelayMs = parseDuration(delayText);
  if (retryDelayMs === null) {
    throw new InputError(
      'retry-delay',
      `Input 'retry-delay': '${delayText}' is not a duration (e.g. 500ms, 10s, 2m, or plain seconds).`,
    );
  }
  const maxLayerSize = sizeOf(get, 'max-layer-size');
  const chunkSize = sizeOf(get, 'chunk-size');
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new InputError(
      'chunk-size',
      `Input 'chunk-size' must be from 1MB to 1GB (each request carries that much, and one chunk may be held in memory).`,
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
    tokenTypeGiven,
    tags: Object.freeze(tags),
    tagSource: source,
    tokenType,
    token,
    username,
    registry,
    dryRun: parseBool(get, 'dry-run'),
    retries: parseRetries(get),
    retryDelayMs,
    maxLayerSize,
    layerSplit: oneOf(get, 'layer-split', LAYER_SPLIT_MODES),
    attestations: oneOf(get, 'attestations', ATTESTATION_MODES),
    upload: oneOf(get, 'upload', UPLOAD_MODES),
    chunkSize,
  });
}

/** Bounds of chunk-size: smaller makes thousands of requests per GB; larger defeats the point of chunks. */
const MIN_CHUNK_SIZE = 1_000_000;
const MAX_CHUNK_SIZE = 1_000_000_000;

function sizeOf(get: InputGetter, name: 'max-layer-size' | 'chunk-size'): number {
  const text = valueOf(get, name);
  const size = parseSize(text);
  if (size === null) {
    throw new InputError(name, `Input '${name}': '${text}' is not a size (e.g. 1GB, 900MB, 1GiB, 750MiB, or bytes).`);
  }
  return size;
}
