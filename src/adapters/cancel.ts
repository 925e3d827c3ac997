// The runner's cancel (SIGINT, then SIGTERM) and the CLI's Ctrl-C: abort the run, end its children at once,
// and let the core's own clean-up run before the process exits with 128 + the signal's number.
import { constants } from 'node:os';
import { endAllChildren } from '../util/process.js';

export interface CancelScope {
  readonly signal: AbortSignal;
  /** 128 + the signal's number once cancelled (130 for SIGINT, 143 for SIGTERM), else null. */
  exitCode(): number | null;
  dispose(): void;
}

export function onCancel(): CancelScope {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const handler = (sig: NodeJS.Signals) => {
    // A second signal while cleaning up must not kill the process before the credentials are removed.
    if (received) return;
    received = sig;
    controller.abort();
    void endAllChildren();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    exitCode: () => (received ? 128 + constants.signals[received] : null),
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
