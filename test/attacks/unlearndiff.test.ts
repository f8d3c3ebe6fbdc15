// UnlearnDiffAtk on tiny models with a real text encoder: the adversarial prefix found with the
// erased model's denoising loss on the target images lowers that loss (on fixed draws of step and
// noise, not the search's own), the prompt keeps its words after the prefix and reads back as the
// searched rows, and the search repeats with the seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { mixSeed } from '../../src/engine/rng.js';
import { disposeCond, type BaselineModel } from '../../src/erase/baselines/family.js';
import { rowEmbeddings, slotCond, slotLayout } from '../../src/attacks/embeddings.js';
import { randomRows } from '../../src/attacks/prompt-optimiser.js';
import { tokenSpace } from '../../src/attacks/tokens.js';
import { unlearnDiffSearch, type UnlearnDiffSettings } from '../../src/attacks/unlearndiff.js';
import { denoisingLoss, promptLatents } from '../../src/attacks/white-box.js';
import { tinyText, tinyTextFlux, tinyTextUnet } from './tiny-text.js';

const SETTINGS: UnlearnDiffSettings = { tokens: 3, iters: 14, lr: 0.01, weightDecay: 0.1, prompts: 1, images: 2, batch: 2 };
const RUN = { prompt: 'a red apple', settings: SETTINGS, steps: 3, cfg: 2, seed: 3 };

/** The denoising loss of prefix rows + prompt on the search's target images, 12 fixed draws. */
function heldOutLoss(erased: BaselineModel, original: BaselineModel, rows: Int32Array): number {
  const enc = erased.text!;
  const layout = slotLayout(enc, '', rows.length, RUN.prompt);
  const images = promptLatents(original, RUN.prompt, RUN.steps, RUN.cfg, mixSeed(RUN.seed, 0x696d67), SETTINGS.images);
  const vecs = rowEmbeddings(enc, rows);
  const cond = slotCond(erased, layout, vecs, SETTINGS.images);
  const l = denoisingLoss(erased, images, cond, RUN.steps, 99, 12);
  disposeCond(cond);
  tf.dispose([vecs, images]);
  return l;
}

for (const family of ['flow', 'diffusion'] as const) {
  test(`UnlearnDiffAtk (${family}): the prefix lowers the erased model's denoising loss on the target images, deterministically`, async () => {
    await useBackend();
    const enc = tinyText();
    const make = family === 'flow' ? tinyTextFlux : tinyTextUnet;
    // The same weights twice (the target images are then the erased model's own): the prompt can
    // close more of the gap, so the drop is measurable on a random tiny model.
    const erased = make(enc, 8);
    const original = make(enc, 8);
    const before = tf.memory().numTensors;
    const r = unlearnDiffSearch(erased, original, RUN);
    assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
    assert.equal(r.losses.length, SETTINGS.iters);
    const space = tokenSpace(enc);
    for (const row of r.rows) assert.ok(space.rows.includes(row));
    assert.ok(r.text.endsWith(' a red apple'), r.text);
    const back = enc.tokenizer.one(r.text);
    assert.deepEqual([...back.rows.subarray(1, 1 + SETTINGS.tokens)], [...r.rows]);
    const l0 = heldOutLoss(erased, original, randomRows(space.rows, SETTINGS.tokens, RUN.seed));
    const l1 = heldOutLoss(erased, original, r.rows);
    const others = [1, 2, 3, 4, 5].map((k) => heldOutLoss(erased, original, randomRows(space.rows, SETTINGS.tokens, 100 + k)));
    console.log(`unlearndiff ${family}: loss ${l0.toFixed(5)} -> ${l1.toFixed(5)} ('${r.text}'); random prefixes ${others.map((x) => x.toFixed(5)).join(' ')}`);
    // Measured: flow 1.90474 -> 1.89755 (random prefixes 1.9002-1.9041), diffusion 1.00836 -> 1.00597
    // (1.0059-1.0157). On a random tiny model most of the loss is noise no prompt can explain, so
    // the drop is small; it must beat the start and the median random prefix.
    const median = [...others].sort((a, b) => a - b)[2]!;
    assert.ok(l1 < l0 && l1 < median, `loss ${l0} -> ${l1}, median random prefix ${median}`);
    const again = unlearnDiffSearch(erased, original, RUN);
    assert.deepEqual([...again.rows], [...r.rows]);
    assert.deepEqual(again.losses, r.losses);
    erased.dispose();
    original.dispose();
    enc.dispose();
  });
}
