// What a failed docker command means, from what it printed: retryable or final, and which class, so the
// advisory can say something a vendor can act on. Pure; tables in __tests__/unit/failure.test.ts hold
// lines copied from real engines (20.10 classic store, 28.x containerd store).
import type { UploadStop } from '../../upload/errors.js';
import { logText } from '../../util/untrusted.js';

export type FailureKind =
  | 'timeout-524' // Cloudflare origin timeout: the upload of a big layer took too long
  | 'body-too-large' // 413: the registry or a proxy in front of it limits request bodies (nginx, Cloudflare's plan)
  | 'server-error' // other 5xx
  | 'rate-limited' // 429
  | 'network' // reset, refused, timeout, EOF mid-upload
  | 'stalled' // docker push printed nothing for the watchdog's window (a registry that stopped answering): ended
  | 'attestation' // 400 on the manifest of a push that carried attestation manifests (see ClassifyContext)
  | 'bad-request' // other 400 / manifest invalid
  | 'unauthorized' // 401, bad credentials
  | 'denied' // 403, credentials fine but no access to this repository
  | 'not-found' // 404 / name unknown: usually a wrong app slug
  | 'unsupported'
  | 'unsafe-request' // the action refused to send what the registry asked for (a plain-http Location, a foreign realm)
  | 'engine-unreachable'
  | 'image-missing'
  | 'unknown';

export interface Failure {
  readonly kind: FailureKind;
  readonly retryable: boolean;
  readonly status: number | null;
  /** Blob digest the engine was uploading when it failed, when its message names one. */
  readonly blobDigest: string | null;
  /** The line that says it best, for the error message. */
  readonly detail: string;
}

const RETRYABLE: ReadonlySet<FailureKind> = new Set([
  'timeout-524',
  'server-error',
  'rate-limited',
  'network',
  'stalled',
  'unknown',
]);

interface Rule {
  kind: FailureKind;
  re: RegExp;
}

// Order matters: the first rule that matches any line wins, so specific causes come before generic ones.
const RULES: readonly Rule[] = [
  {
    kind: 'engine-unreachable',
    re: /Cannot connect to the Docker daemon|error during connect|Is the docker daemon running|docker daemon is not running|dial unix .*docker\.sock.*(no such file|connection refused|permission denied)/i,
  },
  {
    kind: 'image-missing',
    re: /No such image|An image does not exist locally|reference does not exist|does not exist locally with the tag/i,
  },
  // A registry that names attestations in its refusal. None of the registries on record does (see MANIFEST_REJECTED_WORDS):
  // the usual way to know is the context, not the text.
  {
    kind: 'attestation',
    re: /(?:provenance|attestations?|in-toto)\b.*\bnot (?:supported|allowed|accepted)|unsupported (?:media type|mediatype)\W+application\/vnd\.in-toto/i,
  },
  { kind: 'timeout-524', re: /\b524\b/ },
  // Engine A quotes the proxy's HTML page (`error parsing HTTP 413 response body: invalid character '<' ...`),
  // engine B the status line (`unexpected status from PUT request to ...: 413 Request Entity Too Large`).
  { kind: 'body-too-large', re: /\bHTTP 413\b|\b413 (?:Request Entity|Payload|Content) Too Large\b/i },
  { kind: 'rate-limited', re: /toomanyrequests|\b429\b|too many requests/i },
  {
    kind: 'unauthorized',
    re: /unauthorized|authentication required|failed to authorize|no basic auth credentials|incorrect username or password|\b401\b/i,
  },
  { kind: 'denied', re: /\bdenied\b|\b403\b|forbidden/i },
  { kind: 'not-found', re: /name unknown|NAME_UNKNOWN|repository name not known|\b404\b|not found: not found/i },
  { kind: 'bad-request', re: /manifest invalid|MANIFEST_INVALID|\b400\b|bad request/i },
  { kind: 'unsupported', re: /\bunsupported\b/i },
  {
    kind: 'server-error',
    re: /\b5\d\d\b(?! ?(?:bytes|B\b))|internal server error|bad gateway|service unavailable|gateway time-?out/i,
  },
  {
    kind: 'network',
    re: /connection reset|connection refused|broken pipe|i\/o timeout|TLS handshake timeout|unexpected EOF|\bEOF\b|server closed|no route to host|no such host|net\/http: request canceled|context deadline exceeded/i,
  },
];

/**
 * How the engines print a registry's refusal of a manifest (HTTP 400), as recorded against the fault proxy sending
 * the bodies real registries send (test/support/fault-proxy.ts REJECTION_BODIES):
 * - engine A (classic store) drops the detail: `manifest invalid: manifest invalid`,
 *   `manifest blob unknown: blob unknown to registry`;
 * - engine B (containerd store) keeps a string detail only: `error from registry: manifest invalid`,
 *   `error from registry: blob unknown to registry - sha256:...` (GitLab, moby/buildkit#7007);
 * - BuildKit / older containerd when the body is not an error document: `failed commit on ref "manifest-sha256:...":
 *   unexpected status: 400 Bad Request` (Artifactory, Yandex, docker/buildx#1513), or
 *   `unexpected status from PUT request to .../manifests/...: 400 Bad Request`.
 */
const MANIFEST_REJECTED_WORDS =
  /manifest invalid|MANIFEST_INVALID|manifest blob unknown|blob unknown to registry|unsupported media ?type/i;
/** Read on the raw line: scrub() hides the ref and URL that say a manifest (not a layer) was refused. */
const MANIFEST_REJECTED_400 =
  /failed commit on ref "(?:manifest|index)-sha256:[a-f0-9]+": unexpected status[^"]*?: 400\b|PUT request to \S+\/manifests\/[^/\s]+: 400\b/i;

const STATUS_PATTERNS: readonly RegExp[] = [
  /unexpected HTTP status: (\d{3})/,
  /unexpected status(?: code)?(?: from \w+ request to \S+)?: (\d{3})/,
  /status code:? (\d{3})/i,
  /\b(\d{3}) (?:Bad Request|Unauthorized|Forbidden|Not Found|(?:Request Entity|Payload|Content) Too Large|Too Many Requests|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)\b/,
];

function statusOf(text: string): number | null {
  for (const re of STATUS_PATTERNS) {
    const m = re.exec(text);
    if (m) return Number(m[1]);
  }
  return null;
}

function blobDigestOf(text: string): string | null {
  const m = /(?:digest=|blobs\/)(sha256(?::|%3[aA])[a-f0-9]{64})/.exec(text);
  return m ? m[1].replace(/%3[aA]/, ':') : null;
}

function kindFromStatus(status: number): FailureKind | null {
  if (status === 524) return 'timeout-524';
  if (status === 413) return 'body-too-large';
  if (status === 429) return 'rate-limited';
  if (status >= 500) return 'server-error';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'denied';
  if (status === 404) return 'not-found';
  if (status === 400) return 'bad-request';
  return null;
}

function scrub(line: string): string {
  return line
    .replace(/https?:\/\/\S+?(?=:? |"|$)/g, '<url>')
    .replace(/^failed to push \S+?: /, 'failed to push: ')
    .replace(/repository \[[^\]]*\]/g, 'repository')
    .replace(/(failed commit on ref )"[^"]*"/g, '$1"<ref>"');
}

/** Drops the CLI's ` Info -> ...` notes and their indented continuation lines: advice, not errors. */
function withoutInfoBlocks(lines: string[]): string[] {
  const kept: string[] = [];
  let inInfo = false;
  for (const line of lines) {
    if (/^\s*Info ->/.test(line)) inInfo = true;
    else if (inInfo && !/^\s{2,}\S/.test(line)) inInfo = false;
    if (!inInfo) kept.push(line);
  }
  return kept;
}

/** What the caller knows about the push that failed: the text alone cannot tell an attestation rejection. */
export interface ClassifyContext {
  /**
   * The push sent an image index listing attestation manifests (attestations: keep, or an engine without
   * `docker push --platform`). A manifest refusal is then reported as the attestation rejection.
   */
  readonly pushedAttestations?: boolean;
  /** The push's watchdog ended it after this long without output (CommandResult.stalledMs): nothing else counts. */
  readonly stalledMs?: number;
}

/** Classifies the output of a failed docker command (stdout and stderr together). */
export function classifyFailure(output: string, context: ClassifyContext = {}): Failure {
  const lines = withoutInfoBlocks(output.split(/\r?\n/))
    .map((l) => l.trim())
    .filter(Boolean);
  // Layer status lines ("abc: Retrying in 5 seconds") describe progress, not the cause.
  const errorLines = lines.filter((l) => !/^[a-f0-9]{12}: /.test(l) && !/^The push refers to/.test(l));
  // Image names and URLs are the user's words, not the engine's: a repository called provenance-api or a
  // path with 404 in it must not decide the class. Rules read the lines without them.
  const scrubbed = errorLines.map(scrub);
  const text = errorLines.join('\n');
  if (context.stalledMs !== undefined) return stalled(context.stalledMs, lines, blobDigestOf(text));
  const status = statusOf(scrubbed.join('\n'));
  let kind: FailureKind | null = null;
  let detail = errorLines[errorLines.length - 1] ?? '';
  for (const rule of RULES) {
    const i = scrubbed.findIndex((l) => rule.re.test(l));
    if (i >= 0) {
      kind = rule.kind;
      detail = errorLines[i];
      break;
    }
  }
  // A bare status code is more precise than a word match for the server-side classes.
  const byStatus = status === null ? null : kindFromStatus(status);
  if (byStatus && (kind === null || kind === 'server-error' || kind === 'network')) kind = byStatus;
  // Registries refuse an index with attestations in their generic words (manifest invalid, blob unknown, a bare
  // 400): when the push carried attestations, that is the likely cause, and the advice differs.
  if (context.pushedAttestations && (kind === null || kind === 'bad-request' || kind === 'unsupported')) {
    const i = errorLines.findIndex(
      (l, n) => MANIFEST_REJECTED_WORDS.test(scrubbed[n]) || MANIFEST_REJECTED_400.test(l),
    );
    if (i >= 0) {
      kind = 'attestation';
      detail = errorLines[i];
    }
  }
  const final = kind ?? 'unknown';
  return {
    kind: final,
    retryable: RETRYABLE.has(final),
    status,
    blobDigest: blobDigestOf(text),
    // docker's line quotes the registry's words: data, one line, no command (untrusted.ts)
    detail: logText(detail.replace(/^Error response from daemon: /, '')),
  };
}

/** A push the watchdog ended: retryable, and the detail says how long it was silent and what it printed last. */
function stalled(ms: number, lines: readonly string[], blobDigest: string | null): Failure {
  const last = lines[lines.length - 1];
  const said = last === undefined ? 'it printed nothing' : `its last line: ${logText(last, 200)}`;
  return {
    kind: 'stalled',
    retryable: true,
    status: null,
    blobDigest,
    detail: `docker push made no progress for ${silence(ms)}: ${said}`,
  };
}

/** "5 min", "2 s", "1.5 s". */
function silence(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A failure of the chunked uploader, in the classes docker's failures fall in: the last HTTP status says it; no
 * status is a connection that failed; reading the image from the engine (phase source) is local and final.
 */
export function classifyUploadStop(stop: UploadStop): Failure {
  if (stop.refused)
    return { kind: 'unsafe-request', retryable: false, status: null, blobDigest: null, detail: stop.message };
  const kind: FailureKind =
    stop.phase === 'source'
      ? 'unknown'
      : stop.status === null
        ? 'network'
        : (kindFromStatus(stop.status) ?? (stop.status >= 400 ? 'bad-request' : 'unknown'));
  return {
    kind,
    retryable: stop.phase !== 'source' && RETRYABLE.has(kind),
    status: stop.status,
    blobDigest: null,
    detail: stop.message,
  };
}
