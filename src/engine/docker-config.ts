// A docker config directory for this run alone: `docker login` writes the credentials there instead of
// ~/.docker, so concurrent jobs on one runner never share them and no later step inherits them.
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';

export interface RunDockerConfig {
  readonly dir: string;
  /** The environment for docker commands of this run. */
  readonly env: NodeJS.ProcessEnv;
}

function userConfigDir(env: NodeJS.ProcessEnv): string {
  return env.DOCKER_CONFIG || join(homedir(), '.docker');
}

/**
 * Creates the run's config directory `dir` (mode 0700; inside the run's work directory). The user's engine
 * selection still applies: DOCKER_HOST and DOCKER_CONTEXT pass through the environment, and a current context
 * chosen with `docker context use` is carried over, with the contexts store linked, not copied.
 */
export function createRunDockerConfig(env: NodeJS.ProcessEnv, dir: string): RunDockerConfig {
  mkdirSync(dir, { mode: 0o700 });
  const config: Record<string, unknown> = {};
  const userDir = userConfigDir(env);
  if (!env.DOCKER_HOST && !env.DOCKER_CONTEXT) {
    try {
      const user = JSON.parse(readFileSync(join(userDir, 'config.json'), 'utf8')) as { currentContext?: string };
      if (user.currentContext && user.currentContext !== 'default') config.currentContext = user.currentContext;
    } catch {
      // no user config: the default engine applies
    }
  }
  if (existsSync(join(userDir, 'contexts'))) symlinkSync(join(userDir, 'contexts'), join(dir, 'contexts'));
  // cli-plugins (buildx etc.) are not needed to push; credential helpers are deliberately not inherited.
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  return { dir, env: { ...env, DOCKER_CONFIG: dir } };
}

/** What mkdtemp makes of the run's prefix (run.ts): `replicated-push-` and six letters or digits. */
const RUN_DIRECTORY_NAME = /^replicated-push-[A-Za-z0-9]+$/;

/**
 * Why `dir` is not a run's work directory under `tempRoot` (RUNNER_TEMP), or null when it is: an absolute path
 * without `..`, named replicated-push-*, directly under the root (not the root itself). Pure: the paths as given;
 * removeRunDirectory applies it to the paths as given and again to both resolved.
 */
export function runDirectoryRefusal(dir: string, tempRoot: string): string | null {
  if (!isAbsolute(tempRoot)) return 'the runner temp directory is not an absolute path';
  if (!isAbsolute(dir)) return 'not an absolute path';
  if (dir.split(/[\\/]/).includes('..')) return "it contains '..'";
  const root = stripSep(normalize(tempRoot));
  const path = stripSep(normalize(dir));
  if (path === root) return 'it is the runner temp directory itself';
  if (dirname(path) !== root) return `not directly under the runner temp directory ${root}`;
  if (!RUN_DIRECTORY_NAME.test(basename(path))) return 'not named replicated-push-*';
  return null;
}

function stripSep(p: string): string {
  return p.length > 1 && p.endsWith(sep) ? p.slice(0, -1) : p;
}

/**
 * Removes a run's work directory (credentials included) left under `tempRoot`: 'removed', 'absent' (nothing
 * there, or no directory named), or why it refused, having removed nothing. The path comes from the step state,
 * which anything running in the job could have written: only a real directory passing runDirectoryRefusal, as
 * given and once every symlink is resolved (realpath of both), is removed. Safe to call twice (main, then post).
 */
export function removeRunDirectory(dir: string, tempRoot: string): 'removed' | 'absent' | { refused: string } {
  if (!dir) return 'absent';
  const refused = runDirectoryRefusal(dir, tempRoot);
  if (refused) return { refused };
  if (!existsSync(dir)) return 'absent';
  if (lstatSync(dir).isSymbolicLink()) return { refused: 'it is a symbolic link' };
  const resolved = runDirectoryRefusal(realpathSync(dir), realpathSync(tempRoot));
  if (resolved) return { refused: `resolved, ${resolved}` };
  if (!lstatSync(dir).isDirectory()) return { refused: 'not a directory' };
  rmSync(dir, { recursive: true, force: true });
  return 'removed';
}

/**
 * The docker config for one `docker push` to the action's receiver on 127.0.0.1 (`host`, "127.0.0.1:PORT"): the
 * engine selection as createRunDockerConfig carries it, and `auths` holding that receiver's credential alone. The
 * CLI sends it to the engine with the push (X-Registry-Auth), which answers the receiver's Basic challenge with it;
 * the password is only in this file (0600, inside the run's work directory), never on a command line. The run's
 * registry credential is not in it: that push has no use for it.
 */
export function createReceiverDockerConfig(
  env: NodeJS.ProcessEnv,
  dir: string,
  host: string,
  credential: { readonly username: string; readonly password: string },
): RunDockerConfig {
  const made = createRunDockerConfig(env, dir);
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  config.auths = { [host]: { auth: Buffer.from(`${credential.username}:${credential.password}`).toString('base64') } };
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return made;
}
