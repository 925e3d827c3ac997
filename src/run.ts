// The core: Config -> engine and image facts -> plan -> tag, push with retries -> verify -> result.
// No @actions/core here: the GitHub adapter (main.ts) and the CLI pass a Logger in.
import { adviceContext, buildPlan, refsFor, TOMBSTONE_WARNING, type Plan } from './plan.js';
import { failureAdvice, timeoutAdvice, type Advice, type AdviceContext } from './advisory.js';
import { apiAtLeast, choosePushStrategy, type EngineManifest } from './attestations.js';
import { INDEX_MEDIA_TYPES, platformString } from './oci.js';
import { createRunDockerConfig, removeRunDockerConfig } from './docker-config.js';
import { DockerError, type CommandResult, type Docker, type EngineFacts, type ImageInspect } from './docker.js';
import { classifyFailure, type Failure } from './failure.js';
import type { Config } from './inputs.js';
import { layerFacts, type LayerFact } from './layers.js';
import type { Logger } from './logger.js';
import { PushProgress } from './progress.js';
import { parsePushLine, pushedDigest, type PushEvent } from './push-output.js';
import { pinnedRef } from './reference.js';
import type { ManifestHead } from './registry-client.js';
import type { RelayerOptions, RelayerReport } from './relayer/index.js';
import { DEFAULT_MAX_DELAY_MS, withRetries, type AttemptOutcome } from './retry.js';
import { formatBytes, formatDuration } from './units.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The docker calls the core makes (docker.ts implements them; unit tests may stub them). */
export type DockerApi = Pick<
  Docker,
  'login' | 'inspectImage' | 'history' | 'engineFacts' | 'tag' | 'push' | 'engineApiGet' | 'importEmpty' | 'removeImage'
>;

export interface RegistryApi {
  headManifest(repository: string, reference: string): Promise<ManifestHead | null>;
  retryAfterMs(): Promise<number | null>;
}

export interface CoreDeps {
  readonly env: NodeJS.ProcessEnv;
  readonly logger: Logger;
  docker(env: NodeJS.ProcessEnv): DockerApi;
  registry(host: string, username: string, password: string): RegistryApi;
  now(): number;
  sleep(ms: number): Promise<void>;
  random(): number;
  readonly progressIntervalMs: number;
  /** Told where the credentials live before they are written, so a post step can remove them after a crash. */
  onConfigDir?(dir: string): void;
  /** Re-layers a local image (layer-split: auto); src/relayer in production. */
  relayer(image: string, opts: RelayerOptions & { env?: NodeJS.ProcessEnv }): Promise<RelayerReport>;
}

export interface SplitSummary {
  readonly layersBefore: number;
  readonly layersAfter: number;
  /** One line per split layer: which, how big, into what. */
  readonly lines: readonly string[];
}

export interface RunResult {
  readonly refs: readonly string[];
  readonly digest: string | null;
  readonly pinnedRef: string | null;
  readonly attempts: number;
  readonly totalSize: number;
  readonly layerCount: number;
  readonly durationMs: number;
  readonly dryRun: boolean;
  /** The platform pushed alone when attestations were stripped. */
  readonly platform: string | null;
  readonly plan: Plan;
  /** What each tag pointed to before this run (null: the tag was new). */
  readonly replaced: readonly { tag: string; digest: string | null }[];
  /** Set when layer-split: auto re-layered the image. */
  readonly split: SplitSummary | null;
}

/** A failure the user can act on; `input` names the input at fault when there is one. */
export class ActionFailure extends Error {
  constructor(
    readonly title: string,
    message: string,
    readonly opts: { input?: string; attempts?: number } = {},
  ) {
    super(message);
    this.name = 'ActionFailure';
  }
}

export async function runAction(config: Config, deps: CoreDeps): Promise<RunResult> {
  const started = deps.now();
  const dockerConfig = createRunDockerConfig(deps.env);
  deps.onConfigDir?.(dockerConfig.dir);
  try {
    return await new Run(config, deps, deps.docker(dockerConfig.env), dockerConfig.env, started).execute();
  } finally {
    removeRunDockerConfig(dockerConfig.dir);
  }
}

function outputOf(e: unknown): string {
  return e instanceof DockerError ? e.output : String((e as Error)?.message ?? e);
}

class Run {
  private readonly log: Logger;
  private readonly policy;
  private readonly registry: RegistryApi;

  /** Set once the image is read: the facts and the plan of what is pushed now (a split replaces it). */
  private facts!: EngineFacts;
  private current!: Plan;
  /** layer-split: auto: the layer count before the first split, and one line per split layer. */
  private layersBeforeSplit: number | null = null;
  private readonly splitLines: string[] = [];

  constructor(
    private readonly config: Config,
    private readonly deps: CoreDeps,
    private readonly docker: DockerApi,
    private readonly dockerEnv: NodeJS.ProcessEnv,
    private readonly started: number,
  ) {
    this.log = deps.logger;
    this.policy = { retries: config.retries, firstDelayMs: config.retryDelayMs, maxDelayMs: DEFAULT_MAX_DELAY_MS };
    this.registry = deps.registry(config.registry, config.username, config.token);
  }

  async execute(): Promise<RunResult> {
    const { config } = this;
    const source = config.image ? config.image.raw : await this.makeTombstone();
    try {
      return await this.pushSource(source);
    } finally {
      if (!config.image) await this.docker.removeImage(source);
    }
  }

  private async pushSource(source: string): Promise<RunResult> {
    const { config, log } = this;
    // Tags depend only on the inputs, so they are made while the facts are read (never in a dry run).
    const tagged = config.dryRun
      ? Promise.resolve([])
      : Promise.all(refsFor(config).map((ref) => this.docker.tag(source, ref)));
    tagged.catch(() => undefined); // a failure here is reported by the facts (no image) or by the await below
    const [engine, inspect, history, login] = await Promise.allSettled([
      this.docker.engineFacts(),
      this.docker.inspectImage(source),
      this.docker.history(source),
      // What the tags point to now is asked right after login, so it costs no extra round trip on the path.
      this.login().then(() => this.currentDigests()),
    ]);
    this.failOnFacts(source, engine, inspect, history);
    this.facts = (engine as PromiseFulfilledResult<EngineFacts>).value;
    const plan = await this.planFor(
      source,
      (inspect as PromiseFulfilledResult<ImageInspect>).value,
      (history as PromiseFulfilledResult<{ size: number; createdBy: string }[]>).value,
    );
    this.current = plan;
    for (const n of plan.notices) log.notice(n);
    for (const w of plan.warnings) log.warning(w);
    this.logPlan(plan, this.facts);
    for (const w of plan.preflight) log.warning(w);
    if (login.status === 'rejected') throw login.reason;
    const replaced = login.value;
    this.reportReplaced(replaced);
    if (plan.strategy.kind === 'refuse')
      throw new ActionFailure(plan.strategy.title, plan.strategy.message, { input: 'attestations', attempts: 0 });
    if (config.dryRun) {
      if (config.layerSplit === 'auto' && plan.oversized.length)
        log.info(`dry-run: layer-split: auto would split ${plan.oversized.length} layer(s) over max-layer-size first.`);
      log.info(`dry-run: credentials accepted by ${config.registry}; nothing was tagged or pushed.`);
      return this.result({ digest: null, attempts: 0, replaced });
    }
    await tagged;
    if (config.layerSplit === 'auto' && plan.oversized.length > 0) await this.relayer(null);
    let attempts = 0;
    let digest: string | null = null;
    for (const ref of plan.refs) {
      const pushed = await this.pushWithRetries(ref);
      attempts = Math.max(attempts, pushed.attempts);
      digest ??= pushed.digest;
    }
    return this.result({ digest: await this.verify(plan, digest as string, attempts), attempts, replaced });
  }

  /** Everything else in the result follows from the plan being pushed now (a split replaces it). */
  private result(r: Pick<RunResult, 'digest' | 'attempts' | 'replaced'>): RunResult {
    const plan = this.current;
    return {
      ...r,
      refs: plan.refs,
      pinnedRef: r.digest ? pinnedRef(plan.repository, r.digest) : null,
      totalSize: plan.totalSize,
      layerCount: plan.layers.length,
      platform: this.platform(),
      plan,
      dryRun: this.config.dryRun,
      durationMs: this.deps.now() - this.started,
      split:
        this.layersBeforeSplit === null
          ? null
          : { layersBefore: this.layersBeforeSplit, layersAfter: plan.layers.length, lines: [...this.splitLines] },
    };
  }

  private platform(): string | null {
    return this.current.strategy.kind === 'platform' ? this.current.strategy.platform : null;
  }

  private async planFor(
    source: string,
    image: ImageInspect,
    history: { size: number; createdBy: string }[],
  ): Promise<Plan> {
    const layers = layerFacts(image.RootFS.Layers ?? [], history);
    return buildPlan(
      this.config,
      source,
      layers,
      choosePushStrategy(
        {
          containerdStore: this.facts.containerdStore,
          apiVersion: this.facts.apiVersion,
          descriptorMediaType: image.Descriptor?.mediaType ?? null,
          manifests: await this.engineManifests(this.facts, image),
          platform: platformString({ os: image.Os, architecture: image.Architecture, variant: image.Variant }),
        },
        this.config.attestations,
      ),
    );
  }

  /**
   * layer-split: auto. Before the first upload (`only` null) every layer over max-layer-size is split; after a
   * 524 (`only` set) that one layer is split again to the size given. The new image replaces the local one
   * under the same refs; nothing is pushed that the user did not name.
   */
  private async relayer(only: { layers: readonly LayerFact[]; size: number } | null): Promise<void> {
    const { config, log } = this;
    const before = this.current;
    const tag = `${config.target}:${`${config.tags[0]}-split`.slice(0, 128)}`;
    const workDir = mkdtempSync(join(this.dockerEnv.RUNNER_TEMP || tmpdir(), 'replicated-push-split-'));
    let report: RelayerReport;
    try {
      const title = only
        ? `Re-split layer ${only.layers.map((l) => l.index).join(', ')} to ${formatBytes(only.size)}`
        : 'Split layers over max-layer-size';
      report = await log.group(title, () =>
        this.deps.relayer(before.source, {
          maxLayerSize: config.maxLayerSize,
          split: only ? new Map(only.layers.map((l) => [l.diffId, only.size])) : undefined,
          tag,
          workDir,
          log: (line) => log.info(line),
          env: this.dockerEnv,
        }),
      );
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
    if (!report.changed) {
      log.info('layer-split: nothing could be split further; pushing the image as it is');
      return;
    }
    for (const u of report.unsplittable) {
      const limit = only ? only.size : config.maxLayerSize;
      log.warning({
        title: 'File bigger than a layer may be',
        message: `${u.path} is ${formatBytes(u.size)}, more than the ${formatBytes(limit)} its layer should stay under: one file cannot be split, so its layer holds it alone.`,
      });
    }
    const [inspect, history] = await Promise.all([this.docker.inspectImage(tag), this.docker.history(tag)]);
    this.current = await this.planFor(tag, inspect, history);
    await Promise.all(before.refs.map((ref) => this.docker.tag(tag, ref)));
    for (const l of report.layers.filter((x) => x.pieces.length > 1)) {
      const fact = before.layers.find((f) => f.diffId === l.diffId);
      this.splitLines.push(
        `layer ${fact?.index ?? '?'} (${formatBytes(l.size)}${fact?.instruction ? `, ${fact.instruction}` : ''}) -> ` +
          `${l.pieces.length} layers: ${l.pieces.map((p) => formatBytes(p.size)).join(' + ')}`,
      );
    }
    this.layersBeforeSplit ??= before.layers.length;
    log.info(
      `layer-split: ${this.layersBeforeSplit} layers became ${this.current.layers.length}; ${tag} is pushed under ${before.refs.join(', ')}`,
    );
    for (const line of this.splitLines) log.info(`  ${line}`);
  }

  private async makeTombstone(): Promise<string> {
    const ref = `replicated-push-tombstone:${Date.now().toString(36)}`;
    await this.docker.importEmpty(ref, 'com.replicated-push.tombstone=true');
    return ref;
  }

  /** What the tags point to now: shown for every push, and a tombstone refuses a tag that does not exist. */
  private async currentDigests(): Promise<{ tag: string; digest: string | null }[]> {
    return Promise.all(
      this.config.tags.map(async (tag) => ({
        tag,
        digest: (await this.registry.headManifest(this.config.repositoryPath, tag).catch(() => null))?.digest ?? null,
      })),
    );
  }

  /** Says which tags move; a tombstone refuses a tag that does not exist, since that would create it for good. */
  private reportReplaced(current: readonly { tag: string; digest: string | null }[]): void {
    const { config, log } = this;
    for (const c of current)
      if (c.digest) log.info(`${config.repositoryPath}:${c.tag} now points to ${c.digest}; it will be replaced`);
    if (config.mode !== 'tombstone') return;
    log.warning(TOMBSTONE_WARNING);
    const missing = current.filter((c) => !c.digest).map((c) => c.tag);
    if (missing.length) {
      throw new ActionFailure(
        'Tombstone of a tag that does not exist',
        `Input 'tag': ${missing.join(', ')} does not exist in ` +
          `${config.registry}/${config.repositoryPath}. A tombstone only replaces an existing tag; pushing it would create a ` +
          'new tag that can never be deleted.',
        { input: 'tag', attempts: 0 },
      );
    }
  }

  private async login(): Promise<void> {
    const { config } = this;
    const result = await withRetries(this.policy, this.retryHooks('login'), async (): Promise<AttemptOutcome<void>> => {
      try {
        await this.docker.login(config.registry, config.username, config.token);
        return { ok: true, value: undefined };
      } catch (e) {
        const failure = classifyFailure(outputOf(e));
        return {
          ok: false,
          retry: failure.retryable && failure.kind !== 'unknown',
          error: this.failureError(failure, null),
        };
      }
    });
    if (!result.outcome.ok) throw result.outcome.error;
  }

  private failOnFacts(source: string, ...settled: PromiseSettledResult<unknown>[]): void {
    const failures = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => classifyFailure(outputOf(s.reason)));
    const unreachable = failures.find((f) => f.kind === 'engine-unreachable');
    if (unreachable) {
      const host = this.deps.env.DOCKER_HOST ? ` at DOCKER_HOST=${this.deps.env.DOCKER_HOST}` : '';
      throw new ActionFailure(
        'Docker engine unreachable',
        `Could not reach the Docker engine${host}: ${unreachable.detail}. ` +
          'Check that the engine is running and that DOCKER_HOST / the docker context point at it.',
        { attempts: 0 },
      );
    }
    if (failures.some((f) => f.kind === 'image-missing')) {
      throw new ActionFailure(
        'Image not found',
        `Input 'image': the engine has no image '${source}'. ` +
          'Build or load it in an earlier step (the name must match, including the tag; the default tag is latest).',
        { input: 'image', attempts: 0 },
      );
    }
    if (failures.length > 0)
      throw new ActionFailure('Could not read the image', failures[0].detail, { input: 'image', attempts: 0 });
  }

  private async engineManifests(facts: EngineFacts, image: ImageInspect): Promise<EngineManifest[] | null> {
    const index = image.Descriptor && INDEX_MEDIA_TYPES.has(image.Descriptor.mediaType);
    if (!facts.containerdStore || !index || !apiAtLeast(facts.apiVersion, '1.48')) return null;
    try {
      const json = (await this.docker.engineApiGet(
        `/v${facts.apiVersion}/images/${encodeURIComponent(image.Id)}/json?manifests=1`,
      )) as { Manifests?: EngineManifest[] };
      return json.Manifests ?? null;
    } catch (e) {
      this.log.debug(`could not list the image's manifests: ${(e as Error).message}`);
      return null;
    }
  }

  private logPlan(plan: Plan, facts: EngineFacts): void {
    const { config, log } = this;
    log.info(
      `engine: Docker ${facts.serverVersion} (API ${facts.apiVersion}, ${facts.containerdStore ? 'containerd' : 'classic'} image store)`,
    );
    log.info(`image: ${plan.source}: ${plan.layers.length} layers, ${formatBytes(plan.totalSize)} uncompressed`);
    for (const l of plan.layers)
      log.info(`  layer ${l.index}: ${formatBytes(l.size).padStart(8)}  ${l.instruction ?? '(instruction unknown)'}`);
    log.info(
      `tags (${config.tagSource === 'git-tag' ? 'from the git tag' : 'from input tag'}): ${config.tags.join(', ')}`,
    );
    for (const ref of plan.refs) log.info(`push: ${ref}`);
    for (const ref of plan.proxyRefs) log.info(`customers pull: ${ref}`);
    log.info(`method: ${plan.strategy.kind === 'refuse' ? 'refused' : plan.strategy.reason}`);
    log.info(`token-type: ${config.tokenType}, username: ${config.username}`);
  }

  private retryHooks(what: string) {
    return {
      sleep: this.deps.sleep,
      random: this.deps.random,
      onRetry: (attempt: number, delay: number, error: Error) => {
        this.log.info(
          `${what}: attempt ${attempt} failed (${error instanceof ActionFailure ? error.title : error.message}); retrying in ${formatDuration(delay)}`,
        );
      },
    };
  }

  private ctx(plan?: Plan): AdviceContext {
    return adviceContext(
      this.config,
      plan ?? { repository: `${this.config.registry}/${this.config.repositoryPath}`, layers: [] },
    );
  }

  private failureError(failure: Failure, plan: Plan | null, advice?: Advice): ActionFailure {
    const a = advice ?? failureAdvice(failure, this.ctx(plan ?? undefined));
    return new ActionFailure(a.title, a.message);
  }

  private async pushOnce(ref: string): Promise<{ result: CommandResult; events: PushEvent[]; progress: PushProgress }> {
    const progress = new PushProgress(this.current.layers, this.deps.now());
    const platform = this.platform();
    const events: PushEvent[] = [];
    const timer = setInterval(() => this.log.progress(progress.line(this.deps.now())), this.deps.progressIntervalMs);
    try {
      const result = await this.docker.push(ref, {
        platform: platform ?? undefined,
        onLine: (line) => {
          const event = parsePushLine(line);
          if (!event) return;
          events.push(event);
          progress.observe(event);
          this.log.info(line);
        },
      });
      return { result, events, progress };
    } finally {
      clearInterval(timer);
    }
  }

  private async pushWithRetries(ref: string): Promise<{ attempts: number; digest: string }> {
    const { config, log } = this;
    const run = await log.group(`Push ${ref}`, () =>
      withRetries(this.policy, this.retryHooks(`push ${ref}`), async (n): Promise<AttemptOutcome<string>> => {
        const plan = this.current;
        const { result, events, progress } = await this.pushOnce(ref);
        if (result.code === 0) {
          const pushed = pushedDigest(events);
          if (pushed) return { ok: true, value: pushed.digest };
          return {
            ok: false,
            retry: false,
            error: new ActionFailure('No digest', `docker push ${ref} succeeded but printed no digest.`),
          };
        }
        const failure = classifyFailure(`${result.stdout}\n${result.stderr}`);
        if (failure.kind === 'timeout-524') {
          // Which layer: the blob the engine names is the layer itself when it is uncompressed (a relayered piece);
          // the classic store's status lines name layers by diff ID; a compressed blob on the containerd store maps
          // to no layer without its manifest, and then the one layer over the limit, if there is one, is named.
          const exact =
            plan.layers.find((l) => l.diffId === failure.blobDigest) ??
            (this.facts.containerdStore ? null : progress.suspect());
          const layer = exact ?? (plan.oversized.length === 1 ? plan.oversized[0] : null);
          const advice = timeoutAdvice(layer, plan.oversized, this.ctx(plan), false, exact ? null : failure.blobDigest);
          log.warning(advice);
          if (config.layerSplit === 'auto') {
            // Adaptive: halve the layer that timed out (or the biggest, when the engine did not say), and every
            // layer as big, since those would time out next; then retry.
            const failed = layer ?? plan.layers.reduce((a, b) => (b.size > a.size ? b : a));
            const size = Math.ceil(failed.size / 2);
            if (n <= config.retries)
              await this.relayer({ layers: plan.layers.filter((l) => l.size >= failed.size), size });
            return { ok: false, retry: true, error: new ActionFailure('Push timed out (HTTP 524)', advice.message) };
          }
          const hopeless = layer !== null && layer.size > config.maxLayerSize;
          if (hopeless) {
            const why = `Not retrying: layer ${layer.index} is over max-layer-size (${formatBytes(config.maxLayerSize)}), so another upload would time out the same way.`;
            log.info(why);
            return {
              ok: false,
              retry: false,
              error: new ActionFailure('Push timed out (HTTP 524)', `${advice.message} ${why}`),
            };
          }
          return { ok: false, retry: true, error: new ActionFailure('Push timed out (HTTP 524)', advice.message) };
        }
        const minDelayMs =
          failure.kind === 'rate-limited' ? await this.registry.retryAfterMs().catch(() => null) : null;
        log.debug(`attempt ${n}: ${failure.kind} (${failure.retryable ? 'retryable' : 'final'}): ${failure.detail}`);
        return {
          ok: false,
          retry: failure.retryable,
          error: this.failureError(failure, plan),
          minDelayMs: minDelayMs ?? undefined,
        };
      }),
    );
    if (!run.outcome.ok) {
      const e = run.outcome.error;
      const title = e instanceof ActionFailure ? e.title : 'Push failed';
      const tail = run.attempts > 1 ? ` (after ${run.attempts} attempts)` : '';
      throw new ActionFailure(title, `${e.message}${tail}`, { attempts: run.attempts });
    }
    return { attempts: run.attempts, digest: run.outcome.value };
  }

  /** Asks the registry, not docker, what each tag now points to. */
  private async verify(plan: Plan, digest: string, attempts: number): Promise<string> {
    return this.log.group('Verify', async () => {
      const heads = await Promise.all(
        this.config.tags.map(async (tag) => ({
          tag,
          head: await this.registry.headManifest(plan.repositoryPath, tag),
        })),
      );
      for (const { tag, head } of heads) {
        if (!head)
          throw new ActionFailure(
            'Tag missing after push',
            `${this.config.registry} does not list ${plan.repositoryPath}:${tag} after the push.`,
            { attempts },
          );
        if (head.digest !== digest) {
          throw new ActionFailure(
            'Digest mismatch',
            `${plan.repositoryPath}:${tag} resolves to ${head.digest} on the registry, but the push reported ${digest}.`,
            { attempts },
          );
        }
        this.log.info(`verified: ${plan.repositoryPath}:${tag} -> ${head.digest} (${head.mediaType})`);
      }
      return digest;
    });
  }
}
