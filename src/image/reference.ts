// Image reference grammar (distribution/reference), reduced to what this action reads and writes.

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const DOMAIN =
  '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?';
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const DIGEST = 'sha256:[a-f0-9]{64}';

const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);
const PATH_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
// A bare 12..63-hex string is also a valid repository name; only full IDs are taken as IDs here.
const IMAGE_ID_RE = /^(?:sha256:)?[a-f0-9]{64}$/;
const APP_SLUG_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

export interface LocalImage {
  /** What the user wrote; what docker commands are given. */
  readonly raw: string;
  /** Repository path without domain (`library/x` stays `library/x`), or null for an image ID. */
  readonly path: string | null;
  readonly tag: string | null;
  readonly digest: string | null;
  readonly isId: boolean;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function isValidRepositoryPath(path: string): boolean {
  return path.length <= 255 && PATH_RE.test(path);
}

export function isValidAppSlug(slug: string): boolean {
  return APP_SLUG_RE.test(slug);
}

export function isValidRegistryHost(host: string): boolean {
  return DOMAIN_RE.test(host);
}

/**
 * Docker's rule (distribution/reference): the first component of a reference names a registry host only when it
 * has a `.` or a `:` (a port, or IPv6), is `localhost`, or has an uppercase letter; otherwise docker reads it as a
 * Docker Hub path (`myregistry/app/img` is `docker.io/myregistry/app/img`).
 */
export function namesRegistryHost(component: string): boolean {
  return (
    component.includes('.') ||
    component.includes(':') ||
    component === 'localhost' ||
    component !== component.toLowerCase()
  );
}

/**
 * The one form of a registry host every rule compares: without `http://`/`https://` and trailing slashes,
 * lowercase, without the default port `:443`. Null for what is not a registry host docker would use as one:
 * not host or host:port, a port outside 1..65535, or one label without a dot or port (docker reads
 * `myregistry/app/img` as a Docker Hub path while login and the registry API would go to `myregistry`).
 */
export function normalizeRegistryHost(text: string): string | null {
  const host = hostForm(text);
  if (!isValidRegistryHost(host) || !namesRegistryHost(host)) return null;
  const port = /:(\d+)$/.exec(host);
  if (port && (Number(port[1]) < 1 || Number(port[1]) > 65535)) return null;
  return host;
}

/** True when `text` is a host name docker would not take as a registry (one label: `myregistry`), for the error. */
export function readsAsDockerHubPath(text: string): boolean {
  const host = hostForm(text);
  return isValidRegistryHost(host) && !namesRegistryHost(host);
}

function hostForm(text: string): string {
  return text
    .trim()
    .replace(/^https?:\/\//i, '')
    .replace(/\/+$/, '')
    .toLowerCase()
    .replace(/:443$/, '');
}

/** Parses `name`, `name:tag`, `registry/path/name:tag`, `name@sha256:...` or an image ID; null when invalid. */
export function parseLocalImage(raw: string): LocalImage | null {
  const text = raw.trim();
  if (IMAGE_ID_RE.test(text)) {
    return { raw: text, path: null, tag: null, digest: null, isId: true };
  }
  let rest = text;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) return null;
  }
  let tag: string | null = null;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!isValidTag(tag)) return null;
  }
  const slash = rest.indexOf('/');
  let path = rest;
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (namesRegistryHost(first)) {
      if (!isValidRegistryHost(first)) return null;
      path = rest.slice(slash + 1);
    }
  }
  if (!isValidRepositoryPath(path)) return null;
  return { raw: text, path, tag, digest, isId: false };
}

/** Default repository name under the app: the last path component of the local image. */
export function defaultTargetName(image: LocalImage): string | null {
  if (!image.path) return null;
  const parts = image.path.split('/');
  return parts[parts.length - 1];
}

export function repositoryOf(registry: string, path: string): string {
  return `${registry}/${path}`;
}

export function taggedRef(repository: string, tag: string): string {
  return `${repository}:${tag}`;
}

export function pinnedRef(repository: string, digest: string): string {
  return `${repository}@${digest}`;
}

/** Registry hosts Docker talks to over plain HTTP without configuration. */
export function isLoopbackRegistry(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}
