// euler8-ckpt: 8 Euler steps x_{k+1} = x_k + dt * f([x_k || temb(t_k)]) with an MLP
// f: 64 + 16 -> 1024 -> SiLU -> 1024 -> SiLU -> 64, batch 256, loss MSE(x_N, target), and the
// gradients for x_0 and all weights by checkpointed backprop (src/engine/checkpoint.ts: a tape-free
// forward keeping each x_k, then a reverse sweep recomputing one step at a time). The PyTorch side runs
// the same algorithm as a manual per-step recompute loop. Extra: our peak tensor memory for N = 4 and
// N = 32 steps (target: flat in N).
import { tf, type Tensor } from '../../engine/tf.js';
import { linear, silu } from '../../engine/ops.js';
import { checkpointedGrad, type Step } from '../../engine/checkpoint.js';
import { measurePeak } from '../../engine/memory.js';
import { byName, fro, normalInput, scalar, tensorsOf, MiB } from '../util.js';
import type { OursRun, Workload } from '../types.js';

const PARAMS = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3'];

interface EulerSize {
  steps: number;
  batch: number;
  dim: number;
  hidden: number;
  freqs: number[];
}

/** The time embedding row [sin(pi f t) ..., cos(pi f t) ...], computed in float64 (as in torch_bench.py). */
function timeEmbedding(t: number, freqs: readonly number[]): number[] {
  return [...freqs.map((f) => Math.sin(Math.PI * f * t)), ...freqs.map((f) => Math.cos(Math.PI * f * t))];
}

function makeStep(n: number, s: EulerSize): { step: Step; dispose(): void } {
  const tembs = Array.from({ length: n }, (_, k) =>
    tf.tidy(() => tf.tile(tf.tensor2d([timeEmbedding(k / n, s.freqs)], [1, 2 * s.freqs.length]), [s.batch, 1])),
  );
  const dt = 1 / n;
  const step: Step = (x, [w1, b1, w2, b2, w3, b3], k) => {
    const h1 = silu(linear(tf.concat([x, tembs[k]!], 1), w1!, b1));
    const h2 = silu(linear(h1, w2!, b2));
    return tf.add(x, tf.mul(linear(h2, w3!, b3), dt));
  };
  return { step, dispose: () => tf.dispose(tembs) };
}

export const euler8Ckpt: Workload = {
  name: 'euler8-ckpt',
  description: '8 Euler steps of an MLP (64+16 -> 1024 -> 1024 -> 64, SiLU), batch 256, MSE loss, checkpointed backprop',
  reps: 9,
  judge(r) {
    const text = 'checkpointed backprop memory flat in N (peak at N=32 within 10% of N=4)';
    const by = r['peak_mb_by_steps'] as Record<string, number> | undefined;
    const ns = by ? Object.keys(by).map(Number).sort((a, b) => a - b) : [];
    if (!by || ns.length < 2) return { text, met: null };
    return { text, met: by[String(ns[ns.length - 1])]! <= 1.1 * by[String(ns[0])]! };
  },
  prepare(size) {
    const s: EulerSize =
      size === 'tiny'
        ? { steps: 3, batch: 4, dim: 8, hidden: 32, freqs: [1, 3.7] }
        : { steps: 8, batch: 256, dim: 64, hidden: 1024, freqs: Array.from({ length: 8 }, (_, j) => Math.pow(10, (3 * j) / 8)) };
    const inDim = s.dim + 2 * s.freqs.length;
    const seed = 8;
    const inputs = [
      normalInput('x0', [s.batch, s.dim], seed, 0),
      normalInput('target', [s.batch, s.dim], seed, 1),
      normalInput('w1', [s.hidden, inDim], seed, 2, 1 / Math.sqrt(inDim)),
      normalInput('b1', [s.hidden], seed, 3, 0.02),
      normalInput('w2', [s.hidden, s.hidden], seed, 4, 1 / Math.sqrt(s.hidden)),
      normalInput('b2', [s.hidden], seed, 5, 0.02),
      normalInput('w3', [s.dim, s.hidden], seed, 6, 1 / Math.sqrt(s.hidden)),
      normalInput('b3', [s.dim], seed, 7, 0.02),
    ];
    const forwardFlops = 2 * s.batch * (inDim * s.hidden + s.hidden * s.hidden + s.hidden * s.dim);
    return {
      // Per step: the tape-free forward, the recompute forward, and the backward (2x forward).
      flops: 4 * s.steps * forwardFlops,
      params: { ...s },
      inputs,
      setup(): OursRun {
        const ts = tensorsOf(inputs);
        const named = byName(inputs, ts);
        const x0 = named['x0']!;
        const target = named['target']!;
        const ps = PARAMS.map((n) => named[n]!);
        const upstream = (xN: Tensor): Tensor => tf.mul(tf.sub(xN, target), 2 / xN.size);
        const runN = (n: number, step: Step) => checkpointedGrad(step, x0, ps, n, upstream);
        const main = makeStep(s.steps, s);
        return {
          step: () => {
            const r = runN(s.steps, main.step);
            tf.dispose([r.final, r.x0, ...r.params]);
          },
          checked: () => {
            const r = runN(s.steps, main.step);
            const loss = tf.tidy(() => tf.mean(tf.square(tf.sub(r.final, target))));
            const out = { loss: scalar(loss), grad_x0: fro(r.x0), grad_w1: fro(r.params[0]!), grad_w2: fro(r.params[2]!) };
            tf.dispose([loss, r.final, r.x0, ...r.params]);
            return out;
          },
          async extra({ oursMs, budgetS, log }) {
            const counts = size === 'tiny' ? [2, 8] : [4, 32];
            const estimateS = (oursMs * (counts[0]! + counts[1]!)) / s.steps / 1000;
            if (estimateS > budgetS) {
              const why = `memory-vs-N probe skipped: N=${counts.join(' and N=')} would take ~${estimateS.toFixed(0)} s on this backend (budget ${budgetS} s)`;
              log(why);
              return { fields: { peak_mb_by_steps: null }, notes: [why] };
            }
            const peaks: Record<string, number> = {};
            for (const n of counts) {
              const st = makeStep(n, s);
              const { result, peakBytes, baseBytes } = await measurePeak(() => runN(n, st.step));
              tf.dispose([result.final, result.x0, ...result.params]);
              st.dispose();
              peaks[String(n)] = (peakBytes - baseBytes) / MiB;
              log(`memory at N=${n}: ${peaks[String(n)]!.toFixed(1)} MiB`);
            }
            const [lo, hi] = counts.map((n) => peaks[String(n)]!) as [number, number];
            const growth = hi / lo - 1;
            return {
              fields: { peak_mb_by_steps: peaks },
              notes: [`our peak tensor memory at N=${counts[0]}: ${lo.toFixed(1)} MiB, N=${counts[1]}: ${hi.toFixed(1)} MiB (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%)`],
            };
          },
          dispose: () => {
            main.dispose();
            tf.dispose(ts);
          },
        };
      },
    };
  },
};
