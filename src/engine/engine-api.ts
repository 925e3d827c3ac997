// The Docker engine API over node:http: straight to the engine's unix socket when the environment names one
// (DOCKER_HOST=unix://..., or the default socket when no context is chosen), else through `docker system dial-stdio`,
// which honours whatever the CLI would use (contexts, ssh://, tcp:// with TLS). A CLI process costs ~50 ms before it
// says anything; the socket costs a connect, so tagging and untagging the run's names go here too instead of
// `docker tag` / `docker image rm`. On the socket, a keep-alive agent opens a few connections and asks in parallel;
// through dial-stdio there is one child, so one connection, and requests go one after another on it.
// Measured against the hand-written pipelining client this replaced (npm run bench -- push with RP_DIST_BEFORE, 25
// paired rounds): the re-push main step is 0.93x (load average 3) and 1.09x (load 10) on the socket, 1.07x (load 4)
// and 0.94x (load 10) through dial-stdio: within the noise (per-round ratios 0.6-1.6). The engine read alone
// (bench/engine-read.ts, 7 rounds of 50, at rest): readImage 12.2 ms vs 11.2 ms on the socket, 36.1 ms vs 33.2 ms
// through dial-stdio, where node:http does not pipeline and each question waits for the one before.
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { howItEnded, type ProcessHandle, type ProcessResult } from '../util/process.js';
import { dockerArgv, startDocker } from './docker-cli.js';
import { clampTimerMs } from '../util/timers.js';
import { logText, outputTail } from '../util/untrusted.js';

/** JSON from the engine is small; more than this is not an answer to these questions. */
export const ENGINE_BODY_CAP = 32 * 1024 * 1024;
/** Where the engine listens when nothing says otherwise (Linux). */
export const DEFAULT_SOCKET = '/var/run/docker.sock';

/** An engine API answer the caller did not expect, worded as the CLI words it ("Error response from daemon: ..."). */
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

export type EngineEndpoint = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'dial-stdio' };

/**
 * How to reach the engine the CLI would use with `env`. Only the two cases with no doubt go straight to a socket:
 * DOCKER_HOST=unix://PATH, and no DOCKER_HOST, no DOCKER_CONTEXT and no current context in the config (the CLI's
 * default socket). Everything else (ssh://, tcp://, a context) goes through the CLI itself. `currentContext` is
 * the config's, read by the caller (engineEndpointFor reads it from DOCKER_CONFIG).
 */
export function engineEndpoint(env: NodeJS.ProcessEnv, currentContext: string | undefined): EngineEndpoint {
  const host = env.DOCKER_HOST;
  if (host) return host.startsWith('unix://') ? { kind: 'unix', path: host.slice('unix://'.length) } : dialStdio;
  const context = env.DOCKER_CONTEXT || currentContext;
  if (context && context !== 'default') return dialStdio;
  return { kind: 'unix', path: DEFAULT_SOCKET };
}

const dialStdio: EngineEndpoint = { kind: 'dial-stdio' };

/** engineEndpoint with the current context read from the config directory the CLI would read. */
export function engineEndpointFor(env: NodeJS.ProcessEnv): EngineEndpoint {
  let current: string | undefined;
  if (!env.DOCKER_HOST && !env.DOCKER_CONTEXT && env.DOCKER_CONFIG) {
    try {
      current = (
        JSON.parse(readFileSync(join(env.DOCKER_CONFIG, 'config.json'), 'utf8')) as { currentContext?: string }
      ).currentContext;
    } catch {
      // no config: the default context
    }
  }
  return engineEndpoint(env, current);
}

export interface EngineResponse {
  readonly status: number;
  readonly body: Buffer;
  /** Header names in lower case. */
  readonly headers: ReadonlyMap<string, string>;
}

export interface OpenOptions {
  readonly env: NodeJS.ProcessEnv;
  /** Where the engine is (engineEndpointFor(env)), decided once by the caller. */
  readonly endpoint: EngineEndpoint;
  /** The whole connection's: every answer must be in by then. */
  readonly deadlineMs: number;
  readonly signal?: AbortSignal;
  /** Bytes of one answer's body past which it fails (default ENGINE_BODY_CAP; tests take less). */
  readonly bodyCap?: number;
}

/** Connections to the socket at once: readImage asks ~5 questions together; more would only queue in dockerd. */
const SOCKET_CONNECTIONS = 8;
/** dockerd's heads are small; node's default (16 KiB) would do, this is the old parser's bound. */
const MAX_HEADER_BYTES = 64 * 1024;

/** How requests reach the engine: an agent that makes the connections, and what a failed one means. */
interface Link {
  readonly agent: Agent;
  /** request() options the link needs (the socket's path). */
  readonly options: { socketPath?: string };
  /** The engine's side of a request's failure (an engine that cannot be reached), else null: a protocol error. */
  why(e: NodeJS.ErrnoException): Promise<Error | null>;
  /** Ends every connection; resolves when they (and a dial-stdio child) are gone. */
  close(): Promise<void>;
}

/**
 * The engine API within one deadline and one cancel: requests made together are answered in parallel on the
 * socket and in order through dial-stdio. close() once every answer is in: it ends the dial-stdio child.
 */
export class EngineConnection {
  private failed: Error | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly onAbort = () => this.fail(new Error('the Docker engine was cancelled'));

  private constructor(
    private readonly link: Link,
    private readonly opts: OpenOptions,
  ) {
    this.timer = setTimeout(
      () => this.fail(new Error(`the Docker engine did not answer within ${opts.deadlineMs / 1000} s`)),
      clampTimerMs(opts.deadlineMs),
    );
    this.timer.unref();
    if (opts.signal?.aborted) this.onAbort();
    else opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  static open(opts: OpenOptions): EngineConnection {
    const { endpoint } = opts;
    return new EngineConnection(endpoint.kind === 'unix' ? socketLink(endpoint.path) : stdioLink(opts), opts);
  }

  request(method: 'GET' | 'POST' | 'DELETE', path: string): Promise<EngineResponse> {
    const p = new Promise<EngineResponse>((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      let settled = false;
      const ok = (r: EngineResponse) => {
        settled = true;
        resolve(r);
      };
      const failed = (e: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        void this.explain(path, e).then(reject);
      };
      const req = httpRequest({
        ...this.link.options,
        agent: this.link.agent,
        method,
        path,
        maxHeaderSize: MAX_HEADER_BYTES,
        headers: {
          Host: 'docker',
          'User-Agent': 'replicated-push',
          ...(method === 'GET' ? {} : { 'Content-Length': '0' }),
        },
      });
      req.on('error', failed);
      req.on('response', (res) =>
        readBody(res, this.opts.bodyCap ?? ENGINE_BODY_CAP, ok, (e) => {
          failed(e);
          req.destroy();
        }),
      );
      req.end();
    });
    p.catch(() => undefined); // awaited by the caller; a connection failure must not go unhandled meanwhile
    return p;
  }

  /** The answer's body as JSON; any status but 200 throws as the CLI reports it. */
  json(path: string): Promise<unknown> {
    const p = this.expect('GET', path, [200]).then((body) => {
      try {
        return JSON.parse(body.toString('utf8')) as unknown;
      } catch (e) {
        throw new Error(`engine API ${path}: ${(e as Error).message}`, { cause: e });
      }
    });
    p.catch(() => undefined);
    return p;
  }

  /** The body of an answer with one of `ok` statuses; any other throws as the CLI reports it. */
  async expect(method: 'GET' | 'POST' | 'DELETE', path: string, ok: readonly number[]): Promise<Buffer> {
    const { status, body } = await this.request(method, path);
    if (ok.includes(status)) return body;
    const text = body.toString('utf8');
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: the text as it is
    }
    // the engine's words are data: quoted so they never become a workflow command or a line of their own
    throw new EngineApiError(path, status, logText(message) || `HTTP ${status}`);
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    await this.link.close();
  }

  /** The deadline or the cancel: every request still running fails with it, and the connections end. */
  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    void this.link.close();
  }

  /** Why a request failed, in the words the failure classifier reads. */
  private async explain(path: string, e: NodeJS.ErrnoException): Promise<Error> {
    if (this.failed) return this.failed;
    const why = await this.link.why(e);
    return this.failed ?? why ?? new Error(`engine API ${path}: ${e.message}`);
  }
}

/** The body, up to `cap` bytes: past it, stop reading and fail (a declared length past it fails at once). */
function readBody(res: IncomingMessage, cap: number, ok: (r: EngineResponse) => void, fail: (e: Error) => void): void {
  const over = () => fail(new Error(`response body over ${cap} bytes`));
  if (Number(res.headers['content-length']) > cap) return over();
  const parts: Buffer[] = [];
  let total = 0;
  res.on('data', (c: Buffer) => {
    total += c.length;
    if (total > cap) return over();
    parts.push(c);
  });
  res.on('end', () => {
    const headers = new Map<string, string>();
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, String(v));
    ok({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers });
  });
  res.on('error', fail);
  res.on('close', () => {
    if (!res.complete) fail(Object.assign(new Error('the answer ended early'), { code: 'ECONNRESET' }));
  });
}

/** The engine's unix socket: connections cost a connect, so a few at once. */
function socketLink(path: string): Link {
  const agent = new Agent({ keepAlive: true, maxSockets: SOCKET_CONNECTIONS });
  return {
    agent,
    options: { socketPath: path },
    why: (e) => Promise.resolve(socketFailure(path, e)),
    close: () => {
      agent.destroy();
      return Promise.resolve();
    },
  };
}

/** A failed request on the socket in the CLI's words (classifyFailure reads "engine-unreachable"), else null. */
function socketFailure(path: string, e: NodeJS.ErrnoException): Error | null {
  const at = `unix://${path}`;
  if (e.syscall === 'connect')
    return new Error(
      `Cannot connect to the Docker daemon at ${at}. Is the docker daemon running? (${e.code ?? e.message})`,
    );
  if (e.code === 'ECONNRESET') return new Error(`the Docker engine closed the connection at ${at}`);
  return null;
}

/**
 * `docker system dial-stdio`: one child, its stdin and stdout the one connection (maxSockets 1: requests wait for
 * it in turn, a second child would cost more than it saves). The deadline and the signal end the child
 * (process.ts) as they end the connection.
 */
function stdioLink(opts: OpenOptions): Link {
  const proc: ProcessHandle = startDocker(dockerArgv.dialStdio(), {
    env: opts.env,
    stdin: 'pipe',
    stdout: 'pipe',
    deadlineMs: opts.deadlineMs,
    signal: opts.signal,
  });
  const socket = new StdioSocket(proc);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let connected = false;
  // The child is the connection: once it is gone there is no other (a new child per lost connection would hide
  // why the first one ended).
  agent.createConnection = (_options, callback) => {
    if (!connected) {
      connected = true;
      return socket;
    }
    callback?.(new Error('the dial-stdio connection is gone'), socket);
    return undefined;
  };
  let closed: Promise<void> | null = null;
  return {
    agent,
    options: {},
    why: async () => (socket.endedByChild ? stdioEnded(await proc.result, opts.deadlineMs) : null),
    close: () =>
      (closed ??= (async () => {
        agent.destroy();
        socket.destroy();
        await proc.result;
      })()),
  };
}

/**
 * A dial-stdio child's stdout and stdin as a socket node:http can use: the socket methods an agent calls are
 * no-ops (the connection's own deadline bounds it); destroying it closes stdin, which ends the child.
 */
class StdioSocket extends Duplex {
  /** stdout ended before anything here closed the connection: the child ended on its own (cannot connect). */
  endedByChild = false;

  constructor(private readonly proc: ProcessHandle) {
    super();
    proc.stdout?.on('data', (c: Buffer) => {
      if (!this.push(c)) proc.stdout?.pause();
    });
    proc.stdout?.on('end', () => {
      if (!this.destroyed) this.endedByChild = true;
      this.push(null);
    });
  }

  override _read(): void {
    this.proc.stdout?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error | null) => void): void {
    // A child that is gone fails the write (EPIPE); its exit says why, through the answer that never comes.
    if (this.proc.stdin?.writable) this.proc.stdin.write(chunk, () => callback());
    else callback();
  }

  override _final(callback: () => void): void {
    this.proc.stdin?.end();
    callback();
  }

  override _destroy(e: Error | null, callback: (e: Error | null) => void): void {
    this.proc.stdin?.end();
    // Paused (no one read the last answer), stdout would never reach its end and the child's result would wait
    // out process.ts's late-output grace.
    this.proc.stdout?.resume();
    callback(e);
  }

  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

function stdioEnded(r: ProcessResult, deadlineMs: number): Error {
  if (r.timedOut || r.aborted) return new Error(`the Docker engine ${howItEnded(r, deadlineMs)}`);
  const why = outputTail(r.stderr) || `docker system dial-stdio ${howItEnded(r)}`;
  // The CLI's own words for an engine it cannot reach, with dial-stdio's reason (classifyFailure knows them).
  return new Error(`Cannot connect to the Docker daemon: ${why}`);
}
