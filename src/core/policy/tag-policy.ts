// What the tags' state before the push means for the run. Pure.
import type { Config } from '../inputs.js';
import type { TagBefore } from '../stages/login.js';

export interface Refusal {
  readonly title: string;
  readonly message: string;
  readonly input: string;
}

/**
 * A tombstone replaces tags that exist; it never creates one, so a tag that is new, or whose state the registry
 * could not tell (an error other than 404), stops the run before anything is pushed.
 */
export function tombstoneRefusal(
  config: Pick<Config, 'mode' | 'registry' | 'repositoryPath'>,
  before: readonly TagBefore[],
): Refusal | null {
  if (config.mode !== 'tombstone') return null;
  const where = `${config.registry}/${config.repositoryPath}`;
  const unknown = before.filter((b) => b.error !== undefined);
  if (unknown.length) {
    return {
      title: 'Could not tell whether the tag exists',
      message:
        `Input 'tag': ${unknown.map((b) => `${b.tag} (${b.error})`).join(', ')}. A tombstone only replaces an existing ` +
        `tag in ${where}, so nothing was pushed; try again when the registry answers.`,
      input: 'tag',
    };
  }
  const missing = before.filter((b) => b.digest === null).map((b) => b.tag);
  if (!missing.length) return null;
  return {
    title: 'Tombstone of a tag that does not exist',
    message:
      `Input 'tag': ${missing.join(', ')} does not exist in ${where}. A tombstone only replaces an existing tag; ` +
      'pushing it would create a new tag, a release artifact nobody asked for.',
    input: 'tag',
  };
}

/** One log line per tag: what moves, what is new, what could not be read. */
export function tagsBeforeLines(repositoryPath: string, before: readonly TagBefore[]): string[] {
  return before.map((b) =>
    b.error !== undefined
      ? `${repositoryPath}:${b.tag}: could not read what it points to now (${b.error})`
      : b.digest
        ? `${repositoryPath}:${b.tag} now points to ${b.digest}; it will be replaced`
        : `${repositoryPath}:${b.tag} is new`,
  );
}
