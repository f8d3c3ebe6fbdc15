import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { availableBackends, useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import { gradCheck, formatGradCheck } from '../../src/engine/gradcheck.js';
import {
  SD15_UNET,
  SD21_UNET,
  SD_EMOJI_LATENT8,
  SD_EMOJI_PIXEL32,
  countUnetParams,
  foldUnetMasks,
  initUnetWeights,
  unetBlocks,
  unetDenoiser,
  unetForward,
  unetMaskSpecs,
  unetParamSpecs,
  unetTransformerBlocks,
  validateUnetMasks,
  validateUnetParams,
  validateUnetWeights,
  type UnetParams,
} from '../../src/models/unet/index.js';

// Both block kinds on both paths, a mid block, 1x1-conv projections in one variant.
const TINY: UnetParams = {
  sample_size: 8,
  in_channels: 3,
  out_channels: 3,
  block_out_channels: [16, 32],
  layers_per_block: 1,
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  cross_attention_dim: 12,
  num_attention_heads: [2, 4],
  transformer_layers_per_block: 1,
  norm_num_groups: 8,
  norm_eps: 1e-5,
  use_linear_projection: true,
  flip_sin_to_cos: true,
  freq_shift: 0,
};

const randn = (shape: number[], seed: number, scale = 1): Tensor =>
  tf.tidy(() => tf.mul(tf.tensor(randnArray(shape.reduce((a, b) => a * b, 1), seed), shape), scale));

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}
async function maxAbs(a: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(a)));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}

function inputs(cfg: UnetParams, b: number, size: number, seed: number, t = [17, 503]) {
  return {
    sample: randn([b, cfg.in_channels, size, size], seed),
    timesteps: tf.tensor1d(t.slice(0, b)),
    context: randn([b, 5, cfg.cross_attention_dim], seed + 1),
  };
}

test('SD 1.5 / 2.1 presets: diffusers names, shapes and parameter counts without allocating', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  validateUnetParams(SD15_UNET);
  assert.equal(countUnetParams(SD15_UNET), 859_520_964); // the published UNet2DConditionModel size
  assert.equal(countUnetParams(SD21_UNET), 865_910_724);
  const specs = unetParamSpecs(SD15_UNET);
  assert.equal(specs.length, 686);
  assert.equal(new Set(specs.map((s) => s.name)).size, specs.length);
  const byName = new Map(specs.map((s) => [s.name, s.shape]));
  assert.deepEqual(specs[0], { name: 'conv_in.weight', shape: [320, 4, 3, 3] });
  assert.deepEqual(byName.get('time_embedding.linear_1.weight'), [1280, 320]);
  assert.deepEqual(byName.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight'), [320, 768]);
  assert.deepEqual(byName.get('down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight'), [2560, 320]);
  assert.deepEqual(byName.get('down_blocks.0.attentions.0.proj_in.weight'), [320, 320, 1, 1]);
  assert.deepEqual(byName.get('down_blocks.1.resnets.0.conv_shortcut.weight'), [640, 320, 1, 1]);
  assert.deepEqual(byName.get('down_blocks.2.downsamplers.0.conv.weight'), [1280, 1280, 3, 3]);
  assert.ok(!byName.has('down_blocks.3.downsamplers.0.conv.weight'));
  assert.ok(!byName.has('down_blocks.3.attentions.0.proj_in.weight'));
  assert.deepEqual(byName.get('up_blocks.0.resnets.0.conv1.weight'), [1280, 2560, 3, 3]);
  assert.deepEqual(byName.get('up_blocks.1.resnets.2.conv1.weight'), [1280, 1920, 3, 3]);
  assert.deepEqual(byName.get('up_blocks.3.resnets.2.conv_shortcut.weight'), [320, 640, 1, 1]);
  assert.deepEqual(byName.get('up_blocks.2.upsamplers.0.conv.weight'), [640, 640, 3, 3]);
  assert.deepEqual(byName.get('mid_block.resnets.1.time_emb_proj.weight'), [1280, 1280]);
  assert.deepEqual(specs[specs.length - 1], { name: 'conv_out.bias', shape: [4] });
  assert.deepEqual(new Map(unetParamSpecs(SD21_UNET).map((s) => [s.name, s.shape])).get('mid_block.attentions.0.proj_out.weight'), [1280, 1280]);
  // Mask hook points: 16 transformer blocks; SD 2.1's heads per level, reversed on the up path.
  const blocks = unetTransformerBlocks(SD21_UNET);
  assert.equal(blocks.length, 16);
  const heads = new Map(unetMaskSpecs(SD21_UNET).filter((s) => s.kind === 'heads').map((s) => [s.name, s.size]));
  assert.equal(heads.get('down_blocks.0.attentions.1.transformer_blocks.0.attn1.heads'), 5);
  assert.equal(heads.get('mid_block.attentions.0.transformer_blocks.0.attn2.heads'), 20);
  assert.equal(heads.get('up_blocks.1.attentions.2.transformer_blocks.0.attn1.heads'), 20);
  assert.equal(heads.get('up_blocks.3.attentions.0.transformer_blocks.0.attn2.heads'), 5);
  const ff = unetMaskSpecs(SD15_UNET).find((s) => s.name === 'up_blocks.1.attentions.0.transformer_blocks.0.ff.hidden')!;
  assert.equal(ff.size, 5120);
  assert.equal(tf.memory().numTensors, before, 'nothing allocated');
});

test('invalid configs fail in one line', () => {
  assert.throws(() => validateUnetParams({ ...TINY, block_out_channels: [16, 30] }), /divisible/);
  assert.throws(() => validateUnetParams({ ...TINY, num_attention_heads: [3, 4] }), /heads/);
  assert.throws(() => validateUnetParams({ ...TINY, up_block_types: ['UpBlock2D'] }), /up_block_types/);
  assert.throws(() => validateUnetParams({ ...TINY, down_block_types: ['SimpleDown' as never, 'DownBlock2D'] }), /unsupported/);
});

test('small presets: output shapes, spec count equals allocated count, same seed same bytes', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  for (const cfg of [SD_EMOJI_LATENT8, SD_EMOJI_PIXEL32, TINY]) {
    const w = initUnetWeights(cfg, 3);
    validateUnetWeights(cfg, w);
    const allocated = Object.values(w).reduce((a, t) => a + t.size, 0);
    assert.equal(allocated, countUnetParams(cfg));
    const b = cfg === TINY ? 2 : 1;
    const inp = inputs(cfg, b, cfg.sample_size, 5);
    const out = unetForward(cfg, w, inp);
    assert.deepEqual(out.shape, [b, cfg.out_channels, cfg.sample_size, cfg.sample_size]);
    assert.ok((await maxAbs(out)) > 1e-3);
    // Same seed: same weights and the same output bytes; another seed differs.
    const w2 = initUnetWeights(cfg, 3);
    const out2 = unetForward(cfg, w2, inp);
    assert.deepEqual(Buffer.from((await out2.data()).buffer), Buffer.from((await out.data()).buffer));
    const w3 = cfg === TINY ? initUnetWeights(cfg, 4) : {};
    if (cfg === TINY) assert.ok((await maxDiff(w3['conv_in.weight']!, w['conv_in.weight']!)) > 0, 'another seed, other weights');
    // NHWC in and out gives the same numbers.
    const nhwc = tf.transpose(inp.sample, [0, 2, 3, 1]);
    const out3 = unetForward(cfg, w, { ...inp, sample: nhwc }, { layout: 'NHWC' });
    const back = tf.transpose(out3, [0, 3, 1, 2]);
    assert.ok((await maxDiff(back, out)) < 1e-5);
    tf.dispose([out, out2, out3, nhwc, back, ...Object.values(inp), ...Object.values(w), ...Object.values(w2), ...Object.values(w3)]);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

test('zeroOut init: every residual branch starts at 0, so the output is 0', async () => {
  await useBackend();
  const w = initUnetWeights(TINY, 1, { zeroOut: true });
  const inp = inputs(TINY, 2, 8, 9);
  const out = unetForward(TINY, w, inp);
  assert.equal(await maxAbs(out), 0);
  assert.equal(await maxAbs(w['up_blocks.1.attentions.0.proj_out.weight']!), 0);
  assert.ok((await maxAbs(w['up_blocks.1.attentions.0.proj_in.weight']!)) > 0);
  tf.dispose([out, ...Object.values(inp), ...Object.values(w)]);
});

test('timestep embedding matches diffusers get_timestep_embedding (values from torch)', async () => {
  await useBackend();
  const e = unetBlocks.timestepEmbedding(tf.tensor1d([0, 1, 251, 999]), 8, true, 0);
  const want = [
    [1, 1, 1, 1, 0, 0, 0, 0],
    [0.5403023, 0.9950042, 0.99995, 0.9999995, 0.841471, 0.09983341, 0.009999833, 0.0009999998],
    [0.9468777, 0.999464, -0.8070882, 0.9686645, -0.3215939, -0.0327369, 0.5904309, 0.2483727],
    [0.9996498, 0.8074551, -0.8444698, 0.5411435, -0.02646075, -0.5899291, -0.5356032, 0.8409302],
  ];
  const got = await e.array() as number[][];
  got.forEach((r, i) => r.forEach((v, j) => assert.ok(Math.abs(v - want[i]![j]!) < 2e-6, `[${i}][${j}] ${v} vs ${want[i]![j]}`)));
  // flip_sin_to_cos False, freq shift 1 (sin first).
  const e2 = unetBlocks.timestepEmbedding(tf.tensor1d([3, 500]), 6, false, 1);
  const want2 = [[0.14112, 0.0299955, 0.0003, -0.9899925, 0.99955, 0.9999999], [-0.4677718, -0.9589243, 0.04997916, -0.8838493, 0.2836622, 0.9987503]];
  (await e2.array() as number[][]).forEach((r, i) => r.forEach((v, j) => assert.ok(Math.abs(v - want2[i]![j]!) < 2e-6)));
  tf.dispose([e, e2]);
});

test('masks: all ones equals no mask; zeroed units equal zeroed weight rows/columns (folding)', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  for (const cfg of [TINY, { ...TINY, use_linear_projection: false }]) {
    const w = initUnetWeights(cfg, 11);
    const inp = inputs(cfg, 2, 8, 12);
    const plain = unetForward(cfg, w, inp);
    const specs = unetMaskSpecs(cfg);
    assert.equal(specs.length, 4 * 11); // 4 transformer blocks x (2 x 5 attention masks + ff.hidden)
    const ones = Object.fromEntries(specs.map((s) => [s.name, tf.ones([s.size])]));
    const masked = unetForward(cfg, w, inp, { masks: ones });
    assert.equal(await maxDiff(masked, plain), 0, 'all-ones masks change nothing');

    const blk = 'up_blocks.1.attentions.0.transformer_blocks.0';
    const dim = 16;
    const heads = 2;
    const d = dim / heads;
    const cases: { mask: string; size: number; zero: number[]; fold: (name: string, t: Tensor) => Tensor | null }[] = [
      // Head 1 of the cross-attention -> columns d..2d of attn2.to_out.0.weight.
      { mask: `${blk}.attn2.heads`, size: heads, zero: [1], fold: (n, t) => (n === `${blk}.attn2.to_out.0.weight` ? zeroCols(t, range(d, 2 * d)) : null) },
      // Head 0 of self-attention.
      { mask: `${blk}.attn1.heads`, size: heads, zero: [0], fold: (n, t) => (n === `${blk}.attn1.to_out.0.weight` ? zeroCols(t, range(0, d)) : null) },
      // FFN hidden units 3 and 40 -> columns of ff.net.2.weight.
      { mask: `${blk}.ff.hidden`, size: 4 * dim, zero: [3, 40], fold: (n, t) => (n === `${blk}.ff.net.2.weight` ? zeroCols(t, [3, 40]) : null) },
      // Key units -> rows of attn2.to_k.weight.
      { mask: `${blk}.attn2.to_k`, size: dim, zero: [2, 9], fold: (n, t) => (n === `${blk}.attn2.to_k.weight` ? zeroRows(t, [2, 9]) : null) },
      // Output units -> rows of to_out.0.weight and entries of its bias.
      {
        mask: `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out`, size: dim, zero: [5],
        fold: (n, t) => (n.startsWith('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.') ? zeroRows(t, [5]) : null),
      },
    ];
    for (const c of cases) {
      const m = tf.tidy(() => {
        const a = new Float32Array(c.size).fill(1);
        for (const i of c.zero) a[i] = 0;
        return tf.tensor1d(a);
      });
      const viaMask = unetForward(cfg, w, inp, { masks: { [c.mask]: m } });
      const folded: Record<string, Tensor> = {};
      const made: Tensor[] = [];
      for (const [n, t] of Object.entries(w)) {
        const f = c.fold(n, t);
        if (f) made.push(f);
        folded[n] = f ?? t;
      }
      assert.ok(made.length >= 1, `${c.mask} folds into a weight`);
      const viaFold = unetForward(cfg, folded, inp);
      assert.ok((await maxDiff(viaMask, viaFold)) < 1e-5, c.mask);
      assert.ok((await maxDiff(viaMask, plain)) > 1e-5, `${c.mask} changes the output`);
      tf.dispose([m, viaMask, viaFold, ...made]);
    }
    // foldUnetMasks: continuous masks on every hook point at once fold exactly.
    const rnd = Object.fromEntries(specs.map((sp, i) => [sp.name, tf.tidy(() => tf.add(0.5, tf.sigmoid(randn([sp.size], 300 + i))))]));
    const viaMasks = unetForward(cfg, w, inp, { masks: rnd });
    const folded = foldUnetMasks(cfg, w, rnd);
    const viaFolded = unetForward(cfg, folded, inp);
    assert.ok((await maxDiff(viaMasks, viaFolded)) < 1e-5 * Math.max(1, await maxAbs(viaMasks)), 'foldUnetMasks');
    assert.ok((await maxDiff(viaMasks, plain)) > 1e-3);
    const newTensors = Object.entries(folded).filter(([n, t]) => w[n] !== t).map(([, t]) => t);
    assert.equal(newTensors.length, 4 * (2 * 5 + 1), 'q, k, v, to_out weight and bias per attention, ff.net.2 per block');
    tf.dispose([viaMasks, viaFolded, ...newTensors, ...Object.values(rnd)]);
    assert.throws(() => validateUnetMasks(cfg, { 'down_blocks.0.attentions.0.transformer_blocks.0.attn9.heads': ones[specs[0]!.name]! }), /unknown UNet mask/);
    assert.throws(() => unetForward(cfg, w, inp, { masks: { [`${blk}.ff.hidden`]: ones[`${blk}.attn1.heads`]! } }), /must have shape \[64\]/);
    tf.dispose([plain, masked, ...Object.values(ones), ...Object.values(inp), ...Object.values(w)]);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}
function zeroCols(t: Tensor, cols: number[]): Tensor {
  return tf.tidy(() => {
    const m = new Float32Array(t.shape[1]!).fill(1);
    for (const c of cols) m[c] = 0;
    return tf.mul(t, tf.tensor2d(m, [1, m.length]));
  });
}
function zeroRows(t: Tensor, rows: number[]): Tensor {
  return tf.tidy(() => {
    const m = new Float32Array(t.shape[0]!).fill(1);
    for (const r of rows) m[r] = 0;
    return tf.mul(t, tf.tensor(m, [m.length, ...t.shape.slice(1).map(() => 1)]));
  });
}

test('forward errors are one clear line', async () => {
  await useBackend();
  const w = initUnetWeights(TINY, 1);
  const inp = inputs(TINY, 2, 8, 1);
  assert.throws(() => unetForward(TINY, w, { ...inp, sample: tf.zeros([2, 4, 8, 8]) }), /the model takes 3/);
  assert.throws(() => unetForward(TINY, w, { ...inp, sample: tf.zeros([2, 3, 6, 5]) }), /multiples of 2/);
  assert.throws(() => unetForward(TINY, w, { ...inp, context: tf.zeros([2, 5, 7]) }), /context must be \[2, T, 12\]/);
  const { ['conv_out.bias']: _drop, ...rest } = w;
  assert.throws(() => validateUnetWeights(TINY, rest), /missing 1 tensors: conv_out.bias/);
  assert.throws(() => unetDenoiser(TINY, w, { context: inp.context }).pairEps(tf.zeros([4, 3, 8, 8]), 10), /unconditional context/);
  tf.dispose([...Object.values(inp), ...Object.values(w)]);
});

// A micro UNet for gradient checks on every backend (4x4 input, both levels, every block kind).
const MICRO: UnetParams = { ...TINY, block_out_channels: [8, 16], norm_num_groups: 4, num_attention_heads: [2, 2], cross_attention_dim: 6 };

test('UNet forward and gradients agree across backends and with finite differences', async () => {
  const names = ['down_blocks.0.resnets.0.conv1.weight', 'down_blocks.0.downsamplers.0.conv.weight', 'up_blocks.0.upsamplers.0.conv.weight', 'up_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight'];
  const maskName = 'up_blocks.1.attentions.0.transformer_blocks.0.attn2.heads';
  const outs = new Map<string, { y: Float32Array; g: Float32Array[] }>();
  for (const backend of availableBackends()) {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const w = initUnetWeights(MICRO, 21);
    const inp = inputs(MICRO, 2, 4, 22);
    const mask = tf.tensor1d([0.7, 1.2]);
    const f = (x: Tensor, ctx: Tensor, m: Tensor, ...ps: Tensor[]): Tensor => {
      const ww = { ...w, ...Object.fromEntries(names.map((n, i) => [n, ps[i]!])) };
      return unetForward(MICRO, ww, { sample: x, timesteps: inp.timesteps, context: ctx }, { masks: { [maskName]: m } });
    };
    const args = [inp.sample, inp.context, mask, ...names.map((n) => w[n]!)];
    // Weights are ~0.1: the default relative step (1e-2) is too coarse for the norms and softmax, so
    // an absolute step of 1e-3 (truncation error ~1e-3 here, measured).
    const r = gradCheck(f, args, { seed: 3, step: 1e-3, tol: 3e-2, directions: 1 });
    assert.ok(r.ok, `${backend}: ${formatGradCheck(r)}`);
    const grads = tf.grads((...xs: Tensor[]) => tf.sum(tf.square(f(...(xs as [Tensor, Tensor, Tensor, ...Tensor[]])))))(args);
    outs.set(backend, { y: r.output, g: await Promise.all(grads.map(async (g) => (await g.data()) as Float32Array)) });
    tf.dispose([...grads, mask, ...Object.values(inp), ...Object.values(w)]);
    assert.equal(tf.memory().numTensors, before, `${backend}: no tensor leaked`);
  }
  const ref = outs.get('wasm')!;
  for (const [backend, o] of outs) {
    const dy = Math.max(...o.y.map((v, i) => Math.abs(v - ref.y[i]!)));
    assert.ok(dy < 1e-4, `${backend} forward differs from wasm by ${dy}`);
    o.g.forEach((g, k) => {
      const scale = Math.max(1, ...ref.g[k]!.map(Math.abs));
      const dg = Math.max(...g.map((v, i) => Math.abs(v - ref.g[k]![i]!)));
      assert.ok(dg < 1e-3 * scale, `${backend} gradient ${k} differs from wasm by ${dg} (scale ${scale})`);
    });
  }
});
