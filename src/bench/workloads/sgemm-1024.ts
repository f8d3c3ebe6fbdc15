// sgemm-1024: one 1024x1024 @ 1024x1024 fp32 matmul (tf.matMul on the selected backend), and the same
// product through the native addon's OpenBLAS sgemm called directly (the ceiling for the target
// "sgemm >= 85% of OpenBLAS called directly").
import { tf } from '../../engine/tf.js';
import { fro, normalInput, tensorsOf, median } from '../util.js';
import { openblasSgemm, openblasThreads } from '../openblas.js';
import type { Workload, OursRun } from '../types.js';

export const sgemm1024: Workload = {
  name: 'sgemm-1024',
  description: 'C = A @ B, fp32, 1024 x 1024 x 1024',
  reps: 30,
  judge(r) {
    const text = 'ours >= 85% of OpenBLAS called directly (speed, timed interleaved: pct_of_openblas)';
    const pct = r['pct_of_openblas'];
    return { text, met: typeof pct === 'number' ? pct >= 85 : null };
  },
  prepare(size) {
    const n = size === 'tiny' ? 48 : 1024;
    const inputs = [normalInput('a', [n, n], 1024, 0), normalInput('b', [n, n], 1024, 1)];
    return {
      flops: 2 * n * n * n,
      params: { n },
      inputs,
      setup(): OursRun {
        const [a, b] = tensorsOf(inputs) as [tf.Tensor2D, tf.Tensor2D];
        return {
          step: () => tf.dispose(tf.matMul(a, b)),
          checked: () => {
            const c = tf.matMul(a, b);
            const out = { fro: fro(c), c00: c.dataSync()[0]! };
            c.dispose();
            return out;
          },
          async extra({ smoke, log }) {
            const blas = openblasSgemm();
            const threads = openblasThreads();
            if (typeof blas === 'string') {
              return {
                fields: { openblas_ms: null },
                notes: [`OpenBLAS direct: unavailable (${blas})`],
              };
            }
            const A = inputs[0]!.data;
            const B = inputs[1]!.data;
            const C = new Float32Array(n * n);
            try {
              blas(n, n, n, A, B, C);
            } catch (e) {
              return { fields: { openblas_ms: null }, notes: [`OpenBLAS direct: the addon's sgemm failed (${(e as Error).message})`] };
            }
            // Same product? (guards against a changed addon signature)
            const ref = tf.tidy(() => tf.matMul(a, b).dataSync());
            let err = 0;
            let scale = 0;
            for (let i = 0; i < C.length; i++) {
              err = Math.max(err, Math.abs(C[i]! - ref[i]!));
              scale = Math.max(scale, Math.abs(ref[i]!));
            }
            if (!(err <= 1e-4 * Math.max(1, scale))) {
              return {
                fields: { openblas_ms: null },
                notes: [`OpenBLAS direct: result differs from tf.matMul (max error ${err}); not timed`],
              };
            }
            // Interleaved with our matmul, so both see the same load on this shared machine.
            const reps = smoke ? 5 : 30;
            for (let i = 0; i < 2; i++) blas(n, n, n, A, B, C);
            const direct: number[] = [];
            const ours: number[] = [];
            for (let i = 0; i < reps; i++) {
              let t0 = performance.now();
              blas(n, n, n, A, B, C);
              direct.push(performance.now() - t0);
              t0 = performance.now();
              tf.dispose(tf.matMul(a, b));
              ours.push(performance.now() - t0);
            }
            const ms = median(direct);
            const oursPaired = median(ours);
            const pct = (100 * ms) / oursPaired;
            log(`openblas direct: median ${ms.toFixed(2)} ms, ours interleaved ${oursPaired.toFixed(2)} ms (${pct.toFixed(0)}%), ${reps} reps`);
            return {
              fields: { openblas_ms: ms, openblas_gflops: (2 * n * n * n) / ms / 1e6, ours_interleaved_ms: oursPaired, pct_of_openblas: pct, openblas_threads: threads },
              notes: [
                `OpenBLAS called directly (addon sgemm on Float32Arrays, no tfjs${threads ? `, ${threads} threads` : ''}): ` +
                  `${ms.toFixed(2)} ms = ${((2 * n * n * n) / ms / 1e6).toFixed(1)} GFLOP/s; ours, timed interleaved with it: ` +
                  `${oursPaired.toFixed(2)} ms = ${pct.toFixed(0)}% of its speed`,
              ],
            };
          },
          dispose: () => tf.dispose([a, b]),
        };
      },
    };
  },
};
