// One registry-to-registry copy by the action's library, as its own process for bench/registry-copy.ts: open the
// source's image (tag 1), upload it to the target with the default chunk size, print {ms, peakRss} as JSON.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { platformManifests } from '../src/image/image-model.js';
import { RegistryClient } from '../src/registry/registry-client.js';
import { openRegistrySource } from '../src/registry/registry-source.js';
import { uploadImage } from '../src/upload/image.js';

interface Args {
  src: string;
  repo: string;
  srcCreds: Record<string, string>;
  dst: string;
  dstCreds: Record<string, string>;
  target: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const creds = (users: Record<string, string>) => {
  const [username, password] = Object.entries(users)[0];
  return { username, password };
};
const started = performance.now();
const opened = await openRegistrySource(
  { host: args.src, repository: args.repo, reference: '1' },
  { workDir: '/nonexistent', credentials: creds(args.srcCreds) },
);
const client = new RegistryClient(args.dst, creds(args.dstCreds));
for (const m of platformManifests(opened.image)) await uploadImage(client, args.target, m, ['1']);
const ms = performance.now() - started;
const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
console.log(JSON.stringify({ ms: Math.round(ms), peakRss: Number(kb ?? 0) * 1024 }));
