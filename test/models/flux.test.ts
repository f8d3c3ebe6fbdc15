import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../src/engine/tf.js';
import { useBackend } from '../../src/engine/backend.js';
import { randnArray } from '../../src/engine/rng.js';
import {
  FLUX_DEV,
  FLUX_SCHNELL,
  applyRope,
  countFluxParams,
  fluxForward,
  fluxMaskSpecs,
  fluxParamSpecs,
  initFluxWeights,
  makeImgIds,
  makeTxtIds,
  packLatents,
  ropeND,
  timestepEmbedding,
  unpackLatents,
  validateFluxMasks,
  validateFluxParams,
  validateFluxWeights,
  type FluxInputs,
  type FluxParams,
} from '../../src/models/flux/index.js';

const TINY: FluxParams = {
  in_channels: 16,
  out_channels: 16,
  vec_in_dim: 8,
  context_in_dim: 12,
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

const randn = (shape: number[], seed: number, scale = 1): Tensor =>
  tf.tidy(() => tf.mul(tf.tensor(randnArray(shape.reduce((a, b) => a * b, 1), seed), shape), scale));

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await m.data())[0]!;
  m.dispose();
  return v;
}

function tinyInputs(cfg: FluxParams, b = 2, gh = 2, gw = 3, lt = 4): FluxInputs {
  return {
    img: randn([b, gh * gw, cfg.in_channels], 11),
    img_ids: makeImgIds(b, gh, gw),
    txt: randn([b, lt, cfg.context_in_dim], 12),
    txt_ids: makeTxtIds(b, lt),
    timesteps: tf.tensor1d([0.7, 0.3]),
    y: randn([b, cfg.vec_in_dim], 13),
    guidance: tf.tensor1d([3.5, 3.5]),
  };
}

test('FLUX.1-dev / schnell presets: names, shapes and parameter count without allocating', async () => {
  await useBackend();
  const before = tf.memory().numTensors;
  validateFluxParams(FLUX_DEV);
  const specs = fluxParamSpecs(FLUX_DEV);
  assert.equal(countFluxParams(FLUX_DEV), 11_901_408_320); // the published ~11.9B
  assert.equal(countFluxParams(FLUX_SCHNELL), 11_901_408_320 - (256 * 3072 + 3072 + 3072 * 3072 + 3072));
  // img_in, time_in, vector_in, guidance_in, txt_in; 2 streams x 12 per double block; 8 per single block; 4 final.
  assert.equal(specs.length, 2 + 4 + 4 + 4 + 2 + 19 * 24 + 38 * 8 + 4);
  const byName = new Map(specs.map((s) => [s.name, s.shape]));
  assert.deepEqual(byName.get('double_blocks.0.img_attn.qkv.weight'), [9216, 3072]);
  assert.deepEqual(byName.get('double_blocks.18.txt_mlp.2.weight'), [3072, 12288]);
  assert.deepEqual(byName.get('double_blocks.0.txt_mod.lin.weight'), [18432, 3072]);
  assert.deepEqual(byName.get('single_blocks.37.linear1.weight'), [21504, 3072]);
  assert.deepEqual(byName.get('single_blocks.0.linear2.weight'), [3072, 15360]);
  assert.deepEqual(byName.get('single_blocks.0.norm.query_norm.scale'), [128]);
  assert.deepEqual(byName.get('final_layer.adaLN_modulation.1.weight'), [6144, 3072]);
  assert.deepEqual(byName.get('img_in.weight'), [3072, 64]);
  assert.deepEqual(byName.get('txt_in.weight'), [3072, 4096]);
  assert.deepEqual(byName.get('vector_in.in_layer.weight'), [3072, 768]);
  assert.ok(byName.has('guidance_in.out_layer.bias'));
  assert.ok(!fluxParamSpecs(FLUX_SCHNELL).some((s) => s.name.startsWith('guidance_in')));
  const masks = fluxMaskSpecs(FLUX_DEV);
  assert.equal(masks.length, 19 * 4 + 38 * 2);
  assert.equal(masks.filter((m) => m.kind === 'txt_mod').reduce((a, m) => a + m.size, 0), 350_208);
  assert.equal(masks.filter((m) => m.kind === 'img_mlp' || m.kind === 'txt_mlp').reduce((a, m) => a + m.size, 0), 466_944);
  assert.equal(tf.memory().numTensors, before, 'nothing allocated');
});

test('bad configs and bad weights fail with one clear line', async () => {
  await useBackend();
  assert.throws(() => validateFluxParams({ ...TINY, axes_dim: [4, 4, 4] }), /axes_dim .* must sum to the head dim 16/);
  assert.throws(() => validateFluxParams({ ...TINY, num_heads: 3 }), /divisible/);
  const w = initFluxWeights(TINY, 1);
  validateFluxWeights(TINY, w);
  const { ['txt_in.bias']: dropped, ...missing } = w;
  assert.throws(() => validateFluxWeights(TINY, missing), /^Error: FLUX weights: missing 1 tensors: txt_in\.bias$/);
  assert.throws(() => validateFluxWeights(TINY, { ...w, extra: dropped! }), /unexpected 1 tensors: extra/);
  const bad = tf.zeros([3]);
  assert.throws(() => validateFluxWeights(TINY, { ...w, 'txt_in.bias': bad }), /'txt_in\.bias' has shape \[3\], expected \[32\]/);
  assert.throws(() => validateFluxMasks(TINY, { 'double_blocks.0.img_mlpp': bad }), /unknown FLUX mask/);
  assert.throws(() => validateFluxMasks(TINY, { 'double_blocks.0.heads': bad }), /must have shape \[2\]/);
  tf.dispose([...Object.values(w), bad]);
});

test('2x2 packing: layout and round trip; ids', async () => {
  await useBackend();
  const [b, c, h, w] = [2, 3, 4, 6];
  const x = tf.tensor(Float32Array.from({ length: b * c * h * w }, (_, i) => i), [b, c, h, w]);
  const p = packLatents(x);
  assert.deepEqual(p.shape, [b, (h / 2) * (w / 2), c * 4]);
  const xs = (await x.array()) as number[][][][];
  const ps = (await p.array()) as number[][][];
  for (let bi = 0; bi < b; bi++)
    for (let r = 0; r < h / 2; r++)
      for (let q = 0; q < w / 2; q++)
        for (let ch = 0; ch < c; ch++)
          for (let ph = 0; ph < 2; ph++)
            for (let pw = 0; pw < 2; pw++)
              assert.equal(ps[bi]![r * (w / 2) + q]![ch * 4 + ph * 2 + pw], xs[bi]![ch]![2 * r + ph]![2 * q + pw]);
  const u = unpackLatents(p, h, w);
  assert.equal(await maxDiff(u, x), 0);
  assert.throws(() => unpackLatents(p, 6, 6), /not a packing/);
  const ids = makeImgIds(2, 3, 4);
  assert.deepEqual(ids.shape, [2, 12, 3]);
  assert.deepEqual(((await ids.array()) as number[][][])[1]![6], [0, 1, 2]);
  const tids = makeTxtIds(2, 5);
  assert.deepEqual(tids.shape, [2, 5, 3]);
  assert.ok(((await tids.data()) as Float32Array).every((v) => v === 0));
  tf.dispose([x, p, u, ids, tids]);
});

test('timestep embedding and rope', async () => {
  await useBackend();
  const e = timestepEmbedding(tf.tensor1d([0, 0.5]), 8);
  const rows = (await e.array()) as number[][];
  assert.deepEqual(rows[0], [1, 1, 1, 1, 0, 0, 0, 0]); // cos first, then sin
  // t = 0.5 -> args 500 * 10000^(-i/4)
  for (let i = 0; i < 4; i++) {
    const a = 500 * Math.pow(10_000, -i / 4);
    assert.ok(Math.abs(rows[1]![i]! - Math.cos(a)) < 1e-3 && Math.abs(rows[1]![i + 4]! - Math.sin(a)) < 1e-3);
  }
  // Rope at position 0 is the identity; at (0, 1, 0) it rotates the first h-axis pair by 1 radian.
  const ids = tf.tensor3d([[[0, 0, 0], [0, 1, 0]]]);
  const pe = ropeND(ids, [2, 2, 2], 10_000);
  assert.deepEqual(pe.cos.shape, [1, 1, 2, 3]);
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], [1, 1, 2, 6]);
  const r = (await applyRope(x, pe).array()) as number[][][][];
  assert.deepEqual(r[0]![0]![0], [1, 2, 3, 4, 5, 6]);
  const [c1, s1] = [Math.cos(1), Math.sin(1)];
  const want = [1, 2, c1 * 3 - s1 * 4, s1 * 3 + c1 * 4, 5, 6];
  r[0]![0]![1]!.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6));
  tf.dispose([e, ids, pe.cos, pe.sin, x]);
});

test('masks: explicit arguments, and each equals zeroing the weights it feeds', async () => {
  await useBackend();
  const w = initFluxWeights(TINY, 3);
  const inp = tinyInputs(TINY);
  const base = fluxForward(TINY, w, inp);
  assert.deepEqual(base.shape, [2, 6, 16]);
  const m = 64;
  const h = 32;
  const unit = (n: number, zero: number[]): Tensor => tf.tensor1d(Float32Array.from({ length: n }, (_, i) => (zero.includes(i) ? 0 : 1)));
  const colsZeroed = (name: string, cols: number[]): Tensor =>
    tf.tidy(() => {
      const t = w[name]!;
      const keep = unit(t.shape[1]!, cols);
      return tf.mul(t, keep);
    });
  const rowsZeroed = (name: string, rows: number[]): Tensor =>
    tf.tidy(() => {
      const t = w[name]!;
      const keep = unit(t.shape[0]!, rows);
      return t.rank === 2 ? tf.mul(t, keep.reshape([-1, 1])) : tf.mul(t, keep);
    });
  const cases: [string, Tensor, Record<string, Tensor>][] = [
    ['double_blocks.0.img_mlp', unit(m, [1, 5, 9]), { 'double_blocks.0.img_mlp.2.weight': colsZeroed('double_blocks.0.img_mlp.2.weight', [1, 5, 9]) }],
    ['double_blocks.0.txt_mlp', unit(m, [0, 63]), { 'double_blocks.0.txt_mlp.2.weight': colsZeroed('double_blocks.0.txt_mlp.2.weight', [0, 63]) }],
    [
      'double_blocks.0.txt_mod',
      unit(6 * h, [2, 40, 70, 100, 150, 191]),
      {
        'double_blocks.0.txt_mod.lin.weight': rowsZeroed('double_blocks.0.txt_mod.lin.weight', [2, 40, 70, 100, 150, 191]),
        'double_blocks.0.txt_mod.lin.bias': rowsZeroed('double_blocks.0.txt_mod.lin.bias', [2, 40, 70, 100, 150, 191]),
      },
    ],
    [
      'double_blocks.0.heads',
      unit(2, [1]),
      {
        'double_blocks.0.img_attn.proj.weight': colsZeroed('double_blocks.0.img_attn.proj.weight', range(16, 32)),
        'double_blocks.0.txt_attn.proj.weight': colsZeroed('double_blocks.0.txt_attn.proj.weight', range(16, 32)),
      },
    ],
    ['single_blocks.0.mlp', unit(m, [3, 4]), { 'single_blocks.0.linear2.weight': colsZeroed('single_blocks.0.linear2.weight', [h + 3, h + 4]) }],
    ['single_blocks.0.heads', unit(2, [0]), { 'single_blocks.0.linear2.weight': colsZeroed('single_blocks.0.linear2.weight', range(0, 16)) }],
  ];
  for (const [name, mask, folded] of cases) {
    const masked = fluxForward(TINY, w, inp, { masks: { [name]: mask } });
    const viaWeights = fluxForward(TINY, { ...w, ...folded }, inp);
    const diff = await maxDiff(masked, base);
    assert.ok(diff > 1e-4, `${name} changes the output`);
    assert.ok((await maxDiff(masked, viaWeights)) < 1e-5, `${name} equals its weight fold`);
    tf.dispose([masked, viaWeights, mask, ...Object.values(folded)]);
  }
  // No global state: an unmasked call after masked ones is unchanged.
  const again = fluxForward(TINY, w, inp);
  assert.equal(await maxDiff(again, base), 0);
  // All-ones masks are the identity.
  const ones = Object.fromEntries(fluxMaskSpecs(TINY).map((s) => [s.name, tf.ones([s.size])]));
  const withOnes = fluxForward(TINY, w, inp, { masks: ones });
  assert.ok((await maxDiff(withOnes, base)) < 1e-6);
  assert.throws(() => fluxForward(TINY, w, { ...inp, guidance: null }), /needs a guidance strength/);
  tf.dispose([base, again, withOnes, ...Object.values(ones), ...Object.values(w), ...Object.values(inp).filter((t): t is Tensor => !!t)]);
});

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}
