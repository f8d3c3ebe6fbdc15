// Turning RGB images of any size into evaluator input: resampled to the model's side and scaled to
// [-1, 1], NHWC. Area resampling for downscaling (each output pixel averages the source area it
// covers), bilinear for upscaling.
import { tf, type Tensor } from '../../engine/tf.js';

/** An RGB uint8 image, rows top to bottom, HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Resample an RGB uint8 image to size x size RGB float32 in [0, 255]. */
export function resampleRgb(img: RgbImage, size: number): Float32Array {
  const { width: w, height: h, data } = img;
  if (data.length !== w * h * 3) throw new Error(`image: ${w}x${h} RGB needs ${w * h * 3} bytes, got ${data.length}`);
  const out = new Float32Array(size * size * 3);
  if (w === size && h === size) {
    for (let i = 0; i < out.length; i++) out[i] = data[i]!;
    return out;
  }
  // Separable: resample rows (x), then columns (y), each with its own 1-D weights.
  const weights = (from: number, to: number): { idx: Int32Array[]; w: Float32Array[] } => {
    const idx: Int32Array[] = [];
    const wts: Float32Array[] = [];
    const scale = from / to;
    for (let o = 0; o < to; o++) {
      const is: number[] = [];
      const ws: number[] = [];
      if (scale >= 1) {
        // Area: source interval [o*scale, (o+1)*scale).
        const a = o * scale;
        const b = (o + 1) * scale;
        for (let s = Math.floor(a); s < Math.min(from, Math.ceil(b)); s++) {
          const cover = Math.min(b, s + 1) - Math.max(a, s);
          if (cover > 1e-9) { is.push(s); ws.push(cover / scale); }
        }
      } else {
        // Bilinear with pixel centres aligned.
        const c = (o + 0.5) * scale - 0.5;
        const s0 = Math.floor(c);
        const f = c - s0;
        const clamp = (v: number): number => Math.min(from - 1, Math.max(0, v));
        is.push(clamp(s0), clamp(s0 + 1));
        ws.push(1 - f, f);
      }
      idx.push(Int32Array.from(is));
      wts.push(Float32Array.from(ws));
    }
    return { idx, w: wts };
  };
  const wx = weights(w, size);
  const wy = weights(h, size);
  const tmp = new Float32Array(h * size * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < size; x++) {
      const is = wx.idx[x]!;
      const ws = wx.w[x]!;
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < is.length; k++) s += ws[k]! * data[(y * w + is[k]!) * 3 + c]!;
        tmp[(y * size + x) * 3 + c] = s;
      }
    }
  }
  for (let y = 0; y < size; y++) {
    const is = wy.idx[y]!;
    const ws = wy.w[y]!;
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < is.length; k++) s += ws[k]! * tmp[(is[k]! * size + x) * 3 + c]!;
        out[(y * size + x) * 3 + c] = s;
      }
    }
  }
  return out;
}

/** Images (any sizes) as one NHWC float32 tensor [N, size, size, 3] in [-1, 1]. */
export function imagesToInput(images: readonly RgbImage[], size: number): Tensor {
  const per = size * size * 3;
  const data = new Float32Array(images.length * per);
  images.forEach((img, i) => {
    const r = resampleRgb(img, size);
    for (let j = 0; j < per; j++) data[i * per + j] = r[j]! / 127.5 - 1;
  });
  return tf.tensor4d(data, [images.length, size, size, 3]);
}

/** N square uint8 RGB images packed as N x side x side x 3 (the dataset layout) as model input. */
export function packedToInput(data: Uint8Array, n: number, side: number, size: number): Tensor {
  const per = side * side * 3;
  if (data.length < n * per) throw new Error(`images: ${n} x ${side}x${side} RGB needs ${n * per} bytes, got ${data.length}`);
  if (side === size) {
    const f = new Float32Array(n * per);
    for (let i = 0; i < n * per; i++) f[i] = data[i]! / 127.5 - 1;
    return tf.tensor4d(f, [n, size, size, 3]);
  }
  const imgs: RgbImage[] = [];
  for (let i = 0; i < n; i++) imgs.push({ width: side, height: side, data: data.subarray(i * per, (i + 1) * per) });
  return imagesToInput(imgs, size);
}

/**
 * A generator's output tensor as evaluator input: NCHW [N, 3, H, W] in [-1, 1] (the autoencoder /
 * sampler convention) or NHWC [N, H, W, 3] when `layout` says so; resized to `size` by tfjs'
 * area-like average pooling for integer factors, bilinear otherwise.
 */
export function tensorToInput(x: Tensor, size: number, layout: 'NCHW' | 'NHWC' = 'NCHW'): Tensor {
  return tf.tidy(() => {
    let t = (layout === 'NCHW' ? x.transpose([0, 2, 3, 1]) : x) as tf.Tensor4D;
    const [, h, w, c] = t.shape;
    if (c !== 3) throw new Error(`images: expected 3 channels, got shape [${x.shape.join(', ')}]`);
    if (h !== size || w !== size) {
      if (h === w && h % size === 0) t = tf.avgPool(t, h / size, h / size, 'valid');
      else t = tf.image.resizeBilinear(t, [size, size], false, true);
    }
    return tf.clipByValue(t, -1, 1);
  });
}
