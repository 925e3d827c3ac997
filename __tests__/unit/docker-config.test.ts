// The post step removes the directory the step state names only when it is a run's own: replicated-push-* directly
// under RUNNER_TEMP, as given and with every symlink resolved. The rule is a table; the removal runs on real files
// in a temporary directory (never on a system path: a broken check must not be able to delete one).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeRunDirectory, runDirectoryRefusal } from '../../src/engine/docker-config.js';
import { post } from '../../src/adapters/post.js';
import { captureStdoutEachTest } from '../../test/support/stdout.js';

describe('runDirectoryRefusal', () => {
  const T = '/home/runner/work/_temp';
  test.each<[string, string, string, string | null]>([
    ['a run directory', `${T}/replicated-push-Ab3xZ9`, T, null],
    ['a run directory, the root given with a trailing slash', `${T}/replicated-push-Ab3xZ9`, `${T}/`, null],
    ['a run directory given with a trailing slash', `${T}/replicated-push-Ab3xZ9/`, T, null],
    ['/etc', '/etc', T, 'not directly under the runner temp directory /home/runner/work/_temp'],
    ['the root itself', T, T, 'it is the runner temp directory itself'],
    ['the root itself, with a trailing slash', `${T}/`, T, 'it is the runner temp directory itself'],
    ['/', '/', T, 'not directly under the runner temp directory /home/runner/work/_temp'],
    ['RUNNER_TEMP/../x', `${T}/../x`, T, "it contains '..'"],
    ['.. that would come back under the root', `${T}/replicated-push-a/../replicated-push-b`, T, "it contains '..'"],
    ['.. as the whole name', `${T}/..`, T, "it contains '..'"],
    ['another directory of RUNNER_TEMP', `${T}/other-action`, T, 'not named replicated-push-*'],
    ['the prefix alone', `${T}/replicated-push-`, T, 'not named replicated-push-*'],
    ['a name with more after it', `${T}/replicated-push-x y`, T, 'not named replicated-push-*'],
    [
      'a run directory of another root',
      '/tmp/replicated-push-Ab3xZ9',
      T,
      `not directly under the runner temp directory ${T}`,
    ],
    ['deeper under the root', `${T}/x/replicated-push-Ab3xZ9`, T, `not directly under the runner temp directory ${T}`],
    [
      'inside a run directory',
      `${T}/replicated-push-Ab3xZ9/docker`,
      T,
      `not directly under the runner temp directory ${T}`,
    ],
    ['a relative path', 'replicated-push-Ab3xZ9', T, 'not an absolute path'],
    ['a relative root', `${T}/replicated-push-Ab3xZ9`, '_temp', 'the runner temp directory is not an absolute path'],
    ['a root of / (a run directory right under it)', '/replicated-push-Ab3xZ9', '/', null],
  ])('%s', (_name, dir, root, want) => {
    expect(runDirectoryRefusal(dir, root)).toBe(want);
  });
});

describe('removeRunDirectory on real files', () => {
  let base: string;
  let root: string;
  let outside: string;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'rp-post-'));
    root = join(base, 'runner-temp');
    outside = join(base, 'etc'); // stands in for /etc: a directory with files that is no run's
    mkdirSync(root);
    mkdirSync(outside);
    writeFileSync(join(outside, 'passwd'), 'root:x:0:0');
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  const untouched = () => {
    expect(readFileSync(join(outside, 'passwd'), 'utf8')).toBe('root:x:0:0');
  };

  test('the run directory is removed, with what is inside', () => {
    const dir = mkdtempSync(join(root, 'replicated-push-'));
    mkdirSync(join(dir, 'docker'));
    writeFileSync(join(dir, 'docker', 'config.json'), '{"auths":{}}');
    expect(removeRunDirectory(dir, root)).toBe('removed');
    expect(existsSync(dir)).toBe(false);
    expect(removeRunDirectory(dir, root)).toBe('absent'); // twice: main, then post
    expect(removeRunDirectory('', root)).toBe('absent');
  });

  test('a directory outside RUNNER_TEMP (/etc) is refused and kept', () => {
    expect(removeRunDirectory(outside, root)).toEqual({
      refused: `not directly under the runner temp directory ${root}`,
    });
    untouched();
  });

  test('RUNNER_TEMP/../x is refused and kept, even named like a run directory', () => {
    const sibling = join(base, 'replicated-push-Ab3xZ9');
    mkdirSync(sibling);
    writeFileSync(join(sibling, 'keep'), 'k');
    expect(removeRunDirectory(`${root}/../replicated-push-Ab3xZ9`, root)).toEqual({ refused: "it contains '..'" });
    expect(existsSync(join(sibling, 'keep'))).toBe(true);
  });

  test('RUNNER_TEMP itself is refused and kept', () => {
    writeFileSync(join(root, 'other-step-file'), 'x');
    expect(removeRunDirectory(root, root)).toEqual({ refused: 'it is the runner temp directory itself' });
    expect(existsSync(join(root, 'other-step-file'))).toBe(true);
  });

  test('a run-named symlink to elsewhere is refused: neither the link nor its target is touched', () => {
    const link = join(root, 'replicated-push-Ab3xZ9');
    symlinkSync(outside, link);
    expect(removeRunDirectory(link, root)).toEqual({ refused: 'it is a symbolic link' });
    expect(existsSync(link)).toBe(true);
    untouched();
  });

  test('a run directory reached through a symlinked parent resolves outside RUNNER_TEMP: refused', () => {
    // RUNNER_TEMP/replicated-push-X is real, but the root given is a link to another directory holding it
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    const victim = join(elsewhere, 'replicated-push-Ab3xZ9');
    mkdirSync(victim);
    writeFileSync(join(victim, 'keep'), 'k');
    const linkedRoot = join(root, 'linked');
    symlinkSync(elsewhere, linkedRoot);
    expect(removeRunDirectory(join(linkedRoot, 'replicated-push-Ab3xZ9'), root)).toEqual({
      refused: `not directly under the runner temp directory ${root}`,
    });
    expect(existsSync(join(victim, 'keep'))).toBe(true);
  });

  test('a RUNNER_TEMP that is itself a symlink still works (both sides resolved)', () => {
    const linkRoot = join(base, 'temp-link');
    symlinkSync(root, linkRoot);
    const dir = mkdtempSync(join(linkRoot, 'replicated-push-'));
    expect(removeRunDirectory(dir, linkRoot)).toBe('removed');
    expect(existsSync(dir)).toBe(false);
  });

  test('a file named like a run directory is refused', () => {
    const file = join(root, 'replicated-push-Ab3xZ9');
    writeFileSync(file, 'x');
    expect(removeRunDirectory(file, root)).toEqual({ refused: 'not a directory' });
    expect(existsSync(file)).toBe(true);
  });
});

describe('the post step', () => {
  let base: string;
  const stdout = captureStdoutEachTest();
  const saved = { ...process.env };
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'rp-post-step-'));
    mkdirSync(join(base, 'runner-temp'));
  });
  afterEach(() => {
    process.env = { ...saved };
    rmSync(base, { recursive: true, force: true });
  });

  test('a state naming a directory outside RUNNER_TEMP: a warning, nothing removed', async () => {
    const victim = join(base, 'etc');
    mkdirSync(victim);
    writeFileSync(join(victim, 'passwd'), 'x');
    process.env.RUNNER_TEMP = join(base, 'runner-temp');
    process.env.STATE_workDir = victim;
    await post();
    expect(existsSync(join(victim, 'passwd'))).toBe(true);
    expect(stdout.chunks.join('')).toBe(
      `::warning::not removing ${JSON.stringify(victim)}: not directly under the runner temp directory ${process.env.RUNNER_TEMP}; the post step removes only a replicated-push-* directory of RUNNER_TEMP\n`,
    );
  });

  test("the run's own directory is removed", async () => {
    process.env.RUNNER_TEMP = join(base, 'runner-temp');
    const dir = mkdtempSync(join(process.env.RUNNER_TEMP, 'replicated-push-'));
    process.env.STATE_workDir = dir;
    await post();
    expect(existsSync(dir)).toBe(false);
    expect(stdout.chunks.join('')).toBe(`removed what the main step left in ${JSON.stringify(dir)}\n`);
  });
});
