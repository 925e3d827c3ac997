// The check after the push (issue 10 item 10, issue 11 item 4): the action asks the registry, not docker, what the tag
// points to. The fault proxy answers that question wrongly after a push the registry did accept, so a verify() that
// did nothing would pass these tests' pushes and fail their assertions. Only the action's own client is faulted:
// it sends no User-Agent, docker and containerd do.
import { existsSync, readdirSync } from 'node:fs';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startFaultProxy, type FaultProxy, type FaultRequest } from '../../test/support/fault-proxy.js';
import { buildImage, describeEngine, removeImages, uniqueName } from '../../test/support/images.js';
import { manifestDigest, startRegistry, type Registry } from '../../test/support/registry.js';

const TOKEN = 'verify-token-5d1e9b';
const MANIFEST = /\/v2\/.+\/manifests\//;
const TAG_HEAD = /\/v2\/verify\/[^/]+\/manifests\/1\.0\.0$/;
const OTHER_DIGEST = `sha256:${'0'.repeat(64)}`;

function errorLine(run: StepRun): string {
  return run.stdout.split('\n').find((l) => l.startsWith('::error')) ?? '';
}

describeEngine('A', 'verification after the push (engine A)', (eng) => {
  let upstream: Registry;
  let proxy: FaultProxy;
  const images: string[] = [];

  beforeAll(async () => {
    upstream = await startRegistry();
    proxy = await startFaultProxy({ upstream, auth: { scheme: 'bearer', token: TOKEN } });
  });
  afterEach(() => proxy.clearFaults());
  afterAll(async () => {
    await removeImages(eng, images);
    await proxy?.stop();
    await upstream?.stop();
  });

  /** The action's HEAD of the tag once the registry accepted the manifest (not the lookup before the push). */
  function afterThePush(repo: string): (r: FaultRequest) => boolean {
    return (r) =>
      !r.headers['user-agent'] &&
      proxy.requests.some(
        (q) => q.method === 'PUT' && q.path === `/v2/verify/${repo}/manifests/1.0.0` && q.status === 201,
      );
  }

  async function push(repo: string, opts: { noStepSummary?: boolean } = {}): Promise<{ run: StepRun; job: Job }> {
    const src = `${uniqueName('rp-verify')}:b`;
    images.push(src);
    await buildImage(eng, src, { files: { '/a': 4_000 } });
    const job = new Job();
    const run = await job.main(
      {
        'app-slug': 'verify',
        image: src,
        'target-image': repo,
        tag: '1.0.0',
        token: TOKEN,
        registry: proxy.host,
        'retry-delay': '200ms',
      },
      { env: { DOCKER_HOST: eng.host }, noStepSummary: opts.noStepSummary },
    );
    return { run, job };
  }

  function actionHeads(repo: string): number {
    return proxy.requests.filter(
      (q) => q.method === 'HEAD' && q.path === `/v2/verify/${repo}/manifests/1.0.0` && q.userAgent === '',
    ).length;
  }

  test('the tag answers 404 after the push: "Tag missing after push", though the registry holds it', async () => {
    proxy.addFault({
      method: 'HEAD',
      path: TAG_HEAD,
      match: afterThePush('gone'),
      action: { status: 404, headers: { 'content-type': 'application/json' } },
    });
    const { run, job } = await push('gone');
    expect(run.code).toBe(1);
    expect(errorLine(run)).toMatch(/^::error title=Tag missing after push::/);
    expect(errorLine(run)).toContain('verify/gone:1.0.0');
    // the push itself went through: only the check saw the 404
    expect(await manifestDigest(upstream, 'verify/gone', '1.0.0')).toMatch(/^sha256:/);
    expect(proxy.count('PUT', MANIFEST, 201)).toBeGreaterThanOrEqual(1);
    expect(proxy.count('HEAD', TAG_HEAD, 404)).toBeGreaterThanOrEqual(1);
    job.cleanup();
  });

  test('the tag answers another digest after the push: "Digest mismatch" naming both', async () => {
    proxy.addFault({
      method: 'HEAD',
      path: TAG_HEAD,
      match: afterThePush('moved'),
      action: {
        status: 200,
        headers: {
          'content-type': 'application/vnd.docker.distribution.manifest.v2+json',
          'docker-content-digest': OTHER_DIGEST,
        },
      },
    });
    const { run, job } = await push('moved');
    expect(run.code).toBe(1);
    const held = await manifestDigest(upstream, 'verify/moved', '1.0.0');
    expect(errorLine(run)).toMatch(/^::error title=Digest mismatch::/);
    expect(errorLine(run)).toContain(OTHER_DIGEST);
    expect(errorLine(run)).toContain(held as string);
    job.cleanup();
  });

  // Issue 11 item 4: a failed verification request after a good push is retried; only a real mismatch fails.
  test('a 503 on the check after a good push is asked again, and the run is green', async () => {
    proxy.addFault({
      method: 'HEAD',
      path: TAG_HEAD,
      times: 1,
      match: afterThePush('flaky'),
      action: { status: 503, body: '', headers: { 'content-type': 'text/plain' } },
    });
    const { run, job } = await push('flaky');
    expect(proxy.count('HEAD', TAG_HEAD, 503)).toBe(1);
    expect(run.code).toBe(0);
    expect(run.outputs.digest).toBe(await manifestDigest(upstream, 'verify/flaky', '1.0.0'));
    // asked again, not pushed again
    expect(proxy.count('PUT', /\/v2\/verify\/flaky\/manifests\//)).toBe(1);
    expect(actionHeads('flaky')).toBeGreaterThanOrEqual(3); // before the push, the 503, the good answer
    job.cleanup();
  });

  // Issue 11 item 4: the job summary is best effort; a runner without GITHUB_STEP_SUMMARY still gets a green push.
  test('a verified push on a runner without GITHUB_STEP_SUMMARY exits 0 with attempts 1', async () => {
    const { run, job } = await push('nosummary', { noStepSummary: true });
    expect(run.stdout + run.stderr).not.toMatch(/Unable to find environment variable for \$GITHUB_STEP_SUMMARY/);
    expect(run.code).toBe(0);
    expect(run.outputs.attempts).toBe('1');
    expect(run.outputs.digest).toBe(await manifestDigest(upstream, 'verify/nosummary', '1.0.0'));
    expect(proxy.count('PUT', /\/v2\/verify\/nosummary\/manifests\//, 201)).toBe(1);
    expect(existsSync(job.runnerTemp) ? readdirSync(job.runnerTemp) : []).toEqual([]);
    job.cleanup();
  });
});
