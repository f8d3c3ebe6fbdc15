import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { AdamW, clipCoefficient, globalNorm, type Params } from '../../src/train/optim.js';

// From test/train/fixtures/adamw_reference.py (torch 1.13 torch.optim.AdamW + clip_grad_norm_).
const TORCH = {
  norms: [2.4748737812042236, 7.035624027252197, 1.1592023372650146, 23.979158401489258, 0.022912878543138504, 4.873397350311279],
  w: [0.7004538774490356, -1.2031329870224, 2.0050504207611084, 0.05374802649021149, -0.9612563252449036, 1.692706823348999],
  b: [0.07014060765504837, -0.08018858730792999, 0.16373540461063385],
  m_w: [-0.024211881682276726, -0.12858808040618896, 0.017103740945458412, 0.009796409867703915, 0.21120764315128326, -0.09453088045120239],
  v_w: [0.08105432242155075, 0.11125796288251877, 0.05869755148887634, 0.0822250097990036, 0.0965094268321991, 0.07139605283737183],
  m_b: [0.1287383884191513, -0.024211881682276726, -0.12858808040618896],
  v_b: [0.06233431398868561, 0.08105432242155075, 0.11125796288251877],
};
const SCALES = [1.0, 3.0, 0.5, 10.0, 0.01, 2.0];
const grad = (n: number, t: number, scale: number): number[] =>
  Array.from({ length: n }, (_, i) => ((((i * 7 + t * 3) % 11) - 5) / 4) * scale);

function close(actual: ArrayLike<number>, expected: readonly number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

function vars(init: Record<string, number[]>): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(init)) {
    const t = tf.tensor1d(v);
    out[k] = tf.variable(t);
    t.dispose();
  }
  return out;
}

for (const backend of availableBackends()) {
  test(`AdamW matches torch.optim.AdamW with groups, weight decay and clipping to 1e-6 (${backend})`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const p = vars({ w: [0.5, -1.0, 2.0, 0.25, -0.75, 1.5], b: [0.1, -0.2, 0.3] });
    const opt = new AdamW(p, {
      lr: 0.1, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1, maxGradNorm: 2,
      groups: [{ name: 'bias', match: ['b'], lr: 0.05, weightDecay: 0 }],
    });
    SCALES.forEach((s, t) => {
      const g = { w: tf.tensor1d(grad(6, t, s)), b: tf.tensor1d(grad(3, t + 5, s)) };
      const r = opt.step(g);
      assert.ok(Math.abs(r.gradNorm - TORCH.norms[t]!) < 1e-5 * TORCH.norms[t]!, `norm ${t}`);
      assert.deepEqual(r.lr, { default: 0.1, bias: 0.05 });
      tf.dispose(g);
    });
    close(p['w']!.dataSync(), TORCH.w, 1e-6, 'w');
    close(p['b']!.dataSync(), TORCH.b, 1e-6, 'b');
    const st = opt.state();
    assert.equal(st.step, 6);
    close((st.tensors['m.w'] as tf.Tensor).dataSync(), TORCH.m_w, 1e-6, 'm.w');
    close((st.tensors['v.w'] as tf.Tensor).dataSync(), TORCH.v_w, 1e-6, 'v.w');
    close((st.tensors['m.b'] as tf.Tensor).dataSync(), TORCH.m_b, 1e-6, 'm.b');
    close((st.tensors['v.b'] as tf.Tensor).dataSync(), TORCH.v_b, 1e-6, 'v.b');
    opt.dispose();
    tf.dispose(Object.values(p));
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });
}

test('AdamW follows a float64 reference with a schedule, a frozen group and a skipped gradient', async () => {
  await useBackend('cpu');
  const w0 = [0.3, -0.6, 0.9, 1.2];
  const p = vars({ w: w0, frozen: [1, 2], u: [0.5] });
  const schedule = (k: number): number => Math.min(1, (k + 1) / 3);
  const opt = new AdamW(p, { lr: 0.02, weightDecay: 0.05, schedule, groups: [{ name: 'heads', match: (n) => n === 'frozen', lr: 0 }] });
  assert.deepEqual(opt.trainableNames(), ['u', 'w']);
  assert.deepEqual(opt.frozenNames(), ['frozen']);
  assert.equal(opt.groupFor('frozen'), 'heads');
  // float64 reference
  const ref = [...w0];
  const m = [0, 0, 0, 0];
  const v = [0, 0, 0, 0];
  for (let t = 1; t <= 8; t++) {
    const g = grad(4, t, t % 3 === 0 ? 5 : 0.2);
    const gr = { w: tf.tensor1d(g), frozen: tf.tensor1d([9, 9]) };
    opt.step(gr); // no gradient for 'u' this time: it must stay put
    tf.dispose(gr);
    const lr = 0.02 * schedule(t - 1);
    for (let i = 0; i < 4; i++) {
      ref[i] = ref[i]! * (1 - lr * 0.05);
      m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * g[i]! ** 2;
      ref[i] = ref[i]! - (lr / (1 - 0.9 ** t)) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
    }
  }
  close(p['w']!.dataSync(), ref, 1e-6, 'w');
  assert.deepEqual(Array.from(p['frozen']!.dataSync()), [1, 2]);
  assert.deepEqual(Array.from(p['u']!.dataSync()), [0.5]);
  opt.dispose();
  tf.dispose(Object.values(p));
});

test('AdamW weight decay toward a value: p <- c + (p - c)(1 - lr wd), then the Adam step (float64 reference)', async () => {
  await useBackend('cpu');
  const w0 = [3, 2.5, -1, 4];
  const p = vars({ w: w0 });
  const opt = new AdamW(p, { lr: 0.5, weightDecay: 0.2, decayTo: 3 });
  assert.equal(opt.describe()['decayTo'], 3);
  assert.equal(new AdamW({}, {}).describe()['decayTo'], undefined, 'the default (0) leaves config hashes as they were');
  const ref = [...w0];
  const m = [0, 0, 0, 0];
  const v = [0, 0, 0, 0];
  for (let t = 1; t <= 5; t++) {
    const g = t <= 2 ? grad(4, t, 0.3) : [0, 0, 0, 0];
    const gr = { w: tf.tensor1d(g) };
    opt.step(gr);
    tf.dispose(gr);
    for (let i = 0; i < 4; i++) {
      ref[i] = 3 + (ref[i]! - 3) * (1 - 0.5 * 0.2);
      m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
      v[i] = 0.999 * v[i]! + 0.001 * g[i]! ** 2;
      ref[i] = ref[i]! - (0.5 / (1 - 0.9 ** t)) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
    }
  }
  close(p['w']!.dataSync(), ref, 1e-5, 'w');
  opt.dispose();
  tf.dispose(Object.values(p));
});

test('AdamW state round-trips exactly: a restored optimizer continues bit for bit', async () => {
  await useBackend('wasm');
  const init = { a: [0.1, 0.2, -0.3], b: [1.5] };
  const run = (steps: number[], restore?: { step: number; tensors: Record<string, { shape: number[]; data: Float32Array }> }, params?: Record<string, Float32Array>) => {
    const p = vars(params ? Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Array.from(v)])) : init);
    const opt = new AdamW(p, { lr: 0.05, maxGradNorm: 0.5, ema: 0.8 });
    if (restore) opt.loadState(restore);
    for (const t of steps) {
      const g = { a: tf.tensor1d(grad(3, t, 1 + t)), b: tf.tensor1d(grad(1, t, 2)) };
      opt.step(g);
      tf.dispose(g);
    }
    const st = opt.state();
    const saved = {
      step: st.step,
      tensors: Object.fromEntries(Object.entries(st.tensors).map(([k, t]) => [k, { shape: [...t.shape], data: (t as tf.Tensor).dataSync() as Float32Array }])),
    };
    const out = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.dataSync() as Float32Array]));
    opt.dispose();
    tf.dispose(Object.values(p));
    return { saved, out };
  };
  const full = run([0, 1, 2, 3, 4, 5]);
  const half = run([0, 1, 2]);
  const rest = run([3, 4, 5], half.saved, half.out);
  assert.equal(rest.saved.step, 6);
  for (const k of ['a', 'b']) assert.deepEqual(rest.out[k], full.out[k]);
  for (const k of Object.keys(full.saved.tensors)) assert.deepEqual(rest.saved.tensors[k]!.data, full.saved.tensors[k]!.data);

  const p = vars(init);
  const opt = new AdamW(p);
  assert.throws(() => opt.loadState({ step: 1, tensors: { 'm.a': { shape: [3], data: new Float32Array(3) } } }), /does not match the parameters \(missing/);
  assert.throws(() => opt.step({ a: tf.zeros([2]) }), /gradient of 'a' has shape \[2\], the parameter has \[3\]/);
  opt.dispose();
  tf.dispose(Object.values(p));
});

test('AdamW ema: a moving average with the warm-up decay min(ema, (1 + t) / (10 + t)), saved with the state, frozen params passed through', async () => {
  await useBackend('wasm');
  const init = { a: [0.1, 0.2, -0.3], f: [2] };
  const p = vars(init);
  const opt = new AdamW(p, { lr: 0.05, ema: 0.9, groups: [{ name: 'frozen', match: ['f'], lr: 0 }] });
  assert.equal(opt.describe()['ema'], 0.9);
  assert.equal(new AdamW({}, {}).describe()['ema'], undefined, 'off by default: config hashes stay as they were');
  assert.throws(() => new AdamW({}, { ema: 1 }), /ema must be in \(0, 1\)/);
  // Float64 reference of the average over the parameter's own trajectory.
  let avg = Float64Array.from(init.a);
  for (let t = 1; t <= 30; t++) {
    const g = { a: tf.tensor1d(grad(3, t, 1)) };
    opt.step(g);
    tf.dispose(g);
    const d = Math.min(0.9, (1 + t) / (10 + t));
    const now = p['a']!.dataSync();
    avg = avg.map((x, i) => d * x + (1 - d) * now[i]!);
  }
  const w = opt.averaged();
  close(w['a']!.dataSync(), Array.from(avg), 1e-6, 'ema of a');
  assert.notDeepEqual(Array.from(w['a']!.dataSync()), Array.from(p['a']!.dataSync()), 'the average lags the parameter');
  assert.equal(w['f'], p['f'], 'a frozen parameter is its own average');
  assert.deepEqual(Object.keys(opt.state().tensors).sort(), ['ema.a', 'm.a', 'v.a']);
  opt.dispose();
  tf.dispose(Object.values(p));
});

test('globalNorm and clipCoefficient match clip_grad_norm_', async () => {
  await useBackend('wasm');
  const g = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[4]]) };
  assert.ok(Math.abs(globalNorm(g) - 5) < 1e-6);
  assert.equal(globalNorm({}), 0);
  tf.dispose(g);
  assert.equal(clipCoefficient(0.5, 1), 1);
  assert.ok(Math.abs(clipCoefficient(10, 1) - 1 / (10 + 1e-6)) < 1e-12);
});
