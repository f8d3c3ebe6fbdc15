// The native kernels (build/mce_native.node) against the plain wasm backend (and tfjs-cpu for the
// conv gradients wasm lacks), and the fused kernels' gradients against float64 finite differences.
// Skipped, with the reason, when the addon is not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend, type BackendName } from '../../src/engine/backend.js';
import { FUSED_KERNELS, hasNativeKernel, nativeAddon, nativeKernelConfigs, planMatMul } from '../../src/engine/native.js';
import { randnArray } from '../../src/engine/rng.js';
import { groupNormNHWC } from '../../src/models/unet/blocks.js';

const addon = nativeAddon();
const skip = addon ? false : `native addon not available: ${String(nativeKernelConfigs())}`;

/** |a - e| <= atol * max|e| + rtol * |e| for every element. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-4, atol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const r = Math.abs(a - e) / (atol * (scale || 1) + rtol * Math.abs(e));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  assert.ok(worst <= 1, `${what}: [${at}] = ${actual[at]}, expected ${expected[at]} (max |expected| ${scale})`);
}

/**
 * Run fn on a backend; return every output's data. On native, free wasm heap is first poisoned
 * with NaN: native kernels skip the zero fill, so an element they failed to write would show.
 */
async function on(backend: BackendName, fn: () => Tensor | Tensor[]): Promise<Float32Array[]> {
  await useBackend(backend);
  if (backend === 'native') tf.dispose([0, 1, 2, 3].map((i) => tf.fill([(1 << 16) << i], NaN)));
  const out = tf.tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const data: Float32Array[] = [];
  for (const t of list) data.push((await t.data()) as Float32Array);
  tf.dispose(list);
  return data;
}

let seed = 1;
const randn = (shape: number[], scale = 1): { shape: number[]; data: Float32Array } => {
  const data = randnArray(shape.reduce((a, b) => a * b, 1), seed++);
  if (scale !== 1) for (let i = 0; i < data.length; i++) data[i]! *= scale;
  return { shape, data };
};
const T = (r: { shape: number[]; data: Float32Array }): Tensor => tf.tensor(r.data, r.shape);

/** Compare native with a reference backend (default wasm), output by output. */
async function compare(what: string, fn: () => Tensor | Tensor[], ref: BackendName = 'wasm', rtol = 1e-4, atol = 1e-5): Promise<void> {
  const want = await on(ref, fn);
  const got = await on('native', fn);
  assert.equal(got.length, want.length);
  got.forEach((g, i) => close(g, want[i]!, `${what} [output ${i}]`, rtol, atol));
}

// ---- matmul ----------------------------------------------------------------------------------

interface MM { a: number[]; b: number[]; ta?: boolean; tb?: boolean }
const matmulCases: MM[] = [
  { a: [1, 3], b: [3, 257] },
  { a: [3, 1], b: [257, 3], ta: true, tb: true },
  { a: [37, 20], b: [37, 29], ta: true },
  { a: [20, 37], b: [29, 37], tb: true },
  { a: [4, 17, 9], b: [4, 9, 13] },
  { a: [1, 17, 9], b: [4, 13, 9], tb: true },
  { a: [4, 9, 17], b: [9, 13], ta: true },
  { a: [17, 9], b: [3, 9, 13] },
  { a: [2, 3, 8, 5], b: [3, 5, 6] },
  { a: [2, 1, 8, 5], b: [1, 3, 5, 6] },
  { a: [3, 64, 48], b: [3, 48, 40] }, // small products: parallel over the batch
  { a: [4, 96, 80], b: [4, 112, 80], tb: true }, // medium products: parallel over the batch, 1 BLAS thread each
  { a: [160, 150], b: [150, 170] }, // one product below 2^24 multiply-adds: one OpenBLAS thread
  { a: [300, 300], b: [300, 200] }, // one product on OpenBLAS threads
];

test('BatchMatMul: transposes, batch broadcasting and odd sizes match wasm', { skip }, async () => {
  for (const c of matmulCases) {
    const a = randn(c.a);
    const b = randn(c.b);
    await compare(`matMul ${JSON.stringify(c)}`, () => tf.matMul(T(a), T(b), c.ta, c.tb));
  }
  assert.deepEqual(planMatMul([2, 1, 8, 5], [1, 3, 5, 6], false, false).outShape, [2, 3, 8, 6]);
  assert.deepEqual(planMatMul([4, 7, 9], [9, 3], false, false).dims, [{ n: 4, sa: 63, sb: 0, sc: 21 }]);
});

test('BatchMatMul: a small product gives the same numbers on one and on two BLAS threads', { skip }, async () => {
  const a = randn([160, 150]);
  const b = randn([150, 170]);
  const one = await on('native', () => tf.matMul(T(a), T(b)));
  const prev = addon!._setOneThreadMnk(0); // every product may use OpenBLAS's threads
  try {
    const two = await on('native', () => tf.matMul(T(a), T(b)));
    close(two[0]!, one[0]!, 'matMul on 2 BLAS threads vs 1', 1e-5, 1e-6);
  } finally {
    addon!._setOneThreadMnk(prev);
  }
});

test('Identity shares the buffer: clones outlive their source, and the tape still gets its saved inputs', { skip }, async () => {
  await useBackend('native');
  const x = tf.tensor1d([1, 2, 3]);
  const c = tf.clone(x);
  x.dispose();
  assert.deepEqual(Array.from(c.dataSync()), [1, 2, 3]);
  // Square saves its input through Engine.clone; the gradient reads it after the input is gone.
  const g = tf.grad((v: Tensor) => tf.sum(tf.square(tf.mul(v, 2))))(c);
  assert.deepEqual(Array.from(g.dataSync()), [8, 16, 24]); // d/dv (2v)^2 = 8v
  tf.dispose([c, g]);
  const before = tf.memory();
  tf.tidy(() => {
    tf.clone(tf.clone(tf.ones([1000])));
  });
  const after = tf.memory();
  assert.equal(after.numBytes, before.numBytes, 'disposed clones free their buffer');
  assert.equal(after.numTensors, before.numTensors);
});

test('BatchMatMul: empty dims give empty or zero outputs', { skip }, async () => {
  const [z] = await on('native', () => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4])));
  assert.deepEqual(Array.from(z!), new Array(12).fill(0));
  const [e] = await on('native', () => tf.matMul(tf.zeros([2, 0, 3]), tf.ones([2, 3, 5])));
  assert.equal(e!.length, 0);
});

test('BatchMatMul gradients (transposed products) match wasm', { skip }, async () => {
  for (const c of [matmulCases[2]!, matmulCases[5]!, matmulCases[8]!]) {
    const a = randn(c.a);
    const b = randn(c.b);
    const y = tf.tidy(() => tf.matMul(tf.zeros(c.a), tf.zeros(c.b), c.ta, c.tb).shape);
    const r = randn(y);
    await compare(`matMul grads ${JSON.stringify(c)}`, () =>
      tf.grads((x: Tensor, w: Tensor) => tf.sum(tf.mul(tf.matMul(x, w, c.ta, c.tb), T(r))))([T(a), T(b)]));
  }
});

test('_FusedMatMul: bias + relu natively, other activations fall back to tfjs', { skip }, async () => {
  // Reference: the unfused composite on wasm. (tfjs-wasm's own _FusedMatMul is wrong with
  // transposeB and a bias: 315 of 561 elements differ in this very case.)
  const a = randn([33, 20]);
  const b = randn([17, 20]);
  const bias = randn([17]);
  for (const act of ['relu', 'linear'] as const) {
    for (const bt of [T(bias), tf.scalar(0.5), undefined]) {
      const biasData = bt ? { shape: bt.shape, data: bt.dataSync() as Float32Array } : undefined;
      const want = await on('wasm', () => {
        let y = tf.matMul(T(a), T(b), false, true);
        if (biasData) y = tf.add(y, T(biasData));
        return act === 'relu' ? tf.relu(y) : y;
      });
      const got = await on('native', () =>
        tf.fused.matMul({ a: T(a), b: T(b), transposeB: true, bias: biasData && T(biasData), activation: act }));
      close(got[0]!, want[0]!, `fused ${act} bias ${biasData?.shape}`);
    }
  }
  const aT = randn([20, 33]);
  const bN = randn([20, 17]);
  await compare('fused elu, transposeA (fallback to tfjs)', () =>
    tf.fused.matMul({ a: T(aT), b: T(bN), transposeA: true, bias: T(bias), activation: 'elu' }));
  await compare('fused relu grads', () =>
    tf.grads((x: Tensor, w: Tensor, c: Tensor) =>
      tf.sum(tf.fused.matMul({ a: x, b: w, transposeA: true, bias: c, activation: 'relu' })))([T(aT), T(bN), T(bias)]));
});

// ---- conv ------------------------------------------------------------------------------------

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];
interface ConvCase { x: Shape4; f: Shape4; s: number | [number, number]; pad: Pad }
const convCases: ConvCase[] = [
  { x: [2, 9, 11, 5], f: [3, 3, 5, 7], s: 1, pad: 'same' },
  { x: [2, 9, 11, 5], f: [3, 3, 5, 7], s: 2, pad: 'same' },
  { x: [2, 9, 11, 5], f: [3, 3, 5, 7], s: 2, pad: 'valid' },
  { x: [1, 8, 8, 3], f: [4, 4, 3, 6], s: 2, pad: 'same' },
  { x: [2, 7, 6, 4], f: [3, 2, 4, 5], s: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [3, 5, 4, 6], f: [1, 1, 6, 8], s: 1, pad: 'valid' },
];

test('Conv2D forward matches wasm (stride 1/2, SAME/VALID/explicit, 1x1)', { skip }, async () => {
  for (const c of convCases) {
    const x = randn(c.x);
    const f = randn(c.f);
    await compare(`conv2d ${JSON.stringify(c)}`, () => tf.conv2d(T(x) as tf.Tensor4D, T(f) as tf.Tensor4D, c.s, c.pad));
  }
  // Dilation 2 is not native: tfjs's wasm kernel runs it.
  const x = randn([1, 9, 9, 2]);
  const f = randn([3, 3, 2, 3]);
  await compare('conv2d dilation 2 (fallback)', () =>
    tf.conv2d(T(x) as tf.Tensor4D, T(f) as tf.Tensor4D, 1, 'same', 'NHWC', 2));
});

test('Conv2D gradients (Conv2DBackpropInput/Filter) match tfjs-cpu', { skip }, async () => {
  for (const c of convCases) {
    const x = randn(c.x);
    const f = randn(c.f);
    const yShape = tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(c.f) as tf.Tensor4D, c.s, c.pad).shape);
    const r = randn(yShape);
    await compare(`conv2d grads ${JSON.stringify(c)}`, () =>
      tf.grads((xx: Tensor, ff: Tensor) =>
        tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ff as tf.Tensor4D, c.s, c.pad), T(r))))([T(x), T(f)]), 'cpu');
  }
});

test('conv2dTranspose (Conv2DBackpropInput) matches wasm; im2col chunking matches one chunk', { skip }, async () => {
  const x = randn([2, 5, 6, 7]);
  const f = randn([3, 3, 4, 7]);
  await compare('conv2dTranspose', () =>
    tf.conv2dTranspose(T(x) as tf.Tensor4D, T(f) as tf.Tensor4D, [2, 10, 12, 4], 2, 'same'));
  const xs = randn([5, 8, 8, 3]);
  const fs = randn([3, 3, 3, 4]);
  const r = randn([5, 4, 4, 4]);
  const fwdBwd = (): Tensor[] => {
    const [dx, df] = tf.grads((a: Tensor, w: Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), T(r))))([T(xs), T(fs)]);
    return [tf.conv2d(T(xs) as tf.Tensor4D, T(fs) as tf.Tensor4D, 2, 'same'), dx!, df!];
  };
  const whole = await on('native', fwdBwd);
  const prev = addon!._setColLimit(2 * 16 * 27); // two images per chunk: 3 chunks
  try {
    const chunked = await on('native', fwdBwd);
    chunked.forEach((c, i) => close(c, whole[i]!, `chunked conv output ${i}`, 1e-5, 1e-6));
  } finally {
    addon!._setColLimit(prev);
  }
});

// ---- fused kernels ---------------------------------------------------------------------------

const K = FUSED_KERNELS;
const GK = Math.sqrt(2 / Math.PI);
const run = (name: string, inputs: Record<string, Tensor>, attrs: Record<string, number> = {}): Tensor =>
  tf.engine().runKernel(name, inputs, attrs) as Tensor;

/** A fused op: its kernel, a tfjs composite (for wasm) and a float64 reference (for differences). */
interface Fused {
  name: string;
  inputs: Record<string, number[]>;
  /** Output shape when it is not x's. */
  outShape?: number[];
  attrs?: Record<string, number>;
  composite(x: Record<string, Tensor>): Tensor;
  ref(x: Record<string, Float64Array>, shapes: Record<string, number[]>): Float64Array;
}

function rows(shape: number[]): [number, number] {
  const d = shape[shape.length - 1]!;
  return [shape.reduce((a, b) => a * b, 1) / d, d];
}

function fusedCases(shape: number[], mod: { scale: number[]; shift: number[] }): Fused[] {
  const eps = 1e-5;
  return [
    {
      name: K.gelu,
      inputs: { x: shape },
      composite: ({ x }) => tf.mul(tf.mul(0.5, x!), tf.add(1, tf.tanh(tf.mul(GK, tf.add(x!, tf.mul(0.044715, tf.mul(tf.mul(x!, x!), x!))))))),
      ref: ({ x }) => x!.map((v) => 0.5 * v * (1 + Math.tanh(GK * (v + 0.044715 * v * v * v)))),
    },
    {
      name: K.geglu,
      inputs: { x: [...shape.slice(0, -1), 2 * shape[shape.length - 1]!] },
      outShape: shape,
      composite: ({ x }) => {
        const [a, g] = tf.split(x!, 2, -1);
        return tf.mul(a!, tf.mul(tf.mul(0.5, g!), tf.add(1, tf.erf(tf.mul(g!, Math.SQRT1_2)))));
      },
      ref: ({ x }, s) => {
        const [n, d] = rows(s['x']!);
        const h = d / 2;
        const y = new Float64Array(n * h);
        for (let r = 0; r < n; r++) {
          for (let j = 0; j < h; j++) {
            const g = x![r * d + h + j]!;
            y[r * h + j] = x![r * d + j]! * 0.5 * g * (1 + erf64(g / Math.SQRT2));
          }
        }
        return y;
      },
    },
    {
      name: K.silu,
      inputs: { x: shape },
      composite: ({ x }) => tf.mul(x!, tf.sigmoid(x!)),
      ref: ({ x }) => x!.map((v) => v / (1 + Math.exp(-v))),
    },
    {
      name: K.layerNorm,
      inputs: { x: shape },
      attrs: { eps },
      composite: ({ x }) => {
        const m = tf.mean(x!, -1, true);
        const c = tf.sub(x!, m);
        return tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.mul(c, c), -1, true), eps)));
      },
      ref: ({ x }, s) => {
        const [n, d] = rows(s['x']!);
        const y = new Float64Array(x!.length);
        for (let r = 0; r < n; r++) {
          let m = 0;
          for (let j = 0; j < d; j++) m += x![r * d + j]!;
          m /= d;
          let v = 0;
          for (let j = 0; j < d; j++) v += (x![r * d + j]! - m) ** 2;
          const rs = 1 / Math.sqrt(v / d + eps);
          for (let j = 0; j < d; j++) y[r * d + j] = (x![r * d + j]! - m) * rs;
        }
        return y;
      },
    },
    {
      name: K.rmsNorm,
      inputs: { x: shape, scale: [shape[shape.length - 1]!] },
      attrs: { eps },
      composite: ({ x, scale }) => tf.mul(tf.mul(x!, tf.rsqrt(tf.add(tf.mean(tf.mul(x!, x!), -1, true), eps))), scale!),
      ref: ({ x, scale }, s) => {
        const [n, d] = rows(s['x']!);
        const y = new Float64Array(x!.length);
        for (let r = 0; r < n; r++) {
          let ms = 0;
          for (let j = 0; j < d; j++) ms += x![r * d + j]! ** 2;
          const rs = 1 / Math.sqrt(ms / d + eps);
          for (let j = 0; j < d; j++) y[r * d + j] = x![r * d + j]! * rs * scale![j]!;
        }
        return y;
      },
    },
    {
      name: K.softmax,
      inputs: { x: shape },
      composite: ({ x }) => tf.softmax(x!),
      ref: ({ x }, s) => {
        const [n, d] = rows(s['x']!);
        const y = new Float64Array(x!.length);
        for (let r = 0; r < n; r++) {
          let m = -Infinity;
          for (let j = 0; j < d; j++) m = Math.max(m, x![r * d + j]!);
          let z = 0;
          for (let j = 0; j < d; j++) z += (y[r * d + j] = Math.exp(x![r * d + j]! - m));
          for (let j = 0; j < d; j++) y[r * d + j]! /= z;
        }
        return y;
      },
    },
    {
      name: K.modulate,
      inputs: { x: shape, scale: mod.scale, shift: mod.shift },
      composite: ({ x, scale, shift }) => tf.add(tf.mul(x!, tf.add(1, scale!)), shift!),
      ref: ({ x, scale, shift }, s) => {
        const [n, d] = rows(s['x']!);
        const B = s['x']![0]!;
        const per = n / B;
        const y = new Float64Array(x!.length);
        for (let r = 0; r < n; r++) {
          const b = Math.floor(r / per);
          const so = scale!.length === d ? 0 : b * d;
          const ho = shift!.length === d ? 0 : b * d;
          for (let j = 0; j < d; j++) y[r * d + j] = x![r * d + j]! * (1 + scale![so + j]!) + shift![ho + j]!;
        }
        return y;
      },
    },
  ];
}

/** erf to ~1e-15 (Maclaurin series below 3, continued fraction of erfc above), the float64 reference. */
function erf64(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 100; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let cf = 0;
    for (let n = 60; n >= 1; n--) cf = (n / 2) / (z + cf);
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + cf);
  }
  return x < 0 ? -r : r;
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

async function checkFused(f: Fused): Promise<void> {
  const names = Object.keys(f.inputs);
  const data: Record<string, Float32Array> = {};
  for (const n of names) data[n] = randn(f.inputs[n]!, n === 'x' && f.name === K.softmax ? 3 : 1).data;
  const outShape = f.outShape ?? f.inputs['x']!;
  const r = randn(outShape);
  const tensors = (): Record<string, Tensor> => Object.fromEntries(names.map((n) => [n, tf.tensor(data[n]!, f.inputs[n]!)]));
  const lossAndGrads = (op: (x: Record<string, Tensor>) => Tensor) => (): Tensor[] => {
    const xs = tensors();
    const g = tf.grads((...args: Tensor[]) =>
      tf.sum(tf.mul(op(Object.fromEntries(names.map((n, i) => [n, args[i]!]))), T(r))))(names.map((n) => xs[n]!));
    return [op(xs), ...g];
  };
  // Forward and every input gradient: native kernel vs the tfjs composite on plain wasm.
  const want = await on('wasm', lossAndGrads(f.composite));
  await useBackend('native');
  assert.ok(hasNativeKernel(f.name), `${f.name} registered under native`);
  const got = await on('native', lossAndGrads((x) => run(f.name, x, f.attrs)));
  got.forEach((g, i) => close(g, want[i]!, `${f.name} ${i === 0 ? 'forward' : `d${names[i - 1]}`}`));

  // Forward vs float64, and directional derivatives vs float64 central differences.
  const x64 = Object.fromEntries(names.map((n) => [n, Float64Array.from(data[n]!)]));
  close(got[0]!, f.ref(x64, f.inputs), `${f.name} forward vs float64`);
  const loss = (x: Record<string, Float64Array>): number => dot(f.ref(x, f.inputs), r.data);
  names.forEach((n, i) => {
    const g = got[i + 1]!;
    for (let k = 0; k < 2; k++) {
      const v = randnArray(g.length, 1000 + seed++);
      const h = 1e-4;
      const plus = { ...x64, [n]: x64[n]!.map((x, j) => x + h * v[j]!) };
      const minus = { ...x64, [n]: x64[n]!.map((x, j) => x - h * v[j]!) };
      const fd = (loss(plus) - loss(minus)) / (2 * h);
      const an = dot(g, v);
      let mag = 0;
      for (let j = 0; j < g.length; j++) mag += Math.abs(g[j]! * v[j]!);
      assert.ok(Math.abs(fd - an) <= 1e-4 * mag + 1e-6, `${f.name} d${n}: <grad, v> = ${an}, finite difference ${fd}`);
    }
  });
}

test('fused kernels: forward and gradients (small, odd sizes)', { skip }, async () => {
  for (const f of fusedCases([3, 5, 33], { scale: [3, 1, 33], shift: [33] })) await checkFused(f);
});

test('fused kernels: forward and gradients (large enough to use both threads)', { skip }, async () => {
  for (const f of fusedCases([4, 64, 320], { scale: [320], shift: [4, 1, 320] })) await checkFused(f);
});

/** MceAttention over token-major heads: q [B, L, H*D], k and v [B, S, H*D]. */
function attentionCase(B: number, L: number, S: number, H: number, D: number): Fused {
  const C = H * D;
  return {
    name: K.attention,
    inputs: { q: [B, L, C], k: [B, S, C], v: [B, S, C] },
    outShape: [B, L, C],
    attrs: { heads: H },
    composite: ({ q, k, v }) => {
      const split = (t: Tensor, n: number): Tensor => t.reshape([B, n, H, D]).transpose([0, 2, 1, 3]);
      const p = tf.softmax(tf.mul(tf.matMul(split(q!, L), split(k!, S), false, true), 1 / Math.sqrt(D)));
      return tf.matMul(p, split(v!, S)).transpose([0, 2, 1, 3]).reshape([B, L, C]);
    },
    ref: ({ q, k, v }) => {
      const o = new Float64Array(B * L * C);
      const p = new Float64Array(S);
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < H; h++) {
          for (let i = 0; i < L; i++) {
            const qi = (b * L + i) * C + h * D;
            let m = -Infinity;
            for (let j = 0; j < S; j++) {
              let d = 0;
              for (let c = 0; c < D; c++) d += q![qi + c]! * k![(b * S + j) * C + h * D + c]!;
              m = Math.max(m, (p[j] = d / Math.sqrt(D)));
            }
            let z = 0;
            for (let j = 0; j < S; j++) z += (p[j] = Math.exp(p[j]! - m));
            for (let j = 0; j < S; j++) {
              for (let c = 0; c < D; c++) o[qi + c]! += (p[j]! / z) * v![(b * S + j) * C + h * D + c]!;
            }
          }
        }
      }
      return o;
    },
  };
}

test('MceAttention: forward and gradients for q, k and v (one and several heads, L != S)', { skip }, async () => {
  await checkFused(attentionCase(2, 3, 5, 2, 3));
  await checkFused(attentionCase(3, 4, 4, 1, 8));
  await checkFused(attentionCase(8, 64, 16, 2, 32)); // the sd-emoji UNet's cross-attention, both threads
});

test('MceGroupNorm: forward and gradients for x, weight and bias match the composite GroupNorm on wasm', { skip }, async () => {
  // groupNormNHWC runs the fused kernel under native and tfjs's ops under wasm.
  const cases = [
    { x: [3, 5, 4, 12], groups: 4, eps: 1e-5, swish: false },
    { x: [2, 7, 3, 6], groups: 3, eps: 1e-6, swish: true },
    { x: [8, 8, 8, 96], groups: 16, eps: 1e-5, swish: true }, // the sd-emoji UNet's widest
  ];
  for (const c of cases) {
    const C = c.x[c.x.length - 1]!;
    const x = randn(c.x, 2);
    const w = randn([C], 0.3);
    const b = randn([C], 0.1);
    const r = randn(c.x);
    for (let i = 0; i < w.data.length; i++) w.data[i]! += 1;
    for (let i = 0; i < x.data.length; i++) x.data[i]! += 0.5; // a mean to subtract
    await compare(`groupNorm ${JSON.stringify(c)}`, () => {
      const f = (xt: Tensor, wt: Tensor, bt: Tensor): Tensor => groupNormNHWC(xt, wt, bt, c.groups, c.eps, c.swish);
      const y = f(T(x), T(w), T(b));
      const g = tf.grads((xt: Tensor, wt: Tensor, bt: Tensor) => tf.sum(tf.mul(f(xt, wt, bt), T(r))))([T(x), T(w), T(b)]);
      return [y, ...g];
    }, 'wasm', 1e-4, 1e-5);
  }
  await useBackend('native');
  assert.equal(hasNativeKernel(K.groupNorm), true);
});

test('fused kernels give the same numbers on 1 and 2 threads; registered only under native', { skip }, async () => {
  const x = randn([4, 64, 320]);
  const s = randn([320]);
  const fn = (): Tensor[] => {
    const xt = T(x);
    return [run(K.gelu, { x: xt }), run(K.layerNorm, { x: xt }, { eps: 1e-6 }), run(K.softmax, { x: xt }),
      run(K.attention, { q: xt, k: xt, v: xt }, { heads: 4 }),
      ...(tf.engine().runKernel(K.attentionGrad, { dy: xt, q: xt, k: xt, v: xt }, { heads: 4 }) as Tensor[]),
      ...(tf.engine().runKernel(K.rmsNormGrad, { dy: xt, x: xt, scale: T(s) }, { eps: 1e-6 }) as Tensor[])];
  };
  const threads = addon!.getThreads();
  try {
    addon!.setThreads(1);
    const one = await on('native', fn);
    addon!.setThreads(2);
    assert.equal(addon!.getThreads(), 2);
    const two = await on('native', fn);
    for (let i = 0; i < 8; i++) {
      const diff = one[i]!.findIndex((v, j) => !Object.is(v, two[i]![j]));
      assert.equal(diff, -1, `output ${i} differs between 1 and 2 threads at [${diff}]`);
    }
    close(two[8]!, one[8]!, 'rmsNorm dscale (reduced per thread)', 1e-5, 1e-6);
  } finally {
    addon!.setThreads(threads);
  }
  await useBackend('wasm');
  assert.equal(hasNativeKernel(K.gelu), false);
  assert.equal(hasNativeKernel('BatchMatMul'), false);
  await useBackend('native');
  assert.equal(hasNativeKernel(K.gelu), true);
  assert.equal(hasNativeKernel('BatchMatMul'), true);
});

test('the addon checks extents and types', { skip }, () => {
  const a = new Float32Array(6);
  const b = new Float32Array(6);
  const c = new Float32Array(3);
  assert.throws(() => addon!.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2), /C has 3 elements, needs 4/);
  assert.throws(() => addon!.gelu(a, new Float32Array(5)), /same length/);
  assert.throws(() => addon!.layerNorm(a, new Float32Array(6), 4, 1e-6), /multiple of the row length/);
  assert.throws(() => addon!.geglu(a, new Float32Array(6), 3), /half the elements of x/);
  assert.throws(() => addon!.attention(a, a, a, new Float32Array(6), 1, 3, 2, 1, 2), /k must have B\*S\*H\*D elements/);
  assert.throws(() => addon!.attention(a, new Float32Array(2), new Float32Array(2), c, 1, 3, 1, 1, 2), /q and o must have the same length/);
  assert.throws(() => addon!.sgemm(false, false, 1, 1, 1, 1, [1] as unknown as Float32Array, 1, b, 1, 0, c, 1), /Float32Array/);
  // And computes: [[1,2,3],[4,5,6]] x [[1,0],[0,1],[1,1]].
  const C = new Float32Array(4);
  addon!.sgemm(false, false, 2, 2, 3, 1, Float32Array.of(1, 2, 3, 4, 5, 6), 3, Float32Array.of(1, 0, 0, 1, 1, 1), 2, 0, C, 2);
  assert.deepEqual(Array.from(C), [4, 5, 10, 11]);
});
