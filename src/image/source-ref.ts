// Where the image to push comes from, named as skopeo names it (containers/image transports), so that a user who
// knows `skopeo copy` knows the input: `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME]`,
// `docker://REGISTRY/REPO[:TAG|@DIGEST]`, `docker-daemon:NAME`, or a plain name or image ID for the engine. Pure.
// As containers/image does, a path ends at its first ':' (a path with ':' in it cannot be named).
import { defaultTargetName, namesRegistryHost, parseLocalImage, type LocalImage } from './reference.js';

export type SourceRef =
  /** In the local engine (a plain name or `docker-daemon:`). */
  | { readonly transport: 'docker-daemon'; readonly image: LocalImage }
  /** An OCI image layout directory; `ref` picks a manifest by its `org.opencontainers.image.ref.name`. */
  | { readonly transport: 'oci'; readonly path: string; readonly ref: string | null }
  /** An OCI image layout in a tar file. */
  | { readonly transport: 'oci-archive'; readonly path: string; readonly ref: string | null }
  /** `docker save` / buildx `type=docker,dest=`; `name` picks an image of several (its RepoTags). */
  | { readonly transport: 'docker-archive'; readonly path: string; readonly name: LocalImage | null }
  /** Another registry; `image.path` is the repository there, `host` its registry (docker.io when none is named). */
  | { readonly transport: 'docker'; readonly host: string; readonly image: LocalImage };

export const DAEMONLESS: ReadonlySet<SourceRef['transport']> = new Set([
  'oci',
  'oci-archive',
  'docker-archive',
  'docker',
]);

/** What a source is called in messages: the transport as written, then what follows it. */
export function sourceName(ref: SourceRef): string {
  switch (ref.transport) {
    case 'docker-daemon':
      return ref.image.raw;
    case 'oci':
    case 'oci-archive':
      return `${ref.transport}:${ref.path}${ref.ref ? `:${ref.ref}` : ''}`;
    case 'docker-archive':
      return `docker-archive:${ref.path}${ref.name ? `:${ref.name.raw}` : ''}`;
    case 'docker':
      return `docker://${ref.image.raw}`;
  }
}

/** An OCI ref name: the annotation's grammar (image-spec annotations.md), reduced to what a tag-like name holds. */
const OCI_REF_RE = /^[A-Za-z0-9]+(?:[._:@/+-][A-Za-z0-9]+)*$/;

function splitPath(rest: string): { path: string; tail: string | null } {
  const colon = rest.indexOf(':');
  return colon < 0 ? { path: rest, tail: null } : { path: rest.slice(0, colon), tail: rest.slice(colon + 1) };
}

/** The registry a reference names (its first component, by docker's rule), else null: Docker Hub. */
function registryHost(image: LocalImage): string | null {
  const first = image.raw.split('/')[0];
  return image.raw.includes('/') && namesRegistryHost(first) ? first : null;
}

/**
 * The source an `image` line names, or a reason it names none (shown after "Input 'image': "). A plain name keeps
 * meaning the engine, as before.
 */
export function parseSourceRef(text: string): SourceRef | { readonly error: string } {
  const raw = text.trim();
  const at = raw.indexOf(':');
  const transport = at > 0 ? raw.slice(0, at) : '';
  const rest = raw.slice(at + 1);
  if (transport === 'oci' || transport === 'oci-archive') {
    const { path, tail } = splitPath(rest);
    if (!path) return { error: `'${raw}' names no ${transport === 'oci' ? 'directory' : 'file'}` };
    if (tail !== null && !OCI_REF_RE.test(tail)) return { error: `'${tail}' is not a valid OCI reference name` };
    return { transport, path, ref: tail || null };
  }
  if (transport === 'docker-archive') {
    const { path, tail } = splitPath(rest);
    if (!path) return { error: `'${raw}' names no file` };
    const name = tail ? parseLocalImage(tail) : null;
    if (tail && (!name || name.isId || name.digest)) return { error: `'${tail}' is not an image name (name:tag)` };
    return { transport, path, name };
  }
  if (transport === 'docker' && rest.startsWith('//')) {
    const image = parseLocalImage(rest.slice(2));
    if (!image || image.isId)
      return { error: `'${rest.slice(2)}' is not a registry reference (REGISTRY/REPO[:TAG|@DIGEST])` };
    const host = registryHost(image);
    return { transport: 'docker', host: host ?? 'docker.io', image };
  }
  const engineName = transport === 'docker-daemon' ? rest : raw;
  const image = parseLocalImage(engineName);
  if (!image)
    return {
      error:
        `'${engineName}' is not a valid image reference (name, name:tag, registry/path/name:tag, name@sha256:..., ` +
        'an image ID, or oci:DIR, oci-archive:FILE, docker-archive:FILE, docker://REGISTRY/REPO)',
    };
  return { transport: 'docker-daemon', image };
}

/** The repository under the app when `target-image` is not given: the last path component the source names. */
export function defaultTarget(ref: SourceRef): string | null {
  switch (ref.transport) {
    case 'docker-daemon':
    case 'docker':
      return defaultTargetName(ref.image);
    case 'docker-archive':
      return ref.name ? defaultTargetName(ref.name) : null;
    default:
      return null;
  }
}
