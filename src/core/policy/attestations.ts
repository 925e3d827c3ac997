// Whether the local image carries attestation manifests, and how to push it so the registry gets only
// what it accepts. Pure: the engine facts and the image's manifest list are read elsewhere.
import { apiAtLeast, type EngineManifest } from '../../engine/docker.js';
import type { AttestationMode } from '../input-table.js';
import { INDEX_MEDIA_TYPES, isAttestation as isAttestationDescriptor, platformString } from '../../image/oci.js';
import { logText } from '../../util/untrusted.js';

/** os/architecture/variant is short; a longer one is cut where it is shown. */
const PLATFORM_MAX = 64;

export type PushStrategy =
  /** withAttestations: what is pushed lists attestation manifests (a 400 on it is the attestation rejection). */
  | { kind: 'as-is'; reason: string; withAttestations: boolean }
  | { kind: 'platform'; platform: string; reason: string }
  /** Every platform (or those `platforms` names) as an index the action writes: read with docker save, uploaded by the action. */
  | { kind: 'index'; platforms: readonly string[]; reason: string }
  | { kind: 'refuse'; title: string; message: string };

export interface AttestationFacts {
  readonly containerdStore: boolean;
  readonly apiVersion: string;
  /** The image's own descriptor media type (containerd store only). */
  readonly descriptorMediaType: string | null;
  /** null when the engine cannot list them (API < 1.48). */
  readonly manifests: readonly EngineManifest[] | null;
  /** From `docker image inspect`: the platform the engine resolves the image to. */
  readonly platform: string;
}

function isAttestation(m: EngineManifest): boolean {
  return isAttestationDescriptor({ Kind: m.Kind, ...m.Descriptor });
}

const REBUILD = 'rebuild with `--provenance=false` (or BUILDX_NO_DEFAULT_ATTESTATIONS=1)';

export function choosePushStrategy(
  facts: AttestationFacts,
  mode: AttestationMode,
  opts: { readonly subset?: boolean } = {},
): PushStrategy {
  if (!facts.containerdStore || !facts.descriptorMediaType || !INDEX_MEDIA_TYPES.has(facts.descriptorMediaType)) {
    return { kind: 'as-is', reason: 'the image is a single manifest', withAttestations: false };
  }
  if (mode === 'keep')
    return {
      kind: 'as-is',
      reason: 'attestations: keep pushes the image index as it is',
      // an engine that cannot list the index's entries may hold attestations: assume it does
      withAttestations: facts.manifests ? facts.manifests.some(isAttestation) : true,
    };
  const images = facts.manifests?.filter((m) => !isAttestation(m) && m.Available !== false) ?? null;
  const attested = facts.manifests ? facts.manifests.some(isAttestation) : null;
  if (images && images.length > 1 && (attested || opts.subset)) {
    // the index's platform strings are the image author's: shown as data (untrusted.ts)
    const list = images.map((m) => logText(platformString(m.Descriptor?.platform ?? {}), PLATFORM_MAX));
    return {
      kind: 'index',
      platforms: list,
      reason:
        `the engine's image read with docker save; the action's uploader sends an index of its platforms ` +
        `(${list.join(', ')})${attested ? ' without their attestations (attestations: strip)' : ''}`,
    };
  }
  if (attested === false) {
    return { kind: 'as-is', reason: 'the image index has no attestations', withAttestations: false };
  }
  if (!apiAtLeast(facts.apiVersion, '1.46')) {
    return {
      kind: 'refuse',
      title: 'Engine too old to strip attestations',
      message:
        `The image is an index that may carry provenance attestations, which this registry rejects (HTTP 400), ` +
        `and this engine (API ${facts.apiVersion}) cannot push a single platform (\`docker push --platform\` needs API 1.46+). ` +
        `Nothing was pushed: ${REBUILD}, or upgrade Docker.`,
    };
  }
  const platform = images?.[0]?.Descriptor?.platform ? platformString(images[0].Descriptor.platform) : facts.platform;
  const shown = logText(platform, PLATFORM_MAX);
  return {
    kind: 'platform',
    platform,
    reason:
      attested === null
        ? `pushing only the ${shown} manifest: this engine cannot list attestations, so none is risked`
        : `pushing only the ${shown} manifest, without its provenance attestation (attestations: strip)`,
  };
}
