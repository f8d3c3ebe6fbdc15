// SSIM (Wang et al. 2004) of two RGB images, computed per channel on values in [0, 1] and averaged
// over the channels. Default: the standard 11x11 Gaussian window with sigma 1.5, population
// statistics, K1 = 0.01, K2 = 0.03, 'valid' windows only (no padding), as in pytorch-msssim and
// scikit-image's gaussian_weights=True. A uniform window with sample covariance (scikit-image's
// defaults, 7x7) is an option. Windows larger than the image shrink to fit.
import type { RgbImage } from '../models/classifier/images.js';

export interface SsimOptions {
  /** 'gaussian' (default) or 'uniform'. */
  window?: 'gaussian' | 'uniform';
  /** Window side (default 11 Gaussian, 7 uniform). */
  size?: number;
  /** Gaussian sigma (default 1.5). */
  sigma?: number;
  /** Scale variances by n/(n-1) (scikit-image's uniform default; default false). */
  sampleCovariance?: boolean;
}

/** The separable 1-D window weights, summing to 1. */
function window1d(opts: SsimOptions, side: number): Float64Array {
  const kind = opts.window ?? 'gaussian';
  const size = Math.min(opts.size ?? (kind === 'gaussian' ? 11 : 7), side);
  const w = new Float64Array(size);
  const sigma = opts.sigma ?? 1.5;
  const mid = (size - 1) / 2;
  for (let i = 0; i < size; i++) w[i] = kind === 'gaussian' ? Math.exp(-((i - mid) ** 2) / (2 * sigma * sigma)) : 1;
  const s = w.reduce((a, b) => a + b, 0);
  for (let i = 0; i < size; i++) w[i]! /= s;
  return w;
}

/** Valid 2-D filtering of an H x W plane with the separable window w. */
function filter(plane: Float64Array, H: number, W: number, w: Float64Array): Float64Array {
  const k = w.length;
  const oh = H - k + 1;
  const ow = W - k + 1;
  const rowsOut = new Float64Array(H * ow);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += w[i]! * plane[y * W + x + i]!;
      rowsOut[y * ow + x] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += w[i]! * rowsOut[(y + i) * ow + x]!;
      out[y * ow + x] = s;
    }
  }
  return out;
}

/** Mean SSIM over the RGB channels (1 for identical images). */
export function ssim(a: RgbImage, b: RgbImage, opts: SsimOptions = {}): number {
  if (a.width !== b.width || a.height !== b.height) throw new Error('ssim: images differ in size');
  const { width: W, height: H } = a;
  const w = window1d(opts, Math.min(W, H));
  const C1 = 0.01 ** 2;
  const C2 = 0.03 ** 2;
  // For a uniform window of n pixels, n/(n-1) turns population (co)variances into sample ones.
  const n = w.length * w.length;
  const cov = opts.sampleCovariance && n > 1 ? n / (n - 1) : 1;
  const N = W * H;
  let total = 0;
  for (let c = 0; c < 3; c++) {
    const pa = new Float64Array(N);
    const pb = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      pa[i] = a.data[i * 3 + c]! / 255;
      pb[i] = b.data[i * 3 + c]! / 255;
    }
    const ma = filter(pa, H, W, w);
    const mb = filter(pb, H, W, w);
    const maa = filter(pa.map((v) => v * v), H, W, w);
    const mbb = filter(pb.map((v) => v * v), H, W, w);
    const mab = filter(pa.map((v, i) => v * pb[i]!), H, W, w);
    let sum = 0;
    for (let i = 0; i < ma.length; i++) {
      const ua = ma[i]!;
      const ub = mb[i]!;
      const va = (maa[i]! - ua * ua) * cov;
      const vb = (mbb[i]! - ub * ub) * cov;
      const vab = (mab[i]! - ua * ub) * cov;
      sum += ((2 * ua * ub + C1) * (2 * vab + C2)) / ((ua * ua + ub * ub + C1) * (va + vb + C2));
    }
    total += sum / ma.length;
  }
  return total / 3;
}
