// A link shaped like a runner's uplink, on 127.0.0.1: a TCP relay in front of a loopback registry that delivers each
// direction's bytes no faster than `mbps` and `latencyMs` after they arrived, in order. Docker push and the action's
// uploader go through the same relay, so what a round trip per chunk costs shows for both (issue 21). Back-pressure:
// a direction holding more than one second's worth of bytes stops reading until it drains.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ShapedLinkOptions {
  /** 'HOST:PORT' of what the link leads to. */
  readonly upstream: string;
  /** Bytes per second in each direction (decimal MB: 50 = 50,000,000 B/s). */
  readonly mbps: number;
  /** Added to every byte's trip, each way. */
  readonly latencyMs: number;
}

export interface ShapedLink {
  /** '127.0.0.1:PORT' to use instead of the upstream. */
  readonly host: string;
  /** Bytes relayed towards the upstream, and back. */
  readonly bytes: { up: number; down: number };
  stop(): Promise<void>;
}

/** One direction: chunks released at max(arrival + latency, when the previous one finished at the link's rate). */
function shape(from: Socket, to: Socket, rate: number, latencyMs: number, count: (n: number) => void): void {
  let linkFreeAt = 0;
  let queued = 0;
  const high = rate; // one second of bytes
  from.on('data', (chunk: Buffer) => {
    const now = performance.now();
    const start = Math.max(now + latencyMs, linkFreeAt);
    linkFreeAt = start + (chunk.length / rate) * 1000;
    queued += chunk.length;
    if (queued > high) from.pause();
    setTimeout(() => {
      queued -= chunk.length;
      count(chunk.length);
      if (!to.destroyed) to.write(chunk);
      if (queued <= high && from.isPaused()) from.resume();
    }, linkFreeAt - now);
  });
  from.on('end', () => setTimeout(() => to.end(), Math.max(0, linkFreeAt - performance.now())));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), Math.max(0, linkFreeAt - performance.now()) + 10));
}

export async function startShapedLink(opts: ShapedLinkOptions): Promise<ShapedLink> {
  const [host, port] = [opts.upstream.slice(0, opts.upstream.lastIndexOf(':')), Number(opts.upstream.split(':').pop())];
  const rate = opts.mbps * 1_000_000;
  const bytes = { up: 0, down: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    shape(client, upstream, rate, opts.latencyMs, (n) => (bytes.up += n));
    shape(upstream, client, rate, opts.latencyMs, (n) => (bytes.down += n));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the shaped link has no port');
  return {
    host: `127.0.0.1:${address.port}`,
    bytes,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
