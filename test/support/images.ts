// Test images built on a real engine from nothing (FROM scratch): nothing can be pulled here.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';

const execFileP = promisify(execFile);

export type EngineName = 'A' | 'B';

export interface Engine {
  readonly name: EngineName;
  readonly host: string;
  readonly label: string;
}

/** The command that brings the rig up; every missing-engine message names it. */
export const RIG_COMMAND = 'sudo bash test/rig/engines.sh all';

/**
 * What each engine of the rig must be. The tests for one store must never run on the other, so an engine is
 * recognised by what it answers (`docker info`: DriverStatus `driver-type` names the containerd snapshotter
 * on the containerd image store), not by which socket it sits on.
 */
const RIG: Record<EngineName, { defaultHost: string; store: 'classic' | 'containerd'; label: string }> = {
  A: { defaultHost: 'unix:///var/run/docker.sock', store: 'classic', label: 'engine A (Docker 20.10, classic store)' },
  B: {
    defaultHost: 'unix:///run/rp-engine-b/docker.sock',
    store: 'containerd',
    label: 'engine B (Docker 28, containerd store)',
  },
};

interface Probe {
  readonly engine?: Engine;
  /** Why the engine cannot be used, with the command that fixes it. */
  readonly problem?: string;
}

const probes = new Map<EngineName, Probe>();

/** Where the rig says engine `name` listens (.rig/engines.env, written by test/rig/engines.sh), else its default. */
function rigHost(name: EngineName): string {
  const file = resolve(process.cwd(), '.rig/engines.env');
  const env = existsSync(file) ? readFileSync(file, 'utf8') : '';
  return new RegExp(`^ENGINE_${name}=(.+)$`, 'm').exec(env)?.[1].trim() || RIG[name].defaultHost;
}

/** Asks the engine at its address what it is; cached for the life of the test file. */
export function probeEngine(name: EngineName): Probe {
  const known = probes.get(name);
  if (known) return known;
  const want = RIG[name];
  const host = rigHost(name);
  const fix = `run \`${RIG_COMMAND}\``;
  let probe: Probe;
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host };
    delete env.DOCKER_CONTEXT;
    const out = execFileSync('docker', ['info', '--format', '{{json .DriverStatus}}\t{{.ServerVersion}}'], {
      env,
      encoding: 'utf8',
      timeout: 20_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [status, version] = out.trim().split('\t');
    const driverType = (JSON.parse(status || 'null') as [string, string][] | null)?.find(([k]) => k === 'driver-type');
    const store = /containerd\.snapshotter/.test(driverType?.[1] ?? '') ? 'containerd' : 'classic';
    probe =
      store === want.store
        ? { engine: { name, host, label: want.label } }
        : {
            problem:
              `engine ${name} is not the ${want.store} image store: ${host} answers with Docker ${version} ` +
              `on the ${store} store; ${fix}`,
          };
  } catch (e) {
    const err = e as { stderr?: string; message: string; code?: string };
    probe = { problem: `engine ${name} not running (${why(err.code, err.stderr || err.message)} at ${host}): ${fix}` };
  }
  probes.set(name, probe);
  return probe;
}

/** docker info's failure in a few words, for a test name. */
function why(code: string | undefined, text: string): string {
  if (code === 'ENOENT') return 'no docker CLI';
  if (code === 'ETIMEDOUT') return 'docker info timed out';
  if (/permission denied/i.test(text)) return 'permission denied';
  if (/no such file|connection refused|cannot connect|is the docker daemon running/i.test(text))
    return 'nothing answers';
  return text.trim().split('\n').pop()?.replace(/\s+/g, ' ').slice(0, 80) ?? 'docker info failed';
}

/** The rig's engines that answer and are what they should be (A: classic store, B: containerd store). */
export function rigEngines(): Engine[] {
  return (['A', 'B'] as const).flatMap((n) => probeEngine(n).engine ?? []);
}

/**
 * Engine `name`, checked. Safe to call while jest collects tests: when the engine is missing, the first use of
 * its `host` throws with the reason and the command that brings the rig up (never another engine instead).
 */
export function engine(name: EngineName): Engine {
  const { engine: found, problem } = probeEngine(name);
  if (found) return found;
  return {
    name,
    label: RIG[name].label,
    get host(): string {
      throw new Error(problem);
    },
  };
}

/** Under CI a missing engine fails; elsewhere it is a visible skip. */
function strict(): boolean {
  return /^(1|true|yes)$/i.test(process.env.CI ?? '');
}

/**
 * describe(title) on engine `name`. When the engine is missing the body is not run: the block holds one test
 * named after the reason, skipped (or failing, under CI), so the report shows what did not run and why.
 */
export function describeEngine(name: EngineName, title: string, fn: (eng: Engine) => void): void {
  const { engine: found, problem } = probeEngine(name);
  if (found) {
    describe(title, () => fn(found));
  } else if (strict()) {
    describe(title, () =>
      test(problem as string, () => {
        throw new Error(problem);
      }),
    );
  } else {
    // jest prints only a count of skipped tests unless --verbose: say which block did not run, and why
    process.stderr.write(`[rig] SKIPPED "${title}" (engine ${name}): ${problem} (under CI=true this fails)\n`);
    describe(title, () => test.skip(problem as string, () => undefined));
  }
}

/** describeEngine for each engine of the rig, A then B; `$label` in the title becomes the engine's label. */
export function describeEachEngine(title: string, fn: (eng: Engine) => void): void {
  for (const name of ['A', 'B'] as const) describeEngine(name, title.replace('$label', RIG[name].label), fn);
}

export async function docker(host: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await execFileP('docker', args, {
      env: { ...process.env, DOCKER_HOST: host, ...extraEnv },
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout.trim();
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`docker ${args.join(' ')}: ${err.stderr || err.message}`, { cause: e });
  }
}

export interface BuildOptions {
  /** path in the image -> content or a size of random bytes; each file is its own COPY layer. */
  readonly files: Record<string, Buffer | string | number>;
  /** classic: DOCKER_BUILDKIT=0 docker build; buildkit: docker buildx build --load (default attestations). */
  readonly builder?: 'classic' | 'buildkit';
  readonly extraBuildArgs?: string[];
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function buildImage(e: Engine, ref: string, opts: BuildOptions): Promise<string> {
  const ctx = mkdtempSync(join(tmpdir(), 'rp-ctx-'));
  try {
    const lines = ['FROM scratch'];
    Object.entries(opts.files).forEach(([path, content], i) => {
      const data = typeof content === 'number' ? randomBytes(content) : Buffer.from(content);
      writeFileSync(join(ctx, `f${i}`), data);
      lines.push(`COPY f${i} ${path}`);
    });
    lines.push('CMD ["/nothing"]');
    writeFileSync(join(ctx, 'Dockerfile'), `${lines.join('\n')}\n`);
    const builder = opts.builder ?? (e.name === 'A' ? 'classic' : 'buildkit');
    if (builder === 'classic') {
      await docker(e.host, ['build', '-q', '-t', ref, ...(opts.extraBuildArgs ?? []), ctx], { DOCKER_BUILDKIT: '0' });
    } else {
      await docker(e.host, ['buildx', 'build', '-q', '--load', '-t', ref, ...(opts.extraBuildArgs ?? []), ctx]);
    }
    return ref;
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

export async function removeImages(e: Engine, refs: string[]): Promise<void> {
  if (refs.length) await docker(e.host, ['image', 'rm', '-f', ...refs]).catch(() => undefined);
}

export async function imageExists(e: Engine, ref: string): Promise<boolean> {
  return docker(e.host, ['image', 'inspect', ref]).then(
    () => true,
    () => false,
  );
}
