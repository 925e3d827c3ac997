// GitHub adapter, post step: removes the run's work directory (credentials, relayer scratch space) that a
// cancelled or killed main step left behind.
import { tmpdir } from 'node:os';
import * as core from './workflow-commands.js';
import { removeRunDirectory } from '../engine/docker-config.js';
import { STATE_WORK_DIR } from './state.js';

export async function post(): Promise<void> {
  const dir = core.getState(STATE_WORK_DIR);
  // The root the main step made its directory in (run.ts): only a directory of its own there is removed.
  const root = process.env.RUNNER_TEMP || tmpdir();
  // The state is data: quoted, so a path with a line break or `::` stays inside this one line.
  const shown = JSON.stringify(dir);
  try {
    const outcome = removeRunDirectory(dir, root);
    if (outcome === 'removed') core.info(`removed what the main step left in ${shown}`);
    else if (outcome === 'absent') core.debug('nothing left to remove');
    else
      core.warning(
        `not removing ${shown}: ${outcome.refused}; the post step removes only a replicated-push-* directory of RUNNER_TEMP`,
      );
  } catch (e) {
    core.warning(`could not remove ${shown}: ${(e as Error).message}`);
  }
}
