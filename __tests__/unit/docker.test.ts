// src/engine/docker.ts against a stand-in `docker` first on PATH (test/fixtures/docker/fake-docker.mjs): the argv
// each call runs, the password on stdin only, an environment without the token, deadlines and cancels, the
// error texts the failure classifier reads, and the one engine-API connection readImage makes. DOCKER_CONTEXT
// names a context, so the engine API goes through the stand-in's `docker system dial-stdio` (engine-api.test.ts
// covers the unix socket).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runnerCommands } from '../../test/support/runner-commands.js';
import {
  Docker,
  DockerError,
  EngineApiError,
  PUSH_STALL_MS,
  pushStallLimitMs,
  pushStallMs,
  splitTag,
} from '../../src/engine/docker.js';
import { classifyFailure } from '../../src/core/policy/failure.js';
import { endAllChildren, forgetSecrets, liveChildren } from '../../src/util/process.js';

const FAKE = resolve('test/fixtures/docker/fake-docker.mjs');
const TOKEN = 'rp-test-token-7d1e';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-docker-unit-'));
  writeFileSync(join(dir, 'docker'), `#!/bin/sh\nexec "${process.execPath}" "${FAKE}" "$@"\n`);
  chmodSync(join(dir, 'docker'), 0o755);
});
afterEach(async () => {
  forgetSecrets();
  await endAllChildren(100);
  rmSync(dir, { recursive: true, force: true });
});

interface Call {
  args: string[];
  env: Record<string, string>;
  stdin?: string;
  requests?: unknown[];
}

function docker(config: object = {}, opts: { deadlineMs?: number; pushStallMs?: number } = {}): Docker {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const env = {
    PATH: `${dir}:${process.env.PATH}`,
    FAKE_DOCKER_DIR: dir,
    HOME: process.env.HOME,
    INPUT_TOKEN: TOKEN,
    REPLICATED_TOKEN: TOKEN,
    DOCKER_CONFIG: join(dir, 'config'),
    DOCKER_CONTEXT: 'fake',
  };
  return new Docker(env, { secrets: [TOKEN], ...opts });
}

const calls = (): Call[] =>
  existsSync(join(dir, 'calls.jsonl'))
    ? readFileSync(join(dir, 'calls.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Call)
    : [];
const requests = (): string[] =>
  existsSync(join(dir, 'requests.jsonl'))
    ? readFileSync(join(dir, 'requests.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { line: string }).line)
    : [];
const stdinOf = (c: Call) => Buffer.from(c.stdin ?? '', 'base64');

describe('CLI calls', () => {
  test('login sends the password on stdin only: never in argv, never in any child environment', async () => {
    await docker().login('registry.example.com', 'me@example.com', TOKEN);
    const [call] = calls();
    expect(call.args).toEqual(['login', 'registry.example.com', '--username', 'me@example.com', '--password-stdin']);
    expect(stdinOf(call).toString()).toBe(TOKEN);
    expect(call.args.join(' ')).not.toContain(TOKEN);
    expect(Object.values(call.env).join('\n')).not.toContain(TOKEN);
    expect(call.env.INPUT_TOKEN).toBeUndefined();
    expect(call.env.REPLICATED_TOKEN).toBeUndefined();
    expect(call.env.DOCKER_CONFIG).toBe(join(dir, 'config'));
  });

  test('after a login, the secret is kept from later children even when not named up front', async () => {
    const env = {
      PATH: `${dir}:${process.env.PATH}`,
      FAKE_DOCKER_DIR: dir,
      MY_TOKEN: 'other-secret-99',
      DOCKER_CONTEXT: 'fake',
    };
    writeFileSync(join(dir, 'config.json'), '{}');
    const d = new Docker(env);
    await d.login('r.example', 'u', 'other-secret-99');
    await d.tag('a:1', 'b:1');
    expect(calls().map((c) => c.args[0])).toEqual(['login', 'system']);
    for (const c of calls()) expect(c.env.MY_TOKEN).toBeUndefined();
  });

  test("a refused login is a DockerError with docker's own last lines", async () => {
    const d = docker({
      commands: {
        login: {
          code: 1,
          stderr:
            'Error response from daemon: Get "https://r.example/v2/": unauthorized: incorrect username or password\n',
        },
      },
    });
    const e = (await d.login('r.example', 'u', TOKEN).catch((x: unknown) => x)) as DockerError;
    expect(e).toBeInstanceOf(DockerError);
    expect(e.message).toBe(
      'docker login failed (exit 1): Error response from daemon: Get "https://r.example/v2/": unauthorized: incorrect username or password',
    );
    expect(classifyFailure(e.output).kind).toBe('unauthorized');
  });

  // Issue 18: what docker printed is quoted as data: a registry's message with a newline and a command in it
  // stays inside the error's one line.
  test("docker's last lines are quoted as data: escapes shown, one line, no command", async () => {
    const d = docker({
      commands: { login: { code: 1, stderr: 'denied: no\n::error title=pwned::x\r\n##[warning]y \x1b[2K\n' } },
    });
    const e = (await d.login('r.example', 'u', TOKEN).catch((x: unknown) => x)) as DockerError;
    expect(e.message).toBe('docker login failed (exit 1): denied: no \\::error title=pwned::x ##\\[warning]y \\e[2K');
    expect(runnerCommands(e.message)).toEqual([]);
  });

  test.each([
    ['login', (d: Docker) => d.login('r.example', 'u', TOKEN)],
    ['import', (d: Docker) => d.importEmpty('t:1', 'x=y')],
  ])('docker %s that hangs ends at the deadline and says so', async (name, call) => {
    const d = docker({ commands: { [name]: { sleepMs: 20_000 } } }, { deadlineMs: 500 });
    const started = Date.now();
    await expect(call(d)).rejects.toThrow(`docker ${name} did not answer within 0.5 s`);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(liveChildren()).toBe(0);
  });

  test('an aborted signal ends a call and says it was cancelled', async () => {
    const d = docker({ commands: { login: { sleepMs: 20_000 } } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(d.login('r.example', 'u', TOKEN, { signal: ac.signal })).rejects.toThrow('docker login was cancelled');
  });

  test('push has no wall deadline, streams its lines, and returns a failure as a result', async () => {
    const d = docker(
      {
        commands: {
          push: {
            sleepMs: 800,
            code: 1,
            stdout: 'The push refers to repository [r.example/app/img]\nabc123: Pushing\n',
            stderr: 'received unexpected HTTP status: 524 \n',
          },
        },
      },
      { deadlineMs: 300 },
    );
    const lines: string[] = [];
    const result = await d.push('r.example/app/img:1', { platform: 'linux/amd64', onLine: (l) => lines.push(l) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('524');
    expect(lines).toEqual([
      'The push refers to repository [r.example/app/img]',
      'abc123: Pushing',
      'received unexpected HTTP status: 524 ',
    ]);
    expect(calls()[0].args).toEqual(['push', '--platform', 'linux/amd64', 'r.example/app/img:1']);
  });

  test('a push that prints and then stalls is ended by the watchdog: a result with stalledMs, no child left', async () => {
    const d = docker(
      {
        commands: {
          push: { stdout: 'The push refers to repository [r.example/a]\n5f70bf18a086: Preparing\n', sleepMs: 30_000 },
        },
      },
      { pushStallMs: 400 },
    );
    const lines: string[] = [];
    const started = Date.now();
    const result = await d.push('r.example/a:1', { onLine: (l) => lines.push(l) });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toMatchObject({ code: 143, stalledMs: 400 });
    expect(lines).toEqual(['The push refers to repository [r.example/a]', '5f70bf18a086: Preparing']);
    expect(liveChildren()).toBe(0);
    expect(classifyFailure(`${result.stdout}\n${result.stderr}`, { stalledMs: result.stalledMs })).toMatchObject({
      kind: 'stalled',
      retryable: true,
      detail: 'docker push made no progress for 0.4 s: its last line: 5f70bf18a086: Preparing',
    });
  });

  test('a push that keeps printing outlives the watchdog window: progress is any new output', async () => {
    const d = docker(
      { commands: { push: { ticks: { count: 10, everyMs: 200, line: 'abc123def456: Retrying in' }, code: 0 } } },
      { pushStallMs: 1200 },
    );
    const started = Date.now();
    const result = await d.push('r.example/a:1');
    // longer than the 1.2 s window in all, yet never silent that long (10 lines 200 ms apart: a loaded machine may
    // delay a line by a second and the push still is not stalled)
    expect(Date.now() - started).toBeGreaterThan(1200);
    expect(result.code).toBe(0);
    expect(result.stalledMs).toBeUndefined();
    expect(result.stdout.trim().split('\n')).toHaveLength(10);
  });

  test('without pushStallMs the watchdog is 5 min, and only RP_TEST_PUSH_STALL_MS shortens it', () => {
    expect(PUSH_STALL_MS).toBe(300_000);
    const table: Array<[string | undefined, number]> = [
      [undefined, 300_000],
      ['2000', 2000],
      ['100', 100],
      ['99', 300_000],
      ['0', 300_000],
      ['-5', 300_000],
      ['1.5', 300_000],
      ['2s', 300_000],
      ['', 300_000],
      ['300000', 300_000],
      ['900000', 300_000],
    ];
    expect(table.map(([v]) => pushStallMs(v === undefined ? {} : { RP_TEST_PUSH_STALL_MS: v }))).toEqual(
      table.map(([, want]) => want),
    );
  });

  // docker push prints nothing while one layer's bytes flow: a big layer on a slow link must not look like a hang
  test.each([
    ['no layer size known', PUSH_STALL_MS, 0, PUSH_STALL_MS],
    ['a 100 MB layer: the base', PUSH_STALL_MS, 100e6, PUSH_STALL_MS],
    ['a 1 GB layer: 1 GB at 512 KiB/s', PUSH_STALL_MS, 1e9, 1_907_349],
    ['a 4 GB layer', PUSH_STALL_MS, 4e9, 7_629_395],
    ['the tests knob with a small layer', 3000, 200_000, 3000],
    ['the tests knob with a 10 MB layer', 3000, 10e6, 19_074],
    ['a size that is no number', PUSH_STALL_MS, NaN, PUSH_STALL_MS],
    ['a negative size', PUSH_STALL_MS, -1, PUSH_STALL_MS],
  ])('pushStallLimitMs: %s', (_, base, bytes, want) => {
    expect(pushStallLimitMs(base, bytes)).toBe(want);
  });

  test('a cancelled push throws instead of looking like a failed attempt', async () => {
    const d = docker({ commands: { push: { sleepMs: 20_000 } } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(d.push('r.example/a:1', { signal: ac.signal })).rejects.toThrow('docker push was cancelled');
    expect(liveChildren()).toBe(0);
  });

  test('importEmpty sends a tar end marker on stdin and labels the image', async () => {
    await docker().importEmpty('tomb:1', 'com.replicated-push.tombstone=true');
    const [call] = calls();
    expect(call.args).toEqual([
      'import',
      '--change',
      'LABEL com.replicated-push.tombstone=true',
      '--message',
      'replicated-push tombstone',
      '-',
      'tomb:1',
    ]);
    expect(stdinOf(call).equals(Buffer.alloc(1024))).toBe(true);
  });

  test('startLogin: the CLI starts at once and waits; the password goes on stdin only at send()', async () => {
    const d = docker();
    const pending = d.startLogin('registry.example.com', 'me@example.com');
    await new Promise((r) => setTimeout(r, 300));
    expect(calls()).toEqual([]); // started, still reading stdin: it has asked nothing yet
    expect(liveChildren()).toBe(1);
    await pending.send(TOKEN);
    const [call] = calls();
    expect(call.args).toEqual(['login', 'registry.example.com', '--username', 'me@example.com', '--password-stdin']);
    expect(stdinOf(call).toString()).toBe(TOKEN);
    expect(Object.values(call.env).join('\n')).not.toContain(TOKEN);
  });

  test('startLogin: abandon() ends the CLI having sent it nothing', async () => {
    const pending = docker().startLogin('r.example', 'u');
    await pending.abandon();
    expect(liveChildren()).toBe(0);
    expect(calls()).toEqual([]);
  });

  test('startLogin: a refused login, a hang after send (the deadline runs from send) and a cancel', async () => {
    const refused = docker({
      commands: { login: { code: 1, stderr: 'unauthorized: incorrect username or password\n' } },
    });
    await expect(refused.startLogin('r', 'u').send(TOKEN)).rejects.toThrow(
      'docker login failed (exit 1): unauthorized: incorrect username or password',
    );
    const slow = docker({ commands: { login: { sleepMs: 20_000 } } }, { deadlineMs: 400 });
    const waiting = slow.startLogin('r', 'u');
    await new Promise((r) => setTimeout(r, 600)); // longer than the deadline, before the password is sent
    await expect(waiting.send(TOKEN)).rejects.toThrow('docker login did not answer within 0.4 s');
    const ac = new AbortController();
    const cancelled = docker().startLogin('r', 'u', { signal: ac.signal });
    ac.abort();
    await expect(cancelled.send(TOKEN)).rejects.toThrow('docker login was cancelled');
    expect(liveChildren()).toBe(0);
  });

  test('no docker on PATH is a clear error', async () => {
    const d = new Docker({ PATH: join(dir, 'none') });
    await expect(d.login('r', 'u', TOKEN)).rejects.toThrow(/^docker login could not start: spawn docker ENOENT/);
  });
});

describe('local names, over the engine API', () => {
  test('tag is the POST the CLI makes, repository and tag split at the last colon after the last slash', async () => {
    await docker(engine({})).tag('sha256:1d', '127.0.0.1:5000/app/img:1.0');
    expect(requests()).toEqual(['POST /images/sha256:1d/tag?repo=127.0.0.1%3A5000%2Fapp%2Fimg&tag=1.0 HTTP/1.1']);
    expect(calls().map((c) => c.args)).toEqual([['system', 'dial-stdio']]);
  });

  test.each([
    ['registry.example.com:443/app/img:v1', { repo: 'registry.example.com:443/app/img', tag: 'v1' }],
    ['127.0.0.1:5000/app', { repo: '127.0.0.1:5000/app', tag: 'latest' }],
    ['app:latest', { repo: 'app', tag: 'latest' }],
  ])('splitTag(%s)', (ref, parts) => expect(splitTag(ref)).toEqual(parts));

  test("a tag the engine refuses fails in the engine's words", async () => {
    const routes = {
      'POST /images/nosuch:1/tag?repo=b&tag=1': { status: 404, body: { message: 'No such image: nosuch:1' } },
    };
    await expect(docker({ engine: { routes } }).tag('nosuch:1', 'b:1')).rejects.toThrow(
      'Error response from daemon: No such image: nosuch:1',
    );
  });

  test('a tag on an engine that hangs ends at the deadline; a cancel ends it at once', async () => {
    await expect(docker({ engine: { hangMs: 20_000 } }, { deadlineMs: 500 }).tag('a:1', 'b:1')).rejects.toThrow(
      'the Docker engine did not answer within 0.5 s',
    );
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(docker({ engine: { hangMs: 20_000 } }).tag('a:1', 'b:1', { signal: ac.signal })).rejects.toThrow(
      'the Docker engine was cancelled',
    );
    expect(liveChildren()).toBe(0);
  });

  test('removeImage is the DELETE the CLI makes, and best effort: a refusal or a hang is not an error', async () => {
    await docker(engine({})).removeImage('127.0.0.1:5000/app/img:1');
    expect(requests()).toEqual(['DELETE /images/127.0.0.1:5000/app/img:1 HTTP/1.1']);
    const conflict = { 'DELETE /images/x:1': { status: 409, body: { message: 'image is being used' } } };
    await docker({ engine: { routes: conflict } }).removeImage('x:1');
    await docker({ engine: { hangMs: 20_000 } }, { deadlineMs: 500 }).removeImage('x:1');
    expect(liveChildren()).toBe(0);
  });
});

const VERSION_A = { Version: '20.10.24', ApiVersion: '1.41' };
const VERSION_B = { Version: '28.5.2', ApiVersion: '1.51' };
const INFO_CLASSIC = { DriverStatus: [['Backing Filesystem', 'extfs']] };
const INFO_CONTAINERD = { DriverStatus: [['driver-type', 'io.containerd.snapshotter.v1']] };
const INDEX = 'application/vnd.oci.image.index.v1+json';
const IMAGE = {
  Id: 'sha256:1d',
  Os: 'linux',
  Architecture: 'amd64',
  RootFS: { Layers: ['sha256:l1', 'sha256:l2'] },
};
const HISTORY = [
  { Id: 'sha256:1d', Size: 0, CreatedBy: '/bin/sh -c #(nop)\tCMD ["sh"]' },
  { Id: '<missing>', Size: 5000, CreatedBy: 'COPY big /big' },
  { Id: '<missing>', Size: 100, CreatedBy: 'ADD rootfs.tar /' },
];
const MANIFESTS = [
  { Kind: 'image', Available: true, Descriptor: { platform: { os: 'linux', architecture: 'amd64' } } },
  { Kind: 'attestation', Descriptor: { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } } },
];

function engine(over: { version?: object; info?: object; image?: object; chunked?: boolean; manifests?: boolean }) {
  const image = over.image ?? IMAGE;
  const routes: Record<string, object> = {
    '/version': { body: over.version ?? VERSION_A },
    '/info': { body: over.info ?? INFO_CLASSIC, chunked: over.chunked },
    '/images/app/img:1/json': { body: image },
    '/images/app/img:1/history': { body: HISTORY, chunked: over.chunked },
  };
  if (over.manifests) routes['/v1.51/images/sha256:1d/json?manifests=1'] = { body: { ...image, Manifests: MANIFESTS } };
  return { engine: { routes } };
}

describe('readImage', () => {
  test('classic store: version, info, image and history over one connection, rows as the CLI shows them', async () => {
    const started = Date.now();
    const read = await docker(engine({})).readImage('app/img:1');
    // closing the connection ends the child at once, not at the 60 s deadline
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(read).toEqual({
      engine: { serverVersion: '20.10.24', apiVersion: '1.41', containerdStore: false },
      image: IMAGE,
      history: [
        { size: 0, createdBy: '/bin/sh -c #(nop) CMD ["sh"]' },
        { size: 5000, createdBy: 'COPY big /big' },
        { size: 100, createdBy: 'ADD rootfs.tar /' },
      ],
      manifests: null,
      names: new Map(),
    });
    expect(calls().map((c) => c.args)).toEqual([['system', 'dial-stdio']]);
    // one dial-stdio child, so one connection: the requests in the order asked, the version from /_ping's headers
    expect(requests()).toEqual([
      'GET /info HTTP/1.1',
      'GET /_ping HTTP/1.1',
      'GET /images/app/img:1/json HTTP/1.1',
      'GET /images/app/img:1/history HTTP/1.1',
    ]);
    expect(liveChildren()).toBe(0); // the dial-stdio child ended when the connection closed
    expect(calls()[0].env.INPUT_TOKEN).toBeUndefined();
    expect(calls()[0].env.REPLICATED_TOKEN).toBeUndefined();
  });

  test('an engine whose answers do not name its version is asked /version', async () => {
    const read = await docker({ engine: { ...engine({}).engine, noVersionHeaders: true } }).readImage('app/img:1');
    expect(read.engine).toEqual({ serverVersion: '20.10.24', apiVersion: '1.41', containerdStore: false });
    expect(requests()).toContain('GET /version HTTP/1.1');
  });

  test('chunked answers are read as well as sized ones', async () => {
    const read = await docker(engine({ chunked: true })).readImage('app/img:1');
    expect(read.history).toHaveLength(3);
    expect(read.engine.containerdStore).toBe(false);
  });

  test('containerd store, an index and API >= 1.48: the manifests are read on the same connection', async () => {
    const image = { ...IMAGE, Descriptor: { mediaType: INDEX, digest: 'sha256:ix', size: 900 } };
    const read = await docker(engine({ version: VERSION_B, info: INFO_CONTAINERD, image, manifests: true })).readImage(
      'app/img:1',
    );
    expect(read.engine).toEqual({ serverVersion: '28.5.2', apiVersion: '1.51', containerdStore: true });
    expect(read.manifests).toEqual(MANIFESTS);
    expect(calls()).toHaveLength(1);
    expect(requests()[4]).toBe('GET /v1.51/images/sha256:1d/json?manifests=1 HTTP/1.1');
  });

  test.each([
    ['classic store', { version: VERSION_B, info: INFO_CLASSIC }, INDEX],
    ['API 1.47', { version: { Version: '27.5', ApiVersion: '1.47' }, info: INFO_CONTAINERD }, INDEX],
    ['a single manifest', { version: VERSION_B, info: INFO_CONTAINERD }, 'application/vnd.oci.image.manifest.v1+json'],
  ])('no manifests request with %s', async (_name, over, mediaType) => {
    const image = { ...IMAGE, Descriptor: { mediaType, digest: 'sha256:ix', size: 900 } };
    const read = await docker(engine({ ...over, image })).readImage('app/img:1');
    expect(read.manifests).toBeNull();
    expect(requests()).toHaveLength(4);
  });

  test('a manifests request the engine refuses leaves manifests null', async () => {
    const image = { ...IMAGE, Descriptor: { mediaType: INDEX, digest: 'sha256:ix', size: 900 } };
    const read = await docker(engine({ version: VERSION_B, info: INFO_CONTAINERD, image })).readImage('app/img:1');
    expect(read.manifests).toBeNull();
  });

  test('a missing image fails as the classifier reads "image-missing"', async () => {
    const e = (await docker(engine({}))
      .readImage('nosuch:1')
      .catch((x: unknown) => x)) as Error;
    expect(e).toBeInstanceOf(EngineApiError);
    expect(e.message).toBe('Error response from daemon: No such image: nosuch:1');
    expect(classifyFailure(e.message).kind).toBe('image-missing');
  });

  test.each([
    'failed to open the raw stream connection: dial unix /nonexistent: connect: no such file or directory',
    'failed to open the raw stream connection: dial tcp 127.0.0.1:1: connect: connection refused',
  ])('an engine it cannot reach fails as "engine-unreachable": %s', async (dialError) => {
    const e = (await docker({ engine: { dialError } })
      .readImage('app/img:1')
      .catch((x: unknown) => x)) as Error;
    expect(e.message).toBe(`Cannot connect to the Docker daemon: ${dialError}`);
    expect(classifyFailure(e.message).kind).toBe('engine-unreachable');
  });

  test('an engine that does not answer ends at the deadline', async () => {
    const d = docker({ engine: { hangMs: 20_000 } }, { deadlineMs: 400 });
    await expect(d.readImage('app/img:1')).rejects.toThrow('the Docker engine did not answer within 0.4 s');
    expect(liveChildren()).toBe(0);
  });

  test('an aborted signal ends the connection', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(docker({ engine: { hangMs: 20_000 } }).readImage('app/img:1', { signal: ac.signal })).rejects.toThrow(
      'the Docker engine was cancelled',
    );
  });
});

describe('what local names point to', () => {
  test('readImage asks about the names in the same batch: one connection, null for the ones the engine lacks', async () => {
    const { names: ids } = await docker(engine({})).readImage('app/img:1', { names: ['app/img:1', 'gone:2'] });
    expect(requests()).toContain('GET /images/gone:2/json HTTP/1.1');
    expect(ids).toEqual(
      new Map([
        ['app/img:1', 'sha256:1d'],
        ['gone:2', null],
      ]),
    );
    expect(calls()).toHaveLength(1);
  });
});
