// Memory accounting: the peak bytes of live tensors while a function runs (tf.profile tracks
// every allocation). The wasm heap itself never shrinks, so process RSS is not a useful measure.
import { tf } from './tf.js';

export interface PeakMemory<T> {
  result: T;
  /** Peak bytes of tensors alive at once during the call, counting those alive before it. */
  peakBytes: number;
  /** Bytes of tensors alive before the call. */
  baseBytes: number;
}

export async function measurePeak<T>(fn: () => T | Promise<T>): Promise<PeakMemory<T>> {
  const baseBytes = tf.memory().numBytes;
  let result!: T;
  const info = await tf.profile(async () => {
    result = await fn();
    return [] as never;
  });
  return { result, peakBytes: info.peakBytes, baseBytes };
}
