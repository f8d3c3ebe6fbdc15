// Kernels tfjs 4.22 lacks or gets wrong on a backend (engine-measurements §6), written in plain
// TypeScript over Float32Arrays through the host-kernel plumbing (kernels.ts). backend.ts enables
// them once at setup; the native addon may override some of them again on 'native'.
//
// What each fill fixes (all reproduced, with the numbers, in test/engine/gradients.test.ts, which
// fails without these fills; MCE_DISABLE_FILLS=all, or a comma list of the names below, switches
// fills off to show it; the gradient fill is named BatchMatMulGrad):
//
// wasm  Conv2DBackpropFilter           missing: the filter gradient of conv2d / conv2dTranspose
//                                      throws "Kernel 'Conv2DBackpropFilter' not registered for
//                                      backend 'wasm'".
// cpu   Conv2DBackpropFilter           correct but slow (TensorBuffer.get per element): 4.3 s for
//                                      x 4x16x16x32, 3x3, 32->32; the fill takes 70 ms, same values.
// wasm  DepthwiseConv2dNativeBackpropInput, DepthwiseConv2dNativeBackpropFilter
//                                      missing: both depthwiseConv2d gradients throw.
// wasm  UnsortedSegmentSum             missing: it is what the gather (embedding) gradient runs,
//                                      so grad of tf.gather(table, ids) throws. Also filled on cpu,
//                                      whose kernel is correct but costs one full pass over the
//                                      gradient per segment (vocabulary row).
// wasm  MaxPoolGrad                    wrong: gradient dropped for a window whose max is negative.
//                                      Repro: x = [[-1,-2,-3,-4],[-5,-6,-7,-8],[1,2,3,4],[5,6,7,-9]]
//                                      (1x4x4x1), grad of sum(maxPool(x, 2, 2, 'valid')) should be 1
//                                      at flat positions 0, 2, 13, 14; wasm gives 0 at position 2
//                                      (the window {-3,-4,-7,-8}).
// cpu   ResizeNearestNeighborGrad      wrong for batch > 1 with channels > 1: it reads dy at the
//                                      *images* batch stride. Repro: images 2x2x2x3 (values 0..23),
//                                      resized to 4x4, dy[i] = (7i) mod 5: cpu dx[12..] =
//                                      11,4,12,4,12,5,... where the right answer is 4,12,5,12,5,8,...
//                                      (engine-measurements: max error 5.8 at 2x3 channels).
// both  ResizeNearestNeighborGrad      wrong with halfPixelCenters = true (both backends ignore it
//                                      and use the corner mapping). Repro: images 1x3x5x1 resized
//                                      to 4x7 with halfPixelCenters: rows map 0,1,1,2 in the forward
//                                      pass, but the gradient sums dy rows as 0,0,1,2.
// both  AvgPoolGrad                    wrong with SAME padding: the forward divides each window by
//                                      its count of in-bounds pixels (TensorFlow semantics), the
//                                      gradient by the full window size. Repro: x = ones 1x3x3x1,
//                                      grad of sum(avgPool(x, 3, 1, 'same')) at the corner should be
//                                      1/4 + 1/6 + 1/6 + 1/9 = 0.694; both backends give 4/9 = 0.444.
// both  BatchMatMul (forward)          silently wrong when a batch dim broadcasts that is not a
//                                      leading one: the kernels flatten the batch dims and index
//                                      operand batches modulo their size. Repro: matMul(a [2,3,4,5],
//                                      b [2,1,5,2]) differs from matMul(a, broadcastTo(b, [2,3,5,2]))
//                                      by up to 9.7; a [2,1,4,5] with b [1,3,2,5]^T returns a tensor
//                                      of shape [2,3,4,2] holding 24 values instead of 48. The fill
//                                      wraps the stock kernel: such an operand is tiled to the full
//                                      batch shape first (the common patterns pass straight through).
//                                      On 'native' the addon's BatchMatMul replaces this wrapper and
//                                      must broadcast correctly itself (the same test checks it). tf.fused.matMul cannot be fixed at
//                                      the kernel (the op flattens the batch dims before the kernel
//                                      sees them, and its kernels reject 6 vs 3): use it only with
//                                      equal batch dims.
// wasm  _FusedMatMul                   silently wrong with a bias when the batch is > 1: from the
//                                      second row on the bias is read from the wrong column. Repro:
//                                      tf.fused.matMul({a [2,4,5], b [2,5,2], bias [0.5, -1]}) minus
//                                      add(matMul(a, b), bias) is -1.5 at every row >= 1 of column 0
//                                      (2-D inputs are right). The fill runs such calls as the stock
//                                      kernel without bias, then Add, then the activation kernel.
// wasm  Slice, SplitV, Sum (leading)  correct but slow: Slice and SplitV copy element by element in
//                                      JS (the qkv/MLP splits of every FLUX block and their
//                                      gradients); Sum over leading axes (bias and broadcast
//                                      gradients) transposes first. The fills copy contiguous runs
//                                      (TypedArray.set) and sum rows in place, with the same bytes
//                                      (the same float32 additions in the same order). Medians on an
//                                      idle machine, scripts/copy-kernels-time.ts with and without
//                                      MCE_DISABLE_FILLS=Slice,SplitV,Sum: split [32,32,3072] in three
//                                      34.2 -> 2.0 ms, slice [32,32,512] of it 9.9 -> 0.25 ms, sum of
//                                      [32,32,1024] over [0,1] 6.2 -> 3.1 ms. float32 only; other
//                                      dtypes and other reduction axes run the stock kernel.
// all   BatchMatMul gradient          wrong shape with batch broadcasting: tf.grads of
//                                      matMul(a [2,3,4,5], b [1,3,5,2]) (or b [5,2], or a [3,4,5]
//                                      with b [5,2]) throws "The gradient of input 'b' has shape
//                                      '2,3,5,2', which does not match the shape of the input". The
//                                      gradient is not summed over broadcast batch axes. This is a
//                                      gradient, not a kernel: fillGradients() re-registers it (with
//                                      the sums), and fillKernels calls it, so backend setup installs it.
//
// Checked and left alone: wasm Conv2DBackpropInput (the conv2d input gradient and conv2dTranspose
// forward) matches cpu to 2e-6 for stride 1 and 2, SAME and VALID, 1x1..4x4 filters, and passes the
// finite-difference checks. Einsum (missing on wasm, no gradient on cpu) is not filled: nothing in
// mce uses it. GatherNd has no gradient on any backend (not filled: the models use gather).
import { tf } from './tf.js';
import { hostKernel, type HostBackend, type HostKernelSpec } from './kernels.js';
import type { KernelConfig, NamedAttrMap, TensorInfo, KernelBackend, GradConfig, Tensor } from '@tensorflow/tfjs-core';

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

// ------------------------------------------------------------------ layout helpers

/** Element strides of an NHWC or NCHW 4-D tensor, as (batch, row, col, channel). */
function strides4(shape: number[], channelsLast: boolean): [number, number, number, number] {
  const [, d1, d2, d3] = shape as [number, number, number, number];
  if (channelsLast) return [d1 * d2 * d3, d2 * d3, d3, 1];
  // NCHW: shape = [b, c, h, w]
  return [d1 * d2 * d3, d3, 1, d2 * d3];
}

function convInfo(
  xShape: number[],
  filterShape: number[],
  attrs: NamedAttrMap,
  depthwise: boolean,
): Conv2DInfo {
  const dataFormat = tf.backend_util.convertConv2DDataFormat((attrs['dataFormat'] as 'NHWC' | 'NCHW') ?? 'NHWC');
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs['strides'] as [number, number] | number,
    (attrs['dilations'] as [number, number] | number | undefined) ?? 1,
    attrs['pad'] as 'same' | 'valid' | number,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    depthwise,
    dataFormat,
  );
}

// ------------------------------------------------------------------ conv2d filter gradient

/**
 * dW[kh, kw, ci, co] = sum over p = (b, oh, ow) of x[b, oh*s + kh*d - pt, ow*s + kw*d - pl, ci] * dy[p, co].
 * For each filter tap (kh, kw) that is a small GEMM over the P output pixels: gather the tap's input
 * column per channel (zeros in the padding), keep dy transposed per output channel, and take dot
 * products over P in 2x2 register blocks (scalar accumulators; no stores in the inner loop).
 */
const conv2DBackpropFilter: HostKernelSpec = {
  outputs: (_inputs, attrs) => [(attrs['filterShape'] as number[]).slice()],
  compute: ({ x, dy }, [dw], attrs) => {
    const info = convInfo(x!.shape, attrs['filterShape'] as number[], attrs, false);
    const last = info.dataFormat === 'channelsLast';
    const [xsB, xsR, xsC, xsD] = strides4(x!.shape, last);
    const [ysB, ysR, ysC, ysD] = strides4(dy!.shape, last);
    const { batchSize, inHeight, inWidth, inChannels: ci, outHeight, outWidth, outChannels: co } = info;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dwid } = info;
    const { filterHeight: fh, filterWidth: fw } = info;
    const pt = info.padInfo.top;
    const pl = info.padInfo.left;
    const xv = x!.data;
    const yv = dy!.data;
    const out = dw!.data;
    const P = batchSize * outHeight * outWidth;
    // dy transposed: dyT[o * P + p]
    const dyT = new Float32Array(co * P);
    for (let b = 0, p = 0; b < batchSize; b++)
      for (let oh = 0; oh < outHeight; oh++)
        for (let ow = 0; ow < outWidth; ow++, p++) {
          const yo = b * ysB + oh * ysR + ow * ysC;
          for (let o = 0; o < co; o++) dyT[o * P + p] = yv[yo + o * ysD]!;
        }
    const col = new Float32Array(ci * P);
    for (let kh = 0; kh < fh; kh++) {
      for (let kw = 0; kw < fw; kw++) {
        col.fill(0);
        for (let b = 0, p = 0; b < batchSize; b++)
          for (let oh = 0; oh < outHeight; oh++) {
            const ih = oh * sh + kh * dh - pt;
            for (let ow = 0; ow < outWidth; ow++, p++) {
              const iw = ow * sw + kw * dwid - pl;
              if (ih < 0 || ih >= inHeight || iw < 0 || iw >= inWidth) continue;
              const xo = b * xsB + ih * xsR + iw * xsC;
              for (let c = 0; c < ci; c++) col[c * P + p] = xv[xo + c * xsD]!;
            }
          }
        const wo = (kh * fw + kw) * ci * co;
        for (let c = 0; c < ci; c += 2) {
          const c1 = c + 1 < ci ? c + 1 : c;
          const a0 = c * P;
          const a1 = c1 * P;
          for (let o = 0; o < co; o += 2) {
            const o1 = o + 1 < co ? o + 1 : o;
            const b0 = o * P;
            const b1 = o1 * P;
            let s00 = 0;
            let s01 = 0;
            let s10 = 0;
            let s11 = 0;
            for (let p = 0; p < P; p++) {
              const x0 = col[a0 + p]!;
              const x1 = col[a1 + p]!;
              const y0 = dyT[b0 + p]!;
              const y1 = dyT[b1 + p]!;
              s00 += x0 * y0;
              s01 += x0 * y1;
              s10 += x1 * y0;
              s11 += x1 * y1;
            }
            out[wo + c * co + o] = s00;
            if (o1 !== o) out[wo + c * co + o1] = s01;
            if (c1 !== c) {
              out[wo + c1 * co + o] = s10;
              if (o1 !== o) out[wo + c1 * co + o1] = s11;
            }
          }
        }
      }
    }
  },
};

// ------------------------------------------------------------------ depthwise conv gradients

/** Depthwise: filter [fh, fw, inC, mult], output channel c*mult + m reads input channel c. NHWC only. */
const depthwiseBackpropInput: HostKernelSpec = {
  outputs: (_inputs, attrs) => [(attrs['inputShape'] as number[]).slice()],
  compute: ({ dy, filter }, [dx], attrs) => {
    const info = convInfo(attrs['inputShape'] as number[], filter!.shape, attrs, true);
    const { batchSize, inHeight, inWidth, inChannels: ci, outHeight, outWidth, outChannels: co } = info;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dwid } = info;
    const { filterHeight: fh, filterWidth: fw } = info;
    const mult = co / ci;
    const pt = info.padInfo.top;
    const pl = info.padInfo.left;
    const yv = dy!.data;
    const fv = filter!.data;
    const out = dx!.data;
    for (let b = 0; b < batchSize; b++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let ow = 0; ow < outWidth; ow++) {
          const yo = ((b * outHeight + oh) * outWidth + ow) * co;
          for (let kh = 0; kh < fh; kh++) {
            const ih = oh * sh + kh * dh - pt;
            if (ih < 0 || ih >= inHeight) continue;
            for (let kw = 0; kw < fw; kw++) {
              const iw = ow * sw + kw * dwid - pl;
              if (iw < 0 || iw >= inWidth) continue;
              const xo = ((b * inHeight + ih) * inWidth + iw) * ci;
              const fo = (kh * fw + kw) * ci * mult;
              for (let c = 0; c < ci; c++) {
                let acc = 0;
                for (let m = 0; m < mult; m++) acc += yv[yo + c * mult + m]! * fv[fo + c * mult + m]!;
                out[xo + c] += acc;
              }
            }
          }
        }
      }
    }
  },
};

const depthwiseBackpropFilter: HostKernelSpec = {
  outputs: (_inputs, attrs) => [(attrs['filterShape'] as number[]).slice()],
  compute: ({ x, dy }, [dw], attrs) => {
    const info = convInfo(x!.shape, attrs['filterShape'] as number[], attrs, true);
    const { batchSize, inHeight, inWidth, inChannels: ci, outHeight, outWidth, outChannels: co } = info;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dwid } = info;
    const { filterHeight: fh, filterWidth: fw } = info;
    const mult = co / ci;
    const pt = info.padInfo.top;
    const pl = info.padInfo.left;
    const xv = x!.data;
    const yv = dy!.data;
    const out = dw!.data;
    for (let b = 0; b < batchSize; b++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let ow = 0; ow < outWidth; ow++) {
          const yo = ((b * outHeight + oh) * outWidth + ow) * co;
          for (let kh = 0; kh < fh; kh++) {
            const ih = oh * sh + kh * dh - pt;
            if (ih < 0 || ih >= inHeight) continue;
            for (let kw = 0; kw < fw; kw++) {
              const iw = ow * sw + kw * dwid - pl;
              if (iw < 0 || iw >= inWidth) continue;
              const xo = ((b * inHeight + ih) * inWidth + iw) * ci;
              const fo = (kh * fw + kw) * co;
              for (let c = 0; c < ci; c++) {
                const xval = xv[xo + c]!;
                for (let m = 0; m < mult; m++) out[fo + c * mult + m] += xval * yv[yo + c * mult + m]!;
              }
            }
          }
        }
      }
    }
  },
};

// ------------------------------------------------------------------ unsorted segment sum

/**
 * out[s, ...] = sum of x[i..., ...] over the leading index tuples i with segmentIds[i] = s.
 * segmentIds arrives as float32 (see withFloatInputs); ids outside [0, numSegments) are dropped,
 * as in TensorFlow.
 */
const unsortedSegmentSum: HostKernelSpec = {
  outputs: ({ x, segmentIds }, attrs) => [[attrs['numSegments'] as number, ...x!.slice(segmentIds!.length)]],
  compute: ({ x, segmentIds }, [out], attrs) => {
    const n = attrs['numSegments'] as number;
    const ids = segmentIds!.data;
    const rows = ids.length;
    const inner = rows === 0 ? 0 : x!.data.length / rows;
    const xv = x!.data;
    const o = out!.data;
    for (let r = 0; r < rows; r++) {
      const s = ids[r]!;
      if (!(s >= 0 && s < n)) continue;
      const src = r * inner;
      const dst = s * inner;
      for (let j = 0; j < inner; j++) o[dst + j] += xv[src + j]!;
    }
  },
};

// ------------------------------------------------------------------ pooling gradients

/** One output position of a 2-D pool: its input window clipped to the image, and where dy is. */
interface PoolWindow {
  b: number;
  hs: number;
  he: number;
  ws: number;
  we: number;
  /** Offset of this position's channel vector in dy. */
  yo: number;
}

/** Walk every output position of a pool over an NHWC input, with the forward's geometry. */
function forEachPoolWindow(shape: number[], attrs: NamedAttrMap, visit: (w: PoolWindow) => void): void {
  const info = tf.backend_util.computePool2DInfo(
    shape as [number, number, number, number],
    attrs['filterSize'] as [number, number] | number,
    attrs['strides'] as [number, number] | number,
    1,
    attrs['pad'] as 'same' | 'valid' | number,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
  );
  const { batchSize, inHeight, inWidth, inChannels: ch, outHeight, outWidth } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * sh - info.padInfo.top;
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * sw - info.padInfo.left;
        visit({
          b,
          hs: Math.max(0, h0),
          he: Math.min(inHeight, h0 + fh),
          ws: Math.max(0, w0),
          we: Math.min(inWidth, w0 + fw),
          yo: ((b * outHeight + oh) * outWidth + ow) * ch,
        });
      }
    }
  }
}

/** Routes each dy to the first position (row-major in the window) holding the window's max. */
const maxPoolGrad: HostKernelSpec = {
  outputs: ({ input }) => [input!.slice()],
  compute: ({ dy, input }, [dx], attrs) => {
    const [, inHeight, inWidth, ch] = input!.shape as [number, number, number, number];
    const xv = input!.data;
    const yv = dy!.data;
    const out = dx!.data;
    forEachPoolWindow(input!.shape, attrs, ({ b, hs, he, ws, we, yo }) => {
      for (let c = 0; c < ch; c++) {
        let best = -Infinity;
        let at = -1;
        for (let h = hs; h < he; h++) {
          for (let w = ws; w < we; w++) {
            const idx = ((b * inHeight + h) * inWidth + w) * ch + c;
            const v = xv[idx]!;
            if (at < 0 || v > best) {
              best = v;
              at = idx;
            }
          }
        }
        if (at >= 0) out[at] += yv[yo + c]!;
      }
    });
  },
};

/** dx[window] += dy / (number of in-bounds pixels of the window), matching the forward. */
const avgPoolGrad: HostKernelSpec = {
  outputs: ({ input }) => [input!.slice()],
  compute: ({ dy, input }, [dx], attrs) => {
    const [, inHeight, inWidth, ch] = input!.shape as [number, number, number, number];
    const yv = dy!.data;
    const out = dx!.data;
    forEachPoolWindow(input!.shape, attrs, ({ b, hs, he, ws, we, yo }) => {
      const count = (he - hs) * (we - ws);
      if (count <= 0) return;
      for (let h = hs; h < he; h++) {
        for (let w = ws; w < we; w++) {
          const xo = ((b * inHeight + h) * inWidth + w) * ch;
          for (let c = 0; c < ch; c++) out[xo + c] += yv[yo + c]! / count;
        }
      }
    });
  },
};

// ------------------------------------------------------------------ nearest-neighbour resize gradient

/**
 * The source index of output index i, exactly as tfjs's ResizeNearestNeighbor forward computes it
 * (cpu backend; the wasm forward agrees).
 */
function nearestSource(
  i: number,
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  halfPixelCenters: boolean,
): number {
  const effIn = alignCorners && outSize > 1 ? inSize - 1 : inSize;
  const effOut = alignCorners && outSize > 1 ? outSize - 1 : outSize;
  const ratio = effIn / effOut;
  const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
  let src = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
  if (halfPixelCenters) src = Math.max(0, src);
  return src;
}

/** dx[b, src(r), src(c), d] += dy[b, r, c, d]: the exact adjoint of the forward gather. */
const resizeNearestNeighborGrad: HostKernelSpec = {
  outputs: ({ images }) => [images!.slice()],
  compute: ({ images, dy }, [dx], attrs) => {
    const alignCorners = !!attrs['alignCorners'];
    const halfPixelCenters = !!attrs['halfPixelCenters'];
    const [batch, inH, inW, depth] = images!.shape as [number, number, number, number];
    const [, outH, outW] = dy!.shape as [number, number, number, number];
    const rowSrc = Array.from({ length: outH }, (_, r) => nearestSource(r, inH, outH, alignCorners, halfPixelCenters));
    const colSrc = Array.from({ length: outW }, (_, c) => nearestSource(c, inW, outW, alignCorners, halfPixelCenters));
    const yv = dy!.data;
    const out = dx!.data;
    let yo = 0;
    for (let b = 0; b < batch; b++) {
      for (let r = 0; r < outH; r++) {
        const rowBase = (b * inH + rowSrc[r]!) * inW;
        for (let c = 0; c < outW; c++) {
          const xo = (rowBase + colSrc[c]!) * depth;
          for (let d = 0; d < depth; d++) out[xo + d] += yv[yo++]!;
        }
      }
    }
  },
};

// ------------------------------------------------------------------ plumbing

/**
 * Host kernels read float32 only. This wraps a host kernel so that the named integer inputs are
 * cast to float32 first (with the backend's own Cast kernel; exact for |id| < 2^24).
 */
function withFloatInputs(config: KernelConfig, names: string[]): KernelConfig {
  const inner = config.kernelFunc;
  return {
    ...config,
    kernelFunc: (args) => {
      const backend = args.backend as KernelBackend;
      const cast = tf.getKernel('Cast', config.backendName);
      if (!cast) throw new Error(`${config.kernelName}: no Cast kernel on ${config.backendName}`);
      const inputs = { ...(args.inputs as unknown as Record<string, TensorInfo>) };
      const temps: TensorInfo[] = [];
      for (const n of names) {
        const t = inputs[n];
        if (t && t.dtype !== 'float32') {
          const f = cast.kernelFunc({ inputs: { x: t }, backend, attrs: { dtype: 'float32' } }) as TensorInfo;
          temps.push(f);
          inputs[n] = f;
        }
      }
      try {
        return inner({ ...args, inputs: inputs as unknown as typeof args.inputs });
      } finally {
        for (const t of temps) backend.disposeData(t.dataId);
      }
    },
  };
}

/**
 * Does the stock batch-matmul indexing (flat batch index modulo the operand's batch size) read the
 * right matrices of an operand with these batch dims, for this broadcast output batch shape? Only
 * if the operand's batch shape, left-padded with ones, is ones followed by a suffix of `out`.
 */
function moduloBroadcastOk(batch: number[], out: number[]): boolean {
  const pad = out.length - batch.length;
  let i = 0;
  while (i < out.length && (i < pad || batch[i - pad] === 1)) i++;
  for (let j = i; j < out.length; j++) if (batch[j - pad] !== out[j]) return false;
  return true;
}

/**
 * Wrap the currently registered BatchMatMul kernel of `backendName` so that an
 * operand whose batch broadcast the kernel would mis-index is tiled to the full batch shape first.
 */
function matMulBroadcastFix(kernelName: string, backendName: HostBackend): KernelConfig | null {
  const stock = tf.getKernel(kernelName, backendName);
  if (!stock) return null;
  return {
    ...stock,
    kernelFunc: (args) => {
      const inputs = args.inputs as unknown as Record<string, TensorInfo>;
      const a = inputs['a']!;
      const b = inputs['b']!;
      const ab = a.shape.slice(0, -2);
      const bb = b.shape.slice(0, -2);
      const out = tf.broadcast_util.assertAndGetBroadcastShape(ab, bb);
      const fixA = !moduloBroadcastOk(ab, out);
      const fixB = !moduloBroadcastOk(bb, out);
      if (!fixA && !fixB) return stock.kernelFunc(args);
      const backend = args.backend as KernelBackend;
      const reshape = tf.getKernel('Reshape', backendName)!.kernelFunc;
      const tile = tf.getKernel('Tile', backendName)!.kernelFunc;
      const temps: TensorInfo[] = [];
      const full = (t: TensorInfo): TensorInfo => {
        const batch = t.shape.slice(0, -2);
        const mat = t.shape.slice(-2);
        const padded = [...Array<number>(out.length - batch.length).fill(1), ...batch];
        const r = reshape({ inputs: { x: t }, backend, attrs: { shape: [...padded, ...mat] } }) as TensorInfo;
        temps.push(r);
        const reps = [...out.map((d, i) => (padded[i] === d ? 1 : d)), 1, 1];
        const tiled = tile({ inputs: { x: r }, backend, attrs: { reps } }) as TensorInfo;
        temps.push(tiled);
        return tiled;
      };
      try {
        const fixed = { ...inputs, a: fixA ? full(a) : a, b: fixB ? full(b) : b };
        return stock.kernelFunc({ ...args, inputs: fixed as unknown as typeof args.inputs });
      } finally {
        for (const t of temps) backend.disposeData(t.dataId);
      }
    },
  };
}

/**
 * Copy the box [begin, begin + size) of `src` (row-major, `shape`) into `dst`, one contiguous run
 * at a time: the trailing axes the box spans whole, times the extent of the next axis in. A long
 * run copies with TypedArray.set (memcpy).
 */
function copyBox(src: Float32Array, shape: number[], begin: number[], size: number[], dst: Float32Array): void {
  const rank = shape.length;
  const strides = tf.util.computeStrides(shape);
  const stride = (i: number): number => (i === rank - 1 ? 1 : strides[i]!);
  let k = rank - 1;
  let run = 1;
  while (k >= 0 && size[k] === shape[k]) run *= shape[k--]!;
  if (k >= 0) run *= size[k]!;
  const outer = size.slice(0, Math.max(k, 0));
  let runs = outer.reduce((a, b) => a * b, 1);
  if (run === 0 || runs === 0) return;
  const idx = new Array<number>(outer.length).fill(0);
  let at = begin.reduce((a, b, i) => a + b * stride(i), 0);
  let o = 0;
  for (;;) {
    if (run >= 32) dst.set(src.subarray(at, at + run), o);
    else for (let j = 0; j < run; j++) dst[o + j] = src[at + j]!;
    o += run;
    if (--runs === 0) return;
    // Odometer over the outer axes, innermost first.
    let a = outer.length - 1;
    while (++idx[a]! === outer[a]) {
      at -= (outer[a]! - 1) * stride(a);
      idx[a--] = 0;
    }
    at += stride(a);
  }
}

/** Slice, float32: the box given by tfjs's own begin/size parsing (size -1 = to the end). */
const sliceKernel: HostKernelSpec = {
  overwrites: true,
  outputs: ({ x }, attrs) => {
    const [, size] = tf.slice_util.parseSliceParams({ shape: x! } as unknown as Tensor, attrs['begin'] as number[], attrs['size'] as number[]);
    return [size];
  },
  compute: ({ x }, [y], attrs) => {
    const [begin, size] = tf.slice_util.parseSliceParams({ shape: x!.shape } as unknown as Tensor, attrs['begin'] as number[], attrs['size'] as number[]);
    copyBox(x!.data, x!.shape, begin, size, y!.data);
  },
};

/** SplitV along one axis, float32: output i is the box at the running offset of the split sizes. */
function splitSizes(shape: number[], attrs: NamedAttrMap): { axis: number; sizes: number[] } {
  const axis = tf.util.parseAxisParam(attrs['axis'] as number, shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize({ shape } as unknown as Tensor, attrs['numOrSizeSplits'] as number[] | number, axis) as number[];
  return { axis, sizes };
}
const splitVKernel: HostKernelSpec = {
  overwrites: true,
  outputs: ({ x }, attrs) => {
    const { axis, sizes } = splitSizes(x!, attrs);
    return sizes.map((s) => x!.map((d, i) => (i === axis ? s : d)));
  },
  compute: ({ x }, ys, attrs) => {
    const { axis, sizes } = splitSizes(x!.shape, attrs);
    const begin = x!.shape.map(() => 0);
    sizes.forEach((s, i) => {
      copyBox(x!.data, x!.shape, begin, ys[i]!.shape, ys[i]!.data);
      begin[axis] = begin[axis]! + s;
    });
  },
};

/**
 * Sum over leading axes (bias and broadcast gradients), float32: out[j] += x[i, j] for i in order,
 * the same float32 additions in the same order as the stock kernel, which transposes the reduced
 * axes innermost first. Any other axes run the stock kernel (see leadingAxes).
 */
function leadingAxes(shape: number[], attrs: NamedAttrMap): number | null {
  const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], shape).slice().sort((a, b) => a - b);
  return axes.length > 0 && axes.length < shape.length && axes.every((a, i) => a === i) ? axes.length : null;
}
const sumLeadingKernel: HostKernelSpec = {
  outputs: ({ x }, attrs) => {
    const k = leadingAxes(x!, attrs)!;
    return [attrs['keepDims'] ? x!.map((d, i) => (i < k ? 1 : d)) : x!.slice(k)];
  },
  compute: ({ x }, [y]) => {
    const inner = y!.data.length;
    const out = y!.data;
    const xv = x!.data;
    for (let at = 0; at < xv.length; at += inner) for (let j = 0; j < inner; j++) out[j] = out[j]! + xv[at + j]!;
  },
};

/** Run the host kernel for float32 inputs and the stock kernel for any other dtype. */
function float32Only(
  spec: HostKernelSpec, kernelName: string, backendName: HostBackend,
  supports: (shapes: number[][], attrs: NamedAttrMap) => boolean = () => true,
): KernelConfig | null {
  const stock = tf.getKernel(kernelName, backendName);
  if (!stock) return null;
  const host = hostKernel(kernelName, backendName, spec);
  return {
    ...stock,
    kernelFunc: (args) => {
      const ins = Object.values(args.inputs as unknown as Record<string, TensorInfo>);
      const ours = ins.every((t) => t.dtype === 'float32') && supports(ins.map((t) => t.shape), args.attrs ?? {});
      return ours ? host.kernelFunc(args) : stock.kernelFunc(args);
    },
  };
}

/** The activation kernel behind a fused op's `activation` attr. */
function activationKernel(act: string): string | null {
  const names: Record<string, string | null> = {
    linear: null,
    relu: 'Relu',
    relu6: 'Relu6',
    elu: 'Elu',
    sigmoid: 'Sigmoid',
    leakyrelu: 'LeakyRelu',
    prelu: 'Prelu',
  };
  if (!(act in names)) throw new Error(`_FusedMatMul: unknown activation '${act}'`);
  return names[act]!;
}

/** Wrap the stock wasm _FusedMatMul: batched calls with a bias go unfused (see the header). */
function fusedMatMulBiasFix(backendName: HostBackend): KernelConfig | null {
  const stock = tf.getKernel('_FusedMatMul', backendName);
  if (!stock) return null;
  return {
    ...stock,
    kernelFunc: (args) => {
      const inputs = args.inputs as unknown as Record<string, TensorInfo | undefined>;
      const a = inputs['a']!;
      const b = inputs['b']!;
      const bias = inputs['bias'];
      const batch = Math.max(a.shape.length > 2 ? a.shape[0]! : 1, b.shape.length > 2 ? b.shape[0]! : 1);
      if (!bias || batch === 1) return stock.kernelFunc(args);
      const backend = args.backend as KernelBackend;
      const attrs = args.attrs ?? {};
      const run = (name: string, ins: Record<string, TensorInfo>, at: NamedAttrMap = {}): TensorInfo =>
        tf.getKernel(name, backendName)!.kernelFunc({ inputs: ins as never, backend, attrs: at }) as TensorInfo;
      const mm = stock.kernelFunc({
        ...args,
        inputs: { a, b } as never,
        attrs: { ...attrs, activation: 'linear' },
      }) as TensorInfo;
      const biased = run('Add', { a: mm, b: bias });
      backend.disposeData(mm.dataId);
      const act = activationKernel((attrs['activation'] as string | undefined) ?? 'linear');
      if (!act) return biased;
      const out =
        act === 'Prelu'
          ? run(act, { x: biased, alpha: inputs['preluActivationWeights']! })
          : run(act, { x: biased }, act === 'LeakyRelu' ? { alpha: attrs['leakyreluAlpha'] ?? 0.2 } : {});
      backend.disposeData(biased.dataId);
      return out;
    },
  };
}

const MAKERS: Record<string, (b: HostBackend) => KernelConfig | null> = {
  _FusedMatMul: (b) => fusedMatMulBiasFix(b),
  BatchMatMul: (b) => matMulBroadcastFix('BatchMatMul', b),
  AvgPoolGrad: (b) => hostKernel('AvgPoolGrad', b, avgPoolGrad),
  Conv2DBackpropFilter: (b) => hostKernel('Conv2DBackpropFilter', b, conv2DBackpropFilter),
  DepthwiseConv2dNativeBackpropInput: (b) => hostKernel('DepthwiseConv2dNativeBackpropInput', b, depthwiseBackpropInput),
  DepthwiseConv2dNativeBackpropFilter: (b) => hostKernel('DepthwiseConv2dNativeBackpropFilter', b, depthwiseBackpropFilter),
  UnsortedSegmentSum: (b) => withFloatInputs(hostKernel('UnsortedSegmentSum', b, unsortedSegmentSum), ['segmentIds']),
  MaxPoolGrad: (b) => hostKernel('MaxPoolGrad', b, maxPoolGrad),
  ResizeNearestNeighborGrad: (b) => hostKernel('ResizeNearestNeighborGrad', b, resizeNearestNeighborGrad),
  Slice: (b) => float32Only(sliceKernel, 'Slice', b),
  SplitV: (b) => float32Only(splitVKernel, 'SplitV', b),
  Sum: (b) => float32Only(sumLeadingKernel, 'Sum', b, ([x], attrs) => leadingAxes(x!, attrs) !== null),
};

const FILLS: Record<HostBackend, string[]> = {
  wasm: [
    'BatchMatMul',
    '_FusedMatMul',
    'AvgPoolGrad',
    'Conv2DBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'UnsortedSegmentSum',
    'MaxPoolGrad',
    'ResizeNearestNeighborGrad',
    'Slice',
    'SplitV',
    'Sum',
  ],
  cpu: ['BatchMatMul', 'AvgPoolGrad', 'Conv2DBackpropFilter', 'UnsortedSegmentSum', 'ResizeNearestNeighborGrad'],
};

// ------------------------------------------------------------------ gradient fills

/** Sum a broadcast batch-matmul gradient back to the shape of its input. */
function unbroadcast(g: Tensor, shape: number[]): Tensor {
  if (tf.util.arraysEqual(g.shape, shape)) return g;
  let r = g;
  const extra = g.rank - shape.length;
  if (extra > 0) r = tf.sum(r, Array.from({ length: extra }, (_, i) => i));
  const axes: number[] = [];
  for (let i = 0; i < shape.length - 2; i++) if (shape[i] === 1 && r.shape[i] !== 1) axes.push(i);
  if (axes.length) r = tf.sum(r, axes, true);
  return tf.reshape(r, shape);
}

const batchMatMulGrad: GradConfig = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved as [Tensor, Tensor];
    const d = dy as Tensor;
    const ta = !!attrs['transposeA'];
    const tb = !!attrs['transposeB'];
    let da: () => Tensor;
    let db: () => Tensor;
    if (!ta && !tb) {
      da = () => tf.matMul(d, b, false, true);
      db = () => tf.matMul(a, d, true, false);
    } else if (!ta && tb) {
      da = () => tf.matMul(d, b, false, false);
      db = () => tf.matMul(d, a, true, false);
    } else if (ta && !tb) {
      da = () => tf.matMul(b, d, false, true);
      db = () => tf.matMul(a, d, false, false);
    } else {
      da = () => tf.matMul(b, d, true, true);
      db = () => tf.matMul(d, a, true, true);
    }
    return { a: () => unbroadcast(da(), a.shape), b: () => unbroadcast(db(), b.shape) };
  },
};

let gradientsFilled = false;

/** Re-register the tfjs gradients that are wrong (idempotent; called by fillKernels). */
export function fillGradients(): void {
  if (gradientsFilled) return;
  gradientsFilled = true;
  const off = disabledFills();
  if (off === 'all' || off.has('BatchMatMulGrad')) return;
  tf.registerGradient(batchMatMulGrad);
}

/** Names of the kernels filled on a backend (for reports and tests). */
export function filledKernelNames(backend: HostBackend): string[] {
  return FILLS[backend].slice();
}

function disabledFills(): Set<string> | 'all' {
  const env = process.env['MCE_DISABLE_FILLS'];
  if (!env) return new Set();
  if (env === 'all' || env === '1') return 'all';
  return new Set(env.split(',').map((s) => s.trim()));
}

/**
 * The kernel configs to register on `backend`. MCE_DISABLE_FILLS=all (or a comma list of kernel
 * names) leaves fills out, to show the stock tfjs behaviour the gradient tests catch.
 */
export function fillKernels(backend: HostBackend): KernelConfig[] {
  fillGradients();
  const off = disabledFills();
  if (off === 'all') return [];
  return FILLS[backend]
    .filter((n) => !off.has(n))
    .map((n) => MAKERS[n]!(backend))
    .filter((c): c is KernelConfig => c !== null);
}
