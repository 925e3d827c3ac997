// The engine read alone (Docker.readImage: /_ping, /info, the image, its history, two names), ms per call, for two
// builds of src/ side by side in one process: `tsx bench/engine-read.ts OTHER_SRC_DIR` compares OTHER_SRC_DIR's
// docker.ts (an earlier engine-api.ts, e.g. from `git archive OLD src | tar -x -C DIR`) with this checkout's. Each
// round times N calls of each build, order alternating, over the engine's unix socket and over dial-stdio (a docker
// context naming the same socket). Engine A; RP_BENCH_READ_N (50) calls a round, RP_BENCH_READ_ROUNDS (5).
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import { buildImage, engine, removeImages, uniqueName } from '../test/support/images.js';
import { median } from './push.js';

type DockerLike = { readImage(ref: string, o?: { names?: readonly string[] }): Promise<unknown> };
type DockerCtor = new (env: NodeJS.ProcessEnv, o?: object) => DockerLike;

const N = Number(process.env.RP_BENCH_READ_N || 50);
const ROUNDS = Number(process.env.RP_BENCH_READ_ROUNDS || 5);

async function msPerCall(docker: DockerLike, ref: string, names: string[]): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < N; i++) await docker.readImage(ref, { names });
  return (performance.now() - t) / N;
}

const other = process.argv[2];
if (!other) throw new Error('usage: tsx bench/engine-read.ts OTHER_ENGINE_DIR (the folder holding another docker.ts)');
const builds: Record<string, DockerCtor> = {
  before: ((await import(resolve(other, 'docker.ts'))) as { Docker: DockerCtor }).Docker,
  after: ((await import(resolve('src/engine/docker.ts'))) as { Docker: DockerCtor }).Docker,
};
const eng = engine('A');
const ref = `${uniqueName('rp-bench-read')}:1`;
const work = mkdtempSync(join(tmpdir(), 'rp-bench-read-'));
try {
  await buildImage(eng, ref, { files: { '/a': 'a', '/b': 'b' } });
  const cfg = join(work, 'config');
  execFileSync('docker', ['--config', cfg, 'context', 'create', 'rp-bench', '--docker', `host=${eng.host}`]);
  const { DOCKER_HOST: _h, DOCKER_CONTEXT: _c, ...base } = process.env;
  const endpoints: Record<string, NodeJS.ProcessEnv> = {
    socket: { ...base, DOCKER_HOST: eng.host },
    'dial-stdio': { ...base, DOCKER_CONFIG: cfg, DOCKER_CONTEXT: 'rp-bench' },
  };
  const names = ['127.0.0.1:1/bench/app:1.0.0', ref];
  const t: Record<string, number[]> = {};
  const load = [loadavg()[0]];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [where, env] of Object.entries(endpoints)) {
      const order = round % 2 ? ['after', 'before'] : ['before', 'after'];
      for (const b of order) (t[`${where} ${b}`] ??= []).push(await msPerCall(new builds[b](env), ref, names));
    }
  }
  load.push(loadavg()[0]);
  for (const where of Object.keys(endpoints)) {
    const [b, a] = [t[`${where} before`], t[`${where} after`]];
    const ratio = median(a.map((x, i) => x / b[i]));
    console.log(
      `${where.padEnd(10)} ms per readImage, median of ${ROUNDS} rounds of ${N}: before ${median(b).toFixed(2)}  after ${median(a).toFixed(2)}  after/before ${ratio.toFixed(3)}  (rounds before ${b.map((x) => x.toFixed(1)).join(' ')} | after ${a.map((x) => x.toFixed(1)).join(' ')})`,
    );
  }
  console.log(`load average (1 min) at start / end: ${load.map((l) => l.toFixed(1)).join(' / ')}`);
} finally {
  await removeImages(eng, [ref]);
  rmSync(work, { recursive: true, force: true });
}
