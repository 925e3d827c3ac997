// Every docker CLI call the action makes, one function each. Secrets go through stdin only; commands run
// with the run's own DOCKER_CONFIG so credentials never touch ~/.docker.
import { spawn } from 'node:child_process';
import * as exec from '@actions/exec';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class DockerError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly result: CommandResult,
  ) {
    super(
      `docker ${args[0]} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' ')}`,
    );
    this.name = 'DockerError';
  }
  get output(): string {
    return `${this.result.stdout}\n${this.result.stderr}`;
  }
}

export interface ImageInspect {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Os: string;
  Architecture: string;
  Variant?: string;
  Size: number;
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

export interface LineSink {
  (line: string, stream: 'stdout' | 'stderr'): void;
}

export class Docker {
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  private async run(args: string[], opts: { input?: string | Buffer; onLine?: LineSink } = {}): Promise<CommandResult> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await exec.exec('docker', args, {
      env: this.env as Record<string, string>,
      silent: true,
      ignoreReturnCode: true,
      input: opts.input === undefined ? undefined : Buffer.from(opts.input),
      listeners: {
        stdline: (l) => {
          out.push(l);
          opts.onLine?.(l, 'stdout');
        },
        errline: (l) => {
          err.push(l);
          opts.onLine?.(l, 'stderr');
        },
      },
    });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  }

  private async check(
    args: string[],
    opts: { input?: string | Buffer; onLine?: LineSink } = {},
  ): Promise<CommandResult> {
    const result = await this.run(args, opts);
    if (result.code !== 0) throw new DockerError(args, result);
    return result;
  }

  async login(registry: string, username: string, secret: string): Promise<void> {
    await this.check(['login', registry, '--username', username, '--password-stdin'], { input: secret });
  }

  async inspectImage(image: string): Promise<ImageInspect> {
    const { stdout } = await this.check(['image', 'inspect', '--format', '{{json .}}', image]);
    return JSON.parse(stdout) as ImageInspect;
  }

  /** `docker history` rows, newest first: uncompressed size in bytes and the creating instruction. */
  async history(image: string): Promise<{ size: number; createdBy: string }[]> {
    const { stdout } = await this.check(['history', '--no-trunc', '-H=false', '--format', '{{json .}}', image]);
    return stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const row = JSON.parse(line) as { Size: string | number; CreatedBy: string };
        return { size: Number(row.Size) || 0, createdBy: row.CreatedBy };
      });
  }

  /**
   * Version and image store from the engine API. `docker info` would also run every CLI plugin to list it
   * (100+ ms with buildx installed); the API answers in a few.
   */
  async engineFacts(): Promise<EngineFacts> {
    const [version, info] = (await Promise.all([this.engineApiGet('/version'), this.engineApiGet('/info')])) as [
      { Version: string; ApiVersion: string },
      { DriverStatus?: [string, string][] | null },
    ];
    const containerdStore = (info.DriverStatus ?? []).some(
      ([k, v]) => k === 'driver-type' && v.includes('containerd.snapshotter'),
    );
    return { serverVersion: version.Version, apiVersion: version.ApiVersion, containerdStore };
  }

  /** An image with one empty layer, made from an empty tar on stdin: nothing is pulled. */
  async importEmpty(ref: string, label: string): Promise<void> {
    await this.check(['import', '--change', `LABEL ${label}`, '--message', 'replicated-push tombstone', '-', ref], {
      input: Buffer.alloc(1024), // a tar archive's end marker: two zero blocks
    });
  }

  async tag(source: string, target: string): Promise<void> {
    await this.check(['tag', source, target]);
  }

  /** Best effort: a leftover local image is untidy, not a failure. */
  async removeImage(ref: string): Promise<void> {
    await this.run(['image', 'rm', ref]);
  }

  /** Pushes one reference; a failure comes back as a result, not a throw, so it can be classified. */
  async push(ref: string, opts: { platform?: string; onLine?: LineSink } = {}): Promise<CommandResult> {
    const args = ['push', ...(opts.platform ? ['--platform', opts.platform] : []), ref];
    return this.run(args, { onLine: opts.onLine });
  }

  /**
   * GET on the engine API through `docker system dial-stdio`, so DOCKER_HOST, contexts, ssh and TLS all apply as
   * they do for the CLI. stdin stays open until the response ends: closing it early cancels the request.
   */
  async engineApiGet(path: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const child = spawn('docker', ['system', 'dial-stdio'], { env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
      const chunks: Buffer[] = [];
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => chunks.push(c));
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      child.on('error', reject);
      child.stdout.on('end', () => {
        child.stdin.end();
        const raw = Buffer.concat(chunks).toString('utf8');
        const split = raw.indexOf('\r\n\r\n');
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
        if (!status || split < 0) return reject(new Error(`engine API ${path}: no HTTP response ${stderr.trim()}`));
        const body = raw.slice(split + 4);
        if (status[1] !== '200') return reject(new Error(`engine API ${path}: HTTP ${status[1]} ${body.trim()}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`engine API ${path}: ${(e as Error).message}`));
        }
      });
      child.stdin.write(`GET ${path} HTTP/1.0\r\nHost: docker\r\n\r\n`);
    });
  }
}
