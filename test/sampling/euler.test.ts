import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { stepSeed } from '../../src/engine/checkpoint.js';
import { eulerSample, eulerSampleGrad, eulerStepFn, type ParamVelocityFn } from '../../src/sampling/euler.js';
import { fluxSchedule } from '../../src/sampling/schedule.js';
import { fluxDenoiser, type FluxTrainable } from '../../src/sampling/flux.js';
import { fluxMaskSpecs, initFluxWeights, makeImgIds, makeTxtIds, type FluxParams } from '../../src/models/flux/index.js';

const randn = (shape: number[], seed: number, scale = 1): Tensor =>
  tf.tidy(() => tf.mul(tf.tensor(randnArray(shape.reduce((a, b) => a * b, 1), seed), shape), scale));

async function maxAbs(a: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(a)));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}
async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}

test('Euler on a straight flow: exact final, trajectory and predicted x0', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  const data = randn([2, 5, 4], 1);
  const noise = randn([2, 5, 4], 2);
  const vel = tf.sub(noise, data); // x_t = (1 - t) data + t noise has velocity noise - data
  const ts = fluxSchedule(6, { imageSeqLen: 1024 });
  const run = eulerSample(() => vel.clone(), noise, ts, { trajectory: true });
  assert.equal(run.xs!.length, 7);
  assert.equal(run.x0Preds!.length, 6);
  assert.equal(run.xs![6], run.final);
  assert.ok((await maxDiff(run.final, data)) < 1e-5);
  for (let k = 0; k < 7; k++) {
    const want = tf.tidy(() => tf.add(tf.mul(data, 1 - ts[k]!), tf.mul(noise, ts[k]!)));
    assert.ok((await maxDiff(run.xs![k]!, want)) < 1e-5, `x${k}`);
    want.dispose();
    if (k < 6) assert.ok((await maxDiff(run.x0Preds![k]!, data)) < 1e-5, `x0 pred ${k}`);
  }
  const plain = eulerSample(() => vel.clone(), noise, ts);
  assert.equal(await maxDiff(plain.final, run.final), 0);
  assert.ok(!noise.isDisposed);
  tf.dispose([...run.xs!, ...run.x0Preds!, plain.final, vel, data, noise]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

const TINY: FluxParams = {
  in_channels: 8,
  out_channels: 8,
  vec_in_dim: 6,
  context_in_dim: 10,
  hidden_size: 32,
  mlp_ratio: 2,
  num_heads: 2,
  depth: 1,
  depth_single_blocks: 1,
  axes_dim: [4, 6, 6],
  theta: 10_000,
  qkv_bias: true,
  guidance_embed: true,
};

for (const backend of availableBackends()) {
  test(`checkpointed Euler gradients through FLUX equal full backprop (${backend})`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const w = initFluxWeights(TINY, 5);
    const b = 2;
    const cond = { img_ids: makeImgIds(b, 2, 2), txt: randn([b, 3, 10], 6), txt_ids: makeTxtIds(b, 3), y: randn([b, 6], 7), guidance: 3.5 };
    const den = fluxDenoiser(TINY, w, cond);
    const specs = fluxMaskSpecs(TINY);
    const trainables: FluxTrainable[] = [
      ...specs.map((s) => ({ kind: 'mask' as const, name: s.name })),
      { kind: 'weight', name: 'single_blocks.0.linear1.weight' },
    ];
    // Masks near 1 with some variation, so every hook point matters.
    const params = [
      ...specs.map((s, i) => tf.tidy(() => tf.add(0.8, tf.mul(0.2, tf.sigmoid(randn([s.size], 100 + i)))))),
      w['single_blocks.0.linear1.weight']!,
    ];
    const noise = randn([b, 4, 8], 8);
    const lw = randn([b, 4, 8], 9);
    const ts = fluxSchedule(3, { imageSeqLen: 4 });
    const v = den.paramVelocityFn(trainables);
    const run = eulerSampleGrad(v, noise, params, ts, () => lw.clone(), 7);
    // Full backprop through the unrolled sampler.
    const step = eulerStepFn(v, ts);
    const full = tf.grads((x: Tensor, ...ps: Tensor[]) => {
      let cur = x;
      for (let k = 0; k < 3; k++) cur = step(cur, ps, k, stepSeed(7, k));
      return tf.sum(tf.mul(cur, lw));
    })([noise, ...params]);
    const gx = await maxAbs(full[0]!);
    assert.ok(gx > 1e-3);
    assert.ok((await maxDiff(run.x0, full[0]!)) <= 1e-5 * Math.max(1, gx), 'grad x0');
    for (let i = 0; i < params.length; i++) {
      const s = await maxAbs(full[i + 1]!);
      assert.ok(s > 0, `${trainables[i]!.name} gets a gradient`);
      assert.ok((await maxDiff(run.params[i]!, full[i + 1]!)) <= 1e-5 * Math.max(1, s), trainables[i]!.name);
    }
    // The sampled final equals the plain sampler with the same masks.
    const masks = Object.fromEntries(specs.map((s, i) => [s.name, params[i]!]));
    const plain = eulerSample(den.velocityFn(masks), noise, ts);
    assert.ok((await maxDiff(plain.final, run.final)) < 1e-6);
    den.dispose();
    tf.dispose([run.final, run.x0, ...run.params, ...full, plain.final, noise, lw, ...params.slice(0, -1)]);
    tf.dispose([...Object.values(w), ...Object.values(cond).filter((t): t is Tensor => typeof t === 'object')]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  });
}

test('the Euler step replays its seed (randomness inside the velocity)', async () => {
  await useBackend();
  const x0 = randn([3, 4], 1);
  const p = randn([4], 2);
  // A velocity with seeded noise in a mask, as hard-concrete masks have.
  const v: ParamVelocityFn = (x, t, [m], seed) =>
    tf.tidy(() => tf.mul(tf.sin(tf.mul(x, m!)), tf.add(t, tf.tensor1d(randnArray(4, seed)))));
  const ts = [1, 0.6, 0.2, 0];
  const a = eulerSampleGrad(v, x0, [p], ts, (f) => tf.onesLike(f), 3);
  const b = eulerSampleGrad(v, x0, [p], ts, (f) => tf.onesLike(f), 3);
  const c = eulerSampleGrad(v, x0, [p], ts, (f) => tf.onesLike(f), 4);
  assert.equal(await maxDiff(a.params[0]!, b.params[0]!), 0);
  assert.ok((await maxDiff(a.params[0]!, c.params[0]!)) > 1e-4);
  tf.dispose([a.final, a.x0, ...a.params, b.final, b.x0, ...b.params, c.final, c.x0, ...c.params, x0, p]);
});
