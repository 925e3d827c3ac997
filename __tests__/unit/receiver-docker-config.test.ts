// The docker config of a push to the action's receiver (createReceiverDockerConfig): the receiver's credential
// under its host alone, mode 0600; the engine selection of the run carried over; the run's registry login not.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReceiverDockerConfig } from '../../src/engine/docker-config.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rp-rx-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('auths for the receiver only, 0600; the current context carried; the run’s registry login left out', () => {
  const run = join(dir, 'run');
  mkdirSync(run);
  writeFileSync(
    join(run, 'config.json'),
    JSON.stringify({ currentContext: 'ci', auths: { 'registry.example.com': { auth: 'dXNlcjp0b2tlbg==' } } }),
  );
  const made = createReceiverDockerConfig({ DOCKER_CONFIG: run, PATH: '/bin' }, join(dir, 'push'), '127.0.0.1:4242', {
    username: 'rp-1',
    password: 'secret',
  });
  expect(made.env).toEqual({ DOCKER_CONFIG: join(dir, 'push'), PATH: '/bin' });
  const file = join(dir, 'push', 'config.json');
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
    currentContext: 'ci',
    auths: { '127.0.0.1:4242': { auth: Buffer.from('rp-1:secret').toString('base64') } },
  });
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(statSync(join(dir, 'push')).mode & 0o777).toBe(0o700);
});
