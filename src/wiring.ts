// The real parts the core runs with, shared by the GitHub adapter and the CLI.
import { Docker } from './docker.js';
import type { Logger } from './logger.js';
import { RegistryClient } from './registry-client.js';
import { relayerImage } from './relayer/index.js';
import type { CoreDeps, RunResult } from './run.js';

export function realDeps(logger: Logger, progressIntervalMs: number, onConfigDir?: (dir: string) => void): CoreDeps {
  return {
    env: process.env,
    logger,
    docker: (env) => new Docker(env),
    registry: (host, username, password) => new RegistryClient(host, { username, password }),
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    random: Math.random,
    progressIntervalMs,
    onConfigDir,
    relayer: relayerImage,
  };
}

/** The action's outputs (action.yml) from a result; the CLI prints the same names. */
export function resultOutputs(result: RunResult): Record<string, string> {
  return {
    ref: result.refs[0],
    refs: result.refs.join('\n'),
    digest: result.digest ?? '',
    'pinned-ref': result.pinnedRef ?? '',
    attempts: String(result.attempts),
    'proxy-ref': result.plan.proxyRefs[0] ?? '',
    'replaced-digest': result.replaced[0]?.digest ?? '',
  };
}
