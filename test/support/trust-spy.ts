// What the action does behind its own words, seen from outside: a `docker` (and `zstd`) first on the step's PATH
// that records each call (pid, parent, argv, the environment it was started with) and then execs the real
// command with the same pid, so a test can ask afterwards which children got which environment and whether
// any of them is still alive. And a main step started the way the GitHub runner starts it, so a test can
// cancel it the way the runner does.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { DIST, parseCommandFile, type Job } from './action-runner.js';
import { node24 } from './node24.js';

export interface SpiedCall {
  readonly command: string;
  readonly pid: number;
  readonly ppid: number;
  readonly args: readonly string[];
  /** The environment the command was started with (/proc/PID/environ of the wrapper, kept across exec). */
  readonly env: Record<string, string>;
}

export interface Spy {
  /** Put first on the step's PATH. */
  readonly binDir: string;
  /** Every call recorded so far, in no particular order. */
  calls(): SpiedCall[];
  /** Recorded calls whose process is still running the spied command (pid reuse ruled out by its cmdline). */
  alive(): SpiedCall[];
  /** PATH for the step: the spy first, then the test's PATH. */
  path(): string;
}

/** The real command as the test's PATH resolves it, before the spy goes first. */
function resolveCommand(command: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Wrappers for `commands` in `dir`/bin. Each call writes DIR/log/COMMAND.PID.args (argv, NUL-separated),
 * .env (a copy of /proc/self/environ) and .ppid, then execs the real command: same pid, same stdin/stdout
 * (docker system dial-stdio and docker load read them), same environment.
 */
export function createSpy(dir: string, commands: readonly string[] = ['docker', 'zstd']): Spy {
  const binDir = join(dir, 'bin');
  const logDir = join(dir, 'log');
  mkdirSync(binDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const real = new Map<string, string>();
  for (const command of commands) {
    const path = resolveCommand(command);
    if (!path) continue;
    real.set(command, path);
    const log = shellQuote(join(logDir, command));
    writeFileSync(
      join(binDir, command),
      [
        '#!/bin/sh',
        `cat /proc/$$/environ > ${log}.$$.env`,
        `printf '%s\\0' "$@" > ${log}.$$.args`,
        `echo "$PPID" > ${log}.$$.ppid`,
        `exec ${shellQuote(path)} "$@"`,
        '',
      ].join('\n'),
    );
    chmodSync(join(binDir, command), 0o755);
  }
  const calls = (): SpiedCall[] =>
    readdirSync(logDir)
      .map((f) => /^(.+)\.(\d+)\.args$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map(([, command, pid]) => {
        const base = join(logDir, `${command}.${pid}`);
        const read = (ext: string) => (existsSync(`${base}.${ext}`) ? readFileSync(`${base}.${ext}`, 'utf8') : '');
        const env: Record<string, string> = {};
        for (const kv of read('env').split('\0')) {
          const at = kv.indexOf('=');
          if (at > 0) env[kv.slice(0, at)] = kv.slice(at + 1);
        }
        return {
          command,
          pid: Number(pid),
          ppid: Number(read('ppid').trim()),
          args: read('args').split('\0').slice(0, -1),
          env,
        };
      });
  return {
    binDir,
    calls,
    alive: () =>
      calls().filter((c) => {
        try {
          // after exec the process runs the real binary: its cmdline starts with it
          const cmdline = readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').split('\0');
          const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${c.pid}/status`, 'utf8'))?.[1];
          return state !== 'Z' && cmdline[0] === real.get(c.command);
        } catch {
          return false;
        }
      }),
    path: () => `${binDir}:${process.env.PATH ?? ''}`,
  };
}

/** Every live process whose parent chain leads to `root` (from /proc; the root itself not included). */
export function descendants(root: number): { pid: number; cmdline: string }[] {
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // the command name is in parentheses and may itself hold spaces or parentheses
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      parent.set(Number(name), Number(fields[1]));
      cmd.set(Number(name), readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim());
    } catch {
      // gone meanwhile
    }
  }
  const out: { pid: number; cmdline: string }[] = [];
  for (const pid of parent.keys()) {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) {
      if (p === root) {
        out.push({ pid, cmdline: cmd.get(pid) ?? '' });
        break;
      }
    }
  }
  return out;
}

export interface StepEnd {
  /** The exit code; null when the process ended on a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly outputs: Record<string, string>;
  readonly state: Record<string, string>;
  /** When it exited (Date.now() ms). */
  readonly endedAt: number;
}

export interface RunningStep {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Settles when the step has exited and its output is read. */
  readonly ended: Promise<StepEnd>;
  /** stdout so far. */
  stdout(): string;
}

/**
 * The main step as the runner starts it (the same environment as Job.main: PATH, HOME, LANG, TZ, RUNNER_TEMP,
 * GITHUB_ACTIONS, INPUT_*, the command files in the job's directory), but left running so that a test can signal
 * it. Signals go to its pid only, as the runner sends them.
 */
export function startMain(job: Job, inputs: Record<string, string>, extraEnv: NodeJS.ProcessEnv = {}): RunningStep {
  const file = (name: string) => {
    const p = join(job.dir, name);
    writeFileSync(p, '');
    return p;
  };
  const files = { output: file('output'), state: file('state'), summary: file('summary') };
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TZ']) if (process.env[k]) env[k] = process.env[k];
  Object.assign(env, { RUNNER_TEMP: job.runnerTemp, GITHUB_ACTIONS: 'true' }, extraEnv);
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  Object.assign(env, { GITHUB_OUTPUT: files.output, GITHUB_STATE: files.state, GITHUB_STEP_SUMMARY: files.summary });
  const child = spawn(node24(), [DIST], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const ended = new Promise<StepEnd>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
      resolve({
        code,
        signal,
        stdout,
        stderr,
        outputs: parseCommandFile(read(files.output)),
        state: parseCommandFile(read(files.state)),
        endedAt: Date.now(),
      });
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${DIST}`);
  return { pid: child.pid, child, ended, stdout: () => stdout };
}

export interface CancelReport {
  /** The signals sent, in order, with when (ms after the first). */
  readonly sent: { signal: NodeJS.Signals; atMs: number }[];
  readonly end: StepEnd;
}

function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/**
 * The runner's cancel (actions/runner src/Runner.Sdk/ProcessInvoker.cs, CancelAndKillProcessTree): kill(pid,
 * SIGINT), wait 7.5 s (_sigintTimeout) for the exit; kill(pid, SIGTERM), wait 2.5 s (_sigtermTimeout); then
 * Process.Kill() (SIGKILL), all to the step's pid only, never its process group. `first` SIGTERM starts the
 * ladder at its second rung (a runner or a user sending SIGTERM directly).
 */
export async function cancelLikeRunner(
  step: RunningStep,
  first: 'SIGINT' | 'SIGTERM' = 'SIGINT',
): Promise<CancelReport> {
  const started = Date.now();
  const sent: { signal: NodeJS.Signals; atMs: number }[] = [];
  const ladder: [NodeJS.Signals, number][] = [
    ['SIGINT', 7_500],
    ['SIGTERM', 2_500],
    ['SIGKILL', 30_000],
  ];
  for (const [signal, waitMs] of ladder.slice(first === 'SIGINT' ? 0 : 1)) {
    sent.push({ signal, atMs: Date.now() - started });
    try {
      process.kill(step.pid, signal);
    } catch {
      // already gone
    }
    const end = await within(step.ended, waitMs);
    if (end) return { sent, end };
  }
  throw new Error(`step ${step.pid} still running after SIGKILL`);
}

export interface EngineRecorder {
  /** DOCKER_HOST for the step: the recorder's socket, which forwards every byte to the engine. */
  readonly host: string;
  /** Every request line the step (and its docker children) sent the engine: "POST /images/x/tag?... HTTP/1.1". */
  requests(): string[];
  close(): Promise<void>;
}

const REQUEST_LINE = /(?:GET|HEAD|POST|PUT|DELETE) \/[^\s]* HTTP\/1\.[01]\r\n/g;

/**
 * A unix socket in front of the engine (`engineHost`, unix://...) that records the request lines going to it:
 * the action speaks the engine API itself (tag, image rm, reads), which a spy on the docker CLI cannot see.
 * Bodies (a docker load's tar) pass through unparsed; request lines are found in a sliding window of the stream.
 */
export async function recordEngine(dir: string, engineHost: string): Promise<EngineRecorder> {
  const target = engineHost.replace(/^unix:\/\//, '');
  const path = join(dir, 'engine.sock');
  const lines: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const engine = connect(target);
    sockets.add(client).add(engine);
    let window = '';
    let base = 0;
    const seen = new Set<number>();
    client.on('data', (chunk: Buffer) => {
      window += chunk.toString('latin1');
      for (const m of window.matchAll(REQUEST_LINE)) {
        if (seen.has(base + m.index)) continue;
        seen.add(base + m.index);
        lines.push(m[0].trimEnd());
      }
      if (window.length > 16384) {
        const cut = window.length - 8192;
        base += cut;
        window = window.slice(cut);
      }
    });
    client.pipe(engine).pipe(client);
    const end = () => {
      client.destroy();
      engine.destroy();
      sockets.delete(client);
      sockets.delete(engine);
    };
    client.on('error', end).on('close', end);
    engine.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    host: `unix://${path}`,
    requests: () => [...lines],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
