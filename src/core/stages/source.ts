// Stage 1 for an image the engine does not push: an OCI layout, an archive, another registry, the engine's
// multi-platform image saved with `docker save`, or the tombstone made in memory. The source is opened as the image
// model (ports.openSource), the platforms to push are chosen (index-select.ts), and the plan is made from the
// model: each platform config's rootfs.diff_ids and history, the sizes the manifests give.
import { parsePlatform, platformMatches } from '../../image/oci-layout.js';
import { selectPlatforms, type SelectedIndex } from '../../image/index-select.js';
import type { IndexImage, ManifestImage, OpenedImage } from '../../image/image-model.js';
import { sourceName, type SourceRef } from '../../image/source-ref.js';
import { logText } from '../../util/untrusted.js';
import type { PushStrategy } from '../policy/attestations.js';
import { buildPlan, type Plan } from '../plan.js';
import { ActionFailure, Cancelled, type SourceUpload, type StageContext } from '../ports.js';
import { modelFacts, type PlatformFacts } from './source-facts.js';

/** What a source holds and what of it is pushed, for the plan, the log, the result and the verification. */
export interface SourceRead {
  readonly opened: OpenedImage;
  readonly plan: Plan;
  readonly upload: SourceUpload;
  /** Each pushed platform manifest: its platform, digest and layers (an index); empty for one manifest. */
  readonly platforms: readonly PlatformFacts[];
  /** Lines for the log: what the source is, and how the pushed index differs from the source's. */
  readonly lines: readonly string[];
  /** Set when the pushed index is not the source's own bytes (attestations stripped, platforms left out). */
  readonly changed: { readonly from: string; readonly to: string } | null;
}

/** Opens the source; anything that keeps it from being read is the user's `image` to fix, before any push. */
export async function openStage(ctx: StageContext, source: SourceRef): Promise<OpenedImage> {
  const { config } = ctx;
  try {
    return await ctx.ports.openSource(source, {
      workDir: ctx.workDir,
      signal: ctx.signal,
      jobEnv: ctx.jobEnv,
      childEnv: ctx.childEnv,
      username: config.sourceUsername,
      token: config.sourceToken,
    });
  } catch (e) {
    if (ctx.signal.aborted) throw new Cancelled();
    if (e instanceof ActionFailure) throw e;
    const name = logText(sourceName(source), 300);
    throw new ActionFailure('Image not readable', `Input 'image': ${name} cannot be read: ${(e as Error).message}`, {
      input: 'image',
      attempts: 0,
      cause: e,
    });
  }
}

/** The platforms the `platforms` input asks for that the index lacks, as the user wrote them. */
function missingPlatforms(have: readonly ManifestImage[], wanted: readonly string[]): string[] {
  const platforms = have.flatMap((m) => {
    try {
      return [parsePlatform(m.platform)];
    } catch {
      return []; // no platform given: it matches none asked for
    }
  });
  return wanted.filter((w) => !platforms.some((p) => platformMatches(parsePlatform(w), p)));
}

function platformsError(name: string, missing: readonly string[], have: readonly ManifestImage[]): ActionFailure {
  const list = have.map((m) => logText(m.platform || 'unknown', 64)).join(', ') || 'none';
  return new ActionFailure(
    'Platform not in the image',
    `Input 'platforms': ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not in ${name} (its platforms: ${list}).`,
    { input: 'platforms', attempts: 0 },
  );
}

/** The index to push: the platforms asked for (every one by default), attestations as the input says. */
function selectIndex(ctx: StageContext, name: string, index: IndexImage): SelectedIndex {
  const { platforms, attestations } = ctx.config;
  const missing = missingPlatforms(index.manifests, platforms);
  if (missing.length) throw platformsError(name, missing, index.manifests);
  return selectPlatforms(index, { platforms: platforms.length ? platforms : null, attestations });
}

function indexLines(index: IndexImage, selected: SelectedIndex): string[] {
  const lines = [
    `source index ${index.digest}: ${index.manifests.length} platform manifest(s), ${index.attestations.length} attestation manifest(s)`,
  ];
  if (!selected.changed) return [...lines, `pushed as it is: ${index.digest}`];
  const left = index.manifests.length - selected.manifests.length;
  const strippedN = index.attestations.length - selected.attestations.length;
  const without = [
    strippedN ? `its ${strippedN} attestation manifest${strippedN === 1 ? '' : 's'}` : '',
    left ? `${left} platform(s) not in 'platforms'` : '',
  ].filter(Boolean);
  lines.push(`the source index ${index.digest}; pushed without ${without.join(' and ')} as ${selected.digest}`);
  return lines;
}

function strategyOf(upload: SourceUpload, name: string): PushStrategy {
  if (upload.kind === 'manifest')
    return { kind: 'as-is', reason: `the action's uploader sends ${name}'s manifest`, withAttestations: false };
  const n = upload.index.manifests.length;
  return {
    kind: 'as-is',
    reason: `the action's uploader sends an index of ${n} platform manifest(s)${upload.index.attestations.length ? ' and their attestations' : ''}`,
    withAttestations: upload.index.attestations.length > 0,
  };
}

/** What `platforms` means for a single manifest: it must be that manifest's platform, when the image says one. */
function checkManifestPlatform(ctx: StageContext, name: string, manifest: ManifestImage): void {
  const { platforms } = ctx.config;
  if (!platforms.length || !manifest.platform) return;
  const missing = missingPlatforms([manifest], platforms);
  if (missing.length) throw platformsError(name, missing, [manifest]);
}

/** The plan and what to upload, from an opened source. */
export async function sourceRead(ctx: StageContext, opened: OpenedImage): Promise<SourceRead> {
  const { image } = opened;
  const name = opened.name;
  if (image.kind === 'manifest') {
    checkManifestPlatform(ctx, name, image);
    const upload: SourceUpload = { kind: 'manifest', manifest: image };
    const { layers } = await modelFacts([image], ctx.signal);
    const plan = buildPlan(ctx.config, name, layers, strategyOf(upload, name));
    const lines = [`source: ${logText(name, 300)}: one image manifest ${image.digest}`];
    return { opened, plan, upload, platforms: [], lines, changed: null };
  }
  const index = selectIndex(ctx, name, image);
  const upload: SourceUpload = { kind: 'index', index };
  const { layers, platforms } = await modelFacts(index.manifests, ctx.signal);
  const plan = buildPlan(ctx.config, name, layers, strategyOf(upload, name));
  const lines = [`source: ${logText(name, 300)}`, ...indexLines(image, index)];
  return {
    opened,
    plan,
    upload,
    platforms,
    lines,
    changed: index.changed ? { from: image.digest, to: index.digest } : null,
  };
}
