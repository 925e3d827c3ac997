// The core: Config -> engine and image facts -> plan -> tag, push with retries -> verify -> result.
// No @actions/core here: the GitHub adapter (main.ts) and the CLI pass a Logger in.
import { adviceContext, buildPlan, refsFor, TOMBSTONE_WARNING, type Plan } from './plan.js';
import { failureAdvice, timeoutAdvice, type Advice, type AdviceContext } from './advisory.js';
import { apiAtLeast, choosePushStrategy, INDEX_MEDIA_TYPES, platformString, type EngineManifest } from './attestations.js';
import { createRunDockerConfig, removeRunDockerConfig } from './docker-config.js';
import { DockerError, type CommandResult, type Docker, type EngineFacts, type ImageInspect } from './docker.js';
import { classifyFailure, type Failure } from './failure.js';
import type { Config } from './inputs.js';
import { layerFacts } from './layers.js';
import type { Logger } from './logger.js';
import { PushProgress } from './progress.js';
import { parsePushLine, pushedDigest, type PushEvent } from './push-output.js';
import { pinnedRef } from './reference.js';
import type { ManifestHead } from './registry-client.js';
import { DEFAULT_MAX_DELAY_MS, withRetries, type AttemptOutcome } from './retry.js';
import { formatBytes, formatDuration } from './units.js';

/** The docker calls the core makes (docker.ts implements them; unit tests may stub them). */
export type DockerApi = Pick<Docker, 'login' | 'inspectImage' | 'history' | 'engineFacts' | 'tag' | 'push' | 'engineApiGet' | 'importEmpty' | 'removeImage'>;

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
}

/** A failure the user can act on; `input` names the input at fault when there is one. */
export class ActionFailure extends Error {
  constructor(readonly title: string, message: string, readonly opts: { input?: string; attempts?: number } = {}) {
    super(message);
    this.name = 'ActionFailure';
  }
}

export async function runAction(config: Config, deps: CoreDeps): Promise<RunResult> {
  const started = deps.now();
  const dockerConfig = createRunDockerConfig(deps.env);
  deps.onConfigDir?.(dockerConfig.dir);
  try {
    return await new Run(config, deps, deps.docker(dockerConfig.env), started).execute();
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

  constructor(private readonly config: Config, private readonly deps: CoreDeps, private readonly docker: DockerApi, private readonly started: number) {
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
    const tagged = config.dryRun ? Promise.resolve([]) : Promise.all(refsFor(config).map((ref) => this.docker.tag(source, ref)));
    tagged.catch(() => undefined); // a failure here is reported by the facts (no image) or by the await below
    const [engine, inspect, history, login] = await Promise.allSettled([
      this.docker.engineFacts(),
      this.docker.inspectImage(source),
      this.docker.history(source),
      // What the tags point to now is asked right after login, so it costs no extra round trip on the path.
      this.login().then(() => this.currentDigests()),
    ]);
    this.failOnFacts(source, engine, inspect, history);
    const facts = (engine as PromiseFulfilledResult<EngineFacts>).value;
    const image = (inspect as PromiseFulfilledResult<ImageInspect>).value;
    const layers = layerFacts(image.RootFS.Layers ?? [], (history as PromiseFulfilledResult<{ size: number; createdBy: string }[]>).value);
    const plan = buildPlan(config, source, layers, choosePushStrategy({
      containerdStore: facts.containerdStore,
      apiVersion: facts.apiVersion,
      descriptorMediaType: image.Descriptor?.mediaType ?? null,
      manifests: await this.engineManifests(facts, image),
      platform: platformString({ os: image.Os, architecture: image.Architecture, variant: image.Variant }),
    }, config.attestations));
    for (const n of plan.notices) log.notice(n);
    for (const w of plan.warnings) log.warning(w);
    this.logPlan(plan, facts);
    for (const w of plan.preflight) log.warning(w);
    if (login.status === 'rejected') throw login.reason;
    const replaced = login.value;
    this.reportReplaced(replaced);
    if (plan.strategy.kind === 'refuse') throw new ActionFailure(plan.strategy.title, plan.strategy.message, { input: 'attestations', attempts: 0 });
    const platform = plan.strategy.kind === 'platform' ? plan.strategy.platform : null;
    const base = { refs: plan.refs, totalSize: plan.totalSize, layerCount: layers.length, platform, plan, replaced };
    if (config.dryRun) {
      log.info(`dry-run: credentials accepted by ${config.registry}; nothing was tagged or pushed.`);
      return { ...base, digest: null, pinnedRef: null, attempts: 0, dryRun: true, durationMs: this.deps.now() - this.started };
    }
    await tagged;
    let attempts = 0;
    let digest: string | null = null;
    for (const ref of plan.refs) {
      const pushed = await this.pushWithRetries(ref, plan, platform);
      attempts = Math.max(attempts, pushed.attempts);
      digest ??= pushed.digest;
    }
    const verified = await this.verify(plan, digest as string, attempts);
    return { ...base, digest: verified, pinnedRef: pinnedRef(plan.repository, verified), attempts, dryRun: false, durationMs: this.deps.now() - this.started };
  }

  private async makeTombstone(): Promise<string> {
    const ref = `replicated-push-tombstone:${Date.now().toString(36)}`;
    await this.docker.importEmpty(ref, 'com.replicated-push.tombstone=true');
    return ref;
  }

  /** What the tags point to now: shown for every push, and a tombstone refuses a tag that does not exist. */
  private async currentDigests(): Promise<{ tag: string; digest: string | null }[]> {
    return Promise.all(this.config.tags.map(async (tag) => ({
      tag,
      digest: (await this.registry.headManifest(this.config.repositoryPath, tag).catch(() => null))?.digest ?? null,
    })));
  }

  /** Says which tags move; a tombstone refuses a tag that does not exist, since that would create it for good. */
  private reportReplaced(current: readonly { tag: string; digest: string | null }[]): void {
    const { config, log } = this;
    for (const c of current) if (c.digest) log.info(`${config.repositoryPath}:${c.tag} now points to ${c.digest}; it will be replaced`);
    if (config.mode !== 'tombstone') return;
    log.warning(TOMBSTONE_WARNING);
    const missing = current.filter((c) => !c.digest).map((c) => c.tag);
    if (missing.length) {
      throw new ActionFailure('Tombstone of a tag that does not exist', `Input 'tag': ${missing.join(', ')} does not exist in ` +
        `${config.registry}/${config.repositoryPath}. A tombstone only replaces an existing tag; pushing it would create a ` +
        'new tag that can never be deleted.', { input: 'tag', attempts: 0 });
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
        return { ok: false, retry: failure.retryable && failure.kind !== 'unknown', error: this.failureError(failure, null) };
      }
    });
    if (!result.outcome.ok) throw result.outcome.error;
  }

  private failOnFacts(source: string, ...settled: PromiseSettledResult<unknown>[]): void {
    const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => classifyFailure(outputOf(s.reason)));
    const unreachable = failures.find((f) => f.kind === 'engine-unreachable');
    if (unreachable) {
      const host = this.deps.env.DOCKER_HOST ? ` at DOCKER_HOST=${this.deps.env.DOCKER_HOST}` : '';
      throw new ActionFailure('Docker engine unreachable', `Could not reach the Docker engine${host}: ${unreachable.detail}. ` +
        'Check that the engine is running and that DOCKER_HOST / the docker context point at it.', { attempts: 0 });
    }
    if (failures.some((f) => f.kind === 'image-missing')) {
      throw new ActionFailure('Image not found', `Input 'image': the engine has no image '${source}'. ` +
        'Build or load it in an earlier step (the name must match, including the tag; the default tag is latest).', { input: 'image', attempts: 0 });
    }
    if (failures.length > 0) throw new ActionFailure('Could not read the image', failures[0].detail, { input: 'image', attempts: 0 });
  }

  private async engineManifests(facts: EngineFacts, image: ImageInspect): Promise<EngineManifest[] | null> {
    const index = image.Descriptor && INDEX_MEDIA_TYPES.has(image.Descriptor.mediaType);
    if (!facts.containerdStore || !index || !apiAtLeast(facts.apiVersion, '1.48')) return null;
    try {
      const json = (await this.docker.engineApiGet(`/v${facts.apiVersion}/images/${encodeURIComponent(image.Id)}/json?manifests=1`)) as { Manifests?: EngineManifest[] };
      return json.Manifests ?? null;
    } catch (e) {
      this.log.debug(`could not list the image's manifests: ${(e as Error).message}`);
      return null;
    }
  }

  private logPlan(plan: Plan, facts: EngineFacts): void {
    const { config, log } = this;
    log.info(`engine: Docker ${facts.serverVersion} (API ${facts.apiVersion}, ${facts.containerdStore ? 'containerd' : 'classic'} image store)`);
    log.info(`image: ${plan.source}: ${plan.layers.length} layers, ${formatBytes(plan.totalSize)} uncompressed`);
    for (const l of plan.layers) log.info(`  layer ${l.index}: ${formatBytes(l.size).padStart(8)}  ${l.instruction ?? '(instruction unknown)'}`);
    log.info(`tags (${config.tagSource === 'git-tag' ? 'from the git tag' : 'from input tag'}): ${config.tags.join(', ')}`);
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
        this.log.info(`${what}: attempt ${attempt} failed (${error instanceof ActionFailure ? error.title : error.message}); retrying in ${formatDuration(delay)}`);
      },
    };
  }

  private ctx(plan?: Plan): AdviceContext {
    return adviceContext(this.config, plan ?? { repository: `${this.config.registry}/${this.config.repositoryPath}`, layers: [] });
  }

  private failureError(failure: Failure, plan: Plan | null, advice?: Advice): ActionFailure {
    const a = advice ?? failureAdvice(failure, this.ctx(plan ?? undefined));
    return new ActionFailure(a.title, a.message);
  }

  private async pushOnce(ref: string, plan: Plan, platform: string | null): Promise<{ result: CommandResult; events: PushEvent[]; progress: PushProgress }> {
    const progress = new PushProgress(plan.layers, this.deps.now());
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

  private async pushWithRetries(ref: string, plan: Plan, platform: string | null): Promise<{ attempts: number; digest: string }> {
    const { config, log } = this;
    const run = await log.group(`Push ${ref}`, () => withRetries(this.policy, this.retryHooks(`push ${ref}`), async (n): Promise<AttemptOutcome<string>> => {
      const { result, events, progress } = await this.pushOnce(ref, plan, platform);
      if (result.code === 0) {
        const pushed = pushedDigest(events);
        if (pushed) return { ok: true, value: pushed.digest };
        return { ok: false, retry: false, error: new ActionFailure('No digest', `docker push ${ref} succeeded but printed no digest.`) };
      }
      const failure = classifyFailure(`${result.stdout}\n${result.stderr}`);
      if (failure.kind === 'timeout-524') {
        // The classic store names layers by diff ID; the containerd store by compressed digest, which only
        // the manifest maps to a layer. With one layer over the limit, that layer is the one to name.
        const exact = progress.suspect();
        const layer = exact ?? (plan.oversized.length === 1 ? plan.oversized[0] : null);
        const advice = timeoutAdvice(layer, plan.oversized, this.ctx(plan), false, exact ? null : failure.blobDigest);
        log.warning(advice);
        const hopeless = layer !== null && layer.size > config.maxLayerSize && config.layerSplit !== 'auto';
        if (hopeless) {
          const why = `Not retrying: layer ${layer.index} is over max-layer-size (${formatBytes(config.maxLayerSize)}), so another upload would time out the same way.`;
          log.info(why);
          return { ok: false, retry: false, error: new ActionFailure('Push timed out (HTTP 524)', `${advice.message} ${why}`) };
        }
        return { ok: false, retry: true, error: new ActionFailure('Push timed out (HTTP 524)', advice.message) };
      }
      const minDelayMs = failure.kind === 'rate-limited' ? await this.registry.retryAfterMs().catch(() => null) : null;
      log.debug(`attempt ${n}: ${failure.kind} (${failure.retryable ? 'retryable' : 'final'}): ${failure.detail}`);
      return { ok: false, retry: failure.retryable, error: this.failureError(failure, plan), minDelayMs: minDelayMs ?? undefined };
    }));
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
      const heads = await Promise.all(this.config.tags.map(async (tag) => ({ tag, head: await this.registry.headManifest(plan.repositoryPath, tag) })));
      for (const { tag, head } of heads) {
        if (!head) throw new ActionFailure('Tag missing after push', `${this.config.registry} does not list ${plan.repositoryPath}:${tag} after the push.`, { attempts });
        if (head.digest !== digest) {
          throw new ActionFailure('Digest mismatch', `${plan.repositoryPath}:${tag} resolves to ${head.digest} on the registry, but the push reported ${digest}.`, { attempts });
        }
        this.log.info(`verified: ${plan.repositoryPath}:${tag} -> ${head.digest} (${head.mediaType})`);
      }
      return digest;
    });
  }
}
