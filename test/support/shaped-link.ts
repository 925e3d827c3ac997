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

/**
 * One direction: chunks released in arrival order, each at max(arrival + latency, when the previous one finished at
 * the link's rate). One queue and one timer: timers of their own could fire out of order (libuv's clock is whole
 * milliseconds), and a reordered byte would be a corrupt upload, not a slow one.
 */
function shape(from: Socket, to: Socket, rate: number, latencyMs: number, count: (n: number) => void): void {
  const queue: { chunk: Buffer; at: number }[] = [];
  let linkFreeAt = 0;
  let queued = 0;
  let timer: NodeJS.Timeout | null = null;
  let ended = false;
  const pump = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0].at <= now) {
      const { chunk } = queue.shift() as { chunk: Buffer; at: number };
      queued -= chunk.length;
      count(chunk.length);
      if (!to.destroyed) to.write(chunk);
    }
    if (queued <= rate && from.isPaused()) from.resume();
    if (queue.length) timer = setTimeout(pump, Math.max(1, queue[0].at - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    const now = performance.now();
    const start = Math.max(now + latencyMs, linkFreeAt);
    linkFreeAt = start + (chunk.length / rate) * 1000;
    queue.push({ chunk, at: linkFreeAt });
    queued += chunk.length;
    if (queued > rate) from.pause(); // more than one second of bytes waiting
    timer ??= setTimeout(pump, Math.max(1, queue[0].at - now));
  });
  from.on('end', () => {
    ended = true;
    if (!queue.length && !timer) to.end();
  });
  from.on('error', () => to.destroy());
  from.on('close', () => {
    if (!ended) to.destroy();
  });
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
