// The GitHub adapter's masks: before anything else is printed, the token and the base64 of `username:token` (what a
// docker config's "auth" field and a Basic Authorization header hold) are registered with ::add-mask::. The run
// then fails at once and on loopback only: no engine at DOCKER_HOST, a registry port nobody listens on.
import { main } from '../../src/adapters/main.js';
import { captureStdoutEachTest } from '../../test/support/stdout.js';

const TOKEN = 'rp-mask-token-5b7e1c';

describe('main: masks', () => {
  const stdout = captureStdoutEachTest();
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
    process.exitCode = undefined;
  });

  function inputs(extra: Record<string, string>): void {
    for (const k of Object.keys(process.env))
      if (k.startsWith('INPUT_') || k.startsWith('GITHUB_')) delete process.env[k];
    const all: Record<string, string> = {
      'app-slug': 'my-app',
      image: 'rp-nothing:1',
      tag: '1.0.0',
      token: TOKEN,
      registry: '127.0.0.1:9',
      retries: '0',
      'retry-delay': '1ms',
      ...extra,
    };
    for (const [k, v] of Object.entries(all)) process.env[`INPUT_${k.toUpperCase()}`] = v;
    process.env.DOCKER_HOST = 'unix:///nonexistent/rp-main-test.sock';
  }

  const masks = () =>
    stdout.chunks
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('::add-mask::'));
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  test.each<[string, Record<string, string>, string]>([
    ['service-account: the default username', {}, 'replicated-push'],
    ['an explicit username', { username: 'vendor@example.com', 'token-type': 'user' }, 'vendor@example.com'],
  ])('%s: the token and base64(username:token) are masked, first', async (_name, extra, username) => {
    inputs(extra);
    await main();
    expect(masks()).toEqual([`::add-mask::${TOKEN}`, `::add-mask::${b64(`${username}:${TOKEN}`)}`]);
    expect(
      stdout.chunks.join('').startsWith(`::add-mask::${TOKEN}\n::add-mask::${b64(`${username}:${TOKEN}`)}\n`),
    ).toBe(true);
    expect(process.exitCode).toBe(1); // the run itself failed, as it must here
  });
});
