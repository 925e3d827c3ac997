// Config + image facts -> what will be pushed and what to warn about before any upload. Pure.
import type { Advice, AdviceContext } from './report/advisory.js';
import { oversizeLayerAdvice } from './report/advisory.js';
import type { PushStrategy } from './policy/attestations.js';
import { REPLICATED_REGISTRY } from './input-table.js';
import type { Config } from './inputs.js';
import { layersOver, type LayerFact } from '../image/layers.js';
import { repositoryOf, taggedRef } from '../image/reference.js';
import { formatBytes } from '../util/units.js';

export interface Plan {
  /** REGISTRY/APP_SLUG/TARGET */
  readonly repository: string;
  /** Path under the registry, for the v2 API: APP_SLUG/TARGET */
  readonly repositoryPath: string;
  readonly refs: readonly string[];
  /** What customers pull through the Replicated proxy, one per ref; empty for the Replicated registry itself. */
  readonly proxyRefs: readonly string[];
  readonly source: string;
  readonly strategy: PushStrategy;
  readonly layers: readonly LayerFact[];
  readonly totalSize: number;
  readonly oversized: readonly LayerFact[];
  readonly preflight: readonly Advice[];
  readonly notices: readonly Advice[];
  readonly warnings: readonly Advice[];
  /**
   * The chunked uploader can send what docker push would: a single manifest, or one platform's manifest of an index
   * (attestations stripped). An index pushed as it is goes through docker push only.
   */
  readonly chunkable: boolean;
}

export const DEPRECATION_NOTICE: Advice = {
  title: 'registry.replicated.com is deprecated',
  message:
    'Replicated deprecated pushing images to registry.replicated.com in April 2026; vendors in the grace period can ' +
    'still push. The recommended path is an external registry your customers pull through proxy.replicated.com: see ' +
    "https://docs.replicated.com/vendor/private-images-about and this action's README (Migrating).",
};

export const TOMBSTONE_WARNING: Advice = {
  title: 'Tombstone replaces a released tag with an empty image',
  message:
    'mode: tombstone pushes an empty image over the tag, replacing it in place: every release or installation that ' +
    'still references this tag gets an image with no files and breaks. The replaced image stays pullable by its ' +
    'digest. To delete an image instead, use the Vendor Portal (Image Registries) or the Vendor API ' +
    '("Delete App Images"); an image stays pullable by digest until every tag of it is deleted across apps.',
};

export const TEAM_TOKEN_WARNING: Advice = {
  title: 'Team API tokens are deprecated',
  message:
    "token-type 'team' still works, but Replicated deprecated team API tokens: create a service account " +
    "(Vendor Portal > Team > Service Accounts) and use token-type 'service-account'.",
};

/** The facts the advice texts quote; before the image is read (login), `plan` is null. */
export function adviceContext(config: Config, plan: Pick<Plan, 'repository' | 'layers'> | null): AdviceContext {
  return {
    registry: config.registry,
    appSlug: config.appSlug,
    repository: plan?.repository ?? repositoryOf(config.registry, config.repositoryPath),
    tokenType: config.tokenType,
    username: config.username,
    maxLayerSize: config.maxLayerSize,
    layerCount: plan?.layers.length ?? 0,
  };
}

export function externalTokenTypeNotice(registry: string): Advice {
  return {
    title: 'token-type ignored',
    message: `token-type describes Replicated credentials; ${registry} gets 'username' and 'token' as that registry expects.`,
  };
}

export function proxyRef(config: Config, tag: string): string {
  return `${config.proxyDomain}/proxy/${config.appSlug}/${config.registry}/${config.repositoryPath}:${tag}`;
}

/** REGISTRY/PATH:TAG for every tag: depends on the inputs alone. */
export function refsFor(config: Config): string[] {
  const repository = repositoryOf(config.registry, config.repositoryPath);
  return config.tags.map((t) => taggedRef(repository, t));
}

export function buildPlan(
  config: Config,
  source: string,
  layers: readonly LayerFact[],
  strategy: PushStrategy,
  image: { readonly index: boolean } = { index: false },
): Plan {
  const repositoryPath = config.repositoryPath;
  const repository = repositoryOf(config.registry, repositoryPath);
  const oversized = layersOver(layers, config.maxLayerSize);
  const base = { repository, layers };
  const ctx = adviceContext(config, base);
  const notices: Advice[] = [];
  const warnings: Advice[] = [];
  if (config.registry === REPLICATED_REGISTRY) notices.push(DEPRECATION_NOTICE);
  if (config.tokenType === 'team') warnings.push(TEAM_TOKEN_WARNING);
  if (config.external && config.tokenTypeGiven && config.tokenType !== 'service-account')
    notices.push(externalTokenTypeNotice(config.registry));
  return {
    repository,
    repositoryPath,
    refs: refsFor(config),
    proxyRefs: config.external ? config.tags.map((t) => proxyRef(config, t)) : [],
    source,
    strategy,
    layers,
    totalSize: layers.reduce((sum, l) => sum + l.size, 0),
    oversized,
    preflight: config.layerSplit === 'off' ? [] : oversized.map((l) => preflightAdvice(l, ctx, config)),
    notices,
    warnings,
    chunkable: strategy.kind === 'platform' || !image.index,
  };
}

/** The warning for a layer over max-layer-size, saying what the action will do about it. */
function preflightAdvice(layer: LayerFact, ctx: AdviceContext, config: Config): Advice {
  const advice = oversizeLayerAdvice(layer, ctx);
  if (config.layerSplit === 'auto') return advice;
  if (config.upload === 'docker') return advice;
  return {
    title: advice.title,
    message: `${advice.message} This action uploads it in resumable chunks of ${formatBytes(config.chunkSize)} (upload: ${config.upload}), so the image stays as it is.`,
  };
}
