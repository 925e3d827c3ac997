// GitHub adapter, main step: inputs -> core -> outputs, summary, annotations. Only wiring lives here.
import * as core from './workflow-commands.js';
import { onCancel } from './cancel.js';
import { InputError, readConfigs } from '../core/inputs.js';
import type { Logger } from '../core/logger.js';
import { protectSecret } from '../util/process.js';
import { ActionFailure, Cancelled, runImages } from '../core/run.js';
import { STATE_WORK_DIR } from './state.js';
import { failureSummaryMarkdown, imagesSummaryMarkdown } from '../core/report/summary.js';
import { inertLines } from '../util/untrusted.js';
import { pushedSoFar, realDeps, resultOutputs } from './wiring.js';

// Plain lines are the only ones the runner could misread as a command: every line of them is made inert here
// (untrusted.ts), whatever the core forgot. Annotations, debug and group names are escaped by workflow-commands.ts.
const logger: Logger = {
  info: (m) => core.info(inertLines(m)),
  progress: (m) => core.info(inertLines(m)),
  debug: (m) => core.debug(m),
  notice: (a) => core.notice(a.message, { title: a.title }),
  warning: (a) => core.warning(a.message, { title: a.title }),
  group: (name, fn) => core.group(name, fn),
};

/** The job summary is optional (older GHES and local runners have no GITHUB_STEP_SUMMARY): never a failure. */
async function writeSummary(markdown: string): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return core.debug('this runner has no job summary (GITHUB_STEP_SUMMARY unset)');
  try {
    await core.appendSummary(markdown);
  } catch (e) {
    core.info(`no job summary written: ${(e as Error).message}`);
  }
}

export async function main(): Promise<void> {
  // Mask before anything can print it, whether or not the other inputs are valid.
  for (const name of ['token', 'source-token']) {
    const secret = core.getInput(name);
    if (!secret) continue;
    core.setSecret(secret);
    protectSecret(secret);
  }
  const cancel = onCancel();
  // what the outputs say when another image fails
  const pushed = pushedSoFar();
  try {
    const configs = readConfigs((name) => core.getInput(name), { ref: process.env.GITHUB_REF ?? '' });
    const [config] = configs;
    core.setSecret(Buffer.from(`${config.username}:${config.token}`).toString('base64'));
    const results = await runImages(
      configs,
      realDeps(logger, {
        progressIntervalMs: 15_000,
        signal: cancel.signal,
        onWorkDir: (dir) => core.saveState(STATE_WORK_DIR, dir),
      }),
      pushed.hooks,
    );
    for (const [name, value] of Object.entries(resultOutputs(results))) core.setOutput(name, value);
    for (const r of results.images) if (r.pinnedRef) core.info(`pushed: ${r.pinnedRef}`);
    await writeSummary(imagesSummaryMarkdown(results));
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
    for (const [name, value] of Object.entries(pushed.outputs() ?? {})) core.setOutput(name, value);
    core.error(message, { title });
    process.exitCode = e instanceof Cancelled ? (cancel.exitCode() ?? 1) : 1;
    await writeSummary(failureSummaryMarkdown(title, message, attempts));
  } finally {
    cancel.dispose();
  }
  // A cancel that arrived after the core finished still ends the step as cancelled.
  if (cancel.exitCode() !== null) process.exitCode = cancel.exitCode() as number;
}
