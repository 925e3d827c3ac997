// GitHub adapter, main step: inputs -> core -> outputs, summary, annotations. Only wiring lives here.
import * as core from '@actions/core';
import { InputError, readConfig } from './inputs.js';
import type { Logger } from './logger.js';
import { ActionFailure, runAction } from './run.js';
import { STATE_CONFIG_DIR } from './state.js';
import { failureSummaryMarkdown, summaryMarkdown } from './summary.js';
import { realDeps, resultOutputs } from './wiring.js';

const logger: Logger = {
  info: (m) => core.info(m),
  progress: (m) => core.info(m),
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
    const result = await runAction(
      config,
      realDeps(logger, 15_000, (dir) => core.saveState(STATE_CONFIG_DIR, dir)),
    );
    for (const [name, value] of Object.entries(resultOutputs(result))) core.setOutput(name, value);
    await core.summary.addRaw(summaryMarkdown(result)).write();
    if (result.pinnedRef) core.info(`pushed: ${result.pinnedRef}`);
  } catch (e) {
    const title =
      e instanceof ActionFailure
        ? e.title
        : e instanceof InputError
          ? `Invalid input '${e.input}'`
          : 'replicated-push failed';
    const message = (e as Error).message ?? String(e);
    const attempts = e instanceof ActionFailure ? (e.opts.attempts ?? 0) : 0;
    core.setOutput('attempts', String(attempts));
    core.error(message, { title });
    process.exitCode = 1;
    await core.summary
      .addRaw(failureSummaryMarkdown(title, message, attempts))
      .write()
      .catch(() => undefined);
  }
}
