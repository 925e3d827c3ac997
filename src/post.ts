// GitHub adapter, post step: removes the run's work directory (credentials, relayer scratch space) that a
// cancelled or killed main step left behind.
import * as core from './workflow-commands.js';
import { removeRunDirectory } from './docker-config.js';
import { STATE_WORK_DIR } from './state.js';

export async function post(): Promise<void> {
  const dir = core.getState(STATE_WORK_DIR);
  try {
    if (removeRunDirectory(dir)) core.info(`removed what the main step left in ${dir}`);
    else core.debug('nothing left to remove');
  } catch (e) {
    core.warning(`could not remove ${dir}: ${(e as Error).message}`);
  }
}
