// Issue 20's target: three 50 MB images in one step (`image` with three lines) against the same three images pushed
// by three steps run one after another, each step a fresh node process as a runner starts it (its own login,
// registry check and work directory). Every round builds six fresh one-layer images of random bytes in engine A's
// classic store (three per side, built outside the timing) and pushes them to new repositories of one loopback
// registry, so nothing is shared and nothing is skipped by a HEAD; the two sides run in alternating order, and the
// figure is the median of the per-round ratios (paired: a slow moment of the machine hits both sides of a round).
// Environment: RP_DIST (default dist/index.js), RP_BENCH_MULTI_ROUNDS (default 3), RP_BENCH_MULTI_MB (50).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { probeEngine, removeImages, uniqueName, type Engine } from '../test/support/images.js';
import { startRegistry, type Registry } from '../test/support/registry.js';
import { buildOneLayerImage } from '../test/support/trust-image.js';
import { median, pairedRatio, runAction } from './upload.js';

const MB = 1_000_000;
const ROUNDS = Number(process.env.RP_BENCH_MULTI_ROUNDS || 3);
const SIZE_MB = Number(process.env.RP_BENCH_MULTI_MB || 50);
const TARGET = 0.6;

function inputs(reg: Registry, image: string, extra: Record<string, string> = {}): Record<string, string> {
  const [user, password] = Object.entries(reg.users)[0];
  return { 'app-slug': 'bench', image, tag: '1.0.0', registry: reg.host, username: user, token: password, ...extra };
}

async function buildThree(eng: Engine, label: string): Promise<string[]> {
  const refs = [0, 1, 2].map((n) => `${uniqueName(`rp-bench-multi-${label}${n}`)}:src`);
  for (const ref of refs) await buildOneLayerImage(eng, ref, { '/payload.bin': randomBytes(SIZE_MB * MB) });
  return refs;
}

/** One step of three images, ms. */
async function oneStep(eng: Engine, reg: Registry, work: string, refs: readonly string[]): Promise<number> {
  const started = performance.now();
  const r = await runAction(eng, work, inputs(reg, refs.join('\n')));
  const images = JSON.parse(r.outputs.images) as unknown[];
  if (images.length !== 3) throw new Error(`one step pushed ${images.length} images`);
  return performance.now() - started;
}

/** Three steps one after another, ms. */
async function threeSteps(eng: Engine, reg: Registry, work: string, refs: readonly string[]): Promise<number> {
  const started = performance.now();
  for (const ref of refs) await runAction(eng, work, inputs(reg, ref));
  return performance.now() - started;
}

export async function benchMulti(): Promise<Record<string, number | string>> {
  const eng = probeEngine('A').engine;
  if (!eng) throw new Error('engine A is not running: bash test/rig/engines.sh all');
  const reg = await startRegistry({ users: { bench: 'bench-secret' } });
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-multi-'));
  const one: number[] = [];
  const three: number[] = [];
  const loads: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const a = await buildThree(eng, `a${i}-`);
      const b = await buildThree(eng, `b${i}-`);
      try {
        loads.push(loadavg()[0]);
        if (i % 2 === 0) {
          one.push(await oneStep(eng, reg, work, a));
          three.push(await threeSteps(eng, reg, work, b));
        } else {
          three.push(await threeSteps(eng, reg, work, b));
          one.push(await oneStep(eng, reg, work, a));
        }
      } finally {
        await removeImages(eng, [...a, ...b]);
      }
    }
  } finally {
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const ratio = pairedRatio(one, three);
  return {
    [`three ${SIZE_MB} MB images, one step (s, median)`]: Number((median(one) / 1000).toFixed(2)),
    [`the same, three steps in a row (s, median)`]: Number((median(three) / 1000).toFixed(2)),
    'one step / three steps (paired median)': ratio,
    'per-round ratios': one.map((x, i) => (x / three[i]).toFixed(2)).join(' '),
    [`target <= ${TARGET}`]: ratio <= TARGET ? 'met' : 'NOT met',
    'load average at the rounds': loads.map((l) => l.toFixed(1)).join(' '),
  };
}
