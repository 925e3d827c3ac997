// GitHub adapter, main step: inputs -> core -> outputs, summary, annotations. Only wiring lives here.
import * as core from '@actions/core';
import { Docker } from './docker.js';
import { InputError, readConfig } from './inputs.js';
import type { Logger } from './logger.js';
import { RegistryClient } from './registry-client.js';
import { ActionFailure, runAction } from './run.js';
import { failureSummaryMarkdown, summaryMarkdown } from './summary.js';
import { STATE_CONFIG_DIR } from './state.js';

const logger: Logger = {
  info: (m) => core.info(m),
  debug: (m) => core.debug(m),
  notice: (a) => core.notice(a.message, { title: a.title }),
  warning: (a) => core.warning(a.message, { title: a.title }),
  group: (name, fn) => core.group(name, fn),
};

export async function main(): Promise<void> {
  // Mask before anything can print it, whether or not the other inputs are valid.
  const token = core.getInput('token');
  if (token) core.setSecret(token);
  try {
    const config = readConfig((name) => core.getInput(name), { ref: process.env.GITHUB_REF ?? '' });
    core.setSecret(Buffer.from(`${config.username}:${config.token}`).toString('base64'));
    const result = await runAction(config, {
      env: process.env,
      logger,
      docker: (env) => new Docker(env),
      registry: (host, username, password) => new RegistryClient(host, { username, password }),
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      random: Math.random,
      progressIntervalMs: 15_000,
      onConfigDir: (dir) => core.saveState(STATE_CONFIG_DIR, dir),
    });
    core.setOutput('ref', result.refs[0]);
    core.setOutput('refs', result.refs.join('\n'));
    core.setOutput('digest', result.digest ?? '');
    core.setOutput('pinned-ref', result.pinnedRef ?? '');
    core.setOutput('attempts', String(result.attempts));
    core.setOutput('proxy-ref', result.plan.proxyRefs[0] ?? '');
    core.setOutput('replaced-digest', result.replaced[0]?.digest ?? '');
    await core.summary.addRaw(summaryMarkdown(result)).write();
    if (result.pinnedRef) core.info(`pushed: ${result.pinnedRef}`);
  } catch (e) {
    const title = e instanceof ActionFailure ? e.title : e instanceof InputError ? `Invalid input '${e.input}'` : 'replicated-push failed';
    const message = (e as Error).message ?? String(e);
    const attempts = e instanceof ActionFailure ? (e.opts.attempts ?? 0) : 0;
    core.setOutput('attempts', String(attempts));
    core.error(message, { title });
    process.exitCode = 1;
    await core.summary.addRaw(failureSummaryMarkdown(title, message, attempts)).write().catch(() => undefined);
  }
}
