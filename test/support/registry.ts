// A real registry (CNCF distribution, `docker-registry serve`) per test suite, with htpasswd auth, and helpers that
// ask the registry itself what it holds: assertions must not trust what docker or the action say was pushed.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface Registry {
  /** '127.0.0.1:PORT', as an image reference names it. */
  readonly host: string;
  /** 'http://127.0.0.1:PORT' ('https://' with the tls option: the fetch-based helpers below cannot trust its CA). */
  readonly url: string;
  /** The filesystem storage root. */
  readonly dataDir: string;
  /** username -> password, all accepted by the registry. */
  readonly users: Record<string, string>;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  readonly users?: Record<string, string>;
  /** Serve https with this certificate (test/support/test-ca.ts); `ca` is what the readiness check trusts. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly ca: Buffer };
}

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
] as const;

const START_TIMEOUT_MS = 10_000;
const STDERR_KEEP = 16_384;

/** A port nothing listens on right now (the OS picks it; another process could still take it before we do). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

async function htpasswdFile(users: Record<string, string>): Promise<string> {
  const lines = await Promise.all(
    Object.entries(users).map(async ([user, pass]) =>
      (await execFileP('htpasswd', ['-Bbn', user, pass])).stdout.trim(),
    ),
  );
  return `${lines.join('\n')}\n`;
}

function configYml(dir: string, port: number, tls?: RegistryOptions['tls']): string {
  // JSON is YAML: no quoting rules to get wrong for temp paths.
  return JSON.stringify(
    {
      version: 0.1,
      log: { level: 'warn', formatter: 'text' },
      storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: false } },
      // a fixed secret: without one the registry warns on every start
      http: {
        addr: `127.0.0.1:${port}`,
        secret: randomBytes(16).toString('hex'),
        ...(tls ? { tls: { certificate: tls.certFile, key: tls.keyFile } } : {}),
      },
      auth: { htpasswd: { realm: 'rp-test-registry', path: join(dir, 'htpasswd') } },
    },
    null,
    2,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function pingStatus(url: string, ca?: Buffer): Promise<number | null> {
  if (ca) return httpsStatus(`${url}/v2/`, ca);
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return null;
  }
}

/** The status of a GET over https trusting `ca` (fetch takes no CA), or null. */
function httpsStatus(url: string, ca: Buffer): Promise<number | null> {
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? null);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/** Resolves once GET /v2/ answers 401 (auth on, storage up); rejects if the process dies or time runs out. */
async function waitUntilUp(child: ChildProcess, url: string, stderr: () => string, ca?: Buffer): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) before serving:\n${stderr()}`);
    }
    if ((await pingStatus(url, ca)) === 401) return;
    await sleep(100);
  }
  throw new Error(`docker-registry did not answer 401 on ${url}/v2/ within ${START_TIMEOUT_MS} ms:\n${stderr()}`);
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const users = opts.users ?? { 'rp-test': randomBytes(12).toString('hex') };
  const dir = mkdtempSync(join(tmpdir(), 'rp-registry-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  writeFileSync(join(dir, 'htpasswd'), await htpasswdFile(users));
  const port = await freePort();
  writeFileSync(join(dir, 'config.yml'), configYml(dir, port, opts.tls));

  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-STDERR_KEEP);
  });
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const host = `127.0.0.1:${port}`;
  const url = `${opts.tls ? 'https' : 'http'}://${host}`;
  const stop = async () => {
    await kill(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([waitUntilUp(child, url, () => stderr, opts.tls?.ca), spawnError]);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host, url, dataDir, users, stop };
}

// --- what the registry holds -------------------------------------------------------------------------------

function basicAuth(reg: Registry): string {
  const [user, pass] = Object.entries(reg.users)[0] ?? ['', ''];
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

function registryFetch(
  reg: Registry,
  path: string,
  init: { method?: string; accept?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = { Authorization: basicAuth(reg) };
  if (init.accept) headers.Accept = init.accept;
  return fetch(`${reg.url}${path}`, { method: init.method ?? 'GET', headers });
}

async function unexpected(res: Response, what: string): Promise<Error> {
  return new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
}

/** The digest a tag (or digest) resolves to, or null when the registry does not have it. */
export async function manifestDigest(reg: Registry, repo: string, tag: string): Promise<string | null> {
  const res = await registryFetch(reg, `/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    accept: MANIFEST_MEDIA_TYPES.join(', '),
  });
  if (res.status === 404) return null;
  if (!res.ok) throw await unexpected(res, `HEAD ${repo}:${tag}`);
  return res.headers.get('docker-content-digest');
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Record<string, string>;
  readonly platform?: { os: string; architecture: string; variant?: string };
}

/** A manifest or an index: the fields tests read. */
export interface ManifestJson {
  readonly schemaVersion?: number;
  readonly mediaType?: string;
  readonly config?: Descriptor;
  readonly layers?: Descriptor[];
  readonly manifests?: Descriptor[];
}

export interface RawManifest {
  readonly mediaType: string;
  readonly json: ManifestJson;
  readonly digest: string;
}

/** The manifest exactly as stored (no conversion: every manifest type is accepted). */
export async function rawManifest(reg: Registry, repo: string, ref: string): Promise<RawManifest | null> {
  const res = await registryFetch(reg, `/v2/${repo}/manifests/${ref}`, { accept: MANIFEST_MEDIA_TYPES.join(', ') });
  if (res.status === 404) return null;
  if (!res.ok) throw await unexpected(res, `GET ${repo}@${ref}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  const json = JSON.parse(bytes.toString('utf8'));
  return {
    mediaType: res.headers.get('content-type') ?? json.mediaType ?? '',
    json,
    digest: res.headers.get('docker-content-digest') ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
  };
}

/** The repository's tags; [] when the repository does not exist. */
export async function listTags(reg: Registry, repo: string): Promise<string[]> {
  const res = await registryFetch(reg, `/v2/${repo}/tags/list`);
  if (res.status === 404) return [];
  if (!res.ok) throw await unexpected(res, `tags of ${repo}`);
  const body = (await res.json()) as { tags?: string[] | null };
  return body.tags ?? [];
}

/** A manifest's or a blob's exact bytes as the registry serves them (`kind` picks the endpoint); null on 404. */
export async function rawBytes(
  reg: Registry,
  repo: string,
  kind: 'manifests' | 'blobs',
  ref: string,
): Promise<{ bytes: Buffer; contentType: string } | null> {
  const res = await registryFetch(reg, `/v2/${repo}/${kind}/${ref}`, { accept: MANIFEST_MEDIA_TYPES.join(', ') });
  if (res.status === 404) return null;
  if (!res.ok) throw await unexpected(res, `GET ${repo} ${kind} ${ref}`);
  return { bytes: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get('content-type') ?? '' };
}
