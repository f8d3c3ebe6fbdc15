// A small pre-activation ResNet for 32x32 (or 64x64) RGB images, NHWC, shared by the concept/style
// classifier and the image tower of the emoji CLIP dual encoder.
//
//   x [B, S, S, 3] in [-1, 1]
//   stem:     conv3x3(3 -> w0) + bias                                   at S x S
//   stage 0:  d0 blocks  h <- h + conv3x3(silu(gn(h)))                   at S x S
//   stage i:  h <- conv3x3/2(silu(gn(h)))  (w(i-1) -> wi), then di blocks at S/2^i
//   head:     f <- mean_hw(silu(gn(h)))                                 [B, w_last]: the features
//
// GroupNorm (8 groups) rather than BatchNorm: no batch statistics, so a model behaves the same on
// one image as on a batch and needs no running averages. Parameter names are flat strings
// ('stem.weight', 'stages.1.down.weight', 'stages.1.blocks.0.norm.weight', ...); conv weights are
// HWIO [3, 3, in, out], as tf.conv2d takes them.
import { tf, type Tensor } from '../../engine/tf.js';
import { silu } from '../../engine/ops.js';
import { Rng, mixSeed } from '../../engine/rng.js';

export interface BackboneConfig {
  /** Input side (32 or 64; any multiple of 2^(widths.length - 1)). */
  size: number;
  /** Channels of each stage; stage i runs at size / 2^i. */
  widths: number[];
  /** Residual blocks per stage (same length as widths). */
  depths: number[];
  /** GroupNorm groups (must divide every width). */
  groups: number;
}

export type Weights = Record<string, Tensor>;

/** Every parameter of a backbone with its shape, in a fixed order. */
export function backboneSpecs(cfg: BackboneConfig, prefix = ''): [string, number[]][] {
  validateBackbone(cfg);
  const out: [string, number[]][] = [];
  const { widths, depths } = cfg;
  out.push([`${prefix}stem.weight`, [3, 3, 3, widths[0]!]], [`${prefix}stem.bias`, [widths[0]!]]);
  for (let s = 0; s < widths.length; s++) {
    const w = widths[s]!;
    const p = `${prefix}stages.${s}.`;
    if (s > 0) {
      out.push([`${p}down.norm.weight`, [widths[s - 1]!]], [`${p}down.norm.bias`, [widths[s - 1]!]]);
      out.push([`${p}down.weight`, [3, 3, widths[s - 1]!, w]], [`${p}down.bias`, [w]]);
    }
    for (let b = 0; b < depths[s]!; b++) {
      out.push([`${p}blocks.${b}.norm.weight`, [w]], [`${p}blocks.${b}.norm.bias`, [w]]);
      out.push([`${p}blocks.${b}.conv.weight`, [3, 3, w, w]], [`${p}blocks.${b}.conv.bias`, [w]]);
    }
  }
  const last = widths[widths.length - 1]!;
  out.push([`${prefix}final.norm.weight`, [last]], [`${prefix}final.norm.bias`, [last]]);
  return out;
}

export function validateBackbone(cfg: BackboneConfig): void {
  const { size, widths, depths, groups } = cfg;
  if (!Array.isArray(widths) || widths.length < 1 || !Array.isArray(depths) || depths.length !== widths.length) {
    throw new Error('backbone: widths and depths must be arrays of the same, non-zero length');
  }
  if (!Number.isInteger(size) || size < 4 || size % 2 ** (widths.length - 1) !== 0) {
    throw new Error(`backbone: size ${size} must be a multiple of ${2 ** (widths.length - 1)}`);
  }
  for (const w of widths) if (!Number.isInteger(w) || w < 1 || w % groups !== 0) throw new Error(`backbone: width ${w} is not a multiple of groups (${groups})`);
  for (const d of depths) if (!Number.isInteger(d) || d < 0) throw new Error(`backbone: bad depth ${d}`);
}

/** The feature width (channels of the last stage). */
export function featureDim(cfg: BackboneConfig): number {
  return cfg.widths[cfg.widths.length - 1]!;
}

/**
 * Seeded initial values: He-normal convs (residual-branch convs scaled by `residualScale`, so a
 * fresh network starts near the identity), zero biases, unit norm scales.
 */
export function initBackbone(cfg: BackboneConfig, seed: number, prefix = '', residualScale = 0.2): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  backboneSpecs(cfg, prefix).forEach(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (shape.length === 4) {
      const fanIn = shape[0]! * shape[1]! * shape[2]!;
      const std = Math.sqrt(2 / fanIn) * (name.includes('.blocks.') ? residualScale : 1);
      const rng = new Rng(mixSeed(seed, 0x626b626e, i));
      for (let k = 0; k < n; k++) data[k] = std * rng.normal();
    }
    out[name] = { shape, data };
  });
  return out;
}

/** GroupNorm over NHWC: statistics per (sample, group) over H, W and the group's channels. */
export function groupNormNHWC(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const r = x.reshape([b, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(r, [1, 3], true);
    const y = tf.mul(tf.sub(r, mean), tf.rsqrt(tf.add(variance, eps))).reshape([b, h, w, c]);
    return tf.add(tf.mul(y, weight), bias);
  });
}

function conv(x: Tensor, w: Tensor, b: Tensor, stride: number): Tensor {
  return tf.add(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, 'same'), b);
}

/** Features [B, featureDim] of images x [B, size, size, 3] in [-1, 1]. */
export function backboneForward(cfg: BackboneConfig, p: Weights, x: Tensor, prefix = ''): Tensor {
  return tf.tidy(() => {
    const get = (n: string): Tensor => {
      const t = p[prefix + n];
      if (!t) throw new Error(`backbone: missing parameter ${prefix + n}`);
      return t;
    };
    const act = (h: Tensor, n: string): Tensor => silu(groupNormNHWC(h, cfg.groups, get(`${n}.weight`), get(`${n}.bias`)));
    let h = conv(x, get('stem.weight'), get('stem.bias'), 1);
    for (let s = 0; s < cfg.widths.length; s++) {
      const ps = `stages.${s}.`;
      if (s > 0) h = conv(act(h, `${ps}down.norm`), get(`${ps}down.weight`), get(`${ps}down.bias`), 2);
      for (let b = 0; b < cfg.depths[s]!; b++) {
        const pb = `${ps}blocks.${b}.`;
        h = tf.add(h, conv(act(h, `${pb}norm`), get(`${pb}conv.weight`), get(`${pb}conv.bias`), 1));
      }
    }
    return tf.mean(act(h, 'final.norm'), [1, 2]);
  });
}

/** Multiply-accumulates of one forward pass on one image (for reports). */
export function backboneMacs(cfg: BackboneConfig): number {
  let macs = cfg.size * cfg.size * 27 * cfg.widths[0]!;
  for (let s = 0; s < cfg.widths.length; s++) {
    const side = cfg.size / 2 ** s;
    const w = cfg.widths[s]!;
    if (s > 0) macs += side * side * 9 * cfg.widths[s - 1]! * w;
    macs += cfg.depths[s]! * side * side * 9 * w * w;
  }
  return macs;
}
