// ESD and CA on tiny models of both families: the loss goes down, only the method's weights move
// (FLUX K/V rows for CA, never the Q rows), and the same seed gives the same weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../../src/engine/tf.js';
import { useBackend } from '../../../src/engine/backend.js';
import { esdParts, runEsd } from '../../../src/erase/baselines/esd.js';
import { runCa } from '../../../src/erase/baselines/ca.js';
import { runEap } from '../../../src/erase/baselines/eap.js';
import type { BaselineModel } from '../../../src/erase/baselines/family.js';
import { tinyFlux, tinyUnet } from './tiny.js';

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

function changed(model: BaselineModel, weights: Record<string, Float32Array>): string[] {
  return Object.entries(weights).filter(([n, w]) => {
    const o = model.weights[n]!.dataSync();
    return w.some((v, i) => v !== o[i]);
  }).map(([n]) => n).sort();
}

test('ESD-x and ESD-u on a tiny FLUX and a tiny UNet: the loss falls, their own weights move, seed-deterministic', async () => {
  await useBackend();
  for (const make of [tinyFlux, tinyUnet]) {
    const m = make();
    const before = tf.memory().numTensors;
    const s = { iters: 30, lr: 3e-3, steps: 2, seed: 4 };
    const x = await runEsd(m, 'esd-x', 'knife', s, { progress: false });
    const first = mean(x.losses.slice(0, 6));
    const last = mean(x.losses.slice(-6));
    // measured: flow 0.00348 -> 0.00213, diffusion 0.00835 -> 0.00250 (mean of the first / last 6 steps)
    assert.ok(last < 0.7 * first, `${m.family} esd-x loss ${first} -> ${last}`);
    const names = esdParts(m, 'esd-x').map((p) => p.weight);
    assert.deepEqual(changed(m, x.weights), [...names].sort());
    if (m.family === 'flow') assert.deepEqual(names, ['double_blocks.0.img_attn.proj.bias', 'double_blocks.0.img_attn.proj.weight', 'double_blocks.0.img_attn.qkv.bias', 'double_blocks.0.img_attn.qkv.weight', 'double_blocks.0.txt_attn.proj.bias', 'double_blocks.0.txt_attn.proj.weight', 'double_blocks.0.txt_attn.qkv.bias', 'double_blocks.0.txt_attn.qkv.weight']);
    else assert.ok(names.length > 0 && names.every((n) => n.includes('.attn2.')));
    const again = await runEsd(m, 'esd-x', 'knife', s, { progress: false });
    assert.deepEqual(again.losses, x.losses);
    for (const n of names) assert.deepEqual(again.weights[n], x.weights[n]);
    const other = await runEsd(m, 'esd-x', 'knife', { ...s, seed: 5 }, { progress: false });
    assert.notDeepEqual(other.losses, x.losses);
    const u = await runEsd(m, 'esd-u', 'knife', { ...s, iters: 12, lr: 3e-4 }, { progress: false });
    const uNames = esdParts(m, 'esd-u').map((p) => p.weight);
    assert.ok(uNames.every((n) => !names.includes(n)) && uNames.length > names.length);
    assert.ok(!uNames.some((n) => n.startsWith('time_embedding.') || n.endsWith('.scale')));
    assert.ok(mean(u.losses.slice(-3)) < mean(u.losses.slice(0, 3)), `${m.family} esd-u loss ${u.losses}`);
    assert.equal(tf.memory().numTensors, before);
    m.dispose();
  }
});

test('CA on a tiny FLUX and a tiny UNet: the concept prompt learns the anchor, only K/V move, seed-deterministic', async () => {
  await useBackend();
  for (const make of [tinyFlux, tinyUnet]) {
    const m = make();
    const before = tf.memory().numTensors;
    const pairs = [{ prompt: 'a knife', anchor: 'a spoon' }, { prompt: 'knife on a table', anchor: 'spoon on a table' }];
    const s = { iters: 30, lr: 3e-3, steps: 2, seed: 2 };
    const r = await runCa(m, pairs, s, { progress: false });
    const first = mean(r.losses.slice(0, 6));
    const last = mean(r.losses.slice(-6));
    // measured: flow 0.00208 -> 0.00122, diffusion 0.00134 -> 0.00054
    assert.ok(last < 0.7 * first, `${m.family} CA loss ${first} -> ${last}`);
    const again = await runCa(m, pairs, s, { progress: false });
    assert.deepEqual(again.losses, r.losses);
    if (m.family === 'flow') {
      const w0 = m.weights['double_blocks.0.txt_attn.qkv.weight']!.dataSync();
      const w1 = r.weights['double_blocks.0.txt_attn.qkv.weight']!;
      const h = 32 * 32;
      assert.deepEqual(Array.from(w1.subarray(0, h)), Array.from(w0.subarray(0, h)), 'Q rows untouched');
      assert.ok(w1.subarray(h).some((v, i) => v !== w0[h + i]), 'K/V rows trained');
    } else {
      assert.ok(changed(m, r.weights).every((n) => /attn2\.to_[kv]\.weight$/.test(n)));
    }
    assert.equal(tf.memory().numTensors, before);
    m.dispose();
  }
});

test('EAP on a tiny FLUX: ESD-x weights move, the adversary each step is a candidate, seed-deterministic', async () => {
  await useBackend();
  const m = tinyFlux();
  const before = tf.memory().numTensors;
  const pool = ['cat', 'dog', 'spoon', 'fork'];
  const s = { iters: 12, lr: 3e-3, steps: 2, seed: 4, candidates: 3 };
  const r = await runEap(m, 'knife', pool, s, { progress: false });
  assert.equal(r.adversaries.length, 12);
  assert.ok(r.adversaries.every((a) => pool.includes(a)));
  assert.deepEqual(changed(m, r.weights), esdParts(m, 'esd-x').map((p) => p.weight).sort());
  const again = await runEap(m, 'knife', pool, s, { progress: false });
  assert.deepEqual(again.losses, r.losses);
  assert.deepEqual(again.adversaries, r.adversaries);
  // With the preservation term the candidates' predictions move less than under plain ESD-x (same settings).
  const esd = await runEsd(m, 'esd-x', 'knife', s, { progress: false });
  const drift = (w: Record<string, Float32Array>): number => tf.tidy(() => {
    const over = Object.fromEntries(Object.entries(w).map(([n, v]) => [n, tf.tensor(v, m.weights[n]!.shape)]));
    const x = m.noise(9, pool.length);
    const c = m.encode(pool);
    const t = m.sampler(2).times[1]!;
    return tf.mean(tf.square(tf.sub(m.predict(x, t, c, over), m.predict(x, t, c)))).dataSync()[0]!;
  });
  const dEap = drift(r.weights);
  const dEsd = drift(esd.weights);
  assert.ok(dEap < dEsd, `candidate drift EAP ${dEap} vs ESD-x ${dEsd}`);
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});
