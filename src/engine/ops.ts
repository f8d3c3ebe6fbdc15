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

/** Scaled dot-product attention: q, k, v [B, H, L, D] -> [B, H, L, D]. */
export function attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return tf.tidy(() => {
    const d = q.shape[q.rank - 1]!;
    const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
    const probs = hasNativeKernel('MceSoftmax') ? fused('MceSoftmax', { x: scores }) : tf.softmax(scores);
    return tf.matMul(probs, v);
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
