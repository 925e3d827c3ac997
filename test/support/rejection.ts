// The error a promise rejects with, checked to be of the expected class: a test that expects a failure fails
// when the promise resolves instead.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function rejection<T extends Error>(p: Promise<unknown>, type: new (...args: any[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return e as T;
  }
  throw new Error(`expected a ${type.name}`);
}
