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
//
// Split and uploaded directly (issue 12), through the action's main step (node RP_DIST, default dist/index.js, as
// the runner starts it) against a loopback registry, side by side in each round (order alternating; fresh image and
// repositories every round, so no HEAD or cross-repository mount skips a blob):
//   1 GB layer (10 files of 100 MiB), max-layer-size 256MB, layer-split: auto: upload: auto (pieces as blobs,
//     uploaded by the action) vs upload: docker (save -> load -> docker push, the path before), engines A and B
//   200 MB layer (50 files of 4 MB), max-layer-size 50MB: split and uploaded directly vs docker login+tag+push of
//     the unsplit image (the target: <= 1.3x), engine A
// MB/s is the layer's uncompressed size over the whole step; peak RSS is the action process's VmHWM (docker
// children not included). RP_BENCH_DIRECT_ROUNDS (default 1) rounds, median of the per-round ratios.
import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { relayerArchive, relayerImage } from '../src/layer-split/index.js';
import { docker, probeEngine, type Engine } from '../test/support/images.js';
import { node24 } from '../test/support/node24.js';
import { startRegistry, type Registry } from '../test/support/registry.js';
import { median } from './push.js';

const execFileP = promisify(execFile);
const MB = 1_000_000;
const FILES = Number(process.env.RP_BENCH_RELAYER_FILES ?? 5);
const FILE_MIB = 100; // FILES x 100 MiB in one layer
const PIECE = Number(process.env.RP_BENCH_RELAYER_PIECE_MB ?? 128) * MB;
const RUNS = Math.max(3, Number(process.env.RP_BENCH_RUNS ?? 3));

async function importBigImage(
  host: string,
  ref: string,
  ctx: string,
  files = FILES,
  fileSize = `${FILE_MIB}M`,
): Promise<void> {
  const script = `set -e
for i in $(seq 1 ${files}); do head -c ${fileSize} /dev/urandom > "$1/part-$i.bin"; done
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

const DIST = resolve(process.env.RP_DIST || 'dist/index.js');
const DIRECT_ROUNDS = Math.max(1, Number(process.env.RP_BENCH_DIRECT_ROUNDS ?? 1));

/** VmHWM (peak resident set) of a live process, bytes; 0 once it is gone. */
function vmHwm(pid: number): number {
  try {
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** tsx runs this file through NODE_OPTIONS; the action starts as a runner starts it, without a loader. */
function cleanEnv(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _loader, ...inherited } = process.env;
  return inherited;
}

/** The action's main step, timed, its peak RSS polled every 50 ms; rejects unless it exits 0. */
async function actionStep(
  eng: Engine,
  work: string,
  inputs: Record<string, string>,
): Promise<{ ms: number; rss: number; stdout: string }> {
  const dir = mkdtempSync(join(work, 'step-'));
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), DOCKER_HOST: eng.host, RUNNER_TEMP: dir, GITHUB_ACTIONS: 'true' };
  for (const f of ['GITHUB_OUTPUT', 'GITHUB_STATE', 'GITHUB_STEP_SUMMARY']) {
    env[f] = join(dir, f);
    writeFileSync(env[f] as string, '');
  }
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  const started = performance.now();
  const child = spawn(node24(), [DIST], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stdout += c.toString()));
  let rss = 0;
  const poll = setInterval(() => {
    rss = Math.max(rss, vmHwm(child.pid ?? 0));
  }, 50);
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  const ms = performance.now() - started;
  clearInterval(poll);
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`the action exited ${code}:\n${stdout.slice(-4000)}`);
  return { ms, rss, stdout };
}

/** docker login; docker tag; docker push of `src` under `ref`, with a fresh docker config: ms. */
function dockerPushWhole(eng: Engine, reg: Registry, work: string, src: string, ref: string): number {
  const [user, password] = Object.entries(reg.users)[0];
  const cfg = mkdtempSync(join(work, 'cfg-'));
  const env = { ...cleanEnv(), DOCKER_HOST: eng.host, DOCKER_CONFIG: cfg };
  const sh = (args: string[], input?: string) => {
    const r = spawnSync('docker', args, {
      env,
      input,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'],
    });
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString()}`);
  };
  try {
    const started = performance.now();
    sh(['login', reg.host, '-u', user, '--password-stdin'], password);
    sh(['tag', src, ref]);
    sh(['push', ref]);
    const ms = performance.now() - started;
    sh(['image', 'rm', ref]);
    return ms;
  } finally {
    rmSync(cfg, { recursive: true, force: true });
  }
}

function splitInputs(reg: Registry, image: string, app: string, maxLayerSize: string, upload: string) {
  const [user, password] = Object.entries(reg.users)[0];
  return {
    'app-slug': app,
    image,
    'target-image': 'big',
    tag: '1.0.0',
    registry: reg.host,
    username: user,
    token: password,
    'max-layer-size': maxLayerSize,
    'layer-split': 'auto',
    upload,
  };
}

/** A check that the step took the path it was meant to: the direct path never loads, the old one always does. */
function tookPath(stdout: string, upload: string): void {
  const loaded = /Loaded image/.test(stdout);
  if (upload === 'docker' ? !loaded : loaded)
    throw new Error(`upload: ${upload} took the wrong path:\n${stdout.slice(-3000)}`);
}

async function benchDirectEngine(
  eng: Engine,
  reg: Registry,
  work: string,
  shape: { files: number; fileSize: string; maxLayerSize: string; against: 'old path' | 'docker push unsplit' },
): Promise<{ mbps: number; otherMbps: number; ratio: number; rss: number; layerMb: number }> {
  const direct: number[] = [];
  const other: number[] = [];
  let rss = 0;
  let layerMb = 0;
  for (let i = 0; i < DIRECT_ROUNDS; i++) {
    const tag = `${eng.name.toLowerCase()}-${process.pid}-${i}-${Date.now() % 100000}`;
    const src = `rp-bench-direct:${tag}`;
    const ctx = mkdtempSync(join(tmpdir(), 'rp-bench-direct-ctx-'));
    try {
      await importBigImage(eng.host, src, ctx, shape.files, shape.fileSize);
      layerMb = Number(await docker(eng.host, ['image', 'inspect', '--format', '{{.Size}}', src])) / MB;
      const runDirect = async () => {
        const r = await actionStep(eng, work, splitInputs(reg, src, `direct-${tag}`, shape.maxLayerSize, 'auto'));
        tookPath(r.stdout, 'auto');
        direct.push(r.ms);
        rss = Math.max(rss, r.rss);
      };
      const runOther = async () => {
        if (shape.against === 'old path') {
          const r = await actionStep(eng, work, splitInputs(reg, src, `old-${tag}`, shape.maxLayerSize, 'docker'));
          tookPath(r.stdout, 'docker');
          other.push(r.ms);
        } else {
          other.push(dockerPushWhole(eng, reg, work, src, `${reg.host}/unsplit-${tag}/big:1.0.0`));
        }
      };
      if (i % 2 === 0) {
        await runDirect();
        await runOther();
      } else {
        await runOther();
        await runDirect();
      }
    } finally {
      await docker(eng.host, ['image', 'rm', '-f', src]).catch(() => undefined);
      rmSync(ctx, { recursive: true, force: true });
    }
  }
  const ratios = direct.map((d, i) => d / other[i]);
  return {
    mbps: Math.round(layerMb / (median(direct) / 1000)),
    otherMbps: Math.round(layerMb / (median(other) / 1000)),
    ratio: Number(median(ratios).toFixed(2)),
    rss: Math.round(rss / MB),
    layerMb: Math.round(layerMb),
  };
}

/** Split and uploaded directly, against the path before and against docker push of the unsplit image. */
export async function benchDirect(): Promise<Record<string, number | string>> {
  const results: Record<string, number | string> = { 'load average before (1, 5, 15 min)': loadAverage() };
  const reg = await startRegistry();
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-direct-work-'));
  try {
    for (const name of ['A', 'B'] as const) {
      const { engine: eng, problem } = probeEngine(name);
      if (!eng) {
        results[`engine ${name}`] = `NOT MEASURED: ${problem}`;
        continue;
      }
      const gb = await benchDirectEngine(eng, reg, work, {
        files: 10,
        fileSize: '100M',
        maxLayerSize: '256MB',
        against: 'old path',
      });
      const k = `engine ${name}: ${gb.layerMb} MB layer into 256 MB pieces`;
      results[`${k}, split + uploaded directly (upload: auto), MB/s (target >= 100)`] = gb.mbps;
      results[`${k}, save -> load -> docker push (upload: docker), MB/s`] = gb.otherMbps;
      results[`${k}, time direct / time old path (median of paired rounds)`] = gb.ratio;
      results[`${k}, direct: peak RSS of the action, MB (target < 200)`] = gb.rss;
      if (name === 'A') {
        const small = await benchDirectEngine(eng, reg, work, {
          files: 50,
          fileSize: '4M',
          maxLayerSize: '50MB',
          against: 'docker push unsplit',
        });
        const s = `engine A: ${small.layerMb} MB layer into <= 50 MB pieces`;
        results[`${s}, split + uploaded directly, MB/s`] = small.mbps;
        results[`${s}, docker login+tag+push of the unsplit image, MB/s`] = small.otherMbps;
        results[`${s}, time split + uploaded / time docker push unsplit (target <= 1.3)`] = small.ratio;
        results[`${s}, direct: peak RSS of the action, MB`] = small.rss;
      }
    }
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
  results['load average after (1, 5, 15 min)'] = loadAverage();
  results['rounds (RP_BENCH_DIRECT_ROUNDS)'] = DIRECT_ROUNDS;
  results['action bundle (RP_DIST)'] = DIST;
  return results;
}

function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(', ');
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
  // the action itself, in its own process: split and uploaded directly against the path before
  if (process.env.RP_BENCH_RELAYER_DIRECT !== '0') Object.assign(results, await benchDirect());
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const figures = process.argv.includes('direct') ? await benchDirect() : await benchRelayer();
  for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(68)} ${v}`);
}
