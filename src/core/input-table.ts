// The one table of inputs (INPUTS): action.yml's `inputs:` must equal it (a unit test compares them), the CLI's
// flags and usage text are built from it (adapters/cli-args.ts), and the README table is generated from action.yml
// (scripts/docs.mjs). What each input means once read is inputs.ts (readConfig). Pure data.

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
  /** `--name ARG` repeatable, each one line of the input (`image`: one image a line). */
  | { readonly kind: 'lines'; readonly arg: string }
  | { readonly kind: 'flag' }
  /** Never a flag: read from an environment variable (`env`; the token's is --token-env's, REPLICATED_TOKEN). */
  | { readonly kind: 'none'; readonly why: string; readonly env?: string };

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
      'The image to push: a local engine image (name, name:tag, registry/path/name:tag, name@sha256:..., an image ID ' +
      'or docker-daemon:NAME), an OCI layout (oci:DIR[:REF]), an OCI or docker archive (oci-archive:FILE[:REF], ' +
      'docker-archive:FILE[:NAME]) or another registry (docker://REGISTRY/REPO:TAG or @sha256:...), named as skopeo ' +
      'names them. Layouts, archives and registries need no Docker engine. Several images: one a line, each pushed ' +
      'under every tag; a line TARGET=SOURCE names its repository under the application (at most 32 lines; blank ' +
      'lines and lines starting with # are skipped). Required with mode push; must be empty with mode tombstone.',
    required: false,
    cli: { kind: 'lines', arg: 'IMAGE' },
  },
  {
    name: 'target-image',
    description:
      'Repository name under the application. Default - the last path component of `image`, without its tag; ' +
      'required when `image` names no repository (an OCI layout, an image ID). A single image only: with several, ' +
      'each line names its own (TARGET=SOURCE).',
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
      'Not allowed for registry.replicated.com, nor with several images (each goes to APP_SLUG/TARGET).',
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
      'strip (push the platform manifests without their provenance attestations: an index of every platform, or ' +
      "a single-platform image's manifest) or keep (push the index as it is).",
    default: 'strip',
    required: false,
    cli: { kind: 'value', arg: 'MODE' },
  },
  {
    name: 'platforms',
    description:
      'The platforms of a multi-platform image to push, separated by commas (linux/amd64,linux/arm64). Default - ' +
      'every platform.',
    required: false,
    cli: { kind: 'list', arg: 'OS/ARCH' },
  },
  {
    name: 'source-username',
    description:
      'Username for a docker:// source registry. Default - the docker config the job has (DOCKER_CONFIG or ' +
      '~/.docker/config.json, as docker/login-action writes it).',
    required: false,
    cli: { kind: 'value', arg: 'NAME' },
  },
  {
    name: 'source-token',
    description: 'Token or password for a docker:// source registry, with source-username. Masked in the log.',
    required: false,
    cli: { kind: 'none', why: 'flags end up in shell history and process lists', env: 'REPLICATED_SOURCE_TOKEN' },
  },
  {
    name: 'upload',
    description:
      'auto (docker push while every layer is under max-layer-size; the action uploads a bigger layer itself in ' +
      'resumable chunks, and so retries after a 524 or a 413), docker (always docker push; an engine image only), or ' +
      'chunked (always the chunked uploader). Layouts, archives and registries are always sent by the uploader.',
    default: 'auto',
    required: false,
    cli: { kind: 'value', arg: 'MODE' },
  },
  {
    name: 'chunk-size',
    description:
      'Bytes per upload request of the chunked uploader to start with (units as max-layer-size) - it doubles while ' +
      'requests finish well inside 15 s and halves after a 413, a 524 or a timeout, never above what the registry ' +
      '(OCI-Chunk-Max-Length) or an earlier refusal in the run allows.',
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
