// The one back-pressure helper: a full buffer waits for 'drain'; an error or a close under the writer rejects
// with the stream's error or the caller's "closed" text, never hangs.
import { PassThrough, Writable } from 'node:stream';
import { drained, endStream, writeBlocked, writeChunk } from '../../src/util/stream-write.js';

const closed = () => new Error('sink closed early');

function slowSink(delayMs = 5): { sink: Writable; got: Buffer[] } {
  const got: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 4,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      setTimeout(cb, delayMs);
    },
  });
  return { sink, got };
}

test('waits for drain and keeps the order', async () => {
  const { sink, got } = slowSink();
  for (let i = 0; i < 5; i++) await writeChunk(sink, Buffer.from(`chunk${i}`), closed);
  await endStream(sink, closed);
  expect(Buffer.concat(got).toString()).toBe('chunk0chunk1chunk2chunk3chunk4');
});

test('a stream destroyed with an error rejects the next write with that error', async () => {
  const { sink } = slowSink();
  sink.on('error', () => {});
  sink.destroy(new Error('EPIPE'));
  await expect(writeChunk(sink, Buffer.from('x'), closed)).rejects.toThrow('EPIPE');
  expect(writeBlocked(sink, closed)?.message).toBe('EPIPE');
});

test('a stream destroyed without an error rejects with the closed text', async () => {
  const { sink } = slowSink();
  sink.destroy();
  await expect(writeChunk(sink, Buffer.from('x'), closed)).rejects.toThrow('sink closed early');
  await expect(endStream(sink, closed)).rejects.toThrow('sink closed early');
});

test('a close while waiting for drain rejects instead of hanging', async () => {
  const sink = new PassThrough({ highWaterMark: 1 });
  const pending = writeChunk(sink, Buffer.from('more than one byte'), closed);
  setTimeout(() => sink.destroy(), 5);
  await expect(pending).rejects.toThrow('sink closed early');
});

test('an error while waiting for drain rejects with it', async () => {
  const sink = new PassThrough({ highWaterMark: 1 });
  sink.on('error', () => {});
  const pending = drained(sink, closed);
  setTimeout(() => sink.destroy(new Error('boom')), 5);
  await expect(pending).rejects.toThrow('boom');
});

test('endStream resolves at once on a finished stream and rejects on a write failure at the end', async () => {
  const { sink } = slowSink(0);
  await endStream(sink);
  await endStream(sink);
  const failing = new Writable({
    write(_c, _e, cb) {
      cb();
    },
    final(cb) {
      cb(new Error('flush failed'));
    },
  });
  failing.on('error', () => {});
  await writeChunk(failing, 'x');
  await expect(endStream(failing, closed)).rejects.toThrow('flush failed');
});
