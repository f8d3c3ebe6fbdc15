// P4D on tiny models with a real text encoder (erased = a copy of the original): the search lowers P4D's objective (the erased model
// matching the original's predictions on the original's trajectory states, over every state),
// finds a prompt of vocabulary words that reads back as the searched rows, and is deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import type { BaselineModel } from '../../src/erase/baselines/family.js';
import { rowEmbeddings, slotLayout } from '../../src/attacks/embeddings.js';
import { p4dObjective, p4dSearch, selectStates, teacherStates, type P4dSettings } from '../../src/attacks/p4d.js';
import { randomRows } from '../../src/attacks/prompt-optimiser.js';
import { tokenSpace } from '../../src/attacks/tokens.js';
import { tinyText, tinyTextFlux, tinyTextUnet } from './tiny-text.js';

const SETTINGS: P4dSettings = { tokens: 4, iters: 14, lr: 0.1, weightDecay: 0.1, prompts: 1, latents: 2, batch: 2 };
const RUN = { prompt: 'an emoji of a kitchen knife', settings: SETTINGS, steps: 3, cfg: 2, seed: 7 };

/** P4D's objective of slot rows over every teacher state (or the selection's), not the search's sampled batches. */
function objective(erased: BaselineModel, original: BaselineModel, rows: Int32Array, selection = false): number {
  const pool = teacherStates(original, RUN.prompt, RUN.steps, RUN.cfg, SETTINGS.latents, RUN.seed);
  const vecs = rowEmbeddings(erased.text!, rows);
  const v = p4dObjective(erased, slotLayout(erased.text!, '', rows.length, ''), vecs, selection ? selectStates(pool) : pool);
  tf.dispose([vecs, ...pool.flatMap((s) => [s.x, s.target])]);
  return v;
}

for (const family of ['flow', 'diffusion'] as const) {
  test(`P4D (${family}): the found hard prompt lowers the objective over all states, is vocabulary words, and repeats with the seed`, async () => {
    await useBackend();
    const enc = tinyText();
    const make = family === 'flow' ? tinyTextFlux : tinyTextUnet;
    // The same weights twice: the gap between the models is then all in the prompt, which the
    // search can close (with different random weights most of the gap is out of a prompt's reach).
    const erased = make(enc, 5);
    const original = make(enc, 5);
    const before = tf.memory().numTensors;
    const r = p4dSearch(erased, original, RUN);
    assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
    assert.equal(r.losses.length, SETTINGS.iters);
    assert.ok(Math.abs(r.loss - objective(erased, original, r.rows, true)) < 1e-9, 'the reported loss is the objective on the selection states');
    assert.equal(r.rows.length, SETTINGS.tokens);
    const space = tokenSpace(enc);
    for (const row of r.rows) assert.ok(space.rows.includes(row), `row ${row} is a searchable token`);
    const back = enc.tokenizer.one(r.text);
    assert.deepEqual([...back.rows.subarray(1, back.eot)], [...r.rows], `'${r.text}' reads back as the found rows`);
    // Lower than where the search started (the same seeded initial tokens), over every state.
    const init = randomRows(space.rows, SETTINGS.tokens, RUN.seed);
    const o0 = objective(erased, original, init);
    const o1 = objective(erased, original, r.rows);
    console.log(`p4d ${family}: objective ${o0.toFixed(5)} -> ${o1.toFixed(5)} ('${r.text}')`);
    // Measured: flow 0.00024 -> 0.00006, diffusion 0.00128 -> 0.00039.
    assert.ok(o1 < 0.6 * o0, `objective ${o0} -> ${o1}`);
    const again = p4dSearch(erased, original, RUN);
    assert.deepEqual([...again.rows], [...r.rows]);
    assert.deepEqual(again.losses, r.losses);
    erased.dispose();
    original.dispose();
    enc.dispose();
  });
}
