// The job summary: a Markdown table a release manager can read after the run. Pure. Every string it quotes goes
// through untrusted.ts (a code span, or text with its Markdown escaped): digests and tags come from the registry,
// instructions from the image, and a failure's message quotes docker's and the registry's words.
import type { RunResult, RunResults } from '../result.js';
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
    ...notes(result),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Several images (issue 20): a row per image (its references on separate lines of the cell), then each image's own
 * notes under its name. One image: summaryMarkdown, as before.
 */
export function imagesSummaryMarkdown(results: RunResults): string {
  const { images } = results;
  if (images.length === 1) return summaryMarkdown(images[0]);
  const dryRun = images.some((r) => r.dryRun);
  const head = dryRun
    ? `### replicated-push: dry run of ${images.length} images (nothing pushed)`
    : `### replicated-push: pushed ${images.length} images`;
  const lines = [
    head,
    '',
    '| image | source | refs | digest | size | layers | attempts | duration |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...images.map(
      (r) =>
        `| ${mdCell(r.target)} | ${mdCell(r.source)} | ${r.refs.map((ref) => mdCell(ref)).join('<br>')} | ` +
        `${r.digest ? mdCell(r.digest) : '–'} | ${formatBytes(r.totalSize)} | ${r.layerCount} | ${r.attempts} | ` +
        `${formatDuration(r.durationMs)} |`,
    ),
    '',
    `${images.length} images in ${formatDuration(results.durationMs)}.`,
  ];
  for (const r of images) {
    const more = notes(r);
    if (more.length) lines.push('', `#### ${mdText(r.target)}`, ...more);
  }
  return `${lines.join('\n')}\n`;
}

/** What the table does not say about one image: pinned, proxy, replaced tags, platforms, attestations, split. */
function notes(result: RunResult): string[] {
  const lines: string[] = [];
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
  return lines;
}

export function failureSummaryMarkdown(title: string, message: string, attempts: number): string {
  return `### replicated-push: failed\n\n**${mdText(title)}** (attempts: ${attempts})\n\n${mdText(message, MESSAGE_MAX)}\n`;
}
