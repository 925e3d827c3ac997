import { defaultTarget, parseSourceRef, sourceName, type SourceRef } from '../../src/image/source-ref.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseSourceRef', () => {
  it.each<[string, Partial<SourceRef> & Record<string, unknown>]>([
    ['app:1.0', { transport: 'docker-daemon' }],
    ['docker-daemon:org/app:1.0', { transport: 'docker-daemon' }],
    ['oci:out/layout', { transport: 'oci', path: 'out/layout', ref: null }],
    ['oci:out/layout:v1.2', { transport: 'oci', path: 'out/layout', ref: 'v1.2' }],
    ['oci-archive:/tmp/app.tar', { transport: 'oci-archive', path: '/tmp/app.tar', ref: null }],
    ['oci-archive:/tmp/app.tar:latest', { transport: 'oci-archive', path: '/tmp/app.tar', ref: 'latest' }],
    ['docker-archive:app.tar', { transport: 'docker-archive', path: 'app.tar', name: null }],
    ['docker://ghcr.io/org/app:1.0', { transport: 'docker', host: 'ghcr.io' }],
    [`docker://127.0.0.1:5000/org/app@${D}`, { transport: 'docker', host: '127.0.0.1:5000' }],
    ['docker://org/app:1', { transport: 'docker', host: 'docker.io' }],
  ])('%s', (text, want) => {
    expect(parseSourceRef(text)).toMatchObject(want);
  });

  it('keeps the registry path and the tag or digest of docker://', () => {
    const r = parseSourceRef(`docker://localhost:5000/a/b@${D}`) as Extract<SourceRef, { transport: 'docker' }>;
    expect([r.host, r.image.path, r.image.tag, r.image.digest]).toEqual(['localhost:5000', 'a/b', null, D]);
    const t = parseSourceRef('docker-archive:x.tar:org/app:2') as Extract<SourceRef, { transport: 'docker-archive' }>;
    expect([t.path, t.name?.path, t.name?.tag]).toEqual(['x.tar', 'org/app', '2']);
  });

  it.each([
    ['oci:', /names no directory/],
    ['oci-archive:', /names no file/],
    ['oci:dir:bad ref', /not a valid OCI reference name/],
    ['docker-archive:x.tar:UPPER', /not an image name/],
    [`docker-archive:x.tar:app@${D}`, /not an image name/],
    ['docker://', /not a registry reference/],
    [`docker://${'a'.repeat(64)}`, /not a registry reference/],
    ['Not Valid', /not a valid image reference/],
    ['docker-daemon:', /not a valid image reference/],
  ])('%s is refused', (text, why) => {
    expect((parseSourceRef(text) as { error: string }).error).toMatch(why);
  });
});

describe('defaultTarget and sourceName', () => {
  it.each([
    ['app:1.0', 'app', 'app:1.0'],
    ['docker://ghcr.io/org/api:1', 'api', 'docker://ghcr.io/org/api:1'],
    ['docker-archive:a.tar:org/web:2', 'web', 'docker-archive:a.tar:org/web:2'],
    ['docker-archive:a.tar', null, 'docker-archive:a.tar'],
    ['oci:dir:1.0', null, 'oci:dir:1.0'],
    ['oci-archive:a.tar', null, 'oci-archive:a.tar'],
  ])('%s -> %s', (text, target, name) => {
    const ref = parseSourceRef(text) as SourceRef;
    expect(defaultTarget(ref)).toBe(target);
    expect(sourceName(ref)).toBe(name);
  });
});
