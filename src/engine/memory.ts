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

// tfjs internals (frozen at 4.22.0): the kernel records of the running tf.profile.
interface ProfilingEngine {
  state: { activeProfile: { kernels: { totalBytesSnapshot: number }[] } };
}

export async function measurePeak<T>(fn: () => T | Promise<T>): Promise<PeakMemory<T>> {
  const baseBytes = tf.memory().numBytes;
  let result!: T;
  const info = await tf.profile(async () => {
    result = await fn();
    // tf.profile takes the peak as Math.max(...records), one record per kernel call, which overflows
    // the stack past ~10^5 calls (an MCE iteration on the UNet makes ~1.5 * 10^5): keep only the
    // record with the most bytes.
    const prof = (tf.engine() as unknown as ProfilingEngine).state.activeProfile;
    let top = prof.kernels[0];
    for (const k of prof.kernels) if (k.totalBytesSnapshot > top!.totalBytesSnapshot) top = k;
    prof.kernels = top ? [top] : [];
    return [] as never;
  });
  return { result, peakBytes: info.peakBytes, baseBytes };
}
