// Issue 18: the action's own requests honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY as the docker CLI does (Go's
// http.ProxyFromEnvironment). The committed dist/ runs against a TLS registry (docker-registry with a certificate
// from a throwaway CA, trusted through NODE_EXTRA_CA_CERTS) named `registry.proxytest.example:PORT`, a name only
// the forward proxy resolves (to 127.0.0.1): the action reaches it only through the proxy. What went through is
// read from the proxy's own record, never from the action's words.
//
// The push itself cannot succeed against that name here, and this is the real split of work: `docker login` and
// `docker push` are made by the engine's daemon, which has its own proxy settings (daemon.json `proxies`, or the
// service's environment) and never sees the step's environment; the rig's daemon has none and cannot resolve
// the test name. So the test asserts what the action's own client does through the proxy (the registry check
// passes: every tag's state is read), that the docker CLI got the proxy variables, and that the first request
// that does not go through the action's client is the daemon's login. A loopback registry, never proxied, takes
// the whole push.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startForwardProxy, type ForwardProxy } from '../../test/support/forward-proxy.js';
import { buildImage, describeEngine, removeImages, uniqueName, type Engine } from '../../test/support/images.js';
import { manifestDigest, startRegistry, type Registry } from '../../test/support/registry.js';
import { makeTestCa, type TestCa } from '../../test/support/test-ca.js';
import { createSpy } from '../../test/support/trust-spy.js';

const NAME = 'registry.proxytest.example';
const PROXY_USER = 'corp-user';
const PROXY_PASSWORD = 'proxy-pw-3d8a1f';

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

  beforeAll(async () => {
    ca = await makeTestCa([NAME]);
    tlsRegistry = await startRegistry({ tls: { certFile: ca.certFile, keyFile: ca.keyFile, ca: ca.ca } });
    loopbackRegistry = await startRegistry();
    fwd = await startForwardProxy({ hosts: { [NAME]: '127.0.0.1' }, users: { [PROXY_USER]: PROXY_PASSWORD } });
    src = `${uniqueName('rp-proxy')}:build`;
    await buildImage(eng, src, { files: { '/etc/proxy.txt': 'through the proxy' } });
    dir = mkdtempSync(join(tmpdir(), 'rp-proxy-'));
  });
  afterAll(async () => {
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

  test("HTTPS_PROXY: the action's own registry check reaches a name only the proxy resolves; docker gets the variables", async () => {
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
    // the action's own check passed (its failure says "did not answer in time or at all"): docker login was next
    expect(r.stdout).not.toContain('did not answer in time or at all');
    // docker login got the step's proxy variables (the CLI would use them for a client-side login)...
    const login = spy.calls().find((c) => c.command === 'docker' && c.args[0] === 'login');
    expect(login?.env.HTTPS_PROXY).toBe(proxyUrl);
    expect(login?.env.NO_PROXY).toBe('internal.example');
    // ...but the login is the daemon's, which has no proxy settings on this rig and cannot resolve the name
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^::error title=.*Docker said: .*lookup registry\.proxytest\.example .*no such host/m);
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

  test('NO_PROXY naming the domain: the action goes direct, and the proxy sees nothing', async () => {
    const r = await run(tlsRegistry, namedRegistry(), '1.0.2', {
      HTTPS_PROXY: fwd.urlWith(PROXY_USER, PROXY_PASSWORD),
      NO_PROXY: 'localhost,.proxytest.example',
    });
    expect(fwd.tunnels).toEqual([]);
    expect(fwd.refused).toEqual([]);
    // direct, the test name does not resolve: the registry check fails as it would without a proxy
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^::error title=Registry unreachable::.* did not answer in time or at all: .*ENOTFOUND/m);
    expect(r.stdout).not.toContain('through the proxy');
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
