// The neural-network ops the models are written in. Each op is a composite of tfjs ops that runs
// on every backend; where the native backend has a fused kernel for it, the op dispatches there
// (same numbers to fp32 rounding, tested in test/engine/ops.test.ts).
import { tf, type Tensor } from './tf.js';
import { hasNativeKernel } from './native.js';

function fused(name: string, inputs: Record<string, Tensor>, attrs: Record<string, number> = {}): Tensor {
  return tf.engine().runKernel(name, inputs as never, attrs) as Tensor;
}

/** x @ w^T + b with a torch-layout weight w [out, in] (how checkpoints store Linear). */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return tf.tidy(() => {
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, x.shape[x.shape.length - 1]!]);
    let y = tf.matMul(x2, w, false, true);
    if (b) y = tf.add(y, b);
    return y.reshape([...lead, w.shape[0]!]);
  });
}

/** GELU, tanh approximation (torch nn.GELU(approximate="tanh"), as FLUX uses). */
export function gelu(x: Tensor): Tensor {
  if (hasNativeKernel('MceGelu')) return fused('MceGelu', { x });
  return tf.tidy(() => {
    // x*x*x, not pow(x, 3): pow and its gradient cost as much as the matmuls (measurements §4).
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(tf.mul(x, x), x))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}

/**
 * GEGLU, diffusers' FeedForward activation: x [..., 2H] splits into hidden and gate halves, and the
 * result is hidden * gelu(gate) with the exact (erf) GELU, torch F.gelu's default.
 */
export function geglu(x: Tensor): Tensor {
  if (hasNativeKernel('MceGeglu')) return fused('MceGeglu', { x });
  return tf.tidy(() => {
    const [hidden, gate] = tf.split(x, 2, x.rank - 1) as [Tensor, Tensor];
    const gelu = tf.mul(tf.mul(gate, 0.5), tf.add(1, tf.erf(tf.mul(gate, Math.SQRT1_2))));
    return tf.mul(hidden, gelu);
  });
}

/** SiLU (x * sigmoid(x)). */
export function silu(x: Tensor): Tensor {
  if (hasNativeKernel('MceSilu')) return fused('MceSilu', { x });
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** LayerNorm over the last axis, optional affine weight/bias. */
export function layerNorm(x: Tensor, eps = 1e-6, weight?: Tensor | null, bias?: Tensor | null): Tensor {
  return tf.tidy(() => {
    if (hasNativeKernel('MceLayerNorm')) {
      let y = fused('MceLayerNorm', { x }, { eps });
      if (weight) y = tf.mul(y, weight);
      if (bias) y = tf.add(y, bias);
      return y;
    }
    const axis = x.rank - 1;
    const mean = tf.mean(x, axis, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.mul(xc, xc), axis, true);
    let y = tf.mul(xc, tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

/** RMSNorm over the last axis with a learned scale (FLUX QK norm). */
export function rmsNorm(x: Tensor, scale: Tensor, eps = 1e-6): Tensor {
  if (hasNativeKernel('MceRmsNorm')) return fused('MceRmsNorm', { x, scale }, { eps });
  return tf.tidy(() => {
    const ms = tf.mean(tf.mul(x, x), x.rank - 1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), scale);
  });
}

/** GroupNorm on NCHW-ordered channels given as [B, C, ...spatial], affine per channel. */
export function groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-6): Tensor {
  return tf.tidy(() => {
    const [b, c] = x.shape as [number, number];
    const g = x.reshape([b, groups, -1]);
    const mean = tf.mean(g, 2, true);
    const gc = tf.sub(g, mean);
    const variance = tf.mean(tf.mul(gc, gc), 2, true);
    const y = tf.mul(gc, tf.rsqrt(tf.add(variance, eps))).reshape(x.shape);
    const bshape = [1, c, ...x.shape.slice(2).map(() => 1)];
    return tf.add(tf.mul(y, weight.reshape(bshape)), bias.reshape(bshape));
  });
}

/** Scaled dot-product attention: q [..., L, D], k and v [..., S, D] (same leading dims) -> [..., L, D]. */
export function attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  const lead = q.shape.slice(0, -2);
  const sameLead = k.rank === q.rank && v.rank === q.rank && lead.every((n, i) => n === k.shape[i] && n === v.shape[i]);
  if (hasNativeKernel('MceAttention') && sameLead && v.shape[v.rank - 1] === q.shape[q.rank - 1]) {
    // [..., L, D] is token-major with one head over prod(...) batches.
    return tf.tidy(() => {
      const flat = (t: Tensor): Tensor => t.reshape([-1, ...t.shape.slice(-2)]);
      return fused('MceAttention', { q: flat(q), k: flat(k), v: flat(v) }, { heads: 1 }).reshape(q.shape);
    });
  }
  return tf.tidy(() => {
    const d = q.shape[q.rank - 1]!;
    const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
    const probs = hasNativeKernel('MceSoftmax') ? fused('MceSoftmax', { x: scores }) : tf.softmax(scores);
    return tf.matMul(probs, v);
  });
}

/**
 * Multi-head attention on token-major projections, as linear layers give them: q [B, L, H*D], k and
 * v [B, S, H*D] -> [B, L, H*D], head h on channels h*D .. h*D + D - 1. The native kernel reads the
 * heads in place; elsewhere they are split out to [B, H, L, D] and merged back.
 */
export function attentionHeads(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor {
  if (hasNativeKernel('MceAttention')) return fused('MceAttention', { q, k, v }, { heads });
  return tf.tidy(() => {
    const [b, l, inner] = q.shape as [number, number, number];
    const split = (t: Tensor): Tensor => t.reshape([b, t.shape[1]!, heads, inner / heads]).transpose([0, 2, 1, 3]);
    return attention(split(q), split(k), split(v)).transpose([0, 2, 1, 3]).reshape([b, l, inner]);
  });
}

/** AdaLN modulation: x * (1 + scale) + shift, with scale/shift broadcast over tokens. */
export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  // The fused kernel takes one vector per batch row (or one for all), as AdaLN produces.
  const perRow = (t: Tensor): boolean =>
    t.shape[t.rank - 1] === x.shape[x.rank - 1] &&
    t.shape.slice(0, -1).every((s, i) => s === 1 || (i === 0 && t.rank === x.rank && s === x.shape[0]));
  if (hasNativeKernel('MceModulate') && x.rank >= 2 && perRow(shift) && perRow(scale)) {
    return fused('MceModulate', { x, scale, shift });
  }
  return tf.tidy(() => tf.add(tf.mul(x, tf.add(1, scale)), shift));
}
