// The source registry's credentials as docker finds them: which auths keys name a host (a table of docker's
// matching), the entry forms, and credential helpers run for real: a fake docker-credential-* on PATH that behaves
// as the real ones (server on stdin, JSON on stdout, "credentials not found" with exit 1) and records what it got.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authKeyMatches, sourceCredentials } from '../../src/registry/docker-credentials.js';

describe('authKeyMatches (docker: the key exactly, else its host part; Docker Hub by its v1 URL)', () => {
  test.each<[string, string, boolean]>([
    ['ghcr.io', 'ghcr.io', true],
    ['https://ghcr.io', 'ghcr.io', true],
    ['http://ghcr.io', 'ghcr.io', true],
    ['https://ghcr.io/v2/', 'ghcr.io', true],
    ['ghcr.io/owner', 'ghcr.io', true],
    ['127.0.0.1:5000', '127.0.0.1:5000', true],
    ['http://127.0.0.1:5000/v2', '127.0.0.1:5000', true],
    ['127.0.0.1:5001', '127.0.0.1:5000', false],
    ['127.0.0.1', '127.0.0.1:5000', false],
    ['ghcr.io.evil.example', 'ghcr.io', false],
    ['evil.example/ghcr.io', 'ghcr.io', false],
    ['GHCR.IO', 'ghcr.io', false],
    ['https://index.docker.io/v1/', 'docker.io', true],
    ['index.docker.io', 'docker.io', true],
    ['https://index.docker.io/v2/', 'docker.io', true],
    ['docker.io', 'docker.io', false],
    ['registry-1.docker.io', 'docker.io', false],
    ['https://index.docker.io/v1/', 'ghcr.io', false],
  ])('key %s for host %s: %s', (key, host, want) => {
    expect(authKeyMatches(key, host)).toBe(want);
  });
});

describe('sourceCredentials', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const config = (doc: unknown) => writeFileSync(join(dir, 'cfg', 'config.json'), JSON.stringify(doc));

  /** A helper as docker-credential-helpers' are: reads the server from stdin, answers from its store (a file). */
  function helper(name: string, store: Record<string, { Username: string; Secret: string }>): string {
    const log = join(dir, `${name}.log`);
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(store));
    const script = [
      '#!/usr/bin/env node',
      "const fs = require('fs');",
      `const store = JSON.parse(fs.readFileSync(${JSON.stringify(join(dir, `${name}.json`))}, 'utf8'));`,
      "const server = fs.readFileSync(0, 'utf8').trim();",
      `fs.writeFileSync(${JSON.stringify(log)}, JSON.stringify({ argv: process.argv.slice(2), server, env: process.env }));`,
      "if (process.argv[2] !== 'get') { console.log('unknown action'); process.exit(1); }",
      "if (!store[server]) { console.log('credentials not found in native keychain'); process.exit(1); }",
      'console.log(JSON.stringify({ ServerURL: server, ...store[server] }));',
    ].join('\n');
    const path = join(dir, 'bin', `docker-credential-${name}`);
    writeFileSync(path, script);
    chmodSync(path, 0o755);
    return log;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rp-creds-'));
    for (const d of ['cfg', 'bin', 'home/.docker']) mkdirSync(join(dir, d), { recursive: true });
    env = { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, DOCKER_CONFIG: join(dir, 'cfg'), HOME: join(dir, 'home') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('auths: base64 auth, username/password, an identitytoken; another host gets none', async () => {
    config({
      auths: {
        'https://src.example': { auth: b64('u1:p:1') },
        'other.example': { username: 'u2', password: 'p2' },
        'tok.example': { auth: b64('u3:'), identitytoken: 'refresh-3' },
      },
    });
    expect(await sourceCredentials('src.example', { env })).toEqual({ username: 'u1', password: 'p:1' });
    expect(await sourceCredentials('other.example', { env })).toEqual({ username: 'u2', password: 'p2' });
    expect(await sourceCredentials('tok.example', { env })).toEqual({
      username: 'u3',
      password: '',
      identityToken: 'refresh-3',
    });
    expect(await sourceCredentials('none.example', { env })).toBeNull();
  });

  test('no DOCKER_CONFIG: HOME/.docker/config.json of the env given; no config at all: anonymous', async () => {
    writeFileSync(
      join(dir, 'home/.docker/config.json'),
      JSON.stringify({ auths: { 'h.example': { auth: b64('a:b') } } }),
    );
    const home = { ...env, DOCKER_CONFIG: undefined };
    expect(await sourceCredentials('h.example', { env: home })).toEqual({ username: 'a', password: 'b' });
    expect(await sourceCredentials('h.example', { env })).toBeNull(); // DOCKER_CONFIG has no config.json
  });

  test('explicit username/token win over the config', async () => {
    config({ auths: { 'src.example': { auth: b64('u:p') } } });
    expect(await sourceCredentials('src.example', { env, username: 'me', token: 't0k' })).toEqual({
      username: 'me',
      password: 't0k',
    });
  });

  test('credHelpers[host] before credsStore before auths; the server on stdin, nothing secret on argv or env', async () => {
    const ecrLog = helper('ecr', { 'src.example': { Username: 'AWS', Secret: 'ecr-secret' } });
    const storeLog = helper('store', { 'https://index.docker.io/v1/': { Username: 'hub', Secret: 'hub-secret' } });
    config({
      credHelpers: { 'src.example': 'ecr' },
      credsStore: 'store',
      auths: { 'src.example': { auth: b64('file:file') }, 'plain.example': { auth: b64('f:g') } },
    });
    const lookupEnv = { ...env, INPUT_TOKEN: 'action-token', OTHER: 'has source-token inside' };
    expect(await sourceCredentials('src.example', { env: lookupEnv })).toEqual({
      username: 'AWS',
      password: 'ecr-secret',
    });
    const seen = JSON.parse(readFileSync(ecrLog, 'utf8')) as { argv: string[]; server: string; env: NodeJS.ProcessEnv };
    expect(seen.argv).toEqual(['get']);
    expect(seen.server).toBe('src.example');
    expect(seen.env.INPUT_TOKEN).toBeUndefined();
    expect(await sourceCredentials('docker.io', { env: lookupEnv })).toEqual({
      username: 'hub',
      password: 'hub-secret',
    });
    expect(JSON.parse(readFileSync(storeLog, 'utf8')).server).toBe('https://index.docker.io/v1/');
    // the store has none for plain.example: auths still holds it
    expect(await sourceCredentials('plain.example', { env: lookupEnv })).toEqual({ username: 'f', password: 'g' });
  });

  test("a helper's <token> user makes the Secret an identity token; its 'not found' is anonymous", async () => {
    helper('tok', { 'src.example': { Username: '<token>', Secret: 'refresh-me' } });
    config({ credHelpers: { 'src.example': 'tok', 'gone.example': 'tok' } });
    expect(await sourceCredentials('src.example', { env })).toEqual({
      username: '',
      password: '',
      identityToken: 'refresh-me',
    });
    expect(await sourceCredentials('gone.example', { env })).toBeNull();
  });

  test('a helper that fails, hangs or is missing: an error naming the registry, never a secret', async () => {
    const write = (name: string, body: string) => {
      writeFileSync(join(dir, 'bin', `docker-credential-${name}`), `#!/bin/sh\n${body}\n`);
      chmodSync(join(dir, 'bin', `docker-credential-${name}`), 0o755);
    };
    write('broken', 'echo "keychain locked" >&2; exit 3');
    write('slow', 'exec sleep 30');
    write('garbage', 'echo not-json');
    config({
      credHelpers: { 'a.example': 'broken', 'b.example': 'slow', 'c.example': 'garbage', 'd.example': 'nope' },
    });
    await expect(sourceCredentials('a.example', { env })).rejects.toThrow(
      /source registry a\.example .*docker-credential-broken get exit 3: keychain locked/,
    );
    await expect(sourceCredentials('b.example', { env, helperDeadlineMs: 300 })).rejects.toThrow(
      /b\.example .*did not answer within 300 ms|b\.example .*did not answer within 0\.3 s/,
    );
    await expect(sourceCredentials('c.example', { env })).rejects.toThrow(
      /docker-credential-garbage get printed no JSON/,
    );
    await expect(sourceCredentials('d.example', { env })).rejects.toThrow(/d\.example .*docker-credential-nope/);
  });

  test('a config that is not JSON, or an auth that is not user:password: an error naming the file', async () => {
    writeFileSync(join(dir, 'cfg', 'config.json'), '{not json');
    await expect(sourceCredentials('x.example', { env })).rejects.toThrow(/x\.example .*config\.json.*is not JSON/);
    config({ auths: { 'x.example': { auth: b64('nocolon') } } });
    await expect(sourceCredentials('x.example', { env })).rejects.toThrow(/not base64 of user:password/);
  });
});
