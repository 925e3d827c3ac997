// Every docker command line the action runs is built here, so one file says all it asks of the docker CLI (engine
// facts, tags and image removal go over the engine API instead, engine-api.ts), and the children that stream (save,
// load, the push to the action's receiver, dial-stdio) start here through the process layer: a handle kept for a
// cancel, no secret in their environment, stderr's tail kept for the error.
import {
  howItEnded,
  startProcess,
  type ProcessHandle,
  type ProcessOptions,
  type ProcessResult,
} from '../util/process.js';
import { outputTail } from '../util/untrusted.js';

/** How much of a docker child's stderr is kept for its error message. */
export const DOCKER_STDERR_KEEP = 16 * 1024;

export const dockerArgv = {
  /** The password goes on stdin, never here. */
  login: (registry: string, username: string) => ['login', registry, '--username', username, '--password-stdin'],
  push: (ref: string, platform?: string | null) => ['push', ...(platform ? ['--platform', platform] : []), ref],
  /** An image with one empty layer from the tar on stdin (a tombstone): nothing is pulled. */
  importEmpty: (ref: string, label: string) => [
    'import',
    '--change',
    `LABEL ${label}`,
    '--message',
    'replicated-push tombstone',
    '-',
    ref,
  ],
  save: (image: string) => ['save', image],
  load: () => ['load'],
  tag: (source: string, target: string) => ['tag', source, target],
  dialStdio: () => ['system', 'dial-stdio'],
};

/** Starts `docker ARGS` (argv from dockerArgv) through the process layer. */
export function startDocker(args: readonly string[], opts: ProcessOptions): ProcessHandle {
  return startProcess('docker', args, { captureBytes: DOCKER_STDERR_KEEP, ...opts });
}

/**
 * What a docker child that did not succeed said, worded one way: `docker ARGS failed (exit N): <its stderr's last
 * lines>`, or how it ended (not started, deadline, cancel); null when it succeeded. stderr is quoted as data.
 */
export function dockerFailure(args: readonly string[], exit: ProcessResult, deadlineMs?: number): Error | null {
  const what = `docker ${args.join(' ')}`;
  if (exit.spawnError || exit.timedOut || exit.aborted) return new Error(`${what} ${howItEnded(exit, deadlineMs)}`);
  if (exit.code === 0) return null;
  const how = exit.signal ? `signal ${exit.signal}` : `exit ${exit.code}`;
  return new Error(`${what} failed (${how}): ${outputTail(exit.stderr) || '(no stderr)'}`);
}
