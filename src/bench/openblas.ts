// OpenBLAS called directly through the native addon (src/engine/native.ts), bypassing tfjs: the
// ceiling for our matmul kernel. Returns a row-major C = A @ B function, or why it is unavailable.
// The caller checks the product against tf.matMul before timing it.
import * as native from '../engine/native.js';

export type Sgemm = (m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array) => void;

type RawSgemm = (...args: unknown[]) => unknown;

export function openblasSgemm(): Sgemm | string {
  const get = (native as unknown as Record<string, unknown>)['nativeAddon'];
  if (typeof get !== 'function') return 'src/engine/native.ts has no nativeAddon()';
  let addon: { sgemm?: unknown; getThreads?: unknown } | null;
  try {
    addon = (get as () => typeof addon)();
  } catch (e) {
    return `the native addon failed to load: ${(e as Error).message}`;
  }
  if (!addon) return 'the native addon is not built';
  if (typeof addon.sgemm !== 'function') return 'the native addon has no sgemm';
  const sgemm = addon.sgemm as RawSgemm;
  // sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): cblas_sgemm, row-major.
  return (m, n, k, a, b, c) => void sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
}

/** OpenBLAS threads the addon uses (null when unknown). */
export function openblasThreads(): number | null {
  const get = (native as unknown as Record<string, unknown>)['nativeAddon'];
  if (typeof get !== 'function') return null;
  try {
    const addon = (get as () => { getThreads?: unknown } | null)();
    return addon && typeof addon.getThreads === 'function' ? Number((addon.getThreads as () => unknown)()) : null;
  } catch {
    return null;
  }
}
