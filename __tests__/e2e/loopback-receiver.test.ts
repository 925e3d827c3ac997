// The action's receiver on 127.0.0.1 with its per-run credential, pushed to by the real engines: `docker push` with
// the docker config createReceiverDockerConfig writes (auths for the receiver alone) is challenged (401, Basic) and
// answers with the credential, on engine A (classic store) and engine B (containerd store, the CLI's X-Registry-Auth
// handed to containerd's resolver); a config with a wrong password gets nothing stored, and the password is on no
// process's command line while the push runs.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReceiverDockerConfig } from '../../src/engine/docker-config.js';
import {
  MAX_CONNECTIONS,
  startLoopbackReceiver,
  type LoopbackReceiver,
  type ReceivedBlob,
} from '../../src/upload/loopback-receiver.js';
import {
  buildImage,
  describeEachEngine,
  docker,
  removeImages,
  uniqueName,
  type Engine,
} from '../../test/support/images.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-rx-e2e-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Many layers: engine B opens a connection per blob at once, and they must all fit under the receiver's cap. */
const LAYERS = 60;
const credential = { username: 'rp-e2e', password: `pw-${uniqueName('secret')}` };

/** Every process's command line that holds TEXT (the test's own excepted: it holds nothing of the kind). */
function cmdlinesHolding(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const line = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (line.includes(text)) found.push(`${pid}: ${line}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** `docker push [--platform]` of IMAGE to the receiver, with the config made for PASSWORD; its outcome. */
async function pushTo(e: Engine, rx: LoopbackReceiver, image: string, tag: string, password: string) {
  const ref = `${rx.host}/rp-e2e/upload:${tag}`;
  const configDir = mkdtempSync(join(dir, 'config-'));
  rmSync(configDir, { recursive: true });
  const env = createReceiverDockerConfig({ ...process.env, DOCKER_HOST: e.host }, configDir, rx.host, {
    username: credential.username,
    password,
  }).env;
  await docker(e.host, ['tag', image, ref]);
  const seen: string[] = [];
  const watch = setInterval(() => seen.push(...cmdlinesHolding(password)), 50);
  try {
    const platform = e.name === 'B' ? ['--platform', 'linux/amd64'] : [];
    const out = await docker(e.host, ['push', ...platform, ref], { DOCKER_CONFIG: env.DOCKER_CONFIG });
    return { ok: true, out, seen };
  } catch (err) {
    return { ok: false, out: (err as Error).message, seen };
  } finally {
    clearInterval(watch);
    await removeImages(e, [ref]);
  }
}

describeEachEngine('the receiver with its credential, pushed to by $label', (eng) => {
  const image = `${uniqueName('rp-rx-e2e')}:1`;
  let rx: LoopbackReceiver | null = null;
  let announced: ReceivedBlob[] = [];
  const start = async (tag: string) => {
    announced = [];
    const work = mkdtempSync(join(dir, 'rx-'));
    rx = await startLoopbackReceiver({
      dir: work,
      repository: 'rp-e2e/upload',
      tag,
      credential,
      onBlob: (b) => announced.push(b),
    });
    return rx;
  };
  beforeAll(async () => {
    // many layers, so the engine opens all its concurrent uploads
    const files: Record<string, number> = {};
    for (let i = 0; i < LAYERS; i++) files[`/l${i}`] = 100_000 + i * 50_000;
    await buildImage(eng, image, { files });
  });
  afterEach(async () => {
    await rx?.close();
    rx = null;
  });
  afterAll(() => removeImages(eng, [image]));

  test('the right credential: challenged once, then every blob and the one manifest stored; the password on no command line', async () => {
    const r = await start('t1');
    const pushed = await pushTo(eng, r, image, 't1', credential.password);
    expect(pushed.ok ? 'ok' : pushed.out).toBe('ok');
    expect(r.refused.wrongCredential).toBe(0);
    // the engine asked without a credential first and was challenged: the credential came from the config
    expect(r.refused.noCredential).toBeGreaterThanOrEqual(1);
    expect([...r.manifests.keys()]).toEqual(['t1']);
    const doc = JSON.parse(r.manifests.get('t1')?.bytes.toString() ?? '{}') as { layers: Array<{ digest: string }> };
    expect(doc.layers).toHaveLength(LAYERS);
    for (const l of doc.layers) expect(r.blobs.has(l.digest)).toBe(true);
    await Promise.all(announced.map((b) => b.done));
    expect(pushed.seen).toEqual([]);
    expect(r.peakConnections).toBeLessThanOrEqual(MAX_CONNECTIONS);
    process.stderr.write(`engine ${eng.name}: ${r.peakConnections} connections at most, ${r.requests} requests\n`);
  });

  test('a wrong password: the push fails, nothing is stored, the refusals are counted', async () => {
    const r = await start('t2');
    const pushed = await pushTo(eng, r, image, 't2', 'not-the-password');
    expect(pushed.ok).toBe(false);
    expect(pushed.out).toMatch(/401|unauthorized|authentication required|no basic auth/i);
    expect(r.refused.wrongCredential).toBeGreaterThanOrEqual(1);
    expect(r.manifests.size).toBe(0);
    expect(r.blobs.size).toBe(0);
  });
});
