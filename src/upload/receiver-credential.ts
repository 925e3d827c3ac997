// The loopback receiver's port and repository are on `docker push`'s command line (/proc/*/cmdline), so every
// request must carry the run's own Basic credential: any other local process is refused here, before a byte of its
// body is read.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ReceiveError } from './receiver-state.js';

/** The challenge a refused request gets; the engine answers it with the credential from its docker config. */
export const REALM = 'Basic realm="replicated-push receiver"';

/** Whether an Authorization header is exactly Basic USER:PASSWORD (compared in constant time). */
export function basicMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Basic ([A-Za-z0-9+/=]{1,1024})$/i.exec(header ?? '');
  if (!m) return false;
  const got = Buffer.from(m[1], 'base64');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** Throws a 401 for a request without the run's credential, counting it by kind (none, or a wrong one). */
export function requireCredential(
  req: IncomingMessage,
  expected: Buffer,
  refused: { noCredential: number; wrongCredential: number },
): void {
  const auth = req.headers.authorization;
  if (basicMatches(auth, expected)) return;
  if (auth === undefined) refused.noCredential++;
  else refused.wrongCredential++;
  throw new ReceiveError(401, 'UNAUTHORIZED', 'authentication required');
}
