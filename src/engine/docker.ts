// Every docker CLI call the action makes, one function each, all through the process layer (process.ts):
// secrets go through stdin only, children get an environment without them, the calls that can hang have a
// deadline, and every call takes an abort signal. Commands run with the run's own DOCKER_CONFIG so
// credentials never touch ~/.docker. What the run reads from the engine, and the local names it gives or takes
// back, go over one engine-API connection (engine-api.ts), not a CLI process per question: only login and push
// (which need the credentials) and import are CLI commands.
import type { HistoryRow } from '../image/layers.js';
import { EngineApiError, EngineConnection, engineEndpointFor, type EngineEndpoint } from './engine-api.js';
import { INDEX_MEDIA_TYPES } from '../image/oci.js';
import { outputTail } from '../util/untrusted.js';
import { childEnv, exitCode, howItEnded, protectSecret, runProcess, type LineSink } from '../util/process.js';
import { dockerArgv, startDocker } from './docker-cli.js';
import { clampTimerMs } from '../util/timers.js';

export { EngineApiError } from './engine-api.js';
export type { LineSink } from '../util/process.js';
export type { HistoryRow } from '../image/layers.js';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** docker push printed nothing for this long and was ended (SIGTERM, then SIGKILL): the push's watchdog. */
  readonly stalledMs?: number;
}

export class DockerError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly result: CommandResult,
    message = `docker ${args[0]} failed (exit ${result.code}): ${lastLines(result.stderr || result.stdout)}`,
  ) {
    super(message);
    this.name = 'DockerError';
  }
  get output(): string {
    return `${this.result.stdout}\n${this.result.stderr}`;
  }
}

/** The end of what docker printed, quoted in an error: data (untrusted.ts), one line, no command. */
function lastLines(text: string): string {
  return outputTail(text);
}

/** The parts of GET /images/{name}/json the run reads. */
export interface LocalImageFacts {
  readonly Id: string;
  readonly Os: string;
  readonly Architecture: string;
  readonly Variant?: string;
  readonly RootFS: { Layers?: string[] };
  /** Present on the containerd image store: the image's own descriptor (an index when attested). */
  readonly Descriptor?: { mediaType: string; digest: string; size: number };
}

/** One entry of GET /images/{name}/json?manifests=1 (API 1.48+), reduced to what is read here. */
export interface EngineManifest {
  Kind?: string;
  Available?: boolean;
  Descriptor?: {
    platform?: { os?: string; architecture?: string; variant?: string };
    annotations?: Record<string, string>;
  };
}

/** Whether the engine API `version` (e.g. 1.47) is at least `min`. */
export function apiAtLeast(version: string, min: string): boolean {
  const [a, b] = version.split('.').map(Number);
  const [c, d] = min.split('.').map(Number);
  return a > c || (a === c && b >= d);
}

export interface EngineFacts {
  readonly serverVersion: string;
  readonly apiVersion: string;
  /** The containerd image store keeps the image index (and its attestations) locally. */
  readonly containerdStore: boolean;
}

/** Everything the run reads from the engine about one image, before it plans, over one connection. */
export interface EngineImage {
  readonly engine: EngineFacts;
  readonly image: LocalImageFacts;
  /** Newest first, as `docker history --no-trunc -H=false` lists them. */
  readonly history: readonly HistoryRow[];
  /** The image index's manifests (containerd store, index, API >= 1.48), else null. */
  readonly manifests: readonly EngineManifest[] | null;
  /** For each name asked about (`names`): the image ID it points to now, null when the engine does not have it. */
  readonly names: ReadonlyMap<string, string | null>;
}

/** A `docker login` waiting for its password (Docker.startLogin). */
export interface PendingLogin {
  send(secret: string): Promise<void>;
  abandon(): Promise<void>;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface DockerOptions {
  /** Values no child may see in its environment (the token): protected for every child process from now on. */
  readonly secrets?: readonly string[];
  /** Deadline of every call that can hang (all but push). */
  readonly deadlineMs?: number;
  /** docker push is ended when it prints nothing for this long (default PUSH_STALL_MS). */
  readonly pushStallMs?: number;
}

/** login, import and engine API calls: a healthy engine answers in well under a second. */
export const DOCKER_DEADLINE_MS = 60_000;

/**
 * docker push without a TTY prints a line per layer state (Preparing, Waiting, Pushed, Retrying in N seconds) and
 * nothing while bytes flow: silence this long means the registry stopped answering mid-upload (the engine has no
 * deadline of its own there), not a slow link. 5 min is more than a 1 GB layer (max-layer-size) needs at 4 MB/s,
 * and far more than a Cloudflare-fronted registry lets one request take (100-120 s, then a 524).
 */
export const PUSH_STALL_MS = 5 * 60_000;

/** The slowest link worth waiting for, as the chunked uploader's request deadlines assume (512 KiB/s). */
const SLOW_LINK_BYTES_PER_MS = (512 * 1024) / 1000;

/**
 * How long docker push may stay silent: the base (5 min, or the tests' shorter knob), or the largest layer at the
 * slowest link worth waiting for when that is longer, since docker prints nothing while one layer's bytes flow: a
 * healthy 1 GB layer on a 3 MB/s uplink is never taken for a hang (34 min), and a hang still ends.
 */
export function pushStallLimitMs(baseMs: number, largestLayerBytes: number): number {
  const layer = Number.isFinite(largestLayerBytes) && largestLayerBytes > 0 ? largestLayerBytes : 0;
  return Math.max(baseMs, Math.ceil(layer / SLOW_LINK_BYTES_PER_MS));
}

/**
 * The push watchdog the e2e tests set short (RP_TEST_PUSH_STALL_MS, ms) so a hung upload is seen in seconds. Only
 * ever shorter than the default and never under 100 ms; anything else, or no variable, is the default.
 */
export function pushStallMs(env: NodeJS.ProcessEnv): number {
  const asked = Number(env.RP_TEST_PUSH_STALL_MS);
  return Number.isInteger(asked) && asked >= 100 && asked < PUSH_STALL_MS ? asked : PUSH_STALL_MS;
}

export class Docker {
  private readonly env: NodeJS.ProcessEnv;
  private readonly deadlineMs: number;
  private readonly pushStallMs: number;
  /** Where the engine API is: decided once from the environment (and the config's current context). */
  private readonly endpoint: EngineEndpoint;

  constructor(env: NodeJS.ProcessEnv, opts: DockerOptions = {}) {
    // Protected for every child from here on (zstd in the relayer included), not only docker's.
    for (const secret of opts.secrets ?? []) protectSecret(secret);
    this.env = childEnv(env, opts.secrets ?? []);
    this.deadlineMs = opts.deadlineMs ?? DOCKER_DEADLINE_MS;
    this.pushStallMs = opts.pushStallMs ?? PUSH_STALL_MS;
    this.endpoint = engineEndpointFor(this.env);
  }

  private async run(
    args: string[],
    opts: {
      input?: string | Buffer;
      onLine?: LineSink;
      signal?: AbortSignal;
      deadline?: boolean;
      idleMs?: number;
    } = {},
  ): Promise<CommandResult> {
    const deadlineMs = opts.deadline === false ? undefined : this.deadlineMs;
    const result = await runProcess('docker', args, {
      env: this.env,
      input: opts.input,
      onLine: opts.onLine,
      signal: opts.signal,
      deadlineMs,
      idleMs: opts.idleMs,
    });
    const command: CommandResult = {
      code: exitCode(result),
      stdout: result.stdout,
      stderr: result.stderr,
      // a stall is a failed attempt the caller classifies (retryable), not a throw like a cancel
      ...(result.stalled ? { stalledMs: opts.idleMs } : {}),
    };
    if (result.spawnError || result.timedOut || result.aborted) {
      const detail = lastLines(result.stderr);
      throw new DockerError(
        args,
        command,
        `docker ${args[0]} ${howItEnded(result, deadlineMs)}${detail && !result.spawnError ? `: ${detail}` : ''}`,
      );
    }
    return command;
  }

  private async check(
    args: string[],
    opts: { input?: string | Buffer; signal?: AbortSignal } = {},
  ): Promise<CommandResult> {
    const result = await this.run(args, opts);
    if (result.code !== 0) throw new DockerError(args, result);
    return result;
  }

  async login(registry: string, username: string, secret: string, opts: CallOptions = {}): Promise<void> {
    protectSecret(secret);
    await this.check(dockerArgv.login(registry, username), { input: secret, ...opts });
  }

  /**
   * `docker login --password-stdin` started before the password may go. The CLI takes ~50 ms to start and then
   * reads stdin before it asks anything, so its start overlaps with the registry checks that must pass before
   * a credential leaves (stages/login.ts). send() gives it the password (the deadline runs from then);
   * abandon() ends it having sent nothing. A cancel ends it like any child.
   */
  startLogin(registry: string, username: string, opts: CallOptions = {}): PendingLogin {
    const args = dockerArgv.login(registry, username);
    const deadline = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline.signal]) : deadline.signal;
    const proc = startDocker(args, { env: this.env, stdin: 'pipe', signal });
    let sent = false;
    return {
      send: async (secret: string) => {
        if (sent) throw new Error('startLogin: send() called twice');
        sent = true;
        protectSecret(secret);
        const timer = setTimeout(() => deadline.abort(), clampTimerMs(this.deadlineMs));
        proc.stdin?.on('error', () => undefined); // a CLI that already ended: its result says why
        proc.stdin?.end(secret);
        const result = await proc.result.finally(() => clearTimeout(timer));
        const command: CommandResult = { code: exitCode(result), stdout: result.stdout, stderr: result.stderr };
        if (result.spawnError || result.aborted) {
          const timedOut = deadline.signal.aborted && !opts.signal?.aborted;
          const how = timedOut ? `did not answer within ${this.deadlineMs / 1000} s` : howItEnded(result);
          const detail = result.spawnError ? '' : lastLines(result.stderr);
          throw new DockerError(args, command, `docker login ${how}${detail ? `: ${detail}` : ''}`);
        }
        if (command.code !== 0) throw new DockerError(args, command);
      },
      abandon: async () => {
        if (!sent) await proc.kill();
      },
    };
  }

  /**
   * Everything the run reads before it plans, over one engine connection: the engine's version (from the headers
   * of /_ping: /version asks containerd and runc too, ~25 ms), /info (~30 ms), the image, its history and the names
   * asked together (in parallel on the socket, in turn through dial-stdio), then the index's manifests when the
   * strategy needs them (containerd store, an index descriptor, API >= 1.48). A missing image fails as the CLI words it
   * ("No such image"); an engine that cannot be reached as "Cannot connect to the Docker daemon".
   */
  async readImage(ref: string, opts: CallOptions & { names?: readonly string[] } = {}): Promise<EngineImage> {
    return this.withEngine(opts, async (conn) => {
      const name = pathName(ref);
      const info = conn.json('/info');
      const version = engineVersion(conn);
      const inspect = conn.json(`/images/${name}/json`);
      const rows = conn.json(`/images/${name}/history`);
      // What the names the run will tag point to now, asked with the rest.
      const names = idsOf(conn, opts.names ?? []);
      names.catch(() => undefined); // reported by the await below, unless the image itself failed first
      const engine = factsFrom(await version, (await info) as InfoBody);
      const image = (await inspect) as LocalImageFacts;
      const history = ((await rows) as { Size?: number; CreatedBy?: string }[]).map(historyRow);
      let manifests: EngineManifest[] | null = null;
      const index = image.Descriptor !== undefined && INDEX_MEDIA_TYPES.has(image.Descriptor.mediaType);
      if (engine.containerdStore && index && apiAtLeast(engine.apiVersion, '1.48')) {
        const body = (await conn
          .json(`/v${engine.apiVersion}/images/${pathName(image.Id)}/json?manifests=1`)
          .catch(() => null)) as { Manifests?: EngineManifest[] } | null;
        manifests = body?.Manifests ?? null;
      }
      return { engine, image, history, manifests, names: await names };
    });
  }

  /** An image with one empty layer, made from an empty tar on stdin: nothing is pulled. */
  async importEmpty(ref: string, label: string, opts: CallOptions = {}): Promise<void> {
    await this.check(dockerArgv.importEmpty(ref, label), {
      input: Buffer.alloc(1024), // a tar archive's end marker: two zero blocks
      ...opts,
    });
  }

  /** `docker tag SOURCE TARGET` as the engine API call the CLI makes. */
  async tag(source: string, target: string, opts: CallOptions = {}): Promise<void> {
    const { repo, tag } = splitTag(target);
    const query = `repo=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}`;
    await this.withEngine(opts, (conn) => conn.expect('POST', `/images/${pathName(source)}/tag?${query}`, [200, 201]));
  }

  /**
   * `docker image rm REF` as the engine API call the CLI makes: untags the name, deleting the image when it was its
   * last. Best effort: a leftover local image is untidy, not a failure (an engine that does not answer included).
   */
  async removeImage(ref: string, opts: CallOptions = {}): Promise<void> {
    await this.withEngine(opts, (conn) => conn.expect('DELETE', `/images/${pathName(ref)}`, [200])).catch(
      () => undefined,
    );
  }

  /**
   * Pushes one reference; a failure comes back as a result, not a throw, so it can be classified. No wall
   * deadline (a big layer legitimately takes long), but a watchdog: no output for pushStallLimitMs ends it (the
   * result has stalledMs). An abort ends it and throws.
   */
  async push(
    ref: string,
    opts: { platform?: string; onLine?: LineSink; signal?: AbortSignal; largestLayerBytes?: number } = {},
  ): Promise<CommandResult> {
    const args = dockerArgv.push(ref, opts.platform);
    const idleMs = pushStallLimitMs(this.pushStallMs, opts.largestLayerBytes ?? 0);
    return this.run(args, { onLine: opts.onLine, signal: opts.signal, deadline: false, idleMs });
  }

  private async withEngine<T>(opts: CallOptions, use: (conn: EngineConnection) => Promise<T>): Promise<T> {
    const conn = EngineConnection.open({
      env: this.env,
      endpoint: this.endpoint,
      deadlineMs: this.deadlineMs,
      signal: opts.signal,
    });
    try {
      return await use(conn);
    } finally {
      await conn.close();
    }
  }
}

/** The image ID each name points to, null for a name the engine does not have; asked all at once on `conn`. */
async function idsOf(conn: EngineConnection, refs: readonly string[]): Promise<Map<string, string | null>> {
  const answers = refs.map((ref) => conn.json(`/images/${pathName(ref)}/json`));
  const ids = new Map<string, string | null>();
  for (const [i, ref] of refs.entries()) {
    try {
      ids.set(ref, ((await answers[i]) as { Id: string }).Id);
    } catch (e) {
      if (e instanceof EngineApiError && e.status === 404) ids.set(ref, null);
      else throw e;
    }
  }
  return ids;
}

interface VersionBody {
  Version: string;
  ApiVersion: string;
}

/** The version every engine answer names (Server: Docker/VERSION (os), Api-Version); /version when one lacks it. */
async function engineVersion(conn: EngineConnection): Promise<VersionBody> {
  const { headers } = await conn.request('GET', '/_ping');
  const server = /^Docker\/(\S+)/.exec(headers.get('server') ?? '');
  const api = headers.get('api-version');
  if (server && api) return { Version: server[1], ApiVersion: api };
  return (await conn.json('/version')) as VersionBody;
}
interface InfoBody {
  DriverStatus?: [string, string][] | null;
}

function factsFrom(version: VersionBody, info: InfoBody): EngineFacts {
  const containerdStore = (info.DriverStatus ?? []).some(
    ([k, v]) => k === 'driver-type' && v.includes('containerd.snapshotter'),
  );
  return { serverVersion: version.Version, apiVersion: version.ApiVersion, containerdStore };
}

/** As the CLI shows it with --no-trunc: tabs in the instruction become spaces. */
function historyRow(row: { Size?: number; CreatedBy?: string }): HistoryRow {
  return { size: Number(row.Size) || 0, createdBy: (row.CreatedBy ?? '').replaceAll('\t', ' ') };
}

/** An image name or ID in a URL path: '/' and ':' stay (the engine's route takes the rest of the path). */
function pathName(ref: string): string {
  return encodeURIComponent(ref).replaceAll('%2F', '/').replaceAll('%3A', ':');
}

/** REPO and TAG of `REPO:TAG` (the tag follows the last ':' after the last '/'; none means latest). */
export function splitTag(ref: string): { repo: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}
