import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import {
  buildTextVocab, initTextEncoderWeights, PromptTokenizer, TextEncoder, textEncoderForward,
} from '../../src/models/text/encoder.js';
import { ClipTokenizer } from '../../src/models/text/tokenizer.js';

const P = { context_length: 12, width: 32, heads: 4, layers: 2 };

test('text encoder: shapes, EOT pooling, determinism, unknown words, empty prompt', async () => {
  await useBackend();
  const vocab = buildTextVocab(['a kitchen knife', 'an emoji of a dagger in twemoji style']);
  assert.deepEqual(vocab, [...vocab].sort((a, b) => a - b));
  const tok = new PromptTokenizer(vocab, P.context_length);
  assert.equal(tok.rows, vocab.length + 1);
  // SOT, a, kitchen, knife, EOT; padding and unknown words map to row 0.
  const one = tok.one('a kitchen knife');
  assert.equal(one.eot, 4);
  assert.ok(one.rows.slice(0, 5).every((r) => r > 0));
  assert.ok(one.rows.slice(5).every((r) => r === 0));
  assert.equal(tok.one('a zebra').rows[2], 0);
  assert.equal(tok.one('').eot, 1);
  // Over-long prompts are truncated with EOT last.
  const long = tok.one('a kitchen knife '.repeat(10));
  assert.equal(long.eot, P.context_length - 1);
  assert.equal(long.rows[P.context_length - 1], vocab.indexOf(ClipTokenizer.load().eot) + 1);

  const before = tf.memory().numTensors;
  const w = initTextEncoderWeights(P, tok.rows, 5);
  const w2 = initTextEncoderWeights(P, tok.rows, 5);
  const enc = new TextEncoder(P, w, vocab);
  const prompts = ['a kitchen knife', 'a dagger in twemoji style', ''];
  const a = enc.encode(prompts);
  assert.deepEqual(a.txt.shape, [3, P.context_length, P.width]);
  assert.deepEqual(a.y.shape, [3, P.width]);
  const b = textEncoderForward(P, w2, tok.batch(prompts));
  assert.deepEqual(a.txt.dataSync(), b.txt.dataSync());
  assert.deepEqual(a.y.dataSync(), b.y.dataSync());
  tf.tidy(() => {
  // y is the EOT token's features.
  const y0 = a.y.slice([0, 0], [1, -1]).dataSync();
  const eot0 = a.txt.slice([0, 4, 0], [1, 1, -1]).dataSync();
  assert.deepEqual(y0, eot0);
  // Causal: the features of "a kitchen" do not depend on what follows. Up to float rounding only:
  // a batch of 1 and a batch of 3 are matrix products of other shapes, which some CPUs' BLAS kernels
  // (AVX-512 OpenBLAS) sum in another order.
  const c = enc.encode(['a kitchen dagger']);
  const prefix = Array.from(c.txt.slice([0, 0, 0], [1, 3, -1]).dataSync());
  const ref = Array.from(a.txt.slice([0, 0, 0], [1, 3, -1]).dataSync());
  const worst = Math.max(...prefix.map((v, i) => Math.abs(v - ref[i]!)));
  assert.ok(worst < 1e-5, `"a kitchen" moved by ${worst} when followed by another word`);
  // Different prompts give different pooled vectors.
  assert.notDeepEqual(Array.from(a.y.slice([0, 0], [1, -1]).dataSync()), Array.from(a.y.slice([1, 0], [1, -1]).dataSync()));
  });
  tf.dispose([a.txt, a.y, b.txt, b.y]);
  enc.dispose();
  tf.dispose(Object.values(w2));
  assert.equal(tf.memory().numTensors, before);
});

test('text encoder: gradients reach the embedding table and every layer', async () => {
  await useBackend();
  const vocab = buildTextVocab(['a kitchen knife']);
  const tok = new PromptTokenizer(vocab, P.context_length);
  const w = initTextEncoderWeights(P, tok.rows, 1);
  const vars = Object.fromEntries(Object.entries(w).map(([k, t]) => [k, tf.variable(t)]));
  const { grads } = tf.variableGrads(() => {
    const e = textEncoderForward(P, vars, tok.batch(['a kitchen knife', 'knife']));
    return tf.add(tf.sum(tf.square(e.txt)), tf.sum(e.y)) as tf.Scalar;
  });
  for (const name of ['token_embedding.weight', 'transformer.resblocks.0.attn.in_proj_weight', 'transformer.resblocks.1.mlp.c_proj.weight']) {
    const g = Object.entries(grads).find(([k]) => k === vars[name]!.name)?.[1];
    assert.ok(g, `no gradient for ${name}`);
    assert.ok(tf.sum(tf.abs(g)).dataSync()[0]! > 0, `zero gradient for ${name}`);
  }
  tf.dispose(Object.values(grads));
  tf.dispose(Object.values(vars));
  tf.dispose(Object.values(w));
});
