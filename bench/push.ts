// The action's own cost, measured against what it replaces. Paired runs on one machine against one local
// registry, re-pushing an image the registry already holds, so only the tools' overhead differs.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildImage, engine, removeImages, uniqueName } from '../test/support/images.js';
import { startRegistry } from '../test/support/registry.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

export async function benchPush(rounds = 9): Promise<Record<string, number | string>> {
  const eng = engine('A');
  const reg = await startRegistry();
  const [user, password] = Object.entries(reg.users)[0];
  const src = `${uniqueName('rp-bench')}:b`;
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-'));
  try {
    await buildImage(eng, src, { files: { '/a': 4_000_000, '/b': 1_000_000, '/c': 'c' } });
    // tsx runs this file through NODE_OPTIONS; the action must start as a runner starts it, without a loader.
    const { NODE_OPTIONS: _loader, ...inherited } = process.env;
    const env = { ...inherited, DOCKER_HOST: eng.host };
    const ref = `${reg.host}/bench/app:1.0.0`;
    const byHand = () => {
      const cfg = mkdtempSync(join(work, 'cfg-'));
      const e = { ...env, DOCKER_CONFIG: cfg };
      execFileSync('docker', ['login', reg.host, '-u', user, '--password-stdin'], {
        env: e,
        input: password,
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      execFileSync('docker', ['tag', src, ref], { env: e });
      execFileSync('docker', ['push', ref], { env: e, stdio: 'ignore' });
      rmSync(cfg, { recursive: true, force: true });
    };
    const files = ['output', 'state', 'summary'].map((f) => join(work, f));
    const action = () => {
      for (const f of files) writeFileSync(f, '');
      const r = spawnSync(process.execPath, ['dist/index.js'], {
        env: {
          ...env,
          RUNNER_TEMP: work,
          GITHUB_OUTPUT: files[0],
          GITHUB_STATE: files[1],
          GITHUB_STEP_SUMMARY: files[2],
          'INPUT_APP-SLUG': 'bench',
          INPUT_IMAGE: src,
          'INPUT_TARGET-IMAGE': 'app',
          INPUT_TAG: '1.0.0',
          INPUT_TOKEN: password,
          INPUT_USERNAME: user,
          INPUT_REGISTRY: reg.host,
        },
        stdio: 'ignore',
      });
      if (r.status !== 0) throw new Error(`action failed with ${r.status}`);
    };
    byHand(); // the registry now holds the image: every measured run is a re-push
    action();
    const hand: number[] = [];
    const act: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // alternate the order so neither side always runs on a warmer cache
      if (i % 2) {
        hand.push(timed(byHand));
        act.push(timed(action));
      } else {
        act.push(timed(action));
        hand.push(timed(byHand));
      }
    }
    const nodeBare: number[] = [];
    const coldStart: number[] = [];
    for (let i = 0; i < rounds; i++) {
      nodeBare.push(timed(() => spawnSync(process.execPath, ['-e', '0'])));
      coldStart.push(
        timed(() =>
          spawnSync(process.execPath, ['dist/index.js'], {
            env: { PATH: process.env.PATH, GITHUB_OUTPUT: '', GITHUB_STATE: '' },
          }),
        ),
      );
    }
    const result = {
      'push: action main, median ms': Math.round(median(act)),
      'push: login+tag+push by hand, median ms': Math.round(median(hand)),
      'push: ratio (target <= 1.5, aim 1.2)': Number((median(act) / median(hand)).toFixed(2)),
      'cold start to an input error, median ms': Math.round(median(coldStart)),
      'node -e 0, median ms': Math.round(median(nodeBare)),
      'cold start ratio (target <= 2)': Number((median(coldStart) / median(nodeBare)).toFixed(2)),
      'dist/index.js bytes (target <= 1 MB)': statSync('dist/index.js').size,
      rounds,
    };
    return result;
  } finally {
    await removeImages(eng, [src, `${reg.host}/bench/app:1.0.0`]);
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
