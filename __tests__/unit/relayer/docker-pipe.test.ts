// relayerImage's plumbing against a stand-in `docker` on PATH: what it runs, what reaches `docker load`,
// and how a failing save or load is reported (exit code and the command's own stderr).
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { forgetSecrets, liveChildren, protectSecret } from '../../../src/util/process.js';
import { relayerBlobs, relayerImage } from '../../../src/layer-split/index.js';
import { sha256Digest } from '../../../src/image/blob-source.js';
import { legacyArchive } from '../../../test/fixtures/relayer/archives.js';
import { buildTar, f, readArchiveFiles } from '../../../test/fixtures/relayer/tars.js';

const FAKE_DOCKER = resolve('test/fixtures/relayer/fake-docker.sh');

let dir: string;
let work: string;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rp-fake-docker-'));
  work = mkdtempSync(join(tmpdir(), 'rp-pipe-work-'));
  copyFileSync(FAKE_DOCKER, join(dir, 'docker'));
  chmodSync(join(dir, 'docker'), 0o755);
  const big = await buildTar(Array.from({ length: 6 }, (_, i) => f(`d/f${i}`, 12 * 1024)));
  writeFileSync(join(dir, 'input.tar'), (await legacyArchive({ layers: [big] })).archive);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function opts(env: Record<string, string> = {}, maxLayerSize = 40 * 1024) {
  const logs: string[] = [];
  return {
    logs,
    options: {
      maxLayerSize,
      tag: 'relayered:1',
      workDir: work,
      log: (l: string) => logs.push(l),
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, FAKE_DIR: dir, ...env },
    },
  };
}

const calls = () => readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');

describe('relayerImage', () => {
  test('pipes docker save through the relayer into docker load, and inspects nothing after', async () => {
    const { options, logs } = opts();
    const report = await relayerImage('src:1', options);
    expect(calls()).toEqual(['save src:1', 'load']);
    expect(report.changed).toBe(true);
    expect(report.configDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const loaded = await readArchiveFiles(readFileSync(join(dir, 'loaded.tar')));
    expect(JSON.parse((loaded.get('manifest.json') as Buffer).toString())[0].RepoTags).toEqual(['relayered:1']);
    expect(logs).toContain('Loaded image: relayered:1');
  });

  test('an image that needs no split is not loaded again, only tagged', async () => {
    const { options } = opts({}, 10 * 1024 * 1024);
    const report = await relayerImage('src:1', options);
    expect(report.changed).toBe(false);
    expect(calls()).toEqual(['save src:1', 'tag src:1 relayered:1']);
    expect(existsSync(join(dir, 'loaded.tar'))).toBe(false);
  });

  test('a failing docker save is reported with its exit code and stderr', async () => {
    const { options } = opts({ FAKE_SAVE_FAIL: '1' });
    await expect(relayerImage('missing:1', options)).rejects.toThrow(
      'docker save missing:1 failed (exit 1): Error response from daemon: reference does not exist',
    );
  });

  test('a failing docker load is reported with its exit code and stderr', async () => {
    const { options } = opts({ FAKE_LOAD_FAIL: '1' });
    await expect(relayerImage('src:1', options)).rejects.toThrow(
      'docker load failed (exit 1): Error processing tar file(exit status 1): unexpected EOF',
    );
  });

  // Node destroys a child's stdin without an error when the child exits: the writer must notice, not hang
  test.each([1, 2, 3, 4, 5])(
    'a docker load that exits without reading anything is reported, not waited for (run %i)',
    async () => {
      const { options } = opts({ FAKE_LOAD_FAIL: 'now' });
      await expect(relayerImage('src:1', options)).rejects.toThrow(
        'docker load failed (exit 1): Error response from daemon: no space left on device',
      );
    },
  );

  test('no docker at all is a clear error', async () => {
    const { options } = opts();
    await expect(relayerImage('src:1', { ...options, env: { PATH: dir.replace(/$/, '-none') } })).rejects.toThrow(
      /docker save src:1 could not start: spawn docker ENOENT/,
    );
  });

  test("the children get the caller's environment without the token", async () => {
    const { options } = opts({ REPLICATED_TOKEN: 'tok-secret-123', INPUT_TOKEN: 'tok-secret-123', KEEP: 'yes' });
    protectSecret('tok-secret-123');
    try {
      writeFileSync(
        join(dir, 'docker'),
        `#!/bin/sh\nenv > "$FAKE_DIR/env.$1"\nexec "${join(dir, 'real-docker')}" "$@"\n`,
      );
      copyFileSync(FAKE_DOCKER, join(dir, 'real-docker'));
      chmodSync(join(dir, 'real-docker'), 0o755);
      await relayerImage('src:1', options);
    } finally {
      forgetSecrets();
    }
    for (const cmd of ['save', 'load']) {
      const env = readFileSync(join(dir, `env.${cmd}`), 'utf8');
      expect(env).toContain('KEEP=yes');
      expect(env).not.toContain('tok-secret-123');
    }
  });

  test('a cancel ends docker save and says so; no child is left', async () => {
    writeFileSync(join(dir, 'docker'), '#!/bin/sh\necho "$*" >> "$FAKE_DIR/calls"\nexec sleep 30\n');
    const { options } = opts();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const started = Date.now();
    await expect(relayerImage('src:1', { ...options, signal: ac.signal })).rejects.toThrow(
      'docker save src:1 was cancelled',
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(liveChildren()).toBe(0);
    expect(calls()).toEqual(['save src:1']);
  });
});

describe('relayerBlobs', () => {
  test('docker save through the relayer into blob files: nothing loaded, nothing tagged', async () => {
    const { options } = opts();
    const blobDir = join(work, 'blobs');
    mkdirSync(blobDir);
    const { report, image } = await relayerBlobs('src:1', { ...options, blobDir });
    expect(calls()).toEqual(['save src:1']);
    expect(report.changed).toBe(true);
    const pieces = image?.image.kind === 'manifest' ? image.image : null;
    expect(pieces?.layers.length).toBe(report.layers[0].pieces.length);
    expect(readdirSync(blobDir)).toHaveLength(pieces?.layers.length ?? -1);
    expect(pieces?.config.digest).toBe(report.configDigest);
    expect(pieces?.digest).toBe(sha256Digest(pieces?.bytes ?? Buffer.alloc(0)));
    // closed (replaced by a re-split, or pushed): its blob files are gone
    await image?.close();
    expect(existsSync(blobDir)).toBe(false);
  });

  test('an image that needs no split: no blobs, no image, still nothing loaded or tagged', async () => {
    const { options } = opts({}, 10 * 1024 * 1024);
    const blobDir = join(work, 'blobs');
    mkdirSync(blobDir);
    const { report, image } = await relayerBlobs('src:1', { ...options, blobDir });
    expect(report.changed).toBe(false);
    expect(image).toBeNull();
    expect(calls()).toEqual(['save src:1']);
    expect(readdirSync(blobDir)).toEqual([]);
  });

  test('a failing docker save is reported with its exit code and stderr', async () => {
    const { options } = opts({ FAKE_SAVE_FAIL: '1' });
    await expect(relayerBlobs('missing:1', { ...options, blobDir: work })).rejects.toThrow(
      'docker save missing:1 failed (exit 1): Error response from daemon: reference does not exist',
    );
  });
});
