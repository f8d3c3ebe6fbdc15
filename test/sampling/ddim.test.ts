import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { stepSeed } from '../../src/engine/checkpoint.js';
import {
  ddimPlan,
  ddimTimesteps,
  qSample,
  randomTimesteps,
  scaledLinearSchedule,
  sdDiffusionSchedule,
  torchLinspaceF32,
} from '../../src/sampling/diffusion-schedule.js';
import { ddimSample, ddimSampleGrad, ddimStepFn, guidedEps, guidedParamEps, type ParamEpsFn } from '../../src/sampling/ddim.js';
import { initUnetWeights, unetDenoiser, unetMaskSpecs, type UnetParams, type UnetTrainable } from '../../src/models/unet/index.js';

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

test('SD schedule equals diffusers DDIMScheduler (values from torch 1.13)', () => {
  const s = sdDiffusionSchedule();
  assert.equal(s.numTrainTimesteps, 1000);
  // betas = linspace(sqrt(0.00085), sqrt(0.012), 1000, float32) ** 2; alphas_cumprod = cumprod(1 - betas).
  assert.equal(s.betas[0], 0.0008499999530613422);
  assert.equal(s.betas[999], 0.011999999172985554);
  assert.equal(s.alphasCumprod[0], 0.9991499781608582);
  assert.equal(s.alphasCumprod[1], 0.9982960224151611);
  assert.equal(s.alphasCumprod[250], 0.67379230260849);
  assert.equal(s.alphasCumprod[251], 0.6721511483192444);
  assert.equal(s.alphasCumprod[500], 0.2763324975967407);
  assert.equal(s.alphasCumprod[501], 0.27499887347221375);
  assert.equal(s.alphasCumprod[750], 0.05616981163620949);
  assert.equal(s.alphasCumprod[751], 0.05571899190545082);
  assert.equal(s.alphasCumprod[999], 0.0046600960195064545);
  for (let i = 1; i < 1000; i++) assert.ok(s.alphasCumprod[i]! < s.alphasCumprod[i - 1]!);
  // torch.linspace(0.1, 0.9, 50, dtype=float32)[23:27] (the half-way switch and 8-lane blocks).
  assert.deepEqual(Array.from(torchLinspaceF32(0.1, 0.9, 50).slice(23, 27)), [0.4755101799964905, 0.4918367266654968, 0.5081632733345032, 0.5244897603988647]);
  assert.throws(() => scaledLinearSchedule({ betaStart: 0.02, betaEnd: 0.01 }), /betaStart < betaEnd/);
});

test('DDIM timesteps: "leading" with steps_offset 1 (SD), and "trailing"', () => {
  assert.deepEqual(ddimTimesteps(4), [751, 501, 251, 1]);
  assert.deepEqual(ddimTimesteps(10), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  const fifty = ddimTimesteps(50);
  assert.equal(fifty.length, 50);
  assert.deepEqual(fifty.slice(0, 3), [981, 961, 941]);
  assert.deepEqual(fifty.slice(-3), [41, 21, 1]);
  fifty.forEach((t, i) => assert.equal(t, 981 - 20 * i));
  assert.deepEqual(ddimTimesteps(4, { spacing: 'trailing' }), [999, 749, 499, 249]);
  assert.deepEqual(ddimTimesteps(3, { spacing: 'trailing' }), [999, 666, 332]);
  assert.deepEqual(ddimTimesteps(7, { spacing: 'trailing' }), [999, 856, 713, 570, 428, 285, 142]);
  assert.throws(() => ddimTimesteps(0), /steps must be/);
  const s = sdDiffusionSchedule();
  const plan = ddimPlan(4);
  assert.deepEqual(plan.alphas, [751, 501, 251, 1].map((t) => s.alphasCumprod[t]!));
  // prev = t - 250; below 0 -> alphas_cumprod[0] (set_alpha_to_one False).
  assert.deepEqual(plan.alphasPrev, [s.alphasCumprod[501]!, s.alphasCumprod[251]!, s.alphasCumprod[1]!, s.alphasCumprod[0]!]);
  assert.equal(ddimPlan(4, { setAlphaToOne: true }).alphasPrev[3], 1);
  assert.deepEqual(randomTimesteps(5, 1), randomTimesteps(5, 1));
  assert.ok(randomTimesteps(100, 2).every((t) => Number.isInteger(t) && t >= 0 && t < 1000));
});

test('q(x_t | x_0) and DDIM with the true noise recover x0 exactly', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  const s = sdDiffusionSchedule();
  const x0 = randn([2, 3, 4, 4], 1);
  const noise = randn([2, 3, 4, 4], 2);
  // Per-sample timesteps.
  const xt = qSample(x0, noise, [10, 900]);
  const rows = tf.split(xt, 2, 0);
  for (const [i, t] of [10, 900].entries()) {
    const want = tf.tidy(() => tf.add(tf.mul(tf.slice(x0, [i], [1]), Math.sqrt(s.alphasCumprod[t]!)), tf.mul(tf.slice(noise, [i], [1]), Math.sqrt(1 - s.alphasCumprod[t]!))));
    assert.ok((await maxDiff(rows[i]!, want)) < 1e-6);
    want.dispose();
  }
  assert.throws(() => qSample(x0, noise, 1000), /outside/);
  tf.dispose([xt, ...rows]);

  for (const setAlphaToOne of [false, true]) {
    const plan = ddimPlan(10, { setAlphaToOne });
    const xT = qSample(x0, noise, plan.timesteps[0]!);
    const run = ddimSample(() => noise.clone(), xT, plan, { trajectory: true });
    assert.equal(run.xs!.length, 11);
    assert.equal(run.x0Preds!.length, 10);
    assert.equal(run.xs![10], run.final);
    for (let k = 0; k < 10; k++) {
      assert.ok((await maxDiff(run.x0Preds![k]!, x0)) < 2e-5, `x0 prediction ${k}`);
      if (k > 0) {
        const want = qSample(x0, noise, plan.timesteps[k]!);
        assert.ok((await maxDiff(run.xs![k]!, want)) < 2e-5, `x_${k} is on the forward process`);
        want.dispose();
      }
    }
    if (setAlphaToOne) {
      assert.ok((await maxDiff(run.final, x0)) < 2e-5, 'ends on x0');
    } else {
      // SD's final alpha is alphas_cumprod[0]: the output keeps sqrt(1 - 0.99915) of the noise.
      const want = qSample(x0, noise, 0);
      assert.ok((await maxDiff(run.final, want)) < 2e-5);
      assert.ok((await maxDiff(run.final, x0)) > 1e-2);
      want.dispose();
    }
    const plain = ddimSample(() => noise.clone(), xT, plan);
    assert.equal(await maxDiff(plain.final, run.final), 0);
    assert.ok(!xT.isDisposed);
    tf.dispose([xT, plain.final, ...run.xs!, ...run.x0Preds!]);
  }
  tf.dispose([x0, noise]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

const TINY: UnetParams = {
  sample_size: 4,
  in_channels: 2,
  out_channels: 2,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 6,
  num_attention_heads: [2, 2],
  transformer_layers_per_block: 1,
  norm_num_groups: 4,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
};

test('classifier-free guidance: one batched forward; cfg 1 is the conditional, cfg 0 the unconditional', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  // The combination itself, on a toy pair model: [u; c] -> u + s (c - u).
  const u = randn([2, 3], 1);
  const c = randn([2, 3], 2);
  let calls = 0;
  const pair = (x2: Tensor): Tensor => {
    calls++;
    assert.equal(x2.shape[0], 4);
    return tf.concat([u, c], 0);
  };
  const z = tf.zeros([2, 3]);
  const g = guidedEps(pair, 7.5)(z, 10);
  const want = tf.tidy(() => tf.add(u, tf.mul(tf.sub(c, u), 7.5)));
  assert.ok((await maxDiff(g, want)) < 1e-6);
  assert.equal(calls, 1, 'one forward per step');
  tf.dispose([g, want, u, c, z]);

  // On a UNet: the pair forward with [uncond; cond] contexts.
  const w = initUnetWeights(TINY, 1);
  const context = randn([2, 3, 6], 3);
  const uncond = randn([1, 3, 6], 4);
  const den = unetDenoiser(TINY, w, { context, uncond });
  const x = randn([2, 2, 4, 4], 5);
  const cond = den.eps(x, 501);
  const g1 = guidedEps(den.pairEpsFn(), 1)(x, 501);
  assert.ok((await maxDiff(g1, cond)) < 1e-5, 'cfg 1 = conditional');
  const g0 = guidedEps(den.pairEpsFn(), 0)(x, 501);
  const tiled = tf.tile(uncond, [2, 1, 1]);
  const un = unetDenoiser(TINY, w, { context: tiled });
  const uncondEps = un.eps(x, 501);
  assert.ok((await maxDiff(g0, uncondEps)) < 1e-5, 'cfg 0 = unconditional');
  assert.ok((await maxDiff(cond, uncondEps)) > 1e-4, 'the contexts matter');
  den.dispose();
  un.dispose();
  tf.dispose([cond, g1, g0, uncondEps, context, uncond, tiled, x, ...Object.values(w)]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

for (const backend of availableBackends()) {
  test(`checkpointed DDIM gradients through a UNet with CFG equal full backprop (${backend})`, async () => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const w = initUnetWeights(TINY, 5);
    const b = 2;
    const context = randn([b, 3, 6], 6);
    const uncond = randn([1, 3, 6], 7);
    const den = unetDenoiser(TINY, w, { context, uncond });
    const specs = unetMaskSpecs(TINY).filter((s) => s.kind === 'heads' || s.kind === 'ff_hidden' || s.name.endsWith('attn2.to_v'));
    const trainables: UnetTrainable[] = [
      ...specs.map((s) => ({ kind: 'mask' as const, name: s.name })),
      { kind: 'weight', name: 'down_blocks.0.resnets.0.conv1.weight' },
    ];
    // Masks near 1 with some variation, so every hook point matters.
    const params = [
      ...specs.map((s, i) => tf.tidy(() => tf.add(0.8, tf.mul(0.2, tf.sigmoid(randn([s.size], 100 + i)))))),
      w['down_blocks.0.resnets.0.conv1.weight']!,
    ];
    const noise = randn([b, 2, 4, 4], 8);
    const lw = randn([b, 2, 4, 4], 9);
    const plan = ddimPlan(3);
    // Randomness inside the model replays from the step seed (like hard-concrete mask noise).
    const base = den.paramEpsFn(trainables, {}, true);
    const noisy: ParamEpsFn = (x, t, ps, seed) => tf.tidy(() => tf.mul(base(x, t, ps, seed), 1 + (seed % 1000) / 1e4));
    const eps = guidedParamEps(noisy, 4);
    const run = ddimSampleGrad(eps, noise, params, plan, () => lw.clone(), 7);
    // Full backprop through the unrolled sampler.
    const step = ddimStepFn(eps, plan);
    const full = tf.grads((x: Tensor, ...ps: Tensor[]) => {
      let cur = x;
      for (let k = 0; k < 3; k++) cur = step(cur, ps, k, stepSeed(7, k));
      return tf.sum(tf.mul(cur, lw));
    })([noise, ...params]);
    const gx = await maxAbs(full[0]!);
    assert.ok(gx > 1e-3);
    assert.ok((await maxDiff(run.x0, full[0]!)) <= 1e-5 * Math.max(1, gx), 'grad x_T');
    for (let i = 0; i < params.length; i++) {
      const s = await maxAbs(full[i + 1]!);
      assert.ok(s > 0, `${trainables[i]!.name} gets a gradient`);
      assert.ok((await maxDiff(run.params[i]!, full[i + 1]!)) <= 1e-5 * Math.max(1, s), trainables[i]!.name);
    }
    // The sampled final equals the plain guided sampler with the same masks and the same noise.
    const masks = Object.fromEntries(specs.map((s, i) => [s.name, params[i]!]));
    const pair = den.pairEpsFn(masks);
    const replay = (x2: Tensor, t: number): Tensor => {
      const seed = stepSeed(7, plan.timesteps.indexOf(t));
      return tf.tidy(() => tf.mul(pair(x2, t), 1 + (seed % 1000) / 1e4));
    };
    const plain = ddimSample(guidedEps(replay, 4), noise, plan);
    assert.ok((await maxDiff(plain.final, run.final)) < 1e-6);
    den.dispose();
    tf.dispose([run.final, run.x0, ...run.params, ...full, plain.final, noise, lw, ...params.slice(0, -1)]);
    tf.dispose([...Object.values(w), context, uncond]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  });
}
