// The plan as a person reads it in the log: engine, image, layers, tags, where it goes, how. Pure.
import type { Config } from '../inputs.js';
import type { Plan } from '../plan.js';
import type { EngineFacts } from '../../engine/docker.js';
import type { SourceRead } from '../stages/source.js';
import { formatBytes } from '../../util/units.js';
import { logText } from '../../util/untrusted.js';

/** What the image is: the engine's layer sizes are uncompressed, a source's are the manifests' (compressed). */
function imageLines(plan: Plan, engine: EngineFacts | null, source: SourceRead | null): string[] {
  const engineLine = engine
    ? [
        `engine: Docker ${engine.serverVersion} (API ${engine.apiVersion}, ${engine.containerdStore ? 'containerd' : 'classic'} image store)`,
      ]
    : [];
  if (!source) {
    // History that does not match the layers (ko, jib, nix images) leaves every size at 0: say unknown, not 0 B.
    const known = plan.layers.some((l) => l.instruction !== null);
    const sizes = known
      ? `${formatBytes(plan.totalSize)} uncompressed`
      : 'sizes unknown (the image history does not match its layers)';
    return [...engineLine, `image: ${plan.source}: ${plan.layers.length} layers, ${sizes}`];
  }
  return [
    ...engineLine,
    ...source.lines,
    ...source.platforms.map(
      (p) =>
        `  platform ${logText(p.platform || 'unknown', 64)}: ${p.digest}, ${p.layers} layers, ${formatBytes(p.size)}`,
    ),
    `image: ${logText(plan.source, 300)}: ${plan.layers.length} layers, ${formatBytes(plan.totalSize)} compressed`,
  ];
}

export function planLines(
  config: Config,
  plan: Plan,
  engine: EngineFacts | null,
  source: SourceRead | null = null,
): string[] {
  const known = source !== null || plan.layers.some((l) => l.instruction !== null);
  return [
    ...imageLines(plan, engine, source),
    ...plan.layers.map(
      (l) =>
        `  layer ${l.index}: ${(known ? formatBytes(l.size) : '?').padStart(8)}  ${l.instruction ?? '(instruction unknown)'}`,
    ),
    `tags (${config.tagSource === 'git-tag' ? 'from the git tag' : 'from input tag'}): ${config.tags.join(', ')}`,
    ...plan.refs.map((ref) => `push: ${ref}`),
    ...plan.proxyRefs.map((ref) => `customers pull: ${ref}`),
    `method: ${plan.strategy.kind === 'refuse' ? 'refused' : plan.strategy.reason}`,
    `token-type: ${config.tokenType}, username: ${config.username}`,
  ];
}
