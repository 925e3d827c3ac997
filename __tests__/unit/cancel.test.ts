// The cancel handler: a signal aborts the run once, maps to 128 + its number, and is removed after the run.
import { onCancel } from '../../src/adapters/cancel.js';
import { sleep } from '../../src/util/timers.js';

describe('onCancel', () => {
  test.each<[NodeJS.Signals, number]>([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ])('%s aborts the signal and means exit %d', (sig, code) => {
    const before = process.listenerCount(sig);
    const scope = onCancel();
    expect(scope.signal.aborted).toBe(false);
    expect(scope.exitCode()).toBeNull();
    process.emit(sig, sig);
    expect(scope.signal.aborted).toBe(true);
    expect(scope.exitCode()).toBe(code);
    scope.dispose();
    expect(process.listenerCount(sig)).toBe(before);
  });

  test('a second signal while cleaning up changes nothing', () => {
    const scope = onCancel();
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGTERM', 'SIGTERM');
    expect(scope.exitCode()).toBe(130);
    scope.dispose();
  });
});

describe('sleep', () => {
  test('resolves after the time', async () => {
    const t = Date.now();
    await sleep(30);
    expect(Date.now() - t).toBeGreaterThanOrEqual(25);
  });

  test('rejects at once when aborted, and when already aborted', async () => {
    const ac = new AbortController();
    const t = Date.now();
    const p = sleep(60_000, ac.signal);
    setTimeout(() => ac.abort(), 10);
    await expect(p).rejects.toThrow('aborted');
    expect(Date.now() - t).toBeLessThan(5000);
    await expect(sleep(10, ac.signal)).rejects.toThrow('aborted');
  });
});
