// The real part behind the core's openSource port: which opener reads which transport (oci:, oci-archive:,
// docker-archive:, docker://, and the engine's own image through `docker save`), and where a source registry's
// credentials come from. What it opens is pushed as every image of the model is (upload/push-image.ts).
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { OpenSourceRequest } from '../core/ports.js';
import { dockerArgv, dockerFailure, startDocker } from '../engine/docker-cli.js';
import type { OpenedImage } from '../image/image-model.js';
import { openDockerArchive } from '../image/sources/docker-archive-source.js';
import { openOciArchive } from '../image/sources/oci-archive-source.js';
import { openOciLayout } from '../image/sources/oci-layout-source.js';
import type { SourceRef } from '../image/source-ref.js';
import { sourceCredentials } from '../registry/docker-credentials.js';
import { openRegistrySource } from '../registry/registry-source.js';

/**
 * The engine's image as a docker archive: `docker save` into the work directory, then read as any archive. Used
 * for what the engine cannot push as the user wants (a multi-platform index without its attestations).
 */
async function openEngineImage(image: string, req: OpenSourceRequest): Promise<OpenedImage> {
  const dir = mkdtempSync(join(req.workDir, 'save-'));
  const file = join(dir, 'image.tar');
  const args = dockerArgv.save(image);
  const save = startDocker(args, { env: req.childEnv, signal: req.signal, stdout: 'pipe' });
  try {
    await pipeline(save.stdout as Readable, createWriteStream(file, { mode: 0o600 }));
  } catch (e) {
    await save.kill();
    const exit = await save.result;
    throw dockerFailure(args, exit) ?? e;
  }
  const failed = dockerFailure(args, await save.result);
  if (failed) throw failed;
  const opened = await openDockerArchive(file, null, req);
  return {
    image: opened.image,
    name: `docker-daemon:${image}`,
    close: async () => {
      await opened.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Routes a source to its opener by transport. */
export async function openSource(source: SourceRef, req: OpenSourceRequest): Promise<OpenedImage> {
  switch (source.transport) {
    case 'oci':
      return openOciLayout(source.path, source.ref, req);
    case 'oci-archive':
      return openOciArchive(source.path, source.ref, req);
    case 'docker-archive':
      return openDockerArchive(source.path, source.name?.raw ?? null, req);
    case 'docker': {
      const credentials = await sourceCredentials(source.host, {
        env: req.jobEnv,
        username: req.username,
        token: req.token,
        signal: req.signal,
      });
      const { image } = source;
      const reference = image.digest ?? image.tag ?? 'latest';
      return openRegistrySource(
        // Docker Hub's library/ prefix is the registry source's to add (registry-source.ts)
        { host: source.host, repository: image.path ?? '', reference },
        { workDir: req.workDir, signal: req.signal, credentials },
      );
    }
    case 'docker-daemon':
      return openEngineImage(source.image.raw, req);
  }
}
