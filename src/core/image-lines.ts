// The `image` input as a list (issue 20): one image a line, `TARGET=SOURCE` naming its repository under the app, as
// build-push-action's `build-contexts` lines name theirs. Pure: text in, lines or the reason out. A line is
// TARGET=SOURCE only when what stands before its first '=' is a repository name (an OCI path with '=' in it stays a
// source); blank lines and lines starting with '#' are skipped, so a YAML block can be commented.
import { isValidRepositoryPath } from '../image/reference.js';

/** More images than this in one step is a mistake rather than a release (and would hold the registry too long). */
export const MAX_IMAGES = 32;

export interface ImageLine {
  /** 1-based line of the input, for messages. */
  readonly line: number;
  /** The repository under the app the line names, null when it names none (the source's default then). */
  readonly target: string | null;
  /** The source as written (parseSourceRef reads it). */
  readonly source: string;
}

export function parseImageLines(text: string): readonly ImageLine[] | { readonly error: string } {
  const lines: ImageLine[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const t = raw.trim();
    if (!t || t.startsWith('#')) return;
    const eq = t.indexOf('=');
    const left = eq > 0 ? t.slice(0, eq).trim() : '';
    if (left && isValidRepositoryPath(left)) lines.push({ line: i + 1, target: left, source: t.slice(eq + 1).trim() });
    else lines.push({ line: i + 1, target: null, source: t });
  });
  const empty = lines.find((l) => !l.source);
  if (empty) return { error: `line ${empty.line} names the repository '${empty.target}' but no image after '='` };
  if (lines.length > MAX_IMAGES) return { error: `${lines.length} images; one step pushes at most ${MAX_IMAGES}` };
  return lines;
}

/** The first repository two images would both be pushed to, with their lines; null when every target differs. */
export function duplicateTarget(
  targets: readonly { readonly line: number; readonly target: string }[],
): { readonly target: string; readonly lines: readonly [number, number] } | null {
  const seen = new Map<string, number>();
  for (const { line, target } of targets) {
    const first = seen.get(target);
    if (first !== undefined) return { target, lines: [first, line] };
    seen.set(target, line);
  }
  return null;
}
