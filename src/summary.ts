// The job summary: a Markdown table a release manager can read after the run. Pure.
import type { RunResult } from './run.js';
import { formatBytes, formatDuration } from './units.js';

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function summaryMarkdown(result: RunResult): string {
  const head = result.dryRun ? '### replicated-push: dry run (nothing pushed)' : '### replicated-push: pushed';
  const rows = result.refs.map(
    (ref) =>
      `| \`${cell(ref)}\` | ${result.digest ? `\`${result.digest}\`` : '–'} | ${formatBytes(result.totalSize)} | ${result.layerCount} | ${result.attempts} | ${formatDuration(result.durationMs)} |`,
  );
  const lines = [
    head,
    '',
    '| ref | digest | size | layers | attempts | duration |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ];
  if (result.pinnedRef) lines.push('', `Pinned: \`${result.pinnedRef}\``);
  if (result.plan.proxyRefs.length)
    lines.push(
      '',
      `Customers pull through the Replicated proxy: ${result.plan.proxyRefs.map((r) => `\`${r}\``).join(', ')}`,
    );
  for (const r of result.replaced.filter((x) => x.digest))
    lines.push('', `Replaced: \`${r.tag}\` pointed to \`${r.digest}\` before this run.`);
  if (result.platform)
    lines.push(
      '',
      `Pushed the \`${result.platform}\` manifest alone; provenance attestations were stripped (\`attestations: strip\`).`,
    );
  if (result.split) {
    lines.push(
      '',
      `layer-split: auto re-layered the image: ${result.split.layersBefore} layers became ${result.split.layersAfter}.`,
      '',
    );
    for (const l of result.split.lines) lines.push(`- ${l}`);
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
  return `### replicated-push: failed\n\n**${cell(title)}** (attempts: ${attempts})\n\n${message}\n`;
}
