// The Docker engine API, spoken as HTTP/1.1 on one keep-alive connection: straight to the engine's unix socket when
// the environment names one (DOCKER_HOST=unix://..., or the default socket when no context is chosen), else through
// `docker system dial-stdio`, which honours whatever the CLI would use (contexts, ssh://, tcp:// with TLS). A CLI
// process costs ~50 ms before it says anything; the socket costs a connect, so tagging and untagging the run's
// names go here too instead of `docker tag` / `docker image rm`.
import { readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { howItEnded, startProcess, type ProcessHandle, type ProcessResult } from '../util/process.js';
import { clampTimerMs } from '../util/timers.js';
import { logText, outputTail } from '../util/untrusted.js';

/** JSON from the engine is small; more than this is not an answer to these questions. */
const ENGINE_BODY_CAP = 32 * 1024 * 1024;
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

interface Waiting {
  readonly path: string;
  resolve(r: EngineResponse): void;
  reject(e: Error): void;
}

/** The byte pipe under a connection: a socket, or a dial-stdio child's stdin and stdout. */
interface Link {
  write(data: string): void;
  onData(fn: (chunk: Buffer) => void): void;
  /** Resolves with why the link ended; never rejects. */
  readonly ended: Promise<Error>;
  /** Ends the link once the caller has its answers; resolves when it is gone. */
  close(): Promise<void>;
  destroy(): void;
}

export interface OpenOptions {
  readonly env: NodeJS.ProcessEnv;
  /** Where the engine is (engineEndpointFor(env)), decided once by the caller. */
  readonly endpoint: EngineEndpoint;
  readonly deadlineMs: number;
  readonly signal?: AbortSignal;
}

/**
 * HTTP/1.1 on one keep-alive connection: requests are written at once (pipelined) and answered in order. The
 * link stays open until the last answer is in: closing a dial-stdio stdin early cancels the requests still running.
 */
export class EngineConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: Waiting[] = [];
  private failed: Error | null = null;
  private readonly siblings: EngineConnection[] = [];

  private constructor(
    private readonly link: Link,
    private readonly opts: OpenOptions,
  ) {
    link.onData((c) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      this.parse();
    });
    void link.ended.then((e) => this.fail(e));
  }

  static open(opts: OpenOptions): EngineConnection {
    const { endpoint } = opts;
    return new EngineConnection(endpoint.kind === 'unix' ? socketLink(endpoint.path, opts) : stdioLink(opts), opts);
  }

  /**
   * A second connection, for a slow request that should not hold up the ones queued behind it (the engine answers
   * one connection's requests in order): a new socket when connections are cheap, else this connection (a
   * dial-stdio child costs more than it would save). Closed with this one.
   */
  sibling(): EngineConnection {
    if (this.opts.endpoint.kind !== 'unix') return this;
    const other = EngineConnection.open(this.opts);
    this.siblings.push(other);
    return other;
  }

  request(method: 'GET' | 'POST' | 'DELETE', path: string): Promise<EngineResponse> {
    const p = new Promise<EngineResponse>((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.waiting.push({ path, resolve, reject });
      const length = method === 'GET' ? '' : 'Content-Length: 0\r\n';
      this.link.write(`${method} ${path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: replicated-push\r\n${length}\r\n`);
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
    // The engine's words name images and files it was given: data, one line (untrusted.ts).
    throw new EngineApiError(path, status, logText(message) || `HTTP ${status}`);
  }

  async close(): Promise<void> {
    await Promise.all([this.link.close(), ...this.siblings.map((s) => s.close())]);
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
        this.link.destroy();
        return;
      }
      if (!parsed) return;
      this.buf = this.buf.subarray(parsed.consumed);
      this.waiting.shift()?.resolve(parsed.response);
    }
  }
}

/** `docker system dial-stdio`: the deadline and the signal end the child (process.ts). */
function stdioLink(opts: OpenOptions): Link {
  const proc: ProcessHandle = startProcess('docker', ['system', 'dial-stdio'], {
    env: opts.env,
    stdin: 'pipe',
    stdout: 'pipe',
    deadlineMs: opts.deadlineMs,
    signal: opts.signal,
  });
  return {
    write: (data) => proc.stdin?.write(data),
    onData: (fn) => proc.stdout?.on('data', fn),
    ended: proc.result.then((r) => stdioEnded(r, opts.deadlineMs)),
    close: async () => {
      proc.stdin?.end();
      await proc.result;
    },
    destroy: () => void proc.kill(),
  };
}

function stdioEnded(r: ProcessResult, deadlineMs: number): Error {
  if (r.timedOut || r.aborted) return new Error(`the Docker engine ${howItEnded(r, deadlineMs)}`);
  const why = outputTail(r.stderr) || `docker system dial-stdio ${howItEnded(r)}`;
  // The CLI's own words for an engine it cannot reach, with dial-stdio's reason (classifyFailure knows them).
  return new Error(`Cannot connect to the Docker daemon: ${why}`);
}

/** The engine's unix socket, with the same deadline and cancel as a child would have. */
function socketLink(path: string, opts: OpenOptions): Link {
  const socket: Socket = createConnection(path);
  let why: Error | null = null;
  const end = (e: Error) => {
    why ??= e;
    socket.destroy();
  };
  const timer = setTimeout(
    () => end(new Error(`the Docker engine did not answer within ${opts.deadlineMs / 1000} s`)),
    clampTimerMs(opts.deadlineMs),
  );
  timer.unref();
  const onAbort = () => end(new Error('the Docker engine was cancelled'));
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  socket.on('error', (e: NodeJS.ErrnoException) =>
    // As the CLI words it, so classifyFailure reads "engine-unreachable".
    end(
      new Error(
        `Cannot connect to the Docker daemon at unix://${path}. Is the docker daemon running? (${e.code ?? e.message})`,
      ),
    ),
  );
  const ended = new Promise<Error>((resolve) =>
    socket.once('close', () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(why ?? new Error(`the Docker engine closed the connection at unix://${path}`));
    }),
  );
  return {
    write: (data) => void socket.write(data),
    onData: (fn) => socket.on('data', fn),
    ended,
    // Called once every answer is in: nothing is left to wait for.
    close: async () => {
      socket.destroy();
      await ended;
    },
    destroy: () => socket.destroy(),
  };
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
    return { response: { status, body: Buffer.alloc(0), headers }, consumed: pos };
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
        return { response: { status, body: Buffer.concat(parts), headers }, consumed: end + 4 };
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
  return { response: { status, body: buf.subarray(pos, pos + n), headers }, consumed: pos + n };
}
