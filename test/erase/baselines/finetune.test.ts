// ESD and CA on tiny models of both families: the loss goes down, only the method's weights move
// (FLUX K/V rows for CA, never the Q rows), and the same seed gives the same weights; several
// targets: ESD and EAP train a prompt drawn per step (one prompt draws nothing), CA pairs them all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../../src/engine/tf.js';
import { useBackend } from '../../../src/engine/backend.js';
import { esdParts, pickPrompt, runEsd } from '../../../src/erase/baselines/esd.js';
import { runCa } from '../../../src/erase/baselines/ca.js';
import { runEap } from '../../../src/erase/baselines/eap.js';
import type { BaselineModel } from '../../../src/erase/baselines/family.js';
import { runBaseline } from '../../../src/erase/baselines/run.js';
import { Rng } from '../../../src/engine/rng.js';
import { selectConcepts } from '../../../src/world/dataset.js';
import { erasureTarget } from '../../../src/world/targets.js';
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
    const x = await runEsd(m, 'esd-x', ['knife'], s, { progress: false });
    const first = mean(x.losses.slice(0, 6));
    const last = mean(x.losses.slice(-6));
    // measured: flow 0.00348 -> 0.00213, diffusion 0.00835 -> 0.00250 (mean of the first / last 6 steps)
    assert.ok(last < 0.7 * first, `${m.family} esd-x loss ${first} -> ${last}`);
    const names = esdParts(m, 'esd-x').map((p) => p.weight);
    assert.deepEqual(changed(m, x.weights), [...names].sort());
    if (m.family === 'flow') assert.deepEqual(names, ['double_blocks.0.img_attn.proj.bias', 'double_blocks.0.img_attn.proj.weight', 'double_blocks.0.img_attn.qkv.bias', 'double_blocks.0.img_attn.qkv.weight', 'double_blocks.0.txt_attn.proj.bias', 'double_blocks.0.txt_attn.proj.weight', 'double_blocks.0.txt_attn.qkv.bias', 'double_blocks.0.txt_attn.qkv.weight']);
    else assert.ok(names.length > 0 && names.every((n) => n.includes('.attn2.')));
    const again = await runEsd(m, 'esd-x', ['knife'], s, { progress: false });
    assert.deepEqual(again.losses, x.losses);
    for (const n of names) assert.deepEqual(again.weights[n], x.weights[n]);
    const other = await runEsd(m, 'esd-x', ['knife'], { ...s, seed: 5 }, { progress: false });
    assert.notDeepEqual(other.losses, x.losses);
    const u = await runEsd(m, 'esd-u', ['knife'], { ...s, iters: 12, lr: 3e-4 }, { progress: false });
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
  const r = await runEap(m, ['knife'], pool, s, { progress: false });
  assert.equal(r.adversaries.length, 12);
  assert.ok(r.adversaries.every((a) => pool.includes(a)));
  assert.deepEqual(changed(m, r.weights), esdParts(m, 'esd-x').map((p) => p.weight).sort());
  const again = await runEap(m, ['knife'], pool, s, { progress: false });
  assert.deepEqual(again.losses, r.losses);
  assert.deepEqual(again.adversaries, r.adversaries);
  // With the preservation term the candidates' predictions move less than under plain ESD-x (same settings).
  const esd = await runEsd(m, 'esd-x', ['knife'], s, { progress: false });
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

test('several prompts: one is drawn per step from the seeded stream; one prompt draws nothing (single-concept runs unchanged)', () => {
  let draws = 0;
  const rng = { int: (n: number) => (draws++, n - 1) };
  assert.equal(pickPrompt(rng, 1), 0);
  assert.equal(draws, 0);
  assert.equal(pickPrompt(rng, 3), 2);
  assert.equal(draws, 1);
  const r = new Rng(7);
  const picks = Array.from({ length: 40 }, () => pickPrompt(r, 2));
  assert.ok(picks.includes(0) && picks.includes(1));
});

test('ESD-x, EAP and CA with two targets (runBaseline) on a tiny FLUX: both prompts trained, pool and pairs cover both', async () => {
  await useBackend();
  const m = tinyFlux();
  const before = tf.memory().numTensors;
  const targets = [erasureTarget('kitchen knife'), erasureTarget('vampire')];
  const o = { seed: 1, steps: 2, cfg: 2, iters: 10, lr: 3e-3, prompts: 2, progress: false as const };
  const esd = await runBaseline(m, 'esd-x', targets, o);
  assert.deepEqual(esd.settings['prompts'], ['kitchen knife', 'vampire']);
  const steps = esd.settings['prompt_steps'] as Record<string, number>;
  // measured (seed 1): 7 steps of kitchen knife, 3 of vampire
  assert.deepEqual(steps, { 'kitchen knife': 7, vampire: 3 });
  assert.ok(esd.kind === 'weights' && changed(m, esd.weights).length > 0);
  const eap = await runBaseline(m, 'eap', targets, { ...o, iters: 6 });
  assert.deepEqual(Object.keys(eap.settings['prompt_steps'] as object).sort(), ['kitchen knife', 'vampire']);
  // The candidate pool leaves out every target's members (vampire's man/woman vampire too).
  const all = selectConcepts(320, 0);
  const members = new Set(targets.flatMap((t) => t.members));
  assert.ok(all.some((c) => members.has(c)));
  assert.equal(eap.settings['pool'], all.filter((c) => !members.has(c)).length);
  assert.ok((eap.settings['adversaries'] as string[]).every((a) => !members.has(a)));
  const ca = await runBaseline(m, 'ca', targets, { ...o, iters: 2 });
  const pairs = ca.settings['pairs'] as { prompt: string; anchor: string }[];
  assert.equal(pairs.length, 4, '2 prompts per target');
  assert.ok(pairs.some((p) => /knife/.test(p.prompt) && /spoon/.test(p.anchor)));
  assert.ok(pairs.some((p) => /vampire/.test(p.prompt) && /person/.test(p.anchor)));
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});
