// `npm run bench`: every performance figure the README quotes, printed as a table. Not a test: numbers vary
// by machine, so targets are compared here and reported, never asserted in CI. Each section prints when done.
// `npm run bench -- push` or `-- relayer` (or `-- copy`: registry to registry, `-- multi`: several images) runs one section. About 6 minutes on the 2-core CI machine at rest.
import { benchPush } from './push.js';

const which = new Set(process.argv.slice(2));
const all = which.size === 0;

function print(name: string, figures: Record<string, number | string>, seconds: number): void {
  console.log(`\n## ${name} (${seconds.toFixed(0)} s)`);
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(width)}  ${v}`);
}

async function section(name: string, fn: () => Promise<Record<string, number | string>>): Promise<void> {
  const started = Date.now();
  print(name, await fn(), (Date.now() - started) / 1000);
}

if (all || which.has('push')) await section('push', () => benchPush());
if (all || which.has('relayer')) {
  const { benchRelayer } = await import('./relayer.js');
  await section('relayer', benchRelayer);
}
if (all || which.has('upload')) await section('upload', async () => (await import('./upload.js')).benchUpload());
if (all || which.has('copy')) await section('copy', async () => (await import('./copy.js')).benchCopy());
if (all || which.has('multi')) await section('several images', async () => (await import('./multi.js')).benchMulti());
if (all || which.has('registry-copy'))
  await section('registry copy', async () => (await import('./registry-copy.js')).benchRegistryCopy());
