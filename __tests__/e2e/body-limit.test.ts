// Issue 19's 413 target through the action as a user runs it (dist/ on Node 24, INPUT_* variables, the runner's
// files): a 30 MB single-layer image of random bytes (gzip cannot shrink it), on each engine, pushed with the default
// inputs to the real registry (CNCF distribution 2.8.2) behind the fault proxy answering as nginx does over
// `client_max_body_size 8m` (limitBodies: 413 at once, nothing passed to the registry). docker push sends the layer
// in one request and meets the 413; the policy sends the next attempt through the action's chunked uploader, which
// halves its chunks below the limit within that attempt. What was pushed is read back from the registry itself
// (skopeo and the v2 API, not through the proxy), never from the action's words.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../../test/support/fault-proxy.js';
import { describeEachEngine, removeImages, uniqueName, type Engine } from '../../test/support/images.js';
import { manifestDigest, startRegistry, type Registry } from '../../test/support/registry.js';
import { buildOneLayerImage, digests, heldImage } from '../../test/support/trust-image.js';

const MiB = 1024 * 1024;
/** nginx's `client_max_body_size 8m`. */
const LIMIT = 8 * MiB;
const LAYER = 30 * 1_000_000;
const TOKEN = `body-limit-token-${randomBytes(8).toString('hex')}`;
const APP = 'bodylimit';

const uploadsOf = (proxy: FaultProxy, repo: string): ProxiedRequest[] =>
  proxy.requests.filter((r) => r.path.startsWith(`/v2/${repo}/blobs/uploads/`));
/** docker and containerd send a User-Agent; the action's own client sends none. */
const byDocker = (r: ProxiedRequest) => r.userAgent !== '';
const tail = (text: string, chars = 6000) => (text.length > chars ? `...${text.slice(-chars)}` : text);

/** `size` random bytes in files of at most 8 MiB: one layer of the image (buildOneLayerImage). */
function randomFiles(size: number): Record<string, Buffer | string> {
  const files: Record<string, Buffer | string> = { 'app.txt': 'body limit\n' };
  for (let i = 0, left = size; left > 0; i++, left -= 8 * MiB)
    files[`data/part-${i}.bin`] = randomBytes(Math.min(left, 8 * MiB));
  return files;
}

describeEachEngine('$label: a 30 MB layer behind a proxy that answers 413 to bodies over 8 MB', (eng: Engine) => {
  let reg: Registry;
  let proxy: FaultProxy;
  const images: string[] = [];
  const jobs: Job[] = [];

  beforeAll(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy({ upstream: reg, auth: { scheme: 'bearer', token: TOKEN } });
  });

  afterAll(async () => {
    await removeImages(eng, images);
    for (const j of jobs) j.cleanup();
    await proxy?.stop();
    await reg?.stop();
  });

  test('default inputs: pushed, attempts <= 2, the registry holds the image under the tag with the digest output', async () => {
    proxy.limitBodies(LIMIT);
    const files = randomFiles(LAYER);
    const src = `${uniqueName('rp-bodylimit')}:src`;
    images.push(src);
    await buildOneLayerImage(eng, src, files);
    const target = uniqueName('thirty');
    const repo = `${APP}/${target}`;
    const job = new Job();
    jobs.push(job);
    const started = Date.now();
    const run: StepRun = await job.main(
      {
        'app-slug': APP,
        image: src,
        'target-image': target,
        tag: '1.0.0',
        registry: proxy.host,
        username: 'service-account',
        token: TOKEN,
      },
      { env: { DOCKER_HOST: eng.host }, timeoutMs: 240_000 },
    );
    const elapsedMs = Date.now() - started;
    const uploads = uploadsOf(proxy, repo);
    const timeline = uploads.map(
      (u) =>
        `${u.method} ${u.requestBytes} -> ${u.status} ${byDocker(u) ? 'docker' : 'action'} ${u.endedAt ? `${u.endedAt - u.startedAt}ms` : 'still open (nginx lingers)'}`,
    );
    if (run.code !== 0) throw new Error(`the step exited ${run.code}:\n${tail(run.stdout)}\n${timeline.join('\n')}`);
    expect(Number(run.outputs.attempts)).toBeLessThanOrEqual(2);

    // the proxy refused a body (so this test can fail), and passed on none over the limit
    const refused = uploads.filter((u) => u.status === 413);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.every((u) => u.upstreamStatus === 0)).toBe(true);
    expect(uploads.filter((u) => u.upstreamStatus !== 0 && u.requestBytes > LIMIT)).toEqual([]);
    // the action's chunks after its last 413 all passed, each under the limit
    const actions = uploads.filter((u) => !byDocker(u));
    const lastRefusal = actions.map((u) => u.status).lastIndexOf(413);
    const after = actions.slice(lastRefusal + 1).filter((u) => u.method === 'PATCH');
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((u) => u.status === 202 && u.requestBytes <= LIMIT)).toBe(true);

    // what the registry holds, asked directly: the tag names the digest the step output, the files byte for byte
    expect(await manifestDigest(reg, repo, '1.0.0')).toBe(run.outputs.digest);
    const held = await heldImage(reg, repo, '1.0.0');
    expect(held.files).toEqual(digests(files));
    expect(held.layerSizes[0]).toBeGreaterThan(LAYER);

    // docker push (attempt 1, one request per blob) met the limit first; the advisory names the layer, its size and
    // the cause, and the attempt after it was the action's own
    expect(refused.filter(byDocker).length).toBeGreaterThanOrEqual(1);
    expect(run.stdout).toMatch(
      /^::warning title=Request body too large \(HTTP 413\)::The registry or a proxy in front of it limits request bodies, and refused the upload of .*layer 1\/1 \(sha256:[0-9a-f]{12}…, 3\d\.\d MB uncompressed\)/m,
    );
    expect(existsSync(job.runnerTemp) ? readdirSync(job.runnerTemp) : []).toEqual([]);
    process.stderr.write(
      `[body-limit ${eng.name}] attempts ${run.outputs.attempts}, ${elapsedMs} ms; layer ${held.layerSizes[0]} bytes; ` +
        `upload requests:\n  ${timeline.join('\n  ')}\n`,
    );
  });
});
