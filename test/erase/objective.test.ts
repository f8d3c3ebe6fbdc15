// The MCE objective and trainer on a tiny random FLUX: checkpointed gradients with hard-concrete
// noise equal full backprop through the unrolled sampler (noise replayed), the per-step variant,
// the loss going down on a toy erase, resume = uninterrupted, and the targets / errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { stepSeed } from '../../src/engine/checkpoint.js';
import { eulerStepFn } from '../../src/sampling/euler.js';
import { fluxSchedule } from '../../src/sampling/schedule.js';
import { binarize, masksFromLogits, initMaskLogits } from '../../src/erase/mce/masks.js';
import {
  PromptCache, batchVelocity, buildItems, disposeItems, flowEdit, objectiveGrad, sampleFinal, type SampleSpec,
} from '../../src/erase/mce/objective.js';
import { defaultMceSettings, mceSteps, trainMce, trainingSamples, type MceSettings } from '../../src/erase/mce/train.js';
import type { PromptSets } from '../../src/erase/mce/prompts.js';
import { TINY, tinyModel } from './tiny.js';

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}
async function maxAbs(a: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(a)));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}

const SETS: PromptSets = {
  targets: [],
  erase: [{ target: 'knife', prompt: 'a knife', neutral: 'a spoon' }, { target: 'knife', prompt: 'a knife icon', neutral: 'a spoon icon' }],
  preserve: ['a cat', 'a dog'],
  neighbours: [],
};

for (const cfg of [1, 3]) {
  test(`objective gradients (hard-concrete noise, checkpointed) equal full backprop through every step (cfg ${cfg})`, async () => {
    await useBackend();
    const before = tf.memory().numTensors;
    const m = tinyModel(7);
    const cache = new PromptCache(m);
    const sampler = { timesteps: fluxSchedule(3, { imageSeqLen: 4 }), cfg };
    const samples: SampleSpec[] = [
      { kind: 'erase', prompt: 'a knife', targetPrompt: 'a spoon', noise: 0 },
      { kind: 'preserve', prompt: 'a cat', targetPrompt: 'a cat', noise: 1 },
    ];
    const items = buildItems(m, cache, samples, { sampler, objective: 'final' }, 3);
    const logits = initMaskLogits(TINY);
    const names = Object.keys(logits);
    // Logits spread around 0 so that masks are inside (0, 1) and the noise matters.
    names.forEach((n, i) => tf.tidy(() => logits[n]!.assign(tf.tensor1d(randnArray(logits[n]!.size, 50 + i)).mul(1.5) as tf.Tensor1D)));
    const ps = names.map((n) => logits[n]!);
    const seed = 1234;
    const beta = 0.3;
    const r = objectiveGrad(m, cache, names, ps, items, { sampler, objective: 'final', beta }, seed);
    // Full backprop of the same loss through the unrolled sampler, step k drawing its masks from stepSeed(seed, k).
    const bv = batchVelocity(m, cache, ['a knife', 'a cat'], sampler);
    const step = eulerStepFn((x, t, params, s) => bv.velocity(x, t, masksFromLogits(names, params, { mode: 'hard-concrete', seed: s })), sampler.timesteps);
    const x0 = tf.concat(items.map((i) => i.noise), 0);
    const tgt = tf.concat(items.map((i) => i.target!), 0);
    const lossFn = (...params: Tensor[]): tf.Scalar => {
      let x = x0;
      for (let k = 0; k < 3; k++) x = step(x, params, k, stepSeed(seed, k));
      const mse = tf.mean(tf.square(tf.sub(x, tgt)).reshape([2, -1]), 1);
      return tf.sum(tf.mul(mse, tf.tensor1d([1, beta]))) as tf.Scalar;
    };
    const full = tf.grads(lossFn)(ps);
    const lossT = tf.tidy(() => lossFn(...ps));
    const lossFull = lossT.dataSync()[0]!;
    lossT.dispose();
    assert.ok(Math.abs(r.loss - lossFull) <= 1e-6 + 1e-5 * lossFull, `loss ${r.loss} vs ${lossFull}`);
    assert.ok(r.terms.erase > 0 && r.terms.preserve > 0);
    for (let i = 0; i < names.length; i++) {
      const s = await maxAbs(full[i]!);
      assert.ok(s > 0, `${names[i]} gets a gradient`);
      assert.ok((await maxDiff(r.grads[i]!, full[i]!)) <= 1e-5 * Math.max(1e-2, s) + 1e-9, names[i]);
    }
    // A different seed draws different masks: different gradients (the noise is real).
    const r2 = objectiveGrad(m, cache, names, ps, items, { sampler, objective: 'final', beta }, seed + 1);
    assert.ok((await maxDiff(r2.grads[0]!, r.grads[0]!)) > 1e-7);
    tf.dispose([...r.grads, ...r2.grads, ...full, x0, tgt, ...ps]);
    bv.dispose();
    disposeItems(items);
    cache.dispose();
    m.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  });
}

test('targets: neutral = original model on the neutral prompt with the same noise; empty = on ""', async () => {
  await useBackend();
  const m = tinyModel(2);
  const cache = new PromptCache(m);
  const sampler = { timesteps: fluxSchedule(2, { imageSeqLen: 4 }), cfg: 2 };
  for (const target of ['neutral', 'empty'] as const) {
    const { erase, preserve } = trainingSamples(SETS, { target, noises: 2 });
    assert.equal(erase.length, 4);
    assert.equal(preserve.length, 4);
    assert.deepEqual(erase.map((e) => e.targetPrompt), target === 'neutral' ? ['a spoon', 'a spoon icon', 'a spoon', 'a spoon icon'] : ['', '', '', '']);
    const items = buildItems(m, cache, erase.slice(0, 1), { sampler, objective: 'final' }, 9);
    const direct = sampleFinal(m, cache, [target === 'neutral' ? 'a spoon' : ''], items[0]!.noise, sampler);
    assert.equal(await maxDiff(direct.final, items[0]!.target!), 0);
    direct.final.dispose();
    disposeItems(items);
  }
  cache.dispose();
  m.dispose();
});

test('edit target (FlowEdit): identity when the prompts agree, an edit of the concept image otherwise; final objective only', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  const m = tinyModel(2);
  const cache = new PromptCache(m);
  const sampler = { timesteps: fluxSchedule(4, { imageSeqLen: 4 }), cfg: 2 };
  const { erase } = trainingSamples(SETS, { target: 'edit', noises: 1 });
  assert.ok(erase.every((e) => e.edit === true && e.targetPrompt.includes('spoon')));
  const items = buildItems(m, cache, erase.slice(0, 1), { sampler, objective: 'final' }, 9);
  const src = sampleFinal(m, cache, ['a knife'], items[0]!.noise, sampler);
  const same = flowEdit(m, cache, ['a knife'], ['a knife'], src.final, sampler, { seed: 1 });
  assert.ok((await maxDiff(same, src.final)) < 1e-5, 'editing toward the same prompt changes nothing (up to rounding)');
  const dSrc = await maxDiff(items[0]!.target!, src.final);
  const neutral = sampleFinal(m, cache, ['a spoon'], items[0]!.noise, sampler);
  assert.ok(dSrc > 1e-4, 'the edit moves away from the concept image');
  assert.ok((await maxDiff(items[0]!.target!, neutral.final)) > 0, 'and is not the plain neutral generation');
  assert.throws(() => buildItems(m, cache, erase.slice(0, 1), { sampler, objective: 'per-step' }, 9), /final objective only/);
  tf.dispose([src.final, same, neutral.final]);
  disposeItems(items);
  cache.dispose();
  m.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

test('per-step objective: local gradients at the original trajectory states, zero loss at init for preserve items', async () => {
  await useBackend();
  const m = tinyModel(4);
  const cache = new PromptCache(m);
  const sampler = { timesteps: fluxSchedule(3, { imageSeqLen: 4 }), cfg: 1 };
  const samples: SampleSpec[] = [
    { kind: 'erase', prompt: 'a knife', targetPrompt: 'a spoon', noise: 0 },
    { kind: 'preserve', prompt: 'a cat', targetPrompt: 'a cat', noise: 0 },
  ];
  const items = buildItems(m, cache, samples, { sampler, objective: 'per-step' }, 1);
  assert.equal(items[0]!.states!.length, 3);
  assert.equal(items[0]!.stepTargets!.length, 3);
  const logits = initMaskLogits(TINY, { groups: ['ffn', 'txt_mod'] });
  const names = Object.keys(logits);
  const ps = names.map((n) => logits[n]!);
  // Binary-equivalent continuous masks at init are 1; hard-concrete is >= 0.99: preserve loss ~ 0, erase loss > 0.
  const r = objectiveGrad(m, cache, names, ps, items, { sampler, objective: 'per-step', beta: 0.1 }, 5);
  assert.ok(r.terms.preserve < 1e-3 * r.terms.erase, `preserve ${r.terms.preserve} vs erase ${r.terms.erase}`);
  assert.ok(r.grads.every((g) => g.shape[0] === g.size));
  tf.dispose([...r.grads, ...ps]);
  disposeItems(items);
  cache.dispose();
  m.dispose();
});

/** Settings of the toy runs: 3 Euler steps without CFG, one noise, batches of one, FFN + modulation + single-block masks. */
function toySettings(over: Partial<MceSettings>): MceSettings {
  return defaultMceSettings({ timesteps: fluxSchedule(3, { imageSeqLen: 4 }), cfg: 1 }, {
    noises: 1, eraseBatch: 1, preserveBatch: 1, lr: { ffn: 0.5, txt_mod: 0.5, single_mlp: 0.5 }, seed: 3, ...over,
  });
}

test('training lowers the loss on a toy erase (fixed noise, full batch)', async () => {
  await useBackend();
  const m = tinyModel(5);
  const sets: PromptSets = { ...SETS, erase: SETS.erase.slice(0, 1), preserve: SETS.preserve.slice(0, 1) };
  const s = toySettings({ iters: 25 });
  const r = await trainMce(m, sets, s, { progress: false });
  const first = r.history[0]![2];
  const lastFew = r.history.slice(-5).map((h) => h[2]);
  const last = lastFew.reduce((a, b) => a + b, 0) / lastFew.length;
  assert.equal(r.history.length, 25);
  assert.ok(last < 0.5 * first, `erase loss ${first} -> ${last}`);
  assert.ok(Object.values(binarize(r.logits)).some((b) => b.includes(0)), 'some units are pruned');
  m.dispose();
});

test('epochs: shuffled passes over the erase samples set the run length; iters otherwise', async () => {
  // 12 erase samples in batches of 2: 6 micro-batches per pass; 3 passes at accumulate 4 -> ceil(18 / 4) = 5 steps.
  assert.equal(mceSteps({ iters: 150, epochs: 3, eraseBatch: 2, accumulate: 4 }, 12), 5);
  assert.equal(mceSteps({ iters: 150, eraseBatch: 2, accumulate: 4 }, 12), 150);
  // The last partial batch of a pass is dropped: 7 samples in batches of 2 -> 3 per pass.
  assert.equal(mceSteps({ iters: 1, epochs: 2, eraseBatch: 2, accumulate: 1 }, 7), 6);
  // A batch larger than the samples takes them all.
  assert.equal(mceSteps({ iters: 1, epochs: 2, eraseBatch: 8, accumulate: 1 }, 3), 2);
  assert.throws(() => mceSteps({ iters: 1, epochs: 0.5, eraseBatch: 1, accumulate: 1 }, 3), /epochs must be a positive integer/);
  await useBackend();
  const m = tinyModel(5);
  const s = toySettings({ iters: 99, epochs: 2 });
  const r = await trainMce(m, { ...SETS, preserve: SETS.preserve.slice(0, 1) }, s, { progress: false });
  assert.equal(r.history.length, 4, 'two passes over two erase samples, one per step');
  m.dispose();
});

test('hooks: only the hook points matching the globs are trained, within the groups that have a learning rate', async () => {
  await useBackend();
  const m = tinyModel(5);
  const sets: PromptSets = { ...SETS, erase: SETS.erase.slice(0, 1), preserve: SETS.preserve.slice(0, 1) };
  const s = toySettings({ iters: 6, hooks: ['*.txt_mlp', '*.txt_mod'] });
  const r = await trainMce(m, sets, s, { progress: false });
  const names = Object.keys(r.logits).sort();
  const want = Array.from({ length: TINY.depth }, (_, i) => [`double_blocks.${i}.txt_mlp`, `double_blocks.${i}.txt_mod`]).flat().sort();
  assert.deepEqual(names, want);
  for (const n of names) assert.ok(r.logits[n]!.some((x) => x !== 3), `${n} was trained`);
  // A glob over a frozen group trains nothing there: heads are at lr 0 by default.
  await assert.rejects(trainMce(m, sets, { ...s, hooks: ['*.heads'] }, { progress: false }), /every mask group is frozen .*hooks \*\.heads/);
  m.dispose();
});

test('weight decay toward the initial logit keeps logits nearer the original model than decay toward 0', async () => {
  await useBackend();
  const m = tinyModel(5);
  const sets: PromptSets = { ...SETS, erase: SETS.erase.slice(0, 1), preserve: SETS.preserve.slice(0, 1) };
  const run = (decayTo: 'zero' | 'init') => trainMce(m, sets, toySettings({ iters: 25, weightDecay: 0.2, decayTo }), { progress: false });
  const drift = (l: Record<string, Float32Array>): number => {
    const all = Object.values(l).flatMap((v) => Array.from(v));
    return all.reduce((a, x) => a + Math.abs(x - 3), 0) / all.length;
  };
  const [zero, init] = [await run('zero'), await run('init')];
  assert.ok(drift(init.logits) < 0.5 * drift(zero.logits), `mean |λ - 3|: init ${drift(init.logits)}, zero ${drift(zero.logits)}`);
  const lastErase = (r: typeof zero): number => r.history.at(-1)![2];
  assert.ok(lastErase(init) < 0.8 * init.history[0]![2], 'the erase loss still falls');
  m.dispose();
});

test('a resumed run ends with the same logits as an uninterrupted one', async () => {
  await useBackend();
  const dir = mkdtempSync(join(tmpdir(), 'mce-resume-'));
  try {
    const m = tinyModel(6);
    const base = defaultMceSettings({ timesteps: fluxSchedule(2, { imageSeqLen: 4 }), cfg: 2 }, { iters: 6, noises: 2, seed: 8, lr: { single_mlp: 0.5 } });
    const whole = await trainMce(m, SETS, base, { progress: false });
    // "Killed" after step 3 (its last checkpoint), then the same command again.
    const part = await trainMce(m, SETS, { ...base, iters: 3 }, { progress: false, dir, checkpointEvery: 1 });
    assert.equal(part.train.step, 3);
    const resumed = await trainMce(m, SETS, base, { progress: false, dir, checkpointEvery: 1 });
    assert.equal(resumed.train.resumedFrom, 3);
    assert.deepEqual(resumed.logits, whole.logits);
    assert.deepEqual(resumed.history, whole.history);
    m.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
