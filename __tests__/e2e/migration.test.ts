// Issue 6 end to end: an external registry with the proxy reference customers pull, a tombstone over a released
// tag, and the CLI on the same core. Real engine A, real registry; the registry is asked what it holds.
import { resolve } from 'node:path';
import { Job } from '../../test/support/action-runner.js';
import { node24 } from '../../test/support/node24.js';
import { runProcess, type ProcessResult } from '../../test/support/process.js';
import { buildImage, describeEngine, engine, removeImages, uniqueName } from '../../test/support/images.js';
import { listTags, manifestDigest, rawManifest, startRegistry, type Registry } from '../../test/support/registry.js';

// checked on first use; the describes below run only when engine A answers as the classic store
const eng = engine('A');
let reg: Registry;
let user: string;
let password: string;
const images: string[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  [user, password] = Object.entries(reg.users)[0];
});
afterAll(async () => {
  await removeImages(eng, images);
  await reg?.stop();
});

async function image(content: string): Promise<string> {
  const ref = `${uniqueName('rp-mig')}:b`;
  images.push(ref);
  return buildImage(eng, ref, { files: { '/app/content.txt': content, '/app/blob': 30_000 } });
}

describeEngine('A', 'external registry', () => {
  test('pushes to REGISTRY/<repository> and reports the proxy reference', async () => {
    const job = new Job();
    const src = await image('external');
    const run = await job.main(
      {
        'app-slug': 'acme',
        image: src,
        tag: '3.1.0',
        registry: reg.host,
        repository: 'acme-org/worker',
        username: user,
        token: password,
        'proxy-domain': 'images.acme.example',
      },
      { env: { DOCKER_HOST: eng.host } },
    );
    expect(run.code).toBe(0);
    expect(await manifestDigest(reg, 'acme-org/worker', '3.1.0')).toBe(run.outputs.digest);
    expect(run.outputs.ref).toBe(`${reg.host}/acme-org/worker:3.1.0`);
    expect(run.outputs['proxy-ref']).toBe(`images.acme.example/proxy/acme/${reg.host}/acme-org/worker:3.1.0`);
    expect(run.summary).toContain(`\`images.acme.example/proxy/acme/${reg.host}/acme-org/worker:3.1.0\``);
    job.cleanup();
  });

  test('repository is refused for the Replicated registry, naming the input', async () => {
    const job = new Job();
    const run = await job.main({
      'app-slug': 'acme',
      image: 'x:1',
      tag: '1',
      repository: 'acme-org/worker',
      token: 't',
    });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^::error title=Invalid input 'repository'::/m);
    job.cleanup();
  });
});

describeEngine('A', 'tombstone', () => {
  test('replaces a released tag with an empty image; the old image stays pullable by digest', async () => {
    const job = new Job();
    const src = await image('release 1.0.0');
    const common = {
      'app-slug': 'tomb',
      'target-image': 'svc',
      tag: '1.0.0',
      registry: reg.host,
      username: user,
      token: password,
    };
    const first = await job.main({ ...common, image: src }, { env: { DOCKER_HOST: eng.host } });
    expect(first.code).toBe(0);
    const old = first.outputs.digest;
    const run = await job.main({ ...common, mode: 'tombstone' }, { env: { DOCKER_HOST: eng.host } });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^::warning title=Tombstone replaces a released tag with an empty image::/m);
    expect(run.outputs['replaced-digest']).toBe(old);
    const now = await manifestDigest(reg, 'tomb/svc', '1.0.0');
    expect(now).toBe(run.outputs.digest);
    expect(now).not.toBe(old);
    const tomb = await rawManifest(reg, 'tomb/svc', '1.0.0');
    expect(tomb?.json.layers).toHaveLength(1);
    expect(tomb?.json.layers?.[0]?.size).toBeLessThan(200); // an empty tar, compressed
    // the withdrawn release is still there by digest for anyone pinned to it
    expect((await rawManifest(reg, 'tomb/svc', old))?.digest).toBe(old);
    expect(await listTags(reg, 'tomb/svc')).toEqual(['1.0.0']);
    job.cleanup();
  });

  test('refuses a tag that does not exist, pushing nothing', async () => {
    const job = new Job();
    const run = await job.main(
      {
        'app-slug': 'tomb',
        'target-image': 'never',
        tag: '0.0.1',
        mode: 'tombstone',
        registry: reg.host,
        username: user,
        token: password,
      },
      { env: { DOCKER_HOST: eng.host } },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /^::error title=Tombstone of a tag that does not exist::Input 'tag': 0\.0\.1 does not exist/m,
    );
    expect(await listTags(reg, 'tomb/never')).toEqual([]);
    job.cleanup();
  });

  test('needs an explicit tag, even on a tag ref', async () => {
    const job = new Job();
    const run = await job.main(
      { 'app-slug': 'tomb', 'target-image': 'svc', mode: 'tombstone', registry: reg.host, token: password },
      { env: { DOCKER_HOST: eng.host, GITHUB_REF: 'refs/tags/v1.0.0' } },
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^::error title=Invalid input 'tag'::Input 'tag' is required with mode 'tombstone'/m);
    job.cleanup();
  });
});

describeEngine('A', 'CLI', () => {
  const CLI = resolve(process.cwd(), 'dist/cli/index.js');
  function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcessResult> {
    return runProcess(node24(), [CLI, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DOCKER_HOST: eng.host, ...env },
    });
  }

  test('pushes with the token from the environment and prints the outputs', async () => {
    const src = await image('cli');
    const r = await cli(
      [
        '--app-slug',
        'cli-app',
        '--image',
        src,
        '--target-image',
        'tool',
        '--tag',
        '2.0.0',
        '--tag',
        'edge',
        '--registry',
        reg.host,
        '--username',
        user,
      ],
      { REPLICATED_TOKEN: password },
    );
    expect(r.code).toBe(0);
    const out = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(await manifestDigest(reg, 'cli-app/tool', '2.0.0')).toBe(out.digest);
    expect(await manifestDigest(reg, 'cli-app/tool', 'edge')).toBe(out.digest);
    expect(out.refs).toBe(`${reg.host}/cli-app/tool:2.0.0,${reg.host}/cli-app/tool:edge`);
    expect(r.stderr).not.toContain(password);
  });

  test("fails with the action's message and exit 1 on a wrong token", async () => {
    const src = await image('cli-wrong');
    const r = await cli(
      ['--app-slug', 'cli-app', '--image', src, '--tag', '1', '--registry', reg.host, '--username', user],
      { REPLICATED_TOKEN: 'wrong' },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: Registry rejected the credentials: .*token-type 'service-account'/m);
  });

  test.each([
    {
      args: ['--app-slug', 'Bad_Slug', '--image', 'x', '--tag', '1'],
      env: { REPLICATED_TOKEN: 't' },
      message: /Input 'app-slug': 'Bad_Slug' is not an application slug/,
    },
    {
      args: ['--app-slug', 'a', '--image', 'x', '--tag', '1', '--token', 'secret'],
      env: {},
      message: /the token is never a flag/,
    },
    {
      args: ['--app-slug', 'a', '--image', 'x', '--tag', '1', '--no-such-flag'],
      env: { REPLICATED_TOKEN: 't' },
      message: /Unknown option '--no-such-flag'/,
    },
    { args: ['--app-slug', 'a', '--image', 'x', '--tag', '1'], env: {}, message: /No token: set \$REPLICATED_TOKEN/ },
  ])('bad usage exits 2: $args', async ({ args, env, message }) => {
    const r = await cli(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
