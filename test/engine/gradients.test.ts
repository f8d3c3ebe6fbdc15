// Gradient checks by finite differences for every op the models use, on every backend, plus the
// reproductions of the tfjs bugs that src/engine/fills.ts fixes (each of those tests fails on stock
// tfjs 4.22: run with MCE_DISABLE_FILLS=all to see it), and a check that the backends agree.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend, type BackendName } from '../../src/engine/backend.js';
import { gradCheck, formatGradCheck, type GradCheckOptions, type GradCheckResult } from '../../src/engine/gradcheck.js';
import { Rng, mixSeed, randnArray, uniformArray } from '../../src/engine/rng.js';
import { attention, gelu, groupNorm, layerNorm, linear, modulate, rmsNorm, silu } from '../../src/engine/ops.js';

// ------------------------------------------------------------------ inputs (all seeded)

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
const randn = (shape: number[], seed: number, scale = 1): Tensor =>
  tf.tensor(randnArray(size(shape), seed).map((v) => v * scale), shape);
const uniform = (shape: number[], seed: number, lo: number, hi: number): Tensor =>
  tf.tensor(uniformArray(size(shape), seed, lo, hi), shape);
/** Distinct values lo, lo + gap, ... in a seeded random order: no ties, no kinks within gap/2. */
function separated(shape: number[], seed: number, lo: number, gap: number): Tensor {
  const n = size(shape);
  const v = Float32Array.from({ length: n }, (_, i) => lo + i * gap);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return tf.tensor(v, shape);
}
/** Values with |x| in [lo, hi] and random sign (away from a kink at 0). */
function awayFromZero(shape: number[], seed: number, lo: number, hi: number): Tensor {
  const mag = uniformArray(size(shape), seed, lo, hi);
  const sgn = uniformArray(size(shape), mixSeed(seed, 1));
  return tf.tensor(mag.map((m, i) => (sgn[i]! < 0.5 ? -m : m)), shape);
}

interface Case {
  name: string;
  /** Differentiable inputs, created on the current backend. */
  inputs: () => Tensor[];
  f: (...xs: Tensor[]) => Tensor;
  opts?: GradCheckOptions;
  /** Only on these backends (default: all). */
  only?: BackendName[];
}

const conv = (stride: number, pad: 'same' | 'valid') => (x: Tensor, w: Tensor) =>
  tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad);

// Integer/boolean inputs are made outside f (they are not differentiated).
const ids = (): Tensor => tf.tensor2d([[3, 0, 7], [3, 9, 1]], [2, 3], 'int32');
const boolMask = (shape: number[], seed: number): Tensor =>
  tf.tensor(uniformArray(size(shape), seed).map((u) => (u < 0.5 ? 1 : 0)), shape, 'bool');

const CASES: Case[] = [
  // matmul
  { name: 'matmul 2-D', inputs: () => [randn([3, 4], 1), randn([4, 5], 2)], f: (a, b) => tf.matMul(a!, b!) },
  { name: 'matmul transposeA', inputs: () => [randn([4, 3], 1), randn([4, 5], 2)], f: (a, b) => tf.matMul(a!, b!, true) },
  { name: 'matmul transposeB', inputs: () => [randn([3, 4], 1), randn([5, 4], 2)], f: (a, b) => tf.matMul(a!, b!, false, true) },
  { name: 'matmul transposeA+B', inputs: () => [randn([4, 3], 1), randn([5, 4], 2)], f: (a, b) => tf.matMul(a!, b!, true, true) },
  { name: 'matmul batched 3-D', inputs: () => [randn([2, 3, 4], 1), randn([2, 4, 5], 2)], f: (a, b) => tf.matMul(a!, b!) },
  { name: 'matmul batched 4-D', inputs: () => [randn([2, 2, 3, 4], 1), randn([2, 2, 4, 3], 2)], f: (a, b) => tf.matMul(a!, b!) },
  {
    name: 'matmul 4-D, b broadcast over batch [2,3,4,5]x[1,3,5,2]',
    inputs: () => [randn([2, 3, 4, 5], 1), randn([1, 3, 5, 2], 2)],
    f: (a, b) => tf.matMul(a!, b!),
  },
  {
    name: 'matmul 4-D, both broadcast [2,1,4,5]x[1,3,2,5]^T',
    inputs: () => [randn([2, 1, 4, 5], 1), randn([1, 3, 2, 5], 2)],
    f: (a, b) => tf.matMul(a!, b!, false, true),
  },
  {
    name: 'matmul 4-D, non-leading broadcast [2,3,4,5]x[2,1,5,2]',
    inputs: () => [randn([2, 3, 4, 5], 1), randn([2, 1, 5, 2], 2)],
    f: (a, b) => tf.matMul(a!, b!),
  },
  {
    name: 'matmul 4-D, transposed, broadcast [2,1,5,4]^T x [1,3,2,5]^T',
    inputs: () => [randn([2, 1, 5, 4], 1), randn([1, 3, 2, 5], 2)],
    f: (a, b) => tf.matMul(a!, b!, true, true),
  },
  {
    name: 'fused matmul + bias, [2,3,4,5]x[2,3,5,2]',
    inputs: () => [randn([2, 3, 4, 5], 1), randn([2, 3, 5, 2], 2), randn([2], 3)],
    f: (a, b, bias) => tf.fused.matMul({ a: a!, b: b!, bias: bias! }),
  },
  {
    name: 'fused matmul + bias + relu, batched [2,4,5]x[2,5,3]',
    inputs: () => [randn([2, 4, 5], 1), randn([2, 5, 3], 2), tf.tensor1d([2.5, -3, 0.4])],
    // relu kinks: outputs near 0 are possible, so a small step
    f: (a, b, bias) => tf.fused.matMul({ a: a!, b: b!, bias: bias!, activation: 'relu' }),
    opts: { step: 1e-3 },
  },
  {
    name: 'fused matmul + bias + elu, 2-D',
    inputs: () => [randn([3, 4], 1), randn([4, 5], 2), randn([5], 3)],
    f: (a, b, bias) => tf.fused.matMul({ a: a!, b: b!, bias: bias!, activation: 'elu' }),
  },
  { name: 'matmul 3-D x 2-D', inputs: () => [randn([3, 4, 5], 1), randn([5, 2], 2)], f: (a, b) => tf.matMul(a!, b!) },
  {
    name: 'linear (x @ w^T + b)',
    inputs: () => [randn([2, 3, 4], 1), randn([5, 4], 2), randn([5], 3)],
    f: (x, w, b) => linear(x!, w!, b!),
  },
  // elementwise with broadcasting
  { name: 'add broadcast', inputs: () => [randn([2, 3, 4], 1), randn([3, 1], 2)], f: (a, b) => tf.add(a!, b!) },
  { name: 'sub broadcast', inputs: () => [randn([2, 3, 4], 1), randn([4], 2)], f: (a, b) => tf.sub(a!, b!) },
  { name: 'mul broadcast', inputs: () => [randn([2, 3, 4], 1), randn([2, 1, 4], 2)], f: (a, b) => tf.mul(a!, b!) },
  {
    name: 'div broadcast',
    inputs: () => [randn([2, 3, 4], 1), uniform([3, 1], 2, 0.5, 2)],
    f: (a, b) => tf.div(a!, b!),
  },
  { name: 'mul by scalar tensor', inputs: () => [randn([3, 4], 1), randn([], 2)], f: (a, s) => tf.mul(a!, s!) },
  // unary
  { name: 'exp', inputs: () => [randn([3, 4], 1)], f: (x) => tf.exp(x!) },
  { name: 'log', inputs: () => [uniform([3, 4], 1, 0.5, 2)], f: (x) => tf.log(x!) },
  { name: 'sqrt', inputs: () => [uniform([3, 4], 1, 0.5, 2)], f: (x) => tf.sqrt(x!) },
  { name: 'rsqrt', inputs: () => [uniform([3, 4], 1, 0.5, 2)], f: (x) => tf.rsqrt(x!) },
  { name: 'tanh', inputs: () => [randn([3, 4], 1)], f: (x) => tf.tanh(x!) },
  { name: 'sigmoid', inputs: () => [randn([3, 4], 1, 2)], f: (x) => tf.sigmoid(x!) },
  { name: 'sin', inputs: () => [randn([3, 4], 1, 2)], f: (x) => tf.sin(x!) },
  { name: 'cos', inputs: () => [randn([3, 4], 1, 2)], f: (x) => tf.cos(x!) },
  { name: 'square', inputs: () => [randn([3, 4], 1)], f: (x) => tf.square(x!) },
  { name: 'neg, reciprocal', inputs: () => [uniform([3, 4], 1, 0.5, 2)], f: (x) => tf.neg(tf.reciprocal(x!)) },
  { name: 'erf', inputs: () => [randn([3, 4], 1)], f: (x) => tf.erf(x!) },
  { name: 'pow x^3 (constant exponent)', inputs: () => [randn([3, 4], 1)], f: (x) => tf.pow(x!, 3) },
  { name: 'pow x^0.5 (constant exponent)', inputs: () => [uniform([3, 4], 1, 0.5, 2)], f: (x) => tf.pow(x!, 0.5) },
  { name: 'abs (away from 0)', inputs: () => [awayFromZero([3, 4], 1, 0.2, 2)], f: (x) => tf.abs(x!), opts: { step: 1e-2 } },
  { name: 'relu (away from 0)', inputs: () => [awayFromZero([3, 4], 1, 0.2, 2)], f: (x) => tf.relu(x!), opts: { step: 1e-2 } },
  {
    name: 'clipByValue (away from the bounds)',
    // values -1.55, -1.45, ..., 1.35: 0.05 from the bounds -0.6 and 0.7
    inputs: () => [separated([5, 6], 1, -1.55, 0.1)],
    f: (x) => tf.clipByValue(x!, -0.6, 0.7),
    opts: { step: 5e-3 },
  },
  // reductions
  { name: 'sum over axes [0, 2]', inputs: () => [randn([2, 3, 4], 1)], f: (x) => tf.sum(x!, [0, 2]) },
  { name: 'sum keepDims', inputs: () => [randn([2, 3, 4], 1)], f: (x) => tf.sum(x!, -1, true) },
  { name: 'mean over axis 1', inputs: () => [randn([2, 3, 4], 1)], f: (x) => tf.mean(x!, 1) },
  { name: 'mean all', inputs: () => [randn([2, 3, 4], 1)], f: (x) => tf.mean(x!) },
  { name: 'max over axis 1', inputs: () => [separated([2, 5, 3], 1, -2, 0.1)], f: (x) => tf.max(x!, 1), opts: { step: 5e-3 } },
  { name: 'max all', inputs: () => [separated([3, 4], 1, -1, 0.1)], f: (x) => tf.max(x!), opts: { step: 5e-3 } },
  { name: 'softmax', inputs: () => [randn([2, 3, 5], 1)], f: (x) => tf.softmax(x!) },
  { name: 'logSoftmax', inputs: () => [randn([3, 5], 1)], f: (x) => tf.logSoftmax(x!) },
  // shape ops
  { name: 'concat axis 1', inputs: () => [randn([2, 2, 3], 1), randn([2, 3, 3], 2)], f: (a, b) => tf.concat([a!, b!], 1) },
  {
    name: 'split',
    inputs: () => [randn([2, 5, 3], 1)],
    f: (x) => {
      const [p, q] = tf.split(x!, [2, 3], 1);
      return tf.concat([q!, tf.mul(p!, 3)], 1);
    },
  },
  { name: 'slice', inputs: () => [randn([3, 4, 5], 1)], f: (x) => tf.slice(x!, [1, 0, 2], [2, 3, 2]) },
  { name: 'reshape', inputs: () => [randn([2, 3, 4], 1)], f: (x) => tf.mul(tf.reshape(x!, [4, 6]), randn([4, 6], 9)) },
  { name: 'transpose', inputs: () => [randn([2, 3, 4], 1)], f: (x) => tf.transpose(x!, [2, 0, 1]) },
  { name: 'tile', inputs: () => [randn([2, 1, 3], 1)], f: (x) => tf.tile(x!, [2, 3, 1]) },
  { name: 'pad', inputs: () => [randn([2, 3], 1)], f: (x) => tf.pad(x!, [[1, 0], [0, 2]], 0.5) },
  {
    name: 'gather (embedding lookup, repeated ids)',
    inputs: () => [randn([10, 4], 1)],
    f: (table) => tf.gather(table!, ids()),
  },
  { name: 'gather axis 1', inputs: () => [randn([3, 10], 1)], f: (x) => tf.gather(x!, ids().reshape([6]), 1) },
  { name: 'stack', inputs: () => [randn([2, 3], 1), randn([2, 3], 2)], f: (a, b) => tf.stack([a!, b!], 1) },
  {
    name: 'unstack',
    inputs: () => [randn([2, 3, 4], 1)],
    f: (x) => {
      const parts = tf.unstack(x!, 1);
      return tf.add(tf.mul(parts[0]!, 2), tf.mul(parts[2]!, parts[1]!));
    },
  },
  {
    name: 'where (mask built outside)',
    inputs: () => [randn([3, 4], 1), randn([3, 4], 2)],
    f: (a, b) => tf.where(boolMask([3, 4], 7), a!, b!),
  },
  // convolutions and pooling
  { name: 'conv2d 3x3 stride 1 SAME', inputs: () => [randn([2, 5, 5, 2], 1), randn([3, 3, 2, 3], 2, 0.5)], f: conv(1, 'same') },
  { name: 'conv2d 3x3 stride 1 VALID', inputs: () => [randn([2, 5, 5, 2], 1), randn([3, 3, 2, 3], 2, 0.5)], f: conv(1, 'valid') },
  { name: 'conv2d 3x3 stride 2 SAME (even)', inputs: () => [randn([2, 6, 6, 2], 1), randn([3, 3, 2, 3], 2, 0.5)], f: conv(2, 'same') },
  { name: 'conv2d 3x3 stride 2 SAME (odd)', inputs: () => [randn([1, 5, 7, 2], 1), randn([3, 3, 2, 3], 2, 0.5)], f: conv(2, 'same') },
  { name: 'conv2d 3x3 stride 2 VALID', inputs: () => [randn([2, 7, 6, 2], 1), randn([3, 3, 2, 3], 2, 0.5)], f: conv(2, 'valid') },
  {
    name: 'conv2d 3x3 stride 2 SAME, NCHW (cpu only: wasm conv2d is NHWC-only)',
    inputs: () => [randn([2, 2, 5, 5], 1), randn([3, 3, 2, 3], 2, 0.5)],
    f: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same', 'NCHW'),
    only: ['cpu'],
  },
  { name: 'conv2d 1x1', inputs: () => [randn([2, 3, 3, 4], 1), randn([1, 1, 4, 3], 2, 0.5)], f: conv(1, 'valid') },
  {
    name: 'conv2dTranspose 3x3 stride 2 SAME',
    inputs: () => [randn([2, 3, 3, 3], 1), randn([3, 3, 2, 3], 2, 0.5)],
    f: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 6, 6, 2], 2, 'same'),
  },
  {
    name: 'conv2dTranspose 4x4 stride 2 VALID',
    inputs: () => [randn([1, 3, 3, 3], 1), randn([4, 4, 2, 3], 2, 0.5)],
    f: (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [1, 8, 8, 2], 2, 'valid'),
  },
  {
    name: 'depthwiseConv2d 3x3 stride 1 SAME, multiplier 2',
    inputs: () => [randn([2, 5, 5, 2], 1), randn([3, 3, 2, 2], 2, 0.5)],
    f: (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
  },
  {
    name: 'depthwiseConv2d 3x3 stride 2 VALID',
    inputs: () => [randn([1, 7, 6, 3], 1), randn([3, 3, 3, 1], 2, 0.5)],
    f: (x, w) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'),
  },
  { name: 'avgPool 2x2 stride 2 VALID', inputs: () => [randn([2, 4, 4, 3], 1)], f: (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid') },
  { name: 'avgPool 3x3 stride 1 SAME', inputs: () => [randn([2, 4, 5, 2], 1)], f: (x) => tf.avgPool(x as tf.Tensor4D, 3, 1, 'same') },
  {
    name: 'maxPool 2x2 stride 2 VALID, all windows negative',
    inputs: () => [separated([2, 4, 4, 3], 1, -10, 0.1)],
    f: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'),
    opts: { step: 5e-3 },
  },
  {
    name: 'maxPool 3x3 stride 2 SAME, mixed signs',
    inputs: () => [separated([2, 5, 5, 2], 1, -5, 0.1)],
    f: (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same'),
    opts: { step: 5e-3 },
  },
  {
    name: 'resizeNearestNeighbor 2x upsample, batch 2 x 3 channels',
    inputs: () => [randn([2, 3, 3, 3], 1)],
    f: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [6, 6]),
  },
  {
    name: 'resizeNearestNeighbor 3x4 -> 5x7 halfPixelCenters, batch 2 x 3 channels',
    inputs: () => [randn([2, 3, 4, 3], 1)],
    f: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [5, 7], false, true),
  },
  {
    name: 'resizeNearestNeighbor 3x4 -> 5x7 alignCorners, batch 2 x 3 channels',
    inputs: () => [randn([2, 3, 4, 3], 1)],
    f: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [5, 7], true, false),
  },
  // composites (src/engine/ops.ts and the moments form)
  {
    name: 'layerNorm (ops.layerNorm, affine)',
    inputs: () => [randn([2, 3, 8], 1), randn([8], 2), randn([8], 3)],
    f: (x, w, b) => layerNorm(x!, 1e-6, w!, b!),
  },
  {
    name: 'layerNorm (moments + rsqrt)',
    inputs: () => [randn([2, 3, 8], 1)],
    f: (x) => {
      const { mean, variance } = tf.moments(x!, -1, true);
      return tf.mul(tf.sub(x!, mean), tf.rsqrt(tf.add(variance, 1e-6)));
    },
  },
  { name: 'rmsNorm', inputs: () => [randn([2, 3, 8], 1), randn([8], 2)], f: (x, s) => rmsNorm(x!, s!) },
  {
    name: 'groupNorm (ops.groupNorm, NCHW)',
    inputs: () => [randn([2, 4, 3, 3], 1), randn([4], 2), randn([4], 3)],
    f: (x, w, b) => groupNorm(x!, 2, w!, b!),
  },
  {
    name: 'groupNorm (moments over NHWC groups)',
    inputs: () => [randn([2, 3, 3, 4], 1)],
    f: (x) => {
      const g = tf.reshape(x!, [2, 3, 3, 2, 2]);
      const { mean, variance } = tf.moments(g, [1, 2, 4], true);
      return tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, 1e-5))), [2, 3, 3, 4]);
    },
  },
  { name: 'GELU tanh (ops.gelu)', inputs: () => [randn([3, 5], 1, 2)], f: (x) => gelu(x!) },
  { name: 'SiLU (ops.silu)', inputs: () => [randn([3, 5], 1, 2)], f: (x) => silu(x!) },
  {
    name: 'AdaLN modulate',
    inputs: () => [randn([2, 4, 6], 1), randn([2, 1, 6], 2), randn([2, 1, 6], 3)],
    f: (x, sh, sc) => modulate(x!, sh!, sc!),
  },
  {
    name: 'scaled dot-product attention (ops.attention)',
    inputs: () => [randn([2, 2, 4, 3], 1), randn([2, 2, 5, 3], 2), randn([2, 2, 5, 3], 3)],
    f: (q, k, v) => attention(q!, k!, v!),
  },
];

// ------------------------------------------------------------------ hand-written references

/** The maxPool repro of fills.ts: a window whose max is negative. */
const MAXPOOL_X = [-1, -2, -3, -4, -5, -6, -7, -8, 1, 2, 3, 4, 5, 6, 7, -9];
const MAXPOOL_DX = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0];

/**
 * Reference gradient of sum(resizeNearestNeighbor(x) * dy): run the forward on an image whose
 * values are their own flat indices (exact in fp32), which says where each output reads from,
 * then scatter dy there. It depends only on the forward kernel.
 */
function resizeGradReference(
  shape: [number, number, number, number],
  out: [number, number],
  dy: Float32Array,
  alignCorners: boolean,
  halfPixelCenters: boolean,
): Float32Array {
  const index = tf.tensor4d(Float32Array.from({ length: size(shape) }, (_, i) => i), shape);
  const src = tf.image.resizeNearestNeighbor(index, out, alignCorners, halfPixelCenters);
  const s = src.dataSync();
  index.dispose();
  src.dispose();
  const dx = new Float32Array(size(shape));
  for (let i = 0; i < s.length; i++) dx[s[i]!] += dy[i]!;
  return dx;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// ------------------------------------------------------------------ the tests

const BACKENDS = availableBackends();
const results = new Map<string, Map<BackendName, GradCheckResult>>();

for (const backend of BACKENDS) {
  describe(`gradients on ${backend}`, () => {
    before(async () => {
      await useBackend(backend);
    });

    for (const c of CASES) {
      if (c.only && !c.only.includes(backend)) continue;
      test(c.name, (t) => {
        const xs = c.inputs();
        try {
          const r = gradCheck(c.f, xs, { seed: 11, ...c.opts });
          assert.ok(r.ok, `${c.name} on ${backend}: ${formatGradCheck(r)}`);
          t.diagnostic(formatGradCheck(r));
          if (!results.has(c.name)) results.set(c.name, new Map());
          results.get(c.name)!.set(backend, r);
        } finally {
          for (const x of xs) x.dispose();
        }
      });
    }

    test('maxPool gradient with a negative window (fills: wasm MaxPoolGrad)', () => {
      const x = tf.tensor4d(MAXPOOL_X, [1, 4, 4, 1]);
      const g = tf.grad((t: Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(x);
      assert.deepEqual(Array.from(g.dataSync()), MAXPOOL_DX);
      tf.dispose([x, g]);
    });

    test('maxPool gradient, SAME padding, all-negative input, against a hand reference', () => {
      // 1x3x3x1, 2x2 stride 2 SAME: windows {0,1,3,4}, {2,5}, {6,7}, {8}; each max is its first
      // element here (the values fall along the flat index).
      const x = tf.tensor4d([-1, -2, -3, -4, -5, -6, -7, -8, -9], [1, 3, 3, 1]);
      const dy = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
      const g = tf.grad((t: Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 2, 2, 'same'), dy)))(x);
      assert.deepEqual(Array.from(g.dataSync()), [1, 0, 2, 0, 0, 0, 3, 0, 4]);
      tf.dispose([x, dy, g]);
    });

    test('resizeNearestNeighbor gradient, batch 2 x 3 channels (fills: cpu and wasm grad)', () => {
      const shapes: Array<[[number, number, number, number], [number, number], boolean, boolean]> = [
        [[2, 2, 2, 3], [4, 4], false, false], // the fills.ts repro (cpu bug)
        [[2, 3, 4, 3], [5, 7], false, false],
        [[2, 3, 4, 3], [5, 7], true, false],
        [[2, 3, 5, 3], [4, 7], false, true], // halfPixelCenters (both backends wrong)
        [[2, 4, 4, 3], [2, 3], false, true], // downsample
      ];
      for (const [shape, out, ac, hp] of shapes) {
        const x = tf.tensor4d(Float32Array.from({ length: size(shape) }, (_, i) => i), shape);
        const dyv = Float32Array.from({ length: shape[0] * out[0] * out[1] * shape[3] }, (_, i) => (i * 7) % 5);
        const dy = tf.tensor4d(dyv, [shape[0], out[0], out[1], shape[3]]);
        const g = tf.grad((t: Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(t as tf.Tensor4D, out, ac, hp), dy)))(x);
        const want = resizeGradReference(shape, out, dyv, ac, hp);
        assert.deepEqual(Array.from(g.dataSync()), Array.from(want), `${shape} -> ${out} ac=${ac} hpc=${hp}`);
        tf.dispose([x, dy, g]);
      }
    });

    test('batch matmul broadcasting equals explicit broadcastTo (fills: BatchMatMul)', () => {
      const shapes: Array<[number[], number[]]> = [
        [[2, 3, 4, 5], [1, 3, 5, 2]],
        [[2, 3, 4, 5], [2, 1, 5, 2]], // silently wrong in stock tfjs
        [[2, 1, 4, 5], [1, 3, 5, 2]], // wrong-sized output in stock tfjs
        [[1, 3, 4, 5], [2, 1, 5, 2]],
        [[3, 4, 5], [2, 1, 5, 2]],
        [[2, 3, 4, 5], [5, 2]],
      ];
      for (const [sa, sb] of shapes) {
        const a = randn(sa, 1);
        const b = randn(sb, 2);
        const y = tf.matMul(a, b);
        const batch = y.shape.slice(0, -2);
        const ref = tf.matMul(tf.broadcastTo(a, [...batch, ...sa.slice(-2)]), tf.broadcastTo(b, [...batch, ...sb.slice(-2)]));
        assert.deepEqual(y.shape, ref.shape);
        assert.equal(y.dataSync().length, ref.size, `${sa} x ${sb}: ${y.dataSync().length} values for shape ${y.shape}`);
        assert.ok(maxAbsDiff(y.dataSync(), ref.dataSync()) < 1e-5, `${sa} x ${sb}: differs by ${maxAbsDiff(y.dataSync(), ref.dataSync())}`);
        tf.dispose([a, b, y, ref]);
      }
    });

    test('fused matmul with bias equals matMul + add (fills: wasm _FusedMatMul)', () => {
      const a = randn([2, 4, 5], 1);
      const b = randn([2, 5, 2], 2);
      const bias = tf.tensor1d([0.5, -1]);
      for (const activation of ['linear', 'relu', 'elu', 'sigmoid', 'leakyrelu'] as const) {
        const y = tf.fused.matMul({ a, b, bias, activation });
        const z = tf.add(tf.matMul(a, b), bias);
        const ref =
          activation === 'linear' ? z : activation === 'relu' ? tf.relu(z) : activation === 'elu' ? tf.elu(z)
          : activation === 'sigmoid' ? tf.sigmoid(z) : tf.leakyRelu(z, 0.2);
        const d = maxAbsDiff(y.dataSync(), ref.dataSync());
        assert.ok(d < 1e-5, `${activation}: differs by ${d}`);
      }
      const alpha = tf.tensor1d([0.1, 0.3]);
      const y = tf.fused.matMul({ a, b, bias, activation: 'prelu', preluActivationWeights: alpha });
      const ref = tf.prelu(tf.add(tf.matMul(a, b), bias), alpha);
      assert.ok(maxAbsDiff(y.dataSync(), ref.dataSync()) < 1e-5, 'prelu');
    });

    test('avgPool gradient with SAME padding against a hand reference (fills: AvgPoolGrad)', () => {
      // 3x3 window, stride 1, SAME on a 3x3 input: windows hold 4 (corner), 6 (edge) or 9 pixels,
      // and the forward divides by that count, so dx[p] = sum over windows w containing p of 1/|w|.
      const x = tf.ones([1, 3, 3, 1]);
      const g = tf.grad((t: Tensor) => tf.sum(tf.avgPool(t as tf.Tensor4D, 3, 1, 'same')))(x);
      const corner = 1 / 4 + 2 / 6 + 1 / 9;
      const count = (i: number): number => (i === 1 ? 3 : 2); // in-bounds rows/cols of a window centred at i
      const want: number[] = [];
      for (let r = 0; r < 3; r++)
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let wr = Math.max(0, r - 1); wr <= Math.min(2, r + 1); wr++)
            for (let wc = Math.max(0, c - 1); wc <= Math.min(2, c + 1); wc++) s += 1 / (count(wr) * count(wc));
          want.push(s);
        }
      assert.ok(Math.abs(want[0]! - corner) < 1e-12);
      assert.ok(maxAbsDiff(g.dataSync(), want) < 1e-6, `got ${Array.from(g.dataSync())}, want ${want}`);
      tf.dispose([x, g]);
    });

    test('slice, split and leading-axis sum against hand references (fills: wasm Slice, SplitV, Sum)', () => {
      const shape = [3, 4, 5, 40];
      const n = size(shape);
      const st = [800, 200, 40, 1];
      const v = Float32Array.from(randnArray(n, 21));
      const x = tf.tensor(v, shape);
      // Every box kind: a run over whole trailing axes, a partial last axis, short runs, the whole tensor.
      const boxes: [number[], number[]][] = [
        [[1, 0, 0, 0], [2, 4, 5, 40]], [[0, 1, 2, 3], [3, 2, 3, 33]], [[2, 3, 1, 5], [1, 1, 4, 2]],
        [[0, 0, 0, 0], [3, 4, 5, 40]], [[0, 2, 0, 0], [3, 1, 5, 40]],
      ];
      for (const [b, sz] of boxes) {
        const want: number[] = [];
        for (let i = 0; i < sz[0]!; i++) for (let j = 0; j < sz[1]!; j++) for (let k = 0; k < sz[2]!; k++)
          for (let l = 0; l < sz[3]!; l++) want.push(v[(b[0]! + i) * st[0]! + (b[1]! + j) * st[1]! + (b[2]! + k) * st[2]! + b[3]! + l]!);
        const y = tf.slice(x, b, sz);
        assert.deepEqual(y.shape, sz);
        assert.deepEqual(Array.from(y.dataSync()), want, `slice at [${b}] of [${sz}]`);
        y.dispose();
      }
      const parts = tf.split(x, [10, 25, 5], -1);
      assert.deepEqual(parts.map((p) => p.shape), [[3, 4, 5, 10], [3, 4, 5, 25], [3, 4, 5, 5]]);
      for (let r = 0; r < 60; r++) {
        const row = Array.from(v.subarray(r * 40, r * 40 + 40));
        assert.deepEqual(Array.from(parts[1]!.dataSync().subarray(r * 25, r * 25 + 25)), row.slice(10, 35));
      }
      const thirds = tf.split(x, 2, 1);
      assert.deepEqual(Array.from(thirds[1]!.dataSync().subarray(0, 400)), Array.from(v.subarray(400, 800)));
      const ints = tf.slice(tf.tensor1d([5, 6, 7, 8], 'int32'), [1], [2]);
      assert.equal(ints.dtype, 'int32');
      assert.deepEqual(Array.from(ints.dataSync()), [6, 7]);
      // Sum over leading axes: float32 additions in order (the stock wasm kernel's order, bit for bit).
      for (const lead of [1, 2, 3]) {
        const inner = shape.slice(lead).reduce((a, c) => a * c, 1);
        const want = new Float32Array(inner);
        for (let at = 0; at < n; at += inner) for (let j = 0; j < inner; j++) want[j] = Math.fround(want[j]! + v[at + j]!);
        const axes = Array.from({ length: lead }, (_, i) => i);
        const y = tf.sum(x, axes, true);
        assert.deepEqual(y.shape, shape.map((d, i) => (i < lead ? 1 : d)));
        const got = y.dataSync();
        if (backend === 'cpu') assert.ok(maxAbsDiff(got, Array.from(want)) < 1e-5);
        else assert.deepEqual(Array.from(got), Array.from(want), `sum over [${axes}]`);
        y.dispose();
      }
      tf.dispose([x, ints, ...parts, ...thirds]);
    });

    test('unsortedSegmentSum against a hand reference (fills: wasm kernel)', () => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [5, 2]);
      const seg = tf.tensor1d([0, 2, 0, 4, -1], 'int32'); // -1 is dropped, as in TensorFlow
      const y = tf.unsortedSegmentSum(x, seg, 5);
      assert.deepEqual(y.shape, [5, 2]);
      assert.deepEqual(Array.from(y.dataSync()), [6, 8, 0, 0, 3, 4, 0, 0, 7, 8]);
      tf.dispose([x, seg, y]);
    });

    test('gather gradient against a hand reference (fills: wasm UnsortedSegmentSum)', () => {
      const table = tf.tensor2d(randnArray(12, 5), [4, 3]);
      const idx = tf.tensor1d([2, 0, 2, 2], 'int32');
      const dy = tf.tensor2d([1, 2, 3, 10, 20, 30, 100, 200, 300, 1000, 2000, 3000], [4, 3]);
      const g = tf.grad((t: Tensor) => tf.sum(tf.mul(tf.gather(t, idx), dy)))(table);
      assert.deepEqual(Array.from(g.dataSync()), [10, 20, 30, 0, 0, 0, 1101, 2202, 3303, 0, 0, 0]);
      tf.dispose([table, idx, dy, g]);
    });

    test('conv2d filter gradient against a hand-written direct convolution (fills: wasm)', () => {
      // x 1x4x4x2, w 3x3x2x2, stride 2 SAME (pad top/left 0, bottom/right 1 for 4 -> 2).
      const xs = [1, 4, 4, 2] as const;
      const ws = [3, 3, 2, 2] as const;
      const xv = randnArray(size([...xs]), 21);
      const dyv = randnArray(1 * 2 * 2 * 2, 22);
      const want = new Float32Array(size([...ws]));
      for (let oh = 0; oh < 2; oh++)
        for (let ow = 0; ow < 2; ow++)
          for (let kh = 0; kh < 3; kh++)
            for (let kw = 0; kw < 3; kw++) {
              const ih = oh * 2 + kh;
              const iw = ow * 2 + kw;
              if (ih >= 4 || iw >= 4) continue;
              for (let ci = 0; ci < 2; ci++)
                for (let co = 0; co < 2; co++)
                  want[((kh * 3 + kw) * 2 + ci) * 2 + co] += xv[(ih * 4 + iw) * 2 + ci]! * dyv[(oh * 2 + ow) * 2 + co]!;
            }
      const x = tf.tensor4d(xv, [...xs]);
      const w = tf.tensor4d(randnArray(size([...ws]), 23), [...ws]);
      const dy = tf.tensor4d(dyv, [1, 2, 2, 2]);
      const g = tf.grad((t: Tensor) => tf.sum(tf.mul(tf.conv2d(x, t as tf.Tensor4D, 2, 'same'), dy)))(w);
      assert.ok(maxAbsDiff(g.dataSync(), want) < 1e-5, `max diff ${maxAbsDiff(g.dataSync(), want)}`);
      tf.dispose([x, w, dy, g]);
    });
  });
}

describe('gradCheck itself', () => {
  test('catches a wrong gradient, a dropped gradient, and passes the right one', async () => {
    await useBackend('cpu');
    const x = randn([3, 4], 1);
    const scaled = (k: number) =>
      tf.customGrad((...args: (Tensor | tf.GradSaveFunc)[]) => {
        const a = args[0] as Tensor;
        (args[1] as tf.GradSaveFunc)([a]);
        return { value: tf.square(a), gradFunc: (dy: Tensor, [s]: Tensor[]) => tf.mul(dy, tf.mul(s!, 2 * k)) };
      }) as unknown as (a: Tensor) => Tensor;
    const right = gradCheck(scaled(1), [x], { seed: 3 });
    assert.ok(right.ok && right.maxError < 1e-3, formatGradCheck(right));
    const wrong = gradCheck(scaled(1.1), [x], { seed: 3 });
    assert.ok(!wrong.ok, `10% too large should fail: ${formatGradCheck(wrong)}`);
    assert.ok(Math.abs(wrong.maxError - 0.1 / 1.1) < 0.01, formatGradCheck(wrong));
    const dropped = gradCheck(scaled(0), [x], { seed: 3 });
    assert.ok(!dropped.ok && Math.abs(dropped.maxError - 1) < 1e-6, formatGradCheck(dropped));
    // one wrong input among right ones is found and named
    const two = gradCheck((a, b) => tf.add(scaled(1.5)(a!), tf.mul(b!, 3)), [x, randn([3, 4], 2)], { seed: 3 });
    assert.ok(!two.ok && two.worst.input === 0, formatGradCheck(two));
    x.dispose();
  });

  test('is deterministic for a seed', async () => {
    await useBackend('cpu');
    const x = randn([2, 5], 1);
    const f = (a: Tensor) => tf.softmax(a);
    const r1 = gradCheck(f, [x], { seed: 5 });
    const r2 = gradCheck(f, [x], { seed: 5 });
    const r3 = gradCheck(f, [x], { seed: 6 });
    assert.deepEqual(r1.entries, r2.entries);
    assert.notDeepEqual(r1.entries, r3.entries);
    x.dispose();
  });
});

describe('backends agree', () => {
  test('forward values and gradients agree across backends', () => {
    if (BACKENDS.length < 2) return;
    const problems: string[] = [];
    for (const c of CASES) {
      const byBackend = results.get(c.name);
      if (!byBackend) continue; // failed above already
      const base = byBackend.get('wasm') ?? [...byBackend.values()][0]!;
      for (const [b, r] of byBackend) {
        let scale = 0;
        for (const v of base.output) scale = Math.max(scale, Math.abs(v));
        const d = maxAbsDiff(r.output, base.output);
        if (d > 1e-4 * Math.max(1, scale)) problems.push(`${c.name}: forward on ${b} differs by ${d}`);
        for (let i = 0; i < r.entries.length; i++) {
          const a = r.entries[i]!.analytic;
          const w = base.entries[i]!.analytic;
          if (Math.abs(a - w) > 1e-3 * Math.max(1, Math.abs(w))) {
            problems.push(`${c.name}: directional gradient on ${b} ${a} vs ${w}`);
          }
        }
      }
    }
    assert.deepEqual(problems, []);
    // Every case ran on every backend.
    for (const c of CASES) {
      const want = BACKENDS.filter((b) => !c.only || c.only.includes(b)).length;
      assert.equal(results.get(c.name)?.size, want, `${c.name} missing a backend`);
    }
  });
});
