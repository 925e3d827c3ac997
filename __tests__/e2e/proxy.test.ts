// Issue 18: the action's own requests honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY as the docker CLI does (Go's
// http.ProxyFromEnvironment). The committed dist/ runs against a TLS registry (docker-registry with a certificate
// from a throwaway CA, trusted through NODE_EXTRA_CA_CERTS) named `registry.proxytest.example:PORT`, a name only
// the forward proxy resolves (to 127.0.0.1): the action reaches it only through the proxy. What went through is
// read from the proxy's own record, never from the action's words.
//
// The split of work is real: `docker login` and `docker push` are made by the engine's daemon, which has its own
// proxy settings (daemon.json `proxies`, or the service's environment) and never sees the step's environment; the
// rig's daemon has none and connects directly. So the test's setup maps the name to 127.0.0.1 on the machine
// (/etc/hosts: no lookup of it ever leaves the machine, for the daemon or for the action going direct) and lets the
// daemon trust the test CA for that registry (/etc/docker/certs.d/NAME:PORT/ca.crt), both removed afterwards. The
// action's own requests still go through the proxy (the name is no loopback literal): the proxy's record shows them,
// and the daemon's push shows in the registry. A loopback registry is never proxied.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startForwardProxy, type ForwardProxy } from '../../test/support/forward-proxy.js';
import { buildImage, describeEngine, removeImages, uniqueName, type Engine } from '../../test/support/images.js';
import { manifestDigest, MANIFEST_MEDIA_TYPES, startRegistry, type Registry } from '../../test/support/registry.js';
import { request } from 'node:https';
import { makeTestCa, type TestCa } from '../../test/support/test-ca.js';
import { createSpy } from '../../test/support/trust-spy.js';

const NAME = 'registry.proxytest.example';
const PROXY_USER = 'corp-user';
const PROXY_PASSWORD = 'proxy-pw-3d8a1f';

const HOSTS = '/etc/hosts';
const HOSTS_LINE = `127.0.0.1 ${NAME} # replicated-push proxy e2e`;

/** The test name resolves to 127.0.0.1 on this machine while the suite runs (root: the rig's tests run as root). */
function mapName(on: boolean): void {
  const kept = readFileSync(HOSTS, 'utf8')
    .split('\n')
    .filter((l) => l !== HOSTS_LINE);
  if (on) kept.splice(kept.length && kept[kept.length - 1] === '' ? kept.length - 1 : kept.length, 0, HOSTS_LINE);
  writeFileSync(HOSTS, kept.join('\n'));
}

/** What a tag of the TLS registry resolves to, asked with the test CA (the support's fetch helpers cannot trust it). */
function tlsDigest(reg: Registry, ca: Buffer, repo: string, tag: string): Promise<string | null> {
  const [user, pass] = Object.entries(reg.users)[0];
  return new Promise((resolve, reject) => {
    const req = request(
      `${reg.url}/v2/${repo}/manifests/${tag}`,
      {
        method: 'HEAD',
        ca,
        timeout: 10_000,
        headers: {
          Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
          Accept: MANIFEST_MEDIA_TYPES.join(', '),
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? String(res.headers['docker-content-digest'] ?? '') : null);
      },
    );
    req.on('timeout', () => req.destroy(new Error('registry HEAD timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Lines of every file and stream of the run that hold `secret`. */
function leaks(run: StepRun, secret: string): string[] {
  return [run.stdout, run.stderr, ...Object.values(run.files)]
    .flatMap((t) => t.split('\n'))
    .filter((l) => l.includes(secret) && !l.startsWith('::add-mask::'));
}

describeEngine('A', 'proxy environment (engine A)', (eng: Engine) => {
  let ca: TestCa;
  let tlsRegistry: Registry;
  let loopbackRegistry: Registry;
  let fwd: ForwardProxy;
  let src: string;
  let dir: string;
  let certsDir: string | undefined;

  beforeAll(async () => {
    ca = await makeTestCa([NAME]);
    tlsRegistry = await startRegistry({ tls: { certFile: ca.certFile, keyFile: ca.keyFile, ca: ca.ca } });
    mapName(true);
    certsDir = `/etc/docker/certs.d/${NAME}:${new URL(tlsRegistry.url).port}`;
    mkdirSync(certsDir, { recursive: true });
    writeFileSync(join(certsDir, 'ca.crt'), ca.ca);
    loopbackRegistry = await startRegistry();
    fwd = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' }, users: { [PROXY_USER]: PROXY_PASSWORD } });
    src = `${uniqueName('rp-proxy')}:build`;
    await buildImage(eng, src, { files: { '/etc/proxy.txt': 'through the proxy' } });
    dir = mkdtempSync(join(tmpdir(), 'rp-proxy-'));
  });
  afterAll(async () => {
    mapName(false);
    if (certsDir) rmSync(certsDir, { recursive: true, force: true });
    await removeImages(eng, [src]);
    await fwd?.stop();
    await tlsRegistry?.stop();
    await loopbackRegistry?.stop();
    ca?.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    fwd.tunnels.length = 0;
    fwd.requests.length = 0;
    fwd.refused.length = 0;
  });

  const namedRegistry = () => `${NAME}:${new URL(tlsRegistry.url).port}`;
  const user = (reg: Registry) => Object.entries(reg.users)[0];

  function run(reg: Registry, registry: string, tag: string, env: NodeJS.ProcessEnv): Promise<StepRun> {
    const [username, token] = user(reg);
    const job = new Job();
    return job
      .main(
        // retries 0: each failure here is the final answer, and a retry would only repeat it
        { 'app-slug': 'my-app', image: src, 'target-image': 'worker', tag, token, username, registry, retries: '0' },
        { env: { DOCKER_HOST: eng.host, HOME: dir, NODE_EXTRA_CA_CERTS: ca.caFile, ...env } },
      )
      .finally(() => job.cleanup());
  }

  test("HTTPS_PROXY: the action's own requests go through the proxy, docker gets the variables, the push lands", async () => {
    const spy = createSpy(join(dir, 'spy-1'));
    const proxyUrl = fwd.urlWith(PROXY_USER, PROXY_PASSWORD);
    const r = await run(tlsRegistry, namedRegistry(), '1.0.0', {
      HTTPS_PROXY: proxyUrl,
      NO_PROXY: 'internal.example',
      PATH: spy.path(),
    });
    // the proxy opened tunnels to the name for the action, with its credentials, and to nothing else: at least
    // the registry's 401 challenge and the authenticated question, each request over a tunnel of its own
    expect(fwd.tunnels.length).toBeGreaterThanOrEqual(2);
    expect(new Set(fwd.tunnels)).toEqual(new Set([namedRegistry()]));
    expect(fwd.refused).toEqual([]);
    // docker login got the step's proxy variables (the CLI would use them for a client-side login); the login and
    // the push themselves are the daemon's, direct on this rig
    const login = spy.calls().find((c) => c.command === 'docker' && c.args[0] === 'login');
    expect(login?.env.HTTPS_PROXY).toBe(proxyUrl);
    expect(login?.env.NO_PROXY).toBe('internal.example');
    expect({ code: r.code, error: r.stdout.match(/^::error.*$/m)?.[0] }).toEqual({ code: 0, error: undefined });
    // the registry holds what the action says it pushed, and the action's verification went through the proxy too
    expect(await tlsDigest(tlsRegistry, ca.ca, 'my-app/worker', '1.0.0')).toBe(r.outputs.digest);
    expect(leaks(r, PROXY_PASSWORD)).toEqual([]);
  });

  test('wrong proxy credentials: "Registry unreachable" naming the proxy and the variable, not the password', async () => {
    const r = await run(tlsRegistry, namedRegistry(), '1.0.1', {
      https_proxy: fwd.urlWith(PROXY_USER, 'not-the-pw-91c2'),
    });
    expect(fwd.tunnels).toEqual([]);
    expect(fwd.refused.length).toBeGreaterThanOrEqual(1);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^::error title=Registry unreachable::/m);
    expect(r.stdout).toContain(
      `the proxy answered 407 to CONNECT ${namedRegistry()}; check the credentials in https_proxy (through the proxy 127.0.0.1:${new URL(fwd.url).port} from https_proxy)`,
    );
    expect(leaks(r, 'not-the-pw-91c2')).toEqual([]);
  });

  test('a proxy the action cannot use: "Proxy setting unusable" naming the variable at once, not the password', async () => {
    const r = await run(tlsRegistry, namedRegistry(), '1.0.3', {
      HTTPS_PROXY: `socks5://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:1080`,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^::error title=Proxy setting unusable::.*HTTPS_PROXY names a socks5:\/\/ proxy \(127\.0\.0\.1:1080\); the action's own client speaks to http:\/\/ proxies only/m,
    );
    expect(r.stdout).not.toContain('retrying');
    expect(leaks(r, PROXY_PASSWORD)).toEqual([]);
    expect(leaks(r, PROXY_USER)).toEqual([]);
  });

  test('NO_PROXY naming the domain: the action goes direct, the proxy sees nothing, the push lands', async () => {
    const r = await run(tlsRegistry, namedRegistry(), '1.0.2', {
      HTTPS_PROXY: fwd.urlWith(PROXY_USER, PROXY_PASSWORD),
      NO_PROXY: 'localhost,.proxytest.example',
    });
    expect(fwd.tunnels).toEqual([]);
    expect(fwd.refused).toEqual([]);
    expect({ code: r.code, error: r.stdout.match(/^::error.*$/m)?.[0] }).toEqual({ code: 0, error: undefined });
    expect(await tlsDigest(tlsRegistry, ca.ca, 'my-app/worker', '1.0.2')).toBe(r.outputs.digest);
  });

  test('a loopback registry is never proxied: the whole push succeeds with both variables set', async () => {
    const r = await run(loopbackRegistry, loopbackRegistry.host, '2.0.0', {
      HTTPS_PROXY: fwd.urlWith(PROXY_USER, PROXY_PASSWORD),
      HTTP_PROXY: fwd.urlWith(PROXY_USER, PROXY_PASSWORD),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await manifestDigest(loopbackRegistry, 'my-app/worker', '2.0.0')).toBe(r.outputs.digest);
    expect([fwd.tunnels, fwd.requests, fwd.refused]).toEqual([[], [], []]);
  });
});
