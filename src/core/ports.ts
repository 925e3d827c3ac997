// What the core's stages share: the ports to the outside (docker, the registry, the clock, the relayer), the
// logger, the cancel signal, and the one error type a user acts on. Nothing here changes during a run.
import type { CommandResult, EngineImage, PendingLogin } from '../engine/docker.js';
import type { Config } from './inputs.js';
import type { Logger } from './logger.js';
import type { ManifestHead, RegistryTransport } from '../registry/registry-client.js';
import type { BlobsOptions, RelayeredBlobs, RelayerOptions, RelayerReport } from '../layer-split/index.js';
import type { ImagePushRequest, PreparedBlobRequest } from '../upload/push-image.js';
import type { ChunkedPushRequest } from '../upload/push-local.js';
import type { ChunkedPushResult } from '../upload/errors.js';
import type { OpenedImage, OpenSourceOptions } from '../image/image-model.js';
import type { SourceRef } from '../image/source-ref.js';

/** The docker calls the core makes; src/engine/docker.ts implements them, tests pass fakes. */
export interface DockerApi {
  login(registry: string, username: string, secret: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /** `docker login` started now, given the secret later (send) or ended having been sent nothing (abandon). */
  startLogin(registry: string, username: string, opts?: { signal?: AbortSignal }): PendingLogin;
  /** Also says what each of `names` points to now, in the same round trip. */
  readImage(ref: string, opts?: { signal?: AbortSignal; names?: readonly string[] }): Promise<EngineImage>;
  tag(source: string, target: string, opts?: { signal?: AbortSignal }): Promise<void>;
  push(
    ref: string,
    opts: { platform?: string; onLine?: (line: string) => void; signal?: AbortSignal; largestLayerBytes?: number },
  ): Promise<CommandResult>;
  /** Untags a name (removing the image when it was its last name); best effort. */
  removeImage(ref: string): Promise<void>;
}

/** The registry's own answers (v2 API); src/registry/registry-client.ts implements it. */
export interface RegistryApi extends RegistryTransport {
  /** null only when the registry says 404; every other failure throws. */
  headManifest(repository: string, reference: string, signal?: AbortSignal): Promise<ManifestHead | null>;
  retryAfterMs(): Promise<number | null>;
}

export type Relayer = (
  image: string,
  opts: RelayerOptions & { env?: NodeJS.ProcessEnv; signal?: AbortSignal },
) => Promise<RelayerReport>;

/**
 * Re-layers a local image into blob files for the action's own upload (layer-split: auto with upload: auto or
 * chunked): nothing is loaded into the engine.
 */
export type BlobRelayer = (image: string, opts: BlobsOptions) => Promise<RelayeredBlobs>;

/**
 * Uploads an image of the model with the action's uploader (the split's, an opened source's: a manifest, or the
 * index selectPlatforms made), blobs in chunks, the manifest under every tag; never throws.
 */
export type ImagePush = (req: ImagePushRequest) => Promise<ChunkedPushResult>;

/** Sends one blob of an image still being split; null when the registry has it, else what went wrong. */
export type PreparedBlobPush = (req: PreparedBlobRequest) => Promise<string | null>;

export type ChunkedPush = (req: ChunkedPushRequest) => Promise<ChunkedPushResult>;

/** What opening a source needs beyond the model's options: whose credentials, which environment. */
export interface OpenSourceRequest extends OpenSourceOptions {
  /** The job's own environment (its DOCKER_CONFIG holds the source registry's credentials), not the run's. */
  readonly jobEnv: NodeJS.ProcessEnv;
  /** The run's children's environment (docker save of an engine image): no secret in it. */
  readonly childEnv: NodeJS.ProcessEnv;
  /** source-username / source-token; empty: the job's docker config is asked. */
  readonly username: string;
  readonly token: string;
}

/**
 * Opens the image a source names as the image model: an OCI layout or archive, a docker archive, another registry,
 * or (docker-daemon) the engine's image read with `docker save`. Rejects when the source cannot be read.
 */
export type OpenSource = (source: SourceRef, req: OpenSourceRequest) => Promise<OpenedImage>;

export interface Clock {
  now(): number;
  /** Resolves after ms, or rejects at once when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  random(): number;
}

/** What the core calls to re-layer and upload images itself; src/relayer and src/upload in production. */
export interface ImagePorts {
  /** Re-layers a local image into a loaded one (layer-split: auto, upload: docker). */
  readonly relayer: Relayer;
  /** Re-layers a local image into blob files (layer-split: auto, upload: auto or chunked). */
  readonly relayerBlobs: BlobRelayer;
  /** Uploads an image of the model: what relayerBlobs made, or what openSource opened. */
  readonly pushImage: ImagePush;
  /** Uploads one of its blobs while the next is cut. */
  readonly pushPreparedBlob: PreparedBlobPush;
  /** Sends a local image in resumable chunks (upload: chunked, or auto). */
  readonly chunkedPush: ChunkedPush;
  /** Opens an image source as the image model (routed by its transport). */
  readonly openSource: OpenSource;
}

export interface CoreDeps extends Clock {
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  /** Names this run's local images and work directories apart from any other run on the same engine. */
  readonly runId: string;
  /** Aborts on the runner's cancel (SIGINT/SIGTERM): nothing is started or pushed afterwards. */
  readonly signal?: AbortSignal;
  readonly progressIntervalMs: number;
  docker(env: NodeJS.ProcessEnv): DockerApi;
  registry(host: string, username: string, password: string): RegistryApi;
  /** Told where the run's work directory (credentials included) lives before anything is written there. */
  onWorkDir?(dir: string): void;
  readonly ports: ImagePorts;
}

/** What every stage gets; read-only. */
export interface StageContext {
  readonly config: Config;
  readonly log: Logger;
  readonly docker: DockerApi;
  readonly registry: RegistryApi;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly runId: string;
  /** The run's own directory: docker config (credentials), relayer scratch space. Removed at the end. */
  readonly workDir: string;
  /** The environment for the run's children: the run's DOCKER_CONFIG, no secret. */
  readonly childEnv: NodeJS.ProcessEnv;
  /** The job's own environment (CoreDeps.env): where a source registry's credentials are looked up. */
  readonly jobEnv: NodeJS.ProcessEnv;
  readonly progressIntervalMs: number;
  /** The same object the deps carry: the stages call it, nothing copies its fields. */
  readonly ports: ImagePorts;
}

/** A failure the user can act on; `input` names the input at fault when there is one. */
export class ActionFailure extends Error {
  constructor(
    readonly title: string,
    message: string,
    readonly opts: { input?: string; attempts?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ActionFailure';
  }

  /** The same failure, with the attempt count it happened at. */
  withAttempts(attempts: number): ActionFailure {
    return new ActionFailure(this.title, this.message, { ...this.opts, attempts });
  }
}

/** The run was cancelled (the runner's cancel, or the CLI's Ctrl-C). */
export class Cancelled extends ActionFailure {
  constructor(attempts = 0, message = 'The run was cancelled; nothing more was pushed.') {
    super('Cancelled', message, { attempts });
    this.name = 'Cancelled';
  }
}

/** Checked before every step that talks to the engine or the registry. */
export function throwIfCancelled(signal: AbortSignal, attempts = 0): void {
  if (signal.aborted) throw new Cancelled(attempts);
}
