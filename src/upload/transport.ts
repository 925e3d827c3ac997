// The one thing the uploader needs from the registry client (src/registry/registry-client.ts): send a request with the
// repository's push,pull credentials, within a deadline, and hand back the (small) answer.
//
// What the uploader relies on: send() sends a request at most once with its body on the wire to the upload (a 401
// replay is fine: the registry refused it before reading), never replays a PATCH or PUT that may have reached the
// registry (distribution 2.8 appends re-sent bytes); a failure without an answer (reset, deadline) rejects; an
// aborted signal rejects promptly and sends nothing more.
export type {
  RegistryTransport,
  RegistryRequest as TransportRequest,
  RegistryResponse as TransportResponse,
} from '../registry/registry-client.js';
