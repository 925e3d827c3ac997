// The process layer: deadlines and signals end a child and say so, endAllChildren leaves nothing running,
// output is capped, and the environment a child gets never holds a secret.
import {
  childEnv,
  endAllChildren,
  exitCode,
  forgetSecrets,
  howItEnded,
  liveChildren,
  protectSecret,
  runProcess,
  startProcess,
} from '../../src/util/process.js';

const alive = (pid: number | undefined): boolean => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterEach(async () => {
  forgetSecrets();
  await endAllChildren(100);
});

describe('childEnv', () => {
  const TOKEN = 'tok-4f9a2c';
  test.each<[string, NodeJS.ProcessEnv, string[], NodeJS.ProcessEnv]>([
    ['INPUT_TOKEN always goes', { INPUT_TOKEN: 'x', PATH: '/bin' }, [], { PATH: '/bin' }],
    ['a variable holding the secret goes', { REPLICATED_TOKEN: TOKEN, HOME: '/root' }, [TOKEN], { HOME: '/root' }],
    ['whatever its name (--token-env)', { MY_CI_SECRET: TOKEN, A: 'b' }, [TOKEN], { A: 'b' }],
    ['a value that contains it goes too', { AUTH: `Bearer ${TOKEN}!`, A: 'b' }, [TOKEN], { A: 'b' }],
    ['an empty secret hides nothing', { A: 'b', C: '' }, [''], { A: 'b', C: '' }],
    ['several secrets', { X: 'one', Y: 'two', Z: 'three' }, ['one', 'two'], { Z: 'three' }],
    ['undefined values are dropped', { A: undefined, B: 'c' }, [], { B: 'c' }],
    [
      'INPUT_TOKEN_TYPE is not the token',
      { INPUT_TOKEN_TYPE: 'service-account' },
      [],
      { INPUT_TOKEN_TYPE: 'service-account' },
    ],
    [
      'nothing to hide',
      { DOCKER_HOST: 'unix:///x.sock', DOCKER_CONFIG: '/tmp/c' },
      [TOKEN],
      { DOCKER_HOST: 'unix:///x.sock', DOCKER_CONFIG: '/tmp/c' },
    ],
  ])('%s', (_name, env, secrets, expected) => {
    expect(childEnv(env, secrets)).toEqual(expected);
  });

  test('a child never sees a protected secret, whatever env its caller passes', async () => {
    protectSecret('s3cr3t-value');
    const r = await runProcess('sh', ['-c', 'env'], {
      env: { PATH: process.env.PATH, REPLICATED_TOKEN: 's3cr3t-value', INPUT_TOKEN: 'other', KEEP: 'me' },
    });
    expect(r.stdout).toContain('KEEP=me');
    expect(r.stdout).not.toContain('s3cr3t-value');
    expect(r.stdout).not.toContain('INPUT_TOKEN');
  });
});

describe('runProcess', () => {
  test('captures stdout and stderr, passes input on stdin, reports the exit code', async () => {
    const r = await runProcess('sh', ['-c', 'cat; echo oops >&2; exit 3'], { input: 'hello' });
    expect(r).toMatchObject({
      code: 3,
      signal: null,
      stdout: 'hello',
      stderr: 'oops\n',
      timedOut: false,
      aborted: false,
    });
    expect(howItEnded(r)).toBe('exit 3');
  });

  test('lines go to onLine as they come, without line breaks, from both streams', async () => {
    const lines: string[] = [];
    await runProcess('sh', ['-c', 'printf "a\\r\\nb\\n"; echo c >&2; printf tail'], {
      onLine: (l, s) => lines.push(`${s}:${l}`),
    });
    expect(lines.sort()).toEqual(['stderr:c', 'stdout:a', 'stdout:b', 'stdout:tail']);
  });

  test('a deadline ends the child and the result says so', async () => {
    const started = Date.now();
    const r = await runProcess('sleep', ['30'], { deadlineMs: 200 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r).toMatchObject({ code: null, signal: 'SIGTERM', timedOut: true, aborted: false });
    expect(howItEnded(r, 60_000)).toBe('did not answer within 60 s');
    expect(exitCode(r)).toBe(143);
  });

  test('a child that ignores SIGTERM gets SIGKILL after the grace', async () => {
    const h = startProcess('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], {
      deadlineMs: 300,
      graceMs: 200,
      onLine: () => undefined,
    });
    const r = await h.result;
    expect(r).toMatchObject({ signal: 'SIGKILL', timedOut: true });
    expect(alive(h.pid)).toBe(false);
  });

  test('a child silent for idleMs is ended (SIGTERM) and the result says it stalled', async () => {
    const started = Date.now();
    const h = startProcess('sh', ['-c', 'echo started; exec sleep 30'], { idleMs: 300 });
    const r = await h.result;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r).toMatchObject({ signal: 'SIGTERM', stalled: true, timedOut: false, aborted: false, stdout: 'started\n' });
    expect(howItEnded(r)).toBe('stalled (printed nothing for too long)');
    expect(alive(h.pid)).toBe(false);
    expect(liveChildren()).toBe(0);
  });

  test('the idle watchdog sends SIGKILL after the grace to a child that ignores SIGTERM', async () => {
    const h = startProcess('sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], {
      idleMs: 300,
      graceMs: 200,
    });
    const r = await h.result;
    expect(r).toMatchObject({ signal: 'SIGKILL', stalled: true });
    expect(alive(h.pid)).toBe(false);
  });

  test('output, on either stream, restarts the idle watchdog: a long child that keeps printing is not ended', async () => {
    const script = 'for i in 1 2 3 4 5 6 7 8; do echo out $i; sleep 0.1; echo err $i >&2; sleep 0.1; done';
    const started = Date.now();
    const r = await runProcess('sh', ['-c', script], { idleMs: 400 });
    // ran well past the window, each silence under it
    expect(Date.now() - started).toBeGreaterThan(1200);
    expect(r).toMatchObject({ code: 0, stalled: false });
    expect(r.stdout.trim().split('\n')).toHaveLength(8);
  });

  test('an aborted signal ends the child', async () => {
    const ac = new AbortController();
    const h = startProcess('sleep', ['30'], { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const r = await h.result;
    expect(r).toMatchObject({ aborted: true, timedOut: false, signal: 'SIGTERM' });
    expect(howItEnded(r)).toBe('was cancelled');
    expect(alive(h.pid)).toBe(false);
  });

  test('a signal aborted before the start ends the child at once', async () => {
    const ac = new AbortController();
    ac.abort();
    const started = Date.now();
    const r = await runProcess('sleep', ['30'], { signal: ac.signal });
    expect(r.aborted).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('a command that does not exist is a result, not a throw', async () => {
    const r = await runProcess('rp-no-such-command-x', []);
    expect(r.code).toBeNull();
    expect(r.spawnError?.message).toMatch(/ENOENT/);
    expect(howItEnded(r)).toMatch(/^could not start: spawn rp-no-such-command-x ENOENT/);
    expect(liveChildren()).toBe(0);
  });

  test('output is capped to the last bytes of each stream', async () => {
    const r = await runProcess('sh', ['-c', 'head -c 300000 /dev/zero | tr "\\0" a; printf END'], {
      captureBytes: 1000,
    });
    expect(r.stdout.length).toBe(1000);
    expect(r.stdout.endsWith('aaaEND')).toBe(true);
  });

  test('the default cap keeps 1 MiB of a chatty child', async () => {
    const r = await runProcess('sh', ['-c', 'head -c 5000000 /dev/zero | tr "\\0" b >&2']);
    expect(r.stderr.length).toBe(1024 * 1024);
  });

  test("a piped stdout is the caller's to read, and a piped stdin stays open", async () => {
    const h = startProcess('cat', [], { stdin: 'pipe', stdout: 'pipe' });
    const chunks: Buffer[] = [];
    h.stdout?.on('data', (c: Buffer) => chunks.push(c));
    h.stdin?.end('through');
    const r = await h.result;
    expect(Buffer.concat(chunks).toString()).toBe('through');
    expect(r.stdout).toBe('');
  });

  test('a grandchild holding the pipes open does not keep the result waiting', async () => {
    const started = Date.now();
    const r = await runProcess('sh', ['-c', 'sleep 5 & echo parent']);
    expect(r.stdout).toBe('parent\n');
    expect(Date.now() - started).toBeLessThan(4000);
  });
});

describe('endAllChildren', () => {
  test('ends every live child and leaves none running', async () => {
    const handles = [
      startProcess('sleep', ['30']),
      startProcess('sh', ['-c', 'trap "" TERM; while :; do sleep 0.05; done']),
      startProcess('cat', [], { stdin: 'pipe', stdout: 'pipe' }),
    ];
    expect(liveChildren()).toBe(3);
    for (const h of handles) expect(alive(h.pid)).toBe(true);
    await endAllChildren(300);
    expect(liveChildren()).toBe(0);
    for (const h of handles) expect(alive(h.pid)).toBe(false);
    const results = await Promise.all(handles.map((h) => h.result));
    expect(results.every((r) => r.aborted)).toBe(true);
  });

  test('resolves at once with nothing running; kill() on an exited child is a no-op', async () => {
    const h = startProcess('true', []);
    await h.result;
    await h.kill();
    await endAllChildren();
    expect(liveChildren()).toBe(0);
  });
});
