// The UNet's building blocks (diffusers ResnetBlock2D, Transformer2DModel + BasicTransformerBlock,
// Attention, GEGLU FeedForward, Downsample2D, Upsample2D, Timesteps + TimestepEmbedding), as plain
// functions of (weights, name prefix, inputs, masks). Activations are NHWC [B, H, W, C] (what tfjs
// conv2d runs); weights stay in torch layout and conv filters are transposed per call.
import { tf, type Tensor } from '../../engine/tf.js';
import { attentionHeads, geglu, layerNorm, linear, silu } from '../../engine/ops.js';
import { FUSED_KERNELS, hasNativeKernel } from '../../engine/native.js';
import type { UnetMasks } from './masks.js';
import type { UnetWeights } from './weights.js';

const f32 = Math.fround;

/** The weight `name`, or one clear error. */
export function req(w: UnetWeights, name: string): Tensor {
  const t = w[name];
  if (!t) throw new Error(`UNet weights: missing '${name}'`);
  return t;
}

// ------------------------------------------------------------------ primitives (NHWC)

/**
 * Conv2d of NHWC x with a torch-layout weight [out, in, kh, kw] and torch zero padding `pad` on every
 * side (k = 3: pad 1; k = 1: pad 0). A 1x1 stride-1 conv is a matmul over channels.
 */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null | undefined, stride: 1 | 2 = 1, pad = 1): Tensor {
  return tf.tidy(() => {
    const [o, i, kh, kw] = w.shape as [number, number, number, number];
    if (kh === 1 && kw === 1 && stride === 1 && pad === 0) return linear(x, w.reshape([o, i]), b);
    const filter = tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D;
    // Numeric padding is torch's symmetric padding (tfjs 'same' with stride 2 pads bottom/right instead).
    let y: Tensor = tf.conv2d(x as tf.Tensor4D, filter, stride, pad === 0 ? 'valid' : pad);
    if (b) y = tf.add(y, b);
    return y;
  });
}

/**
 * GroupNorm over NHWC with `groups` groups, affine per channel, optional SiLU after.
 * Computed as x * a + s with per-(sample, channel) a = weight / sqrt(var + eps) and
 * s = bias - mean * a: two full-size passes (and their gradients) instead of five; on the native
 * backend one fused kernel (MceGroupNorm) each way.
 */
export function groupNormNHWC(x: Tensor, weight: Tensor, bias: Tensor, groups: number, eps: number, swish = false): Tensor {
  return tf.tidy(() => {
    if (hasNativeKernel(FUSED_KERNELS.groupNorm)) {
      // One kernel each way instead of ~12 forward and ~25 backward ops.
      const inputs = { x, weight: weight.reshape([-1]), bias: bias.reshape([-1]) };
      const y = tf.engine().runKernel(FUSED_KERNELS.groupNorm, inputs as never, { groups, eps }) as Tensor;
      return swish ? silu(y) : y;
    }
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const cg = c / groups;
    const g = x.reshape([b, h * w, groups, cg]);
    const mean = tf.mean(g, [1, 3], true); // [B, 1, G, 1]
    const d = tf.sub(g, mean); // (tfjs's SquaredDifference gradient does not reduce broadcast axes)
    const variance = tf.mean(tf.mul(d, d), [1, 3], true);
    const a = tf.mul(tf.rsqrt(tf.add(variance, eps)), weight.reshape([1, 1, groups, cg])); // [B, 1, G, Cg]
    const s = tf.sub(bias.reshape([1, 1, groups, cg]), tf.mul(mean, a));
    const z = tf.add(tf.mul(x, a.reshape([b, 1, 1, c])), s.reshape([b, 1, 1, c]));
    return swish ? silu(z) : z;
  });
}

/** Nearest-neighbour 2x upsampling of NHWC (F.interpolate(scale_factor=2, mode="nearest")). */
export function upsampleNearest2x(x: Tensor): Tensor {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    // Duplicate each column, then each row, with concat (its gradient is exact on every backend).
    const col = x.reshape([b * h, w, 1, c]);
    const cols = tf.concat([col, col], 2).reshape([b, h, 1, 2 * w * c]);
    return tf.concat([cols, cols], 2).reshape([b, 2 * h, 2 * w, c]);
  });
}

// ------------------------------------------------------------------ timestep embedding

/**
 * diffusers `get_timestep_embedding`: t [B] -> [B, dim] from frequencies
 * exp(-ln(max_period) * i / (half - freq_shift)), sin half then cos half, swapped to cos first
 * when flipSinToCos (SD: true, freq_shift 0). Frequencies are float32 as torch computes them.
 */
export function timestepEmbedding(t: Tensor, dim: number, flipSinToCos = true, freqShift = 0, maxPeriod = 10_000): Tensor {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = new Float32Array(half);
    const c = f32(-Math.log(maxPeriod));
    const den = f32(half - freqShift);
    for (let i = 0; i < half; i++) freqs[i] = f32(Math.exp(f32(f32(c * i) / den)));
    const args = tf.mul(tf.cast(t, 'float32').reshape([-1, 1]), tf.tensor2d(freqs, [1, half]));
    const sin = tf.sin(args);
    const cos = tf.cos(args);
    let emb = flipSinToCos ? tf.concat([cos, sin], 1) : tf.concat([sin, cos], 1);
    if (dim % 2) emb = tf.concat([emb, tf.zeros([emb.shape[0]!, 1])], 1);
    return emb;
  });
}

/** diffusers `TimestepEmbedding`: linear_2(silu(linear_1(x))). */
export function timeEmbeddingMlp(w: UnetWeights, x: Tensor): Tensor {
  return tf.tidy(() => {
    const h = silu(linear(x, req(w, 'time_embedding.linear_1.weight'), w['time_embedding.linear_1.bias']));
    return linear(h, req(w, 'time_embedding.linear_2.weight'), w['time_embedding.linear_2.bias']);
  });
}

// ------------------------------------------------------------------ ResNet block

export interface NormCfg {
  groups: number;
  eps: number;
}

/**
 * diffusers `ResnetBlock2D` (time_embedding_norm "default", output_scale_factor 1):
 * conv_shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + time_emb_proj(silu(temb))))).
 * `stemb` is silu(temb) [B, temb_dim], computed once per forward.
 */
export function resnetBlock(w: UnetWeights, p: string, x: Tensor, stemb: Tensor, norm: NormCfg): Tensor {
  return tf.tidy(() => {
    let h = groupNormNHWC(x, req(w, `${p}.norm1.weight`), req(w, `${p}.norm1.bias`), norm.groups, norm.eps, true);
    h = conv2d(h, req(w, `${p}.conv1.weight`), w[`${p}.conv1.bias`]);
    const t = linear(stemb, req(w, `${p}.time_emb_proj.weight`), w[`${p}.time_emb_proj.bias`]);
    h = tf.add(h, t.reshape([t.shape[0]!, 1, 1, t.shape[1]!]));
    h = groupNormNHWC(h, req(w, `${p}.norm2.weight`), req(w, `${p}.norm2.bias`), norm.groups, norm.eps, true);
    h = conv2d(h, req(w, `${p}.conv2.weight`), w[`${p}.conv2.bias`]);
    const sc = w[`${p}.conv_shortcut.weight`];
    const skip = sc ? conv2d(x, sc, w[`${p}.conv_shortcut.bias`], 1, 0) : x;
    return tf.add(skip, h);
  });
}

/** diffusers `Downsample2D` (use_conv, padding 1): a 3x3 conv with stride 2. */
export function downsample(w: UnetWeights, p: string, x: Tensor): Tensor {
  return conv2d(x, req(w, `${p}.conv.weight`), w[`${p}.conv.bias`], 2, 1);
}

/** diffusers `Upsample2D` (use_conv): nearest 2x, then a 3x3 conv. */
export function upsample(w: UnetWeights, p: string, x: Tensor): Tensor {
  return tf.tidy(() => conv2d(upsampleNearest2x(x), req(w, `${p}.conv.weight`), w[`${p}.conv.bias`]));
}

// ------------------------------------------------------------------ attention and transformer

function maybeMask(x: Tensor, m: Tensor | undefined): Tensor {
  return m ? tf.mul(x, m) : x;
}

/**
 * diffusers `Attention` (AttnProcessor2_0, no attention mask): to_q(x), to_k/to_v(context ?? x)
 * without bias, softmax(q k^T / sqrt(d)) v per head, to_out.0 with bias. Masks (see masks.ts):
 * `${p}.to_q|to_k|to_v` on the projections, `${p}.heads` per head of the attention output,
 * `${p}.to_out` on the output.
 */
export function attentionLayer(w: UnetWeights, p: string, x: Tensor, context: Tensor | null, heads: number, masks: UnetMasks): Tensor {
  return tf.tidy(() => {
    const src = context ?? x;
    const [b, l] = x.shape as [number, number, number];
    const q = maybeMask(linear(x, req(w, `${p}.to_q.weight`), w[`${p}.to_q.bias`]), masks[`${p}.to_q`]);
    const k = maybeMask(linear(src, req(w, `${p}.to_k.weight`), w[`${p}.to_k.bias`]), masks[`${p}.to_k`]);
    const v = maybeMask(linear(src, req(w, `${p}.to_v.weight`), w[`${p}.to_v.bias`]), masks[`${p}.to_v`]);
    const inner = q.shape[2]!;
    let o = attentionHeads(q, k, v, heads); // [B, L, H*D]
    const hm = masks[`${p}.heads`];
    if (hm) o = tf.mul(o.reshape([b, l, heads, inner / heads]), hm.reshape([1, 1, heads, 1])).reshape([b, l, inner]);
    const out = linear(o, req(w, `${p}.to_out.0.weight`), w[`${p}.to_out.0.bias`]);
    return maybeMask(out, masks[`${p}.to_out`]);
  });
}

/**
 * diffusers `FeedForward` with GEGLU (mult 4): hidden, gate = net.0.proj(x).chunk(2);
 * net.2(hidden * gelu(gate)). Mask `${p}.hidden` on the GEGLU output.
 */
export function feedForward(w: UnetWeights, p: string, x: Tensor, masks: UnetMasks): Tensor {
  return tf.tidy(() => {
    const hp = linear(x, req(w, `${p}.net.0.proj.weight`), w[`${p}.net.0.proj.bias`]);
    const act = maybeMask(geglu(hp), masks[`${p}.hidden`]);
    return linear(act, req(w, `${p}.net.2.weight`), w[`${p}.net.2.bias`]);
  });
}

/**
 * diffusers `BasicTransformerBlock` (norm_type "layer_norm", eps 1e-5): self-attention, cross-attention
 * on `context`, GEGLU feed-forward, each pre-normed and residual. x [B, L, dim].
 */
export function basicTransformerBlock(w: UnetWeights, p: string, x: Tensor, context: Tensor, heads: number, masks: UnetMasks): Tensor {
  return tf.tidy(() => {
    const ln = (h: Tensor, n: string): Tensor => layerNorm(h, 1e-5, req(w, `${p}.${n}.weight`), req(w, `${p}.${n}.bias`));
    let h = tf.add(attentionLayer(w, `${p}.attn1`, ln(x, 'norm1'), null, heads, masks), x);
    h = tf.add(attentionLayer(w, `${p}.attn2`, ln(h, 'norm2'), context, heads, masks), h);
    return tf.add(feedForward(w, `${p}.ff`, ln(h, 'norm3'), masks), h);
  });
}

/**
 * diffusers `Transformer2DModel` on NHWC x: GroupNorm (eps 1e-6), proj_in (Linear or 1x1 conv, same
 * numbers), `layers` BasicTransformerBlocks over the H*W positions, proj_out, plus the input.
 */
export function transformer2d(
  w: UnetWeights,
  p: string,
  x: Tensor,
  context: Tensor,
  heads: number,
  layers: number,
  groups: number,
  masks: UnetMasks,
): Tensor {
  return tf.tidy(() => {
    const [b, hh, ww, c] = x.shape as [number, number, number, number];
    const proj = (t: Tensor, n: string): Tensor => {
      const wt = req(w, `${p}.${n}.weight`);
      return linear(t, wt.rank === 4 ? wt.reshape([wt.shape[0]!, wt.shape[1]!]) : wt, w[`${p}.${n}.bias`]);
    };
    let h = groupNormNHWC(x, req(w, `${p}.norm.weight`), req(w, `${p}.norm.bias`), groups, 1e-6);
    h = proj(h.reshape([b, hh * ww, c]), 'proj_in');
    for (let k = 0; k < layers; k++) h = basicTransformerBlock(w, `${p}.transformer_blocks.${k}`, h, context, heads, masks);
    h = proj(h, 'proj_out');
    return tf.add(h.reshape([b, hh, ww, c]), x);
  });
}
