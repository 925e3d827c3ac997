// `npm run bench`: every performance figure the README quotes, printed as a table. Not a test: numbers vary
// by machine, so targets are compared here and reported, never asserted in CI.
import { benchPush } from './push.js';

const which = new Set(process.argv.slice(2));
const all = which.size === 0;
const results: Record<string, Record<string, number | string>> = {};
if (all || which.has('push')) results.push = await benchPush();
if (all || which.has('relayer')) {
  const { benchRelayer } = await import('./relayer.js');
  results.relayer = await benchRelayer();
}
for (const [name, figures] of Object.entries(results)) {
  console.log(`\n## ${name}`);
  for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(48)} ${v}`);
}
