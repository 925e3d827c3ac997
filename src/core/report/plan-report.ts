// The plan as a person reads it in the log: engine, image, layers, tags, where it goes, how. Pure.
import type { Config } from '../inputs.js';
import type { Plan } from '../plan.js';
import type { EngineFacts } from '../../engine/docker.js';
import { formatBytes } from '../../util/units.js';

export function planLines(config: Config, plan: Plan, engine: EngineFacts): string[] {
  // History that does not match the layers (ko, jib, nix images) leaves every size at 0: say unknown, not 0 B.
  const known = plan.layers.some((l) => l.instruction !== null);
  return [
    `engine: Docker ${engine.serverVersion} (API ${engine.apiVersion}, ${engine.containerdStore ? 'containerd' : 'classic'} image store)`,
    `image: ${plan.source}: ${plan.layers.length} layers, ${known ? `${formatBytes(plan.totalSize)} uncompressed` : 'sizes unknown (the image history does not match its layers)'}`,
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
