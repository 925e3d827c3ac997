// Issue 11 items 3 and 8: a registry that accepts the login and then misbehaves must end the run quickly, with an
// ::error naming the host, without exhausting memory and without sending the credentials anywhere they do not
// belong. The registry is test/support/hostile-registry.ts; the action runs as the runner runs it (committed dist).
import { existsSync, readdirSync } from 'node:fs';
import { Job, type StepRun } from '../../test/support/action-runner.js';
import {
  startHostileRegistry,
  type HostileOptions,
  type HostileRegistry,
} from '../../test/support/hostile-registry.js';
import { buildImage, describeEngine, removeImages, uniqueName } from '../../test/support/images.js';
import { runnerCommands } from '../../test/support/runner-commands.js';

const TOKEN = `hostile-token-${Date.now().toString(36)}`;
/** Issue 11 item 3: with retries: 0, a registry that hangs must end the run within this. */
const BOUND_MS = 120_000;

function errorLine(run: StepRun): string {
  return run.stdout.split('\n').find((l) => l.startsWith('::error')) ?? '';
}

describeEngine('A', 'a hostile registry (engine A)', (eng) => {
  let src: string;
  beforeAll(async () => {
    src = `${uniqueName('rp-hostile')}:src`;
    await buildImage(eng, src, { files: { '/a': 2_000 } });
  });
  afterAll(() => removeImages(eng, [src]));

  async function runAgainst(
    opts: HostileOptions,
    inputs: Record<string, string> = {},
  ): Promise<{ run: StepRun; registry: HostileRegistry; elapsedMs: number; job: Job }> {
    const registry = await startHostileRegistry(opts);
    const job = new Job();
    try {
      const started = Date.now();
      const run = await job.main(
        {
          'app-slug': 'hostile',
          image: src,
          'target-image': 'svc',
          tag: '1.0.0',
          token: TOKEN,
          registry: registry.host,
          retries: '0',
          ...inputs,
        },
        // killed past the bound plus a margin, so that a hang is reported as a failed assertion, not a jest timeout
        { env: { DOCKER_HOST: eng.host }, timeoutMs: BOUND_MS + 30_000 },
      );
      const elapsedMs = Date.now() - started;
      console.log(`hostile ${JSON.stringify(opts)}: exit ${run.code} after ${(elapsedMs / 1000).toFixed(1)} s`);
      return { run, registry, elapsedMs, job };
    } finally {
      await registry.stop();
    }
  }

  /** What every hostile case must keep: a bounded end, one ::error naming the host, no token or temp left. */
  function expectCleanFailure(r: { run: StepRun; elapsedMs: number; job: Job }, host: string): void {
    expect(r.run.code).toBe(1); // -1: the runner emulator had to kill it
    expect(r.elapsedMs).toBeLessThan(BOUND_MS);
    expect(errorLine(r.run)).toContain(host);
    const all = [r.run.stdout, r.run.stderr, ...Object.values(r.run.files)].join('\n');
    expect(all.split('\n').filter((l) => l.includes(TOKEN) && !l.startsWith('::add-mask::'))).toEqual([]);
    expect(all).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m); // no stack trace
    expect(existsSync(r.job.runnerTemp) ? readdirSync(r.job.runnerTemp) : []).toEqual([]);
    r.job.cleanup();
  }

  test('a repository-scoped token sent one byte every 5 s ends the run in under 2 minutes', async () => {
    const r = await runAgainst({ token: 'drip' });
    // the action asks the registry itself before docker logs in, so it meets the drip first: docker never logs in
    expect(r.registry.requests.some((q) => q.path === '/v2/' && q.authorization.startsWith('Bearer '))).toBe(false);
    const drips = r.registry.requests.filter((q) => q.path === '/token' && /scope=repository/.test(q.url));
    expect(drips.length).toBeGreaterThanOrEqual(1);
    expectCleanFailure(r, r.registry.host);
    // the action gave up before the token was complete (all of it takes ~70 bytes x 5 s)
    expect(drips.every((q) => q.bytesSent < 60)).toBe(true);
  }, 200_000);

  test('a 50 MB token body is cut off at a cap, not read whole', async () => {
    const r = await runAgainst({ token: 'huge' });
    const huge = r.registry.requests.filter((q) => q.path === '/token' && /scope=repository/.test(q.url));
    expect(huge.length).toBeGreaterThanOrEqual(1);
    // what the registry could write before the client hung up: the cap (~1 MiB) plus the sockets' buffers
    for (const q of huge) expect(q.bytesSent).toBeLessThan(10 * 1024 * 1024);
    // a 50 MB token would have come back as a 50 MB Authorization header
    expect(r.registry.requests.filter((q) => q.authorization.length > 64 * 1024)).toEqual([]);
    expectCleanFailure(r, r.registry.host);
  }, 200_000);

  test('a token body that is no JSON fails with the host named, not a stack trace', async () => {
    const r = await runAgainst({ token: 'garbage' });
    expectCleanFailure(r, r.registry.host);
  }, 200_000);

  test('a manifest HEAD that never answers ends the run in under 2 minutes', async () => {
    const r = await runAgainst({ hangManifestHead: true });
    expect(r.registry.requests.some((q) => q.method === 'HEAD' && /\/manifests\//.test(q.path))).toBe(true);
    expectCleanFailure(r, r.registry.host);
  }, 200_000);

  // Issue 11 item 8: Basic credentials go only to a realm over https, or on the registry's own host. 127.0.0.2 is
  // loopback but another host: this is the case of a registry naming a plain-http realm elsewhere.
  test('a plain-http realm on another host for the repository scope never receives the credentials', async () => {
    const r = await runAgainst({ realm: 'other-host-scoped' });
    const atRealm = r.registry.requests.filter((q) => q.server === 'realm');
    expect(atRealm.filter((q) => q.authorization !== '')).toEqual([]);
    // nothing was pushed either: docker would have sent the credentials there itself
    expect(r.registry.requests.filter((q) => /\/blobs\/uploads\//.test(q.path))).toEqual([]);
    expect(r.run.code).toBe(1);
    expect(errorLine(r.run)).toContain(r.registry.realmHost);
    r.job.cleanup();
  }, 200_000);

  // Issue 18 item 3: the rule compared host names only, so a realm on another port of the registry's own address got
  // the credentials over plain http. Another port is another service (on a shared runner, anyone's).
  test('a plain-http realm on another port of the registry address never receives the credentials', async () => {
    const r = await runAgainst({ realm: 'other-host-scoped', otherHost: '127.0.0.1' });
    expect(r.registry.realmHost).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.registry.realmHost).not.toBe(r.registry.host);
    const atRealm = r.registry.requests.filter((q) => q.server === 'realm');
    expect(atRealm.filter((q) => q.authorization !== '')).toEqual([]);
    expect(r.registry.requests.filter((q) => /\/blobs\/uploads\//.test(q.path))).toEqual([]);
    expect(r.run.code).toBe(1);
    expect(errorLine(r.run)).toContain(r.registry.realmHost);
    r.job.cleanup();
  }, 200_000);

  // The same realm named from the first challenge on: docker login itself would send the credentials there, so the
  // action has to look at the challenge before it hands the token to the engine.
  test('a plain-http realm on another host from the login on never receives the credentials', async () => {
    const r = await runAgainst({ realm: 'other-host' });
    const atRealm = r.registry.requests.filter((q) => q.server === 'realm');
    expect(atRealm.filter((q) => q.authorization !== '')).toEqual([]);
    expect(r.run.code).toBe(1);
    expect(errorLine(r.run)).toContain(r.registry.realmHost);
    r.job.cleanup();
  }, 200_000);

  // Issue 18: a registry's error code and message are data. Each carries a newline and a workflow command, a legacy
  // `##[` command and Markdown; the step's real stdout must hold no command the action did not write, and the job
  // summary no Markdown the registry wrote.
  const INJECTED =
    'X\n::error title=pwned::owned\r::warning title=pwned::w ##[error]legacy <img src=x> **bold** [l](http://evil.example)';
  const ACTION_COMMANDS = new Set(['add-mask', 'group', 'endgroup', 'error', 'warning', 'notice', 'debug']);

  function expectNoInjectedCommand(run: StepRun): void {
    const commands = [...runnerCommands(run.stdout), ...runnerCommands(run.stderr)];
    expect(commands.filter((c) => c.form === 'legacy')).toEqual([]);
    expect(commands.filter((c) => !ACTION_COMMANDS.has(c.command) || c.properties.includes('pwned'))).toEqual([]);
    expect(commands.filter((c) => c.command === 'error')).toHaveLength(1);
    // nothing the registry wrote starts a line of the summary, and none of its Markdown is left unescaped
    expect(run.summary).not.toMatch(/^\s*::/m);
    expect(run.summary).not.toMatch(/(?<!\\)(<img|\*\*bold|\]\(http|##\[)/);
  }

  test('registry error codes with newlines, commands and Markdown stay data (upload: chunked)', async () => {
    const body = { errors: [{ code: INJECTED, message: INJECTED, detail: INJECTED }] };
    const r = await runAgainst({ uploadAnswer: { status: 400, body } }, { upload: 'chunked' });
    expect(r.registry.requests.some((q) => q.method === 'POST' && /\/blobs\/uploads\/$/.test(q.path))).toBe(true);
    expectNoInjectedCommand(r.run);
    // the code is in the error, as data: its newline shown, its command defused
    expect(errorLine(r.run)).toContain('X\\n::error title=pwned::owned\\r::warning');
    expect(r.run.summary).toContain('X\\\\n::error title=pwned::owned\\\\r::warning');
    expectCleanFailure(r, r.registry.host);
  }, 200_000);

  test('a registry error message docker push prints stays data (upload: docker)', async () => {
    const body = { errors: [{ code: 'DENIED', message: INJECTED, detail: INJECTED }] };
    const r = await runAgainst({ uploadAnswer: { status: 403, body } }, { upload: 'docker' });
    expect(r.registry.requests.some((q) => q.method === 'POST' && /\/blobs\/uploads\/$/.test(q.path))).toBe(true);
    console.log(`docker push against the injected message:\n${r.run.stdout}`);
    expectNoInjectedCommand(r.run);
    expectCleanFailure(r, r.registry.host);
  }, 200_000);
});
