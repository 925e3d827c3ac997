import { formatBytes, formatDuration, parseDuration, parseSize } from '../../src/util/units.js';

describe('parseSize', () => {
  test.each([
    ['1.5GB', 1_500_000_000],
    ['900MB', 900_000_000],
    ['1GiB', 1_073_741_824],
    ['750MiB', 786_432_000],
    ['1048576', 1_048_576],
    ['1', 1],
    ['512b', 512],
    ['512B', 512],
    ['2kb', 2_000],
    ['2KiB', 2_048],
    ['1TB', 1_000_000_000_000],
    ['1TiB', 1_099_511_627_776],
    ['1gb', 1_000_000_000],
    ['1Gb', 1_000_000_000],
    ['3k', 3_000],
    ['3m', 3_000_000],
    ['3g', 3_000_000_000],
    ['1.5 GB', 1_500_000_000],
    ['  900MB  ', 900_000_000],
    ['0.5KiB', 512],
    ['1.0000001', 1],
  ])('%j -> %d bytes', (input, expected) => {
    expect(parseSize(input)).toBe(expected);
  });

  test.each([
    [''],
    ['   '],
    ['GB'],
    ['abc'],
    ['-1GB'],
    ['+1GB'],
    ['0'],
    ['0GB'],
    ['0.0000000001GB'],
    ['0.4'],
    ['1.5.5GB'],
    ['.5GB'],
    ['1.GB'],
    ['1PB'],
    ['1GIGA'],
    ['1 G B'],
    ['1e9'],
    ['1,000'],
    ['1GB2'],
    ['0x10'],
  ])('%j -> null', (input) => {
    expect(parseSize(input)).toBeNull();
  });
});

describe('parseDuration', () => {
  test.each([
    ['500ms', 500],
    ['1s', 1_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['10', 10_000],
    ['0', 0],
    ['0ms', 0],
    ['1.5s', 1_500],
    ['0.25', 250],
    ['1.2345ms', 1],
    [' 30s ', 30_000],
    ['30 s', 30_000],
  ])('%j -> %d ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  test.each([[''], ['s'], ['ms'], ['-1s'], ['1d'], ['1S'], ['1MS'], ['10sec'], ['1m30s'], ['1e3ms'], ['ten'], ['1.s']])(
    '%j -> null',
    (input) => {
      expect(parseDuration(input)).toBeNull();
    },
  );
});

describe('formatBytes', () => {
  test.each([
    [0, '0 B'],
    [1, '1 B'],
    [999, '999 B'],
    [1_000, '1.0 kB'],
    [1_500, '1.5 kB'],
    [99_949, '99.9 kB'],
    [100_000, '100 kB'],
    [999_499, '999 kB'],
    [1_000_000, '1.0 MB'],
    [786_432_000, '786 MB'],
    [1_073_741_824, '1.1 GB'],
    [1_500_000_000, '1.5 GB'],
    [2_000_000_000_000, '2.0 TB'],
    [5e15, '5000 TB'],
  ])('%d -> %j', (input, expected) => {
    expect(formatBytes(input)).toBe(expected);
  });

  // Bug: the unit is chosen before rounding, so a value that rounds up to 1000 keeps the smaller unit.
  test.each([
    [999_600, '1.0 MB'],
    [999_999_999, '1.0 GB'],
  ])('%d -> %j (rounds into the next unit)', (input, expected) => {
    expect(formatBytes(input)).toBe(expected);
  });
});

describe('formatDuration', () => {
  test.each([
    [0, '0ms'],
    [1, '1ms'],
    [499.4, '499ms'],
    [999, '999ms'],
    [1_000, '1.0s'],
    [1_250, '1.3s'],
    [12_345, '12.3s'],
    [59_949, '59.9s'],
    [60_000, '1m00s'],
    [61_000, '1m01s'],
    [89_500, '1m30s'],
    [119_400, '1m59s'],
    [600_000, '10m00s'],
    [3_600_000, '60m00s'],
    [3_725_000, '62m05s'],
  ])('%d ms -> %j', (input, expected) => {
    expect(formatDuration(input)).toBe(expected);
  });

  // Bug: seconds are rounded after the minutes are taken, so 119.6 s prints as "1m60s".
  test.each([
    [119_600, '2m00s'],
    [179_800, '3m00s'],
  ])('%d ms -> %j (seconds never read 60)', (input, expected) => {
    expect(formatDuration(input)).toBe(expected);
  });
});
