// The one thing the uploader needs from the registry client: send a request with the repository's push,pull
// credentials, within a deadline, and hand back the (small) answer. Declared here until src/registry-client.ts
// exports it with exactly this shape; then this file re-exports that one.
//
// Contract the uploader relies on: a request is sent at most once by send() itself. A transport must never replay a
// PATCH or PUT that may have reached the registry (distribution 2.8 appends re-sent bytes); replaying after a 401
// challenge is fine (the registry refused it before reading the upload). A failure without an answer (reset, deadline)
// rejects; an aborted signal rejects promptly and sends nothing more.
import type { Readable } from 'node:stream';

export interface TransportRequest {
  method: string;
  /** An absolute URL (a Location) or a path starting /v2/. */
  url: string;
  /** For the token scope. */
  repository: string;
  /** Scope push,pull (else pull). */
  push?: boolean;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  deadlineMs?: number;
  signal?: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: { get(name: string): string | null };
  body: Buffer;
}

export interface RegistryTransport {
  send(req: TransportRequest): Promise<TransportResponse>;
}
