// The bench's shaped link (test/support/shaped-link.ts) must really shape: a round trip takes at least twice its
// latency and a transfer at least size / rate, each way, and every byte arrives in order. Lower bounds only: a
// loaded machine makes a transfer slower, never faster.
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
import { performance } from 'node:perf_hooks';
import { startShapedLink, type ShapedLink } from '../../test/support/shaped-link.js';

let echo: Server;
let link: ShapedLink;

beforeAll(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const port = (echo.address() as { port: number }).port;
  link = await startShapedLink({ upstream: `127.0.0.1:${port}`, mbps: 20, latencyMs: 30 });
});

afterAll(async () => {
  await link.stop();
  await new Promise<void>((r) => echo.close(() => r()));
});

/** Writes `parts` through the link to the echo server; resolves with what came back and how long it took. */
function roundTrip(...parts: Buffer[]): Promise<{ back: Buffer; ms: number }> {
  const [host, port] = link.host.split(':');
  const length = parts.reduce((n, p) => n + p.length, 0);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const s = connect({ host, port: Number(port) }, () => {
      for (const p of parts) s.write(p);
    });
    const chunks: Buffer[] = [];
    let got = 0;
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= length) {
        s.end();
        resolve({ back: Buffer.concat(chunks), ms: performance.now() - started });
      }
    });
    s.on('error', reject);
  });
}

it('adds its latency each way to a small round trip', async () => {
  const { back, ms } = await roundTrip(Buffer.from('ping'));
  expect(back.toString()).toBe('ping');
  expect(ms).toBeGreaterThanOrEqual(60);
});

it('delivers 4 MB each way no faster than 20 MB/s, every byte in order', async () => {
  const data = randomBytes(4_000_000);
  const upBefore = link.bytes.up;
  const { back, ms } = await roundTrip(data);
  expect(back.equals(data)).toBe(true);
  // 4 MB at 20 MB/s is 200 ms up; the echo streams it back as it comes, so the whole is at least that plus latency
  expect(ms).toBeGreaterThanOrEqual(200 + 60);
  expect(link.bytes.up - upBefore).toBe(data.length);
});

it('keeps the order of many small writes made in one moment', async () => {
  const parts = Array.from({ length: 3000 }, (_, i) => Buffer.from(`${i},`));
  const { back } = await roundTrip(...parts);
  expect(back.toString()).toBe(Buffer.concat(parts).toString());
});
