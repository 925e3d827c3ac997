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
// repository and one tag, whose names the caller makes with a run id, and one manifest in all; bytes capped per
// blob and in total, documents capped, sessions and connections counted, idle sockets and slow headers timed out.
// Its port and repository are on `docker push`'s command line (/proc/*/cmdline), so every request must carry the
// run's own Basic credential (the caller writes it into the docker config the push reads; the engine sends it after
// our 401 challenge, as to any registry): any other local process is refused before a byte of its body is read.
import { createHash, randomBytes, timingSafeEqual, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BlobSource } from '../image/blob-source.js';

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
  /** The one tag a manifest may be PUT under (or its own digest). */
  readonly tag: string;
  /** The Basic credential every request must carry (the run's own, random). */
  readonly credential: { readonly username: string; readonly password: string };
  /** A blob's digest and size are known (at its first byte, or after its last): start its upload. */
  readonly onBlob: (blob: ReceivedBlob) => void;
  /** Default 64 GiB per blob. */
  readonly maxBlobBytes?: number;
  /** Default 256 GiB over all blobs. */
  readonly maxTotalBytes?: number;
  /** Default 4 MiB (a manifest); larger documents are refused. */
  readonly maxManifestBytes?: number;
  /** Upload sessions at most (default 1,000: one per blob, a few retries). */
  readonly maxSessions?: number;
  /** Connections open at once (default MAX_CONNECTIONS); more are closed at once. */
  readonly maxConnections?: number;
  /** A socket idle this long is closed (default 120 s). */
  readonly idleMs?: number;
  /** A HEAD of a blob still arriving waits this long for it, then answers 404 (default 30 s). */
  readonly headWaitMs?: number;
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
  /** Date.now() of the push's last real progress (another PROGRESS_BYTES of blob bytes accepted, a blob or the
   *  manifest stored), from credentialed requests only: a progress watchdog reads it, and a sender trickling
   *  bytes does not move it. */
  readonly lastProgress: number;
  /** The most connections that were open at once (the cap's excess never counted: those are closed at once). */
  readonly peakConnections: number;
  /** Requests refused for their credential: none (an engine asks once before it is challenged) or a wrong one. */
  readonly refused: { readonly noCredential: number; readonly wrongCredential: number };
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
/** Blob bytes that count as progress for the watchdog (an engine on loopback sends this in milliseconds). */
export const PROGRESS_BYTES = 256 * 1024;
const REALM = 'Basic realm="replicated-push receiver"';
/**
 * Connections at once. Engine B (containerd store) opens about one and a half per blob, all at once (measured for
 * an image of 61 blobs: 61 and 91, its https probe of each request counted), engine A five; an image has at most
 * 127 layers (the overlay limit) and a config, so 512 holds any push and still bounds what anyone else can hold.
 */
export const MAX_CONNECTIONS = 512;

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

/** Whether an Authorization header is exactly Basic USER:PASSWORD (compared in constant time). */
export function basicMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header ?? '');
  if (!m) return false;
  const got = Buffer.from(m[1], 'base64');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export async function startLoopbackReceiver(opts: ReceiverOptions): Promise<LoopbackReceiver> {
  if (!NAME.test(opts.repository)) throw new Error(`not a repository name: ${opts.repository}`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(opts.tag)) throw new Error(`not a tag: ${opts.tag}`);
  const { username, password } = opts.credential;
  if (!username || !password || username.includes(':')) throw new Error('the receiver needs a username and password');
  const expected = Buffer.from(`${username}:${password}`);
  const maxBlob = opts.maxBlobBytes ?? 64 * 1024 ** 3;
  const maxTotal = opts.maxTotalBytes ?? 256 * 1024 ** 3;
  const maxManifest = opts.maxManifestBytes ?? 4 * 1024 * 1024;
  const maxSessions = opts.maxSessions ?? 1_000;
  const headWaitMs = opts.headWaitMs ?? 30_000;
  const prefix = `/v2/${opts.repository}/`;
  const sessions = new Map<string, Session>();
  const blobs = new Map<string, ReceivedBlob>();
  const incoming = new Set<Incoming>();
  const manifests = new Map<string, ReceivedManifest>();
  let sessionCount = 0;
  let total = 0;
  let requests = 0;
  let lastProgress = Date.now();
  let sinceProgress = 0;
  const refused = { noCredential: 0, wrongCredential: 0 };
  let failure: Error | null = null;
  const progressed = (bytes: number | 'stored') => {
    sinceProgress += bytes === 'stored' ? PROGRESS_BYTES : bytes;
    if (sinceProgress < PROGRESS_BYTES) return;
    sinceProgress = 0;
    lastProgress = Date.now();
  };

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
        if (s.size + chunk.length > maxBlob)
          throw new ReceiveError(413, 'SIZE_INVALID', `a blob over ${maxBlob} bytes`);
        if (total + chunk.length > maxTotal)
          throw new ReceiveError(413, 'SIZE_INVALID', `the image over ${maxTotal} bytes`);
        if (inc && s.size + chunk.length > inc.size)
          throw new ReceiveError(400, 'SIZE_INVALID', `blob ${inc.digest} longer than its ${inc.size} bytes`);
        s.hash.update(chunk);
        s.size += chunk.length;
        total += chunk.length;
        progressed(chunk.length);
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
    // Before anything else, the body unread: no other local process gets a byte stored or a wait held.
    const auth = req.headers.authorization;
    if (!basicMatches(auth, expected)) {
      if (auth === undefined) refused.noCredential++;
      else refused.wrongCredential++;
      throw new ReceiveError(401, 'UNAUTHORIZED', 'authentication required');
    }
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
        progressed('stored');
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
      // a blob still arriving (another of the engine's requests) is waited for, but not for ever
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('late')), headWaitMs);
      });
      try {
        await Promise.race([b.done, late]);
      } catch {
        throw new ReceiveError(404, 'BLOB_UNKNOWN', 'blob unknown');
      } finally {
        clearTimeout(timer);
      }
      return send(200, { 'Content-Length': String(b.size), 'Docker-Content-Digest': b.digest });
    }

    if ((m = /^manifests\/([A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[a-f0-9]{64})$/.exec(rest))) {
      const reference = m[1];
      if (method === 'HEAD' || method === 'GET') {
        req.resume();
        throw new ReceiveError(404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      }
      if (method !== 'PUT') throw new ReceiveError(405, 'UNSUPPORTED', method);
      if (!reference.startsWith('sha256:') && reference !== opts.tag)
        throw new ReceiveError(400, 'TAG_INVALID', `a manifest under ${reference}, not the push's tag`);
      // The first manifest is the one kept and the only one held (a second could only come from someone else).
      if (manifests.size > 0) throw new ReceiveError(400, 'MANIFEST_INVALID', 'a manifest was already received');
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
      if (manifests.size > 0) throw new ReceiveError(400, 'MANIFEST_INVALID', 'a manifest was already received');
      manifests.set(reference, { reference, mediaType, bytes, digest });
      progressed('stored');
      return send(201, { Location: `${prefix}manifests/${digest}`, 'Docker-Content-Digest': digest });
    }
    req.resume();
    throw new ReceiveError(404, 'UNSUPPORTED', `${method} ${rest}`);
  }

  /** Answers a refused request; never throws (a throw here would be an unhandled rejection, ending the run
   *  before its cleanup), a socket it cannot answer is cut. */
  const refuse = (req: IncomingMessage, res: ServerResponse, e: unknown) => {
    try {
      const err = e instanceof ReceiveError ? e : new ReceiveError(500, 'UNKNOWN', String((e as Error)?.message ?? e));
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = JSON.stringify({ errors: [{ code: err.code, message: err.message }] });
      res.writeHead(err.status, {
        'Content-Type': 'application/json',
        'Docker-Distribution-API-Version': 'registry/2.0',
        ...(err.status === 401 ? { 'WWW-Authenticate': REALM } : {}),
        // a request whose body was not read cannot share its connection with the next
        ...(req.complete ? {} : { Connection: 'close' }),
      });
      res.end(body);
      // a request refused mid-body is not read further
      if (!req.complete) req.destroy();
    } catch {
      res.destroy();
    }
  };
  const server: Server = createServer((req, res) => {
    requests++;
    handle(req, res).catch((e: unknown) => refuse(req, res, e));
  });
  // (no 'clientError' handler: node's own answers a TLS hello with a plain 400, which is how containerd learns to
  // fall back to http for this insecure registry; cutting the socket instead fails its push with EOF)
  const idleMs = opts.idleMs ?? 120_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 0; // a 2 GB blob may take long; the idle timeout below ends a stalled one
  server.setTimeout(idleMs, (socket) => socket.destroy());
  server.maxHeadersCount = 100;
  server.maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  let connections = 0;
  let peakConnections = 0;
  server.on('connection', (socket) => {
    peakConnections = Math.max(peakConnections, ++connections);
    socket.once('close', () => connections--);
  });
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
    get peakConnections() {
      return peakConnections;
    },
    get lastProgress() {
      return lastProgress;
    },
    refused,
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
