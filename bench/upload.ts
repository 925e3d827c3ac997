// Issue 12's performance targets, side by side in one run against one loopback registry (no proxy): the action's
// main step as the runner starts it (node dist/index.js, INPUT_* variables, the runner's files) against what a user
// runs instead (docker login; docker tag; docker push). Every push is FRESH: each round builds a new pair of
// same-shaped images of different random bytes and pushes them to new repositories, so nothing is shared and
// nothing is skipped by a HEAD. The two ways of a round run in alternating order, and each ratio is the median of the
// per-round ratios: a slow moment of the machine hits both sides of a pair.
//   chunked   a 120 MB single-layer image with `upload: chunked` (default chunk-size, 32MB) vs docker push, on
//             engine A (classic store: the action gzips the layer) and engine B (containerd store: its own blobs)
//   split     `layer-split: auto` of a 200 MB layer (50 files of 4 MB) with max-layer-size 50MB: split and pushed,
//             vs docker push of the unsplit same-shaped image, on engine A
//   save      `docker save` of the action's image to /dev/null after each round, untimed in the ratios: what reading
//             the image from the engine costs on its own (the uploader's source; docker push reads the store itself)
//   shaped    the chunked rows again through a link shaped like a runner's uplink (test/support/shaped-link.ts:
//             RP_BENCH_LINK="MB/s,ms", default 50 MB/s and 20 ms each way), docker push through the same link: a
//             round trip per chunk shows as it does on a runner (issue 21)
//   RSS       the action's node process, VmHWM polled from /proc every 50 ms (children such as docker save are
//             not in it: the action's own memory)
// The docker side is timed whole (login, tag, push) and push alone; the targets use the whole, as a workflow runs
// it. Environment: RP_DIST (default dist/index.js), RP_BENCH_UPLOAD_ROUNDS (default 3), RP_BENCH_UPLOAD_MB (120),
// RP_BENCH_SPLIT_MB (200), RP_BENCH_UPLOAD_ONLY (chunked | shaped | split: one part only), RP_BENCH_ENGINES (A,B: the
// chunked rows of these engines only), RP_TIMELINE (a file: each action run appends its timeline, src/upload/
// timeline.ts). RP_DIST_BEFORE: a second bundle
// (an earlier build) run as a third way in the same chunked rounds, so a change is measured before/after side by
// side under the same load.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseCommandFile } from '../test/support/action-runner.js';
import { buildImage, probeEngine, removeImages, uniqueName, type Engine } from '../test/support/images.js';
import { node24 } from '../test/support/node24.js';
import { startRegistry, type Registry } from '../test/support/registry.js';
import { startShapedLink } from '../test/support/shaped-link.js';
import { buildOneLayerImage } from '../test/support/trust-image.js';

const MB = 1_000_000;
const DIST = resolve(process.env.RP_DIST || 'dist/index.js');
const ROUNDS = Number(process.env.RP_BENCH_UPLOAD_ROUNDS || 3);
const UPLOAD_MB = Number(process.env.RP_BENCH_UPLOAD_MB || 120);
const SPLIT_MB = Number(process.env.RP_BENCH_SPLIT_MB || 200);
const DIST_BEFORE = process.env.RP_DIST_BEFORE ? resolve(process.env.RP_DIST_BEFORE) : null;
const ONLY = process.env.RP_BENCH_UPLOAD_ONLY || '';
const ENGINES = (process.env.RP_BENCH_ENGINES || 'A,B')
  .split(',')
  .filter((e): e is 'A' | 'B' => e === 'A' || e === 'B');
const [LINK_MBPS, LINK_MS] = (process.env.RP_BENCH_LINK || '50,20').split(',').map(Number);

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median of the per-round ratios a[i] / b[i]. */
export function pairedRatio(a: number[], b: number[]): number {
  return Number(median(a.map((x, i) => x / b[i])).toFixed(2));
}

/** VmHWM (peak resident set) of a live process, bytes; 0 once it is gone. */
export function peakRss(pid: number): number {
  try {
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU-seconds the whole machine spent busy so far (/proc/stat: user, nice, system, irq, softirq, steal; 100 Hz). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + (steal ?? 0)) / 100;
}

export interface ActionRun {
  readonly ms: number;
  /** The node process's peak RSS as last read before it exited, bytes. */
  readonly peakRss: number;
  readonly stdout: string;
  readonly outputs: Record<string, string>;
}

/** tsx runs this file through NODE_OPTIONS; every node child starts as a runner starts it, without a loader. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _loader, ...inherited } = process.env;
  return inherited;
}

/** The action's main step, timed, its peak RSS polled; rejects unless it exits 0. */
export async function runAction(
  eng: Engine,
  work: string,
  inputs: Record<string, string>,
  dist: string = DIST,
): Promise<ActionRun> {
  const runnerTemp = mkdtempSync(join(work, 'runner-temp-'));
  const files = { output: join(work, 'output'), state: join(work, 'state'), summary: join(work, 'summary') };
  for (const f of Object.values(files)) writeFileSync(f, '');
  const env: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    DOCKER_HOST: eng.host,
    RUNNER_TEMP: runnerTemp,
    GITHUB_ACTIONS: 'true',
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    GITHUB_STEP_SUMMARY: files.summary,
  };
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  const started = performance.now();
  const child = spawn(node24(), [dist], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, peakRss(child.pid ?? 0));
  }, 50);
  const code = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', (c) => res(c));
  });
  const ms = performance.now() - started;
  clearInterval(poll);
  rmSync(runnerTemp, { recursive: true, force: true });
  if (code !== 0) throw new Error(`the action exited ${code}:\n${stdout.slice(-4000)}\n${stderr.slice(-2000)}`);
  return { ms, peakRss: peak, stdout, outputs: parseCommandFile(readFileSync(files.output, 'utf8')) };
}

/** A child to its end, not blocking the event loop (the shaped link relays in this process); rejects unless 0. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin?.end(input);
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`)),
    );
  });
}

/** docker login; docker tag; docker push with a fresh docker config, as on a fresh runner: whole and push alone, ms. */
async function dockerPush(
  eng: Engine,
  reg: Registry,
  work: string,
  src: string,
  ref: string,
): Promise<{ ms: number; pushMs: number }> {
  const [user, password] = Object.entries(reg.users)[0];
  const cfg = mkdtempSync(join(work, 'cfg-'));
  const env = { ...cleanEnv(), DOCKER_HOST: eng.host, DOCKER_CONFIG: cfg };
  try {
    const started = performance.now();
    await run('docker', ['login', reg.host, '-u', user, '--password-stdin'], env, password);
    await run('docker', ['tag', src, ref], env);
    const pushStarted = performance.now();
    await run('docker', ['push', ref], env);
    const end = performance.now();
    return { ms: end - started, pushMs: end - pushStarted };
  } finally {
    rmSync(cfg, { recursive: true, force: true });
  }
}

function actionInputs(
  reg: Registry,
  src: string,
  target: string,
  extra: Record<string, string>,
): Record<string, string> {
  const [user, password] = Object.entries(reg.users)[0];
  return {
    'app-slug': 'bench',
    image: src,
    'target-image': target,
    tag: '1.0.0',
    registry: reg.host,
    username: user,
    token: password,
    ...extra,
  };
}

interface Paired {
  readonly action: number[];
  readonly docker: number[];
  readonly dockerPushOnly: number[];
  readonly peakRss: number[];
  /** `docker save` of the action's image to /dev/null, ms: what reading the image from the engine costs alone. */
  readonly save: number[];
  /** The RP_DIST_BEFORE bundle in the same rounds (empty without it). */
  readonly before: number[];
  readonly loads: number[];
  /** CPU-seconds the machine was busy during each way's run (the engine, the registry and the way's own
   *  processes, and anything else running): whether a way is bound by the machine's cores or by waiting. */
  readonly cpu: { action: number[]; docker: number[] };
}

/**
 * ROUNDS paired rounds: a fresh pair of images each round (built outside the timing), the action and docker in
 * alternating order, the images removed after. `check` looks at the action's log (the path it took).
 */
async function paired(
  eng: Engine,
  reg: Registry,
  work: string,
  label: string,
  build: (ref: string) => Promise<unknown>,
  extra: Record<string, string>,
  check: (r: ActionRun) => string | null,
  before: string | null = null,
): Promise<Paired> {
  const out: Paired = {
    action: [],
    docker: [],
    dockerPushOnly: [],
    peakRss: [],
    save: [],
    before: [],
    loads: [],
    cpu: { action: [], docker: [] },
  };
  for (let i = 0; i < ROUNDS; i++) {
    const a = `${uniqueName(`rp-bench-${label}-a`)}:src`;
    const b = `${uniqueName(`rp-bench-${label}-b`)}:src`;
    const d = `${uniqueName(`rp-bench-${label}-d`)}:src`;
    const dRef = `${reg.host}/bench/${uniqueName(`${label}-docker`)}:1.0.0`;
    try {
      await build(a);
      await build(d);
      if (before) await build(b);
      out.loads.push(loadavg()[0]);
      const ways = [
        async () => {
          const busy = machineBusySeconds();
          const r = await runAction(eng, work, actionInputs(reg, a, uniqueName(`${label}-action`), extra));
          out.cpu.action.push(machineBusySeconds() - busy);
          const wrong = check(r);
          if (wrong) throw new Error(`${label}: ${wrong}:\n${r.stdout.slice(-3000)}`);
          out.action.push(r.ms);
          out.peakRss.push(r.peakRss);
        },
        async () => {
          const busy = machineBusySeconds();
          const r = await dockerPush(eng, reg, work, d, dRef);
          out.cpu.docker.push(machineBusySeconds() - busy);
          out.docker.push(r.ms);
          out.dockerPushOnly.push(r.pushMs);
        },
      ];
      if (before)
        ways.push(async () => {
          const r = await runAction(eng, work, actionInputs(reg, b, uniqueName(`${label}-before`), extra), before);
          const wrong = check(r);
          if (wrong) throw new Error(`${label} (before): ${wrong}:\n${r.stdout.slice(-3000)}`);
          out.before.push(r.ms);
        });
      // each round another order: a slow moment of the machine hits each way in turn
      for (let k = 0; k < i % ways.length; k++) ways.push(ways.shift() as (typeof ways)[number]);
      for (const w of ways) await w();
      const saveStarted = performance.now();
      await run('docker', ['save', a], { ...cleanEnv(), DOCKER_HOST: eng.host });
      out.save.push(performance.now() - saveStarted);
    } finally {
      await removeImages(eng, [a, b, d, dRef]);
    }
  }
  return out;
}

const s = (ms: number) => (ms / 1000).toFixed(1);
const mb = (bytes: number) => (bytes / MB).toFixed(0);

function chunkedOnAttempt1(r: ActionRun): string | null {
  if (r.outputs.attempts !== '1') return `attempts ${r.outputs.attempts}`;
  if (!/ in chunks\b/.test(r.stdout)) return 'no push in chunks in the log';
  return null;
}

/** The chunked rows on engines A and B against `reg` (the registry, or a shaped link to it); peak RSS of each run. */
async function chunkedRows(
  reg: Registry,
  work: string,
  via: string,
  figures: Record<string, number | string>,
): Promise<number[]> {
  const rss: number[] = [];
  for (const name of ENGINES) {
    const { engine: eng, problem } = probeEngine(name);
    const key = `chunked ${UPLOAD_MB} MB, engine ${name}${via}`;
    if (!eng) {
      figures[`${key}: not measured`] = problem ?? 'engine missing';
      continue;
    }
    const size = UPLOAD_MB * MB;
    const extraBuild = name === 'B' ? ['--provenance=false'] : [];
    const t = await paired(
      eng,
      reg,
      work,
      `chunked${name.toLowerCase()}${via ? 's' : ''}`,
      (ref) => buildImage(eng, ref, { files: { '/data/blob.bin': size }, extraBuildArgs: extraBuild }),
      { upload: 'chunked' },
      chunkedOnAttempt1,
      DIST_BEFORE,
    );
    rss.push(...t.peakRss);
    figures[`${key}: action upload: chunked, median s`] = s(median(t.action));
    figures[`${key}: docker login+tag+push, median s (push alone)`] =
      `${s(median(t.docker))} (${s(median(t.dockerPushOnly))})`;
    figures[
      `${key}: action / docker, median of paired ratios (target <= ${via ? '1.10' : name === 'A' ? '1.05' : '1.15'})`
    ] = pairedRatio(t.action, t.docker);
    figures[`${key}: action / docker push alone, median of paired ratios`] = pairedRatio(t.action, t.dockerPushOnly);
    figures[`${key}: docker save of the same image alone, median s`] = s(median(t.save));
    figures[`${key}: action peak RSS, max MB`] = mb(Math.max(...t.peakRss));
    figures[`${key}: per-round action / docker ratios`] = t.action
      .map((x, i) => (x / t.docker[i]).toFixed(2))
      .join(' ');
    // busy CPU-seconds over wall seconds: near the core count, the way was bound by the machine's cores
    const cores = (cpu: number[], ms: number[]) =>
      `${median(cpu).toFixed(1)} CPU-s (${median(cpu.map((c, i) => c / (ms[i] / 1000))).toFixed(2)} cores busy)`;
    figures[`${key}: machine CPU during the action, median`] = cores(t.cpu.action, t.action);
    figures[`${key}: machine CPU during docker login+tag+push, median`] = cores(t.cpu.docker, t.docker);
    figures[`${key}: load average (1 min) at each round`] = t.loads.map((l) => l.toFixed(1)).join(' ');
    if (DIST_BEFORE) {
      figures[`${key}: before (RP_DIST_BEFORE), median s`] = s(median(t.before));
      figures[`${key}: before / docker, median of paired ratios`] = pairedRatio(t.before, t.docker);
      figures[`${key}: per-round before / docker ratios`] = t.before
        .map((x, i) => (x / t.docker[i]).toFixed(2))
        .join(' ');
      figures[`${key}: action / before, median of paired ratios`] = pairedRatio(t.action, t.before);
    }
  }

  return rss;
}

export async function benchUpload(): Promise<Record<string, number | string>> {
  const figures: Record<string, number | string> = {};
  if (!existsSync(DIST)) throw new Error(`${DIST} does not exist (npm run package, or RP_DIST)`);
  const reg = await startRegistry();
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-upload-'));
  const rss: number[] = [];
  try {
    if (ONLY === '' || ONLY === 'chunked') rss.push(...(await chunkedRows(reg, work, '', figures)));
    if (ONLY === '' || ONLY === 'shaped') {
      const link = await startShapedLink({ upstream: reg.host, mbps: LINK_MBPS, latencyMs: LINK_MS });
      try {
        const via = `, through a ${LINK_MBPS} MB/s ${LINK_MS} ms link`;
        rss.push(...(await chunkedRows({ ...reg, host: link.host }, work, via, figures)));
      } finally {
        await link.stop();
      }
    }

    const { engine: engA, problem } = probeEngine('A');
    const key = `layer-split: auto ${SPLIT_MB} MB into <= 50 MB, engine A`;
    if (ONLY === 'chunked' || ONLY === 'shaped') {
      // not asked for
    } else if (!engA) {
      figures[`${key}: not measured`] = problem ?? 'engine missing';
    } else {
      // 4 MB files: the relayer cuts between files (one file bigger than a piece cannot be split)
      const files = (): Record<string, Buffer> => {
        const f: Record<string, Buffer> = {};
        for (let i = 0; i < SPLIT_MB / 4; i++) f[`data/part-${i}.bin`] = randomBytes(4 * MB);
        return f;
      };
      const t = await paired(
        engA,
        reg,
        work,
        'split',
        (ref) => buildOneLayerImage(engA, ref, files()),
        { 'max-layer-size': '50MB', 'layer-split': 'auto' },
        (r) => {
          if (r.outputs.attempts !== '1') return `attempts ${r.outputs.attempts}`;
          return null;
        },
      );
      figures[`${key}: action split + push, median s`] = s(median(t.action));
      figures[`${key}: docker login+tag+push unsplit, median s (push alone)`] =
        `${s(median(t.docker))} (${s(median(t.dockerPushOnly))})`;
      figures[`${key}: action / docker, median of paired ratios (target <= 1.3)`] = pairedRatio(t.action, t.docker);
      figures[`${key}: docker save of the same image alone, median s`] = s(median(t.save));
      figures[`${key}: split and pushed, median MB/s`] = (SPLIT_MB / (median(t.action) / 1000)).toFixed(0);
      figures[`${key}: action peak RSS, max MB`] = mb(Math.max(...t.peakRss));
    }
    if (rss.length)
      figures['peak RSS of the chunked push, default chunk-size, max MB (target < 200)'] = mb(Math.max(...rss));
    figures.rounds = ROUNDS;
    figures.dist = DIST;
    if (DIST_BEFORE) figures['dist before'] = DIST_BEFORE;
    return figures;
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
