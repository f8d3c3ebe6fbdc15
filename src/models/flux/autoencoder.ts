// The FLUX autoencoder: the same computation as the reference
// (black-forest-labs/flux src/flux/modules/autoencoder.py), written over the engine's ops.
//
// - Parameters keep the reference names and the reference (torch) layouts: conv weights
//   [out, in, kh, kw], GroupNorm weight/bias [C], attention q/k/v/proj_out as 1x1 convs [C, C, 1, 1].
//   So `weights` is exactly the reference state_dict, gradients come back in that layout, and a
//   checkpoint saves without conversion.
// - Images and latents are NCHW at the API, like the reference. Inside, activations are NHWC
//   (what tfjs conv2d runs); weights are transposed to [kh, kw, in, out] per call, which is cheap
//   next to the convolution itself.
// - GroupNorm(32, eps 1e-6) + swish in the ResNet blocks; Downsample pads (0, 1, 0, 1) (right and
//   bottom only) and convolves with stride 2; Upsample is nearest 2x then a 3x3 conv; the mid
//   attention is single-head over the h*w positions with scale 1/sqrt(C).
// - encode() returns scale * (mean - shift), the mean of the diagonal Gaussian (no sampling: the
//   reference samples by default at training time; pass a seed to encodeSample for that);
//   decode(z) runs the decoder on z / scale + shift.
import { tf, type Tensor } from '../../engine/tf.js';
import { attention, linear } from '../../engine/ops.js';
import { randnArray } from '../../engine/rng.js';
import { loadAutoEncoderCheckpoint } from '../../io/checkpoint.js';

/** AutoEncoderParams of the reference, same field names. */
export interface AutoEncoderParams {
  resolution: number;
  in_channels: number;
  ch: number;
  out_ch: number;
  ch_mult: number[];
  num_res_blocks: number;
  z_channels: number;
  scale_factor: number;
  shift_factor: number;
}

/** The FLUX.1 (dev and schnell) autoencoder, `ae.safetensors`. */
export const FLUX_AE_PARAMS: Readonly<AutoEncoderParams> = Object.freeze({
  resolution: 256,
  in_channels: 3,
  ch: 128,
  out_ch: 3,
  ch_mult: [1, 2, 4, 4],
  num_res_blocks: 2,
  z_channels: 16,
  scale_factor: 0.3611,
  shift_factor: 0.1159,
});

const GROUPS = 32;
const EPS = 1e-6;

// ------------------------------------------------------------------ parameter listing

function resnetShapes(prefix: string, cin: number, cout: number, out: [string, number[]][]): void {
  out.push([`${prefix}.norm1.weight`, [cin]], [`${prefix}.norm1.bias`, [cin]]);
  out.push([`${prefix}.conv1.weight`, [cout, cin, 3, 3]], [`${prefix}.conv1.bias`, [cout]]);
  out.push([`${prefix}.norm2.weight`, [cout]], [`${prefix}.norm2.bias`, [cout]]);
  out.push([`${prefix}.conv2.weight`, [cout, cout, 3, 3]], [`${prefix}.conv2.bias`, [cout]]);
  if (cin !== cout) out.push([`${prefix}.nin_shortcut.weight`, [cout, cin, 1, 1]], [`${prefix}.nin_shortcut.bias`, [cout]]);
}

function attnShapes(prefix: string, c: number, out: [string, number[]][]): void {
  out.push([`${prefix}.norm.weight`, [c]], [`${prefix}.norm.bias`, [c]]);
  for (const n of ['q', 'k', 'v', 'proj_out']) out.push([`${prefix}.${n}.weight`, [c, c, 1, 1]], [`${prefix}.${n}.bias`, [c]]);
}

function midShapes(prefix: string, c: number, out: [string, number[]][]): void {
  resnetShapes(`${prefix}.mid.block_1`, c, c, out);
  attnShapes(`${prefix}.mid.attn_1`, c, out);
  resnetShapes(`${prefix}.mid.block_2`, c, c, out);
}

/** Check the params the way the reference constructor would fail on them, in one line. */
export function validateAutoEncoderParams(p: AutoEncoderParams): void {
  const bad = (what: string): never => {
    throw new Error(`invalid AutoEncoderParams: ${what}`);
  };
  for (const k of ['resolution', 'in_channels', 'ch', 'out_ch', 'num_res_blocks', 'z_channels'] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 1) bad(`${k} must be a positive integer, got ${p[k]}`);
  }
  if (!Array.isArray(p.ch_mult) || p.ch_mult.length < 1) bad('ch_mult must be a non-empty list');
  for (const m of p.ch_mult) if (!Number.isInteger(m) || m < 1) bad(`ch_mult entries must be positive integers, got ${m}`);
  for (const m of p.ch_mult) if ((p.ch * m) % GROUPS !== 0) bad(`ch * ch_mult (${p.ch * m}) must be divisible by ${GROUPS} groups`);
  if (p.ch % GROUPS !== 0) bad(`ch (${p.ch}) must be divisible by ${GROUPS} groups`);
  if (!(p.scale_factor !== 0 && Number.isFinite(p.scale_factor))) bad('scale_factor must be finite and non-zero');
  if (!Number.isFinite(p.shift_factor)) bad('shift_factor must be finite');
}

/**
 * Every parameter of the reference AutoEncoder state_dict, in registration order, with its shape.
 * Allocates nothing.
 */
export function autoEncoderParamShapes(p: AutoEncoderParams): [string, number[]][] {
  validateAutoEncoderParams(p);
  const out: [string, number[]][] = [];
  const n = p.ch_mult.length;
  // encoder
  out.push(['encoder.conv_in.weight', [p.ch, p.in_channels, 3, 3]], ['encoder.conv_in.bias', [p.ch]]);
  const inMult = [1, ...p.ch_mult];
  let blockIn = p.ch;
  for (let i = 0; i < n; i++) {
    blockIn = p.ch * inMult[i]!;
    const blockOut = p.ch * p.ch_mult[i]!;
    for (let j = 0; j < p.num_res_blocks; j++) {
      resnetShapes(`encoder.down.${i}.block.${j}`, blockIn, blockOut, out);
      blockIn = blockOut;
    }
    if (i !== n - 1) out.push([`encoder.down.${i}.downsample.conv.weight`, [blockIn, blockIn, 3, 3]], [`encoder.down.${i}.downsample.conv.bias`, [blockIn]]);
  }
  midShapes('encoder', blockIn, out);
  out.push(['encoder.norm_out.weight', [blockIn]], ['encoder.norm_out.bias', [blockIn]]);
  out.push(['encoder.conv_out.weight', [2 * p.z_channels, blockIn, 3, 3]], ['encoder.conv_out.bias', [2 * p.z_channels]]);
  // decoder (the reference builds up[] from the lowest resolution and prepends; the state_dict
  // lists up.0 first, so collect per level and emit in index order)
  blockIn = p.ch * p.ch_mult[n - 1]!;
  out.push(['decoder.conv_in.weight', [blockIn, p.z_channels, 3, 3]], ['decoder.conv_in.bias', [blockIn]]);
  midShapes('decoder', blockIn, out);
  const levels: [string, number[]][][] = new Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const lv: [string, number[]][] = [];
    const blockOut = p.ch * p.ch_mult[i]!;
    for (let j = 0; j < p.num_res_blocks + 1; j++) {
      resnetShapes(`decoder.up.${i}.block.${j}`, blockIn, blockOut, lv);
      blockIn = blockOut;
    }
    if (i !== 0) lv.push([`decoder.up.${i}.upsample.conv.weight`, [blockIn, blockIn, 3, 3]], [`decoder.up.${i}.upsample.conv.bias`, [blockIn]]);
    levels[i] = lv;
  }
  for (const lv of levels) out.push(...lv);
  out.push(['decoder.norm_out.weight', [blockIn]], ['decoder.norm_out.bias', [blockIn]]);
  out.push(['decoder.conv_out.weight', [p.out_ch, blockIn, 3, 3]], ['decoder.conv_out.bias', [p.out_ch]]);
  return out;
}

/** Total parameter count for the params. */
export function autoEncoderParamCount(p: AutoEncoderParams): number {
  return autoEncoderParamShapes(p).reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
}

// ------------------------------------------------------------------ NHWC building blocks

/** GroupNorm over NHWC activations (channels last), affine per channel, optional swish after. */
export function groupNormNHWC(x: Tensor, weight: Tensor, bias: Tensor, swish = false, groups = GROUPS, eps = EPS): Tensor {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    const g = x.reshape([b, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const y = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps))).reshape([b, h, w, c]);
    const z = tf.add(tf.mul(y, weight), bias);
    return swish ? tf.mul(z, tf.sigmoid(z)) : z;
  });
}

/** Torch-layout conv weight [out, in, kh, kw] -> tfjs filter [kh, kw, in, out]. */
function filter(w: Tensor): tf.Tensor4D {
  return tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D;
}

/** 2-D convolution of NHWC x with a torch-layout weight; 'same' (pad k/2) or 'valid'. */
export function conv2dTorch(x: Tensor, w: Tensor, b: Tensor | null, stride: 1 | 2 = 1, pad: 'same' | 'valid' = 'same'): Tensor {
  return tf.tidy(() => {
    const [, , kh, kw] = w.shape as [number, number, number, number];
    if (kh === 1 && kw === 1 && stride === 1) {
      // 1x1: a matmul over channels, no transpose needed beyond the reshape.
      return linear(x, w.reshape([w.shape[0]!, w.shape[1]!]), b);
    }
    let y: Tensor = tf.conv2d(x as tf.Tensor4D, filter(w), stride, pad);
    if (b) y = tf.add(y, b);
    return y;
  });
}

/** Nearest-neighbour 2x upsampling of NHWC (torch interpolate(scale_factor=2, mode='nearest')). */
export function upsampleNearest2x(x: Tensor): Tensor {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    // Duplicate each column, then each row (concat has a gradient everywhere; rank-6 tile does not).
    const cols = tf.concat([x.reshape([b * h, w, 1, c]), x.reshape([b * h, w, 1, c])], 2).reshape([b, h, 1, 2 * w * c]);
    return tf.concat([cols, cols], 2).reshape([b, 2 * h, 2 * w, c]);
  });
}

// ------------------------------------------------------------------ the model

export type AutoEncoderWeights = Record<string, Tensor>;

/** Weights as plain arrays (what checkpoint readers produce). */
export interface HostWeight {
  shape: number[];
  data: Float32Array;
}

/**
 * The FLUX autoencoder. Building it allocates nothing; `load` (or the `fromWeights` / `random`
 * factories) supplies the reference-named weights.
 */
export class AutoEncoder {
  readonly params: AutoEncoderParams;
  readonly shapes: ReadonlyMap<string, number[]>;
  private w: AutoEncoderWeights | null = null;

  constructor(params: AutoEncoderParams) {
    this.params = { ...params, ch_mult: [...params.ch_mult] };
    this.shapes = new Map(autoEncoderParamShapes(this.params));
  }

  /** Build and load from reference-named tensors (taken over, not copied) or host arrays. */
  static fromWeights(params: AutoEncoderParams, weights: Record<string, Tensor | HostWeight>): AutoEncoder {
    const ae = new AutoEncoder(params);
    ae.load(weights);
    return ae;
  }

  /** Random weights (seeded; torch-like fan-in scaling, norms at 1/0) for tests and training starts. */
  static random(params: AutoEncoderParams, seed: number): AutoEncoder {
    const ae = new AutoEncoder(params);
    const ws: Record<string, Tensor> = {};
    let k = 0;
    for (const [name, shape] of ae.shapes) {
      k++;
      const size = shape.reduce((a, b) => a * b, 1);
      if (/\.norm[^.]*\.weight$/.test(name)) ws[name] = tf.ones(shape);
      else if (/\.norm[^.]*\.bias$/.test(name)) ws[name] = tf.zeros(shape);
      else {
        const fanIn = name.endsWith('.weight') ? shape.slice(1).reduce((a, b) => a * b, 1) : (ae.shapes.get(name.replace(/\.bias$/, '.weight'))?.slice(1).reduce((a, b) => a * b, 1) ?? 1);
        const data = randnArray(size, seed * 100003 + k);
        const s = 1 / Math.sqrt(fanIn);
        for (let i = 0; i < size; i++) data[i]! *= s;
        ws[name] = tf.tensor(data, shape);
      }
    }
    ae.load(ws);
    return ae;
  }

  /** Whether weights are loaded. */
  get loaded(): boolean {
    return this.w !== null;
  }

  /** The reference-named weights (torch layouts). Throws when none are loaded. */
  get weights(): Readonly<AutoEncoderWeights> {
    if (!this.w) throw new Error('AutoEncoder: no weights loaded');
    return this.w;
  }

  /**
   * Load reference-named weights. Every expected name must be present with its exact shape, and no
   * other names: the error names the first few offenders in one line. Tensors passed in are owned by
   * the model afterwards (disposed by dispose()); host arrays are copied into tensors.
   */
  load(weights: Record<string, Tensor | HostWeight>): void {
    const missing: string[] = [];
    const unexpected: string[] = [];
    const wrong: string[] = [];
    for (const [name, shape] of this.shapes) {
      const t = weights[name];
      if (!t) missing.push(name);
      else if (!sameShape(t.shape, shape)) wrong.push(`${name} [${t.shape.join(', ')}] (expected [${shape.join(', ')}])`);
    }
    for (const name of Object.keys(weights)) if (!this.shapes.has(name)) unexpected.push(name);
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${missing.length} key(s): ${firstFew(missing)}`);
    if (unexpected.length) parts.push(`unexpected ${unexpected.length} key(s): ${firstFew(unexpected)}`);
    if (wrong.length) parts.push(`wrong shape for ${wrong.length}: ${firstFew(wrong)}`);
    if (parts.length) throw new Error(`autoencoder weights do not match the params: ${parts.join('; ')}`);
    this.dispose();
    const w: AutoEncoderWeights = {};
    for (const name of this.shapes.keys()) {
      const t = weights[name]!;
      w[name] = t instanceof tf.Tensor ? t : tf.tensor(t.data, t.shape, 'float32');
    }
    this.w = w;
  }

  /** Free the weights. */
  dispose(): void {
    if (this.w) for (const t of Object.values(this.w)) t.dispose();
    this.w = null;
  }

  // ---------------------------------------------------------------- blocks (NHWC inside)

  private p(name: string): Tensor {
    const t = this.weights[name];
    if (!t) throw new Error(`AutoEncoder: no parameter ${name}`);
    return t;
  }

  private conv(x: Tensor, prefix: string, stride: 1 | 2 = 1, pad: 'same' | 'valid' = 'same'): Tensor {
    return conv2dTorch(x, this.p(`${prefix}.weight`), this.p(`${prefix}.bias`), stride, pad);
  }

  private norm(x: Tensor, prefix: string, swish: boolean): Tensor {
    return groupNormNHWC(x, this.p(`${prefix}.weight`), this.p(`${prefix}.bias`), swish);
  }

  private resnet(x: Tensor, prefix: string): Tensor {
    return tf.tidy(() => {
      let h = this.norm(x, `${prefix}.norm1`, true);
      h = this.conv(h, `${prefix}.conv1`);
      h = this.norm(h, `${prefix}.norm2`, true);
      h = this.conv(h, `${prefix}.conv2`);
      const skip = this.w![`${prefix}.nin_shortcut.weight`] ? this.conv(x, `${prefix}.nin_shortcut`) : x;
      return tf.add(skip, h);
    });
  }

  private attn(x: Tensor, prefix: string): Tensor {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape as [number, number, number, number];
      const hn = this.norm(x, `${prefix}.norm`, false);
      const q = this.conv(hn, `${prefix}.q`).reshape([b, 1, h * w, c]);
      const k = this.conv(hn, `${prefix}.k`).reshape([b, 1, h * w, c]);
      const v = this.conv(hn, `${prefix}.v`).reshape([b, 1, h * w, c]);
      const a = attention(q, k, v).reshape([b, h, w, c]);
      return tf.add(x, this.conv(a, `${prefix}.proj_out`));
    });
  }

  private mid(x: Tensor, prefix: string): Tensor {
    return tf.tidy(() => {
      let h = this.resnet(x, `${prefix}.mid.block_1`);
      h = this.attn(h, `${prefix}.mid.attn_1`);
      return this.resnet(h, `${prefix}.mid.block_2`);
    });
  }

  /** Encoder forward, NHWC in and out: the 2*z moments (mean, logvar) before the Gaussian. */
  encoderNHWC(x: Tensor): Tensor {
    const p = this.params;
    const n = p.ch_mult.length;
    return tf.tidy(() => {
      let h = this.conv(x, 'encoder.conv_in');
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < p.num_res_blocks; j++) h = this.resnet(h, `encoder.down.${i}.block.${j}`);
        if (i !== n - 1) {
          const padded = tf.pad(h, [[0, 0], [0, 1], [0, 1], [0, 0]]);
          h = this.conv(padded, `encoder.down.${i}.downsample.conv`, 2, 'valid');
        }
      }
      h = this.mid(h, 'encoder');
      h = this.norm(h, 'encoder.norm_out', true);
      return this.conv(h, 'encoder.conv_out');
    });
  }

  /** Decoder forward, NHWC in and out, on the unscaled latent. */
  decoderNHWC(z: Tensor): Tensor {
    const p = this.params;
    const n = p.ch_mult.length;
    return tf.tidy(() => {
      let h = this.conv(z, 'decoder.conv_in');
      h = this.mid(h, 'decoder');
      for (let i = n - 1; i >= 0; i--) {
        for (let j = 0; j < p.num_res_blocks + 1; j++) h = this.resnet(h, `decoder.up.${i}.block.${j}`);
        if (i !== 0) h = this.conv(upsampleNearest2x(h), `decoder.up.${i}.upsample.conv`);
      }
      h = this.norm(h, 'decoder.norm_out', true);
      return this.conv(h, 'decoder.conv_out');
    });
  }

  // ---------------------------------------------------------------- public NCHW API

  private checkImage(x: Tensor, channels: number, what: string): void {
    if (x.rank !== 4 || x.shape[1] !== channels) {
      throw new Error(`AutoEncoder.${what}: expected [B, ${channels}, H, W], got [${x.shape.join(', ')}]`);
    }
  }

  /** Mean and log-variance of the latent distribution, NCHW [B, z, H/f, W/f] each (unscaled). */
  encodeMoments(image: Tensor): { mean: Tensor; logvar: Tensor } {
    this.checkImage(image, this.params.in_channels, 'encode');
    const f = 2 ** (this.params.ch_mult.length - 1);
    if (image.shape[2]! % f !== 0 || image.shape[3]! % f !== 0) {
      throw new Error(`AutoEncoder.encode: H and W must be multiples of ${f}, got ${image.shape[2]}x${image.shape[3]}`);
    }
    const [mean, logvar] = tf.tidy(() => {
      const m = this.encoderNHWC(tf.transpose(image, [0, 2, 3, 1]));
      const z = this.params.z_channels;
      const [b, h, w] = m.shape as [number, number, number, number];
      const mean = tf.slice(m, [0, 0, 0, 0], [b, h, w, z]).transpose([0, 3, 1, 2]);
      const logvar = tf.slice(m, [0, 0, 0, z], [b, h, w, z]).transpose([0, 3, 1, 2]);
      return [mean, logvar];
    });
    return { mean: mean!, logvar: logvar! };
  }

  /** encode(image) of the reference with the distribution's mean: scale * (mean - shift). NCHW. */
  encode(image: Tensor): Tensor {
    return tf.tidy(() => {
      const { mean } = this.encodeMoments(image);
      return tf.mul(tf.sub(mean, this.params.shift_factor), this.params.scale_factor);
    });
  }

  /** encode with a sample of the diagonal Gaussian (mean + exp(logvar/2) * noise), seeded. */
  encodeSample(image: Tensor, seed: number): Tensor {
    return tf.tidy(() => {
      const { mean, logvar } = this.encodeMoments(image);
      const noise = tf.tensor(randnArray(mean.size, seed), mean.shape);
      const z = tf.add(mean, tf.mul(tf.exp(tf.mul(logvar, 0.5)), noise));
      return tf.mul(tf.sub(z, this.params.shift_factor), this.params.scale_factor);
    });
  }

  /** decode(z) of the reference: decoder(z / scale + shift). NCHW in [B, z, h, w], out [B, out_ch, H, W]. */
  decode(latent: Tensor): Tensor {
    this.checkImage(latent, this.params.z_channels, 'decode');
    return tf.tidy(() => {
      const z = tf.add(tf.div(latent, this.params.scale_factor), this.params.shift_factor);
      return this.decoderNHWC(tf.transpose(z, [0, 2, 3, 1])).transpose([0, 3, 1, 2]);
    });
  }

  /** decode(encode(x)), as the reference forward. */
  reconstruct(image: Tensor): Tensor {
    return tf.tidy(() => this.decode(this.encode(image)));
  }
}

/**
 * Load an autoencoder checkpoint (reference `ae.safetensors` or diffusers AutoencoderKL names, any
 * float dtype) for the params (default: FLUX.1's). Bad files fail with one line (CheckpointError).
 */
export async function loadAutoEncoder(path: string, params: AutoEncoderParams = FLUX_AE_PARAMS): Promise<AutoEncoder> {
  const ck = await loadAutoEncoderCheckpoint(path, autoEncoderParamShapes(params));
  return AutoEncoder.fromWeights(params, ck.weights);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function firstFew(xs: string[], n = 5): string {
  return xs.slice(0, n).join(', ') + (xs.length > n ? `, ... (${xs.length - n} more)` : '');
}
