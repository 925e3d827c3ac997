// The fault proxy (test/support/fault-proxy.ts) proven against a real registry and real engines, so that the
// action's end-to-end tests can trust what it injects. Every docker command runs with its own DOCKER_CONFIG:
// ~/.docker is never touched. docker runs asynchronously: the proxy lives in this process, and a synchronous
// child would block it.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import {
  ATTESTATION_REJECTION,
  cloudflareError,
  NGINX_413_BODY,
  REJECTION_BODIES,
  startFaultProxy,
  type FaultProxy,
} from '../../test/support/fault-proxy.js';
import { describeEngine } from '../../test/support/images.js';
import { runProcess, type ProcessResult } from '../../test/support/process.js';
import { listTags, manifestDigest, rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';

const TOKEN = `fp-token-${randomBytes(6).toString('hex')}`;

class DockerCli {
  readonly configDir = mkdtempSync(join(tmpdir(), 'rpfp-config-'));
  private readonly refs = new Set<string>();

  constructor(readonly host: string) {}

  run(args: string[], input = '', env: NodeJS.ProcessEnv = {}): Promise<ProcessResult> {
    return runProcess('docker', args, {
      env: { ...process.env, ...env, DOCKER_HOST: this.host, DOCKER_CONFIG: this.configDir },
      input,
    });
  }

  async must(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    const r = await this.run(args, '', env);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} (${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout.trim();
  }

  login(host: string, username: string, password: string): Promise<ProcessResult> {
    return this.run(['login', host, '-u', username, '--password-stdin'], password);
  }

  /** A FROM-scratch image whose one layer is random, so no registry already has it (no cross-repo mount). */
  async build(opts: { buildkit?: boolean; layerBytes?: number } = {}): Promise<string> {
    const ref = `rpfp-${randomBytes(4).toString('hex')}:src`;
    const ctx = mkdtempSync(join(tmpdir(), 'rpfp-ctx-'));
    try {
      writeFileSync(join(ctx, 'f'), randomBytes(opts.layerBytes ?? 4_000));
      writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY f /f\n');
      this.refs.add(ref);
      if (opts.buildkit) await this.must(['buildx', 'build', '-q', '--load', '--provenance=mode=min', '-t', ref, ctx]);
      else await this.must(['build', '-q', '-t', ref, ctx], { DOCKER_BUILDKIT: '0' });
      return ref;
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  }

  async tag(src: string, dst: string): Promise<string> {
    this.refs.add(dst);
    await this.must(['tag', src, dst]);
    return dst;
  }

  push(ref: string, ...flags: string[]): Promise<ProcessResult> {
    return this.run(['push', ...flags, ref]);
  }

  async cleanup(): Promise<void> {
    if (this.refs.size) await this.run(['image', 'rm', '-f', ...this.refs]);
    rmSync(this.configDir, { recursive: true, force: true });
  }
}

function pushedDigest(r: ProcessResult): string | undefined {
  return /: digest: (sha256:[a-f0-9]{64}) size:/.exec(r.stdout)?.[1];
}

/** Everything docker printed, for assertions on the message and for the error classifier's tables. */
function output(r: ProcessResult): string {
  return `${r.stdout}${r.stderr}`;
}

function repoName(): string {
  return `fp/${randomBytes(3).toString('hex')}`;
}

describeEngine('A', 'fault proxy: engine A (Docker 20.10, classic store)', (eng) => {
  let upstream: Registry;
  let proxy: FaultProxy;
  let cli: DockerCli;

  beforeAll(async () => {
    upstream = await startRegistry();
    proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    cli = new DockerCli(eng.host);
    const login = await cli.login(proxy.host, `anyone-${randomBytes(3).toString('hex')}`, TOKEN);
    expect(login.code).toBe(0);
  }, 30_000);
  afterEach(() => proxy.clearFaults());
  afterAll(async () => {
    await cli?.cleanup();
    await proxy?.stop();
    await upstream?.stop();
  });

  async function pushNew(repo: string, tag = '1'): Promise<ProcessResult> {
    const ref = await cli.tag(await cli.build(), `${proxy.host}/${repo}:${tag}`);
    return cli.push(ref);
  }

  test('bearer auth with any username: the push goes through and the upstream holds the tag', async () => {
    const repo = repoName();
    const before = proxy.bytesUploaded;
    const r = await pushNew(repo, 'v1');
    expect(r.code).toBe(0);
    expect(await manifestDigest(upstream, repo, 'v1')).toBe(pushedDigest(r));
    expect(await listTags(upstream, repo)).toEqual(['v1']);
    // the engine fetched a token at the realm the challenge named, then used it
    expect(proxy.count('GET', /^\/token$/, 200)).toBeGreaterThanOrEqual(1);
    expect(proxy.count('PUT', /\/manifests\/v1$/, 201)).toBe(1);
    expect(proxy.bytesUploaded - before).toBeGreaterThan(4_000);
    expect(proxy.requests.filter((q) => q.reset || q.status === 0)).toEqual([]);
  }, 60_000);

  test('a wrong token fails login at the token endpoint', async () => {
    const other = new DockerCli(eng.host);
    try {
      const r = await other.login(proxy.host, 'anyone', 'not-the-token');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`Error response from daemon: Get "http://${proxy.host}/v2/": unauthorized`);
      expect(proxy.count('GET', /^\/token$/, 401)).toBeGreaterThanOrEqual(1);
    } finally {
      await other.cleanup();
    }
  }, 30_000);

  test('basic auth: listed usernames only; the upstream is sent its own credentials', async () => {
    const basic = await startFaultProxy({
      upstream,
      auth: { scheme: 'basic', token: TOKEN, usernames: ['vendor@example.com'] },
    });
    const other = new DockerCli(eng.host);
    try {
      expect((await other.login(basic.host, 'someone-else', TOKEN)).code).not.toBe(0);
      expect((await other.login(basic.host, 'vendor@example.com', TOKEN)).code).toBe(0);
      const repo = repoName();
      const r = await other.push(await other.tag(await cli.build(), `${basic.host}/${repo}:b`));
      // the upstream's htpasswd knows nothing of TOKEN: a green push means the proxy swapped the credentials
      expect(r.code).toBe(0);
      expect(await manifestDigest(upstream, repo, 'b')).toBe(pushedDigest(r));
      expect(basic.count('GET', /^\/token$/)).toBe(0);
    } finally {
      await other.cleanup();
      await basic.stop();
    }
  }, 60_000);

  test('a 503 once on blob uploads is retried by the engine and the push succeeds', async () => {
    proxy.addFault({ path: /\/blobs\/uploads\//, times: 1, action: { status: 503, body: 'upstream unavailable' } });
    const repo = repoName();
    const r = await pushNew(repo);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/: Retrying in 5 seconds/);
    expect(proxy.count(undefined, /\/blobs\/uploads\//, 503)).toBe(1);
    expect(await manifestDigest(upstream, repo, '1')).toBe(pushedDigest(r));
  }, 60_000);

  test('a connection reset part-way through a layer upload is retried by the engine', async () => {
    proxy.addFault({ method: 'PATCH', path: /\/blobs\/uploads\//, times: 1, action: { resetAfterBytes: 1_000 } });
    const repo = repoName();
    const r = await pushNew(repo);
    expect(r.code).toBe(0);
    const cut = proxy.requests.filter((q) => q.reset);
    expect(cut).toEqual([expect.objectContaining({ method: 'PATCH', status: 0 })]);
    expect(cut[0].requestBytes).toBeGreaterThanOrEqual(1_000);
    expect(await listTags(upstream, repo)).toEqual(['1']);
  }, 60_000);

  // On the manifest: engine A retries each layer 5 times over 50 s, but never a manifest PUT.
  test('a Cloudflare 524 fails the push, and docker names the status', async () => {
    proxy.addFault({ method: 'PUT', path: /\/manifests\//, action: cloudflareError(524) });
    const repo = repoName();
    const r = await pushNew(repo);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('received unexpected HTTP status: 524 unknown');
    expect(proxy.count('PUT', /\/manifests\//, 524)).toBe(1);
    expect(await listTags(upstream, repo)).toEqual([]);
  }, 60_000);

  test('a reset on the manifest PUT fails the push with EOF', async () => {
    proxy.addFault({ method: 'PUT', path: /\/manifests\//, action: { reset: true } });
    const repo = repoName();
    const r = await pushNew(repo);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Put "http://${proxy.host}/v2/${repo}/manifests/1": EOF`);
    expect(await listTags(upstream, repo)).toEqual([]);
  }, 60_000);

  test('a delay holds the request, then forwards it', async () => {
    proxy.addFault({ method: 'PUT', path: /\/manifests\//, times: 1, action: { delayMs: 1_500 } });
    const repo = repoName();
    const ref = await cli.tag(await cli.build(), `${proxy.host}/${repo}:1`);
    const started = Date.now();
    const r = await cli.push(ref);
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(await manifestDigest(upstream, repo, '1')).toBe(pushedDigest(r));
  }, 60_000);

  test('rejectAttestations lets a plain manifest through', async () => {
    proxy.rejectAttestations();
    const repo = repoName();
    const r = await pushNew(repo);
    expect(r.code).toBe(0);
    expect((await rawManifest(upstream, repo, '1'))?.mediaType).toBe(
      'application/vnd.docker.distribution.manifest.v2+json',
    );
  }, 60_000);

  test('a 400 MANIFEST_INVALID reaches engine A without its detail', async () => {
    proxy.addFault({
      method: 'PUT',
      path: /\/manifests\//,
      action: { status: 400, body: ATTESTATION_REJECTION, headers: { 'content-type': 'application/json' } },
    });
    const r = await pushNew(repoName());
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('manifest invalid: manifest invalid');
    expect(proxy.count('PUT', /\/manifests\//, 400)).toBe(1);
  }, 60_000);
});

describeEngine('B', 'fault proxy: engine B (Docker 28, containerd store)', (eng) => {
  let upstream: Registry;
  let proxy: FaultProxy;
  let cli: DockerCli;

  beforeAll(async () => {
    upstream = await startRegistry();
    proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
    cli = new DockerCli(eng.host);
    expect((await cli.login(proxy.host, 'any-name', TOKEN)).code).toBe(0);
  }, 30_000);
  afterEach(() => proxy.clearFaults());
  afterAll(async () => {
    await cli?.cleanup();
    await proxy?.stop();
    await upstream?.stop();
  });

  test('rejectAttestations: the index with provenance is refused, the platform manifest alone is accepted', async () => {
    proxy.rejectAttestations();
    const repo = repoName();
    const ref = await cli.tag(await cli.build({ buildkit: true }), `${proxy.host}/${repo}:1`);

    const whole = await cli.push(ref);
    expect(whole.code).not.toBe(0);
    // distribution's MANIFEST_INVALID with an empty detail: engine B prints the message alone
    expect(whole.stderr.trim()).toBe('error from registry: manifest invalid');
    expect(proxy.count('PUT', /\/manifests\//, 400)).toBeGreaterThanOrEqual(1);
    expect(await listTags(upstream, repo)).toEqual([]);

    const platform = await cli.push(ref, '--platform', 'linux/amd64');
    expect(platform.code).toBe(0);
    const held = await rawManifest(upstream, repo, '1');
    expect(held?.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(held?.digest).toBe(pushedDigest(platform));
    expect(JSON.stringify(held?.json)).not.toContain('in-toto');
  }, 120_000);

  // The lines the classifier's table (__tests__/unit/failure.test.ts) holds for engine B come from here.
  test.each([
    ['distribution', REJECTION_BODIES.distribution, 'error from registry: manifest invalid'],
    ['quay.io', REJECTION_BODIES.quay, 'error from registry: manifest invalid'],
    [
      'GitLab (blob unknown)',
      REJECTION_BODIES.blobUnknown(`sha256:${'ab'.repeat(32)}`),
      `error from registry: blob unknown to registry - sha256:${'ab'.repeat(32)}`,
    ],
  ])(
    "the index refused with %s's body: engine B prints it as the table says",
    async (_name, body, line) => {
      proxy.rejectAttestations(body);
      const repo = repoName();
      const r = await cli.push(await cli.tag(await cli.build({ buildkit: true }), `${proxy.host}/${repo}:1`));
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim()).toBe(line);
      expect(await listTags(upstream, repo)).toEqual([]);
    },
    60_000,
  );

  test('a 524 on a blob upload fails at once: engine B does not retry it', async () => {
    proxy.addFault({ method: 'PUT', path: /\/blobs\/uploads\//, action: cloudflareError(524) });
    const repo = repoName();
    const r = await cli.push(await cli.tag(await cli.build({ buildkit: true }), `${proxy.host}/${repo}:1`));
    expect(r.code).not.toBe(0);
    expect(output(r)).toMatch(/unexpected status from PUT request to http:\/\/\S+\/blobs\/uploads\/\S+ 524 unknown/);
    // blobs go up in parallel, so more than one may have met the 524; none was sent a second time
    const failed = proxy.requests.filter((q) => q.method === 'PUT' && q.status === 524).map((q) => q.path);
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(proxy.requests.filter((q) => q.method === 'PUT' && failed.includes(q.path))).toHaveLength(failed.length);
    expect(await listTags(upstream, repo)).toEqual([]);
  }, 60_000);

  test('a 503 once on a blob upload is retried by containerd and the push succeeds', async () => {
    proxy.addFault({ method: 'PUT', path: /\/blobs\/uploads\//, times: 1, action: { status: 503 } });
    const repo = repoName();
    const r = await cli.push(await cli.tag(await cli.build({ buildkit: true }), `${proxy.host}/${repo}:1`));
    expect(r.code).toBe(0);
    expect(proxy.count('PUT', /\/blobs\/uploads\//, 503)).toBe(1);
    expect(await manifestDigest(upstream, repo, '1')).toBe(pushedDigest(r));
  }, 60_000);
});

describe('fault proxy: plumbing (no engine)', () => {
  let upstream: Registry;
  beforeAll(async () => {
    upstream = await startRegistry();
  });
  afterAll(async () => {
    await upstream?.stop();
  });

  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

  test('without auth emulation the client credentials pass unchanged, and Location points at the proxy', async () => {
    const proxy = await startFaultProxy({ upstream });
    try {
      const anonymous = await fetch(`${proxy.url}/v2/`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      const [user, pass] = Object.entries(upstream.users)[0];
      const start = await fetch(`${proxy.url}/v2/fp/plumbing/blobs/uploads/`, {
        method: 'POST',
        headers: { Authorization: basic(user, pass) },
      });
      expect(start.status).toBe(202);
      expect(start.headers.get('location')).toMatch(new RegExp(`^${proxy.url}/v2/fp/plumbing/blobs/uploads/`));
      expect(start.headers.get('docker-upload-uuid')).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await proxy.stop();
    }
  });

  async function startUpload(proxy: FaultProxy, repo: string): Promise<string> {
    const [user, pass] = Object.entries(upstream.users)[0];
    const start = await fetch(`${proxy.url}/v2/${repo}/blobs/uploads/`, {
      method: 'POST',
      headers: { Authorization: basic(user, pass) },
    });
    expect(start.status).toBe(202);
    return start.headers.get('location') as string;
  }

  test('every request has a start and an end time; a delay shows between them', async () => {
    const proxy = await startFaultProxy({ upstream });
    try {
      proxy.addFault({ path: /^\/v2\/$/, times: 1, action: { delayMs: 400 } });
      const before = Date.now();
      await fetch(`${proxy.url}/v2/`);
      await fetch(`${proxy.url}/v2/`);
      const [held, next] = proxy.requests;
      expect(held.startedAt).toBeGreaterThanOrEqual(before);
      expect(held.endedAt - held.startedAt).toBeGreaterThanOrEqual(400);
      expect(next.startedAt).toBeGreaterThanOrEqual(held.endedAt);
      expect(next.endedAt).toBeGreaterThanOrEqual(next.startedAt);
      expect(held.userAgent).toMatch(/node/i); // fetch's undici; the action's own client sends none
    } finally {
      await proxy.stop();
    }
  });

  test('forward, then 524: the registry stores the blob, the client hears 524', async () => {
    const proxy = await startFaultProxy({ upstream });
    try {
      const [user, pass] = Object.entries(upstream.users)[0];
      const blob = randomBytes(50_000);
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      proxy.addFault({ method: 'PUT', path: /\/blobs\/uploads\//, action: { forwardThen: cloudflareError(524) } });
      const location = await startUpload(proxy, 'fp/late');
      const put = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`, {
        method: 'PUT',
        headers: { Authorization: basic(user, pass), 'Content-Type': 'application/octet-stream' },
        body: blob,
      });
      expect(put.status).toBe(524);
      expect(await put.text()).toBe('error code: 524');
      const entry = proxy.requests.find((q) => q.method === 'PUT');
      expect(entry).toMatchObject({ status: 524, upstreamStatus: 201, requestBytes: 50_000 });
      const held = await fetch(`${upstream.url}/v2/fp/late/blobs/${digest}`, {
        method: 'HEAD',
        headers: { Authorization: basic(user, pass) },
      });
      expect(held.status).toBe(200);
    } finally {
      await proxy.stop();
    }
  });

  test.each(['seconds', 'date'] as const)(
    'a rate limit (Retry-After as %s) refuses every request until it ends, then lets them through',
    async (form) => {
      const proxy = await startFaultProxy({ upstream });
      try {
        const limit = proxy.limitRate({ method: 'GET', path: /\/tags\/list$/, forMs: 1_500, form });
        expect((await fetch(`${proxy.url}/v2/`)).status).toBe(401); // not tripped yet
        const tripped = await fetch(`${proxy.url}/v2/fp/x/tags/list`);
        expect(tripped.status).toBe(429);
        expect(limit.trippedAt).toBeGreaterThan(0);
        const header = tripped.headers.get('retry-after') as string;
        if (form === 'seconds') expect(header).toBe('2');
        else {
          expect(new Date(header).getTime()).toBe(limit.until);
          expect(limit.until % 1000).toBe(0);
        }
        const other = await fetch(`${proxy.url}/v2/`); // another path, same client: still limited
        expect(other.status).toBe(429);
        expect((await other.json()) as unknown).toEqual({
          errors: [{ code: 'TOOMANYREQUESTS', message: 'too many requests', detail: null }],
        });
        await new Promise((r) => setTimeout(r, Math.max(0, limit.until - Date.now()) + 20));
        expect((await fetch(`${proxy.url}/v2/`)).status).toBe(401);
      } finally {
        await proxy.stop();
      }
    },
  );

  /** A PATCH whose body is written in 10 kB pieces (chunked when no length is declared), stopping once answered. */
  function patch(
    url: string,
    auth: string,
    size: number,
    declared: boolean,
  ): Promise<{ status: number; message: string; body: string; headers: http.IncomingHttpHeaders; sent: number }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { Authorization: auth, 'Content-Type': 'application/octet-stream' };
      if (declared) headers['Content-Length'] = String(size);
      const req = http.request(url, { method: 'PATCH', headers });
      let sent = 0;
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, message: res.statusMessage ?? '', body, headers: res.headers, sent });
          req.destroy();
        });
      });
      req.on('error', (e) => (answered ? undefined : reject(e)));
      const piece = randomBytes(10_000);
      const next = () => {
        if (answered) return;
        if (sent >= size) return void req.end();
        sent += piece.length;
        req.write(piece, () => setTimeout(next, 2));
      };
      next();
    });
  }

  test("limitBodies: nginx's 413 before the body is read, for a declared length or a chunked body over the limit; the registry sees neither, and a chunked body under it is forwarded whole", async () => {
    const proxy = await startFaultProxy({ upstream });
    try {
      const [user, pass] = Object.entries(upstream.users)[0];
      const auth = basic(user, pass);
      proxy.limitBodies(100_000);
      const location = await startUpload(proxy, 'fp/limit');
      // declared over the limit: answered at once, with a megabyte still to send
      const declared = await patch(location, auth, 1_000_000, true);
      expect({ status: declared.status, message: declared.message, body: declared.body }).toEqual({
        status: 413,
        message: 'Request Entity Too Large',
        body: NGINX_413_BODY,
      });
      expect(declared.headers).toMatchObject({ server: 'nginx', connection: 'close', 'content-type': 'text/html' });
      expect(declared.sent).toBeLessThan(1_000_000);
      // chunked: refused once the limit is passed
      const chunked = await patch(location, auth, 300_000, false);
      expect(chunked.status).toBe(413);
      expect(chunked.sent).toBeLessThan(300_000);
      // the registry holds nothing of either: the same Location still takes the upload from 0
      const small = await patch(location, auth, 60_000, false);
      expect({ status: small.status, range: small.headers.range }).toEqual({ status: 202, range: '0-59999' });
      expect(proxy.requests.filter((r) => r.method === 'PATCH').map((r) => [r.status, r.upstreamStatus])).toEqual([
        [413, 0],
        [413, 0],
        [202, 202],
      ]);
      expect(proxy.requests.filter((r) => r.method === 'PATCH')[2].requestBytes).toBe(60_000);
    } finally {
      await proxy.stop();
    }
  });

  test('stop() cuts a request held by a delay at once', async () => {
    const proxy = await startFaultProxy({ upstream });
    proxy.addFault({ path: /^\/v2\/$/, action: { delayMs: 60_000 } });
    const held = fetch(`${proxy.url}/v2/`).then(
      () => 'answered',
      () => 'cut',
    );
    while (proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    await proxy.stop();
    expect(await held).toBe('cut');
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
