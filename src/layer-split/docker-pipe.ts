// relayerImage: `docker save IMAGE | relayer | docker load`, with the two docker processes started through the
// process layer (kept for a cancel, no secret in their environment) and piped directly (no shell), their exit
// codes checked and their stderr in the error when they fail. relayerBlobs: `docker save IMAGE | relayer` into
// blob files for the action's own upload, nothing loaded.
import { Writable } from 'node:stream';
import { dockerArgv, dockerFailure, startDocker } from '../engine/docker-cli.js';
import { exitedOnItsOwn, type ProcessHandle } from '../util/process.js';
import { endStream, writeBlocked, writeChunk } from '../util/stream-write.js';
import { rm } from 'node:fs/promises';
import type { OpenedImage } from '../image/image-model.js';
import type { BlobSource } from '../image/blob-source.js';
import { BlobSink } from './blob-sink.js';
import { relayerArchive, relayerToSink, type SinkOptions } from './relayer.js';
import type { RelayerOptions, RelayerReport } from './types.js';

/** docker tag answers at once on a healthy engine. */
const TAG_DEADLINE_MS = 60_000;

interface Spawn {
  readonly env: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
}

function docker(args: string[], spawn: Spawn, stdio: { stdin?: 'pipe'; stdout?: 'pipe'; deadlineMs?: number }) {
  return startDocker(args, { env: spawn.env, signal: spawn.signal, ...stdio });
}

/** A stream that starts `docker load` on its first byte: an image that needs no change is never loaded. */
function lazyLoad(spawn: Spawn): { stream: Writable; started: () => ProcessHandle | null } {
  let load: ProcessHandle | null = null;
  const stdin = () => {
    load ??= docker(dockerArgv.load(), spawn, { stdin: 'pipe' });
    return load.stdin as Writable;
  };
  // Node destroys a child's stdin, without an error, once the child exits: its exit status says why.
  const closed = () => new Error('docker load exited before reading the whole archive');
  const stream = new Writable({
    highWaterMark: 1024 * 1024,
    write(chunk: Buffer, _enc, cb) {
      writeChunk(stdin(), chunk, closed).then(() => cb(), cb);
    },
    final(cb) {
      if (!load) return cb();
      const sink = stdin();
      const before = writeBlocked(sink, closed);
      if (before) return cb(before);
      endStream(sink, closed).then(() => cb(), cb);
    },
  });
  return { stream, started: () => load };
}

export async function relayerImage(
  image: string,
  opts: RelayerOptions & { env?: NodeJS.ProcessEnv; signal?: AbortSignal },
): Promise<RelayerReport> {
  const spawn: Spawn = { env: opts.env ?? process.env, signal: opts.signal };
  const save = docker(dockerArgv.save(image), spawn, { stdout: 'pipe' });
  const load = lazyLoad(spawn);
  // docker load exiting early surfaces as EPIPE on its stdin: the exit status below says why.
  let pipeError: Error | null = null;
  load.stream.on('error', (e) => {
    pipeError = e;
  });

  let report: RelayerReport;
  try {
    report = await relayerArchive(save.stdout as NodeJS.ReadableStream, load.stream, {
      ...opts,
      skipUnchanged: true,
    });
  } catch (e) {
    // docker's own complaint explains an archive that ended early or a load that stopped reading; a process
    // stopped here after the fact has nothing to say.
    const saveExit = await exitedOnItsOwn(save);
    const loading = load.started();
    const loadExit = loading ? await exitedOnItsOwn(loading) : null;
    throw (
      (saveExit && dockerFailure(dockerArgv.save(image), saveExit)) ??
      (loadExit && dockerFailure(dockerArgv.load(), loadExit)) ??
      e
    );
  }
  const saved = dockerFailure(dockerArgv.save(image), await save.result);
  if (saved) throw saved;
  const started = load.started();
  if (started) {
    const loaded = await started.result;
    const loadErr = dockerFailure(dockerArgv.load(), loaded);
    if (loadErr) throw loadErr;
    if (pipeError) throw pipeError;
    opts.log(loaded.stdout.trim());
  } else if (image !== opts.tag) {
    const tagged = docker(dockerArgv.tag(image, opts.tag), spawn, { deadlineMs: TAG_DEADLINE_MS });
    const err = dockerFailure(dockerArgv.tag(image, opts.tag), await tagged.result, TAG_DEADLINE_MS);
    if (err) throw err;
  }
  return report;
}

export interface BlobsOptions extends SinkOptions {
  /** Where the blob files go (created by the caller); they stay there for the uploads, until the image is closed. */
  readonly blobDir: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
  /** Each layer blob as soon as it is written, before the next is cut. */
  readonly onBlob?: (blob: BlobSource) => void;
}

export interface RelayeredBlobs {
  readonly report: RelayerReport;
  /** The re-layered image, its blobs the files in blobDir (close removes it); null when no layer needed splitting
   *  (report.changed false): nothing was written. */
  readonly image: OpenedImage | null;
}

/** `docker save IMAGE`, split into blobs under opts.blobDir: the image is never loaded. */
export async function relayerBlobs(image: string, opts: BlobsOptions): Promise<RelayeredBlobs> {
  const spawn: Spawn = { env: opts.env ?? process.env, signal: opts.signal };
  const save = docker(dockerArgv.save(image), spawn, { stdout: 'pipe' });
  const sink = new BlobSink(opts.blobDir, { signal: opts.signal, onBlob: opts.onBlob });
  let report: RelayerReport;
  try {
    report = await relayerToSink(save.stdout as NodeJS.ReadableStream, sink, { ...opts, skipUnchanged: true });
  } catch (e) {
    const saveExit = await exitedOnItsOwn(save);
    throw (saveExit && dockerFailure(dockerArgv.save(image), saveExit)) ?? e;
  }
  const saved = dockerFailure(dockerArgv.save(image), await save.result);
  if (saved) throw saved;
  if (!report.changed || !sink.image) return { report, image: null };
  const close = () => rm(opts.blobDir, { recursive: true, force: true });
  return { report, image: { image: sink.image, name: `${image}, re-layered in ${opts.blobDir}`, close } };
}
