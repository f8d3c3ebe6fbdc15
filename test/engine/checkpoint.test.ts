import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { checkpointedGrad, stepSeed, type Step } from '../../src/engine/checkpoint.js';
import { measurePeak } from '../../src/engine/memory.js';
import { randnArray, uniformArray } from '../../src/engine/rng.js';

// A small velocity MLP with a sinusoidal time input, Euler-stepped, and a random dropout-style
// mask drawn from the step seed (so the recompute must replay it to match full backprop).
const D = 16;
const HIDDEN = 64;
const BATCH = 8;

function makeParams(): Tensor[] {
  return [
    tf.tensor2d(randnArray((D + 2) * HIDDEN, 1), [D + 2, HIDDEN]).mul(0.3),
    tf.tensor1d(randnArray(HIDDEN, 2)).mul(0.1),
    tf.tensor2d(randnArray(HIDDEN * D, 3), [HIDDEN, D]).mul(0.3),
  ];
}

function eulerStep(n: number): Step {
  return (x, [w1, w2, w3], k, seed) => {
    const t = 1 - k / n;
    const time = tf.tile(tf.tensor2d([[Math.sin(t), Math.cos(t)]]), [x.shape[0]!, 1]);
    const keep = tf.tensor2d(uniformArray(BATCH * HIDDEN, seed), [BATCH, HIDDEN]).greater(0.2).cast('float32');
    const h = tf.mul(tf.relu(tf.add(tf.matMul(tf.concat([x, time], 1), w1!), w2!)), keep);
    return tf.add(x, tf.mul(-1 / n, tf.matMul(h, w3!)));
  };
}

function fullBackprop(step: Step, x0: Tensor, params: Tensor[], n: number, target: Tensor, seed: number): Tensor[] {
  return tf.grads((x: Tensor, ...ps: Tensor[]) => {
    let cur = x;
    for (let k = 0; k < n; k++) cur = step(cur, ps, k, stepSeed(seed, k));
    return tf.sum(tf.square(tf.sub(cur, target)));
  })([x0, ...params]);
}

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  return (await tf.max(tf.abs(tf.sub(a, b))).data())[0]!;
}

for (const backend of availableBackends()) {
  test(`checkpointed gradients equal full backprop (${backend})`, async () => {
    await useBackend(backend);
    const n = 6;
    const params = makeParams();
    const x0 = tf.tensor2d(randnArray(BATCH * D, 7), [BATCH, D]);
    const target = tf.tensor2d(randnArray(BATCH * D, 8), [BATCH, D]);
    const step = eulerStep(n);
    const run = checkpointedGrad(step, x0, params, n, (xN) => tf.mul(2, tf.sub(xN, target)), 42);
    const full = fullBackprop(step, x0, params, n, target, 42);
    const scale = (await tf.max(tf.abs(full[0]!)).data())[0]!;
    assert.ok(scale > 1e-3, 'the gradient is not trivially zero');
    assert.ok((await maxDiff(run.x0, full[0]!)) <= 1e-5 * Math.max(1, scale));
    for (let i = 0; i < params.length; i++) {
      const s = (await tf.max(tf.abs(full[i + 1]!)).data())[0]!;
      assert.ok((await maxDiff(run.params[i]!, full[i + 1]!)) <= 1e-5 * Math.max(1, s), `param ${i}`);
    }
    // A different seed changes the masks, so the gradients must change: the seed is really used.
    const other = checkpointedGrad(step, x0, params, n, (xN) => tf.mul(2, tf.sub(xN, target)), 43);
    assert.ok((await maxDiff(other.params[0]!, run.params[0]!)) > 1e-4);
    tf.dispose([run.final, run.x0, ...run.params, other.final, other.x0, ...other.params, ...full, ...params, x0, target]);
  });
}

test('checkpointed backprop memory is flat in the number of steps', async () => {
  await useBackend();
  // Wide hidden layer so one step's activations dominate the stored latents, as in a real model.
  const params = [
    tf.tensor2d(randnArray((D + 2) * 1024, 1), [D + 2, 1024]).mul(0.05),
    tf.tensor1d(randnArray(1024, 2)).mul(0.1),
    tf.tensor2d(randnArray(1024 * D, 3), [1024, D]).mul(0.05),
  ];
  const peak = async (n: number): Promise<number> => {
    const x0 = tf.tensor2d(randnArray(BATCH * D, 7), [BATCH, D]);
    const wide: Step = (x, [w1, w2, w3], k, seed) => {
      void seed;
      const t = 1 - k / n;
      const time = tf.tile(tf.tensor2d([[Math.sin(t), Math.cos(t)]]), [x.shape[0]!, 1]);
      const h = tf.relu(tf.add(tf.matMul(tf.concat([x, time], 1), w1!), w2!));
      return tf.add(x, tf.mul(-1 / n, tf.matMul(h, w3!)));
    };
    const { result, peakBytes, baseBytes } = await measurePeak(() =>
      checkpointedGrad(wide, x0, params, n, (xN) => tf.mul(2, xN), 0),
    );
    tf.dispose([result.final, result.x0, ...result.params, x0]);
    return peakBytes - baseBytes;
  };
  const p4 = await peak(4);
  const p32 = await peak(32);
  assert.ok(p4 > 0);
  assert.ok(p32 <= 1.1 * p4, `peak for N=32 (${p32} B) is within 10% of N=4 (${p4} B)`);
  tf.dispose(params);
});
