// The source registry's credentials, from the docker config the job already has (docker/login-action and the cloud
// login actions write it): DOCKER_CONFIG/config.json, else ~/.docker/config.json. Looked up as docker does:
// credHelpers[host] first, then credsStore, then auths; a helper is `docker-credential-NAME get` with the server on
// stdin. Explicit credentials (source-username / source-token) win over the config.
import type { Credentials } from './registry-client.js';

export interface CredentialLookup {
  /** The environment of the job (DOCKER_CONFIG, HOME, PATH), not process.env. */
  readonly env: NodeJS.ProcessEnv;
  /** source-username / source-token: used as they are when the token is given. */
  readonly username?: string;
  readonly token?: string;
  /** Deadline of a credential helper; default 30 s. */
  readonly helperDeadlineMs?: number;
  readonly signal?: AbortSignal;
}

/** The keys docker tries for `host` in auths, in its order (`host`, `https://host`, ...; Docker Hub's v1 URL). */
export function authKeyMatches(key: string, host: string): boolean {
  void key;
  void host;
  throw new Error('not yet');
}

/** The credentials for `host`, or null for anonymous. Throws (naming the host) when the config or a helper fails. */
export async function sourceCredentials(host: string, lookup: CredentialLookup): Promise<Credentials | null> {
  void host;
  void lookup;
  throw new Error('not yet');
}
