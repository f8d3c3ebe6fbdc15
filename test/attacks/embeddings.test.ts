// Prompts as token embeddings: the forward from embeddings is the text encoder's own forward when
// the slots hold real token rows (both families' conditioning), it is differentiable in the slot
// vectors, PEZ's projection finds the nearest rows by cosine, and a hard prompt written as text
// reads back as the same rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { textEncoderForward, textEncoderFromEmbeddings } from '../../src/models/text/encoder.js';
import { disposeCond } from '../../src/erase/baselines/family.js';
import { layoutText, nearestRows, rowEmbeddings, slotCond, slotLayout } from '../../src/attacks/embeddings.js';
import { tokenSpace } from '../../src/attacks/tokens.js';
import { optimiseSlots } from '../../src/attacks/prompt-optimiser.js';
import { tinyText, tinyTextFlux, tinyTextUnet } from './tiny-text.js';

const maxDiff = (a: Tensor, b: Tensor): number => {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = d.dataSync()[0]!;
  d.dispose();
  return v;
};

test('the forward from embeddings equals textEncoderForward on the gathered rows (txt and pooled y)', async () => {
  await useBackend();
  const enc = tinyText();
  const input = enc.tokenizer.batch(['an emoji of a kitchen knife', 'a red apple', '']);
  const ref = textEncoderForward(enc.params, enc.weights, input);
  const x = tf.gather(enc.weights['token_embedding.weight']!, tf.tensor1d(input.rows, 'int32')).reshape([3, enc.params.context_length, enc.params.width]);
  const out = textEncoderFromEmbeddings(enc.params, enc.weights, x, input.eot);
  assert.equal(maxDiff(out.txt, ref.txt), 0);
  assert.equal(maxDiff(out.y, ref.y), 0);
  // The features are not trivially equal: different prompts give different y.
  const y = out.y.arraySync() as number[][];
  assert.ok(Math.abs(y[0]![0]! - y[1]![0]!) + Math.abs(y[0]![1]! - y[1]![1]!) > 1e-4);
  tf.dispose([ref.txt, ref.y, x, out.txt, out.y]);
  enc.dispose();
});

test('a layout with its slots filled by real rows conditions both families exactly as the prompt text does', async () => {
  await useBackend();
  const enc = tinyText();
  for (const model of [tinyTextFlux(enc), tinyTextUnet(enc)]) {
    const layout = slotLayout(enc, 'an emoji of', 2, 'with a hat');
    const words = enc.tokenizer.one('red apple');
    const rows = words.rows.subarray(1, words.eot);
    assert.equal(rows.length, 2);
    const vecs = rowEmbeddings(enc, rows);
    const soft = slotCond(model, layout, vecs, 2);
    const text = layoutText(enc, layout, rows);
    assert.equal(text, 'an emoji of red apple with a hat');
    const ref = model.encode([text, text]);
    assert.deepEqual(soft.txt.shape, ref.txt.shape);
    assert.ok(maxDiff(soft.txt, ref.txt) < 1e-6, `txt differs by ${maxDiff(soft.txt, ref.txt)}`);
    if (model.family === 'flow') assert.ok(maxDiff(soft.y!, ref.y!) < 1e-6);
    else assert.equal(soft.y, null);
    tf.dispose(vecs);
    disposeCond(soft);
    disposeCond(ref);
    model.dispose();
  }
  enc.dispose();
});

test('the conditioning is differentiable in the slot vectors (gradient matches a finite difference)', async () => {
  await useBackend();
  const enc = tinyText();
  const model = tinyTextFlux(enc);
  const layout = slotLayout(enc, 'a', 1, 'dog');
  const v0 = tf.tensor2d(randnArray(enc.params.width, 3), [1, enc.params.width]).mul(0.1);
  const w = tf.tensor(randnArray(enc.params.context_length * enc.params.width, 4), [1, enc.params.context_length, enc.params.width]);
  const wy = tf.tensor(randnArray(enc.params.width, 5), [1, enc.params.width]);
  // A linear read-out of txt and y: float32 finite differences stay accurate.
  const f = (v: Tensor): tf.Scalar => {
    const c = slotCond(model, layout, v);
    const s = tf.add(tf.sum(tf.mul(c.txt, w)), tf.sum(tf.mul(c.y!, wy))) as tf.Scalar;
    disposeCond(c);
    return s;
  };
  const g = tf.grad(f)(v0);
  const gv = g.dataSync();
  const h = 1e-2;
  for (const i of [0, 2, 5]) {
    const e = new Float32Array(enc.params.width);
    e[i] = h;
    const plus = f(tf.add(v0, tf.tensor2d(e, [1, enc.params.width]))).dataSync()[0]!;
    const minus = f(tf.sub(v0, tf.tensor2d(e, [1, enc.params.width]))).dataSync()[0]!;
    const fd = (plus - minus) / (2 * h);
    assert.ok(Math.abs(gv[i]!) > 1e-2, `gradient ${gv[i]}`);
    assert.ok(Math.abs(fd - gv[i]!) < 0.05 * Math.abs(gv[i]!), `coordinate ${i}: finite difference ${fd} vs gradient ${gv[i]}`);
  }
  model.dispose();
  enc.dispose();
});

test('PEZ projection: scaled and slightly perturbed rows project back to themselves; hard prompts read back as the same rows', async () => {
  await useBackend();
  const enc = tinyText();
  const space = tokenSpace(enc);
  assert.ok(space.rows.length >= 20, `${space.rows.length} searchable rows`);
  const pick = Int32Array.from([space.rows[0]!, space.rows[5]!, space.rows[11]!]);
  const vecs = tf.tidy(() => tf.add(tf.mul(rowEmbeddings(enc, pick), 3), tf.mul(tf.tensor2d(randnArray(3 * 8, 9), [3, 8]), 1e-3)));
  assert.deepEqual([...nearestRows(enc, vecs, space.rows)], [...pick]);
  // Written as text and tokenized again, the slots are the same rows.
  const layout = slotLayout(enc, '', 3, '');
  const text = layoutText(enc, layout, pick);
  const back = enc.tokenizer.one(text);
  assert.deepEqual([...back.rows.subarray(1, back.eot)], [...pick]);
  vecs.dispose();
  enc.dispose();
});

test('slotLayout cuts the words after the slots to fit, and refuses slots that cannot fit', async () => {
  await useBackend();
  const enc = tinyText();
  const l = slotLayout(enc, 'a', 4, 'green tree in the sun');
  assert.equal(l.eot, enc.params.context_length - 1);
  assert.deepEqual(l.slots, [2, 3, 4, 5]);
  assert.equal(l.after, 'green tree in');
  assert.throws(() => slotLayout(enc, 'a red', 8, ''), /does not fit/);
  enc.dispose();
});

test('PEZ search finds a hidden prompt from the text features alone (from some starts), and always gets much closer', async () => {
  await useBackend();
  const enc = tinyText();
  const model = tinyTextFlux(enc);
  const space = tokenSpace(enc);
  const layout = slotLayout(enc, 'a', 2, '');
  const hidden = enc.tokenizer.one('a blue car');
  const goal = model.encode(['a blue car']);
  // Measured: seed 1 'a blue car' 0.284 -> 0; seed 2 'a blue balloon' 0.235 -> 0.062; seed 3 'a blue green' 0.782 -> 0.017.
  const found: string[] = [];
  for (const seed of [1, 2, 3]) {
    const r = optimiseSlots({
      model, layout, allowed: space.rows, mode: 'hard', iters: 40, lr: 0.1, weightDecay: 0, seed, batch: 1,
      loss: (c) => tf.add(tf.mean(tf.square(tf.sub(c.txt, goal.txt))), tf.mean(tf.square(tf.sub(c.y!, goal.y!)))) as tf.Scalar,
    });
    assert.ok(r.loss < r.losses[0]! / 3, `seed ${seed}: loss ${r.losses[0]} -> ${r.loss}`);
    if (r.rows.every((row, i) => row === hidden.rows[2 + i])) found.push(`seed ${seed}`);
  }
  assert.ok(found.length >= 1, 'no start found the hidden words');
  disposeCond(goal);
  model.dispose();
  enc.dispose();
});
