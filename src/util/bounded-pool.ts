// A bounded pool that can be stopped: each item's function started in order, at most `limit` running at once, and
// none started once `stopped()` says so. The run pushes its images through it (issue 20): after a failure or a
// cancel, the images not yet started are never started, and the ones running are stopped by their own signal.

export type PoolSlot<R> =
  | { readonly status: 'fulfilled'; readonly value: R }
  | { readonly status: 'rejected'; readonly reason: unknown }
  | { readonly status: 'not-started' };

/** Every item's slot, in the order of `items`; never rejects (a rejection is its item's slot). */
export async function boundedPool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  stopped: () => boolean = () => false,
): Promise<PoolSlot<R>[]> {
  const slots: PoolSlot<R>[] = items.map(() => ({ status: 'not-started' }));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stopped()) {
      const i = next++;
      try {
        slots[i] = { status: 'fulfilled', value: await fn(items[i], i) };
      } catch (reason) {
        slots[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return slots;
}
