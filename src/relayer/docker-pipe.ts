// relayerImage: `docker save IMAGE | relayer | docker load`, with the two docker processes spawned and piped
// directly (no shell), their exit codes checked and their stderr in the error when they fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { relayerArchive } from './relayer.js';
import type { RelayerOptions, RelayerReport } from './types.js';

const STDERR_KEEP = 16 * 1024;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly spawnError?: Error;
}

interface Docker {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
}

function runDocker(
  args: string[],
  env: NodeJS.ProcessEnv,
  stdio: { stdin: 'pipe' | 'ignore'; stdout: 'pipe' | 'collect' },
): Docker {
  const child = spawn('docker', args, { env, stdio: [stdio.stdin, 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-STDERR_KEEP);
  });
  if (stdio.stdout === 'collect')
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
    });
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', (spawnError) => resolve({ code: null, signal: null, stdout, stderr, spawnError }));
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exited };
}

function failure(what: string, exit: Exit): Error | null {
  if (exit.spawnError) return new Error(`${what} could not start: ${exit.spawnError.message}`);
  if (exit.code === 0) return null;
  const how = exit.signal ? `signal ${exit.signal}` : `exit ${exit.code}`;
  return new Error(`${what} failed (${how}): ${exit.stderr.trim() || '(no stderr)'}`);
}

type Stdin = NodeJS.WritableStream & {
  destroyed: boolean;
  once: NodeJS.EventEmitter['once'];
  off: NodeJS.EventEmitter['off'];
};

/** A stream that starts `docker load` on its first byte: an image that needs no change is never loaded. */
function lazyLoad(env: NodeJS.ProcessEnv): { stream: Writable; started: () => Docker | null } {
  let load: Docker | null = null;
  let broken: Error | null = null;
  const stdin = (): Stdin => {
    if (!load) {
      load = runDocker(['load'], env, { stdin: 'pipe', stdout: 'collect' });
      // EPIPE when docker load gives up reading: kept for the next write, its exit status says why
      load.child.stdin?.on('error', (e) => {
        broken ??= e;
      });
    }
    return load.child.stdin as unknown as Stdin;
  };
  // Node destroys a child's stdin, without an error, once the child exits: a write to it then gets no
  // 'drain', 'error' or 'close', so the state is checked before every write.
  const gone = (sink: Stdin) =>
    broken || sink.destroyed ? (broken ?? new Error('docker load exited before reading the whole archive')) : null;
  const stream = new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, cb) {
      const sink = stdin();
      const before = gone(sink);
      if (before) return cb(before);
      if (sink.write(chunk)) return cb();
      const settle = (e?: Error | null) => {
        sink.off('drain', onDrain);
        sink.off('error', onError);
        sink.off('close', onClose);
        cb(e);
      };
      const onDrain = () => settle();
      const onError = (e: Error) => settle(e);
      const onClose = () => settle(gone(sink));
      sink.once('drain', onDrain);
      sink.once('error', onError);
      sink.once('close', onClose);
    },
    final(cb) {
      if (!load) return cb();
      const sink = stdin();
      const before = gone(sink);
      if (before) return cb(before);
      let settled = false;
      const settle = (e?: Error | null) => {
        if (settled) return;
        settled = true;
        cb(e);
      };
      sink.once('finish', () => settle());
      sink.once('error', (e: Error) => settle(e));
      sink.once('close', () => settle(broken));
      sink.end();
    },
  });
  return { stream, started: () => load };
}

export async function relayerImage(
  image: string,
  opts: RelayerOptions & { env?: NodeJS.ProcessEnv },
): Promise<RelayerReport> {
  const env = opts.env ?? process.env;
  const save = runDocker(['save', image], env, { stdin: 'ignore', stdout: 'pipe' });
  const load = lazyLoad(env);
  // docker load exiting early surfaces as EPIPE on its stdin: the exit status below says why.
  let pipeError: Error | null = null;
  load.stream.on('error', (e) => {
    pipeError = e;
  });

  let report: RelayerReport;
  try {
    report = await relayerArchive(save.child.stdout as NodeJS.ReadableStream, load.stream, {
      ...opts,
      skipUnchanged: true,
    });
  } catch (e) {
    // docker's own complaint explains an archive that ended early or a load that stopped reading; a process
    // stopped here after the fact has nothing to say.
    const saveExit = await exitedOnItsOwn(save);
    const loading = load.started();
    const loadExit = loading ? await exitedOnItsOwn(loading) : null;
    throw (
      (saveExit && failure(`docker save ${image}`, saveExit)) ?? (loadExit && failure('docker load', loadExit)) ?? e
    );
  }
  const saved = failure(`docker save ${image}`, await save.exited);
  if (saved) throw saved;
  const started = load.started();
  if (started) {
    const loadErr = await loadFailure(started);
    if (loadErr) throw loadErr;
    if (pipeError) throw pipeError;
    opts.log((await started.exited).stdout.trim());
  } else if (image !== opts.tag) {
    const tagged = runDocker(['tag', image, opts.tag], env, { stdin: 'ignore', stdout: 'collect' });
    const err = failure(`docker tag ${image} ${opts.tag}`, await tagged.exited);
    if (err) throw err;
  }
  const inspect = runDocker(['image', 'inspect', '--format', '{{.Id}}', opts.tag], env, {
    stdin: 'ignore',
    stdout: 'collect',
  });
  const inspected = await inspect.exited;
  const err = failure(`docker image inspect ${opts.tag}`, inspected);
  if (err) throw err;
  return { ...report, imageId: inspected.stdout.trim() };
}

/** The exit of a process that ends within a grace period, or null after stopping it. */
async function exitedOnItsOwn(docker: Docker, graceMs = 2000): Promise<Exit | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), graceMs);
  });
  const exit = await Promise.race([docker.exited, timeout]);
  clearTimeout(timer);
  if (exit) return exit;
  docker.child.kill();
  await docker.exited;
  return null;
}

async function loadFailure(load: Docker | null): Promise<Error | null> {
  return load ? failure('docker load', await load.exited) : null;
}
