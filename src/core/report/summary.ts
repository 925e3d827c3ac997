// The job summary: a Markdown table a release manager can read after the run. Pure. Every string it quotes goes
// through untrusted.ts (a code span, or text with its Markdown escaped): digests and tags come from the registry,
// instructions from the image, and a failure's message quotes docker's and the registry's words.
import type { RunResult } from '../run.js';
import { leftOutText } from '../stages/source.js';
import { formatBytes, formatDuration } from '../../util/units.js';
import { mdCell, mdCode, mdText } from '../../util/untrusted.js';

/** A failure message is long prose (an advisory naming several layers): room for all of it. */
const MESSAGE_MAX = 8000;

export function summaryMarkdown(result: RunResult): string {
  const head = result.dryRun ? '### replicated-push: dry run (nothing pushed)' : '### replicated-push: pushed';
  const rows = result.refs.map(
    (ref) =>
      `| ${mdCell(ref)} | ${result.digest ? mdCell(result.digest) : '–'} | ${formatBytes(result.totalSize)} | ${result.layerCount} | ${result.attempts} | ${formatDuration(result.durationMs)} |`,
  );
  const lines = [
    head,
    '',
    '| ref | digest | size | layers | attempts | duration |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ];
  if (result.pinnedRef) lines.push('', `Pinned: ${mdCode(result.pinnedRef)}`);
  if (result.plan.proxyRefs.length)
    lines.push(
      '',
      `Customers pull through the Replicated proxy: ${result.plan.proxyRefs.map((r) => mdCode(r)).join(', ')}`,
    );
  for (const r of result.replaced.filter((x) => x.digest))
    lines.push('', `Replaced: ${mdCode(r.tag)} pointed to ${mdCode(r.digest)} before this run.`);
  const platforms = Object.entries(result.platforms);
  if (platforms.length) {
    lines.push('', `The index names ${platforms.length} platform manifest(s):`, '');
    lines.push('| platform | manifest digest |', '| --- | --- |');
    for (const [platform, digest] of platforms) lines.push(`| ${mdCell(platform || 'unknown')} | ${mdCell(digest)} |`);
  }
  if (result.indexChanged)
    lines.push(
      '',
      `The source index ${mdCode(result.indexChanged.from)} was pushed as ${mdCode(result.indexChanged.to)}, ` +
        `without ${mdText(leftOutText(result.indexChanged))}; every platform manifest in it is the source's own.`,
    );
  if (result.platform)
    lines.push(
      '',
      `Pushed the ${mdCode(result.platform)} manifest alone; provenance attestations were stripped (\`attestations: strip\`).`,
    );
  if (result.split) {
    lines.push(
      '',
      `layer-split: auto re-layered the image: ${result.split.layersBefore} layers became ${result.split.layersAfter}.`,
      '',
    );
    for (const l of result.split.lines) lines.push(`- ${mdText(l)}`);
  }
  if (result.plan.oversized.length) {
    lines.push(
      '',
      `Layers over max-layer-size: ${result.plan.oversized.map((l) => `${l.index} (${formatBytes(l.size)})`).join(', ')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function failureSummaryMarkdown(title: string, message: string, attempts: number): string {
  return `### replicated-push: failed\n\n**${mdText(title)}** (attempts: ${attempts})\n\n${mdText(message, MESSAGE_MAX)}\n`;
}
