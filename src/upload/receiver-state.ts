// What the loopback receiver holds while a push runs: its caps, the upload sessions, the blobs and the one manifest
// received, and the counters its caller reads (requests, progress, refusals, the first failure). Kept apart from
// the request handlers so each endpoint's module reads and changes the same ledger.
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Incoming, ReceivedBlob } from './receiver-incoming.js';

export interface ReceivedManifest {
  readonly reference: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly digest: string;
}

/** Blob bytes that count as progress for the watchdog (an engine on loopback sends this in milliseconds). */
export const PROGRESS_BYTES = 256 * 1024;

/** A refusal, answered as the registry API's error document with this status and code. */
export class ReceiveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The caps of one receiver (ReceiverOptions with their defaults filled in). */
export interface Limits {
  readonly maxBlob: number;
  readonly maxTotal: number;
  readonly maxManifest: number;
  readonly maxSessions: number;
  readonly headWaitMs: number;
}

/** One upload session: the file and hash of the bytes so far. */
export interface Session {
  readonly id: string;
  readonly file: string;
  fh: FileHandle | null;
  readonly hash: Hash;
  size: number;
  busy: boolean;
  /** Set when the blob was announced at its first byte. */
  incoming: Incoming | null;
}

export class ReceiverState {
  readonly sessions = new Map<string, Session>();
  readonly blobs = new Map<string, ReceivedBlob>();
  /** Blobs announced at their first byte and not yet whole: close() fails these. */
  readonly incoming = new Set<Incoming>();
  readonly manifests = new Map<string, ReceivedManifest>();
  readonly refused = { noCredential: 0, wrongCredential: 0 };
  sessionCount = 0;
  /** Blob bytes accepted over all blobs (the total cap). */
  total = 0;
  requests = 0;
  lastProgress = Date.now();
  failure: Error | null = null;
  private sinceProgress = 0;

  /** Counts blob bytes (or a blob or manifest stored) towards progress; a trickle of bytes moves it only slowly. */
  progressed(bytes: number | 'stored'): void {
    this.sinceProgress += bytes === 'stored' ? PROGRESS_BYTES : bytes;
    if (this.sinceProgress < PROGRESS_BYTES) return;
    this.sinceProgress = 0;
    this.lastProgress = Date.now();
  }

  /** Keeps the first failure for the caller and fails the blob's readers, if it was announced. */
  failBlob(inc: Incoming | null, e: Error): void {
    this.failure ??= e;
    inc?.fail(e);
  }
}

/** What every endpoint's handler is given: the ledger, the caps and the one repository and tag accepted. */
export interface ReceiverContext {
  readonly state: ReceiverState;
  readonly limits: Limits;
  /** Where blob files go. */
  readonly dir: string;
  /** "/v2/<repository>/" */
  readonly prefix: string;
  readonly tag: string;
  /** The run's credential as USER:PASSWORD. */
  readonly expected: Buffer;
  readonly onBlob: (blob: ReceivedBlob) => void;
}

/** Answers the request (the registry API version header added). */
export type Send = (status: number, headers?: Record<string, string>, body?: string) => void;
