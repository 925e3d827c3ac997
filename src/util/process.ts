// The one place a child process is started (docker, zstd). Every child is kept in a set until it exits, so a
// cancel can end them all (endAllChildren); a deadline or an aborted signal ends one the same way (SIGTERM,
// then SIGKILL after a short grace) and the result says which. Output is captured with a cap (the last
// MiB of each stream), and no child ever gets the run's secrets in its environment.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { clampTimerMs } from './timers.js';

export type LineSink = (line: string, stream: 'stdout' | 'stderr') => void;

export interface ProcessOptions {
  /** The child's environment before secrets are taken out (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. */
  readonly input?: string | Buffer;
  /** 'pipe' leaves stdin open for the caller (handle.stdin); default 'ignore', or a pipe for `input`. */
  readonly stdin?: 'pipe' | 'ignore';
  /** 'pipe' hands stdout to the caller (handle.stdout) uncaptured; default 'capture'. */
  readonly stdout?: 'capture' | 'pipe';
  /** Called for every captured line (stderr always, stdout when captured), without the line break. */
  readonly onLine?: LineSink;
  /** Ends the child when it runs longer; the result has timedOut. */
  readonly deadlineMs?: number;
  /**
   * Ends the child when it prints nothing (stderr, or stdout when captured) for this long; the result has stalled.
   * A progress watchdog for a child that may rightly run for long, but not silently (docker push).
   */
  readonly idleMs?: number;
  /** Ends the child when aborted; the result has aborted. */
  readonly signal?: AbortSignal;
  /** Bytes kept of each captured stream: the last ones (default 1 MiB). */
  readonly captureBytes?: number;
  /** Between SIGTERM and SIGKILL (default 2 s). */
  readonly graceMs?: number;
}

export interface ProcessResult {
  /** Exit code; null when the child ended on a signal or never started. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Ended because deadlineMs passed. */
  readonly timedOut: boolean;
  /** Ended because idleMs passed without a byte of output. */
  readonly stalled: boolean;
  /** Ended because the signal was aborted (or endAllChildren ran). */
  readonly aborted: boolean;
  /** The child could not be started (ENOENT, EACCES). */
  readonly spawnError?: Error;
}

export interface ProcessHandle {
  readonly pid: number | undefined;
  /** Open only with stdin: 'pipe'. */
  readonly stdin: Writable | null;
  /** Set only with stdout: 'pipe'. */
  readonly stdout: Readable | null;
  /** Settles once the child has exited and its output is read; never rejects. */
  readonly result: Promise<ProcessResult>;
  /** SIGTERM, SIGKILL after the grace; resolves once the child is gone. */
  kill(): Promise<void>;
}

export const DEFAULT_CAPTURE_BYTES = 1024 * 1024;
const DEFAULT_GRACE_MS = 2000;
/** After the exit, how long output may still arrive (a grandchild can hold the pipes open). */
const CLOSE_AFTER_EXIT_MS = 1000;

const live = new Set<ProcessHandle>();
const protectedSecrets = new Set<string>();

/**
 * The environment a child gets: without INPUT_TOKEN (the action's token input) and without every variable
 * whose value contains one of the secrets (REPLICATED_TOKEN, the variable --token-env names, ...).
 */
export function childEnv(env: NodeJS.ProcessEnv, secrets: readonly string[]): NodeJS.ProcessEnv {
  const hidden = secrets.filter((s) => s.length > 0);
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || name === 'INPUT_TOKEN') continue;
    if (hidden.some((s) => value.includes(s))) continue;
    out[name] = value;
  }
  return out;
}

/** A secret no child may see from now on, whatever environment its caller passes (the run's token). */
export function protectSecret(secret: string): void {
  if (secret) protectedSecrets.add(secret);
}

/** Forgets the protected secrets (tests). */
export function forgetSecrets(): void {
  protectedSecrets.clear();
}

/** An environment as every child gets it: childEnv with the protected secrets. */
export function protectedEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return childEnv(env, [...protectedSecrets]);
}

/**
 * Whether a command runs and exits 0 (`zstd --version`): a quick synchronous probe with a deadline, the one
 * child that is not tracked, since it is over before this returns.
 */
export function commandWorks(command: string, args: readonly string[], timeoutMs = 5000): boolean {
  return spawnSync(command, args, { stdio: 'ignore', env: protectedEnv(), timeout: timeoutMs }).status === 0;
}

/** Children started and not yet exited. */
export function liveChildren(): number {
  return live.size;
}

/** Ends every live child (the cancel path): SIGTERM, SIGKILL after the grace; resolves when all are gone. */
export async function endAllChildren(graceMs = DEFAULT_GRACE_MS): Promise<void> {
  await Promise.all([...live].map((h) => (h as Handle).end('aborted', graceMs)));
}

/** The last `cap` bytes of a stream. */
class Tail {
  private chunks: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes > this.cap && this.chunks.length > 0) {
      const over = this.bytes - this.cap;
      const first = this.chunks[0];
      if (first.length <= over) {
        this.chunks.shift();
        this.bytes -= first.length;
      } else {
        this.chunks[0] = first.subarray(over);
        this.bytes -= over;
      }
    }
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Splits a stream into lines for onLine; a line longer than the cap is cut to its last `cap` characters. */
function lineSplitter(cap: number, emit: (line: string) => void): { push(c: Buffer): void; end(): void } {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  const flush = (text: string) => {
    const lines = (partial + text).split('\n');
    partial = (lines.pop() ?? '').slice(-cap);
    for (const l of lines) emit(l.endsWith('\r') ? l.slice(0, -1) : l);
  };
  return {
    push: (c) => flush(decoder.write(c)),
    end: () => {
      flush(decoder.end());
      if (partial) emit(partial);
      partial = '';
    },
  };
}

type Ending = 'timedOut' | 'aborted' | 'stalled';

/** A child's captured output: the tails of both streams, and their line splitters when there is an onLine. */
interface Output {
  readonly out: Tail;
  readonly err: Tail;
  readonly outLines: ReturnType<typeof lineSplitter> | null;
  readonly errLines: ReturnType<typeof lineSplitter> | null;
}

class Handle implements ProcessHandle {
  readonly result: Promise<ProcessResult>;
  private readonly child: ChildProcess;
  private exited = false;
  private readonly gone: Promise<void>;
  private markGone: () => void = () => undefined;
  private ending: Ending | null = null;
  private killTimer: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private readonly graceMs: number;
  private readonly onAbort = () => void this.end('aborted');

  constructor(
    command: string,
    args: readonly string[],
    private readonly opts: ProcessOptions,
  ) {
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
    const stdinMode = opts.stdin ?? (opts.input === undefined ? 'ignore' : 'pipe');
    const env = protectedEnv(opts.env ?? process.env);
    this.child = spawn(command, args, { env, stdio: [stdinMode, 'pipe', 'pipe'] });
    live.add(this);

    // A child that stops reading makes its stdin fail with EPIPE: its exit status says why, never a crash here.
    this.child.stdin?.on('error', () => undefined);
    const output = this.capture(opts.captureBytes ?? DEFAULT_CAPTURE_BYTES);
    this.gone = new Promise<void>((resolve) => {
      this.markGone = resolve;
    });
    if (opts.deadlineMs !== undefined)
      this.deadline = setTimeout(() => void this.end('timedOut'), clampTimerMs(opts.deadlineMs));
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.result = this.settle(output);

    if (opts.signal?.aborted) void this.end('aborted');
    else if (opts.input !== undefined) this.child.stdin?.end(opts.input);
  }

  /** Keeps the last `cap` bytes of stderr (and of stdout unless piped), feeds onLine, and arms the idle watchdog. */
  private capture(cap: number): Output {
    const { opts, child } = this;
    const output: Output = {
      out: new Tail(cap),
      err: new Tail(cap),
      outLines: opts.onLine ? lineSplitter(cap, (l) => opts.onLine?.(l, 'stdout')) : null,
      errLines: opts.onLine ? lineSplitter(cap, (l) => opts.onLine?.(l, 'stderr')) : null,
    };
    // Every byte of output restarts the watchdog: silence, not length, is what it ends.
    if (opts.idleMs !== undefined) this.idle = setTimeout(() => void this.end('stalled'), opts.idleMs);
    if ((opts.stdout ?? 'capture') === 'capture')
      child.stdout?.on('data', (c: Buffer) => {
        this.idle?.refresh();
        output.out.push(c);
        output.outLines?.push(c);
      });
    child.stderr?.on('data', (c: Buffer) => {
      this.idle?.refresh();
      output.err.push(c);
      output.errLines?.push(c);
    });
    return output;
  }

  /** The result, once the child's streams are closed (or it never started). */
  private settle(output: Output): Promise<ProcessResult> {
    const { child } = this;
    return new Promise<ProcessResult>((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        this.onGone();
        output.outLines?.end();
        output.errLines?.end();
        resolve({
          code,
          signal,
          stdout: output.out.text(),
          stderr: output.err.text(),
          timedOut: this.ending === 'timedOut',
          stalled: this.ending === 'stalled',
          aborted: this.ending === 'aborted',
          ...(spawnError ? { spawnError } : {}),
        });
      };
      child.once('error', (e) => {
        // 'error' without a pid: the child never started; with one, a failed kill (it exits on its own)
        if (child.pid === undefined) finish(null, null, e);
      });
      child.once('exit', () => this.onExit());
      child.once('close', (code, signal) => finish(code, signal));
    });
  }

  private onExit(): void {
    this.onGone();
    // a grandchild may keep the pipes open: stop waiting for the rest of the output
    const late = setTimeout(() => {
      this.child.stdout?.destroy();
      this.child.stderr?.destroy();
    }, CLOSE_AFTER_EXIT_MS);
    this.child.once('close', () => clearTimeout(late));
  }

  /** The child exited or never started: it leaves the live set, its timers and its abort listener go. */
  private onGone(): void {
    if (this.exited) return;
    this.exited = true;
    live.delete(this);
    clearTimeout(this.killTimer);
    clearTimeout(this.deadline);
    clearTimeout(this.idle);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.markGone();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
  get stdin(): Writable | null {
    return this.child.stdin;
  }
  get stdout(): Readable | null {
    return this.child.stdout;
  }

  kill(): Promise<void> {
    return this.end('aborted');
  }

  async end(why: Ending, graceMs = this.graceMs): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    this.ending ??= why;
    if (this.killTimer === undefined) {
      this.child.kill('SIGTERM');
      this.killTimer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    }
    await this.gone;
  }
}

/** Starts a child; see ProcessOptions. The handle is tracked until the child exits. */
export function startProcess(command: string, args: readonly string[], opts: ProcessOptions = {}): ProcessHandle {
  return new Handle(command, args, opts);
}

/** Runs a command to completion: the result, with its captured output. */
export function runProcess(
  command: string,
  args: readonly string[],
  opts: ProcessOptions = {},
): Promise<ProcessResult> {
  return startProcess(command, args, opts).result;
}

/**
 * The exit of a child that ends within a grace period, or null after stopping it: whether a child's own words
 * (its stderr, its exit) explain why its output ended early, or it was stopped here and says nothing.
 */
export async function exitedOnItsOwn(child: ProcessHandle, graceMs = 2000): Promise<ProcessResult | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), graceMs);
  });
  const exit = await Promise.race([child.result, late]);
  clearTimeout(timer);
  if (exit) return exit;
  await child.kill();
  return null;
}

/** An exit code for a child that ended on a signal: 128 + its number, as a shell reports it. */
export function exitCode(result: Pick<ProcessResult, 'code' | 'signal'>): number {
  if (result.code !== null) return result.code;
  const n = result.signal ? constants.signals[result.signal] : undefined;
  return n === undefined ? 1 : 128 + n;
}

/** "did not answer within 60 s" / "stalled (...)" / "was cancelled" / "ended on SIGTERM" / "exit 1": how a child ended. */
export function howItEnded(result: ProcessResult, deadlineMs?: number): string {
  if (result.spawnError) return `could not start: ${result.spawnError.message}`;
  if (result.timedOut)
    return `did not answer within ${deadlineMs === undefined ? 'its deadline' : formatSeconds(deadlineMs)}`;
  if (result.stalled) return 'stalled (printed nothing for too long)';
  if (result.aborted) return 'was cancelled';
  if (result.code === null) return `ended on ${result.signal ?? 'a signal'}`;
  return `exit ${result.code}`;
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
