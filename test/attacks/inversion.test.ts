// Concept inversion on tiny models with a real text encoder: the learned token lowers the erased
// model's denoising loss on the concept images (fixed held-out draws), repeats with the seed, and
// generation from a learned conditioning is the generator's own sampling (a slot holding a word's
// row samples the same latents as the prompt text, and white-box sampling gives the generators'
// pixels).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { disposeCond, type BaselineModel } from '../../src/erase/baselines/family.js';
import { rowEmbeddings, slotCond, slotLayout, type SlotLayout } from '../../src/attacks/embeddings.js';
import { invertConcept, INVERSION_BUDGETS, INVERSION_TEMPLATE, initializerWord, type InversionSettings } from '../../src/attacks/inversion.js';
import { optimiseSlots } from '../../src/attacks/prompt-optimiser.js';
import { tokenSpace } from '../../src/attacks/tokens.js';
import { denoisingLoss, latentDecoder, promptLatents, sampleLatents } from '../../src/attacks/white-box.js';
import { loadAttackSubject } from '../../src/attacks/subject.js';
import { erasureTarget } from '../../src/world/targets.js';
import { tinyText, tinyTextFlux, tinyTextUnet } from './tiny-text.js';

const SETTINGS: InversionSettings = { ...INVERSION_BUDGETS.quick, iters: 24, batch: 2 };

function heldOutLoss(model: BaselineModel, layout: SlotLayout, images: tf.Tensor, vec: tf.Tensor): number {
  const cond = slotCond(model, layout, vec, images.shape[0]!);
  const l = denoisingLoss(model, images, cond, 3, 99, 16);
  disposeCond(cond);
  return l;
}

for (const family of ['flow', 'diffusion'] as const) {
  test(`concept inversion (${family}): the learned token lowers the denoising loss on the concept images, deterministically`, async () => {
    await useBackend();
    const enc = tinyText();
    const model = (family === 'flow' ? tinyTextFlux : tinyTextUnet)(enc, 4);
    const images = promptLatents(model, 'a red apple', 3, 2, 21, 2);
    const layout = slotLayout(enc, INVERSION_TEMPLATE, 1, '');
    const word = enc.tokenizer.one('hat');
    const init = word.rows[word.eot - 1]!;
    const before = tf.memory().numTensors;
    const r = invertConcept(model, { images, layout, init, settings: SETTINGS, steps: 3, seed: 5 });
    assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
    assert.equal(r.vectors.length, enc.params.width);
    const v0 = rowEmbeddings(enc, [init]);
    const v1 = tf.tensor2d(r.vectors, [1, enc.params.width]);
    const l0 = heldOutLoss(model, layout, images, v0);
    const l1 = heldOutLoss(model, layout, images, v1);
    console.log(`inversion ${family}: held-out loss ${l0.toFixed(5)} -> ${l1.toFixed(5)}`);
    // On a random tiny model most of the loss is noise no token explains: the drop is small but
    // must be there on draws the training never saw (the next test shows the optimiser's reach).
    // Measured: flow 2.43187 -> 2.42864, diffusion 1.06621 -> 1.06376.
    assert.ok(l1 < l0, `loss ${l0} -> ${l1}`);
    const again = invertConcept(model, { images, layout, init, settings: SETTINGS, steps: 3, seed: 5 });
    assert.deepEqual(again.vectors, r.vectors);
    tf.dispose([v0, v1, images]);
    model.dispose();
    enc.dispose();
  });
}

test('sampling from a slot that holds a word\'s row gives the latents of the prompt text', async () => {
  await useBackend();
  const enc = tinyText();
  for (const model of [tinyTextFlux(enc), tinyTextUnet(enc)]) {
    const layout = slotLayout(enc, INVERSION_TEMPLATE, 1, '');
    const word = enc.tokenizer.one('dog');
    const vec = rowEmbeddings(enc, [word.rows[1]!]);
    const cond = slotCond(model, layout, vec, 2);
    const uncond = model.encode(['', '']);
    const a = sampleLatents(model, model.sampler(3), cond, uncond, 2, 8, 2);
    const b = promptLatents(model, `${INVERSION_TEMPLATE} dog`, 3, 2, 8, 2);
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
    assert.ok(d < 1e-5, `${model.family}: latents differ by ${d}`);
    tf.dispose([vec, a, b]);
    disposeCond(cond);
    disposeCond(uncond);
    model.dispose();
  }
  enc.dispose();
});

test('the new token starts at the target\'s head word (CCE initializes from the concept word)', () => {
  assert.equal(initializerWord(erasureTarget('kitchen knife')), 'knife');
  assert.equal(initializerWord(erasureTarget('vampire')), 'vampire');
  assert.match(initializerWord(erasureTarget('twemoji style')), /^[a-z]+$/);
});

test('textual inversion (soft slot) reaches a hidden word\'s text features from another word', async () => {
  await useBackend();
  const enc = tinyText();
  const model = tinyTextFlux(enc);
  const layout = slotLayout(enc, INVERSION_TEMPLATE, 1, '');
  const goal = model.encode([`${INVERSION_TEMPLATE} dog`]);
  const hat = enc.tokenizer.one('hat');
  const r = optimiseSlots({
    model, layout, allowed: tokenSpace(enc).rows, mode: 'soft', init: Int32Array.of(hat.rows[1]!),
    iters: 60, lr: 0.02, weightDecay: 0, seed: 1, batch: 1,
    loss: (c) => tf.add(tf.mean(tf.square(tf.sub(c.txt, goal.txt))), tf.mean(tf.square(tf.sub(c.y!, goal.y!)))) as tf.Scalar,
  });
  // Measured: 0.06272 -> 0.00060.
  console.log(`soft slot: feature loss ${r.losses[0]!.toFixed(5)} -> ${r.loss.toFixed(5)}`);
  assert.ok(r.loss < r.losses[0]! / 10, `loss ${r.losses[0]} -> ${r.loss}`);
  assert.deepEqual([...r.rows], [enc.tokenizer.one('dog').rows[1]!], 'the learned vector is nearest to the hidden word');
  disposeCond(goal);
  model.dispose();
  enc.dispose();
});

test('white-box sampling and decoding (how inversion generates) gives the shipped generators\' pixels', async () => {
  await useBackend();
  for (const name of ['flux-emoji', 'sd-emoji']) {
    const s = await loadAttackSubject(name, name);
    try {
      const { steps, cfg } = s.erased.defaults;
      const dec = await latentDecoder(s.erasedWhiteBox, s.modelDir);
      const lat = promptLatents(s.erasedWhiteBox, 'an emoji of a cat', steps, cfg, 42, 2);
      const a = dec.decode(lat);
      const b = s.erased.generate({ prompt: 'an emoji of a cat', seed: 42, n: 2 }).images;
      lat.dispose();
      dec.dispose();
      for (let i = 0; i < 2; i++) assert.deepEqual(a[i]!.data, b[i]!.data, `${name} image ${i}`);
    } finally {
      s.dispose();
    }
  }
});
