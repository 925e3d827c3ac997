// Issue 19's registry-to-registry targets, paired in one run between the same two loopback registries: the action's
// registry source and uploader (openRegistrySource + uploadImage) against `skopeo copy docker://… docker://…` of the
// same image. Every round makes a fresh single-layer image of random bytes (RP_BENCH_COPY_MB, default 150 MB), puts
// it on the source with skopeo (untimed), then copies it both ways, in alternating order, to new repositories of the
// target: nothing is shared and nothing is skipped by a HEAD. The ratio is the median of the per-round ratios.
// Both ways run as their own process, timed whole (start to exit); ours is `bench/registry-copy-run.ts` under the
// tsx loader (`node --import tsx`), and it reports its own peak RSS (VmHWM) too. A last copy of a 1 GB layer (RP_BENCH_COPY_RSS_MB)
// gives the peak RSS target (< 200 MB). RP_BENCH_COPY_ROUNDS (default 3).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startRegistry, type Registry } from '../test/support/registry.js';

const MB = 1_000_000;
const ROUNDS = Number(process.env.RP_BENCH_COPY_ROUNDS || 3);
const COPY_MB = Number(process.env.RP_BENCH_COPY_MB || 150);
const RSS_MB = Number(process.env.RP_BENCH_COPY_RSS_MB || 1000);
const RUNNER = resolve('bench/registry-copy-run.ts');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function exec(cmd: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', rej);
    child.once('close', (code) =>
      code === 0 ? res(out) : rej(new Error(`${cmd} ${args[0]} exited ${code}: ${err.slice(-2000)}`)),
    );
  });
}

/** An OCI layout of one image with one layer of `mb` MB of random bytes (written in 8 MB pieces, never held). */
async function layout(dir: string, mb: number): Promise<void> {
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  const blob = (bytes: Buffer) => {
    const digest = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, 'blobs/sha256', digest), bytes);
    return { digest: `sha256:${digest}`, size: bytes.length };
  };
  const tmp = join(dir, 'layer.tmp');
  const out = createWriteStream(tmp);
  const hash = createHash('sha256');
  for (let left = mb * MB; left > 0; left -= 8 * MB) {
    const piece = randomBytes(Math.min(8 * MB, left));
    hash.update(piece);
    if (!out.write(piece)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  const layerHex = hash.digest('hex');
  renameSync(tmp, join(dir, 'blobs/sha256', layerHex));
  const config = blob(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${layerHex}`, size: mb * MB },
        ],
      }),
    ),
  );
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest }],
    }),
  );
}

const credsOf = (r: Registry) => Object.entries(r.users)[0].join(':');

async function skopeo(from: string, to: string, src: Registry, dst: Registry | null): Promise<number> {
  const started = performance.now();
  await exec('skopeo', [
    'copy',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    ...(from.startsWith('docker://') ? ['--src-creds', credsOf(src)] : []),
    '--dest-creds',
    credsOf(dst ?? src),
    from,
    to,
  ]);
  return performance.now() - started;
}

/** Ours, as its own process: wall time (start to exit) and the peak RSS it reports. */
async function ours(
  src: Registry,
  repo: string,
  dst: Registry,
  target: string,
): Promise<{ ms: number; inner: number; rss: number }> {
  const started = performance.now();
  const out = await exec(process.execPath, [
    '--import',
    'tsx',
    RUNNER,
    JSON.stringify({ src: src.host, repo, srcCreds: src.users, dst: dst.host, dstCreds: dst.users, target }),
  ]);
  const ms = performance.now() - started;
  const report = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { ms: number; peakRss: number };
  return { ms, inner: report.ms, rss: report.peakRss };
}

export async function benchRegistryCopy(): Promise<Record<string, number | string>> {
  const [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
  const work = mkdtempSync(join(tmpdir(), 'rp-bench-copy-'));
  const oursMs: number[] = [];
  const skopeoMs: number[] = [];
  const innerMs: number[] = [];
  let oursRss = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const dir = join(work, `layout-${round}`);
      await layout(dir, COPY_MB);
      const repo = `bench/copy-${round}`;
      await skopeo(`oci:${dir}`, `docker://${src.host}/${repo}:1`, src, null);
      rmSync(dir, { recursive: true, force: true });
      const runOurs = async () => {
        const r = await ours(src, repo, dst, `ours/copy-${round}`);
        oursMs.push(r.ms);
        innerMs.push(r.inner);
        oursRss = Math.max(oursRss, r.rss);
      };
      const runSkopeo = async () =>
        skopeoMs.push(
          await skopeo(`docker://${src.host}/${repo}:1`, `docker://${dst.host}/skopeo/copy-${round}:1`, src, dst),
        );
      if (round % 2 === 0) {
        await runOurs();
        await runSkopeo();
      } else {
        await runSkopeo();
        await runOurs();
      }
    }
    const big = join(work, 'layout-big');
    await layout(big, RSS_MB);
    await skopeo(`oci:${big}`, `docker://${src.host}/bench/big:1`, src, null);
    rmSync(big, { recursive: true, force: true });
    const bigCopy = await ours(src, 'bench/big', dst, 'ours/big');
    const ratio = median(oursMs.map((x, i) => x / skopeoMs[i]));
    return {
      [`copy ${COPY_MB} MB, ours (median ms)`]: Math.round(median(oursMs)),
      [`copy ${COPY_MB} MB, skopeo copy (median ms)`]: Math.round(median(skopeoMs)),
      'ours / skopeo (median of paired ratios; target <= 1.0, aim 0.8)': Number(ratio.toFixed(2)),
      'ours without process start (open to last PUT) / skopeo': Number(
        median(innerMs.map((x, i) => x / skopeoMs[i])).toFixed(2),
      ),
      [`ours peak RSS, ${COPY_MB} MB (MB)`]: Math.round(oursRss / MB),
      [`ours copy ${RSS_MB} MB layer (ms)`]: Math.round(bigCopy.ms),
      [`ours peak RSS, ${RSS_MB} MB layer (MB; target < 200)`]: Math.round(bigCopy.rss / MB),
      rounds: ROUNDS,
    };
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
    rmSync(work, { recursive: true, force: true });
  }
}
