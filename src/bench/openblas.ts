// OpenBLAS called directly through the native addon (src/engine/native.ts), bypassing tfjs: the
// ceiling for our matmul kernel. Returns a row-major C = A @ B function, or why it is unavailable.
// The caller checks the product against tf.matMul before timing it.
import { nativeAddon, nativeKernelConfigs } from '../engine/native.js';

export type Sgemm = (m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array) => void;

export function openblasSgemm(): Sgemm | string {
  const addon = nativeAddon();
  if (!addon) {
    const why = nativeKernelConfigs();
    return typeof why === 'string' ? why : 'the native addon is not loaded';
  }
  // cblas_sgemm, row-major: C = 1 * A B + 0 * C.
  return (m, n, k, a, b, c) => addon.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
}

/** OpenBLAS threads the addon uses (null when it is not loaded). */
export function openblasThreads(): number | null {
  return nativeAddon()?.getThreads() ?? null;
}
