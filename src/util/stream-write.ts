// Writing to a stream with its back-pressure respected: write a chunk, and when the stream asks to wait,
// wait for 'drain', or for 'error' or 'close' (a child's stdin is destroyed without an error when the child
// exits; a destroyed stream emits nothing more, so its state is checked before every write).
//
// The caller keeps its own 'error' listener on the stream for as long as it writes to it: these helpers only
// observe, so an error between two writes never becomes an uncaught exception.

/** What these helpers need of a stream; node's Writable, a child's stdin and a file stream all fit. */
export type WritableSink = NodeJS.WritableStream & {
  readonly destroyed?: boolean;
  readonly errored?: Error | null;
  readonly writableEnded?: boolean;
  readonly writableFinished?: boolean;
};

/** Names the stream in the error when it closes under a writer: "docker load exited before ...". */
export type ClosedError = () => Error;

const defaultClosed: ClosedError = () => new Error('the stream closed before everything was written');

/** The reason the stream can take no more writes, or null while it can. */
export function writeBlocked(out: WritableSink, closed: ClosedError = defaultClosed): Error | null {
  if (out.errored) return out.errored;
  if (out.destroyed || out.writableEnded) return closed();
  return null;
}

/**
 * Writes one chunk; resolves at once while the stream's buffer has room, else on 'drain'. Rejects with the
 * stream's error, or with `closed()` when it closes (or was closed) first.
 */
export async function writeChunk(
  out: WritableSink,
  chunk: Buffer | string,
  closed: ClosedError = defaultClosed,
): Promise<void> {
  const before = writeBlocked(out, closed);
  if (before) throw before;
  if (out.write(chunk)) return;
  await drained(out, closed);
}

/** Waits for 'drain'; rejects on 'error', or with `closed()` on 'close' (or when already destroyed). */
export function drained(out: WritableSink, closed: ClosedError = defaultClosed): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (out.destroyed) return reject(out.errored ?? closed());
    const settle = (e?: Error | null) => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    const onDrain = () => settle();
    const onError = (e: Error) => settle(e);
    const onClose = () => settle(out.errored ?? closed());
    out.once('drain', onDrain);
    out.once('error', onError);
    out.once('close', onClose);
  });
}

/** Ends the stream and resolves once everything written is flushed ('finish'); rejects as `writeChunk` does. */
export function endStream(out: WritableSink, closed: ClosedError = defaultClosed): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (out.writableFinished) return resolve();
    const before = out.errored ?? (out.destroyed ? closed() : null);
    if (before) return reject(before);
    const settle = (e?: Error | null) => {
      out.off('finish', onFinish);
      out.off('error', onError);
      out.off('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    const onFinish = () => settle();
    const onError = (e: Error) => settle(e);
    const onClose = () => settle(out.writableFinished ? null : (out.errored ?? closed()));
    out.once('finish', onFinish);
    out.once('error', onError);
    out.once('close', onClose);
    if (!out.writableEnded) out.end();
  });
}
