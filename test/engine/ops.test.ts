import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { attention, attentionHeads, geglu, gelu, layerNorm, linear, modulate, rmsNorm, silu } from '../../src/engine/ops.js';
import { randnArray } from '../../src/engine/rng.js';

// Every op gives the same numbers on every backend (the native one dispatches to fused kernels),
// forward and gradient, and matches a hand-computed value.
const B = 2, L = 5, D = 8;
const x = (): Tensor => tf.tensor3d(randnArray(B * L * D, 1), [B, L, D]);
const vec = (seed: number, shape: number[]): Tensor => tf.tensor(randnArray(shape.reduce((a, b) => a * b), seed), shape);

const cases: Record<string, (t: Tensor) => Tensor> = {
  gelu: (t) => gelu(t),
  geglu: (t) => geglu(t),
  silu: (t) => silu(t),
  layerNorm: (t) => layerNorm(t, 1e-6, vec(2, [D]), vec(3, [D])),
  rmsNorm: (t) => rmsNorm(t, vec(4, [D])),
  modulate: (t) => modulate(t, vec(5, [B, 1, D]), vec(6, [B, 1, D])),
  modulateShared: (t) => modulate(t, vec(5, [D]), vec(6, [D])),
  modulatePerToken: (t) => modulate(t, vec(5, [L, D]), vec(6, [L, D])),
  linear: (t) => linear(t, vec(7, [3, D]), vec(8, [3])),
  attentionHeads: (t) => attentionHeads(t, tf.mul(t, 0.5), tf.add(t, 1), 2),
  attention: (t) => {
    const q = t.reshape([B, L, 2, 4]).transpose([0, 2, 1, 3]);
    return attention(q, tf.mul(q, 0.5), tf.add(q, 1));
  },
};

async function run(): Promise<Record<string, { y: number[]; g: number[] }>> {
  const out: Record<string, { y: number[]; g: number[] }> = {};
  for (const [name, f] of Object.entries(cases)) {
    const input = x();
    const w = vec(99, f(input).shape);
    const y = f(input);
    const g = tf.grad((t: Tensor) => tf.sum(tf.mul(f(t), w)))(input);
    out[name] = { y: Array.from(await y.data()), g: Array.from(await g.data()) };
    tf.dispose([input, w, y, g]);
  }
  return out;
}

test('ops agree across backends, forward and gradient', async () => {
  const results: Record<string, Record<string, { y: number[]; g: number[] }>> = {};
  for (const b of availableBackends()) {
    await useBackend(b);
    results[b] = await run();
  }
  const ref = results['cpu']!;
  for (const [b, r] of Object.entries(results)) {
    for (const name of Object.keys(cases)) {
      for (const k of ['y', 'g'] as const) {
        const a = r[name]![k];
        const e = ref[name]![k];
        const err = Math.max(...a.map((v, i) => Math.abs(v - e[i]!) / (1e-3 + Math.abs(e[i]!))));
        assert.ok(err < 1e-3, `${name} ${k} on ${b}: relative error ${err}`);
      }
    }
  }
});

test('ops match hand-computed values', async () => {
  await useBackend();
  const t = tf.tensor2d([[-1, 0, 2]]);
  const close = async (y: Tensor, want: number[]): Promise<void> => {
    const got = Array.from(await y.data());
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-5, `${got} vs ${want}`));
  };
  await close(gelu(t), [-0.15880801, 0, 1.95459769]);
  await close(silu(t), [-0.26894142, 0, 1.76159416]);
  // hidden [-1, 0, 2] times F.gelu of gate [2, 1, -1]: 1.95449974, 0.84134475, -0.15865525.
  await close(geglu(tf.tensor2d([[-1, 0, 2, 2, 1, -1]])), [-1.95449974, 0, -0.3173105]);
  await close(layerNorm(t), [-1.06904497, -0.26726124, 1.33630621]);
  await close(rmsNorm(t, tf.tensor1d([1, 1, 2])), [-0.77459667, 0, 3.09838668]);
  await close(modulate(t, tf.tensor1d([1, 1, 1]), tf.tensor1d([1, 0, -1])), [-1, 1, 1]);
});
