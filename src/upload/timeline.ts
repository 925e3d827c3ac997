// A debug timeline of the chunked uploads (issue 21): with RP_TIMELINE=FILE set, each step of a blob's way (bytes
// received from the engine, written, each PATCH's start, the end of its body and its answer, the final PUT) is
// appended to FILE as one JSON line, timed in ms since the process started, so that where the time goes can be read
// from a real run. Only what the action itself knows goes in (digests it checked, offsets, sizes, statuses): no URL,
// no header, no text of the registry's or the engine's. Unset (the default), nothing is written and nothing is kept.
import { closeSync, openSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export type TimelineFields = Readonly<Record<string, number | string | boolean>>;

let fd: number | null | undefined;

function output(): number | null {
  if (fd !== undefined) return fd;
  const file = process.env.RP_TIMELINE;
  try {
    fd = file ? openSync(file, 'a') : null;
  } catch {
    fd = null; // a debug aid never fails the run
  }
  return fd;
}

/** One step: `event` and its fields, stamped with the time since the process started. */
export function mark(event: string, fields: TimelineFields = {}): void {
  const out = output();
  if (out === null) return;
  try {
    writeSync(
      out,
      `${JSON.stringify({ t: Math.round(performance.now() * 10) / 10, pid: process.pid, event, ...fields })}\n`,
    );
  } catch {
    // a full disk or a closed file: the timeline is lost, the run is not
  }
}

/** Closes the file and reads RP_TIMELINE again at the next mark (tests point it at another file). */
export function resetTimeline(): void {
  if (typeof fd === 'number') closeSync(fd);
  fd = undefined;
}
