// Embeddings of the FLUX transformer: the sinusoidal timestep embedding, the MLP embedders
// (time_in, guidance_in, vector_in) and the N-D rotary position embedding over (t, h, w) ids.
// Constants are rounded to float32 the way the reference computes them in torch float32.
import { tf, type Tensor } from '../../engine/tf.js';
import { linear, silu } from '../../engine/ops.js';
import type { FluxWeights } from './weights.js';

const f32 = Math.fround;

/**
 * Reference `timestep_embedding`: t [B] -> [B, dim], cos half first, then sin, of
 * (time_factor * t) * exp(-ln(max_period) * i / half).
 */
export function timestepEmbedding(t: Tensor, dim = 256, maxPeriod = 10_000, timeFactor = 1000): Tensor {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = new Float32Array(half);
    const c = f32(-Math.log(maxPeriod));
    for (let i = 0; i < half; i++) freqs[i] = f32(Math.exp(f32(f32(c * i) / half)));
    const args = tf.mul(tf.mul(t.reshape([-1, 1]), timeFactor), tf.tensor2d(freqs, [1, half]));
    let emb = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2) emb = tf.concat([emb, tf.zeros([emb.shape[0]!, 1])], 1);
    return emb;
  });
}

/** Reference `MLPEmbedder`: out_layer(silu(in_layer(x))), weights under `prefix`. */
export function mlpEmbedder(w: FluxWeights, prefix: string, x: Tensor): Tensor {
  return tf.tidy(() => {
    const h = silu(linear(x, w[`${prefix}.in_layer.weight`]!, w[`${prefix}.in_layer.bias`]));
    return linear(h, w[`${prefix}.out_layer.weight`]!, w[`${prefix}.out_layer.bias`]);
  });
}

/**
 * Rotary embedding tables for positions `ids` [B, L, n_axes]: cos and sin [B, 1, L, head_dim/2].
 * Axis a contributes axes_dim[a]/2 frequencies theta^(-2j/axes_dim[a]) in order (reference
 * `EmbedND` + `rope`: frequency pairs of all axes concatenated).
 */
export interface Rope {
  cos: Tensor;
  sin: Tensor;
}

export function ropeND(ids: Tensor, axesDim: readonly number[], theta: number): Rope {
  const [b, l, n] = ids.shape as [number, number, number];
  if (ids.rank !== 3 || n !== axesDim.length) {
    throw new Error(`rope: ids must be [B, L, ${axesDim.length}], got [${ids.shape.join(', ')}]`);
  }
  const half = axesDim.reduce((a, d) => a + d / 2, 0);
  const tables = tf.tidy(() => {
    const cols = tf.split(ids, n, 2); // n x [B, L, 1]
    const angles = cols.map((pos, a) => {
      const dim = axesDim[a]!;
      const omega = new Float32Array(dim / 2);
      for (let j = 0; j < dim / 2; j++) omega[j] = f32(1 / f32(Math.pow(theta, f32((2 * j) / dim))));
      return tf.mul(pos, tf.tensor3d(omega, [1, 1, dim / 2]));
    });
    const ang = tf.concat(angles, 2).reshape([b, 1, l, half]);
    return [tf.cos(ang), tf.sin(ang)];
  });
  return { cos: tables[0]!, sin: tables[1]! };
}

/**
 * Reference `apply_rope` on x [B, H, L, D]: each interleaved pair (x[2j], x[2j+1]) is rotated,
 * (x0, x1) -> (cos x0 - sin x1, sin x0 + cos x1).
 */
export function applyRope(x: Tensor, pe: Rope): Tensor {
  return tf.tidy(() => {
    const [b, h, l, d] = x.shape as [number, number, number, number];
    const pairs = x.reshape([b, h, l, d / 2, 2]);
    const [x0, x1] = tf.split(pairs, 2, 4) as [Tensor, Tensor];
    const cos = pe.cos.expandDims(4);
    const sin = pe.sin.expandDims(4);
    const o0 = tf.sub(tf.mul(cos, x0), tf.mul(sin, x1));
    const o1 = tf.add(tf.mul(sin, x0), tf.mul(cos, x1));
    return tf.concat([o0, o1], 4).reshape([b, h, l, d]);
  });
}
