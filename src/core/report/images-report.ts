// The words of a run of several images (issue 20), pure: which image a failure was, and which images were pushed
// (with every tag), stopped or never started, so a release manager knows what the registry holds without looking.
// Sources and references are the user's own input and names the action made; they are quoted as data.
import { logText } from '../../util/untrusted.js';

export type ImageState = 'pushed' | 'failed' | 'stopped' | 'not-started';

export interface ImageOutcome {
  /** The repository under the app (unique within the run: the image's name in every message). */
  readonly target: string;
  /** The source as the action read it. */
  readonly source: string;
  readonly state: ImageState;
  /** The references pushed (state pushed). */
  readonly refs: readonly string[];
}

/** How an image is named in a message: its repository, then its source. */
export function imageName(o: { readonly target: string; readonly source: string }): string {
  return `image '${o.target}' (${logText(o.source)})`;
}

/** The title of a failure of one image of several. */
export function imageFailureTitle(target: string, title: string): string {
  return `${target}: ${title}`;
}

/** A failure before anything was pushed (a source missing or invalid, a refusal): nothing of any image went. */
export function preflightFailureMessage(image: { target: string; source: string }, message: string): string {
  return (
    `${imageName(image)}: ${message}\n\nNothing was pushed: every image is read and checked before the first push, ` +
    'and one that fails stops them all.'
  );
}

/** What each image became after a failure (or a cancel) while pushing. */
export function pushFailureMessage(failed: ImageOutcome | null, message: string, all: readonly ImageOutcome[]): string {
  const of = (state: ImageState) => all.filter((o) => o.state === state);
  const lines = [failed ? `${imageName(failed)}: ${message}` : message, ''];
  const pushed = of('pushed');
  lines.push(pushed.length ? 'Already pushed, with every tag:' : 'No image was pushed completely.');
  for (const o of pushed) lines.push(`- ${imageName(o)}: ${o.refs.map((r) => logText(r)).join(', ')}`);
  const stopped = of('stopped');
  if (stopped.length)
    lines.push(
      `Stopped while pushing (some of their tags may have reached the registry): ${stopped.map(imageName).join(', ')}`,
    );
  const notStarted = of('not-started');
  if (notStarted.length) lines.push(`Not pushed (never started): ${notStarted.map(imageName).join(', ')}`);
  return lines.join('\n');
}
