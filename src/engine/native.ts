// Native kernels: the C++ N-API addon build/mce_native.node (native/*.cc, OpenBLAS GEMM + fused
// kernels, built by scripts/build-native.mjs), registered as tfjs kernels for the wasm backend.
// backend.ts enables these configs for the 'native' backend and disables them for 'wasm'/'cpu'.
//
// Overridden tfjs kernels (same inputs, attrs and numbers as tfjs, to fp32 rounding):
//   BatchMatMul           {a, b} {transposeA, transposeB}: any rank >= 2, numpy batch broadcasting.
//   _FusedMatMul          {a, b, bias?} {transposeA, transposeB, activation 'linear'|'relu'}, bias of
//                         1 or N elements; anything else (prelu, other activations) runs tfjs's kernel.
//   Conv2D                {x, filter} {strides, pad, dataFormat 'NHWC', dilations 1, dimRoundingMode}
//   Conv2DBackpropInput   {dy, filter} {strides, pad, dataFormat 'NHWC', dimRoundingMode, inputShape}
//   Conv2DBackpropFilter  {x, dy} {strides, pad, dataFormat 'NHWC', dimRoundingMode, filterShape}
//                         (pad: 'same' | 'valid' | number | explicit [[0,0],[t,b],[l,r],[0,0]]).
//   Identity              {x}: shares x's buffer instead of copying it (identity.ts).
//
// Fused kernels (new kernel names; exist only while the backend is 'native', so dispatch on
// hasNativeKernel(name)). All float32; "rows" are over the LAST axis. Call them as
//   tf.engine().runKernel(name, inputs, attrs) as Tensor        (multi-output: as Tensor[]).
// Forward kernels have gradients registered (tf.registerGradient), so they work under tf.grads.
//
//   kernel            inputs                 attrs              output(s)
//   MceGelu           {x}                    {}                 y = 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
//                                                               (torch GELU approximate="tanh")
//   MceGeluGrad       {dy, x}                {}                 dx
//   MceGeglu          {x}                    {}                 y = hidden * gelu(gate), x = [..., 2H] split
//                                                               in halves (hidden | gate), y [..., H]; exact
//                                                               (erf) GELU (diffusers GEGLU, torch F.gelu)
//   MceGegluGrad      {dy, x}                {}                 dx (x's shape)
//   MceSilu           {x}                    {}                 y = x * sigmoid(x)
//   MceSiluGrad       {dy, x}                {}                 dx
//   MceLayerNorm      {x}                    {eps} (1e-6)       y = (x - mean) / sqrt(var + eps), no affine,
//                                                               biased variance (torch LayerNorm)
//   MceLayerNormGrad  {dy, x}                {eps}              dx
//   MceRmsNorm        {x, scale}             {eps} (1e-6)       y = x * rsqrt(mean(x^2) + eps) * scale;
//                                                               scale has D = x.shape[-1] elements (e.g. [D])
//   MceRmsNormGrad    {dy, x, scale}         {eps}              [dx, dscale (scale's shape)]
//   MceSoftmax        {x}                    {}                 y = softmax(x) over the last axis
//   MceSoftmaxGrad    {dy, y}                {}                 dx (y is the forward output)
//   MceModulate       {x, scale, shift}      {}                 y = x * (1 + scale) + shift (AdaLN). x is
//                                                               [B, ..., D]; scale and shift each have D
//                                                               elements (e.g. [D], [1,1,D]) or B*D elements
//                                                               (e.g. [B,1,D], [B,D]), broadcast over the
//                                                               middle axes
//   MceModulateGrad   {dy, x, scale, shift}  {}                 [dx, dscale (scale's shape), dshift (shift's shape)]
//   MceGroupNorm      {x, weight, bias}      {groups, eps}      GroupNorm of channels-last x [B, ..., C] over
//                                                               each sample's C/groups consecutive channels
//                                                               at every position, biased variance, affine
//                                                               weight and bias of C elements (torch GroupNorm
//                                                               on NHWC)
//   MceGroupNormGrad  {dy, x, weight}        {groups, eps}      [dx, dweight, dbias]
//   MceAttention      {q, k, v}              {heads}            o = softmax(q k^T / sqrt(D)) v per batch and
//                                                               head, token-major: q [B, L, H*D], k and v
//                                                               [B, S, H*D], o [B, L, H*D] (head h is channels
//                                                               h*D .. h*D+D-1); [B, H, L, D] is heads 1 over
//                                                               B*H batches
//   MceAttentionGrad  {dy, q, k, v}          {heads}            [dq, dk, dv]
//
// Env: MCE_THREADS=n sets the thread count of OpenBLAS and the fused kernels (default: 2, or the
// CPU count if lower); MCE_NATIVE=0 ignores the addon (the wasm backend is used).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GradConfig, KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { tf, type Tensor } from './tf.js';
import { hostKernel, type HostKernelSpec, type HostTensor } from './kernels.js';
import { sharedIdentityKernel } from './identity.js';

/** The raw addon (native/addon.cc). Arrays are row-major float32; every extent is checked. */
export interface NativeAddon {
  /** C = alpha * op(A) op(B) + beta * C; op(A) is M x K, op(B) is K x N; row-major with leading dims. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  /** `batch` sgemms at element strides strideA/B/C (0 broadcasts an operand). */
  sgemmBatched(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, strideA: number, B: Float32Array, ldb: number, strideB: number,
    beta: number, C: Float32Array, ldc: number, strideC: number): void;
  /** y[r, j] = act(y[r, j] + bias[j]) over rows x n; bias null, 1 or n elements; act 0 linear, 1 relu. */
  biasAct(y: Float32Array, bias: Float32Array | null, rows: number, n: number, act: 0 | 1): void;
  /** NHWC conv, filter [KH, KW, C, OC], y [N, OH, OW, OC]; PT/PL are the top/left pads. */
  conv2d(x: Float32Array, filter: Float32Array, y: Float32Array, ...geom: ConvGeomArgs): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, ...geom: ConvGeomArgs): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dfilter: Float32Array, ...geom: ConvGeomArgs): void;
  gelu(x: Float32Array, y: Float32Array): void;
  geluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  /** x [rows, 2h] (hidden | gate), y [rows, h]. */
  geglu(x: Float32Array, y: Float32Array, h: number): void;
  gegluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, h: number): void;
  silu(x: Float32Array, y: Float32Array): void;
  siluGrad(dy: Float32Array, x: Float32Array, dx: Float32Array): void;
  layerNorm(x: Float32Array, y: Float32Array, d: number, eps: number): void;
  layerNormGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, d: number, eps: number): void;
  rmsNorm(x: Float32Array, scale: Float32Array, y: Float32Array, d: number, eps: number): void;
  rmsNormGrad(dy: Float32Array, x: Float32Array, scale: Float32Array, dx: Float32Array, dscale: Float32Array,
    d: number, eps: number): void;
  softmax(x: Float32Array, y: Float32Array, d: number): void;
  softmaxGrad(dy: Float32Array, y: Float32Array, dx: Float32Array, d: number): void;
  /** scaleStride / shiftStride: d (per batch row b of B) or 0 (one vector for all). */
  modulate(x: Float32Array, scale: Float32Array, shift: Float32Array, y: Float32Array, B: number, d: number,
    scaleStride: number, shiftStride: number): void;
  modulateGrad(dy: Float32Array, x: Float32Array, scale: Float32Array, dx: Float32Array, dscale: Float32Array,
    dshift: Float32Array, B: number, d: number, scaleStride: number, shiftStride: number): void;
  /** GroupNorm of x [B, S, C] (channels last) with G groups; weight and bias have C elements. */
  groupNorm(x: Float32Array, weight: Float32Array, bias: Float32Array, y: Float32Array, B: number, C: number, G: number,
    eps: number): void;
  groupNormGrad(dy: Float32Array, x: Float32Array, weight: Float32Array, dx: Float32Array, dweight: Float32Array,
    dbias: Float32Array, B: number, C: number, G: number, eps: number): void;
  /** q, o [B, L, H*D]; k, v [B, S, H*D]. */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, o: Float32Array, B: number, L: number, S: number,
    H: number, D: number): void;
  attentionGrad(dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, dq: Float32Array,
    dk: Float32Array, dv: Float32Array, B: number, L: number, S: number, H: number, D: number): void;
  setThreads(n: number): void;
  getThreads(): number;
  /** OpenBLAS build configuration string. */
  info(): string;
  /** Testing hook: the im2col chunk limit in floats (default 8 Mi); returns the previous one. */
  _setColLimit(floats: number): number;
  /** Testing hook: products with M*N*K below this run on one BLAS thread (default 2^24); returns the previous one. */
  _setOneThreadMnk(mnk: number): number;
}

/** N, H, W, C, KH, KW, OC, OH, OW, strideH, strideW, padTop, padLeft. */
export type ConvGeomArgs = [number, number, number, number, number, number, number, number, number, number,
  number, number, number];

/** The fused kernel names, by op. */
export const FUSED_KERNELS = {
  gelu: 'MceGelu',
  geluGrad: 'MceGeluGrad',
  geglu: 'MceGeglu',
  gegluGrad: 'MceGegluGrad',
  silu: 'MceSilu',
  siluGrad: 'MceSiluGrad',
  layerNorm: 'MceLayerNorm',
  layerNormGrad: 'MceLayerNormGrad',
  rmsNorm: 'MceRmsNorm',
  rmsNormGrad: 'MceRmsNormGrad',
  softmax: 'MceSoftmax',
  softmaxGrad: 'MceSoftmaxGrad',
  modulate: 'MceModulate',
  modulateGrad: 'MceModulateGrad',
  groupNorm: 'MceGroupNorm',
  groupNormGrad: 'MceGroupNormGrad',
  attention: 'MceAttention',
  attentionGrad: 'MceAttentionGrad',
} as const;

const ADDON_FUNCTIONS: (keyof NativeAddon)[] = [
  'sgemm', 'sgemmBatched', 'biasAct', 'conv2d', 'conv2dBackpropInput', 'conv2dBackpropFilter', 'gelu',
  'geluGrad', 'geglu', 'gegluGrad', 'silu', 'siluGrad', 'layerNorm', 'layerNormGrad', 'rmsNorm', 'rmsNormGrad', 'softmax',
  'softmaxGrad', 'modulate', 'modulateGrad', 'groupNorm', 'groupNormGrad', 'attention', 'attentionGrad', 'setThreads', 'getThreads', 'info', '_setColLimit', '_setOneThreadMnk',
];

// ---- loading ---------------------------------------------------------------------------------

/** The package root: the nearest folder above this module with a package.json (src/ or dist/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('mce: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Thread count from MCE_THREADS, else min(2, CPUs available). */
function threadCount(): number {
  const env = process.env['MCE_THREADS'];
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`MCE_THREADS must be an integer from 1 to 256, got '${env}'`);
    return n;
  }
  return Math.max(1, Math.min(2, os.availableParallelism()));
}

let loaded: { addon: NativeAddon | null; reason: string } | null = null;

function load(): { addon: NativeAddon | null; reason: string } {
  if (loaded) return loaded;
  if (process.env['MCE_NATIVE'] === '0') return (loaded = { addon: null, reason: 'disabled by MCE_NATIVE=0' });
  const file = path.join(packageRoot(), 'build', 'mce_native.node');
  if (!fs.existsSync(file)) {
    return (loaded = { addon: null, reason: 'build/mce_native.node is missing: run npm run build:native (needs libopenblas-dev)' });
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return (loaded = { addon: null, reason: `build/mce_native.node failed to load: ${msg}` });
  }
  const missing = ADDON_FUNCTIONS.filter((f) => typeof addon[f] !== 'function');
  if (missing.length > 0) {
    return (loaded = { addon: null, reason: `build/mce_native.node is stale (no ${missing.join(', ')}): run npm run build:native` });
  }
  addon.setThreads(threadCount());
  return (loaded = { addon, reason: '' });
}

/** The raw addon, or null when it is not built or could not load (see nativeKernelConfigs). */
export function nativeAddon(): NativeAddon | null {
  return load().addon;
}

// ---- kernel plumbing -------------------------------------------------------------------------

type KernelArgs = Parameters<KernelConfig['kernelFunc']>[0];

const ours = new Set<KernelConfig>();

/**
 * A wasm kernel config running `spec` on the addon. When `supports` says no, the kernel that was
 * registered before ours (tfjs's own or a fill) runs instead; its setup is chained so it works
 * whichever of the two was registered when the wasm backend initialised.
 */
function nativeKernel(kernelName: string, spec: HostKernelSpec, supports?: (args: KernelArgs) => boolean): KernelConfig {
  // Every native kernel writes all of its outputs, so the zero fill is skipped.
  const host = hostKernel(kernelName, 'wasm', { ...spec, overwrites: true });
  const prev = tf.getKernel(kernelName, 'wasm');
  const fallback = prev && !ours.has(prev) ? prev : undefined;
  const config: KernelConfig = {
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => {
      if (!supports || supports(args)) {
        // Optional inputs (e.g. _FusedMatMul's bias) arrive as undefined entries.
        const inputs = Object.fromEntries(Object.entries(args.inputs).filter(([, t]) => t !== undefined));
        return host.kernelFunc({ ...args, inputs });
      }
      if (fallback) return fallback.kernelFunc(args);
      throw new Error(`${kernelName}: this case is not supported by the native kernel and the wasm backend has no kernel for it`);
    },
  };
  if (fallback?.setupFunc) config.setupFunc = fallback.setupFunc;
  if (fallback?.disposeFunc) config.disposeFunc = fallback.disposeFunc;
  ours.add(config);
  return config;
}

const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);
const last = (s: number[]): number => s[s.length - 1] ?? 1;
const allFloat = (args: KernelArgs): boolean =>
  Object.values(args.inputs as Record<string, TensorInfo | undefined>).every((t) => !t || t.dtype === 'float32');

// ---- matmul ----------------------------------------------------------------------------------

interface MatMulPlan {
  outShape: number[];
  M: number;
  N: number;
  K: number;
  lda: number;
  ldb: number;
  /** Collapsed outer (batch) dims, outermost first, with per-operand element strides (0 = broadcast). */
  dims: { n: number; sa: number; sb: number; sc: number }[];
}

/** Shapes, strides and broadcasting of tfjs BatchMatMul (numpy rules over the outer dims). */
export function planMatMul(aShape: number[], bShape: number[], ta: boolean, tb: boolean): MatMulPlan {
  const ar = aShape.length;
  const br = bShape.length;
  if (ar < 2 || br < 2) throw new Error(`matMul needs rank >= 2 inputs, got shapes [${aShape}] and [${bShape}]`);
  const M = ta ? aShape[ar - 1]! : aShape[ar - 2]!;
  const Ka = ta ? aShape[ar - 2]! : aShape[ar - 1]!;
  const Kb = tb ? bShape[br - 1]! : bShape[br - 2]!;
  const N = tb ? bShape[br - 2]! : bShape[br - 1]!;
  if (Ka !== Kb) {
    throw new Error(`Error in matMul: inner shapes (${Ka}) and (${Kb}) of Tensors with shapes ${aShape} and ` +
      `${bShape} and transposeA=${ta} and transposeB=${tb} must match.`);
  }
  const oa = aShape.slice(0, -2);
  const ob = bShape.slice(0, -2);
  const outer = tf.backend_util.assertAndGetBroadcastShape(oa, ob);
  const strides = (o: number[], mat: number): number[] => {
    const s = new Array<number>(outer.length).fill(0);
    let st = mat;
    for (let i = outer.length - 1, j = o.length - 1; i >= 0; i--, j--) {
      const d = j >= 0 ? o[j]! : 1;
      s[i] = d === 1 ? 0 : st;
      st *= d;
    }
    return s;
  };
  const sa = strides(oa, aShape[ar - 1]! * aShape[ar - 2]!);
  const sb = strides(ob, bShape[br - 1]! * bShape[br - 2]!);
  const dims: MatMulPlan['dims'] = [];
  let sc = M * N;
  const raw: MatMulPlan['dims'] = [];
  for (let i = outer.length - 1; i >= 0; i--) {
    raw.unshift({ n: outer[i]!, sa: sa[i]!, sb: sb[i]!, sc });
    sc *= outer[i]!;
  }
  // Drop size-1 dims and merge neighbours that are contiguous for all three operands.
  for (const d of raw) {
    if (d.n === 1) continue;
    const p = dims[dims.length - 1];
    if (p && p.sa === d.sa * d.n && p.sb === d.sb * d.n && p.sc === d.sc * d.n) {
      p.n *= d.n;
      p.sa = d.sa;
      p.sb = d.sb;
      p.sc = d.sc;
    } else dims.push({ ...d });
  }
  return {
    outShape: [...outer, M, N],
    M,
    N,
    K: Ka,
    lda: aShape[ar - 1]!,
    ldb: bShape[br - 1]!,
    dims,
  };
}

function runMatMul(addon: NativeAddon, p: MatMulPlan, ta: boolean, tb: boolean, a: Float32Array, b: Float32Array, c: Float32Array): void {
  const { M, N, K, lda, ldb, dims } = p;
  if (M === 0 || N === 0) return;
  if (dims.length === 0) {
    addon.sgemm(ta, tb, M, N, K, 1, a, lda, b, ldb, 0, c, N);
    return;
  }
  const inner = dims[dims.length - 1]!;
  const outerDims = dims.slice(0, -1);
  const count = size(outerDims.map((d) => d.n));
  const idx = new Array<number>(outerDims.length).fill(0);
  for (let i = 0; i < count; i++) {
    let oa = 0;
    let ob = 0;
    let oc = 0;
    for (let j = 0; j < outerDims.length; j++) {
      oa += idx[j]! * outerDims[j]!.sa;
      ob += idx[j]! * outerDims[j]!.sb;
      oc += idx[j]! * outerDims[j]!.sc;
    }
    const av = oa === 0 ? a : a.subarray(oa);
    const bv = ob === 0 ? b : b.subarray(ob);
    const cv = oc === 0 ? c : c.subarray(oc);
    addon.sgemmBatched(ta, tb, inner.n, M, N, K, 1, av, lda, inner.sa, bv, ldb, inner.sb, 0, cv, N, inner.sc);
    for (let j = outerDims.length - 1; j >= 0; j--) {
      if (++idx[j]! < outerDims[j]!.n) break;
      idx[j] = 0;
    }
  }
}

function matMulKernels(addon: NativeAddon): KernelConfig[] {
  const bmm = nativeKernel('BatchMatMul', {
    outputs: (s, attrs) => [planMatMul(s['a']!, s['b']!, !!attrs['transposeA'], !!attrs['transposeB']).outShape],
    compute: (x, [c], attrs) => {
      const ta = !!attrs['transposeA'];
      const tb = !!attrs['transposeB'];
      runMatMul(addon, planMatMul(x['a']!.shape, x['b']!.shape, ta, tb), ta, tb, x['a']!.data, x['b']!.data, c!.data);
    },
  }, allFloat);

  const fusedSupported = (args: KernelArgs): boolean => {
    const { activation, transposeB } = args.attrs as { activation?: string; transposeB?: boolean };
    const { b, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
    if (!allFloat(args) || preluActivationWeights) return false;
    if (activation !== undefined && activation !== 'linear' && activation !== 'relu') return false;
    if (!bias) return true;
    const n = transposeB ? b!.shape[b!.shape.length - 2]! : last(b!.shape);
    const bs = size(bias.shape);
    return bs === 1 || (bs === n && last(bias.shape) === n);
  };
  const fused = nativeKernel('_FusedMatMul', {
    outputs: (s, attrs) => [planMatMul(s['a']!, s['b']!, !!attrs['transposeA'], !!attrs['transposeB']).outShape],
    compute: (x, [c], attrs) => {
      const ta = !!attrs['transposeA'];
      const tb = !!attrs['transposeB'];
      const plan = planMatMul(x['a']!.shape, x['b']!.shape, ta, tb);
      runMatMul(addon, plan, ta, tb, x['a']!.data, x['b']!.data, c!.data);
      const act = attrs['activation'] === 'relu' ? 1 : 0;
      const bias = x['bias']?.data ?? null;
      if (bias || act) addon.biasAct(c!.data, bias, plan.N === 0 ? 0 : c!.data.length / plan.N, plan.N, act);
    },
  }, fusedSupported);
  return [bmm, fused];
}

// ---- conv ------------------------------------------------------------------------------------

type Shape4 = [number, number, number, number];

function convSupported(args: KernelArgs): boolean {
  const { dataFormat, dilations } = args.attrs as { dataFormat?: string; dilations?: number | number[] };
  const d = dilations ?? 1;
  const dil1 = typeof d === 'number' ? d === 1 : d.every((v) => v === 1);
  return allFloat(args) && (dataFormat === undefined || dataFormat === 'NHWC') && dil1;
}

function convGeom(xShape: number[], fShape: number[], attrs: NamedAttrMap): { geom: ConvGeomArgs; outShape: number[] } {
  const a = attrs as unknown as {
    strides: number | [number, number];
    pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const info = tf.backend_util.computeConv2DInfo(xShape as Shape4, fShape as Shape4, a.strides, 1, a.pad,
    a.dimRoundingMode, false, 'channelsLast');
  return {
    geom: [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.filterHeight, info.filterWidth,
      info.outChannels, info.outHeight, info.outWidth, info.strideHeight, info.strideWidth, info.padInfo.top,
      info.padInfo.left],
    outShape: info.outShape,
  };
}

function sameShape(a: number[], b: number[], what: string): void {
  if (a.length !== b.length || a.some((v, i) => v !== b[i])) throw new Error(`${what}: expected shape [${b}], got [${a}]`);
}

function convKernels(addon: NativeAddon): KernelConfig[] {
  const fwd = nativeKernel('Conv2D', {
    outputs: (s, attrs) => [convGeom(s['x']!, s['filter']!, attrs).outShape],
    compute: (x, [y], attrs) => {
      const { geom } = convGeom(x['x']!.shape, x['filter']!.shape, attrs);
      addon.conv2d(x['x']!.data, x['filter']!.data, y!.data, ...geom);
    },
  }, convSupported);
  const bpi = nativeKernel('Conv2DBackpropInput', {
    outputs: (_s, attrs) => [(attrs['inputShape'] as number[]).slice()],
    compute: (x, [dx], attrs) => {
      const { geom, outShape } = convGeom(attrs['inputShape'] as number[], x['filter']!.shape, attrs);
      sameShape(x['dy']!.shape, outShape, 'Conv2DBackpropInput dy');
      addon.conv2dBackpropInput(x['dy']!.data, x['filter']!.data, dx!.data, ...geom);
    },
  }, convSupported);
  const bpf = nativeKernel('Conv2DBackpropFilter', {
    outputs: (_s, attrs) => [(attrs['filterShape'] as number[]).slice()],
    compute: (x, [dw], attrs) => {
      const { geom, outShape } = convGeom(x['x']!.shape, attrs['filterShape'] as number[], attrs);
      sameShape(x['dy']!.shape, outShape, 'Conv2DBackpropFilter dy');
      addon.conv2dBackpropFilter(x['x']!.data, x['dy']!.data, dw!.data, ...geom);
    },
  }, convSupported);
  return [fwd, bpi, bpf];
}

// ---- fused kernels ---------------------------------------------------------------------------

const eps = (attrs: NamedAttrMap): number => (attrs['eps'] === undefined ? 1e-6 : Number(attrs['eps']));

function rowLen(t: HostTensor | number[], kernel: string): number {
  const shape = Array.isArray(t) ? t : t.shape;
  if (shape.length === 0) throw new Error(`${kernel}: input must have rank >= 1`);
  return last(shape);
}

/** H of a GEGLU input [..., 2H]. */
function gegluHalf(x: number[], kernel: string): number {
  const d = rowLen(x, kernel);
  if (d % 2 !== 0) throw new Error(`${kernel}: the last axis of x [${x}] must be even (hidden | gate)`);
  return d / 2;
}

/** Batch size and per-operand stride (d or 0) of AdaLN modulate. */
function modGeom(x: number[], scale: number[], shift: number[], kernel: string): { B: number; d: number; ss: number; hs: number } {
  if (x.length < 2) throw new Error(`${kernel}: x must have rank >= 2 ([B, ..., D]), got [${x}]`);
  const B = x[0]!;
  const d = last(x);
  const stride = (s: number[], what: string): number => {
    const n = size(s);
    if (n === d && last(s) === d) return 0;
    if (n === B * d && last(s) === d && (s.length < 2 || s[0] === B)) return d;
    throw new Error(`${kernel}: ${what} must have D or B*D elements ([D], [B,1,D], ...) for x [${x}], got [${s}]`);
  };
  return { B, d, ss: stride(scale, 'scale'), hs: stride(shift, 'shift') };
}

/** Batch, channels and groups of a GroupNorm on channels-last x. */
function gnGeom(x: number[], attrs: NamedAttrMap, kernel: string): { B: number; C: number; G: number } {
  const G = Number(attrs['groups']);
  const C = last(x);
  if (x.length < 2 || !Number.isInteger(G) || G < 1 || C % G !== 0) {
    throw new Error(`${kernel}: x [${x}] must have rank >= 2 and channels divisible by groups (${attrs['groups']})`);
  }
  return { B: x[0]!, C, G };
}

/** B, L, S, H, D of a token-major attention (q [B, L, H*D], k and v [B, S, H*D]). */
function attnGeom(q: number[], k: number[], v: number[], attrs: NamedAttrMap, kernel: string): [number, number, number, number, number] {
  const H = Number(attrs['heads']);
  const ok = q.length === 3 && k.length === 3 && v.length === 3 && Number.isInteger(H) && H >= 1 &&
    q[2]! % H === 0 && q[0] === k[0] && k[2] === q[2] && v.every((n, i) => n === k[i]);
  if (!ok) {
    throw new Error(`${kernel}: needs q [B, L, H*D], k and v [B, S, H*D] with ${attrs['heads']} heads, got [${q}], [${k}], [${v}]`);
  }
  return [q[0]!, q[1]!, k[1]!, H, q[2]! / H];
}

function fusedKernels(addon: NativeAddon): KernelConfig[] {
  const K = FUSED_KERNELS;
  const same = (name: string) => (s: Record<string, number[]>): number[][] => [s[name]!.slice()];
  return [
    nativeKernel(K.gelu, { outputs: same('x'), compute: (x, [y]) => addon.gelu(x['x']!.data, y!.data) }),
    nativeKernel(K.geluGrad, {
      outputs: same('x'),
      compute: (x, [dx]) => addon.geluGrad(x['dy']!.data, x['x']!.data, dx!.data),
    }),
    nativeKernel(K.geglu, {
      outputs: (s) => [[...s['x']!.slice(0, -1), gegluHalf(s['x']!, K.geglu)]],
      compute: (x, [y]) => addon.geglu(x['x']!.data, y!.data, gegluHalf(x['x']!.shape, K.geglu)),
    }),
    nativeKernel(K.gegluGrad, {
      outputs: same('x'),
      compute: (x, [dx]) => addon.gegluGrad(x['dy']!.data, x['x']!.data, dx!.data, gegluHalf(x['x']!.shape, K.gegluGrad)),
    }),
    nativeKernel(K.silu, { outputs: same('x'), compute: (x, [y]) => addon.silu(x['x']!.data, y!.data) }),
    nativeKernel(K.siluGrad, {
      outputs: same('x'),
      compute: (x, [dx]) => addon.siluGrad(x['dy']!.data, x['x']!.data, dx!.data),
    }),
    nativeKernel(K.layerNorm, {
      outputs: same('x'),
      compute: (x, [y], attrs) => addon.layerNorm(x['x']!.data, y!.data, rowLen(x['x']!, K.layerNorm), eps(attrs)),
    }),
    nativeKernel(K.layerNormGrad, {
      outputs: same('x'),
      compute: (x, [dx], attrs) =>
        addon.layerNormGrad(x['dy']!.data, x['x']!.data, dx!.data, rowLen(x['x']!, K.layerNormGrad), eps(attrs)),
    }),
    nativeKernel(K.rmsNorm, {
      outputs: same('x'),
      compute: (x, [y], attrs) =>
        addon.rmsNorm(x['x']!.data, x['scale']!.data, y!.data, rowLen(x['x']!, K.rmsNorm), eps(attrs)),
    }),
    nativeKernel(K.rmsNormGrad, {
      outputs: (s) => [s['x']!.slice(), s['scale']!.slice()],
      compute: (x, [dx, ds], attrs) =>
        addon.rmsNormGrad(x['dy']!.data, x['x']!.data, x['scale']!.data, dx!.data, ds!.data,
          rowLen(x['x']!, K.rmsNormGrad), eps(attrs)),
    }),
    nativeKernel(K.softmax, {
      outputs: same('x'),
      compute: (x, [y]) => addon.softmax(x['x']!.data, y!.data, rowLen(x['x']!, K.softmax)),
    }),
    nativeKernel(K.softmaxGrad, {
      outputs: same('y'),
      compute: (x, [dx]) => addon.softmaxGrad(x['dy']!.data, x['y']!.data, dx!.data, rowLen(x['y']!, K.softmaxGrad)),
    }),
    nativeKernel(K.modulate, {
      outputs: (s) => {
        modGeom(s['x']!, s['scale']!, s['shift']!, K.modulate);
        return [s['x']!.slice()];
      },
      compute: (x, [y]) => {
        const g = modGeom(x['x']!.shape, x['scale']!.shape, x['shift']!.shape, K.modulate);
        addon.modulate(x['x']!.data, x['scale']!.data, x['shift']!.data, y!.data, g.B, g.d, g.ss, g.hs);
      },
    }),
    nativeKernel(K.modulateGrad, {
      outputs: (s) => [s['x']!.slice(), s['scale']!.slice(), s['shift']!.slice()],
      compute: (x, [dx, ds, dh]) => {
        const g = modGeom(x['x']!.shape, x['scale']!.shape, x['shift']!.shape, K.modulateGrad);
        addon.modulateGrad(x['dy']!.data, x['x']!.data, x['scale']!.data, dx!.data, ds!.data, dh!.data,
          g.B, g.d, g.ss, g.hs);
      },
    }),
    nativeKernel(K.groupNorm, {
      outputs: same('x'),
      compute: (x, [y], attrs) => {
        const g = gnGeom(x['x']!.shape, attrs, K.groupNorm);
        addon.groupNorm(x['x']!.data, x['weight']!.data, x['bias']!.data, y!.data, g.B, g.C, g.G, eps(attrs));
      },
    }),
    nativeKernel(K.groupNormGrad, {
      outputs: (s) => [s['x']!.slice(), s['weight']!.slice(), s['weight']!.slice()],
      compute: (x, [dx, dw, db], attrs) => {
        const g = gnGeom(x['x']!.shape, attrs, K.groupNormGrad);
        addon.groupNormGrad(x['dy']!.data, x['x']!.data, x['weight']!.data, dx!.data, dw!.data, db!.data, g.B, g.C, g.G, eps(attrs));
      },
    }),
    nativeKernel(K.attention, {
      outputs: (s, attrs) => {
        attnGeom(s['q']!, s['k']!, s['v']!, attrs, K.attention);
        return [s['q']!.slice()];
      },
      compute: (x, [o], attrs) =>
        addon.attention(x['q']!.data, x['k']!.data, x['v']!.data, o!.data,
          ...attnGeom(x['q']!.shape, x['k']!.shape, x['v']!.shape, attrs, K.attention)),
    }),
    nativeKernel(K.attentionGrad, {
      outputs: (s) => [s['q']!.slice(), s['k']!.slice(), s['v']!.slice()],
      compute: (x, [dq, dk, dv], attrs) =>
        addon.attentionGrad(x['dy']!.data, x['q']!.data, x['k']!.data, x['v']!.data, dq!.data, dk!.data, dv!.data,
          ...attnGeom(x['q']!.shape, x['k']!.shape, x['v']!.shape, attrs, K.attentionGrad)),
    }),
  ];
}

// ---- gradients of the fused kernels ----------------------------------------------------------

function run(kernel: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap = {}): Tensor | Tensor[] {
  if (!hasNativeKernel(kernel)) {
    throw new Error(`${kernel} is not registered: the native backend was switched off between forward and backward`);
  }
  return tf.engine().runKernel(kernel, inputs, attrs) as Tensor | Tensor[];
}

function fusedGradients(): GradConfig[] {
  const K = FUSED_KERNELS;
  return [
    { kernelName: K.gelu, inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => run(K.geluGrad, { dy: dy as Tensor, x: x! }) as Tensor }) },
    { kernelName: K.geglu, inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => run(K.gegluGrad, { dy: dy as Tensor, x: x! }) as Tensor }) },
    { kernelName: K.silu, inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => run(K.siluGrad, { dy: dy as Tensor, x: x! }) as Tensor }) },
    {
      kernelName: K.layerNorm,
      inputsToSave: ['x'],
      gradFunc: (dy, [x], attrs) => ({ x: () => run(K.layerNormGrad, { dy: dy as Tensor, x: x! }, { eps: eps(attrs) }) as Tensor }),
    },
    {
      kernelName: K.rmsNorm,
      inputsToSave: ['x', 'scale'],
      gradFunc: (dy, [x, scale], attrs) => {
        // Both outputs come from one kernel call; computed here, outside the per-input tidy scopes.
        const [dx, ds] = run(K.rmsNormGrad, { dy: dy as Tensor, x: x!, scale: scale! }, { eps: eps(attrs) }) as Tensor[];
        return { x: () => dx!, scale: () => ds! };
      },
    },
    {
      kernelName: K.softmax,
      outputsToSave: [true],
      gradFunc: (dy, [y]) => ({ x: () => run(K.softmaxGrad, { dy: dy as Tensor, y: y! }) as Tensor }),
    },
    {
      kernelName: K.groupNorm,
      inputsToSave: ['x', 'weight'],
      gradFunc: (dy, [x, weight], attrs) => {
        const [dx, dw, db] = run(K.groupNormGrad, { dy: dy as Tensor, x: x!, weight: weight! }, { groups: Number(attrs['groups']), eps: eps(attrs) }) as Tensor[];
        // bias has the weight's shape.
        return { x: () => dx!, weight: () => dw!, bias: () => db! };
      },
    },
    {
      kernelName: K.attention,
      inputsToSave: ['q', 'k', 'v'],
      gradFunc: (dy, [q, k, v], attrs) => {
        const [dq, dk, dv] = run(K.attentionGrad, { dy: dy as Tensor, q: q!, k: k!, v: v! }, { heads: Number(attrs['heads']) }) as Tensor[];
        return { q: () => dq!, k: () => dk!, v: () => dv! };
      },
    },
    {
      kernelName: K.modulate,
      inputsToSave: ['x', 'scale', 'shift'],
      gradFunc: (dy, [x, scale, shift]) => {
        const [dx, ds, dh] = run(K.modulateGrad, { dy: dy as Tensor, x: x!, scale: scale!, shift: shift! }) as Tensor[];
        return { x: () => dx!, scale: () => ds!, shift: () => dh! };
      },
    },
  ];
}

// ---- public ----------------------------------------------------------------------------------

let configs: KernelConfig[] | null = null;

/** Kernel configs (backendName 'wasm') backed by the addon, or a one-line reason they are unavailable. */
export function nativeKernelConfigs(): KernelConfig[] | string {
  if (configs) return configs;
  const { addon, reason } = load();
  if (!addon) return reason;
  configs = [...matMulKernels(addon), ...convKernels(addon), ...fusedKernels(addon), sharedIdentityKernel()];
  for (const g of fusedGradients()) tf.registerGradient(g);
  return configs;
}

/** Whether the native kernel `name` (a fused Mce* name or an overridden tfjs name) is active now. */
export function hasNativeKernel(name: string): boolean {
  const k = tf.getKernel(name, 'wasm');
  return k !== undefined && ours.has(k) && tf.getBackend() === 'wasm';
}
