// Stage 1 for an image the engine does not push: an OCI layout, an archive, another registry, the engine's
// multi-platform image saved with `docker save`, or the tombstone made in memory. The source is opened as the image
// model (ports.openSource), the platforms to push are chosen (index-select.ts), and the plan is made from the
// model: each platform config's rootfs.diff_ids and history, the sizes the manifests give.
import { parsePlatform, platformMatches } from '../../image/oci-layout.js';
import { selectPlatforms, type SelectedIndex } from '../../image/index-select.js';
import type { IndexImage, ManifestImage, OpenedImage, SourceImage } from '../../image/image-model.js';
import { sourceName, type SourceRef } from '../../image/source-ref.js';
import { logText } from '../../util/untrusted.js';
import type { PushStrategy } from '../policy/attestations.js';
import { buildPlan, type Plan } from '../plan.js';
import { ActionFailure, Cancelled, type StageContext } from '../ports.js';
import { modelFacts, type PlatformFacts } from './source-facts.js';

/** What a source holds and what of it is pushed, for the plan, the log, the result and the verification. */
export interface SourceRead {
  readonly opened: OpenedImage;
  readonly plan: Plan;
  /** What is pushed: the source's manifest, or the index of the platforms kept (selectPlatforms). */
  readonly upload: SourceImage;
  /** Each pushed platform manifest: its platform, digest and layers (an index); empty for one manifest. */
  readonly platforms: readonly PlatformFacts[];
  /** Lines for the log: what the source is, and how the pushed index differs from the source's. */
  readonly lines: readonly string[];
  /** Set when the pushed index is not the source's own bytes (attestations stripped, platforms left out). */
  readonly changed: IndexChange | null;
}

/** The source's index and the one pushed: what was left out of it. */
export interface IndexChange {
  readonly from: string;
  readonly to: string;
  /** Attestation manifests and platform manifests not in the pushed index. */
  readonly attestations: number;
  readonly platforms: number;
}

/** What the pushed index leaves out, in words: `its 2 attestation manifests and 1 platform not in 'platforms'`. */
export function leftOutText(c: Pick<IndexChange, 'attestations' | 'platforms'>): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return [
    c.attestations ? `its ${plural(c.attestations, 'attestation manifest')}` : '',
    c.platforms ? `${plural(c.platforms, 'platform')} not in 'platforms'` : '',
  ]
    .filter(Boolean)
    .join(' and ');
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

function changeOf(index: IndexImage, selected: SelectedIndex): IndexChange | null {
  if (!selected.changed) return null;
  return {
    from: index.digest,
    to: selected.digest,
    attestations: index.attestations.length - selected.attestations.length,
    platforms: index.manifests.length - selected.manifests.length,
  };
}

function indexLines(index: IndexImage, change: IndexChange | null): string[] {
  const lines = [
    `source index ${index.digest}: ${index.manifests.length} platform manifest(s), ${index.attestations.length} attestation manifest(s)`,
  ];
  if (!change) return [...lines, `pushed as it is: ${index.digest}`];
  return [...lines, `the source index ${index.digest}; pushed without ${leftOutText(change)} as ${change.to}`];
}

function strategyOf(upload: SourceImage, name: string): PushStrategy {
  if (upload.kind === 'manifest')
    return { kind: 'as-is', reason: `the action's uploader sends ${name}'s manifest`, withAttestations: false };
  const n = upload.manifests.length;
  return {
    kind: 'as-is',
    reason: `the action's uploader sends an index of ${n} platform manifest(s)${upload.attestations.length ? ' and their attestations' : ''}`,
    withAttestations: upload.attestations.length > 0,
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
    const { layers } = await modelFacts([image], ctx.signal);
    const plan = buildPlan(ctx.config, name, layers, strategyOf(image, name));
    const lines = [`source: ${logText(name, 300)}: one image manifest ${image.digest}`];
    return { opened, plan, upload: image, platforms: [], lines, changed: null };
  }
  const index = selectIndex(ctx, name, image);
  const { layers, platforms } = await modelFacts(index.manifests, ctx.signal);
  const plan = buildPlan(ctx.config, name, layers, strategyOf(index, name));
  const changed = changeOf(image, index);
  const lines = [`source: ${logText(name, 300)}`, ...indexLines(image, changed)];
  return { opened, plan, upload: index, platforms, lines, changed };
}
