// A docker config directory for this run alone: `docker login` writes the credentials there instead of
// ~/.docker, so concurrent jobs on one runner never share them and no later step inherits them.
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

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

/** Removes a directory of the run (credentials included); safe to call twice (main, then post). */
export function removeRunDirectory(dir: string): boolean {
  if (!dir || !existsSync(dir)) return false;
  rmSync(dir, { recursive: true, force: true });
  return true;
}
