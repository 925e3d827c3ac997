// The source registry's credentials, from the docker config the job already has (docker/login-action and the cloud
// login actions write it): DOCKER_CONFIG/config.json, else ~/.docker/config.json. Looked up as the docker CLI does
// (cli/config/configfile): credHelpers[host] first, then credsStore, then auths, whose keys may be `host`,
// `https://host`, `http://host/path` (docker's ConvertToHostname); Docker Hub is `https://index.docker.io/v1/`.
// A helper is `docker-credential-NAME get` with the server on stdin and {ServerURL, Username, Secret} on stdout;
// its "credentials not found" means anonymous, and the Username `<token>` makes the Secret an identity token.
// Explicit credentials (source-username / source-token) win over the config. Secrets never reach a command line,
// a child's environment or a message.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { childEnv, howItEnded, runProcess } from '../util/process.js';
import { logText, outputTail } from '../util/untrusted.js';
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

/** The server address docker looks Docker Hub up under, in auths and in helpers. */
export const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';
const HUB_HOSTS: ReadonlySet<string> = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const HELPER_DEADLINE_MS = 30_000;
/** A helper's answer is one small JSON object; more is not a credential. */
const HELPER_OUTPUT_BYTES = 64 * 1024;
const CONFIG_BYTES = 4 * 1024 * 1024;
const NOT_FOUND = 'credentials not found in native keychain';
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, unknown>;
  credsStore?: unknown;
}

/** What docker calls the server for `host`: Docker Hub's v1 URL, else the host itself. */
export function serverAddress(host: string): string {
  return HUB_HOSTS.has(host) ? DOCKER_HUB_SERVER : host;
}

/** docker's ConvertToHostname: the key without http:// or https:// and without anything from the first '/'. */
function keyHost(key: string): string {
  return key.replace(/^https?:\/\//, '').split('/')[0];
}

/** Whether an auths key names `host`, as docker matches it: the key exactly, else its host part. */
export function authKeyMatches(key: string, host: string): boolean {
  const server = serverAddress(host);
  if (key === server) return true;
  return server === DOCKER_HUB_SERVER ? keyHost(key) === 'index.docker.io' : keyHost(key) === server;
}

function configPath(env: NodeJS.ProcessEnv): string {
  return join(env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker'), 'config.json');
}

async function readConfig(path: string): Promise<ConfigFile | null> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > CONFIG_BYTES) throw new Error(`the docker config ${path} is over 4 MiB`);
    text = bytes.toString('utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`the docker config ${path} is not JSON`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new Error(`the docker config ${path} is not a JSON object`);
  return doc as ConfigFile;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** An auths entry as credentials: `auth` (base64 user:pass) or username/password; an identitytoken beside them. */
export function entryCredentials(entry: AuthEntry): Credentials | null {
  let username = str(entry.username);
  let password = str(entry.password);
  const auth = str(entry.auth);
  if (auth) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new Error('its auth is not base64 of user:password');
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const identityToken = str(entry.identitytoken);
  if (identityToken) return { username, password, identityToken };
  return username || password ? { username, password } : null;
}

function fromAuths(config: ConfigFile, host: string): Credentials | null {
  const auths = config.auths && typeof config.auths === 'object' ? config.auths : {};
  const server = serverAddress(host);
  const key = Object.hasOwn(auths, server) ? server : Object.keys(auths).find((k) => authKeyMatches(k, host));
  if (key === undefined) return null;
  const entry = auths[key];
  return entry && typeof entry === 'object' ? entryCredentials(entry) : null;
}

/** `docker-credential-NAME get`: the server on stdin; null when the helper has none for it. */
async function fromHelper(name: string, host: string, lookup: CredentialLookup): Promise<Credentials | null> {
  if (!HELPER_NAME.test(name))
    throw new Error(`the credential helper name ${JSON.stringify(logText(name))} is invalid`);
  const command = `docker-credential-${name}`;
  const deadlineMs = lookup.helperDeadlineMs ?? HELPER_DEADLINE_MS;
  const result = await runProcess(command, ['get'], {
    env: childEnv(lookup.env, [lookup.token ?? '']),
    input: serverAddress(host),
    deadlineMs,
    captureBytes: HELPER_OUTPUT_BYTES,
    signal: lookup.signal,
  });
  if (result.spawnError) throw new Error(`${command} could not be started: ${result.spawnError.message}`);
  if (result.code !== 0) {
    if (result.stdout.trim() === NOT_FOUND || /credentials not found/i.test(result.stdout + result.stderr)) return null;
    // A failing helper prints its error, never the secret: its last lines say why.
    const why = outputTail(`${result.stderr}\n${result.stdout}`);
    throw new Error(`${command} get ${howItEnded(result, deadlineMs)}${why ? `: ${why}` : ''}`);
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(result.stdout) as typeof doc;
  } catch {
    throw new Error(`${command} get printed no JSON`);
  }
  const username = str(doc?.Username);
  const secret = str(doc?.Secret);
  if (!secret) return null;
  return username === '<token>'
    ? { username: '', password: '', identityToken: secret }
    : { username, password: secret };
}

/** The credentials for `host`, or null for anonymous. Throws (naming the host) when the config or a helper fails. */
export async function sourceCredentials(host: string, lookup: CredentialLookup): Promise<Credentials | null> {
  if (lookup.token) return { username: lookup.username ?? '', password: lookup.token };
  const path = configPath(lookup.env);
  try {
    const config = await readConfig(path);
    if (!config) return null;
    const helpers = config.credHelpers && typeof config.credHelpers === 'object' ? config.credHelpers : {};
    const helper = str(Object.hasOwn(helpers, serverAddress(host)) ? helpers[serverAddress(host)] : undefined);
    if (helper) return await fromHelper(helper, host, lookup);
    const store = str(config.credsStore);
    // A store that has none for this host leaves what auths holds (a login that wrote the file directly).
    if (store) return (await fromHelper(store, host, lookup)) ?? fromAuths(config, host);
    return fromAuths(config, host);
  } catch (e) {
    throw new Error(`credentials for the source registry ${host} (${path}): ${(e as Error).message}`, { cause: e });
  }
}
