#!/usr/bin/env node
// The same core for other CI systems and laptops: flags mirror the action's inputs, the token comes from the
// environment, logs go to stderr and the outputs to stdout as name=value lines. Exit 0 ok, 1 failed, 2 bad usage.
import { onCancel } from './cancel.js';
import { parseCliArgs, usage } from './cli-args.js';
import { InputError, readConfigs } from '../core/inputs.js';
import type { Annotation, Logger } from '../core/logger.js';
import { protectSecret } from '../util/process.js';
import { ActionFailure, runImages } from '../core/run.js';
import { inertLines } from '../util/untrusted.js';
import { outputLines, pushedSoFar, realDeps, resultOutputs } from './wiring.js';
import { annotationText, groupHeading } from './workflow-render.js';

/**
 * Every line the CLI prints is made inert (untrusted.ts): no terminal escape or carriage return from docker or a
 * registry reaches the terminal, and no command reaches a CI runner that reads stderr for them (GitHub's does).
 */
function terminalLogger(): Logger {
  const tty = process.stderr.isTTY === true;
  let redraw = false;
  const write = (line: string) => {
    if (redraw) process.stderr.write('\r\x1b[2K');
    redraw = false;
    process.stderr.write(`${inertLines(line)}\n`);
  };
  // labelled as the demo shows the action's annotations and groups (workflow-render.ts)
  const annotate = (kind: 'notice' | 'warning') => (a: Annotation) => write(annotationText(kind, a.title, a.message));
  return {
    info: write,
    progress: (line) => {
      if (!tty) return write(line);
      process.stderr.write(`\r\x1b[2K${inertLines(line)}`);
      redraw = true;
    },
    debug: (line) => {
      if (process.env.RUNNER_DEBUG === '1' || process.env.DEBUG) write(`debug: ${line}`);
    },
    notice: annotate('notice'),
    warning: annotate('warning'),
    group: async (name, fn) => {
      write(groupHeading(name));
      return fn();
    },
  };
}

export async function cli(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseCliArgs(argv, process.env);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${usage()}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const log = terminalLogger();
  const token = args.get('token');
  // No child process sees the token, whatever environment it is given (the CLI's own includes $REPLICATED_TOKEN).
  protectSecret(token);
  const sourceToken = args.get('source-token');
  if (sourceToken) protectSecret(sourceToken);
  // Ctrl-C or SIGTERM aborts the run; the core ends its children and removes its credentials and work directory.
  const cancel = onCancel();
  // printed when another image fails
  const pushed = pushedSoFar();
  try {
    if (!token) throw new InputError('token', `No token: set $${args.tokenEnv} (the token is never a flag).`);
    const configs = readConfigs(args.get, { ref: process.env.GITHUB_REF ?? '' });
    const results = await runImages(
      configs,
      realDeps(log, { progressIntervalMs: process.stderr.isTTY ? 1000 : 15_000, signal: cancel.signal }),
      pushed.hooks,
    );
    process.stdout.write(outputLines(resultOutputs(results)));
    return cancel.exitCode() ?? 0;
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 2;
    }
    const out = pushed.outputs();
    if (out) process.stdout.write(outputLines(out));
    const title = e instanceof ActionFailure ? e.title : 'replicated-push failed';
    process.stderr.write(`${inertLines(`error: ${title}: ${(e as Error).message}`)}\n`);
    // A cancelled run exits with 128 + the signal's number (130 for Ctrl-C).
    return cancel.exitCode() ?? 1;
  } finally {
    cancel.dispose();
  }
}

process.exitCode = await cli(process.argv.slice(2));
