// chunk-size has one default and one set of bounds: the table of inputs shows "32MB" and the message says "from 1MB
// to 1GB", while the uploader owns the numbers. These tie the two together, so neither can drift from the other.
import { inputSpec } from '../../src/core/input-table.js';
import { readConfig } from '../../src/core/inputs.js';
import { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../../src/upload/blob.js';
import { parseSize } from '../../src/util/units.js';

const BASE: Record<string, string> = { 'app-slug': 'my-app', image: 'app/worker:dev', token: 's3cret', tag: '1.0.0' };
const chunkSizeOf = (value: string): number =>
  readConfig((name) => (name === 'chunk-size' ? value : (BASE[name] ?? '')), { ref: '' }).chunkSize;

describe('chunk-size: the table of inputs and the uploader agree', () => {
  test("the table's default is the uploader's DEFAULT_CHUNK_SIZE", () => {
    expect(inputSpec('chunk-size').default).toBe('32MB');
    expect(parseSize(inputSpec('chunk-size').default ?? '')).toBe(DEFAULT_CHUNK_SIZE);
    expect(chunkSizeOf('')).toBe(DEFAULT_CHUNK_SIZE);
  });

  test.each([
    ['1MB', MIN_CHUNK_SIZE],
    ['1GB', MAX_CHUNK_SIZE],
  ])("the message's bound %s is the uploader's bound, and is accepted", (text, bound) => {
    expect(parseSize(text)).toBe(bound);
    expect(chunkSizeOf(text)).toBe(bound);
  });

  test.each([String(MIN_CHUNK_SIZE - 1), String(MAX_CHUNK_SIZE + 1)])('%s bytes is refused', (text) => {
    expect(() => chunkSizeOf(text)).toThrow(/Input 'chunk-size' must be from 1MB to 1GB/);
  });
});
