// jest globalSetup of the e2e project (jest.config.js): `npm test` brings the rig up itself, so `npm ci && npm test`
// is all a fresh clone needs (as root). test/rig/engines.sh is idempotent and takes about a second when the engines
// are already up. Jest runs this only when an e2e test is selected: `npm run test:unit` never starts the rig.
//
// When the rig cannot come up (not root, no Docker), the run goes on: each e2e suite that needs a missing engine
// reports one test named after the reason, skipped, or failed under CI (test/support/images.ts).
// RP_RIG=skip leaves the rig as it is (the tests still check what answers).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMMAND = 'sudo bash test/rig/engines.sh all';

export default function globalSetup() {
  if (process.env.RP_RIG === 'skip') return;
  const started = Date.now();
  process.stderr.write('\n[rig] bringing up engines A and B (test/rig/engines.sh all)\n');
  // stderr passes through: on a fresh machine the script installs packages and that takes minutes
  const r = spawnSync('bash', [join(root, 'test/rig/engines.sh'), 'all'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status === 0) {
    process.stderr.write(`[rig] ready in ${seconds} s\n`);
    return;
  }
  const ci = /^(1|true|yes)$/i.test(process.env.CI ?? '');
  const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
  process.stderr.write(
    `\n[rig] NOT UP (${why}, ${seconds} s): end-to-end tests that need a missing engine are reported ` +
      `${ci ? 'FAILED (CI=true)' : 'SKIPPED'}, one per suite, each naming the reason.\n` +
      `[rig] bring it up with: ${COMMAND}\n\n`,
  );
}
