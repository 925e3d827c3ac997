// Images whose files the test knows byte for byte, and what a tag in the registry holds, file by file, read
// without the action and without an engine: skopeo copies the image to a directory, the layers are applied in
// order (gzip or plain tar; whiteouts honoured), and each regular file becomes its content's sha256.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { docker, type Engine } from './images.js';
import type { Registry } from './registry.js';

export interface HeldImage {
  /** path (no leading slash) -> sha256 of its content, regular files only. */
  readonly files: Record<string, string>;
  /** The compressed size of each layer blob, in manifest order. */
  readonly layerSizes: number[];
}

function skopeoCopy(reg: Registry, repo: string, tag: string, dir: string): Promise<void> {
  const [user, password] = Object.entries(reg.users)[0];
  return new Promise((resolve, reject) => {
    const child = spawn(
      'skopeo',
      [
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `${user}:${password}`,
        `docker://${reg.host}/${repo}:${tag}`,
        `dir:${dir}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (c) => {
      err += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`skopeo copy ${repo}:${tag}: ${err}`));
    });
  });
}

async function applyLayer(path: string, files: Map<string, string>): Promise<void> {
  const head = Buffer.alloc(2);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  const raw = createReadStream(path);
  const stream: Readable = head[0] === 0x1f && head[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
  const extract = tar.extract();
  stream.pipe(extract);
  for await (const entry of extract) {
    const name = posix
      .normalize(entry.header.name)
      .replace(/^\.?\/+/, '')
      .replace(/\/+$/, '');
    const base = posix.basename(name);
    const dir = posix.dirname(name);
    if (base === '.wh..wh..opq') {
      for (const k of [...files.keys()]) if (k.startsWith(`${dir}/`)) files.delete(k);
    } else if (base.startsWith('.wh.')) {
      const gone = posix.join(dir, base.slice(4));
      for (const k of [...files.keys()]) if (k === gone || k.startsWith(`${gone}/`)) files.delete(k);
    } else if (entry.header.type === 'file') {
      const hash = createHash('sha256');
      for await (const chunk of entry) hash.update(chunk as Buffer);
      files.set(name, hash.digest('hex'));
      continue;
    } else if (entry.header.type === 'link') {
      const target = files.get(posix.normalize(entry.header.linkname ?? '').replace(/^\.?\/+/, ''));
      if (target) files.set(name, target);
    }
    entry.resume();
  }
}

/** The files the registry serves under repo:tag, as a client pulling it would get them. */
export async function heldImage(reg: Registry, repo: string, tag: string): Promise<HeldImage> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-held-'));
  try {
    await skopeoCopy(reg, repo, tag, dir);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
      layers?: { digest: string; size: number }[];
    };
    const files = new Map<string, string>();
    for (const layer of manifest.layers ?? []) await applyLayer(join(dir, layer.digest.split(':')[1]), files);
    return {
      files: Object.fromEntries([...files.entries()].sort(([a], [b]) => a.localeCompare(b))),
      layerSizes: (manifest.layers ?? []).map((l) => l.size),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * FROM scratch, one COPY of the whole context: every file of `files` (path -> content) in ONE layer, so that
 * layer-split can cut it into pieces (a single file cannot be split). Engine A builds with the classic builder,
 * engine B with buildx --load, or with its layer zstd-compressed (`zstd`), which the relayer reads through the
 * zstd command on Node 20.
 */
export async function buildOneLayerImage(
  e: Engine,
  ref: string,
  files: Record<string, Buffer | string>,
  opts: { zstd?: boolean } = {},
): Promise<void> {
  const ctx = mkdtempSync(join(tmpdir(), 'rp-trustctx-'));
  try {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(ctx, 'root', dirname(path)), { recursive: true });
      writeFileSync(join(ctx, 'root', path), content);
    }
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY root/ /\nCMD ["/nothing"]\n');
    if (opts.zstd && e.name !== 'B') throw new Error('zstd layers need the containerd image store (engine B)');
    // zstd: the layer stays zstd-compressed in the containerd store, and `docker save` hands it out so
    const output = opts.zstd
      ? [
          '--provenance=false',
          '--output',
          `type=image,name=${ref},compression=zstd,force-compression=true,oci-mediatypes=true`,
        ]
      : ['--load', '-t', ref];
    const args = e.name === 'A' ? ['build', '-q', '-t', ref, ctx] : ['buildx', 'build', '-q', ...output, ctx];
    await docker(e.host, args, e.name === 'A' ? { DOCKER_BUILDKIT: '0' } : {});
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** path -> sha256 of content, as heldImage reports files. */
export function digests(files: Record<string, Buffer | string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(files)
      .map(([p, c]): [string, string] => [p.replace(/^\/+/, ''), sha256(c)])
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}
