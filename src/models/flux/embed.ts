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
  // Written with rank-4 ops and two tiny constant matmuls: tfjs-wasm slices and concats of rank-5
  // tensors run element by element in JS (seconds per forward). Bit-identical to the split form:
  // x @ ROT gives (-x1, x0) per pair exactly (the other products are exact zeros), and
  // cos @ DUP repeats each angle's cosine for both members of its pair.
  return tf.tidy(() => {
    const d = x.shape[3]!;
    const { rot, dup } = ropeMatrices(d);
    const cos = tf.matMul(pe.cos, dup);
    const sin = tf.matMul(pe.sin, dup);
    return tf.add(tf.mul(cos, x), tf.mul(sin, tf.matMul(x, rot)));
  });
}

/** ROT [d, d]: (x0, x1) -> (-x1, x0) per pair; DUP [d/2, d]: c_j -> (c_j, c_j). */
function ropeMatrices(d: number): { rot: Tensor; dup: Tensor } {
  const rot = new Float32Array(d * d);
  const dup = new Float32Array((d / 2) * d);
  for (let j = 0; j < d / 2; j++) {
    rot[(2 * j + 1) * d + 2 * j] = -1; // out[2j] = -x[2j+1]
    rot[2 * j * d + 2 * j + 1] = 1; // out[2j+1] = x[2j]
    dup[j * d + 2 * j] = 1;
    dup[j * d + 2 * j + 1] = 1;
  }
  return { rot: tf.tensor2d(rot, [d, d]), dup: tf.tensor2d(dup, [d / 2, d]) };
}
