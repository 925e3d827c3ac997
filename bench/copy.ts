// Issue 19's copy targets, side by side in one run: the action's main step (node24 dist/index.js, as the runner
// starts it) copying an image it reads without an engine, against `skopeo copy` of the same image between the same
// two loopback registries (the tool users are sent to for a promotion today).
//   registry  docker://SRC/… -> the target registry: the action (source credentials as inputs) vs
//             skopeo copy docker://SRC/… docker://DST/… (target <= 1.0, aim 0.8)
//   layout    oci:DIR -> the target registry: the action vs skopeo copy oci:DIR docker://DST/… (target <= 1.0)
//   RSS       the action's peak RSS in the registry copy (target < 200 MB; RP_BENCH_COPY_MB=1000 for the 1 GB row)
// Every round starts a new target registry for each way (nothing there to skip, and nothing skopeo's blob-info
// cache could mount from: it remembers where it pushed a blob before and mounts it from there, which made a copy
// into a new repository of the same registry take 0.1 s), the two ways in alternating order; ratios are medians of
// the per-round ratios. One single-layer image of RP_BENCH_COPY_MB (150) random MB,
// built once FROM scratch on engine B as an OCI layout and copied into the source registry by skopeo.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { engine, uniqueName, type Engine } from '../test/support/images.js';
import { startRegistry, type Registry } from '../test/support/registry.js';
import { cleanEnv, median, pairedRatio, runAction } from './upload.js';

const MB = 1_000_000;
const COPY_MB = Number(process.env.RP_BENCH_COPY_MB || 150);
const ROUNDS = Number(process.env.RP_BENCH_COPY_ROUNDS || 3);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): void {
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString()}`);
}

const creds = (reg: Registry) => Object.entries(reg.users)[0].join(':');

/** A single-layer image of COPY_MB random MB as an OCI layout directory (engine B's buildx, no push). */
function buildLayout(eng: Engine, work: string): string {
  const ctx = mkdtempSync(join(work, 'ctx-'));
  writeFileSync(join(ctx, 'blob.bin'), randomBytes(COPY_MB * MB));
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY blob.bin /data/blob.bin\n');
  const out = join(work, 'layout');
  run('docker', ['buildx', 'build', '-q', '--provenance=false', '--output', `type=oci,dest=${out},tar=false`, ctx], {
    ...cleanEnv(),
    DOCKER_HOST: eng.host,
  });
  rmSync(ctx, { recursive: true, force: true });
  return out;
}

function skopeoCopy(from: string, to: string, src: Registry | null, dst: Registry): number {
  const started = performance.now();
  run('skopeo', [
    'copy',
    '--quiet',
    ...(src ? ['--src-tls-verify=false', '--src-creds', creds(src)] : []),
    '--dest-tls-verify=false',
    '--dest-creds',
    creds(dst),
    from,
    to,
  ]);
  return performance.now() - started;
}

function inputs(dst: Registry, image: string, target: string, src: Registry | null): Record<string, string> {
  const [user, password] = Object.entries(dst.users)[0];
  const [srcUser, srcPassword] = src ? Object.entries(src.users)[0] : ['', ''];
  return {
    'app-slug': 'bench',
    image,
    'target-image': target,
    tag: '1.0.0',
    registry: dst.host,
    username: user,
    token: password,
    ...(src ? { 'source-username': srcUser, 'source-token': srcPassword } : {}),
  };
}

interface Rounds {
  readonly action: number[];
  readonly skopeo: number[];
  readonly rss: number[];
  readonly loads: number[];
}

/** A way of copying into `dst`, timed (ms), with the action's peak RSS when it is the action. */
type Way = (dst: Registry) => Promise<{ ms: number; rss?: number }>;

async function rounds(action: Way, skopeo: Way): Promise<Rounds> {
  const out: Rounds = { action: [], skopeo: [], rss: [], loads: [] };
  for (let i = 0; i < ROUNDS; i++) {
    out.loads.push(loadavg()[0]);
    const ways: Array<[Way, number[]]> = [
      [action, out.action],
      [skopeo, out.skopeo],
    ];
    if (i % 2) ways.reverse();
    for (const [way, times] of ways) {
      const dst = await startRegistry();
      try {
        const r = await way(dst);
        times.push(r.ms);
        if (r.rss !== undefined) out.rss.push(r.rss);
      } finally {
        await dst.stop();
      }
    }
  }
  return out;
}

/** The action's main step copying `image` into `dst`; rejects unless it took one attempt. */
function actionWay(eng: Engine, work: string, image: string, src: Registry | null): Way {
  return async (dst) => {
    const r = await runAction(eng, work, inputs(dst, image, uniqueName('copy-action'), src));
    if (r.outputs.attempts !== '1') throw new Error(`attempts ${r.outputs.attempts}:\n${r.stdout.slice(-3000)}`);
    return { ms: r.ms, rss: r.peakRss };
  };
}

function skopeoWay(from: string, src: Registry | null): Way {
  return async (dst) => ({
    ms: skopeoCopy(from, `docker://${dst.host}/bench/${uniqueName('copy-skopeo')}:1.0.0`, src, dst),
  });
}

function figuresOf(key: string, r: Rounds, target: string): Record<string, number | string> {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  return {
    [`${key}: action, median s`]: s(median(r.action)),
    [`${key}: skopeo copy, median s`]: s(median(r.skopeo)),
    [`${key}: action / skopeo, median of paired ratios (${target})`]: pairedRatio(r.action, r.skopeo),
    [`${key}: per-round action / skopeo ratios`]: r.action.map((x, i) => (x / r.skopeo[i]).toFixed(2)).join(' '),
    [`${key}: action peak RSS, max MB (target < 200)`]: (Math.max(...r.rss) / MB).toFixed(0),
    [`${key}: load average (1 min) at each round`]: r.loads.map((l) => l.toFixed(1)).join(' '),
  };
}

export async function benchCopy(): Promise<Record<string, number | string>> {
  const eng = engine('B');
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-copy-'));
  const src = await startRegistry();
  try {
    const layout = buildLayout(eng, work);
    const srcRef = `${src.host}/promote/app:1.0.0`;
    skopeoCopy(`oci:${layout}`, `docker://${srcRef}`, null, src);
    const fromRegistry = await rounds(
      actionWay(eng, work, `docker://${srcRef}`, src),
      skopeoWay(`docker://${srcRef}`, src),
    );
    const fromLayout = await rounds(actionWay(eng, work, `oci:${layout}`, null), skopeoWay(`oci:${layout}`, null));
    return {
      ...figuresOf(`registry -> registry, ${COPY_MB} MB`, fromRegistry, 'target <= 1.0, aim 0.8'),
      ...figuresOf(`oci:DIR -> registry, ${COPY_MB} MB`, fromLayout, 'target <= 1.0'),
      rounds: ROUNDS,
    };
  } finally {
    await src.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
