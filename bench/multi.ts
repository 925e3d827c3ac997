// Issue 20's target: three 50 MB images in one step (`image` with three lines) against the same three images pushed
// by three steps run one after another, each step a fresh node process as a runner starts it (its own login,
// registry check and work directory). Every round builds six fresh one-layer images of random bytes in engine A's
// classic store (three per side, built outside the timing) and pushes them to new repositories of one loopback
// registry, so nothing is shared and nothing is skipped by a HEAD; the two sides run in alternating order, and the
// figure is the median of the per-round ratios (paired: a slow moment of the machine hits both sides of a round).
// Environment: RP_DIST (default dist/index.js), RP_BENCH_MULTI_ROUNDS (default 3), RP_BENCH_MULTI_MB (50),
// RP_BENCH_MULTI_SOURCE (engine: images in engine A, the default; oci: OCI layouts built on engine B, no gzip to do),
// RP_BENCH_MULTI_LINK ("MB/s,ms": every connection through test/support/shaped-link.ts, as bench/upload.ts's shaped
// rows; empty: loopback, where the 2 cores, not the link, bound the run).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { docker, probeEngine, removeImages, uniqueName, type Engine } from '../test/support/images.js';
import { startShapedLink } from '../test/support/shaped-link.js';
import { startRegistry, type Registry } from '../test/support/registry.js';
import { buildOneLayerImage } from '../test/support/trust-image.js';
import { median, pairedRatio, runAction } from './upload.js';

const MB = 1_000_000;
const ROUNDS = Number(process.env.RP_BENCH_MULTI_ROUNDS || 3);
const SIZE_MB = Number(process.env.RP_BENCH_MULTI_MB || 50);
const TARGET = 0.6;
const SOURCE = process.env.RP_BENCH_MULTI_SOURCE || 'engine';
const LINK = process.env.RP_BENCH_MULTI_LINK || '';

function inputs(reg: Registry, image: string, extra: Record<string, string> = {}): Record<string, string> {
  const [user, password] = Object.entries(reg.users)[0];
  return { 'app-slug': 'bench', image, tag: '1.0.0', registry: reg.host, username: user, token: password, ...extra };
}

/** Three fresh images: engine A names, or `t=oci:DIR` lines of layouts built on engine B. */
async function buildThree(eng: Engine, label: string, work: string): Promise<string[]> {
  const names = [0, 1, 2].map((n) => uniqueName(`rp-bench-multi-${label}${n}`));
  if (SOURCE === 'oci') {
    const b = probeEngine('B').engine;
    if (!b) throw new Error('engine B is not running: bash test/rig/engines.sh all');
    const lines: string[] = [];
    for (const name of names) {
      const ctx = mkdtempSync(join(work, 'ctx-'));
      writeFileSync(join(ctx, 'payload.bin'), randomBytes(SIZE_MB * MB));
      writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY payload.bin /\n');
      const dest = join(work, name);
      const out = `type=oci,dest=${dest},tar=false`;
      await docker(b.host, ['buildx', 'build', '-q', '--provenance=false', '--output', out, ctx]);
      rmSync(ctx, { recursive: true, force: true });
      lines.push(`${name}=oci:${dest}`);
    }
    return lines;
  }
  const refs = names.map((n) => `${n}:src`);
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
  const upstream = await startRegistry({ users: { bench: 'bench-secret' } });
  const [mbps, ms] = LINK.split(',').map(Number);
  const link = LINK ? await startShapedLink({ upstream: upstream.host, mbps, latencyMs: ms }) : null;
  const reg: Registry = link ? { ...upstream, host: link.host } : upstream;
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-multi-'));
  const one: number[] = [];
  const three: number[] = [];
  const loads: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const a = await buildThree(eng, `a${i}-`, work);
      const b = await buildThree(eng, `b${i}-`, work);
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
        if (SOURCE !== 'oci') await removeImages(eng, [...a, ...b]);
      }
    }
  } finally {
    await link?.stop();
    await upstream.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const ratio = pairedRatio(one, three);
  return {
    'source, link': `${SOURCE}, ${LINK ? `shaped ${mbps} MB/s ${ms} ms per connection` : 'loopback'}`,
    [`three ${SIZE_MB} MB images, one step (s, median)`]: Number((median(one) / 1000).toFixed(2)),
    [`the same, three steps in a row (s, median)`]: Number((median(three) / 1000).toFixed(2)),
    'one step / three steps (paired median)': ratio,
    'per-round ratios': one.map((x, i) => (x / three[i]).toFixed(2)).join(' '),
    [`target <= ${TARGET}`]: ratio <= TARGET ? 'met' : 'NOT met',
    'load average at the rounds': loads.map((l) => l.toFixed(1)).join(' '),
  };
}
