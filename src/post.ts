// GitHub adapter, post step: removes the run's docker config (credentials), even after a cancel or crash.
import * as core from '@actions/core';
import { removeRunDockerConfig } from './docker-config.js';
import { STATE_CONFIG_DIR } from './state.js';

export async function post(): Promise<void> {
  const dir = core.getState(STATE_CONFIG_DIR);
  try {
    if (removeRunDockerConfig(dir)) core.info(`removed the credentials left in ${dir}`);
    else core.debug('no credentials left to remove');
  } catch (e) {
    core.warning(`could not remove ${dir}: ${(e as Error).message}`);
  }
}
