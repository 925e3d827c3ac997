// A registry endpoint of the action's own, on 127.0.0.1, that only receives: `docker push` to it hands over the
// image exactly as the engine pushes it (its own compressed blobs on the containerd store, read straight from the
// store; the manifest `docker push --platform` makes), much faster than `docker save` exports a content store
// (measured for issue 12: 120 MB in ~1.1 s against ~3.6 s). Every blob goes to a file under the work directory as
// it arrives, hashed on the way; a blob whose digest and size are known when its bytes start (containerd's single
// PUT ?digest= with Content-Length) is announced at once, so the upload to the real registry can follow the bytes
// while they arrive (ReceivedBlob.source reads the growing file and holds back the last byte until the digest is
// verified, so no upload can be committed with bytes that turn out wrong).
// Only what a push needs is answered: GET /v2/, HEAD of a blob (what it received), blob upload sessions (POST,
// PATCH in order, PUT ?digest=), HEAD of a manifest (404: the engine always sends it) and manifest PUT. Only one
// repository, whose name the caller makes with a run id; bytes capped per blob and in total, documents capped,
// sessions counted, idle sockets and slow headers timed out.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BlobSource } from './source.js';

export interface ReceivedBlob {
  readonly digest: string;
  readonly size: number;
  readonly file: string;
  /** Reads the blob from `offset`, following the file while it is written; fails if the blob does. */
  readonly source: BlobSource;
  /** Resolves once every byte is written and the digest checked; rejects when the blob failed. */
  readonly done: Promise<void>;
}

export interface ReceivedManifest {
  readonly reference: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly digest: string;
}

export interface ReceiverOptions {
  /** Where blob files go (exists already); the caller removes it. */
  readonly dir: string;
  /** The one repository accepted, e.g. "replicated-push-<runid>/upload". */
  readonly repository: string;
  /** A blob's digest and size are known (at its first byte, or after its last): start its upload. */
  readonly onBlob: (blob: ReceivedBlob) => void;
  /** Default 64 GiB per blob. */
  readonly maxBlobBytes?: number;
  /** Default 256 GiB over all blobs. */
  readonly maxTotalBytes?: number;
  /** Default 4 MiB (a manifest); larger documents are refused. */
  readonly maxManifestBytes?: number;
  /** Upload sessions at most (default 10,000). */
  readonly maxSessions?: number;
  /** A socket idle this long is closed (default 120 s). */
  readonly idleMs?: number;
}

export interface LoopbackReceiver {
  /** "127.0.0.1:PORT" */
  readonly host: string;
  /** Blobs received and verified, by digest. */
  readonly blobs: ReadonlyMap<string, ReceivedBlob>;
  /** Manifests PUT, by reference (tag or digest). */
  readonly manifests: ReadonlyMap<string, ReceivedManifest>;
  /** Requests heard (0: the engine never reached us, as when it runs in another network namespace). */
  readonly requests: number;
  /** Date.now() of the last request start or body chunk: an idle watchdog reads it. */
  readonly lastActivity: number;
  /** The first blob that failed (digest mismatch, cap, a request cut short), if any. */
  readonly failure: Error | null;
  /** Stops listening, ends open requests, fails blobs still arriving. */
  close(): Promise<void>;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
const MANIFEST_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
]);
const READ_SIZE = 1024 * 1024;
const WRITE_BATCH = 1024 * 1024;

class ReceiveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A blob being written: its bytes so far, and who waits for more. */
class Incoming {
  written = 0;
  verified = false;
  error: Error | null = null;
  private waiters: Array<() => void> = [];
  readonly done: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: Error) => void };

  constructor(
    readonly file: string,
    readonly digest: string,
    readonly size: number,
  ) {
    this.done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => undefined); // the caller may never ask; a failure is also in `error`
  }

  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  grew(n: number): void {
    this.written += n;
    this.wake();
  }

  finish(): void {
    this.verified = true;
    this.settle.resolve();
    this.wake();
  }

  fail(e: Error): void {
    if (this.verified || this.error) return;
    this.error = e;
    this.settle.reject(e);
    this.wake();
  }

  /** Up to where a reader may go now: the last byte only once the digest is checked. */
  readable(): number {
    return this.verified ? this.size : Math.min(this.written, this.size - 1);
  }

  blob(): ReceivedBlob {
    return {
      digest: this.digest,
      size: this.size,
      file: this.file,
      done: this.done,
      source: {
        digest: this.digest,
        size: this.size,
        mediaType: 'application/octet-stream',
        open: (offset) => Readable.from(tail(this, offset), { objectMode: false }),
      },
    };
  }
}

/** A received blob from `offset`, following its file while it is written; the last byte once it is verified. */
async function* tail(inc: Incoming, offset: number): AsyncGenerator<Buffer> {
  let fh: FileHandle | null = null;
  try {
    fh = await open(inc.file, 'r');
    let pos = offset;
    while (pos < inc.size) {
      if (inc.error) throw inc.error;
      const upTo = inc.readable();
      if (pos >= upTo) {
        await inc.wait();
        continue;
      }
      const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, upTo - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error(`${inc.file} ended at ${pos} of ${upTo} bytes written`);
      pos += bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh?.close();
  }
}

/** One upload session: the file and hash of the bytes so far. */
interface Session {
  readonly id: string;
  readonly file: string;
  fh: FileHandle | null;
  readonly hash: Hash;
  size: number;
  busy: boolean;
  /** Set when the blob was announced at its first byte. */
  incoming: Incoming | null;
}

export async function startLoopbackReceiver(opts: ReceiverOptions): Promise<LoopbackReceiver> {
  if (!NAME.test(opts.repository)) throw new Error(`not a repository name: ${opts.repository}`);
  const maxBlob = opts.maxBlobBytes ?? 64 * 1024 ** 3;
  const maxTotal = opts.maxTotalBytes ?? 256 * 1024 ** 3;
  const maxManifest = opts.maxManifestBytes ?? 4 * 1024 * 1024;
  const maxSessions = opts.maxSessions ?? 10_000;
  const prefix = `/v2/${opts.repository}/`;
  const sessions = new Map<string, Session>();
  const blobs = new Map<string, ReceivedBlob>();
  const incoming = new Set<Incoming>();
  const manifests = new Map<string, ReceivedManifest>();
  let sessionCount = 0;
  let total = 0;
  let requests = 0;
  let lastActivity = Date.now();
  let failure: Error | null = null;

  const failBlob = (inc: Incoming | null, e: Error) => {
    failure ??= e;
    inc?.fail(e);
  };

  /**
   * Appends a request body to a session, hashing it; honours the caps. One write at a time is under way while the
   * next bytes are received (batched up to WRITE_BATCH meanwhile): awaiting a write per socket read (64 KiB) would
   * make the engine wait on the thread pool for each.
   */
  async function append(s: Session, req: IncomingMessage, inc: Incoming | null): Promise<void> {
    const fh = (s.fh ??= await open(s.file, 'a'));
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let writing: Promise<void> = Promise.resolve();
    let busy = false;
    const flush = () => {
      const parts = batch;
      const n = batchBytes;
      batch = [];
      batchBytes = 0;
      busy = true;
      writing = writing.then(async () => {
        await fh.writev(parts);
        busy = false;
        inc?.grew(n);
      });
      writing.catch(() => undefined); // awaited below; this keeps a failed write from being unhandled meanwhile
      return writing;
    };
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        lastActivity = Date.now();
        if (s.size + chunk.length > maxBlob)
          throw new ReceiveError(413, 'SIZE_INVALID', `a blob over ${maxBlob} bytes`);
        if (total + chunk.length > maxTotal)
          throw new ReceiveError(413, 'SIZE_INVALID', `the image over ${maxTotal} bytes`);
        if (inc && s.size + chunk.length > inc.size)
          throw new ReceiveError(400, 'SIZE_INVALID', `blob ${inc.digest} longer than its ${inc.size} bytes`);
        s.hash.update(chunk);
        s.size += chunk.length;
        total += chunk.length;
        batch.push(chunk);
        batchBytes += chunk.length;
        // written at once when the file is idle (a reader follows closely), batched while a write is under way
        if (!busy) void flush();
        else if (batchBytes >= WRITE_BATCH) {
          await writing; // at most one batch being written while the next is received
          void flush();
        }
      }
      if (batchBytes) void flush();
    } finally {
      await writing;
    }
  }

  function session(id: string): Session {
    const s = sessions.get(id);
    if (!s) throw new ReceiveError(404, 'BLOB_UPLOAD_UNKNOWN', `no upload ${id}`);
    if (s.busy) throw new ReceiveError(409, 'BLOB_UPLOAD_INVALID', `upload ${id} is busy`);
    return s;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const send = (status: number, headers: Record<string, string> = {}, body = '') => {
      res.writeHead(status, { 'Docker-Distribution-API-Version': 'registry/2.0', ...headers });
      res.end(body);
    };
    if (path === '/v2/' || path === '/v2') return send(200, { 'Content-Type': 'application/json' }, '{}');
    if (!path.startsWith(prefix)) throw new ReceiveError(404, 'NAME_UNKNOWN', 'not this repository');
    const rest = path.slice(prefix.length);
    let m: RegExpExecArray | null;

    if (method === 'POST' && rest === 'blobs/uploads/') {
      // a cross-repository mount (?mount=&from=) is answered with a new session: nothing is mounted here
      if (url.searchParams.has('digest')) throw new ReceiveError(405, 'UNSUPPORTED', 'monolithic POST');
      if (++sessionCount > maxSessions) throw new ReceiveError(429, 'TOOMANYREQUESTS', 'too many uploads');
      const id = randomBytes(12).toString('hex');
      sessions.set(id, {
        id,
        file: join(opts.dir, `upload-${id}`),
        fh: null,
        hash: createHash('sha256'),
        size: 0,
        busy: false,
        incoming: null,
      });
      req.resume();
      return send(202, { Location: `${prefix}blobs/uploads/${id}`, 'Docker-Upload-UUID': id, Range: '0-0' });
    }

    if ((m = /^blobs\/uploads\/([a-f0-9]{24})$/.exec(rest)) && (method === 'PATCH' || method === 'PUT')) {
      const s = session(m[1]);
      s.busy = true;
      try {
        const range = req.headers['content-range'];
        const start = typeof range === 'string' ? Number(/^(?:bytes )?(\d+)-/.exec(range)?.[1] ?? NaN) : s.size;
        if (start !== s.size) throw new ReceiveError(416, 'BLOB_UPLOAD_INVALID', `range ${range} at ${s.size}`);
        if (method === 'PATCH') {
          await append(s, req, null);
          return send(202, {
            Location: `${prefix}blobs/uploads/${s.id}`,
            'Docker-Upload-UUID': s.id,
            Range: `0-${Math.max(0, s.size - 1)}`,
          });
        }
        const digest = url.searchParams.get('digest') ?? '';
        if (!DIGEST.test(digest)) throw new ReceiveError(400, 'DIGEST_INVALID', `digest ${digest}`);
        const length = Number(req.headers['content-length'] ?? NaN);
        // The whole blob in this request, its size said: announce it now, so its upload follows the bytes.
        let inc: Incoming | null = null;
        if (s.size === 0 && Number.isSafeInteger(length) && length > 0 && !blobs.has(digest)) {
          if (length > maxBlob) throw new ReceiveError(413, 'SIZE_INVALID', `a blob over ${maxBlob} bytes`);
          inc = new Incoming(s.file, digest, length);
          incoming.add(inc);
          blobs.set(digest, inc.blob());
          opts.onBlob(inc.blob());
        }
        try {
          await append(s, req, inc);
          await s.fh?.close();
          s.fh = null;
          const got = `sha256:${s.hash.digest('hex')}`;
          if (got !== digest) throw new ReceiveError(400, 'DIGEST_INVALID', `blob ${digest} hashed to ${got}`);
          if (inc && s.size !== inc.size)
            throw new ReceiveError(400, 'SIZE_INVALID', `blob ${digest} has ${s.size} of ${inc.size} bytes`);
        } catch (e) {
          failBlob(inc, e as Error);
          if (inc && blobs.get(digest) && !inc.verified) blobs.delete(digest);
          throw e;
        }
        sessions.delete(s.id);
        if (inc) {
          inc.finish();
          incoming.delete(inc);
        } else if (!blobs.has(digest)) {
          if (s.size === 0) await (await open(s.file, 'a')).close(); // an empty blob still has a file
          const done = new Incoming(s.file, digest, s.size);
          done.grew(s.size);
          done.finish();
          blobs.set(digest, done.blob());
          opts.onBlob(done.blob());
        }
        return send(201, { Location: `${prefix}blobs/${digest}`, 'Docker-Content-Digest': digest });
      } finally {
        s.busy = false;
      }
    }

    if ((m = /^blobs\/(sha256:[a-f0-9]{64})$/.exec(rest)) && (method === 'HEAD' || method === 'GET')) {
      req.resume();
      const b = blobs.get(m[1]);
      if (!b || method === 'GET') throw new ReceiveError(404, 'BLOB_UNKNOWN', 'blob unknown');
      await b.done.catch(() => {
        throw new ReceiveError(404, 'BLOB_UNKNOWN', 'blob unknown');
      });
      return send(200, { 'Content-Length': String(b.size), 'Docker-Content-Digest': b.digest });
    }

    if ((m = /^manifests\/([A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[a-f0-9]{64})$/.exec(rest))) {
      const reference = m[1];
      if (method === 'HEAD' || method === 'GET') {
        req.resume();
        throw new ReceiveError(404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      }
      if (method !== 'PUT') throw new ReceiveError(405, 'UNSUPPORTED', method);
      const mediaType = String(req.headers['content-type'] ?? '')
        .split(';')[0]
        .trim();
      if (!MANIFEST_TYPES.has(mediaType)) throw new ReceiveError(400, 'MANIFEST_INVALID', `type ${mediaType}`);
      const parts: Buffer[] = [];
      let n = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        n += chunk.length;
        if (n > maxManifest) throw new ReceiveError(413, 'SIZE_INVALID', `a manifest over ${maxManifest} bytes`);
        parts.push(chunk);
      }
      const bytes = Buffer.concat(parts);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      if (reference.startsWith('sha256:') && reference !== digest)
        throw new ReceiveError(400, 'DIGEST_INVALID', `manifest ${reference} hashed to ${digest}`);
      // The first manifest under a reference is the one kept: one that came later (another local process that read
      // the push's command line) is refused, so it can never replace what the engine sent; one that came first makes
      // the engine's own PUT fail, and with it the push.
      if (manifests.has(reference))
        throw new ReceiveError(400, 'MANIFEST_INVALID', `a manifest was already received under ${reference}`);
      manifests.set(reference, { reference, mediaType, bytes, digest });
      return send(201, { Location: `${prefix}manifests/${digest}`, 'Docker-Content-Digest': digest });
    }
    req.resume();
    throw new ReceiveError(404, 'UNSUPPORTED', `${method} ${rest}`);
  }

  const server: Server = createServer((req, res) => {
    requests++;
    lastActivity = Date.now();
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof ReceiveError ? e : new ReceiveError(500, 'UNKNOWN', (e as Error).message);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = JSON.stringify({ errors: [{ code: err.code, message: err.message }] });
      res.writeHead(err.status, {
        'Content-Type': 'application/json',
        'Docker-Distribution-API-Version': 'registry/2.0',
        Connection: 'close',
      });
      res.end(body);
      // a request refused mid-body is not read further
      if (!req.complete) req.destroy();
    });
  });
  const idleMs = opts.idleMs ?? 120_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // a 2 GB blob may take long; the idle timeout below ends a stalled one
  server.setTimeout(idleMs, (socket) => socket.destroy());
  server.maxHeadersCount = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    host: `127.0.0.1:${port}`,
    blobs,
    manifests,
    get requests() {
      return requests;
    },
    get lastActivity() {
      return lastActivity;
    },
    get failure() {
      return failure;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      for (const inc of incoming) failBlob(inc, new Error(`the push ended before blob ${inc.digest} was whole`));
      incoming.clear();
      await Promise.allSettled([...sessions.values()].map((s) => s.fh?.close()));
      sessions.clear();
    },
  };
}
