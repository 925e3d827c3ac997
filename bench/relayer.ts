// Re-layering speed, memory and temporary disk (issue 5), on a real engine: one image with a ~1 GB layer of
// random data, split into 256 MB pieces. `docker save > /dev/null` of the same image is the floor.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import tar from 'tar-stream';
import { relayerImage } from '../src/relayer/index.js';
import { docker, engine } from '../test/support/images.js';

const MB = 1_000_000;
const FILES = 10;
const FILE_SIZE = 100 * 2 ** 20; // 10 x 100 MiB: one ~1.05 GB layer

/** `docker import` of a tar made on the fly: the data never sits in memory or on disk before the engine has it. */
async function importBigImage(host: string, ref: string): Promise<void> {
  const pack = tar.pack();
  const child = spawn('docker', ['import', '-', ref], {
    env: { ...process.env, DOCKER_HOST: host },
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  pack.pipe(child.stdin);
  const chunk = Buffer.alloc(2 ** 20);
  for (let f = 0; f < FILES; f++) {
    const entry = pack.entry({ name: `data/part-${f}.bin`, size: FILE_SIZE, mode: 0o644 });
    for (let written = 0; written < FILE_SIZE; written += chunk.length) {
      randomFillSync(chunk);
      if (!entry.write(Buffer.from(chunk))) await new Promise((r) => entry.once('drain', r));
    }
    await new Promise<void>((resolve, reject) => entry.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  const code = await new Promise<number | null>((r) => child.on('close', r));
  if (code !== 0) throw new Error(`docker import exited ${code}`);
}

function timedSaveToNull(host: string, ref: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn('docker', ['save', ref], {
      env: { ...process.env, DOCKER_HOST: host },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout.resume();
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(performance.now() - t) : reject(new Error(`docker save exited ${code}`)),
    );
  });
}

/** `docker save | docker load` of the same image: what any save-rewrite-load tool pays before it rewrites a byte. */
function timedSaveLoad(host: string, ref: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const env = { ...process.env, DOCKER_HOST: host };
    const save = spawn('docker', ['save', ref], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const load = spawn('docker', ['load', '-q'], { env, stdio: ['pipe', 'ignore', 'inherit'] });
    save.stdout.pipe(load.stdin);
    save.on('error', reject);
    load.on('error', reject);
    load.on('close', (code) =>
      code === 0 ? resolve(performance.now() - t) : reject(new Error(`docker load exited ${code}`)),
    );
  });
}

function diskUse(dir: string): number {
  let total = 0;
  for (const d of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (d.isFile()) total += statSync(join(d.parentPath, d.name)).size;
  }
  return total;
}

export async function benchRelayer(): Promise<Record<string, number | string>> {
  const eng = engine('A');
  const src = 'rp-bench-relayer:big';
  const out = 'rp-bench-relayer:split';
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-relayer-'));
  try {
    await importBigImage(eng.host, src);
    const imageBytes = Number(await docker(eng.host, ['image', 'inspect', '--format', '{{.Size}}', src]));
    const saveMs = await timedSaveToNull(eng.host, src);
    const saveLoadMs = await timedSaveLoad(eng.host, src);
    let peakDisk = 0;
    const poll = setInterval(() => {
      peakDisk = Math.max(peakDisk, diskUse(work));
    }, 100);
    const rssBefore = process.resourceUsage().maxRSS;
    const t = performance.now();
    const report = await relayerImage(src, {
      maxLayerSize: 256 * MB,
      tag: out,
      workDir: work,
      log: () => undefined,
      env: { ...process.env, DOCKER_HOST: eng.host },
    });
    const relayerMs = performance.now() - t;
    clearInterval(poll);
    const leftover = diskUse(work);
    const pieces = report.layers.flatMap((l) => l.pieces).length;
    return {
      'image bytes (one layer)': imageBytes,
      'docker save > /dev/null, MB/s (floor)': Math.round(imageBytes / MB / (saveMs / 1000)),
      'docker save | docker load, MB/s (no rewrite)': Math.round(imageBytes / MB / (saveLoadMs / 1000)),
      'relayer (save | split | load), MB/s (target >= 100)': Math.round(imageBytes / MB / (relayerMs / 1000)),
      'relayer seconds': Number((relayerMs / 1000).toFixed(1)),
      'layers after split (256 MB pieces)': pieces,
      'peak RSS of this process, MB (target < 200)': Math.round(process.resourceUsage().maxRSS / 1024),
      'peak RSS before the split, MB': Math.round(rssBefore / 1024),
      'peak temp disk, x image size (target <= 2)': Number((peakDisk / imageBytes).toFixed(2)),
      'temp bytes left afterwards': leftover,
    };
  } finally {
    await docker(eng.host, ['image', 'rm', '-f', src, out]).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const [k, v] of Object.entries(await benchRelayer())) console.log(`${k.padEnd(52)} ${v}`);
}
