// block-fwd-bwd: a pre-LN transformer block, forward and backward with respect to all 16 weights and
// the input. LN -> q, k, v -> softmax(q k^T / sqrt(dh)) v -> Wo -> residual; LN -> W1 -> GELU(tanh) ->
// W2 -> residual. Loss = sum(y * r) for a fixed random r. B4 T256 D256 H4, MLP 4x (1024).
import { tf, type Tensor } from '../../engine/tf.js';
import { attention, gelu, layerNorm, linear } from '../../engine/ops.js';
import { byName, fro, normalInput, scalar, tensorsOf } from '../util.js';
import type { InputArray, OursRun, Workload } from '../types.js';

const PARAMS = ['ln1_w', 'ln1_b', 'wq', 'bq', 'wk', 'bk', 'wv', 'bv', 'wo', 'bo', 'ln2_w', 'ln2_b', 'w1', 'b1', 'w2', 'b2'];

interface BlockSize {
  batch: number;
  tokens: number;
  dim: number;
  heads: number;
  hidden: number;
  eps: number;
}

function blockForward(x: Tensor, ps: readonly Tensor[], s: BlockSize): Tensor {
  const [ln1w, ln1b, wq, bq, wk, bk, wv, bv, wo, bo, ln2w, ln2b, w1, b1, w2, b2] = ps;
  const { batch: B, tokens: T, dim: D, heads: H } = s;
  const dh = D / H;
  const h = layerNorm(x, s.eps, ln1w, ln1b);
  const heads = (t: Tensor): Tensor => t.reshape([B, T, H, dh]).transpose([0, 2, 1, 3]);
  const q = heads(linear(h, wq!, bq));
  const k = heads(linear(h, wk!, bk));
  const v = heads(linear(h, wv!, bv));
  const o = attention(q, k, v).transpose([0, 2, 1, 3]).reshape([B, T, D]);
  const x1 = tf.add(x, linear(o, wo!, bo));
  const h2 = layerNorm(x1, s.eps, ln2w, ln2b);
  return tf.add(x1, linear(gelu(linear(h2, w1!, b1)), w2!, b2));
}

/** Matmul FLOPs of one forward pass; forward + backward is 3x (each product's two operand gradients). */
export function blockForwardFlops(s: BlockSize): number {
  const tokens = s.batch * s.tokens;
  const projections = 2 * tokens * (4 * s.dim * s.dim + 2 * s.dim * s.hidden);
  const attn = 2 * 2 * s.batch * s.tokens * s.tokens * s.dim; // q k^T and att v, all heads
  return projections + attn;
}

export const blockFwdBwd: Workload = {
  name: 'block-fwd-bwd',
  description: 'pre-LN transformer block B4 T256 D256 H4 MLP4x (GELU tanh), fwd + bwd w.r.t. all weights and x',
  reps: 15,
  judge: (r) => ({ text: 'ours <= 1.5x PyTorch time', met: r.ratio === null ? null : r.ratio <= 1.5 }),
  prepare(size) {
    const s: BlockSize =
      size === 'tiny'
        ? { batch: 2, tokens: 8, dim: 16, heads: 2, hidden: 64, eps: 1e-6 }
        : { batch: 4, tokens: 256, dim: 256, heads: 4, hidden: 1024, eps: 1e-6 };
    const { dim: D, hidden: M } = s;
    const seed = 256;
    let i = 0;
    const lin = (name: string, out: number, inp: number): InputArray[] => [
      normalInput(`w${name}`, [out, inp], seed, i++, 1 / Math.sqrt(inp)),
      normalInput(`b${name}`, [out], seed, i++, 0.02),
    ];
    const ln = (name: string): InputArray[] => [
      normalInput(`${name}_w`, [D], seed, i++, 0.1, 1),
      normalInput(`${name}_b`, [D], seed, i++, 0.1),
    ];
    const params = [...ln('ln1'), ...lin('q', D, D), ...lin('k', D, D), ...lin('v', D, D), ...lin('o', D, D), ...ln('ln2'), ...lin('1', M, D), ...lin('2', D, M)];
    params.forEach((p, j) => {
      if (p.name !== PARAMS[j]) throw new Error(`block-fwd-bwd: parameter order ${p.name} != ${PARAMS[j]}`);
    });
    const inputs = [normalInput('x', [s.batch, s.tokens, D], seed, 100), normalInput('r', [s.batch, s.tokens, D], seed, 101), ...params];
    return {
      flops: 3 * blockForwardFlops(s),
      params: { ...s },
      inputs,
      setup(): OursRun {
        const ts = tensorsOf(inputs);
        const named = byName(inputs, ts);
        const x = named['x']!;
        const r = named['r']!;
        const ps = PARAMS.map((n) => named[n]!);
        const lossFn = (xx: Tensor, ...pp: Tensor[]): Tensor => tf.sum(tf.mul(blockForward(xx, pp, s), r));
        const grads = tf.valueAndGrads(lossFn);
        return {
          step: () => {
            const { value, grads: g } = grads([x, ...ps]);
            tf.dispose([value, ...g]);
          },
          checked: () => {
            const { value, grads: g } = grads([x, ...ps]);
            const out = { loss: scalar(value), grad_x: fro(g[0]!), grad_wq: fro(g[3]!), grad_w1: fro(g[13]!) };
            tf.dispose([value, ...g]);
            return out;
          },
          dispose: () => tf.dispose(ts),
        };
      },
    };
  },
};
