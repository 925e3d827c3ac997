// Test images built on a real engine from nothing (FROM scratch): nothing can be pulled here.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';

const execFileP = promisify(execFile);

export interface Engine {
  readonly name: 'A' | 'B';
  readonly host: string;
  readonly label: string;
}

/** The engines the rig (test/rig/engines.sh) started, from .rig/engines.env. */
export function rigEngines(): Engine[] {
  const file = resolve(process.cwd(), '.rig/engines.env');
  const env = existsSync(file) ? readFileSync(file, 'utf8') : 'ENGINE_A=unix:///var/run/docker.sock\n';
  const engines: Engine[] = [];
  const a = /^ENGINE_A=(.+)$/m.exec(env);
  const b = /^ENGINE_B=(.+)$/m.exec(env);
  if (a) engines.push({ name: 'A', host: a[1], label: 'engine A (Docker 20.10, classic store)' });
  if (b) engines.push({ name: 'B', host: b[1], label: 'engine B (Docker 28, containerd store)' });
  return engines;
}

export function engine(name: 'A' | 'B'): Engine {
  const e = rigEngines().find((x) => x.name === name);
  if (!e) throw new Error(`engine ${name} is not running: run test/rig/engines.sh all`);
  return e;
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
