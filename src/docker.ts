// Every docker CLI call the action makes, one function each, all through the process layer (process.ts):
// secrets go through stdin only, children get an environment without them, the calls that can hang have a
// deadline, and every call takes an abort signal. Commands run with the run's own DOCKER_CONFIG so
// credentials never touch ~/.docker. What the run reads from the engine comes over one engine-API
// connection (`docker system dial-stdio`), not a CLI process per question.
import { apiAtLeast, type EngineManifest } from './attestations.js';
import type { HistoryRow } from './layers.js';
import { INDEX_MEDIA_TYPES } from './oci.js';
import {
  childEnv,
  exitCode,
  howItEnded,
  protectSecret,
  runProcess,
  startProcess,
  type LineSink,
  type ProcessHandle,
  type ProcessResult,
} from './process.js';

export type { LineSink } from './process.js';
export type { HistoryRow } from './layers.js';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
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

/** An engine API answer other than 200, worded as the CLI words it ("Error response from daemon: ..."). */
export class EngineApiError extends Error {
  constructor(
    readonly path: string,
    readonly status: number,
    engineMessage: string,
  ) {
    super(`Error response from daemon: ${engineMessage}`);
    this.name = 'EngineApiError';
  }
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' ');
}

export interface ImageInspect {
  Id: string;
  Os: string;
  Architecture: string;
  Variant?: string;
  RootFS: { Layers?: string[] };
  /** Present on the containerd image store: the image's own descriptor (an index when attested). */
  Descriptor?: { mediaType: string; digest: string; size: number };
}

export interface EngineFacts {
  readonly serverVersion: string;
  readonly apiVersion: string;
  /** The containerd image store keeps the image index (and its attestations) locally. */
  readonly containerdStore: boolean;
}

/** What the run reads from the engine before it plans, over one connection. */
export interface ImageRead {
  readonly engine: EngineFacts;
  readonly image: ImageInspect;
  /** Newest first, as `docker history --no-trunc -H=false` lists them. */
  readonly history: HistoryRow[];
  /** The image index's manifests (containerd store, index, API >= 1.48), else null. */
  readonly manifests: EngineManifest[] | null;
  /** For each name asked about (`names`): the image ID it points to now, null when the engine does not have it. */
  readonly names: Map<string, string | null>;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface DockerOptions {
  /** Values no child may see in its environment (the token): protected for every child process from now on. */
  readonly secrets?: readonly string[];
  /** Deadline of every call that can hang (all but push). */
  readonly deadlineMs?: number;
}

/** login, tag, inspect, import, image rm and engine API reads: a healthy engine answers in well under a second. */
export const DOCKER_DEADLINE_MS = 60_000;
/** JSON from the engine is small; more than this is not an answer to these questions. */
const ENGINE_BODY_CAP = 32 * 1024 * 1024;

export class Docker {
  private readonly env: NodeJS.ProcessEnv;
  private readonly deadlineMs: number;

  constructor(env: NodeJS.ProcessEnv, opts: DockerOptions = {}) {
    // Protected for every child from here on (zstd in the relayer included), not only docker's.
    for (const secret of opts.secrets ?? []) protectSecret(secret);
    this.env = childEnv(env, opts.secrets ?? []);
    this.deadlineMs = opts.deadlineMs ?? DOCKER_DEADLINE_MS;
  }

  private async run(
    args: string[],
    opts: { input?: string | Buffer; onLine?: LineSink; signal?: AbortSignal; deadline?: boolean } = {},
  ): Promise<CommandResult> {
    const deadlineMs = opts.deadline === false ? undefined : this.deadlineMs;
    const result = await runProcess('docker', args, {
      env: this.env,
      input: opts.input,
      onLine: opts.onLine,
      signal: opts.signal,
      deadlineMs,
    });
    const command: CommandResult = { code: exitCode(result), stdout: result.stdout, stderr: result.stderr };
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
    await this.check(['login', registry, '--username', username, '--password-stdin'], { input: secret, ...opts });
  }

  /**
   * Everything the run reads before it plans, over one `docker system dial-stdio`: /version, /info, the image
   * and its history in one pipelined batch, then the index's manifests when the strategy needs them
   * (containerd store, an index descriptor, API >= 1.48). A missing image fails as the CLI words it
   * ("No such image"); an engine that cannot be reached as "Cannot connect to the Docker daemon".
   */
  async readImage(ref: string, opts: CallOptions & { names?: readonly string[] } = {}): Promise<ImageRead> {
    return this.withEngine(opts, async (conn) => {
      const name = pathName(ref);
      const version = conn.json('/version');
      const info = conn.json('/info');
      const inspect = conn.json(`/images/${name}/json`);
      const rows = conn.json(`/images/${name}/history`);
      // What the names the run will tag point to now, in the same batch (no connection of their own).
      const names = idsOf(conn, opts.names ?? []);
      names.catch(() => undefined); // reported by the await below, unless the image itself failed first
      const engine = factsFrom((await version) as VersionBody, (await info) as InfoBody);
      const image = (await inspect) as ImageInspect;
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

  /** The image ID each name points to now, null for a name the engine does not have: one connection for all. */

  /** An image with one empty layer, made from an empty tar on stdin: nothing is pulled. */
  async importEmpty(ref: string, label: string, opts: CallOptions = {}): Promise<void> {
    await this.check(['import', '--change', `LABEL ${label}`, '--message', 'replicated-push tombstone', '-', ref], {
      input: Buffer.alloc(1024), // a tar archive's end marker: two zero blocks
      ...opts,
    });
  }

  async tag(source: string, target: string, opts: CallOptions = {}): Promise<void> {
    await this.check(['tag', source, target], opts);
  }

  /** Best effort: a leftover local image is untidy, not a failure (an engine that does not answer included). */
  async removeImage(ref: string, opts: CallOptions = {}): Promise<void> {
    await this.run(['image', 'rm', ref], opts).catch(() => undefined);
  }

  /**
   * Pushes one reference; a failure comes back as a result, not a throw, so it can be classified. No wall
   * deadline (a big layer legitimately takes long), but an abort ends it and throws.
   */
  async push(
    ref: string,
    opts: { platform?: string; onLine?: LineSink; signal?: AbortSignal } = {},
  ): Promise<CommandResult> {
    const args = ['push', ...(opts.platform ? ['--platform', opts.platform] : []), ref];
    return this.run(args, { onLine: opts.onLine, signal: opts.signal, deadline: false });
  }

  private async withEngine<T>(opts: CallOptions, use: (conn: EngineConnection) => Promise<T>): Promise<T> {
    const conn = new EngineConnection(
      startProcess('docker', ['system', 'dial-stdio'], {
        env: this.env,
        stdin: 'pipe',
        stdout: 'pipe',
        deadlineMs: this.deadlineMs,
        signal: opts.signal,
      }),
      this.deadlineMs,
    );
    try {
      return await use(conn);
    } finally {
      await conn.close();
    }
  }
}

/** The image ID each name points to, null for a name the engine does not have; requests pipelined on `conn`. */
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

interface EngineResponse {
  readonly status: number;
  readonly body: Buffer;
}

interface Waiting {
  readonly path: string;
  resolve(r: EngineResponse): void;
  reject(e: Error): void;
}

/**
 * HTTP/1.1 over a `docker system dial-stdio` child: requests are written at once (pipelined) and answered in
 * order on the one keep-alive connection. stdin stays open until the last answer is in: closing it early
 * cancels the requests still running.
 */
class EngineConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: Waiting[] = [];
  private failed: Error | null = null;

  constructor(
    private readonly proc: ProcessHandle,
    private readonly deadlineMs: number,
  ) {
    proc.stdout?.on('data', (c: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      this.parse();
    });
    void proc.result.then((r) => this.fail(this.endedError(r)));
  }

  get(path: string): Promise<EngineResponse> {
    const p = new Promise<EngineResponse>((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.waiting.push({ path, resolve, reject });
      this.proc.stdin?.write(`GET ${path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: replicated-push\r\n\r\n`);
    });
    p.catch(() => undefined); // awaited by the caller; a connection failure must not go unhandled meanwhile
    return p;
  }

  /** The body as JSON; any status but 200 throws as the CLI reports it. */
  json(path: string): Promise<unknown> {
    const p = this.get(path).then(({ status, body }) => {
      const text = body.toString('utf8');
      if (status !== 200) {
        let message = text.trim();
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? message;
        } catch {
          // not JSON: the text as it is
        }
        throw new EngineApiError(path, status, message || `HTTP ${status}`);
      }
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        throw new Error(`engine API ${path}: ${(e as Error).message}`, { cause: e });
      }
    });
    p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    this.proc.stdin?.end();
    await this.proc.result;
  }

  private endedError(r: ProcessResult): Error {
    if (r.timedOut || r.aborted) return new Error(`the Docker engine ${howItEnded(r, this.deadlineMs)}`);
    const why = lastLines(r.stderr) || `docker system dial-stdio ${howItEnded(r)}`;
    // The CLI's own words for an engine it cannot reach, with dial-stdio's reason (classifyFailure knows them).
    return new Error(`Cannot connect to the Docker daemon: ${why}`);
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.failed);
  }

  private parse(): void {
    for (;;) {
      if (this.waiting.length === 0) return;
      let parsed: { response: EngineResponse; consumed: number } | null;
      try {
        parsed = parseResponse(this.buf);
      } catch (e) {
        this.fail(new Error(`engine API ${this.waiting[0].path}: ${(e as Error).message}`));
        void this.proc.kill();
        return;
      }
      if (!parsed) return;
      this.buf = this.buf.subarray(parsed.consumed);
      this.waiting.shift()?.resolve(parsed.response);
    }
  }
}

/** One complete HTTP/1.1 response at the start of buf, or null while more bytes are needed. */
export function parseResponse(buf: Buffer): { response: EngineResponse; consumed: number } | null {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (buf.length > 64 * 1024) throw new Error('response head over 64 KiB');
    return null;
  }
  const [statusLine, ...lines] = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const status = Number(m[1]);
  const headers = new Map<string, string>();
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  let pos = headEnd + 4;
  if (status === 204 || status === 304 || (status >= 100 && status < 200))
    return { response: { status, body: Buffer.alloc(0) }, consumed: pos };
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const size = parseInt(buf.subarray(pos, eol).toString('latin1').split(';')[0].trim(), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error('bad chunk size');
      if (size === 0) {
        // trailers (none expected), then the blank line
        const end = buf.indexOf('\r\n\r\n', eol);
        if (end < 0) return null;
        return { response: { status, body: Buffer.concat(parts) }, consumed: end + 4 };
      }
      total += size;
      if (total > ENGINE_BODY_CAP) throw new Error(`response body over ${ENGINE_BODY_CAP} bytes`);
      if (buf.length < eol + 2 + size + 2) return null;
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      pos = eol + 2 + size + 2;
    }
  }
  const length = headers.get('content-length');
  if (length === undefined) throw new Error(`HTTP ${status} without Content-Length or chunked encoding`);
  const n = Number(length);
  if (!Number.isInteger(n) || n < 0) throw new Error(`bad Content-Length ${JSON.stringify(length)}`);
  if (n > ENGINE_BODY_CAP) throw new Error(`response body over ${ENGINE_BODY_CAP} bytes`);
  if (buf.length < pos + n) return null;
  return { response: { status, body: buf.subarray(pos, pos + n) }, consumed: pos + n };
}
