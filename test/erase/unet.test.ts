// MCE on the SD-style UNet with DDIM (CFG inside every step): checkpointed gradients with
// hard-concrete noise equal full backprop; the trainer runs on it (final and per-step), lowers the
// loss, and starts as the original model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { stepSeed } from '../../src/engine/checkpoint.js';
import { initUnetWeights, unetMaskSpecs, unetForward } from '../../src/models/unet/index.js';
import { ddimPlan } from '../../src/sampling/diffusion-schedule.js';
import { ddimUpdate } from '../../src/sampling/ddim.js';
import { initLogitsFor, masksFromLogits, fluxMasksFrom } from '../../src/erase/mce/masks.js';
import { UnetPromptCache, unetBuildItems, unetObjectiveGrad, type UnetEraseModel } from '../../src/erase/mce/unet.js';
import { defaultMceSettings, trainMce } from '../../src/erase/mce/train.js';
import type { SampleSpec } from '../../src/erase/mce/objective.js';
import type { PromptSets } from '../../src/erase/mce/prompts.js';
import { hash, TINY_UNET } from './tiny.js';



function tinyUnet(seed: number): UnetEraseModel & { dispose(): void } {
  const weights = initUnetWeights(TINY_UNET, seed);
  return {
    kind: 'unet',
    cfg: TINY_UNET,
    weights,
    latent: [2, 4, 4],
    encode: (prompts) => tf.tidy(() => tf.stack(prompts.map((p) => tf.tensor(randnArray(3 * 6, hash(p)), [3, 6])))),
    dispose: () => tf.dispose(Object.values(weights)),
  };
}

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}

test('UNet objective gradients (DDIM, CFG, hard-concrete noise) equal full backprop through every step', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  const m = tinyUnet(3);
  const cache = new UnetPromptCache(m);
  const sampler = { plan: ddimPlan(3), cfg: 3 };
  const samples: SampleSpec[] = [
    { kind: 'erase', prompt: 'a knife', targetPrompt: 'a spoon', noise: 0 },
    { kind: 'preserve', prompt: 'a cat', targetPrompt: 'a cat', noise: 1 },
  ];
  const items = unetBuildItems(m, cache, samples, { sampler, objective: 'final' }, 2);
  const logits = initLogitsFor(unetMaskSpecs(TINY_UNET));
  const names = Object.keys(logits);
  names.forEach((n, i) => tf.tidy(() => logits[n]!.assign(tf.tensor1d(randnArray(logits[n]!.size, 70 + i)).mul(1.5) as tf.Tensor1D)));
  const ps = names.map((n) => logits[n]!);
  const seed = 77;
  const r = unetObjectiveGrad(m, cache, names, ps, items, { sampler, objective: 'final', beta: 0.5 }, seed);
  // Full backprop through the unrolled guided DDIM.
  const ctx = cache.batch(['a knife', 'a cat']);
  const unc = cache.batch(['', '']);
  const x0 = tf.concat(items.map((i) => i.noise), 0);
  const tgt = tf.concat(items.map((i) => i.target!), 0);
  const lossFn = (...params: Tensor[]): tf.Scalar => {
    let x = x0;
    sampler.plan.timesteps.forEach((t, k) => {
      const masks = masksFromLogits(names, params, { mode: 'hard-concrete', seed: stepSeed(seed, k) });
      const run = (c: Tensor): Tensor => unetForward(TINY_UNET, m.weights, { sample: x, timesteps: tf.fill([2], t), context: c }, { masks });
      const eu = run(unc);
      const ec = run(ctx);
      const e = tf.add(eu, tf.mul(tf.sub(ec, eu), 3));
      x = ddimUpdate(x, e, sampler.plan.alphas[k]!, sampler.plan.alphasPrev[k]!)[0];
    });
    const mse = tf.mean(tf.square(tf.sub(x, tgt)).reshape([2, -1]), 1);
    return tf.sum(tf.mul(mse, tf.tensor1d([1, 0.5]))) as tf.Scalar;
  };
  const full = tf.grads(lossFn)(ps);
  let checked = 0;
  for (let i = 0; i < names.length; i++) {
    const mx = tf.tidy(() => tf.max(tf.abs(full[i]!)));
    const s = (await mx.data())[0]!;
    mx.dispose();
    if (s === 0) continue; // a hook point the dead zone switched off for these draws
    checked++;
    assert.ok((await maxDiff(r.grads[i]!, full[i]!)) <= 1e-4 * Math.max(1e-2, s) + 1e-8, names[i]);
  }
  assert.ok(checked > names.length / 2, `${checked} of ${names.length} hook points have gradients`);
  tf.dispose([...r.grads, ...full, x0, tgt, ctx, unc, ...ps]);
  const { disposeItems } = await import('../../src/erase/mce/objective.js');
  disposeItems(items);
  cache.dispose();
  m.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

test('trainMce on a UNet (DDIM + CFG): final and per-step run, start as the original, lower the erase loss', async () => {
  await useBackend();
  const m = tinyUnet(4);
  const sets: PromptSets = { targets: [], erase: [{ target: 'k', prompt: 'a knife', neutral: 'a spoon' }], preserve: ['a cat'], neighbours: [] };
  for (const objective of ['final', 'per-step'] as const) {
    const s = defaultMceSettings({ plan: ddimPlan(3), cfg: 2 }, { iters: 15, noises: 1, eraseBatch: 1, preserveBatch: 1, objective, seed: 1 });
    const r = await trainMce(m, sets, s, { progress: false });
    const first = r.history[0]![2];
    const last = r.history.slice(-3).reduce((a, h) => a + h[2], 0) / 3;
    assert.ok(last < first, `${objective}: erase loss ${first} -> ${last}`);
    assert.ok(Object.keys(r.logits).every((n) => !n.endsWith('.heads')), 'heads are frozen by default');
  }
  // Binary masks at init leave the UNet unchanged.
  const logits = initLogitsFor(unetMaskSpecs(TINY_UNET));
  const masks = fluxMasksFrom(logits, 'binary');
  const x = tf.tensor4d(randnArray(2 * 16, 5), [1, 2, 4, 4]);
  const c = m.encode(['a cat']);
  const a = unetForward(TINY_UNET, m.weights, { sample: x, timesteps: tf.tensor1d([500]), context: c });
  const b = unetForward(TINY_UNET, m.weights, { sample: x, timesteps: tf.tensor1d([500]), context: c }, { masks });
  assert.equal(await maxDiff(a, b), 0);
  tf.dispose([a, b, x, c, ...Object.values(masks), ...Object.values(logits)]);
  m.dispose();
});
