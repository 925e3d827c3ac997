// The action's own cost, measured against what it replaces. Paired runs on one machine against one local
// registry, re-pushing an image the registry already holds, so only the tools' overhead differs. Each round runs
// the three ways once each, in a rotating order (none always runs on the warmest cache), and the ratios are the
// median of the per-round ratios: a slow moment of the machine hits both sides of a pair.
//   action   the action's main step: node dist/index.js as the runner starts it (login, tag, push, verify)
// Both steps run on Node 24 (test/support/node24.ts), as the runner starts `runs.using: node24` actions.
//   peer     what a workflow would do instead: docker/login-action's main step, then `docker tag`, `docker push`
//   by hand  `docker login --password-stdin; docker tag; docker push`
//
// docker/login-action: its main step is node running its bundled dist (dist/index.cjs, ~1.9 MB), which runs
// `docker login --password-stdin`. When a copy of that dist is present (RP_BENCH_LOGIN_ACTION=path/to/index.cjs,
// or .bench/login-action/dist/index.cjs: `git clone --depth 1 https://github.com/docker/login-action .bench/login-action`)
// the real one runs. Otherwise it is EMULATED: node starts a small script that runs `docker login --password-stdin`.
// The emulation skips loading the 1.9 MB bundle, so the peer looks faster than it is and the action's ratio
// against it looks worse than the real one: the conservative side. The table says which one ran.
//
// RP_DIST_BEFORE=path/to/index.js: an earlier bundle run as a fourth way in the same rounds (order rotating), so a
// change is measured before/after side by side under the same load (the machine's load average is in the table).
// RP_BENCH_PUSH_ROUNDS (default 9). RP_BENCH_PUSH_DIAL_STDIO=1: the action (and the earlier bundle) reach the engine
// through a docker context, so `docker system dial-stdio`, instead of DOCKER_HOST's unix socket.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildImage, engine, removeImages, uniqueName } from '../test/support/images.js';
import { node24 } from '../test/support/node24.js';
import { startRegistry } from '../test/support/registry.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** Median of the per-round ratios a[i] / b[i]. */
function pairedRatio(a: number[], b: number[]): number {
  return Number(median(a.map((x, i) => x / b[i])).toFixed(2));
}

function loginActionDist(): string | undefined {
  const path = resolve(process.env.RP_BENCH_LOGIN_ACTION ?? '.bench/login-action/dist/index.cjs');
  return existsSync(path) ? path : undefined;
}

// The emulated login-action main step: a node process that runs `docker login --password-stdin`.
const EMULATED_LOGIN = `
const { spawnSync } = require('node:child_process');
const e = process.env;
const r = spawnSync('docker', ['login', '--password-stdin', '--username', e.INPUT_USERNAME, e.INPUT_REGISTRY],
  { input: e.INPUT_PASSWORD, stdio: ['pipe', 'ignore', 'inherit'] });
process.exit(r.status ?? 1);`;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): void {
  const r = spawnSync(cmd, args, { env, input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  // the action says why on stdout (::error::), docker on stderr
  const why = `${r.stderr?.toString()}\n${r.stdout?.toString().slice(-3000)}`;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${why}`);
}

const DIST_BEFORE = process.env.RP_DIST_BEFORE ? resolve(process.env.RP_DIST_BEFORE) : null;
const DIAL_STDIO = process.env.RP_BENCH_PUSH_DIAL_STDIO === '1';

/** A user config whose context is the engine's socket: the action then speaks to it through dial-stdio. */
function dialStdioEnv(env: NodeJS.ProcessEnv, host: string, work: string): NodeJS.ProcessEnv {
  const cfg = join(work, 'user-config');
  const { DOCKER_HOST: _host, ...rest } = env;
  run('docker', ['--config', cfg, 'context', 'create', 'rp-bench', '--docker', `host=${host}`], rest);
  return { ...rest, DOCKER_CONFIG: cfg, DOCKER_CONTEXT: 'rp-bench' };
}

export async function benchPush(
  rounds = Number(process.env.RP_BENCH_PUSH_ROUNDS || 9),
): Promise<Record<string, number | string>> {
  const eng = engine('A');
  const reg = await startRegistry();
  const [user, password] = Object.entries(reg.users)[0];
  const src = `${uniqueName('rp-bench')}:b`;
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-'));
  const loginDist = loginActionDist();
  try {
    await buildImage(eng, src, { files: { '/a': 4_000_000, '/b': 1_000_000, '/c': 'c' } });
    // tsx runs this file through NODE_OPTIONS; every node child starts as a runner starts it, without a loader.
    const { NODE_OPTIONS: _loader, ...inherited } = process.env;
    const env = { ...inherited, DOCKER_HOST: eng.host };
    const ref = `${reg.host}/bench/app:1.0.0`;
    const files = ['output', 'state', 'summary'].map((f) => join(work, f));
    const runnerFiles = () => {
      for (const f of files) writeFileSync(f, '');
      return { RUNNER_TEMP: work, GITHUB_OUTPUT: files[0], GITHUB_STATE: files[1], GITHUB_STEP_SUMMARY: files[2] };
    };
    /** a fresh docker config per run, as on a fresh runner */
    const withConfig = (fn: (e: NodeJS.ProcessEnv) => void) => () => {
      const cfg = mkdtempSync(join(work, 'cfg-'));
      try {
        fn({ ...env, DOCKER_CONFIG: cfg });
      } finally {
        rmSync(cfg, { recursive: true, force: true });
      }
    };
    const byHand = withConfig((e) => {
      run('docker', ['login', reg.host, '-u', user, '--password-stdin'], e, password);
      run('docker', ['tag', src, ref], e);
      run('docker', ['push', ref], e);
    });
    const peer = withConfig((e) => {
      const inputs = {
        INPUT_REGISTRY: reg.host,
        INPUT_USERNAME: user,
        INPUT_PASSWORD: password,
        INPUT_ECR: 'auto',
        INPUT_LOGOUT: 'true',
      };
      const login = loginDist ? [loginDist] : ['-e', EMULATED_LOGIN];
      run(node24(), login, { ...e, ...runnerFiles(), ...inputs });
      run('docker', ['tag', src, ref], e);
      run('docker', ['push', ref], e);
    });
    const actionEnv = DIAL_STDIO ? dialStdioEnv(env, eng.host, work) : env;
    const actionOf = (dist: string) => () =>
      run(node24(), [dist], {
        ...actionEnv,
        ...runnerFiles(),
        'INPUT_APP-SLUG': 'bench',
        INPUT_IMAGE: src,
        'INPUT_TARGET-IMAGE': 'app',
        INPUT_TAG: '1.0.0',
        INPUT_TOKEN: password,
        INPUT_USERNAME: user,
        INPUT_REGISTRY: reg.host,
      });
    const action = actionOf('dist/index.js');
    const before = DIST_BEFORE ? actionOf(DIST_BEFORE) : null;
    // warm-up: the registry now holds the image, every measured run is a re-push; each way has run once
    byHand();
    peer();
    action();
    before?.();
    const ways: Record<string, () => void> = { action, peer, byHand, ...(before ? { before } : {}) };
    const t: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
    const names = Object.keys(ways);
    const loadAtStart = loadavg()[0];
    for (let i = 0; i < rounds; i++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(i + k) % names.length];
        t[name].push(timed(ways[name]));
        // The registry child's stderr is read on the event loop, which spawnSync blocks: a pipe never drained
        // fills after some rounds and the registry stops answering (the later rounds then fail).
        await new Promise((r) => setImmediate(r));
      }
    }

    // cold start: both with the same environment, paired and alternated
    const bare = { PATH: process.env.PATH, HOME: process.env.HOME, GITHUB_OUTPUT: '', GITHUB_STATE: '' };
    const nodeBare: number[] = [];
    const coldStart: number[] = [];
    const node0 = () => spawnSync(node24(), ['-e', '0'], { env: bare });
    const dist = () => spawnSync(node24(), ['dist/index.js'], { env: bare });
    node0();
    dist();
    for (let i = 0; i < rounds; i++) {
      if (i % 2) {
        nodeBare.push(timed(node0));
        coldStart.push(timed(dist));
      } else {
        coldStart.push(timed(dist));
        nodeBare.push(timed(node0));
      }
    }
    const peerName = loginDist ? 'docker/login-action (its real dist)' : 'login-action EMULATED (node + docker login)';
    const beforeFigures: Record<string, number | string> = before
      ? {
          'push: before (RP_DIST_BEFORE) main step, median ms': Math.round(median(t.before)),
          'push: action / before, median of paired ratios': pairedRatio(t.action, t.before),
          'push: per-round action / before': t.action.map((x, i) => (x / t.before[i]).toFixed(3)).join(' '),
          'dist before': DIST_BEFORE ?? '',
        }
      : {};
    return {
      'engine reached through': DIAL_STDIO ? 'a docker context (dial-stdio)' : `DOCKER_HOST ${eng.host}`,
      'load average (1 min) at start / end': `${loadAtStart.toFixed(1)} / ${loadavg()[0].toFixed(1)}`,
      'push: action main step, median ms': Math.round(median(t.action)),
      ...beforeFigures,
      [`push: ${peerName} + tag + push, median ms`]: Math.round(median(t.peer)),
      'push: docker login; tag; push by hand, median ms': Math.round(median(t.byHand)),
      'push: action / login-action+tag+push, median of paired ratios (target <= 1.0, aim 0.8)': pairedRatio(
        t.action,
        t.peer,
      ),
      'push: action / by hand, median of paired ratios (target <= 2.5)': pairedRatio(t.action, t.byHand),
      'cold start to an input error, median ms': Math.round(median(coldStart)),
      'node -e 0 (same env), median ms': Math.round(median(nodeBare)),
      'cold start / node -e 0, median of paired ratios (target <= 2)': pairedRatio(coldStart, nodeBare),
      'dist/index.js bytes (target <= 1 MB)': statSync('dist/index.js').size,
      'docker CLI version': execFileSync('docker', ['version', '--format', '{{.Client.Version}}'], { env })
        .toString()
        .trim(),
      rounds,
    };
  } finally {
    await removeImages(eng, [src, `${reg.host}/bench/app:1.0.0`]);
    await reg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
