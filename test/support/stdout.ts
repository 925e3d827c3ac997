// stdout is the runner's channel for workflow commands: tests of what the action writes there capture it here,
// and always give it back.

/** What fn writes to stdout while it runs. */
export async function stdoutOf(fn: () => unknown): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await fn();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

/** stdout captured around every test of the enclosing describe: each test's writes, in order, in `chunks`. */
export function captureStdoutEachTest(): { readonly chunks: string[] } {
  const captured = { chunks: [] as string[] };
  const write = process.stdout.write.bind(process.stdout);
  beforeEach(() => {
    captured.chunks.length = 0;
    process.stdout.write = ((chunk: string | Uint8Array) => {
      captured.chunks.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
  });
  afterEach(() => {
    process.stdout.write = write;
  });
  return captured;
}
