// Re-layering speed, memory and temporary disk (issue 5), on the real engines: one image with one big layer of
// random data (5 files of 100 MiB, ~524 MB, split into 128 MB pieces; RP_BENCH_RELAYER_FILES=10 and
// RP_BENCH_RELAYER_PIECE_MB=256 give the 1 GB / 256 MB shape, about twice as long). Every figure is the median of
// RP_BENCH_RUNS (default 3) rounds after one warm-up round that is not counted. Besides the end-to-end figure,
// the parts it is made of are timed on their own, so a slow result says where the time goes:
//   docker save > /dev/null                 the floor: no tool that starts from `docker save` beats it
//   relayer, saved file -> file             the relayer's own work (read, spill, index, split, hash, write)
//   docker load < relayered archive         what loading the new layers costs the engine
//   relayerImage                            save | relayer | load, as the action runs it
// The image is made by a shell pipeline (head /dev/urandom, tar, docker import) in a child process, so the
// data never passes through this process and its peak RSS is the relayer's.
import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { relayerArchive, relayerImage } from '../src/relayer/index.js';
import { docker, probeEngine, type Engine } from '../test/support/images.js';
import { median } from './push.js';

const execFileP = promisify(execFile);
const MB = 1_000_000;
const FILES = Number(process.env.RP_BENCH_RELAYER_FILES ?? 5);
const FILE_MIB = 100; // FILES x 100 MiB in one layer
const PIECE = Number(process.env.RP_BENCH_RELAYER_PIECE_MB ?? 128) * MB;
const RUNS = Math.max(3, Number(process.env.RP_BENCH_RUNS ?? 3));

async function importBigImage(host: string, ref: string, ctx: string): Promise<void> {
  const script = `set -e
for i in $(seq 1 ${FILES}); do head -c ${FILE_MIB}M /dev/urandom > "$1/part-$i.bin"; done
tar -C "$1" -cf - . | docker import - "$2" >/dev/null
rm -f "$1"/part-*.bin`;
  await execFileP('sh', ['-c', script, 'sh', ctx, ref], { env: { ...process.env, DOCKER_HOST: host } });
}

function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  return fn().then((v) => [v, performance.now() - t]);
}

function run(host: string, args: string[], stdin: 'ignore' | string = 'ignore'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, {
      env: { ...process.env, DOCKER_HOST: host },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    if (stdin === 'ignore') {
      child.stdin.end();
    } else {
      const from = spawn('cat', [stdin], { stdio: ['ignore', 'pipe', 'inherit'] });
      from.stdout.pipe(child.stdin);
    }
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`docker ${args[0]} exited ${code}: ${stderr}`)),
    );
  });
}

function saveToNull(host: string, ref: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['save', ref], {
      env: { ...process.env, DOCKER_HOST: host },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout.resume();
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker save exited ${code}`))));
  });
}

/** relayerArchive from a saved archive on disk to a file: the relayer alone, no engine involved. */
async function relayerFileToFile(input: string, output: string, tag: string, work: string): Promise<void> {
  await relayerArchive(createReadStream(input), createWriteStream(output), {
    maxLayerSize: PIECE,
    tag,
    workDir: work,
    log: () => undefined,
  });
}

function saveToFile(host: string, ref: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = openSync(file, 'w');
    const child = spawn('docker', ['save', ref], {
      env: { ...process.env, DOCKER_HOST: host },
      stdio: ['ignore', out, 'inherit'],
    });
    child.on('error', reject);
    child.on('close', (code) => {
      closeSync(out);
      if (code === 0) resolve();
      else reject(new Error(`docker save exited ${code}`));
    });
  });
}

function diskUse(dir: string): number {
  let total = 0;
  for (const d of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!d.isFile()) continue;
    try {
      total += statSync(join(d.parentPath, d.name)).size;
    } catch {
      // removed between listing and stat
    }
  }
  return total;
}

/** Peak bytes under `dir` while `fn` runs, sampled every 50 ms. */
async function peakDisk<T>(dir: string, fn: () => Promise<T>): Promise<[T, number]> {
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, diskUse(dir));
  }, 50);
  try {
    const value = await fn();
    return [value, peak];
  } finally {
    clearInterval(poll);
  }
}

interface Round {
  saveMs: number;
  relayerMs: number;
  loadMs: number;
  imageMs: number;
  peakDisk: number;
  pieces: number;
}

/** One round: each part on its own, then save | split | load as the action runs it. */
async function round(eng: Engine, src: string, work: string, files: string): Promise<Round> {
  const tag = (s: string) => `rp-bench-relayer-${eng.name.toLowerCase()}:${s}`;
  const [viaFile, out] = [tag('file'), tag('split')];
  try {
    const [, saveMs] = await timed(() => saveToNull(eng.host, src));
    const saved = join(files, 'saved.tar');
    const archive = join(files, 'relayered.tar');
    await saveToFile(eng.host, src, saved);
    const [[, fileDisk], relayerMs] = await timed(() =>
      peakDisk(work, () => relayerFileToFile(saved, archive, viaFile, work)),
    );
    rmSync(saved);
    const [, loadMs] = await timed(() => run(eng.host, ['load', '-q'], archive));
    await docker(eng.host, ['image', 'rm', '-f', viaFile]);
    rmSync(archive);
    const [[report, imageDisk], imageMs] = await timed(() =>
      peakDisk(work, () =>
        relayerImage(src, {
          maxLayerSize: PIECE,
          tag: out,
          workDir: work,
          log: () => undefined,
          env: { ...process.env, DOCKER_HOST: eng.host },
        }),
      ),
    );
    const pieces = report.layers.flatMap((l) => l.pieces).length;
    return { saveMs, relayerMs, loadMs, imageMs, peakDisk: Math.max(fileDisk, imageDisk), pieces };
  } finally {
    await docker(eng.host, ['image', 'rm', '-f', viaFile, out]).catch(() => undefined);
  }
}

async function benchEngine(eng: Engine): Promise<Record<string, number | string>> {
  const src = `rp-bench-relayer-${eng.name.toLowerCase()}:big`;
  const ctx = mkdtempSync(join(tmpdir(), 'rp-bench-relayer-ctx-'));
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-relayer-work-'));
  const files = mkdtempSync(join(tmpdir(), 'rp-bench-relayer-out-'));
  try {
    await importBigImage(eng.host, src, ctx);
    const imageBytes = Number(await docker(eng.host, ['image', 'inspect', '--format', '{{.Size}}', src]));
    await round(eng, src, work, files); // warm-up, not counted
    const rounds: Round[] = [];
    for (let i = 0; i < RUNS; i++) rounds.push(await round(eng, src, work, files));
    const rate = (pick: (r: Round) => number) =>
      Math.round(median(rounds.map((r) => imageBytes / MB / (pick(r) / 1000))));
    return {
      'image bytes (one layer)': imageBytes,
      'docker save > /dev/null, MB/s (floor)': rate((r) => r.saveMs),
      'relayer alone, saved file -> file, MB/s': rate((r) => r.relayerMs),
      'docker load of the relayered archive, MB/s': rate((r) => r.loadMs),
      'relayerImage (save | split | load), MB/s (target >= 100)': rate((r) => r.imageMs),
      'relayerImage seconds': Number((median(rounds.map((r) => r.imageMs)) / 1000).toFixed(1)),
      [`layers after split (${PIECE / MB} MB pieces)`]: rounds[0].pieces,
      'peak temp disk, x image size, worst round (target <= 2)': Number(
        (Math.max(...rounds.map((r) => r.peakDisk)) / imageBytes).toFixed(2),
      ),
      'temp bytes left afterwards': diskUse(work),
      'rounds (median of, after 1 warm-up)': RUNS,
    };
  } finally {
    await docker(eng.host, ['image', 'rm', '-f', src]).catch(() => undefined);
    for (const d of [ctx, work, files]) rmSync(d, { recursive: true, force: true });
  }
}

export async function benchRelayer(): Promise<Record<string, number | string>> {
  const results: Record<string, number | string> = {};
  for (const name of ['A', 'B'] as const) {
    const { engine: eng, problem } = probeEngine(name);
    if (!eng) {
      results[`engine ${name}`] = `NOT MEASURED: ${problem}`;
      continue;
    }
    for (const [k, v] of Object.entries(await benchEngine(eng))) results[`engine ${name}: ${k}`] = v;
  }
  // maxRSS is the process's peak so far: the image is made outside this process, so this is the relayer's
  results['peak RSS of this process, MB (target < 200)'] = Math.round(process.resourceUsage().maxRSS / 1024);
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const [k, v] of Object.entries(await benchRelayer())) console.log(`${k.padEnd(68)} ${v}`);
}
