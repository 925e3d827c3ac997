// What a run found: one RunResult per image, from which the outputs, the job summary and the log are made.
import type { Plan } from './plan.js';
import type { TagBefore } from './stages/login.js';
import type { SplitSummary } from './stages/push-state.js';
import type { IndexChange } from './stages/source.js';

/** What one image became: the outputs, the summary and the log are made from it. */
export interface RunResult {
  /** The source as written (sourceName), '' for a tombstone. */
  readonly source: string;
  /** The repository under the app. */
  readonly target: string;
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
  /** The platform manifests of the pushed index, platform -> digest; empty when one image manifest was pushed. */
  readonly platforms: Readonly<Record<string, string>>;
  /** The source's index and the one pushed, when they differ (attestations stripped, platforms left out). */
  readonly indexChanged: IndexChange | null;
  readonly plan: Plan;
  /** What each tag pointed to before this run (digest null: the tag was new, or error set: unknown). */
  readonly replaced: readonly TagBefore[];
  /** Set when layer-split: auto re-layered the image. */
  readonly split: SplitSummary | null;
}

/** A run of one image or several (in input order). */
export interface RunResults {
  readonly images: readonly RunResult[];
  readonly durationMs: number;
}
