// The editing attack: FlowEdit leaves the image as it is when source and target agree (same prompt,
// same guidance), edits deterministically by seed otherwise; SDEdit stays nearer its source than a
// fresh sample does; and the attack on the shipped flux-emoji fills its result and repeats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { edit, flowEdit, sdEdit } from '../../src/attacks/edit.js';
import { loadAttackSubject } from '../../src/attacks/subject.js';
import { promptLatents } from '../../src/attacks/white-box.js';
import { erasureTarget } from '../../src/world/targets.js';
import { tinyText, tinyTextFlux, tinyTextUnet } from './tiny-text.js';

const dist = (a: Tensor, b: Tensor): number => tf.tidy(() => tf.norm(tf.sub(a, b)).dataSync()[0]!);

test('FlowEdit: no edit when source and target agree; a seeded edit toward another prompt otherwise', async () => {
  await useBackend();
  const enc = tinyText();
  const model = tinyTextFlux(enc);
  const x = promptLatents(model, 'a red apple', 4, 2, 3, 2);
  const same = { srcGuidance: 3, tarGuidance: 3, nMax: 28, nMin: 0, nAvg: 1 };
  const id = flowEdit(model, x, 'a dog', 'a dog', { steps: 4, cfg: 2, seed: 1 }, same);
  assert.ok(dist(id, x) < 1e-5, `moved ${dist(id, x)}`);
  const a = flowEdit(model, x, 'a dog', 'a blue car', { steps: 4, cfg: 2, seed: 1 });
  const b = flowEdit(model, x, 'a dog', 'a blue car', { steps: 4, cfg: 2, seed: 1 });
  const c = flowEdit(model, x, 'a dog', 'a blue car', { steps: 4, cfg: 2, seed: 2 });
  assert.equal(dist(a, b), 0);
  assert.ok(dist(a, x) > 1e-3, 'the edit moved the latent');
  assert.ok(dist(a, c) > 1e-4, 'another seed, another edit');
  tf.dispose([x, id, a, b, c]);
  model.dispose();
  enc.dispose();
});

test('SDEdit stays nearer its source than a fresh sample of the edit prompt', async () => {
  await useBackend();
  const enc = tinyText();
  const model = tinyTextUnet(enc);
  const x = promptLatents(model, 'a red apple', 5, 2, 3, 2);
  const ed = sdEdit(model, x, 'a blue car', { steps: 5, cfg: 2, seed: 4 });
  const fresh = promptLatents(model, 'a blue car', 5, 2, 4, 2);
  const dEdit = dist(ed, x);
  const dFresh = dist(fresh, x);
  // Measured: 11.03 (edit) vs 47.78 (fresh).
  console.log(`sdedit: distance to source ${dEdit.toFixed(4)}, fresh sample ${dFresh.toFixed(4)}`);
  assert.ok(dEdit > 1e-3 && dEdit < 0.8 * dFresh, `edit ${dEdit}, fresh ${dFresh}`);
  tf.dispose([x, ed, fresh]);
  model.dispose();
  enc.dispose();
});

test('the edit attack on flux-emoji fills its result and repeats with the seed', async () => {
  await useBackend();
  const subject = await loadAttackSubject('flux-emoji', 'flux-emoji');
  const target = erasureTarget('kitchen knife');
  try {
    const r = await edit(subject, target, { seed: 3, budget: 'quick' });
    assert.equal(r.attack, 'edit');
    assert.equal(r.target, 'kitchen knife');
    assert.equal(r.model.sha256, subject.modelHash);
    assert.equal(r.generations, 4);
    assert.ok(r.asr >= 0 && r.asr <= 1 && r.baseline >= 0 && r.baseline <= 1);
    assert.equal(r.settings['method'], 'FlowEdit');
    assert.equal(r.settings['transfer'], undefined, 'not a wrapper');
    const src = r.settings['sourceDetected'] as number;
    assert.ok(src >= 0 && src <= 1);
    const again = await edit(subject, target, { seed: 3, budget: 'quick' });
    assert.equal(again.asr, r.asr);
    assert.equal(again.baseline, r.baseline);
    assert.equal(again.settings['sourceDetected'], src);
    const one = await edit(subject, target, { seed: 3, budget: 'quick', seedsPerPrompt: 1 });
    assert.equal(one.generations, 2, 'seedsPerPrompt sets the source images per prompt');
    console.log(`edit on flux-emoji: asr ${r.asr}, source ${src}, baseline ${r.baseline}, ${r.seconds.toFixed(1)} s`);
  } finally {
    subject.dispose();
  }
});
