// The run's ledger of blobs (issue 20: several images in one step): digest -> the repository on the target registry
// that is uploading it or has it, and a promise of that upload's end. Images that share a layer (a base image, a
// runtime) are pushed side by side; without the ledger each would send the same bytes, since neither one's HEAD
// finds what the other has not finished. uploadBlob (blob.ts) asks it before its HEAD: the first to ask uploads;
// another image's upload of the same digest is awaited, then the blob is mounted from that repository (blob-mount.ts)
// or found by HEAD. Only the action's own uploader asks: `docker push` does its own mounts.
import { abortError } from './errors.js';

/** What uploadBlob is told: upload it yourself (and say when done), or wait for another repository's upload. */
export type BlobClaim =
  | { readonly kind: 'upload'; done(ok: boolean): void }
  | { readonly kind: 'wait'; readonly repository: string; readonly end: Promise<boolean> };

interface Entry {
  readonly repository: string;
  /** Resolves true when the registry holds the blob in `repository`, false when that upload failed. */
  readonly end: Promise<boolean>;
}

export class SharedBlobs {
  private readonly entries = new Map<string, Entry>();

  /**
   * The first caller for a digest uploads it; while its upload runs (or after it succeeded), every other caller
   * waits on it. A failed upload leaves no entry: the next caller uploads it itself.
   */
  claim(digest: string, repository: string): BlobClaim {
    const entry = this.entries.get(digest);
    if (entry) return { kind: 'wait', repository: entry.repository, end: entry.end };
    let settle: (ok: boolean) => void = () => undefined;
    const end = new Promise<boolean>((resolve) => (settle = resolve));
    this.entries.set(digest, { repository, end });
    return {
      kind: 'upload',
      done: (ok) => {
        if (!ok && this.entries.get(digest)?.end === end) this.entries.delete(digest);
        settle(ok);
      },
    };
  }
}

/** The other upload's end (true: the registry holds the blob there); rejects at once on a cancel. */
export async function awaitUpload(
  end: Promise<boolean>,
  digest: string,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (signal?.aborted) throw abortError(signal, digest, 'exists');
  let onAbort = () => undefined as void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal, digest, 'exists'));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([end, aborted]);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
