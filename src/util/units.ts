// Human-sized quantities in inputs and logs: byte sizes (decimal and binary units) and durations.

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  k: 1e3,
  m: 1e6,
  g: 1e9,
};

/** `1.5GB`, `900MB`, `1GiB`, `750MiB`, `1048576` -> bytes; null when it is not a size. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return null;
  const unit = SIZE_UNITS[m[2].toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Math.round(parseFloat(m[1]) * unit);
  return bytes > 0 ? bytes : null;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `1s`, `2m`, `10` (seconds) -> milliseconds; null when it is not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*$/.exec(text);
  if (!m) return null;
  return Math.round(parseFloat(m[1]) * DURATION_UNITS[m[2]]);
}

export function formatBytes(bytes: number): string {
  if (bytes < 999.5) return `${Math.round(bytes)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let i = 0;
  // Round first, then move up while the rounded figure would read 1000 or more.
  const rounded = (v: number) => (v >= 99.95 ? Math.round(v) : Math.round(v * 10) / 10);
  while (rounded(value) >= 1000 && i < units.length - 1) {
    value /= 1000;
    i++;
  }
  const r = rounded(value);
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 999.5) return `${Math.round(ms)}ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  return `${Math.floor(total / 60)}m${String(total % 60).padStart(2, '0')}s`;
}
