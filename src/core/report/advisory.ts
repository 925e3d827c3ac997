// The human text: what went wrong, which layer, how big, which instruction, and what to do. Pure.
import type { Failure } from '../policy/failure.js';
import type { TokenType } from '../input-table.js';
import type { LayerFact } from '../../image/layers.js';
import { formatBytes } from '../../util/units.js';

export interface Advice {
  readonly title: string;
  readonly message: string;
}

export interface AdviceContext {
  readonly registry: string;
  readonly appSlug: string;
  readonly repository: string;
  readonly tokenType: TokenType;
  readonly username: string;
  readonly maxLayerSize: number;
  readonly layerCount: number;
}

const TOKEN_NEEDS: Record<TokenType, string> = {
  'service-account': 'a service account token (any username; the token as the password)',
  team: 'a team API token (any username; deprecated: move to a service account)',
  user: 'a user API token with the Vendor Portal email address as the username',
  password: 'the Vendor Portal email address as the username and its password as the token',
};

export function describeLayer(layer: LayerFact, layerCount: number): string {
  const instruction = layer.instruction
    ? `made by \`${layer.instruction}\``
    : 'made by an instruction the image history does not name';
  return `layer ${layer.index}/${layerCount} (${layer.diffId.slice(0, 19)}…, ${formatBytes(layer.size)} uncompressed) ${instruction}`;
}

function splitHow(layer: LayerFact): string {
  const verb = layer.instruction?.split(' ')[0]?.toUpperCase();
  const first =
    verb === 'COPY' || verb === 'ADD'
      ? `split that ${verb} into several ${verb} instructions that each add less`
      : verb === 'RUN'
        ? 'split that RUN into several RUN steps that each write less'
        : 'build that content in several smaller instructions';
  return (
    `${first}; use a multi-stage build so only what the image needs is copied in; keep large data out of the image ` +
    '(fetch it at install time); or set `layer-split: auto` and this action re-layers the image for you.'
  );
}

/** Warning before any upload, one per layer over the limit. */
export function oversizeLayerAdvice(layer: LayerFact, ctx: AdviceContext): Advice {
  return {
    title: `Layer ${layer.index} is ${formatBytes(layer.size)}`,
    message:
      `${capitalize(describeLayer(layer, ctx.layerCount))} is over max-layer-size (${formatBytes(ctx.maxLayerSize)}). ` +
      `Uploads of layers near 2 GB time out at the registry's proxy (HTTP 524). To avoid it, ${splitHow(layer)}`,
  };
}

/** The layer-split advisory after a 524. `layer` is the one the engine was uploading, when known. */
export function timeoutAdvice(
  layer: LayerFact | null,
  others: readonly LayerFact[],
  ctx: AdviceContext,
  final: boolean,
  blobDigest: string | null = null,
): Advice {
  const blob = blobDigest ? ` (blob ${blobDigest.slice(0, 19)}…)` : '';
  const which = layer
    ? blobDigest
      ? `while uploading${blob}, most likely ${describeLayer(layer, ctx.layerCount)}, the only layer over max-layer-size`
      : `while uploading ${describeLayer(layer, ctx.layerCount)}`
    : `while uploading a layer${blob} the engine did not name`;
  const advice = layer ? ` To fix it, ${splitHow(layer)}` : '';
  const rest = others.filter((o) => o.diffId !== layer?.diffId);
  const also = rest.length
    ? ` Also over max-layer-size (${formatBytes(ctx.maxLayerSize)}): ${rest.map((o) => describeLayer(o, ctx.layerCount)).join('; ')}.`
    : '';
  return {
    title: final ? 'Push timed out (HTTP 524)' : 'Upload timed out (HTTP 524)',
    message: `The registry's proxy gave up (HTTP 524, origin timeout) ${which}.${advice}${also}`,
  };
}

/** How a limit on request bodies is raised where it is usually set. */
const BODY_LIMIT_WHERE =
  'nginx: `client_max_body_size`; Cloudflare: 100 MB (Free, Pro), 200 MB (Business), 500 MB (Enterprise) per request';

/**
 * The advisory after a 413. `layer` is the one being uploaded when the engine or the uploader says which, else the
 * biggest (a guess, said as one, with the blob the engine named); `next` says what happens now or what to do.
 */
export function bodyLimitAdvice(
  layer: LayerFact | null,
  ctx: AdviceContext,
  opts: { readonly final: boolean; readonly exact: boolean; readonly blobDigest: string | null; readonly next: string },
): Advice {
  const blob = opts.blobDigest ? ` blob ${opts.blobDigest.slice(0, 19)}…` : '';
  const which = !layer
    ? `the upload of a layer${blob}`
    : opts.exact
      ? `the upload of ${describeLayer(layer, ctx.layerCount)}`
      : `the upload of${blob || ' a layer'}, most likely ${describeLayer(layer, ctx.layerCount)}, the biggest`;
  return {
    title: opts.final ? 'Push refused: request body too large (HTTP 413)' : 'Request body too large (HTTP 413)',
    message:
      `The registry or a proxy in front of it limits request bodies, and refused ${which} (HTTP 413). ` +
      `${opts.next} The limit is usually the proxy's (${BODY_LIMIT_WHERE}).`,
  };
}

/** A message for a failure that ends the push. */
export function failureAdvice(failure: Failure, ctx: AdviceContext): Advice {
  const detail = failure.detail ? ` Docker said: ${failure.detail}` : '';
  return (
    accessAdvice(failure, ctx, detail) ?? requestAdvice(failure, ctx, detail) ?? connectionAdvice(failure, ctx, detail)
  );
}

/** Who is pushing where: the credentials, the rights, the repository. */
function accessAdvice(failure: Failure, ctx: AdviceContext, detail: string): Advice | null {
  switch (failure.kind) {
    case 'unauthorized':
      return {
        title: 'Registry rejected the credentials',
        message:
          `${ctx.registry} rejected the login or push for '${ctx.username}' with token-type '${ctx.tokenType}'. ` +
          `That token type needs ${TOKEN_NEEDS[ctx.tokenType]}. Check the secret behind 'token' (and 'username'), ` +
          `and that it has not expired or been revoked.${detail}`,
      };
    case 'denied':
      return {
        title: 'Access denied to the repository',
        message:
          `The credentials work but may not push to ${ctx.repository}. Check that the token belongs to the ` +
          `application '${ctx.appSlug}' and has push rights (a read-only service account cannot push).${detail}`,
      };
    case 'not-found':
      return {
        title: 'Repository not found',
        message:
          `${ctx.registry} does not know ${ctx.repository}. Check 'app-slug' ('${ctx.appSlug}'): it must be the ` +
          `slug of an application the token can access, as shown in the Vendor Portal.${detail}`,
      };
    default:
      return null;
  }
}

/** What was sent: a manifest, an image or a request the registry (or the action) refused. */
function requestAdvice(failure: Failure, ctx: AdviceContext, detail: string): Advice | null {
  switch (failure.kind) {
    case 'attestation':
    case 'bad-request':
      return {
        title:
          failure.kind === 'attestation'
            ? 'Provenance attestations rejected (HTTP 400)'
            : 'Registry rejected the manifest (HTTP 400)',
        message:
          `${ctx.registry} rejected the image manifest. Images built by buildx carry provenance attestations by ` +
          'default, and this registry does not accept them. Keep `attestations: strip` (the default) on an engine that ' +
          'supports `docker push --platform` (API 1.46+), or rebuild with `--provenance=false` ' +
          `(or set BUILDX_NO_DEFAULT_ATTESTATIONS=1 for the build).${detail}`,
      };
    case 'unsupported':
      return {
        title: 'Registry does not support this image',
        message: `The registry refused the image as unsupported.${detail}`,
      };
    case 'body-too-large':
      return bodyLimitAdvice(null, ctx, {
        final: true,
        exact: false,
        blobDigest: failure.blobDigest,
        next: detail.trim(),
      });
    case 'unsafe-request':
      return {
        title: 'Refused an unsafe registry request',
        message:
          'The registry sent the upload to a place the action does not send data or credentials to (plain http from ' +
          `an https registry, or a token realm that is neither https nor the registry's own origin); a retry would do the same.${detail}`,
      };
    default:
      return null;
  }
}

/** The engine, the connection, the registry's health; and the fallback for a failure nothing else names. */
function connectionAdvice(failure: Failure, ctx: AdviceContext, detail: string): Advice {
  switch (failure.kind) {
    case 'engine-unreachable':
      return {
        title: 'Docker engine unreachable',
        message:
          'The Docker engine is not reachable (check that it is running, and DOCKER_HOST or the docker context if set).' +
          detail,
      };
    case 'image-missing':
      return { title: 'Image not found locally', message: `The engine does not have the image.${detail}` };
    case 'timeout-524':
      return timeoutAdvice(null, [], ctx, true);
    case 'rate-limited':
      return {
        title: 'Rate limited (HTTP 429)',
        message: `${ctx.registry} kept answering 429 Too Many Requests.${detail}`,
      };
    case 'network':
      return {
        title: 'Registry unreachable',
        message: `Could not keep a connection to ${ctx.registry} (reset, refused or timed out) within the retries.${detail}`,
      };
    case 'stalled':
      return {
        title: 'Push stalled',
        message:
          `${failure.detail}. ${ctx.registry} stopped answering in the middle of the upload (the engine ` +
          'reported no layer finishing or retrying in that time); each such attempt was ended and retried.',
      };
    case 'server-error':
      return {
        title: `Registry error (HTTP ${failure.status ?? '5xx'})`,
        message: `${ctx.registry} kept failing with a server error.${detail}`,
      };
    default:
      return { title: 'Push failed', message: `docker push failed.${detail}` };
  }
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
