// Guidance in a limited interval: the scale is cfg inside [lo, hi] (ends included) and 1 outside;
// a DDIM guided step with a scale per t is the conditional prediction exactly where the scale is 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { guidedEps } from '../../src/sampling/ddim.js';
import { guidanceInterval, guidanceScale } from '../../src/sampling/guidance.js';

test('guidanceScale: cfg inside the interval, ends included; 1 outside; every step without one', () => {
  const iv = guidanceInterval(0.3, 1);
  assert.deepEqual([1, 0.888, 0.3, 0.2999, 0.24, 0].map((t) => guidanceScale(2.5, t, iv)), [2.5, 2.5, 2.5, 1, 1, 1]);
  assert.equal(guidanceScale(2.5, 0.1, null), 2.5);
  assert.equal(guidanceScale(2.5, 0.1), 2.5);
  assert.deepEqual(guidanceInterval(0, 0), [0, 0]);
  for (const [lo, hi] of [[0.5, 0.2], [-0.1, 1], [0, 1.5], [NaN, 1]] as const) assert.throws(() => guidanceInterval(lo, hi), /0 <= LO <= HI <= 1/);
});

test('guidedEps with a scale per timestep: u + s (c - u) where s != 1, the conditional half exactly where s = 1', async () => {
  await useBackend();
  // A stand-in pair prediction: the doubled batch's first half is "unconditional" (x), the second
  // "conditional" (3x + 1).
  const pair = (xx: tf.Tensor, _t: number): tf.Tensor => {
    const [u, c] = tf.split(xx, 2, 0) as [tf.Tensor, tf.Tensor];
    return tf.concat([u, tf.add(tf.mul(c, 3), 1)], 0);
  };
  const x = tf.tensor2d([[0.5, -2], [1, 4]]);
  const eps = guidedEps(pair, (t) => guidanceScale(4, t / 1000, guidanceInterval(0.5, 1)));
  const early = eps(x, 900).arraySync() as number[][]; // t/1000 = 0.9: guided, u + 4 (c - u) = x + 4 (2x + 1)
  const late = eps(x, 200).arraySync() as number[][]; // 0.2: the conditional alone, 3x + 1
  assert.deepEqual(early, [[0.5 + 4 * 2, -2 + 4 * -3], [1 + 4 * 3, 4 + 4 * 9]]);
  assert.deepEqual(late, [[2.5, -5], [4, 13]]);
  tf.dispose(x);
});
