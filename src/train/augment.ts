// Image augmentation for the evaluators (classifier, CLIP image tower). emoji-world has one render
// per (concept, vendor), so the evaluators see each training image thousands of times; strong,
// seeded augmentation is what makes them recognise a concept in a generated image rather than
// memorise three bitmaps. Every draw comes from the Rng passed in, so a view is a pure function
// of (image, seed).
//
// One view of a size x size RGB uint8 render, in this order:
//   1. geometry: random scale (zoom in/out, slight aspect change), rotation and translation,
//      bilinear sampling; what falls outside the source is background;
//   2. background tint: the background (white, connected to the border) becomes a light colour;
//   3. colour: brightness, contrast, saturation and gamma jitter (never hue: many concepts differ
//      only by colour, such as the coloured hearts and circles);
//   4. cutout: sometimes a small patch is painted with the background colour;
//   5. blur: sometimes a Gaussian blur;
//   6. noise: sometimes per-pixel Gaussian noise.
// The result is written as float32 in [-1, 1], HWC.
import type { Rng } from '../engine/rng.js';

export interface AugmentConfig {
  /** Max translation in pixels (each axis, uniform). */
  translate: number;
  /** Scale range [lo, hi] (> 1 zooms in). */
  scale: [number, number];
  /** Max relative aspect change (x and y scales differ by up to this factor). */
  aspect: number;
  /** Max rotation in degrees. */
  rotate: number;
  /** Probability and max strength (0..1, distance from white) of a background tint. */
  tintProb: number;
  tintMax: number;
  /** Max brightness shift (in [0, 1] units), contrast and saturation factor deviations, gamma deviation. */
  brightness: number;
  contrast: number;
  saturation: number;
  gamma: number;
  /** Probability and side range (pixels) of a cutout patch. */
  cutoutProb: number;
  cutoutSize: [number, number];
  /** Probability and sigma range (pixels) of a Gaussian blur. */
  blurProb: number;
  blurSigma: [number, number];
  /** Probability and std range (in [0, 1] units) of Gaussian noise. */
  noiseProb: number;
  noiseStd: [number, number];
}

/** The default recipe for 32x32 renders. */
export const DEFAULT_AUGMENT: AugmentConfig = {
  translate: 3,
  scale: [0.78, 1.15],
  aspect: 0.08,
  rotate: 12,
  tintProb: 0.3,
  tintMax: 0.25,
  brightness: 0.08,
  contrast: 0.2,
  saturation: 0.25,
  gamma: 0.2,
  cutoutProb: 0.2,
  cutoutSize: [4, 9],
  blurProb: 0.35,
  blurSigma: [0.4, 1.1],
  noiseProb: 0.4,
  noiseStd: [0.01, 0.06],
};

/** No augmentation at all (the render itself), for clean evaluation. */
export const NO_AUGMENT: AugmentConfig = {
  translate: 0, scale: [1, 1], aspect: 0, rotate: 0, tintProb: 0, tintMax: 0, brightness: 0, contrast: 0,
  saturation: 0, gamma: 0, cutoutProb: 0, cutoutSize: [0, 0], blurProb: 0, blurSigma: [0, 0], noiseProb: 0, noiseStd: [0, 0],
};

/** Fill in missing fields of a partial recipe from DEFAULT_AUGMENT; unknown fields are an error. */
export function resolveAugment(partial: Partial<AugmentConfig> | undefined, where = 'augment'): AugmentConfig {
  const out = { ...DEFAULT_AUGMENT };
  for (const [k, v] of Object.entries(partial ?? {})) {
    if (!(k in DEFAULT_AUGMENT)) throw new Error(`${where}: unknown field "${k}"`);
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/**
 * The background mask of a render: 1 for near-white pixels connected to the image border
 * (4-neighbour flood fill), 0 elsewhere. Renders are composited on white, so this is the area
 * outside the artwork; white inside the art (eyes, teeth) is not connected and stays art.
 */
export function backgroundMask(img: Uint8Array, size: number, threshold = 240): Uint8Array {
  const n = size * size;
  const mask = new Uint8Array(n);
  const white = (i: number): boolean => img[i * 3]! >= threshold && img[i * 3 + 1]! >= threshold && img[i * 3 + 2]! >= threshold;
  const stack: number[] = [];
  for (let k = 0; k < size; k++) {
    for (const i of [k, (size - 1) * size + k, k * size, k * size + size - 1]) {
      if (!mask[i] && white(i)) {
        mask[i] = 1;
        stack.push(i);
      }
    }
  }
  while (stack.length) {
    const i = stack.pop()!;
    const y = Math.floor(i / size);
    const x = i - y * size;
    const nb = [x > 0 ? i - 1 : -1, x < size - 1 ? i + 1 : -1, y > 0 ? i - size : -1, y < size - 1 ? i + size : -1];
    for (const j of nb) {
      if (j >= 0 && !mask[j] && white(j)) {
        mask[j] = 1;
        stack.push(j);
      }
    }
  }
  return mask;
}

const uni = (rng: Rng, lo: number, hi: number): number => lo + (hi - lo) * rng.uniform();

function gaussianKernel(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(2.5 * sigma));
  const k = new Float32Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= s;
  return k;
}

/** Separable blur of an HWC float image in place (edges clamp). */
function blur(img: Float32Array, size: number, sigma: number, tmp: Float32Array): void {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const clamp = (v: number): number => (v < 0 ? 0 : v >= size ? size - 1 : v);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let j = -r; j <= r; j++) s += k[j + r]! * img[(y * size + clamp(x + j)) * 3 + c]!;
        tmp[(y * size + x) * 3 + c] = s;
      }
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let j = -r; j <= r; j++) s += k[j + r]! * tmp[(clamp(y + j) * size + x) * 3 + c]!;
        img[(y * size + x) * 3 + c] = s;
      }
    }
  }
}

/**
 * Write one augmented view of `src` (size x size x 3 uint8; `bg` its background mask) into
 * out[offset ..] as float32 HWC in [-1, 1]. Scratch buffers are allocated per call (cheap at 32x32).
 */
export function augmentInto(
  src: Uint8Array,
  bg: Uint8Array,
  size: number,
  cfg: AugmentConfig,
  rng: Rng,
  out: Float32Array,
  offset: number,
): void {
  const n = size * size;
  const img = new Float32Array(n * 3);
  const bgw = new Float32Array(n); // how much of each output pixel is background
  // 1. Geometry: output pixel p maps to source A^-1 (p - c - t) + c.
  const s = uni(rng, cfg.scale[0], cfg.scale[1]);
  const asp = 1 + uni(rng, -cfg.aspect, cfg.aspect);
  const sx = s * Math.sqrt(asp);
  const sy = s / Math.sqrt(asp);
  const th = (uni(rng, -cfg.rotate, cfg.rotate) * Math.PI) / 180;
  const tx = uni(rng, -cfg.translate, cfg.translate);
  const ty = uni(rng, -cfg.translate, cfg.translate);
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  const c0 = (size - 1) / 2;
  const identity = s === 1 && asp === 1 && th === 0 && tx === 0 && ty === 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = y * size + x;
      if (identity) {
        for (let c = 0; c < 3; c++) img[o * 3 + c] = src[o * 3 + c]! / 255;
        bgw[o] = bg[o]!;
        continue;
      }
      const dx = x - c0 - tx;
      const dy = y - c0 - ty;
      // Inverse rotation, then inverse scale.
      const u = (cos * dx + sin * dy) / sx + c0;
      const v = (-sin * dx + cos * dy) / sy + c0;
      const x0 = Math.floor(u);
      const y0 = Math.floor(v);
      const fx = u - x0;
      const fy = v - y0;
      let r = 0, g = 0, b = 0, m = 0;
      for (let j = 0; j < 4; j++) {
        const xx = x0 + (j & 1);
        const yy = y0 + (j >> 1);
        const w = ((j & 1) ? fx : 1 - fx) * ((j >> 1) ? fy : 1 - fy);
        if (w === 0) continue;
        if (xx < 0 || yy < 0 || xx >= size || yy >= size) {
          // Outside the source: white background.
          r += w; g += w; b += w; m += w;
        } else {
          const si = yy * size + xx;
          r += (w * src[si * 3]!) / 255;
          g += (w * src[si * 3 + 1]!) / 255;
          b += (w * src[si * 3 + 2]!) / 255;
          m += w * bg[si]!;
        }
      }
      img[o * 3] = r;
      img[o * 3 + 1] = g;
      img[o * 3 + 2] = b;
      bgw[o] = m;
    }
  }
  // 2. Background tint (a light colour, multiplied in where the background is).
  let bgc: [number, number, number] = [1, 1, 1];
  if (cfg.tintProb > 0 && rng.uniform() < cfg.tintProb) {
    bgc = [1 - cfg.tintMax * rng.uniform(), 1 - cfg.tintMax * rng.uniform(), 1 - cfg.tintMax * rng.uniform()];
    for (let i = 0; i < n; i++) {
      const w = bgw[i]!;
      if (w === 0) continue;
      for (let c = 0; c < 3; c++) img[i * 3 + c] = img[i * 3 + c]! * (1 - w) + bgc[c]! * w * img[i * 3 + c]!;
    }
  }
  // 3. Colour jitter.
  const bright = uni(rng, -cfg.brightness, cfg.brightness);
  const contrast = 1 + uni(rng, -cfg.contrast, cfg.contrast);
  const sat = 1 + uni(rng, -cfg.saturation, cfg.saturation);
  const gamma = Math.exp(uni(rng, -cfg.gamma, cfg.gamma));
  if (bright !== 0 || contrast !== 1 || sat !== 1 || gamma !== 1) {
    let mean = 0;
    for (let i = 0; i < n * 3; i++) mean += img[i]!;
    mean /= n * 3;
    for (let i = 0; i < n; i++) {
      const r = img[i * 3]!;
      const g = img[i * 3 + 1]!;
      const b = img[i * 3 + 2]!;
      const grey = 0.299 * r + 0.587 * g + 0.114 * b;
      for (let c = 0; c < 3; c++) {
        let v = img[i * 3 + c]!;
        v = grey + sat * (v - grey);
        v = mean + contrast * (v - mean) + bright;
        v = v <= 0 ? 0 : v >= 1 ? 1 : Math.pow(v, gamma);
        img[i * 3 + c] = v;
      }
    }
  }
  // 4. Cutout.
  if (cfg.cutoutProb > 0 && rng.uniform() < cfg.cutoutProb) {
    const side = Math.round(uni(rng, cfg.cutoutSize[0], cfg.cutoutSize[1]));
    const cx = rng.int(size);
    const cy = rng.int(size);
    for (let y = Math.max(0, cy - (side >> 1)); y < Math.min(size, cy - (side >> 1) + side); y++) {
      for (let x = Math.max(0, cx - (side >> 1)); x < Math.min(size, cx - (side >> 1) + side); x++) {
        for (let c = 0; c < 3; c++) img[(y * size + x) * 3 + c] = bgc[c]!;
      }
    }
  }
  // 5. Blur.
  if (cfg.blurProb > 0 && rng.uniform() < cfg.blurProb) {
    blur(img, size, uni(rng, cfg.blurSigma[0], cfg.blurSigma[1]), new Float32Array(n * 3));
  }
  // 6. Noise, then to [-1, 1].
  const noise = cfg.noiseProb > 0 && rng.uniform() < cfg.noiseProb ? uni(rng, cfg.noiseStd[0], cfg.noiseStd[1]) : 0;
  for (let i = 0; i < n * 3; i++) {
    let v = img[i]!;
    if (noise > 0) v += noise * rng.normal();
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    out[offset + i] = v * 2 - 1;
  }
}

/** A uint8 HWC image as float32 in [-1, 1] (no augmentation), written at out[offset ..]. */
export function toUnitRange(src: Uint8Array, out: Float32Array, offset: number): void {
  for (let i = 0; i < src.length; i++) out[offset + i] = src[i]! / 127.5 - 1;
}
