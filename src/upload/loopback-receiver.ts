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
// The parts: receiver-state.ts (caps, sessions, the ledger), receiver-incoming.ts (a blob being written and its
// readers), receiver-credential.ts, receiver-routes.ts (the router and refusals), receiver-blobs.ts and
// receiver-manifest.ts (the endpoints). This module starts the server and bounds its connections.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReceivedBlob } from './receiver-incoming.js';
import { refuse, route } from './receiver-routes.js';
import { ReceiverState, type Limits, type ReceivedManifest, type ReceiverContext } from './receiver-state.js';

export type { ReceivedBlob } from './receiver-incoming.js';
export { basicMatches } from './receiver-credential.js';
export { PROGRESS_BYTES, type ReceivedManifest } from './receiver-state.js';

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

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
/**
 * Connections at once. Engine B (containerd store) opens about one and a half per blob, all at once (measured for
 * an image of 61 blobs: 61 and 91, its https probe of each request counted), engine A five; an image has at most
 * 127 layers (the overlay limit) and a config, so 512 holds any push and still bounds what anyone else can hold.
 */
export const MAX_CONNECTIONS = 512;

/** Checks the names and credential, and fills in the caps' defaults. */
function contextOf(opts: ReceiverOptions, state: ReceiverState): ReceiverContext {
  if (!NAME.test(opts.repository)) throw new Error(`not a repository name: ${opts.repository}`);
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(opts.tag)) throw new Error(`not a tag: ${opts.tag}`);
  const { username, password } = opts.credential;
  if (!username || !password || username.includes(':')) throw new Error('the receiver needs a username and password');
  const limits: Limits = {
    maxBlob: opts.maxBlobBytes ?? 64 * 1024 ** 3,
    maxTotal: opts.maxTotalBytes ?? 256 * 1024 ** 3,
    maxManifest: opts.maxManifestBytes ?? 4 * 1024 * 1024,
    maxSessions: opts.maxSessions ?? 1_000,
    headWaitMs: opts.headWaitMs ?? 30_000,
  };
  return {
    state,
    limits,
    dir: opts.dir,
    prefix: `/v2/${opts.repository}/`,
    tag: opts.tag,
    expected: Buffer.from(`${username}:${password}`),
    onBlob: opts.onBlob,
  };
}

/** The server with its timeouts and connection cap; `peak()` is the most connections open at once. */
function serve(ctx: ReceiverContext, opts: ReceiverOptions): { server: Server; peak: () => number } {
  const server: Server = createServer((req, res) => {
    ctx.state.requests++;
    route(ctx, req, res).catch((e: unknown) => refuse(req, res, e));
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
  return { server, peak: () => peakConnections };
}

/** Stops listening, ends open requests, fails blobs still arriving and closes the sessions' files. */
async function closeReceiver(server: Server, state: ReceiverState): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
  for (const inc of state.incoming)
    state.failBlob(inc, new Error(`the push ended before blob ${inc.digest} was whole`));
  state.incoming.clear();
  await Promise.allSettled([...state.sessions.values()].map((s) => s.fh?.close()));
  state.sessions.clear();
}

export async function startLoopbackReceiver(opts: ReceiverOptions): Promise<LoopbackReceiver> {
  const state = new ReceiverState();
  const ctx = contextOf(opts, state);
  const { server, peak } = serve(ctx, opts);
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
    blobs: state.blobs,
    manifests: state.manifests,
    get requests() {
      return state.requests;
    },
    get peakConnections() {
      return peak();
    },
    get lastProgress() {
      return state.lastProgress;
    },
    refused: state.refused,
    get failure() {
      return state.failure;
    },
    close: () => closeReceiver(server, state),
  };
}
